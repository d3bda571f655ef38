/*
 * tap.h: the tiny harness of taskgate's C tests.
 *
 *   tap_init()              call first in main(): arms a 120 s watchdog so a
 *                           deadlock fails the program instead of hanging it.
 *   CHECK(cond, fmt, ...)   counts a check; a failing one is printed with
 *                           file:line, the condition and tg_last_error().
 *   CHECK_RC(expr, want)    CHECK for a tg_* return code; prints both codes
 *                           by name and the detail of the call that failed.
 *   tg_test_summary()       prints "N passed, M failed" alone on the last line
 *                           and returns the exit status (0: no failures).
 *
 * Checks may run on any thread (processors call CHECK too): the counters are
 * atomic and each failure is printed with one fprintf.
 *
 * Below the harness are small helpers the test programs share: atomics
 * (GCC builtins, as C99 has no <stdatomic.h>), clocks, sleeping, and waiting
 * for a flag with a deadline. They are `static inline` so a program that does
 * not use one gets no unused-function warning.
 *
 * Every program defines _POSIX_C_SOURCE 200809L before its first include.
 */
#ifndef TG_TAP_H
#define TG_TAP_H

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <taskgate.h>

/* ---- atomics --------------------------------------------------------------- */

static inline int at_load(const int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void at_store(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
/* Returns the new value. */
static inline int at_add(int *p, int v) { return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
static inline uint64_t at_add64(uint64_t *p, uint64_t v) {
  return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}
/* Raises *p to v if v is larger (a running maximum). */
static inline void at_max(int *p, int v) {
  int cur = __atomic_load_n(p, __ATOMIC_SEQ_CST);
  while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
  }
}

/* ---- the harness --------------------------------------------------------- */

static int tap_passed_;
static int tap_failed_;

static inline int tap_check_(int ok, const char *expr, const char *file, int line, const char *fmt, ...) {
  /* Read the detail first: nothing below may be allowed to change it. */
  const char *detail = tg_last_error();
  if (ok) {
    at_add(&tap_passed_, 1);
    return 1;
  }
  at_add(&tap_failed_, 1);
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "FAIL %s:%d: %s [%s] (tg_last_error: \"%s\")\n", file, line, msg, expr, detail);
  return 0;
}

#define CHECK(cond, ...) tap_check_((cond) ? 1 : 0, #cond, __FILE__, __LINE__, __VA_ARGS__)

static inline int tap_check_rc_(int got, int want, const char *expr, const char *file, int line) {
  char detail[512];
  snprintf(detail, sizeof detail, "%s", tg_last_error());
  if (got == want) {
    at_add(&tap_passed_, 1);
    return 1;
  }
  at_add(&tap_failed_, 1);
  fprintf(stderr, "FAIL %s:%d: %s returned %s (%d), expected %s (%d) (tg_last_error: \"%s\")\n", file, line,
          expr, tg_error_name(got), got, tg_error_name(want), want, detail);
  return 0;
}

/* Evaluates expr once; true when it returned want. */
#define CHECK_RC(expr, want) tap_check_rc_((expr), (want), #expr, __FILE__, __LINE__)

static inline int tap_failures(void) { return at_load(&tap_failed_); }

static inline int tg_test_summary(void) {
  fflush(stdout);
  fflush(stderr);
  printf("%d passed, %d failed\n", at_load(&tap_passed_), at_load(&tap_failed_));
  fflush(stdout);
  return at_load(&tap_failed_) == 0 ? 0 : 1;
}

static inline void tap_watchdog_(int sig) {
  static const char msg[] = "FATAL: watchdog: the test did not finish within 120 s (deadlock?)\n";
  (void)sig;
  /* Only async-signal-safe calls here. */
  if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
  }
  _exit(3);
}

static inline void tap_init(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = tap_watchdog_;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  alarm(120);
  setvbuf(stdout, NULL, _IOLBF, 0);
}

/* ---- clocks and waiting -------------------------------------------------- */

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_us(long us) {
  struct timespec ts;
  ts.tv_sec = us / 1000000;
  ts.tv_nsec = (us % 1000000) * 1000;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* Waits until *flag >= value or timeout_ms passes; true when it got there. */
/* A pool for a test, or the program ends with its summary (nothing to test
   without one). max_concurrency and flags as in tg_pool_options. */
static inline tg_pool *tap_pool(uint32_t workers, uint32_t max_concurrency, uint32_t flags) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = workers;
  o.max_concurrency = max_concurrency;
  o.flags = flags;
  tg_pool *pool = NULL;
  if (!CHECK_RC(tg_pool_create(&o, &pool), TG_OK) || !CHECK(pool != NULL, "pool handle")) {
    fprintf(stderr, "cannot continue without a pool\n");
    tg_test_summary();
    exit(1);
  }
  return pool;
}

static inline int wait_flag(const int *flag, int value, int64_t timeout_ms) {
  int64_t deadline = now_ns() + timeout_ms * 1000000;
  while (at_load(flag) < value) {
    if (now_ns() > deadline) return 0;
    sleep_us(200);
  }
  return 1;
}

/* The timeout every wait of the tests uses: long enough never to fire on a
   loaded machine, short enough that a hang fails before the watchdog. */
#define WAIT_MS 30000

#endif /* TG_TAP_H */
