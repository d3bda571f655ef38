/*
 * bench_common.h: failure reporting, timing and the RESULT line shared by
 * bench_taskgate.c and bench_policy.c, and the pool they run on. Include it after <taskgate.h>, with
 * BENCH_NAME (the program's name, for messages), N (tasks per measurement)
 * and MAX_REPS defined.
 */
#ifndef TASKGATE_BENCH_COMMON_H
#define TASKGATE_BENCH_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void die(const char *what, int rc) {
  fprintf(stderr, BENCH_NAME ": FAILED: %s: rc=%d %s (%s): %s\n", what, rc, tg_error_name(rc),
          tg_strerror(rc), tg_last_error());
  abort();
}

#define CHECK(call)                     \
  do {                                  \
    int rc_ = (call);                   \
    if (rc_ != TG_OK) die(#call, rc_);  \
  } while (0)

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, BENCH_NAME ": FAILED: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

/* Generous bound on every wait: a hang becomes a loud failure, not a stuck
   run. Override with TG_BENCH_TIMEOUT_MS. */
static int64_t wait_timeout_ms = 300000;

static tg_pool *new_pool(int workers) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = (uint32_t)workers;
  tg_pool *pool = NULL;
  CHECK(tg_pool_create(&o, &pool));
  return pool;
}

/* tg_pool_wait_all within wait_timeout_ms, or a report of how far it got. */
static void wait_all_or_die(tg_pool *pool) {
  int rc = tg_pool_wait_all(pool, wait_timeout_ms);
  if (rc != TG_OK) {
    tg_pool_stats st = TG_POOL_STATS_INIT;
    tg_pool_stats_get(pool, &st);
    fprintf(stderr, BENCH_NAME ": wait_all: submitted=%llu ended=%llu\n", (unsigned long long)st.submitted,
            (unsigned long long)st.ended);
    die("tg_pool_wait_all", rc);
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Prints one RESULT line: the median of the reps, as ns per task. */
static void report(const char *label, const double *secs_in, int reps, const char *note) {
  double secs[MAX_REPS];
  memcpy(secs, secs_in, (size_t)reps * sizeof *secs);
  qsort(secs, (size_t)reps, sizeof(double), cmp_double);
  double med = secs[reps / 2];
  printf("RESULT %s ns_per_op=%.3f ops_per_s=%.0f (median of %d reps, min %.1f max %.1f ns; "
         "fresh pool per rep; %s)\n",
         label, med / N * 1e9, N / med, reps, secs[0] / N * 1e9, secs[reps - 1] / N * 1e9, note);
  fflush(stdout);
}

#endif
