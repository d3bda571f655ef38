/*
 * bench_policy.c: what a resilience policy (since 0.4) adds to a task that
 * SUCCEEDS at once, against the same task with no policy, in one run, in the
 * RESULT format of bench_taskgate.c (benchmarks/run tabulates both).
 *
 * usage: bench_policy WORKERS REPS
 *
 * Each measurement is N = 1,000,000 empty anonymous tasks (the processor
 * returns TG_TASK_SUCCEEDED at once), submitted with tg_pool_submit_batch by
 * 4096 from this one thread, then tg_pool_wait_all(): that is the timed
 * region. A fresh pool per repetition; the pool, its policy and the N
 * descriptors are made before the clock starts. Variants (one RESULT line
 * each, ns_per_op = median over the reps):
 *
 *   taskgate_policy_none_T<W>          no policy, key NULL (the bare task)
 *   taskgate_policy_retry_T<W>         retry only, TG_RETRY_OPTIONS_INIT
 *                                      (3 attempts, no budget)
 *   taskgate_policy_retry_budget_T<W>  retry + budget (ratio 0.2, window
 *                                      10000 ms, at least 10 retries/s)
 *   taskgate_policy_breaker_T<W>       breaker only, TG_BREAKER_OPTIONS_INIT
 *   taskgate_policy_limit_T<W>         limit only: max_concurrent 2*W (never
 *                                      reached: W workers), 1e12 requests/min
 *                                      (the bucket never runs dry)
 *   taskgate_policy_full_T<W>          retry + budget + breaker + limit, as above
 *   taskgate_policy_full_pool_T<W>     the same policy as the pool's default,
 *                                      tg_pool_set_policy(pool, NULL, p), with
 *                                      desc.policy NULL
 * Every policy task carries key "api" (one breaker and one limiter for all
 * tasks: the contended case); bare tasks carry key NULL.
 *
 * Repetitions run outside, variants inside (rotated by one each rep), so the
 * machine's noise falls on all variants alike. After each rep the stats must
 * show N succeeded and none rejected, and a strided sample of results must
 * show one attempt and, for the limit, no task that waited (TG_RESULT_LIMITED);
 * anything else aborts. After the RESULT lines, one ADDED line per policy
 * variant: median(variant) - median(none) in ns per task, and the median of
 * the per-rep paired differences (variant - none of the same rep).
 *
 * Build: gcc -std=c99 -O2 -Wall -Wextra -pthread bench_policy.c $(pkg-config --cflags --libs taskgate)
 * Run:   bench_policy 2 7     (or via benchmarks/run)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskgate.h>

#define N 1000000L  /* tasks per measurement */
#define BATCH 4096L /* tg_pool_submit_batch chunk */
#define MAX_REPS 64
#define KEY "api"   /* the key of every policy task */
#define BENCH_NAME "bench_policy"
#include "bench_common.h"

/* ---- helpers -------------------------------------------------------------- */

static double median(const double *v, int n) {
  double s[MAX_REPS];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  return s[n / 2];
}

/* ---- the processor -------------------------------------------------------- */

static int empty_task(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

/* ---- variants ------------------------------------------------------------- */

enum attach { NONE, PER_TASK, POOL_DEFAULT };

typedef struct variant {
  const char *name;
  enum attach attach;
  int retry, budget, breaker, limit; /* which parts the policy has */
  const char *note;
} variant;

static const variant variants[] = {
    {"taskgate_policy_none", NONE, 0, 0, 0, 0, "no policy, key NULL"},
    {"taskgate_policy_retry", PER_TASK, 1, 0, 0, 0, "desc.policy: retry (TG_RETRY_OPTIONS_INIT), key \"api\""},
    {"taskgate_policy_retry_budget", PER_TASK, 1, 1, 0, 0,
     "desc.policy: retry + budget 0.2/10 s/10 per s, key \"api\""},
    {"taskgate_policy_breaker", PER_TASK, 0, 0, 1, 0, "desc.policy: breaker (TG_BREAKER_OPTIONS_INIT), key \"api\""},
    {"taskgate_policy_limit", PER_TASK, 0, 0, 0, 1,
     "desc.policy: limit 2*W concurrent, 1e12/min, key \"api\""},
    {"taskgate_policy_full", PER_TASK, 1, 1, 1, 1,
     "desc.policy: retry + budget + breaker + limit, key \"api\""},
    {"taskgate_policy_full_pool", POOL_DEFAULT, 1, 1, 1, 1,
     "tg_pool_set_policy(pool, NULL, full), desc.policy NULL, key \"api\""},
};
#define NV ((int)(sizeof variants / sizeof variants[0]))

static tg_task_desc *descs; /* N descriptors, refilled per (rep, variant) */

/* Makes the variant's policy in the pool (NULL for NONE). */
static tg_policy *make_policy(tg_pool *pool, const variant *v, int workers) {
  if (v->attach == NONE) return NULL;
  tg_retry_options retry = TG_RETRY_OPTIONS_INIT;
  if (v->budget) {
    retry.budget_ratio = 0.2;
    retry.budget_window_ms = 10000;
    retry.budget_min_per_second = 10.0;
  }
  tg_breaker_options breaker = TG_BREAKER_OPTIONS_INIT;
  tg_limit_options limit = TG_LIMIT_OPTIONS_INIT;
  limit.max_concurrent = 2u * (uint32_t)workers; /* W workers: never reached */
  limit.requests_per_minute = 1e12;              /* the largest allowed; bucket = 1e12 */
  tg_policy_options po = TG_POLICY_OPTIONS_INIT;
  po.retry = v->retry ? &retry : NULL;
  po.breaker = v->breaker ? &breaker : NULL;
  po.limit = v->limit ? &limit : NULL;
  po.seed = 1;
  tg_policy *p = NULL;
  CHECK(tg_policy_create(pool, &po, &p));
  if (v->attach == POOL_DEFAULT) CHECK(tg_pool_set_policy(pool, NULL, p));
  return p;
}

/* N anonymous empty tasks; desc.policy and key as the variant says. */
static void fill(const variant *v, const tg_policy *p) {
  const tg_task_desc init = TG_TASK_DESC_INIT;
  for (long i = 0; i < N; i++) {
    descs[i] = init;
    descs[i].fn = empty_task;
    descs[i].policy = v->attach == PER_TASK ? p : NULL;
    descs[i].key = v->attach == NONE ? NULL : KEY;
  }
}

/* Submits descs[0..N) by BATCH and waits: the timed region. */
static double run_once(tg_pool *pool) {
  double t0 = now_s();
  for (long i = 0; i < N; i += BATCH) {
    long c = N - i < BATCH ? N - i : BATCH;
    CHECK(tg_pool_submit_batch(pool, &descs[i], (size_t)c, NULL));
  }
  wait_all_or_die(pool);
  return now_s() - t0;
}

/* All N succeeded, none rejected; every 61st result (and the last) ran once,
   succeeded, on a valid worker, and never waited for a limit. */
static void verify(tg_pool *pool, int workers, const char *label) {
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK(tg_pool_stats_get(pool, &st));
  if (st.submitted != (uint64_t)N || st.ended != (uint64_t)N || st.succeeded != (uint64_t)N ||
      st.rejected != 0 || st.failed || st.timed_out || st.cancelled || st.skipped)
    fail("%s: stats submitted=%llu ended=%llu succeeded=%llu rejected=%llu failed=%llu timed_out=%llu "
         "cancelled=%llu skipped=%llu, expected %ld succeeded",
         label, (unsigned long long)st.submitted, (unsigned long long)st.ended,
         (unsigned long long)st.succeeded, (unsigned long long)st.rejected, (unsigned long long)st.failed,
         (unsigned long long)st.timed_out, (unsigned long long)st.cancelled, (unsigned long long)st.skipped,
         N);
  for (long seq = 0; seq < N + 61; seq += 61) {
    long q = seq < N ? seq : N - 1; /* the last pass checks the last task */
    tg_result r = TG_RESULT_INIT;
    CHECK(tg_pool_result_at(pool, (uint64_t)q, &r));
    if (r.status != TG_STATUS_SUCCEEDED) fail("%s: seq %ld has status %s", label, q, tg_status_name(r.status));
    if (r.attempts != 1) fail("%s: seq %ld ran %ld times", label, q, (long)r.attempts);
    if (r.worker < 0 || r.worker >= workers) fail("%s: seq %ld ran on worker %d", label, q, (int)r.worker);
    if (r.flags != 0) fail("%s: seq %ld has result flags 0x%x (limited/breaker/...)", label, q, (unsigned)r.flags);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s WORKERS REPS\n", argv[0]);
    return 2;
  }
  int workers = atoi(argv[1]), reps = atoi(argv[2]);
  if (workers < 1 || workers > 1024 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "bench_policy: WORKERS in 1..1024, REPS in 1..%d\n", MAX_REPS);
    return 2;
  }
  const char *t = getenv("TG_BENCH_TIMEOUT_MS");
  if (t && *t) wait_timeout_ms = atoll(t);
  if (tg_version() / 10000 != TG_VERSION_MAJOR || tg_version() % 10000 / 100 < TG_VERSION_MINOR) {
    fprintf(stderr, "bench_policy: header %s, library %s: mismatch\n", TG_VERSION_STRING, tg_version_string());
    return 1;
  }

  descs = malloc((size_t)N * sizeof *descs);
  if (!descs) {
    fprintf(stderr, "bench_policy: out of memory preparing inputs\n");
    abort();
  }

  /* warm-up: one small pool per variant, so the first measured rep does not
     pay for first-use costs (lazy binding, thread stacks, allocator arenas) */
  for (int k = 0; k < NV; k++) {
    tg_pool *pool = new_pool(workers);
    tg_policy *p = make_policy(pool, &variants[k], workers);
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = empty_task;
    d.policy = variants[k].attach == PER_TASK ? p : NULL;
    d.key = variants[k].attach == NONE ? NULL : KEY;
    for (long i = 0; i < 1000; i++) CHECK(tg_pool_submit(pool, &d, NULL));
    CHECK(tg_pool_wait_all(pool, wait_timeout_ms));
    CHECK(tg_pool_destroy(pool));
  }

  static double secs[NV][MAX_REPS];
  char label[NV][128];
  for (int k = 0; k < NV; k++) snprintf(label[k], sizeof label[k], "%s_T%d", variants[k].name, workers);

  for (int r = 0; r < reps; r++) {
    for (int j = 0; j < NV; j++) {
      int k = (j + r) % NV; /* rotate the order each rep */
      tg_pool *pool = new_pool(workers);
      tg_policy *p = make_policy(pool, &variants[k], workers);
      fill(&variants[k], p);
      secs[k][r] = run_once(pool);
      verify(pool, workers, label[k]);
      CHECK(tg_pool_destroy(pool));
    }
  }

  char note[192];
  for (int k = 0; k < NV; k++) {
    snprintf(note, sizeof note, "anonymous, tg_pool_submit_batch by %ld, %s", BATCH, variants[k].note);
    report(label[k], secs[k], reps, note);
  }

  /* what each policy adds, in ns per task, against the bare tasks of this run */
  double none = median(secs[0], reps) / N * 1e9;
  for (int k = 1; k < NV; k++) {
    double v = median(secs[k], reps) / N * 1e9, diff[MAX_REPS];
    for (int r = 0; r < reps; r++) diff[r] = (secs[k][r] - secs[0][r]) / N * 1e9;
    double pmed = median(diff, reps);
    qsort(diff, (size_t)reps, sizeof(double), cmp_double);
    printf("ADDED %s added_ns_per_task=%+.1f x_none=%.2f (median %.1f - none %.1f; paired per-rep "
           "difference: median %+.1f, min %+.1f, max %+.1f)\n",
           label[k], v - none, v / none, v, none, pmed, diff[0], diff[reps - 1]);
  }
  fflush(stdout);
  free(descs);
  return 0;
}
