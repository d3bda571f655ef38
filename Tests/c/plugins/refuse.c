/* Plugins the host must refuse, one per -DCASE_*, each without running any of
   its code: every function here creates the file named by
   TG_TEST_MARKER, and the test checks that it never appears. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include <taskgate_plugin.h>

static void mark(void) {
  const char *p = getenv("TG_TEST_MARKER");
  FILE *f = p ? fopen(p, "a") : NULL;
  if (f) { fputs("plugin code ran\n", f); fclose(f); }
}

TG_PLUGIN_EXPORT int refuse_entry(tg_plugin_task *t, ...) { (void)t; mark(); return 0; }
TG_PLUGIN_EXPORT int refuse_init(const tg_plugin_host *h, void **s, char *error, size_t cap) {
  (void)h; (void)s;
  mark();
#ifdef CASE_INIT_FAILS
  snprintf(error, cap, "no licence for this machine");
  return 7;
#else
  (void)error; (void)cap;
  return 0;
#endif
}

#ifndef NAME
#define NAME "refuse"
#endif
#ifndef ENTRY
#define ENTRY "refuse_entry"
#endif
#ifndef MAJOR
#define MAJOR TG_PLUGIN_ABI_MAJOR
#endif
#ifndef MINOR
#define MINOR TG_PLUGIN_ABI_MINOR
#endif
#ifndef MAGIC
#define MAGIC TG_PLUGIN_MAGIC
#endif
#ifndef ARGTYPE
#define ARGTYPE TG_TYPE_I32
#endif
#ifndef RECOVER
#define RECOVER NULL
#endif
#ifndef PROC_NAME
#define PROC_NAME "run"
#endif

static const uint8_t args[] = {TG_TYPE_STRING, ARGTYPE};
TG_PLUGIN_EXPORT const tg_plugin_processor refuse_processors[] = {
    {PROC_NAME, ENTRY, args, 2, 0, NULL, NULL, NULL},
};

#if defined(CASE_NO_DESCRIPTOR)
TG_PLUGIN_EXPORT int not_a_descriptor = 1;
#elif defined(CASE_FUNCTION_DESCRIPTOR)
TG_PLUGIN_EXPORT int taskgate_plugin_descriptor(void) { mark(); return 0; }
#else
TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
    MAGIC, MAJOR, MINOR, (uint32_t)sizeof(tg_plugin_descriptor), (uint32_t)sizeof(tg_plugin_processor),
    NAME, "0.0.1", NULL, refuse_processors, 1, 0, "refuse_init", NULL, RECOVER};
#endif
