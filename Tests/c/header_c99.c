/*
 * header_c99.c: taskgate.h compiles as strict C99 (-std=c99 -pedantic
 * -Wall -Wextra -Werror), with every INIT macro and the error table used.
 * Compiled with -c only; nothing here runs.
 */
#include <taskgate.h>

/* The X-macro expands to a table; a code's number matches its enum. */
#define HEADER_C99_ROW_(name, code, msg) {#name, code, msg},
static const struct {
  const char *name;
  int code;
  const char *message;
} header_c99_rows[] = {TG_ERROR_TABLE(HEADER_C99_ROW_)};
#undef HEADER_C99_ROW_

/* A C99 compile-time check: a negative array size fails the build. */
typedef char header_c99_last_code_[(TG_ERROR_LAST_ == TG_EIO) ? 1 : -1];
typedef char header_c99_version_[(TG_VERSION_NUMBER == TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 +
                                  TG_VERSION_PATCH) ? 1 : -1];

static int header_c99_fn(tg_task_ctx *ctx, void *user) {
  (void)user;
  return tg_task_cancelled(ctx) ? TG_TASK_FAILED : TG_TASK_SUCCEEDED;
}

int header_c99_use(void);
int header_c99_use(void) {
  tg_pool_options opts = TG_POOL_OPTIONS_INIT;
  tg_task_desc desc = TG_TASK_DESC_INIT;
  tg_result result = TG_RESULT_INIT;
  tg_pool_stats stats = TG_POOL_STATS_INIT;
  tg_processor_fn fn = header_c99_fn;
  desc.fn = fn;
  desc.priority = TG_PRIORITY_HIGH;
  desc.flags = TG_TASK_CRITICAL;
  opts.flags = TG_POOL_ALLOW_READ_WRITE_OVERLAP;
  return (int)(opts.struct_size + desc.struct_size + result.struct_size + stats.struct_size) +
         header_c99_rows[0].code + (int)sizeof header_c99_rows / (int)sizeof header_c99_rows[0] + TG_SHUTDOWN_ABORT +
         TG_STATUS_SKIPPED;
}
