/*
 * flaky: an example taskgate plugin for exercising retries, timeouts and
 * cancellation.
 *
 *   flaky.fail_first  (string key, i32 n)  fails the first n calls with that
 *                      key in this process, then "ok after K attempts"
 *   flaky.sleep_ms    (i64 ms)             sleeps in 5 ms steps, stopping early
 *                      with "cancelled" when the task is cancelled or timed out
 *   flaky.echo        (string s)           output = s
 *   flaky.http        (string key, i32 n, i32 status, i64 retry_after_ms)
 *                      like a web service in trouble: the first n calls with that
 *                      key fail as retryable with HTTP status `status` (and a
 *                      Retry-After when retry_after_ms >= 0); 4xx other than 408
 *                      and 429 fail as permanent; then "ok after K attempts"
 *   flaky.exclusive   (string sentinel, i64 ms)
 *                      proves mutual exclusion: creates `sentinel` with O_EXCL
 *                      (failing "overlap" if it exists: another holder is
 *                      inside), sleeps ms, removes it
 *   flaky.api         (string limited_prefix)
 *                      like an API client: reads the attempt's credential; one
 *                      whose key starts with limited_prefix gets a 429 (its
 *                      message quotes the key, as careless services do: the host
 *                      must redact it), others answer "answered by <model> at
 *                      <base_url>"
 *
 * It also shows plugin state: the init hook allocates a mutex-protected table
 * of per-key call counters, every task finds it in task->plugin_state, and
 * the shutdown hook frees it. init and shutdown never run alongside a task;
 * the entry points run on many workers at once, hence the mutex.
 *
 * Build (it uses pthreads):
 *   gcc -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
 *       -pthread -I include -o libflaky.so examples/plugins/flaky.c
 */
#define _POSIX_C_SOURCE 200809L

#include "taskgate_plugin.h"
#include "plugin_support.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the plugin state: call counters by key ------------------------------------ */

#define N_BUCKETS 256

typedef struct counter {
  struct counter *next;
  unsigned long long calls;
  char key[]; /* NUL-terminated */
} counter;

typedef struct flaky_state {
  pthread_mutex_t lock;
  counter *buckets[N_BUCKETS];
} flaky_state;

static size_t bucket_of(const char *key) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 16777619u;
  return h % N_BUCKETS;
}

/* Counts one more call with `key`; returns the count, 0 when out of memory. */
static unsigned long long count_call(flaky_state *s, const char *key) {
  size_t b = bucket_of(key);
  unsigned long long calls = 0;
  pthread_mutex_lock(&s->lock);
  counter *c = s->buckets[b];
  while (c && strcmp(c->key, key) != 0) c = c->next;
  if (!c) {
    size_t len = strlen(key);
    c = malloc(sizeof *c + len + 1);
    if (c) {
      memcpy(c->key, key, len + 1);
      c->calls = 0;
      c->next = s->buckets[b];
      s->buckets[b] = c;
    }
  }
  if (c) calls = ++c->calls;
  pthread_mutex_unlock(&s->lock);
  return calls;
}

TG_PLUGIN_EXPORT int flaky_init(const tg_plugin_host *host, void **state, char *error, size_t cap);
TG_PLUGIN_EXPORT void flaky_shutdown(void *state);
TG_PLUGIN_EXPORT int flaky_fail_first(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int flaky_sleep_ms(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int flaky_echo(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int flaky_http(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int flaky_api(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int flaky_exclusive(tg_plugin_task *task, ...);

int flaky_init(const tg_plugin_host *host, void **state, char *error, size_t cap) {
  if (host->struct_size < sizeof(tg_plugin_host)) {
    snprintf(error, cap, "host function table too small (%u bytes, need %u)", (unsigned)host->struct_size,
             (unsigned)sizeof(tg_plugin_host));
    return 1;
  }
  flaky_state *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(error, cap, "out of memory");
    return 1;
  }
  int err = pthread_mutex_init(&s->lock, NULL);
  if (err != 0) {
    char text[128];
    if (strerror_r(err, text, sizeof text) != 0) snprintf(text, sizeof text, "error %d", err);
    snprintf(error, cap, "pthread_mutex_init: %s", text);
    free(s);
    return 1;
  }
  *state = s;
  return 0;
}

void flaky_shutdown(void *state) {
  flaky_state *s = state;
  if (!s) return;
  for (size_t b = 0; b < N_BUCKETS; b++) {
    counter *c = s->buckets[b];
    while (c) {
      counter *next = c->next;
      free(c);
      c = next;
    }
  }
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* ---- entry points ------------------------------------------------------------------ */

/* fail_first(string key, i32 n) */
int flaky_fail_first(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *key = va_arg(ap, const char *);
  int32_t n = va_arg(ap, int32_t);
  va_end(ap);

  flaky_state *s = task->plugin_state;
  if (!s) return fail(task, "no plugin state: the host did not run flaky_init");
  unsigned long long k = count_call(s, key);
  if (k == 0) return fail(task, "out of memory counting calls of key '%s'", key);
  if (n > 0 && k <= (unsigned long long)n)
    return fail(task, "attempt %llu of key '%s': failing on purpose (n=%ld)", k, key, (long)n);
  char text[64];
  int len = snprintf(text, sizeof text, "ok after %llu attempts", k);
  return set_output(task, text, (size_t)len);
}

/* sleep_ms(i64 ms) */
int flaky_sleep_ms(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  int64_t ms = va_arg(ap, int64_t);
  va_end(ap);

  if (ms < 0) return fail(task, "bad ms %lld: it must be >= 0", (long long)ms);
  struct timespec now, deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  /* Past ~292 years the deadline would overflow: nobody waits that long. */
  if (ms > (int64_t)1e12) ms = (int64_t)1e12;
  deadline.tv_sec += (time_t)(ms / 1000);
  deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  for (;;) {
    if (task->host->cancelled(task)) return fail(task, "cancelled");
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left_ns = (long long)(deadline.tv_sec - now.tv_sec) * 1000000000LL + (deadline.tv_nsec - now.tv_nsec);
    if (left_ns <= 0) break;
    long long step = left_ns < 5000000LL ? left_ns : 5000000LL;
    struct timespec nap = {0, (long)step};
    nanosleep(&nap, NULL); /* an EINTR just means an earlier look at the clock */
  }
  return set_output(task, "slept", 5);
}

/* exclusive(string sentinel, i64 ms) */
int flaky_exclusive(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *sentinel = va_arg(ap, const char *);
  int64_t ms = va_arg(ap, int64_t);
  va_end(ap);
  if (ms < 0 || ms > 60000) return fail(task, "bad ms %lld: it must be 0 .. 60000", (long long)ms);
  int fd = open(sentinel, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return fail(task, errno == EEXIST ? "overlap: %s exists (another holder is inside)" : "%s: %s", sentinel, strerror(errno));
  close(fd);
  struct timespec nap = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&nap, &nap) != 0 && errno == EINTR) {
  }
  unlink(sentinel);
  return set_output(task, "alone", 5);
}

/* echo(string s) */
int flaky_echo(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *s = va_arg(ap, const char *);
  va_end(ap);
  return set_output(task, s, strlen(s));
}

/* The ABI 1.1 parts of the host table and task, when the host has them. */
static int has_outcomes(const tg_plugin_task *task) {
  return task->host->struct_size >= offsetof(tg_plugin_host, set_retry_after) + sizeof task->host->set_retry_after;
}

/* http(string key, i32 n, i32 status, i64 retry_after_ms) */
int flaky_http(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *key = va_arg(ap, const char *);
  int32_t n = va_arg(ap, int32_t);
  int32_t status = va_arg(ap, int32_t);
  int64_t retry_after_ms = va_arg(ap, int64_t);
  va_end(ap);

  flaky_state *s = task->plugin_state;
  if (!s) return fail(task, "no plugin state: the host did not run flaky_init");
  if (status < 100 || status > 599) return fail(task, "bad status %ld: an HTTP status is 100 .. 599", (long)status);
  unsigned long long k = count_call(s, key);
  if (k == 0) return fail(task, "out of memory counting calls of key '%s'", key);
  if (n > 0 && k <= (unsigned long long)n) {
    int permanent = status >= 400 && status < 500 && status != 408 && status != 429;
    if (has_outcomes(task)) {
      task->host->set_status_code(task, status);
      if (retry_after_ms >= 0 && !permanent) task->host->set_retry_after(task, retry_after_ms);
    }
    fail(task, "HTTP %ld on attempt %llu of key '%s'", (long)status, k, key);
    return permanent ? TG_PLUGIN_PERMANENT : TG_PLUGIN_RETRY;
  }
  char text[64];
  int len = snprintf(text, sizeof text, "ok after %llu attempts", k);
  return set_output(task, text, (size_t)len);
}

/* api(string limited_prefix) */
int flaky_api(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *limited = va_arg(ap, const char *);
  va_end(ap);

  const char *cred = task->credential;
  if (!cred) return fail(task, "no credential: run this task under a policy with credentials");
  if (*limited && strncmp(cred, limited, strlen(limited)) == 0) {
    if (has_outcomes(task)) task->host->set_status_code(task, 429);
    fail(task, "429 Too Many Requests: rate limit reached for key %s", cred);
    return TG_PLUGIN_RETRY;
  }
  const char *model = task->struct_size >= offsetof(tg_plugin_task, credential_model) + sizeof task->credential_model
                          ? task->credential_model : NULL;
  const char *url = task->struct_size >= offsetof(tg_plugin_task, credential_base_url) + sizeof task->credential_base_url
                        ? task->credential_base_url : NULL;
  char text[512];
  int len = snprintf(text, sizeof text, "answered by %s at %s", model ? model : "(no model)", url ? url : "(no url)");
  if (len >= (int)sizeof text) len = (int)sizeof text - 1;
  return set_output(task, text, (size_t)len);
}

/* ---- the descriptor ------------------------------------------------------------------ */

static const uint8_t fail_first_args[] = {TG_TYPE_STRING, TG_TYPE_I32};
static const uint8_t sleep_args[] = {TG_TYPE_I64};
static const uint8_t echo_args[] = {TG_TYPE_STRING};
static const uint8_t http_args[] = {TG_TYPE_STRING, TG_TYPE_I32, TG_TYPE_I32, TG_TYPE_I64};
static const uint8_t api_args[] = {TG_TYPE_STRING};
static const uint8_t exclusive_args[] = {TG_TYPE_STRING, TG_TYPE_I64};

static const tg_plugin_processor processors[] = {
  {"fail_first", "flaky_fail_first", fail_first_args, 2, 0, NULL, NULL,
   "fail the first n calls with a key, then succeed (for retry tests)"},
  {"sleep_ms", "flaky_sleep_ms", sleep_args, 1, 0, NULL, NULL, "sleep ms milliseconds in 5 ms steps, honouring cancellation"},
  {"echo", "flaky_echo", echo_args, 1, 0, NULL, NULL, "output the string argument"},
  {"http", "flaky_http", http_args, 4, 0, NULL, NULL,
   "fail the first n calls with a key with an HTTP status (and retry-after), then succeed"},
  {"api", "flaky_api", api_args, 1, 0, NULL, NULL,
   "answer with the attempt's credential; a 429 for keys starting with a prefix"},
  {"exclusive", "flaky_exclusive", exclusive_args, 2, 0, NULL, NULL,
   "create a sentinel file with O_EXCL, sleep, remove it: fails if another holder is inside"},
};

TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
  TG_PLUGIN_DESCRIPTOR_HEAD,
  "flaky",
  "1.0.0",
  "Deliberately unreliable processors for testing retries and cancellation",
  processors,
  sizeof processors / sizeof processors[0],
  0,
  "flaky_init",
  "flaky_shutdown",
  NULL,
};
