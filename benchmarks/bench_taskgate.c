/*
 * bench_taskgate.c: taskgate throughput and memory, in the RESULT format of
 * the baselines in ../shared/baselines (oneTBB, a plain pthread pool, Swift
 * Dispatch), so that benchmarks/run can put them side by side.
 *
 * usage: bench_taskgate WORKERS REPS
 *
 * Every throughput measurement uses N = 1,000,000 tasks and a fresh pool per
 * repetition. Pool creation, the task descriptors and their id strings are
 * prepared outside the timed region; the timed region is "submit everything
 * from this one thread" + tg_pool_wait_all(). After each repetition the pool's
 * stats and a sample of its results are checked, and any mismatch aborts.
 *
 *   taskgate_mem_queued_1e6          RSS growth per queued task (1 worker held
 *                                    busy by a gate task, 1e6 tasks with ids
 *                                    batch-submitted behind it). Runs first, so
 *                                    that no memory freed by earlier pools is
 *                                    reused and hides the cost.
 *   taskgate_single_1e6_empty_T<W>   1e6 empty tasks with ids, tg_pool_submit
 *   taskgate_batch_1e6_empty_T<W>    the same, tg_pool_submit_batch by 4096
 *   taskgate_anon_batch_1e6_empty_T<W> the same without ids
 *   taskgate_dag_1e6_T<W>            a root, then 999 rounds of (1000 tasks
 *                                    depending on the previous join, one join
 *                                    depending on those 1000): 1e6 tasks with
 *                                    ids, batch-submitted by 4096
 *
 * Build: gcc -std=c99 -O2 -pthread bench_taskgate.c $(pkg-config --cflags --libs taskgate)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <taskgate.h>

#define N 1000000L         /* tasks per measurement */
#ifndef BATCH
#define BATCH 4096L /* tg_pool_submit_batch chunk (-DBATCH=... to change) */
#endif
#define FANOUT 1000L       /* DAG: width of each fan-out layer */
#define MAX_REPS 64
#define BENCH_NAME "bench_taskgate"
#include "bench_common.h"

/* ---- helpers -------------------------------------------------------------- */

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

/* Resident set size of this process in bytes (second field of /proc/self/statm). */
static long rss_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &size, &resident) != 2) {
    fprintf(stderr, "bench_taskgate: cannot read /proc/self/statm\n");
    abort();
  }
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

/* ---- processors ----------------------------------------------------------- */

static int empty_task(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

/* The gate of the memory measurement: occupies the only worker until opened. */
static int gate_started, gate_open;
static int gate_task(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  __atomic_store_n(&gate_started, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&gate_open, __ATOMIC_ACQUIRE)) sleep_us(200);
  return TG_TASK_SUCCEEDED;
}

/* ---- prepared inputs (built once, outside every timed region) ------------- */

static char *id_text;       /* "t0\0t1\0...t999999\0" */
static const char **ids;    /* ids[i] -> "t<i>" */
static tg_task_desc *descs; /* N descriptors, refilled per variant */

static void prepare_ids(void) {
  id_text = malloc((size_t)N * 8); /* "t999999" + NUL = 8 bytes at most */
  ids = malloc((size_t)N * sizeof *ids);
  descs = malloc((size_t)N * sizeof *descs);
  if (!id_text || !ids || !descs) {
    fprintf(stderr, "bench_taskgate: out of memory preparing inputs\n");
    abort();
  }
  char *p = id_text;
  for (long i = 0; i < N; i++) {
    ids[i] = p;
    p += sprintf(p, "t%ld", i) + 1;
  }
}

/* N independent empty tasks, NORMAL priority; with ids or anonymous. */
static void fill_independent(int with_ids) {
  const tg_task_desc init = TG_TASK_DESC_INIT;
  for (long i = 0; i < N; i++) {
    descs[i] = init;
    descs[i].priority = TG_PRIORITY_NORMAL;
    descs[i].id = with_ids ? ids[i] : NULL;
    descs[i].fn = empty_task;
  }
}

/* N tasks with ids, priorities cycling HIGH, NORMAL, LOW, each declaring a
   write to one of 1000 paths ("out/d<k>/f<j>.txt", task i writes path i % 1000):
   1000 writers per path, which must never overlap. */
#define WRITE_PATHS 1000
static const char *write_paths[WRITE_PATHS];

static void fill_writes(void) {
  static char text[WRITE_PATHS][32];
  for (int j = 0; j < WRITE_PATHS; j++) {
    snprintf(text[j], sizeof text[j], "out/d%d/f%d.txt", j % 10, j);
    write_paths[j] = text[j];
  }
  fill_independent(1);
  for (long i = 0; i < N; i++) {
    descs[i].priority = (int)(i % 3) - 1;
    descs[i].writes = &write_paths[i % WRITE_PATHS];
    descs[i].n_writes = 1;
  }
}

/* The fan-out/fan-in DAG, in submission order:
     t0                        the root
     then per round r (999 rounds), starting at index b = 1 + r * 1001:
     t<b> .. t<b+999>          fan-out, each depending on the previous join
     t<b+1000>                 the join, depending on those 1000
   The previous join of round 0 is the root. 1 + 999 * 1001 = 1,000,000. */
#define DAG_ROUNDS ((N - 1) / (FANOUT + 1))
static long dag_join_index(long round) { return round < 0 ? 0 : 1 + round * (FANOUT + 1) + FANOUT; }

static void fill_dag(void) {
  fill_independent(1);
  for (long r = 0; r < DAG_ROUNDS; r++) {
    long prev_join = dag_join_index(r - 1), first = 1 + r * (FANOUT + 1);
    for (long k = 0; k < FANOUT; k++) {
      descs[first + k].deps = &ids[prev_join];
      descs[first + k].n_deps = 1;
    }
    /* the ids of the 1000 fan-out tasks are contiguous in ids[] */
    descs[first + FANOUT].deps = &ids[first];
    descs[first + FANOUT].n_deps = FANOUT;
  }
}

/* ---- verification (outside the timed region) ------------------------------ */

static void get_result(tg_pool *pool, uint64_t seq, tg_result *res) {
  const tg_result init = TG_RESULT_INIT;
  *res = init;
  CHECK(tg_pool_result_at(pool, seq, res));
}

/* The pool ran exactly n tasks, all succeeded; a sample of results carries the
   right seq, id (or none), status, attempt count and worker index. */
static void verify(tg_pool *pool, long n, int with_ids, int workers, const char *label) {
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK(tg_pool_stats_get(pool, &st));
  if (st.submitted != (uint64_t)n || st.ended != (uint64_t)n || st.succeeded != (uint64_t)n ||
      st.failed || st.timed_out || st.cancelled || st.skipped) {
    fprintf(stderr,
            "bench_taskgate: FAILED: %s: stats submitted=%llu ended=%llu succeeded=%llu failed=%llu "
            "timed_out=%llu cancelled=%llu skipped=%llu, expected %ld succeeded\n",
            label, (unsigned long long)st.submitted, (unsigned long long)st.ended,
            (unsigned long long)st.succeeded, (unsigned long long)st.failed,
            (unsigned long long)st.timed_out, (unsigned long long)st.cancelled,
            (unsigned long long)st.skipped, n);
    abort();
  }
  uint64_t x = 88172645463325252ull; /* xorshift: a fixed pseudo-random sample */
  for (int s = 0; s < 64; s++) {
    long seq;
    if (s == 0) seq = 0;
    else if (s == 1) seq = n - 1;
    else if (s == 2) seq = n / 2;
    else {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      seq = (long)(x % (uint64_t)n);
    }
    tg_result r;
    get_result(pool, (uint64_t)seq, &r);
    if (r.status != TG_STATUS_SUCCEEDED) fail("%s: seq %ld has status %s", label, seq, tg_status_name(r.status));
    if (r.seq != (uint64_t)seq) fail("%s: result_at(%ld) returned seq %ld", label, seq, (long)r.seq);
    if (with_ids ? (!r.id || strcmp(r.id, ids[seq]) != 0) : r.id != NULL)
      fail("%s: seq %ld has id %s, expected %s", label, seq, r.id ? r.id : "(null)", with_ids ? ids[seq] : "(null)");
    if (r.attempts != 1) fail("%s: seq %ld ran %ld times", label, seq, (long)r.attempts);
    if (r.worker < 0 || r.worker >= workers) fail("%s: seq %ld ran on worker %d", label, seq, (int)r.worker);
  }
  if (with_ids) { /* lookup by id agrees with lookup by seq */
    tg_result r = TG_RESULT_INIT;
    CHECK(tg_pool_result(pool, ids[n / 3], &r));
    if (r.seq != (uint64_t)(n / 3) || r.status != TG_STATUS_SUCCEEDED)
      fail("%s: result('%s') gave seq %ld", label, ids[n / 3], (long)r.seq);
  }
}

/* DAG ordering, on a few whole rounds: every task started no earlier than each
   of its dependencies ended. */
static void verify_dag_order(tg_pool *pool, const char *label) {
  const long rounds[] = {0, 1, DAG_ROUNDS / 2, DAG_ROUNDS - 1};
  for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
    long r = rounds[i], prev_join = dag_join_index(r - 1), first = 1 + r * (FANOUT + 1);
    tg_result pj, t, join;
    get_result(pool, (uint64_t)prev_join, &pj);
    get_result(pool, (uint64_t)(first + FANOUT), &join);
    for (long k = 0; k < FANOUT; k++) {
      get_result(pool, (uint64_t)(first + k), &t);
      if (t.start_ns < pj.end_ns)
        fail("%s: '%s' started before its dependency ended (round %ld)", label, ids[first + k], r);
      if (join.start_ns < t.end_ns)
        fail("%s: join '%s' started before a dependency ended (round %ld)", label, ids[first + FANOUT], r);
    }
  }
}

/* ---- measurements --------------------------------------------------------- */

enum mode { SINGLE, BATCH_SUBMIT };

/* Submits descs[0..N) (one by one or by BATCH) and waits: the timed region. */
static double run_once(tg_pool *pool, enum mode mode) {
  double t0 = now_s();
  if (mode == SINGLE) {
    for (long i = 0; i < N; i++) CHECK(tg_pool_submit(pool, &descs[i], NULL));
  } else {
    for (long i = 0; i < N; i += BATCH) {
      long c = N - i < BATCH ? N - i : BATCH;
      CHECK(tg_pool_submit_batch(pool, &descs[i], (size_t)c, NULL));
    }
  }
  wait_all_or_die(pool);
  return now_s() - t0;
}

static void measure(const char *name, int workers, int reps, enum mode mode, int with_ids, int dag,
                    const char *note) {
  char label[128];
  double secs[MAX_REPS];
  snprintf(label, sizeof label, "%s_T%d", name, workers);
  for (int r = 0; r < reps; r++) {
    tg_pool *pool = new_pool(workers);
    secs[r] = run_once(pool, mode);
    verify(pool, N, with_ids, workers, label);
    if (dag) verify_dag_order(pool, label);
    CHECK(tg_pool_destroy(pool));
  }
  report(label, secs, reps, note);
}

/* Engine memory per queued task: RSS growth while 1e6 ready tasks with ids
   wait behind a gate task occupying the only worker. The descriptors and ids
   are allocated and touched before the "before" reading, so they are not
   counted. Also reports what stays resident once they have all run (results
   are kept until tg_pool_destroy). */
static void measure_memory(void) {
  tg_pool *pool = new_pool(1);
  tg_task_desc gate = TG_TASK_DESC_INIT;
  gate.id = "gate";
  gate.fn = gate_task;
  CHECK(tg_pool_submit(pool, &gate, NULL));
  while (!__atomic_load_n(&gate_started, __ATOMIC_ACQUIRE)) sleep_us(100);

  long before = rss_bytes();
  for (long i = 0; i < N; i += BATCH) {
    long c = N - i < BATCH ? N - i : BATCH;
    CHECK(tg_pool_submit_batch(pool, &descs[i], (size_t)c, NULL));
  }
  long queued = rss_bytes();

  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK(tg_pool_stats_get(pool, &st));
  if (st.ended != 0) fail("mem: %llu tasks ended while the gate was closed", (unsigned long long)st.ended);

  __atomic_store_n(&gate_open, 1, __ATOMIC_RELEASE);
  CHECK(tg_pool_wait_all(pool, wait_timeout_ms));
  long done = rss_bytes();
  CHECK(tg_pool_stats_get(pool, &st));
  if (st.succeeded != (uint64_t)N + 1) fail("mem: %llu of %ld tasks succeeded", (unsigned long long)st.succeeded, N + 1);
  CHECK(tg_pool_destroy(pool));
  long freed = rss_bytes();

  printf("RESULT taskgate_mem_queued_1e6 bytes_per_task=%.1f (RSS growth over 1e6 queued tasks with "
         "ids, 1 worker held by a gate task: %.1f MiB; caller's descriptors allocated before; "
         "after all ran, results retained: %.1f bytes/task; after destroy: %.1f bytes/task)\n",
         (double)(queued - before) / N, (double)(queued - before) / (1 << 20),
         (double)(done - before) / N, (double)(freed - before) / N);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s WORKERS REPS\n", argv[0]);
    return 2;
  }
  int workers = atoi(argv[1]), reps = atoi(argv[2]);
  if (workers < 1 || workers > 1024 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "bench_taskgate: WORKERS in 1..1024, REPS in 1..%d\n", MAX_REPS);
    return 2;
  }
  const char *t = getenv("TG_BENCH_TIMEOUT_MS");
  if (t && *t) wait_timeout_ms = atoll(t);
  if (tg_version() / 10000 != TG_VERSION_MAJOR || tg_version() % 10000 / 100 < TG_VERSION_MINOR) {
    fprintf(stderr, "bench_taskgate: header %s, library %s: mismatch\n", TG_VERSION_STRING,
            tg_version_string());
    return 1;
  }

  prepare_ids();
  fill_independent(1); /* also touches every descriptor page before the memory reading */
  /* TG_BENCH_ONLY=mem|single|batch|anon|writes|dag runs one part (benchmarks/run
     runs each in a process of its own, so one part's freed memory does not
     tax the next one's huge pages; also handy for profiling). */
  const char *only = getenv("TG_BENCH_ONLY");
  if (!only || strcmp(only, "mem") == 0) measure_memory();

  /* warm-up: one small pool, so the first measured rep does not pay for
     first-use costs (lazy symbol binding, thread stacks, allocator arenas) */
  {
    tg_pool *pool = new_pool(workers);
    for (long i = 0; i < 1000; i++) {
      tg_task_desc d = TG_TASK_DESC_INIT;
      d.fn = empty_task;
      CHECK(tg_pool_submit(pool, &d, NULL));
    }
    CHECK(tg_pool_wait_all(pool, wait_timeout_ms));
    CHECK(tg_pool_destroy(pool));
  }

  char note_batch[96], note_anon[96], note_dag[128];
  snprintf(note_batch, sizeof note_batch, "ids, tg_pool_submit_batch by %ld", BATCH);
  snprintf(note_anon, sizeof note_anon, "anonymous, tg_pool_submit_batch by %ld", BATCH);
  snprintf(note_dag, sizeof note_dag, "root + %ld x (%ld-wide fan-out + join), ids, tg_pool_submit_batch by %ld",
           (long)DAG_ROUNDS, FANOUT, BATCH);

#define WANT(name) (!only || strcmp(only, name) == 0)
  if (WANT("single") || WANT("batch")) fill_independent(1);
  if (WANT("single")) measure("taskgate_single_1e6_empty", workers, reps, SINGLE, 1, 0, "ids, tg_pool_submit one by one");
  if (WANT("batch")) measure("taskgate_batch_1e6_empty", workers, reps, BATCH_SUBMIT, 1, 0, note_batch);
  if (WANT("anon")) {
    fill_independent(0);
    measure("taskgate_anon_batch_1e6_empty", workers, reps, BATCH_SUBMIT, 0, 0, note_anon);
  }
  if (WANT("writes")) {
    fill_writes();
    measure("taskgate_writes_1e6", workers, reps, BATCH_SUBMIT, 1, 0,
            "ids, 3 priorities, each writes 1 of 1000 paths, tg_pool_submit_batch by 4096");
  }
  if (WANT("dag")) {
    fill_dag();
    measure("taskgate_dag_1e6", workers, reps, BATCH_SUBMIT, 1, 1, note_dag);
  }
#undef WANT
  return 0;
}
