// header_cxx.cpp: taskgate.h compiles as C++11 (-std=c++11 -Wall -Wextra
// -Werror), with every INIT macro and the error table used, and its functions
// have C linkage. Compiled with -c only; nothing here runs.
#include <taskgate.h>

namespace {

#define HEADER_CXX_ROW_(name, code, msg) {#name, code, msg},
struct Row {
  const char *name;
  int code;
  const char *message;
};
const Row rows[] = {TG_ERROR_TABLE(HEADER_CXX_ROW_)};
#undef HEADER_CXX_ROW_

static_assert(TG_ERROR_LAST_ == TG_EIO, "TG_ERROR_LAST_ is the last code");
static_assert(sizeof(rows) / sizeof(rows[0]) == 23, "twenty-three codes");
static_assert(TG_VERSION_NUMBER == TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH,
              "version number");

extern "C" int header_cxx_fn(tg_task_ctx *ctx, void *user) {
  (void)user;
  return tg_task_cancelled(ctx) ? TG_TASK_FAILED : TG_TASK_SUCCEEDED;
}

}  // namespace

int header_cxx_use();
int header_cxx_use() {
  tg_pool_options opts = TG_POOL_OPTIONS_INIT;
  tg_task_desc desc = TG_TASK_DESC_INIT;
  tg_result result = TG_RESULT_INIT;
  tg_pool_stats stats = TG_POOL_STATS_INIT;
  tg_processor_fn fn = header_cxx_fn;
  desc.fn = fn;
  desc.priority = TG_PRIORITY_LOW;
  opts.flags = TG_POOL_ALLOW_READ_WRITE_OVERLAP;
  // Taking the address checks the declarations link as C functions.
  int (*create)(const tg_pool_options *, tg_pool **) = tg_pool_create;
  const char *(*name)(int) = tg_error_name;
  return static_cast<int>(opts.struct_size + desc.struct_size + result.struct_size + stats.struct_size) +
         rows[1].code + (create != nullptr) + (name != nullptr);
}
