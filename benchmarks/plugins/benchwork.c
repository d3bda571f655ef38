/* The benchmark's plugin: sum3 does the same small work as bench_plugins.c's
   C callback, so the two differ only in how they are called. */
#include <stdarg.h>

#include <taskgate_plugin.h>

static __thread double sink;

TG_PLUGIN_EXPORT int benchwork_sum3(tg_plugin_task *t, ...) {
  (void)t;
  va_list ap;
  va_start(ap, t);
  int64_t a = va_arg(ap, int64_t);
  double b = va_arg(ap, double);
  const char *s = va_arg(ap, const char *);
  va_end(ap);
  sink += (double)a + b + s[0];
  return TG_PLUGIN_OK;
}

static const uint8_t sum3_args[] = {TG_TYPE_I64, TG_TYPE_DOUBLE, TG_TYPE_STRING};
static const tg_plugin_processor processors[] = {
    {"sum3", "benchwork_sum3", sum3_args, 3, 0, NULL, NULL, "a + b + s[0]"},
};
TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
    TG_PLUGIN_DESCRIPTOR_HEAD, "benchwork", "1.0.0", "benchmark work", processors, 1, 0, NULL, NULL, NULL};
