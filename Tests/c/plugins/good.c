/* A well-formed test plugin: every argument type, many arguments, payloads,
   failures, setup and cleanup. Built twice by run-c-tests: as libgood.so, and
   as libgood_copy.so (a second file registering the same names). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskgate_plugin.h>

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Appends one line to the file named by the task's payload (a log the test reads). */
static void log_line(const tg_plugin_task *t, const char *what, int outcome) {
  if (!t->payload || t->payload_len == 0 || t->payload_len > 4000) return;
  char path[4096];
  memcpy(path, t->payload, t->payload_len);
  path[t->payload_len] = 0;
  FILE *f = fopen(path, "a");
  if (!f) return;
  if (outcome >= 0) fprintf(f, "%s %s %d\n", what, t->id ? t->id : "-", outcome);
  else fprintf(f, "%s %s\n", what, t->id ? t->id : "-");
  fclose(f);
}

TG_PLUGIN_EXPORT int good_all_types(tg_plugin_task *t, ...) {
  va_list ap;
  va_start(ap, t);
  int32_t i32 = va_arg(ap, int32_t);
  uint32_t u32 = va_arg(ap, uint32_t);
  int64_t i64 = va_arg(ap, int64_t);
  uint64_t u64 = va_arg(ap, uint64_t);
  double d = va_arg(ap, double);
  int b = va_arg(ap, int);
  const char *s = va_arg(ap, const char *);
  const unsigned char *bytes = va_arg(ap, const unsigned char *);
  size_t blen = va_arg(ap, size_t);
  float f = (float)va_arg(ap, double);
  int i8 = va_arg(ap, int);
  int u8 = va_arg(ap, int);
  int i16 = va_arg(ap, int);
  int u16 = va_arg(ap, int);
  va_end(ap);
  char out[1024];
  int n = snprintf(out, sizeof out, "i32=%d u32=%u i64=%lld u64=%llu double=%.17g bool=%d string=%s bytes=%zu:",
                   (int)i32, (unsigned)u32, (long long)i64, (unsigned long long)u64, d, b, s, blen);
  for (size_t k = 0; k < blen && n < 900; k++) n += snprintf(out + n, sizeof out - (size_t)n, "%02x", bytes[k]);
  n += snprintf(out + n, sizeof out - (size_t)n, " float=%.9g i8=%d u8=%d i16=%d u16=%d", (double)f, i8, u8, i16, u16);
  t->host->set_output(t, out, (size_t)n);
  return TG_PLUGIN_OK;
}

/* 32 arguments alternating i64 and double (more than the registers hold),
   plus a string in the middle: output is the sum as %.17g and the string. */
TG_PLUGIN_EXPORT int good_many(tg_plugin_task *t, ...) {
  va_list ap;
  va_start(ap, t);
  double sum = 0;
  const char *s = "";
  for (int k = 0; k < 32; k++) {
    if (k == 15) s = va_arg(ap, const char *);
    else if (k % 2 == 0) sum += (double)va_arg(ap, int64_t);
    else sum += va_arg(ap, double);
  }
  va_end(ap);
  char out[256];
  int n = snprintf(out, sizeof out, "%.17g %s", sum, s);
  t->host->set_output(t, out, (size_t)n);
  return TG_PLUGIN_OK;
}

TG_PLUGIN_EXPORT int good_none(tg_plugin_task *t, ...) {
  char out[256];
  int n = snprintf(out, sizeof out, "id=%s attempt=%u worker=%d payload=%zu state=%s", t->id ? t->id : "-",
                   (unsigned)t->attempt, (int)t->worker, t->payload_len,
                   t->plugin_state ? (const char *)t->plugin_state : "none");
  t->host->set_output(t, out, (size_t)n);
  return TG_PLUGIN_OK;
}

/* mode: 0 succeed, 1 fail with a message, 2 sleep until cancelled,
   3 ignore cancellation for `ms` milliseconds. */
TG_PLUGIN_EXPORT int good_work(tg_plugin_task *t, ...) {
  va_list ap;
  va_start(ap, t);
  int mode = va_arg(ap, int32_t);
  int64_t ms = va_arg(ap, int64_t);
  va_end(ap);
  if (t->task_state && strcmp((const char *)t->task_state, "set up") != 0) {
    t->host->set_error(t, "task_state lost between setup and entry");
    return TG_PLUGIN_FAILED;
  }
  switch (mode) {
  case 0: t->host->set_output(t, "done", 4); return TG_PLUGIN_OK;
  case 1: t->host->set_error(t, "work failed on purpose"); return TG_PLUGIN_FAILED;
  case 2:
    for (int64_t k = 0; k < ms / 2 + 1 && !t->host->cancelled(t); k++) sleep_ms(2);
    if (t->host->cancelled(t)) { t->host->set_error(t, "cancelled"); return TG_PLUGIN_FAILED; }
    return TG_PLUGIN_OK;
  case 3: sleep_ms((int)ms); return TG_PLUGIN_OK;
  default: t->host->set_error(t, "unknown mode"); return TG_PLUGIN_FAILED;
  }
}

TG_PLUGIN_EXPORT int good_setup(tg_plugin_task *t) {
  log_line(t, "setup", -1);
  if (t->id && strncmp(t->id, "setupfail", 9) == 0) {
    t->host->set_error(t, "setup refused this task");
    return 1;
  }
  char *st = malloc(8);
  if (st) memcpy(st, "set up", 7);
  t->task_state = st;
  return 0;
}

TG_PLUGIN_EXPORT void good_cleanup(tg_plugin_task *t, int outcome) {
  log_line(t, "cleanup", outcome);
  free(t->task_state);
  t->task_state = NULL;
}

TG_PLUGIN_EXPORT int good_init(const tg_plugin_host *host, void **state, char *error, size_t cap) {
  (void)error;
  (void)cap;
  if (!host || host->struct_size < sizeof(tg_plugin_host)) return 1;
  *state = (void *)"initialised";
  return 0;
}

TG_PLUGIN_EXPORT void good_shutdown(void *state) {
  const char *p = getenv("TG_TEST_SHUTDOWN_LOG");
  if (!p) return;
  FILE *f = fopen(p, "a");
  if (!f) return;
  fprintf(f, "shutdown %s\n", state ? (const char *)state : "none");
  fclose(f);
}

static const uint8_t all_types_args[] = {TG_TYPE_I32, TG_TYPE_U32,   TG_TYPE_I64,   TG_TYPE_U64, TG_TYPE_DOUBLE,
                                         TG_TYPE_BOOL, TG_TYPE_STRING, TG_TYPE_BYTES, TG_TYPE_FLOAT, TG_TYPE_I8,
                                         TG_TYPE_U8,  TG_TYPE_I16,   TG_TYPE_U16};
static const uint8_t many_args[32] = {
    TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE,
    TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_STRING,
    TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE,
    TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_I64, TG_TYPE_DOUBLE};
static const uint8_t work_args[] = {TG_TYPE_I32, TG_TYPE_I64};

static const tg_plugin_processor processors[] = {
    {"all_types", "good_all_types", all_types_args, sizeof all_types_args, 0, NULL, NULL, "every argument type"},
    {"many", "good_many", many_args, 32, 0, NULL, NULL, "32 arguments"},
    {"none", "good_none", NULL, 0, 0, NULL, NULL, NULL},
    {"work", "good_work", work_args, 2, 0, "good_setup", "good_cleanup", "setup, work, cleanup"},
    {"plain_work", "good_work", work_args, 2, 0, NULL, NULL, "work without setup"},
};

TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
    TG_PLUGIN_DESCRIPTOR_HEAD, "good", "1.2.3", "the test suite's well-formed plugin",
    processors, sizeof processors / sizeof processors[0], 0, "good_init", "good_shutdown", NULL};

