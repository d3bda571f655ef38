/*
 * plugin_support.h: helpers the example plugins share (error messages,
 * output, mkdir -p). Header-only and static inline, so each plugin still
 * builds from its one .c file plus this header; copy both to start your own.
 * Include it after taskgate_plugin.h, with _POSIX_C_SOURCE 200809L defined.
 */
#ifndef TG_EXAMPLE_PLUGIN_SUPPORT_H
#define TG_EXAMPLE_PLUGIN_SUPPORT_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "taskgate_plugin.h"

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* ---- errors --------------------------------------------------------------- */

/* Formats the task's error message and returns TG_PLUGIN_FAILED. */
static inline int fail(tg_plugin_task *task, const char *fmt, ...) PRINTF_LIKE(2, 3);
static inline int fail(tg_plugin_task *task, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    task->host->set_error(task, fmt);
  } else if ((size_t)n < sizeof small) {
    task->host->set_error(task, small);
  } else {
    char *big = malloc((size_t)n + 1);
    if (big) {
      va_start(ap, fmt);
      vsnprintf(big, (size_t)n + 1, fmt, ap);
      va_end(ap);
      task->host->set_error(task, big);
      free(big);
    } else {
      task->host->set_error(task, small); /* truncated, but something */
    }
  }
  return TG_PLUGIN_FAILED;
}

/* "<what> '<path>': <errno text>". strerror() is not thread-safe; the XSI
   strerror_r is. */
static inline int fail_errno(tg_plugin_task *task, const char *what, const char *path, int err) {
  char text[256];
  if (strerror_r(err, text, sizeof text) != 0) snprintf(text, sizeof text, "error %d", err);
  return fail(task, "%s '%s': %s", what, path, text);
}

static inline int fail_cancelled(tg_plugin_task *task) {
  task->host->set_error(task, "cancelled");
  return TG_PLUGIN_FAILED;
}

static inline int set_output(tg_plugin_task *task, const void *data, size_t len) {
  if (task->host->set_output(task, data, len) != 0) return fail(task, "could not set the output (%zu bytes)", len);
  return TG_PLUGIN_OK;
}

/* mkdir -p of the directory part of `path` (mode 0755). */
static inline int make_parents(tg_plugin_task *task, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path) return TG_PLUGIN_OK; /* in the cwd, or in "/" */
  size_t len = (size_t)(slash - path);
  char *dir = malloc(len + 1);
  if (!dir) return fail(task, "out of memory");
  memcpy(dir, path, len);
  dir[len] = '\0';
  for (size_t i = 1; i <= len; i++) {
    if (i < len && dir[i] != '/') continue;
    if (dir[i - 1] == '/') continue; /* "a//b" or a trailing slash */
    char saved = dir[i];
    dir[i] = '\0';
    if (mkdir(dir, 0755) != 0) {
      int err = errno;
      struct stat st;
      /* EEXIST, or EACCES on a directory that is there but not ours. */
      if (!(stat(dir, &st) == 0 && S_ISDIR(st.st_mode))) {
        int rc = fail_errno(task, "cannot create directory", dir, err);
        free(dir);
        return rc;
      }
    }
    dir[i] = saved;
  }
  free(dir);
  return TG_PLUGIN_OK;
}

#endif
