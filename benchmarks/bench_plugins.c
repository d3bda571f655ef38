/*
 * bench_plugins.c: what a plugin task costs against a C-callback task doing
 * the same work, end to end (submit, run, wait), and what loading a plugin
 * costs. RESULT lines as the baselines print them (medians of REPS).
 *
 *   bench_plugins W REPS DIR   DIR holds libbenchwork.so and copies/benchwork_K.so
 *
 *   plugin_tasks_c_callback_T<W>  1e5 anonymous tasks, fn = a C function reading
 *                                 (i64, double, string) from its user pointer
 *   plugin_tasks_plugin_T<W>      1e5 anonymous tasks naming benchwork.sum3 with
 *                                 the same three values as typed arguments
 *                                 (checked and copied at submission, then
 *                                 called through libffi)
 *   plugin_load_unload            tg_plugin_load + tg_plugin_unload of a file
 *                                 never loaded before (dlopen, descriptor
 *                                 checks, symbol lookups, ffi_prep_cif_var)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskgate.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static void report(const char *name, double *v, int reps, long n) {
  qsort(v, (size_t)reps, sizeof(double), cmp);
  printf("RESULT %s ns_per_op=%.1f ops_per_s=%.0f (median of %d reps, min %.1f max %.1f ns)\n", name,
         v[reps / 2] / (double)n * 1e9, (double)n / v[reps / 2], reps, v[0] / (double)n * 1e9,
         v[reps - 1] / (double)n * 1e9);
  fflush(stdout);
}

struct args3 {
  int64_t a;
  double b;
  const char *s;
};
static __thread double sink;
static int c_sum3(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  const struct args3 *x = user;
  sink += (double)x->a + x->b + x->s[0];
  return TG_TASK_SUCCEEDED;
}

#define N 100000
static tg_task_desc descs[N];

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_plugins: %s: %s (%s)\n", what, tg_strerror(rc), tg_last_error());
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_plugins W REPS DIR\n");
    return 2;
  }
  unsigned workers = (unsigned)atoi(argv[1]);
  int reps = atoi(argv[2]);
  const char *dir = argv[3];
  if (reps < 1 || reps > 64) reps = 5;
  char path[4096];
  snprintf(path, sizeof path, "%s/libbenchwork.so", dir);
  static struct args3 cargs = {42, 0.5, "x"};
  tg_value pargs[3];
  pargs[0] = tg_value_i64(TG_TYPE_I64, 42);
  pargs[1] = tg_value_double(0.5);
  pargs[2] = tg_value_string("x");
  double tc[64], tp[64];
  for (int r = 0; r < reps; r++) {
    for (int kind = 0; kind < 2; kind++) {
      /* BENCH_ONLY=c|plugin runs one kind (for profiling) */
      const char *only = getenv("BENCH_ONLY");
      if (only && strcmp(only, kind == 0 ? "c" : "plugin") != 0) { (kind == 0 ? tc : tp)[r] = 1; continue; }
      tg_pool_options o = TG_POOL_OPTIONS_INIT;
      o.workers = workers;
      tg_pool *pool;
      int rc = tg_pool_create(&o, &pool);
      if (rc) die("tg_pool_create", rc);
      tg_plugin *pl;
      if ((rc = tg_plugin_load(pool, path, &pl))) die(path, rc);
      const tg_processor *q;
      if ((rc = tg_pool_find_processor(pool, "benchwork.sum3", &q))) die("find", rc);
      for (int k = 0; k < N; k++) {
        tg_task_desc d = TG_TASK_DESC_INIT;
        if (kind == 0) {
          d.fn = c_sum3;
          d.user = &cargs;
        } else {
          d.processor = q;
          d.args = pargs;
          d.n_args = 3;
        }
        descs[k] = d;
      }
      double t0 = now();
      if ((rc = tg_pool_submit_batch(pool, descs, N, NULL))) die("submit", rc);
      if ((rc = tg_pool_wait_all(pool, -1))) die("wait", rc);
      double t = now() - t0;
      tg_pool_stats st = TG_POOL_STATS_INIT;
      tg_pool_stats_get(pool, &st);
      if (st.succeeded != N) { fprintf(stderr, "bench_plugins: %llu of %d succeeded\n", (unsigned long long)st.succeeded, N); return 1; }
      (kind == 0 ? tc : tp)[r] = t;
      if ((rc = tg_plugin_unload(pool, pl))) die("unload", rc);
      tg_pool_destroy(pool);
    }
  }
  char name[128];
  snprintf(name, sizeof name, "plugin_tasks_c_callback_T%u", workers);
  report(name, tc, reps, N);
  snprintf(name, sizeof name, "plugin_tasks_plugin_T%u", workers);
  report(name, tp, reps, N);

  /* Loading: each rep loads 50 distinct never-loaded copies. */
  double tl[64];
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  tg_pool *pool;
  int rc = tg_pool_create(&o, &pool);
  if (rc) die("tg_pool_create", rc);
  int copy = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int k = 0; k < 50; k++, copy++) {
      snprintf(path, sizeof path, "%s/copies/benchwork_%d.so", dir, copy);
      tg_plugin *pl;
      if ((rc = tg_plugin_load(pool, path, &pl))) die(path, rc);
      if ((rc = tg_plugin_unload(pool, pl))) die("unload", rc);
    }
    tl[r] = now() - t0;
  }
  report("plugin_load_unload", tl, reps, 50);
  tg_pool_destroy(pool);
  return (int)(sink < 0);
}
