/*
 * test_stress.c: 100,000 tasks on 2 workers, with random priorities, random
 * dependencies on earlier tasks (0-3 parents) and random declared writes and
 * reads from a pool of 50 paths, submitted in batches of 1000.
 *
 * Every processor records, atomically, its run count, its start and end
 * CLOCK_MONOTONIC timestamps and start and end numbers from a global event
 * counter, and keeps per-path in-flight counters of writers and readers.
 * Afterwards:
 *   - every task succeeded and ran exactly once, under its own id;
 *   - every parent ended before each of its children started (the pool's
 *     end_ns/start_ns and our own event numbers);
 *   - no two writers of a path overlapped, nor a reader and a writer (the
 *     in-flight counters, and the recorded intervals of each path, sorted);
 *   - the completion order returns every task exactly once.
 *
 * The graph is random; TG_STRESS_SEED=<n> in the environment replays a seed
 * (the seed is printed).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>

#include "tap.h"

enum { N = 100000, BATCH = 1000, PATHS = 50, WORKERS = 2, MAX_PARENTS = 3, MAX_WRITES = 2, MAX_READS = 1 };

typedef struct rec {
  int runs;
  int64_t start_ns, end_ns;
  uint64_t start_ev, end_ev;
} rec_t;

static rec_t recs[N];
static char ids[N][8];
static int parents[N][MAX_PARENTS];
static int n_parents[N];
static int writes[N][MAX_WRITES];
static int n_writes[N];
static int reads[N][MAX_READS];
static int n_reads[N];
static char path_names[PATHS][16];

/* Pointer lists handed to the pool (copied by it during submission). */
static const char *dep_ptrs[N][MAX_PARENTS];
static const char *write_ptrs[N][MAX_WRITES];
static const char *read_ptrs[N][MAX_READS];

static int writers_in_flight[PATHS], readers_in_flight[PATHS];
static int ww_overlaps, rw_overlaps, wrong_ids;
static uint64_t events;

static int stress_fn(tg_task_ctx *ctx, void *user) {
  int i = (int)(intptr_t)user;
  rec_t *r = &recs[i];
  const char *id = tg_task_id(ctx);
  if (!id || strcmp(id, ids[i]) != 0) at_add(&wrong_ids, 1);
  /* Claim our paths in the in-flight counters; any overlap the pool should
     have prevented shows up as a count above the limit. */
  for (int k = 0; k < n_writes[i]; k++) {
    int p = writes[i][k];
    if (at_add(&writers_in_flight[p], 1) > 1) at_add(&ww_overlaps, 1);
    if (at_load(&readers_in_flight[p]) > 0) at_add(&rw_overlaps, 1);
  }
  for (int k = 0; k < n_reads[i]; k++) {
    int p = reads[i][k];
    at_add(&readers_in_flight[p], 1);
    if (at_load(&writers_in_flight[p]) > 0) at_add(&rw_overlaps, 1);
  }
  r->start_ns = now_ns();
  r->start_ev = at_add64(&events, 1);
  at_add(&r->runs, 1);
  volatile unsigned work = 0; /* a little work, so intervals have width */
  for (unsigned k = 0; k < 200; k++) work += k;
  r->end_ev = at_add64(&events, 1);
  r->end_ns = now_ns();
  for (int k = 0; k < n_writes[i]; k++) at_add(&writers_in_flight[writes[i][k]], -1);
  for (int k = 0; k < n_reads[i]; k++) at_add(&readers_in_flight[reads[i][k]], -1);
  return TG_TASK_SUCCEEDED;
}

/* xorshift64*: a small deterministic generator. */
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}
static int rnd_below(int n) { return (int)(rnd() % (uint64_t)n); }

static int has(const int *list, int n, int v) {
  for (int k = 0; k < n; k++)
    if (list[k] == v) return 1;
  return 0;
}

static void make_graph(void) {
  for (int p = 0; p < PATHS; p++) snprintf(path_names[p], sizeof path_names[p], "stress/p%02d", p);
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "s%d", i);
    /* Parents: mostly recent tasks (dense constraints), sometimes any. */
    int want = i ? rnd_below(MAX_PARENTS + 1) : 0;
    n_parents[i] = 0;
    for (int k = 0; k < want; k++) {
      int window = rnd_below(4) ? (i < 2000 ? i : 2000) : i;
      int p = i - 1 - rnd_below(window);
      if (!has(parents[i], n_parents[i], p)) parents[i][n_parents[i]++] = p;
    }
    /* Writes: none (40%), one (40%) or two (20%); a read (30%) of another path. */
    int roll = rnd_below(10);
    int nw = roll < 4 ? 0 : roll < 8 ? 1 : 2;
    n_writes[i] = 0;
    for (int k = 0; k < nw; k++) {
      int p = rnd_below(PATHS);
      if (!has(writes[i], n_writes[i], p)) writes[i][n_writes[i]++] = p;
    }
    n_reads[i] = 0;
    if (rnd_below(10) < 3) {
      int p = rnd_below(PATHS);
      if (!has(writes[i], n_writes[i], p)) reads[i][n_reads[i]++] = p;
    }
  }
}

/* One use of a path: [start, end] by event numbers and by clock. */
typedef struct interval {
  uint64_t start_ev, end_ev;
  int64_t start_ns, end_ns;
  int task;
} interval_t;

static int by_start(const void *a, const void *b) {
  const interval_t *x = (const interval_t *)a, *y = (const interval_t *)b;
  return x->start_ev < y->start_ev ? -1 : x->start_ev > y->start_ev;
}

static interval_t *path_writers[PATHS], *path_readers[PATHS];
static int n_path_writers[PATHS], n_path_readers[PATHS];

/* Checks the recorded intervals of every path; returns the number of
   violations and prints the first few. */
static int check_intervals(long *n_writer_intervals, long *n_reader_intervals) {
  int bad = 0;
  for (int p = 0; p < PATHS; p++) {
    path_writers[p] = (interval_t *)malloc(sizeof(interval_t) * N);
    path_readers[p] = (interval_t *)malloc(sizeof(interval_t) * N);
    n_path_writers[p] = n_path_readers[p] = 0;
  }
  for (int i = 0; i < N; i++) {
    interval_t iv = {recs[i].start_ev, recs[i].end_ev, recs[i].start_ns, recs[i].end_ns, i};
    for (int k = 0; k < n_writes[i]; k++) path_writers[writes[i][k]][n_path_writers[writes[i][k]]++] = iv;
    for (int k = 0; k < n_reads[i]; k++) path_readers[reads[i][k]][n_path_readers[reads[i][k]]++] = iv;
  }
  *n_writer_intervals = *n_reader_intervals = 0;
  for (int p = 0; p < PATHS; p++) {
    interval_t *w = path_writers[p];
    int nw = n_path_writers[p];
    *n_writer_intervals += nw;
    *n_reader_intervals += n_path_readers[p];
    qsort(w, (size_t)nw, sizeof *w, by_start);
    /* Writers: each starts after the one before it ended. */
    for (int k = 1; k < nw; k++) {
      if (!(w[k - 1].end_ev < w[k].start_ev && w[k - 1].end_ns <= w[k].start_ns)) {
        if (bad++ < 5)
          fprintf(stderr, "  path %s: writers %s and %s overlap\n", path_names[p], ids[w[k - 1].task],
                  ids[w[k].task]);
      }
    }
    /* Readers: between two consecutive writers. Find the first writer that
       starts after the reader started; the one before it must have ended
       before the reader started, and that one must start after the reader
       ended. */
    for (int k = 0; k < n_path_readers[p]; k++) {
      interval_t r = path_readers[p][k];
      int lo = 0, hi = nw;
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (w[mid].start_ev < r.start_ev)
          lo = mid + 1;
        else
          hi = mid;
      }
      int before_ok = lo == 0 || (w[lo - 1].end_ev < r.start_ev && w[lo - 1].end_ns <= r.start_ns);
      int after_ok = lo == nw || (r.end_ev < w[lo].start_ev && r.end_ns <= w[lo].start_ns);
      if (!before_ok || !after_ok) {
        if (bad++ < 5) fprintf(stderr, "  path %s: reader %s overlaps a writer\n", path_names[p], ids[r.task]);
      }
    }
  }
  for (int p = 0; p < PATHS; p++) {
    free(path_writers[p]);
    free(path_readers[p]);
  }
  return bad;
}

static int64_t result_start[N], result_end[N];

int main(void) {
  tap_init();
  const char *seed_env = getenv("TG_STRESS_SEED");
  uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)now_ns();
  rng_state = seed ? seed : 1;
  make_graph();

  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = WORKERS;
  tg_pool *pool = NULL;
  if (!CHECK_RC(tg_pool_create(&o, &pool), TG_OK)) return tg_test_summary();

  int64_t t0 = now_ns();
  static tg_task_desc batch[BATCH];
  int refused = 0, wrong_first = 0;
  for (int b = 0; b < N; b += BATCH) {
    for (int k = 0; k < BATCH; k++) {
      int i = b + k;
      tg_task_desc d = TG_TASK_DESC_INIT;
      d.id = ids[i];
      d.fn = stress_fn;
      d.user = (void *)(intptr_t)i;
      d.priority = rnd_below(3) - 1;
      for (int q = 0; q < n_parents[i]; q++) dep_ptrs[i][q] = ids[parents[i][q]];
      for (int q = 0; q < n_writes[i]; q++) write_ptrs[i][q] = path_names[writes[i][q]];
      for (int q = 0; q < n_reads[i]; q++) read_ptrs[i][q] = path_names[reads[i][q]];
      d.deps = n_parents[i] ? dep_ptrs[i] : NULL;
      d.n_deps = (size_t)n_parents[i];
      d.writes = n_writes[i] ? write_ptrs[i] : NULL;
      d.n_writes = (size_t)n_writes[i];
      d.reads = n_reads[i] ? read_ptrs[i] : NULL;
      d.n_reads = (size_t)n_reads[i];
      batch[k] = d;
    }
    uint64_t first = UINT64_MAX;
    int rc = tg_pool_submit_batch(pool, batch, BATCH, &first);
    if (rc != TG_OK) {
      if (refused++ < 3) fprintf(stderr, "  batch at %d: %s: %s\n", b, tg_error_name(rc), tg_last_error());
    } else if (first != (uint64_t)b) {
      wrong_first++;
    }
  }
  CHECK(refused == 0, "%d batches refused", refused);
  CHECK(wrong_first == 0, "%d batches got an unexpected first seq", wrong_first);
  CHECK_RC(tg_pool_wait_all(pool, 90000), TG_OK);
  int64_t elapsed_ms = (now_ns() - t0) / 1000000;

  /* Every task: succeeded once, under its id, at its seq. */
  int not_ok = 0, wrong_runs = 0, bad_times = 0;
  tg_result r = TG_RESULT_INIT;
  for (int i = 0; i < N; i++) {
    if (tg_pool_result_at(pool, (uint64_t)i, &r) != TG_OK || r.seq != (uint64_t)i || !r.id ||
        strcmp(r.id, ids[i]) != 0 || r.status != TG_STATUS_SUCCEEDED || r.attempts != 1) {
      if (not_ok++ < 5)
        fprintf(stderr, "  task %d: %s, id %s, attempts %u\n", i, tg_status_name(r.status), r.id ? r.id : "(null)",
                r.attempts);
    }
    /* The pool's clock: submitted, then (ready and) started, then ended. */
    if (!(r.submit_ns > 0 && r.submit_ns <= r.start_ns && r.start_ns <= r.end_ns && r.queue_ns >= 0)) {
      if (bad_times++ < 5)
        fprintf(stderr, "  task %d: submit_ns %lld start_ns %lld end_ns %lld queue_ns %lld\n", i, (long long)r.submit_ns,
                (long long)r.start_ns, (long long)r.end_ns, (long long)r.queue_ns);
    }
    result_start[i] = r.start_ns;
    result_end[i] = r.end_ns;
    wrong_runs += recs[i].runs != 1;
  }
  CHECK(not_ok == 0, "%d tasks did not succeed as submitted", not_ok);
  CHECK(wrong_runs == 0, "%d tasks did not run exactly once", wrong_runs);
  CHECK(bad_times == 0, "%d tasks with timestamps out of order (submit <= start <= end, queue_ns >= 0)", bad_times);
  CHECK(wrong_ids == 0, "%d processors saw a wrong tg_task_id", wrong_ids);

  /* Every parent ended before each child started. */
  long edges = 0;
  int early_ev = 0, early_ns = 0;
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < n_parents[i]; k++) {
      int p = parents[i][k];
      edges++;
      if (!(recs[p].end_ev < recs[i].start_ev)) {
        if (early_ev++ < 5) fprintf(stderr, "  %s started before its parent %s ended\n", ids[i], ids[p]);
      }
      if (!(result_end[p] > 0 && result_end[p] <= result_start[i])) early_ns++;
    }
  }
  CHECK(early_ev == 0, "%d children started before a parent ended (our events)", early_ev);
  CHECK(early_ns == 0, "%d children started before a parent ended (result end_ns/start_ns)", early_ns);

  /* Paths. */
  CHECK(ww_overlaps == 0, "writers of one path in flight together %d times", ww_overlaps);
  CHECK(rw_overlaps == 0, "a reader and a writer of one path in flight together %d times", rw_overlaps);
  long n_wi = 0, n_ri = 0;
  int bad_intervals = check_intervals(&n_wi, &n_ri);
  CHECK(bad_intervals == 0, "%d overlapping path intervals", bad_intervals);

  /* Completion order: each task exactly once, then nothing more. */
  static unsigned char seen[N];
  uint64_t cursor = 0;
  int repeated = 0, got = 0, rc;
  while ((rc = tg_pool_next_completed(pool, &cursor, 0, &r)) == TG_OK) {
    got++;
    if (r.seq >= N || seen[r.seq]++) repeated++;
  }
  CHECK(rc == TG_ETIMEDOUT && got == N && repeated == 0, "completion order: %d entries, %d repeated, then %s", got,
        repeated, tg_error_name(rc));

  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.submitted == N && st.succeeded == N && st.ended == N, "stats: %" PRIu64 " submitted, %" PRIu64
        " succeeded, %" PRIu64 " ended", st.submitted, st.succeeded, st.ended);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);

  printf("stress: %d tasks on %d workers (TG_STRESS_SEED=%" PRIu64 "): %ld dependency edges, %ld write and %ld read "
         "intervals checked; ran in %lld ms\n",
         N, WORKERS, seed, edges, n_wi, n_ri, (long long)elapsed_ms);
  return tg_test_summary();
}
