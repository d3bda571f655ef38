/*
 * test_sched.c: scheduler behaviour through the C API, at 1, 2, 4 and 8
 * workers: dependencies, failure propagation, declared paths, concurrency
 * limits, timeouts, cancellation (including cancelling running and queued
 * tasks in one call), critical groups, waits, result order, shutdown and
 * concurrent submitters. Priorities and start times are checked once, with
 * one worker, where their order is defined.
 *
 * No check depends on how fast anything runs. Where a test needs a task to be
 * running or queued, it holds workers with gate tasks and waits (with a
 * deadline) for them to start. Short sleeps inside processors only widen the
 * windows in which a broken scheduler would be caught.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "tap.h"

static const uint32_t worker_counts[] = {1, 2, 4, 8};
#define N_WORKER_COUNTS (sizeof worker_counts / sizeof worker_counts[0])

/* Processors never wait longer than this for anything, so a broken library
   fails checks instead of hanging the program. */
#define GIVE_UP_NS ((int64_t)20 * 1000000000)

/* A global event counter: start and end events of processors get strictly
   increasing numbers, which orders them without relying on clock resolution. */
static uint64_t events;
static uint64_t next_event(void) { return at_add64(&events, 1); }

/* ---- a configurable processor ------------------------------------------------ */

typedef struct job {
  /* behaviour, set by the test */
  int result;         /* returned by the processor */
  const char *error;  /* set as error when non-NULL */
  const int *gate;    /* when non-NULL: wait until *gate != 0 or cancelled */
  int until_cancel;   /* loop until tg_task_cancelled() */
  int sleep_us;       /* then sleep this long */
  const char *late_output; /* set as output after cancellation was noticed */
  int *order_counter; /* when non-NULL: take a ticket on start into `order` */
  /* observations */
  int runs;
  int started;
  int saw_cancel;
  int returned;
  int order;
  int64_t start_ns, end_ns;
  uint64_t start_ev, end_ev;
} job_t;

static int job_fn(tg_task_ctx *ctx, void *user) {
  job_t *j = (job_t *)user;
  j->start_ev = next_event();
  j->start_ns = now_ns();
  at_add(&j->runs, 1);
  if (j->order_counter) j->order = at_add(j->order_counter, 1) - 1;
  at_store(&j->started, 1);
  int64_t give_up = now_ns() + GIVE_UP_NS;
  if (j->gate) {
    while (!at_load(j->gate) && !tg_task_cancelled(ctx) && now_ns() < give_up) sleep_us(100);
  }
  if (j->until_cancel) {
    while (!tg_task_cancelled(ctx) && now_ns() < give_up) sleep_us(100);
  }
  if (tg_task_cancelled(ctx)) {
    at_store(&j->saw_cancel, 1);
    if (j->late_output) tg_task_set_output(ctx, j->late_output, strlen(j->late_output) + 1);
  }
  if (j->sleep_us) sleep_us(j->sleep_us);
  if (j->error) tg_task_set_error(ctx, j->error);
  j->end_ns = now_ns();
  j->end_ev = next_event();
  at_store(&j->returned, 1);
  return j->result;
}

static int submit_job(tg_pool *pool, const char *id, job_t *j, const char *const *deps, size_t n_deps,
                      const char *group) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = id;
  d.fn = job_fn;
  d.user = j;
  d.deps = deps;
  d.n_deps = n_deps;
  d.group = group;
  return tg_pool_submit(pool, &d, NULL);
}

static tg_result res(tg_pool *pool, const char *id) {
  tg_result r = TG_RESULT_INIT;
  if (!CHECK_RC(tg_pool_result(pool, id, &r), TG_OK)) fprintf(stderr, "  (id '%s')\n", id);
  return r;
}

static int status(tg_pool *pool, const char *id) { return res(pool, id).status; }

static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

#define CHECK_STATUS(pool, id, want)                                                                     \
  do {                                                                                                   \
    int st_ = status((pool), (id));                                                                      \
    CHECK(st_ == (want), "%s: status %s, expected %s", (id), tg_status_name(st_), tg_status_name(want)); \
  } while (0)

/* Holds all `workers` workers with gate jobs (ids "<prefix>-<i>") and waits
   until each has started. */
static void hold_workers(tg_pool *pool, const char *prefix, job_t *gates, uint32_t workers, const int *gate) {
  for (uint32_t i = 0; i < workers; i++) {
    char id[64];
    snprintf(id, sizeof id, "%s-%u", prefix, i);
    memset(&gates[i], 0, sizeof gates[i]);
    gates[i].gate = gate;
    CHECK_RC(submit_job(pool, id, &gates[i], NULL, 0, NULL), TG_OK);
  }
  for (uint32_t i = 0; i < workers; i++) CHECK(wait_flag(&gates[i].started, 1, WAIT_MS), "gate %u started", i);
}

static void shutdown_and_destroy(tg_pool *pool) {
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* Parent ended before child started: by our own event numbers and by the
   pool's timestamps. */
static void check_order(tg_pool *pool, const char *parent, const job_t *p, const char *child, const job_t *c) {
  CHECK(p->end_ev < c->start_ev, "%s ended (event %llu) before %s started (event %llu)", parent,
        (unsigned long long)p->end_ev, child, (unsigned long long)c->start_ev);
  tg_result rp = res(pool, parent), rc = res(pool, child);
  CHECK(rp.end_ns > 0 && rp.end_ns <= rc.start_ns, "%s end_ns %lld <= %s start_ns %lld", parent,
        (long long)rp.end_ns, child, (long long)rc.start_ns);
}

/* ---- dependencies --------------------------------------------------------------- */

static void test_dependencies(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  enum { CHAIN = 8, FAN = 16 };
  static job_t chain[CHAIN], dia[2][4], fan[FAN + 2];
  memset(chain, 0, sizeof chain);
  memset(dia, 0, sizeof dia);
  memset(fan, 0, sizeof fan);
  char ids[CHAIN][16];

  /* A chain, submitted one by one. */
  for (int i = 0; i < CHAIN; i++) {
    snprintf(ids[i], sizeof ids[i], "chain-%d", i);
    const char *dep[] = {i ? ids[i - 1] : NULL};
    chain[i].sleep_us = 200;
    CHECK_RC(submit_job(pool, ids[i], &chain[i], dep, i ? 1 : 0, NULL), TG_OK);
  }

  /* Two diamonds a -> (b, c) -> d: one submitted in order one by one, one as
     a batch listed children first (dependencies pointing forward). */
  const char *names[2][4] = {{"d0-a", "d0-b", "d0-c", "d0-d"}, {"d1-a", "d1-b", "d1-c", "d1-d"}};
  for (int k = 0; k < 2; k++) {
    const char *on_a[] = {names[k][0]};
    const char *on_bc[] = {names[k][1], names[k][2]};
    tg_task_desc d[4];
    for (int i = 0; i < 4; i++) {
      tg_task_desc x = TG_TASK_DESC_INIT;
      x.id = names[k][i];
      x.fn = job_fn;
      x.user = &dia[k][i];
      dia[k][i].sleep_us = 300;
      d[i] = x;
    }
    d[1].deps = d[2].deps = on_a;
    d[1].n_deps = d[2].n_deps = 1;
    d[3].deps = on_bc;
    d[3].n_deps = 2;
    if (k == 0) {
      for (int i = 0; i < 4; i++) CHECK_RC(tg_pool_submit(pool, &d[i], NULL), TG_OK);
    } else {
      tg_task_desc rev[4] = {d[3], d[2], d[1], d[0]};
      CHECK_RC(tg_pool_submit_batch(pool, rev, 4, NULL), TG_OK);
    }
  }

  /* A fan-out and fan-in: root -> 16 children -> join. */
  char fan_ids[FAN + 2][16];
  const char *fan_children[FAN];
  snprintf(fan_ids[0], sizeof fan_ids[0], "fan-root");
  fan[0].sleep_us = 500;
  CHECK_RC(submit_job(pool, fan_ids[0], &fan[0], NULL, 0, NULL), TG_OK);
  const char *on_root[] = {fan_ids[0]};
  for (int i = 1; i <= FAN; i++) {
    snprintf(fan_ids[i], sizeof fan_ids[i], "fan-%d", i);
    fan[i].sleep_us = 100;
    fan_children[i - 1] = fan_ids[i];
    CHECK_RC(submit_job(pool, fan_ids[i], &fan[i], on_root, 1, NULL), TG_OK);
  }
  snprintf(fan_ids[FAN + 1], sizeof fan_ids[FAN + 1], "fan-join");
  CHECK_RC(submit_job(pool, fan_ids[FAN + 1], &fan[FAN + 1], fan_children, FAN, NULL), TG_OK);

  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  for (int i = 0; i < CHAIN; i++) {
    CHECK_STATUS(pool, ids[i], TG_STATUS_SUCCEEDED);
    CHECK(chain[i].runs == 1, "%s ran %d times", ids[i], chain[i].runs);
    if (i) check_order(pool, ids[i - 1], &chain[i - 1], ids[i], &chain[i]);
  }
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 4; i++) {
      CHECK_STATUS(pool, names[k][i], TG_STATUS_SUCCEEDED);
      CHECK(dia[k][i].runs == 1, "%s ran %d times", names[k][i], dia[k][i].runs);
    }
    check_order(pool, names[k][0], &dia[k][0], names[k][1], &dia[k][1]);
    check_order(pool, names[k][0], &dia[k][0], names[k][2], &dia[k][2]);
    check_order(pool, names[k][1], &dia[k][1], names[k][3], &dia[k][3]);
    check_order(pool, names[k][2], &dia[k][2], names[k][3], &dia[k][3]);
  }
  for (int i = 1; i <= FAN; i++) {
    check_order(pool, fan_ids[0], &fan[0], fan_ids[i], &fan[i]);
    check_order(pool, fan_ids[i], &fan[i], fan_ids[FAN + 1], &fan[FAN + 1]);
  }
  CHECK(fan[FAN + 1].runs == 1, "join ran %d times", fan[FAN + 1].runs);
  shutdown_and_destroy(pool);
}

/* ---- failure propagation ----------------------------------------------------------- */

static void check_skipped(tg_pool *pool, const char *id, const job_t *j, const char *because_of) {
  tg_result r = res(pool, id);
  CHECK(r.status == TG_STATUS_SKIPPED, "%s: %s, expected skipped", id, tg_status_name(r.status));
  CHECK(contains(r.error, because_of), "%s: error '%s' names its parent '%s'", id, r.error ? r.error : "(null)",
        because_of);
  CHECK(j->runs == 0 && r.attempts == 0 && r.worker == -1, "%s never ran (runs %d, attempts %u, worker %d)", id,
        j->runs, r.attempts, r.worker);
}

static void test_failure_propagation(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  static job_t root, child, grand, great, ok, other, indep, late, late2, cancelled, after_cancel;
  memset(&root, 0, sizeof root);
  child = grand = great = ok = other = indep = late = late2 = cancelled = after_cancel = root;
  int open = 0;
  root.gate = &open;
  root.result = TG_TASK_FAILED;
  root.error = "root broke";

  CHECK_RC(submit_job(pool, "fp-root", &root, NULL, 0, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "fp-ok", &ok, NULL, 0, NULL), TG_OK);
  const char *on_root[] = {"fp-root"}, *on_child[] = {"fp-child"}, *on_grand[] = {"fp-grand"};
  const char *on_root_ok[] = {"fp-ok", "fp-root"}, *on_ok[] = {"fp-ok"};
  CHECK_RC(submit_job(pool, "fp-child", &child, on_root, 1, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "fp-grand", &grand, on_child, 1, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "fp-great", &great, on_grand, 1, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "fp-other", &other, on_root_ok, 2, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "fp-indep", &indep, on_ok, 1, NULL), TG_OK);
  CHECK(wait_flag(&root.started, 1, WAIT_MS), "root started");
  CHECK_STATUS(pool, "fp-child", TG_STATUS_PENDING);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  tg_result r = res(pool, "fp-root");
  CHECK(r.status == TG_STATUS_FAILED, "root: %s", tg_status_name(r.status));
  CHECK(r.error && strcmp(r.error, "root broke") == 0, "root error '%s'", r.error ? r.error : "(null)");
  check_skipped(pool, "fp-child", &child, "fp-root");
  check_skipped(pool, "fp-grand", &grand, "fp-child");
  check_skipped(pool, "fp-great", &great, "fp-grand");
  check_skipped(pool, "fp-other", &other, "fp-root");
  CHECK_STATUS(pool, "fp-ok", TG_STATUS_SUCCEEDED);
  CHECK_STATUS(pool, "fp-indep", TG_STATUS_SUCCEEDED);

  /* Children submitted after their parent failed or was skipped. */
  CHECK_RC(submit_job(pool, "fp-late", &late, on_root, 1, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "fp-late", WAIT_MS), TG_OK);
  check_skipped(pool, "fp-late", &late, "fp-root");
  CHECK_RC(submit_job(pool, "fp-late2", &late2, on_child, 1, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "fp-late2", WAIT_MS), TG_OK);
  check_skipped(pool, "fp-late2", &late2, "fp-child");
  /* A child of a cancelled task. */
  int never = 0;
  cancelled.gate = &never;
  const char *on_cancelled[] = {"fp-cancelled"};
  CHECK_RC(submit_job(pool, "fp-cancelled", &cancelled, NULL, 0, NULL), TG_OK);
  CHECK_RC(tg_pool_cancel(pool, "fp-cancelled"), TG_OK);
  CHECK_RC(submit_job(pool, "fp-after-cancel", &after_cancel, on_cancelled, 1, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "fp-after-cancel", WAIT_MS), TG_OK);
  check_skipped(pool, "fp-after-cancel", &after_cancel, "fp-cancelled");

  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.failed == 1 && st.skipped == 7 && st.succeeded == 2 && st.cancelled == 1,
        "stats: failed %llu skipped %llu succeeded %llu cancelled %llu", (unsigned long long)st.failed,
        (unsigned long long)st.skipped, (unsigned long long)st.succeeded, (unsigned long long)st.cancelled);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- priorities ------------------------------------------------------------------ */

/* With one worker held by a gate, tasks of all three priorities are queued;
   once the gate opens they must run HIGH first, then NORMAL, then LOW, each
   level in submission order. Only meaningful with one worker: with more, the
   order in which concurrent workers start their tasks is not defined. */
static void test_priorities(int as_batch) {
  enum { PER = 100, N = 3 * PER };
  tg_pool *pool = tap_pool(1, 0, 0);
  static job_t jobs[N];
  static job_t gate_job;
  memset(jobs, 0, sizeof jobs);
  memset(&gate_job, 0, sizeof gate_job);
  int open = 0, counter = 0;
  gate_job.gate = &open;
  CHECK_RC(submit_job(pool, "prio-gate", &gate_job, NULL, 0, NULL), TG_OK);
  CHECK(wait_flag(&gate_job.started, 1, WAIT_MS), "gate started");

  /* Interleaved submission: LOW, NORMAL, HIGH, LOW, NORMAL, HIGH, ...
     jobs[level * PER + k] is the k-th task of a level (0 HIGH, 1 NORMAL, 2 LOW). */
  static const int32_t prio_of_level[3] = {TG_PRIORITY_HIGH, TG_PRIORITY_NORMAL, TG_PRIORITY_LOW};
  static tg_task_desc batch[N];
  for (int k = 0; k < PER; k++) {
    for (int level = 2; level >= 0; level--) {
      job_t *j = &jobs[level * PER + k];
      j->order_counter = &counter;
      tg_task_desc d = TG_TASK_DESC_INIT;
      d.fn = job_fn;
      d.user = j;
      d.priority = prio_of_level[level];
      if (as_batch)
        batch[k * 3 + (2 - level)] = d;
      else
        CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
    }
  }
  if (as_batch) CHECK_RC(tg_pool_submit_batch(pool, batch, N, NULL), TG_OK);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  int wrong = 0;
  for (int i = 0; i < N; i++) {
    if (jobs[i].runs != 1 || jobs[i].order != i) {
      if (wrong++ < 5)
        fprintf(stderr, "  %s task %d of level %d ran %d times, as number %d (expected %d)\n",
                as_batch ? "batch" : "single", i % PER, i / PER, jobs[i].runs, jobs[i].order, i);
    }
  }
  CHECK(wrong == 0, "%s: %d of %d tasks out of priority/FIFO order", as_batch ? "batch" : "single", wrong, N);
  shutdown_and_destroy(pool);
}

/* ---- start times -------------------------------------------------------------------- */

/* start_ns is read when a worker takes the task up, never reused from an
   earlier moment: after task x ends, the one worker pops 100,000 queued tasks
   that were cancelled (none of them runs) while task c is submitted; c's
   start_ns must not precede its submit_ns (a stale clock would give x's end). */
static void test_start_times(void) {
  enum { JUNK = 100000, CHUNK = 10000 };
  tg_pool *pool = tap_pool(1, 0, 0);
  static job_t gate_job, x, c, junk_job;
  static tg_task_desc junk[CHUNK];
  memset(&gate_job, 0, sizeof gate_job);
  x = c = junk_job = gate_job;
  int open = 0;
  gate_job.gate = &open;
  CHECK_RC(submit_job(pool, "st-gate", &gate_job, NULL, 0, NULL), TG_OK);
  CHECK(wait_flag(&gate_job.started, 1, WAIT_MS), "gate started");
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = job_fn;
  d.priority = TG_PRIORITY_HIGH;
  d.id = "st-x";
  d.user = &x;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  for (int i = 0; i < CHUNK; i++) {
    tg_task_desc j = TG_TASK_DESC_INIT;
    j.fn = job_fn;
    j.user = &junk_job;
    j.group = "st-junk";
    junk[i] = j;
  }
  for (int k = 0; k < JUNK / CHUNK; k++) CHECK_RC(tg_pool_submit_batch(pool, junk, CHUNK, NULL), TG_OK);
  size_t n = 0;
  CHECK_RC(tg_pool_cancel_group(pool, "st-junk", &n), TG_OK);
  CHECK(n == JUNK, "cancelled %zu", n);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait(pool, "st-x", WAIT_MS), TG_OK);
  d.id = "st-c";
  d.user = &c;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  const char *ids[] = {"st-gate", "st-x", "st-c"};
  for (int i = 0; i < 3; i++) {
    tg_result r = res(pool, ids[i]);
    CHECK(r.status == TG_STATUS_SUCCEEDED && r.submit_ns <= r.start_ns && r.start_ns <= r.end_ns && r.queue_ns >= 0,
          "%s: %s, submit_ns %lld start_ns %lld end_ns %lld queue_ns %lld", ids[i], tg_status_name(r.status),
          (long long)r.submit_ns, (long long)r.start_ns, (long long)r.end_ns, (long long)r.queue_ns);
  }
  CHECK(junk_job.runs == 0, "cancelled tasks ran %d times", junk_job.runs);
  shutdown_and_destroy(pool);
}

/* ---- declared writes and reads ----------------------------------------------------- */

typedef struct path_job {
  int *writers;       /* writers of the path in flight */
  int *readers;       /* readers of the path in flight */
  int *max_writers;
  int *ww_overlaps;   /* a writer saw another writer */
  int *rw_overlaps;   /* a reader saw a writer or a writer saw a reader */
  int write;
  int check_rw;       /* count reader/writer overlaps (not under the overlap flag) */
  int *wait_for;      /* when non-NULL: wait (bounded) until *wait_for != 0 */
  int *saw;           /* set to 1 when *wait_for became non-zero in time */
  int *signal;        /* set to 1 on start */
  int runs;
} path_job_t;

static int path_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  path_job_t *j = (path_job_t *)user;
  at_add(&j->runs, 1);
  if (j->write) {
    int w = at_add(j->writers, 1);
    at_max(j->max_writers, w);
    if (w > 1) at_add(j->ww_overlaps, 1);
    if (j->check_rw && at_load(j->readers) > 0) at_add(j->rw_overlaps, 1);
  } else {
    at_add(j->readers, 1);
    if (j->check_rw && at_load(j->writers) > 0) at_add(j->rw_overlaps, 1);
  }
  if (j->signal) at_store(j->signal, 1);
  if (j->wait_for) {
    if (wait_flag(j->wait_for, 1, 10000)) at_store(j->saw, 1);
  } else {
    sleep_us(150);
  }
  if (j->write)
    at_add(j->writers, -1);
  else
    at_add(j->readers, -1);
  return TG_TASK_SUCCEEDED;
}

static int submit_path_job(tg_pool *pool, path_job_t *j, const char *path) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = path_fn;
  d.user = j;
  const char *paths[] = {path};
  if (j->write) {
    d.writes = paths;
    d.n_writes = 1;
  } else {
    d.reads = paths;
    d.n_reads = 1;
  }
  return tg_pool_submit(pool, &d, NULL);
}

static void test_paths(uint32_t workers) {
  char cwd[4096];
  CHECK(getcwd(cwd, sizeof cwd - 64) != NULL, "getcwd");
  char absolute[4200];
  snprintf(absolute, sizeof absolute, "%s/tgw/f", cwd);
  /* Five spellings of one path. */
  const char *spellings[] = {"tgw/./f", "tgw//f", "tgw/f", absolute, "tgw/sub/../f"};
  enum { WRITERS = 40, READERS = 30 };
  static path_job_t jobs[WRITERS + READERS];

  /* 1. Writers of one path never overlap; readers never overlap writers. */
  {
    tg_pool *pool = tap_pool(workers, 0, 0);
    int writers = 0, readers = 0, max_writers = 0, ww = 0, rw = 0;
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < WRITERS + READERS; i++) {
      path_job_t *j = &jobs[i];
      j->writers = &writers;
      j->readers = &readers;
      j->max_writers = &max_writers;
      j->ww_overlaps = &ww;
      j->rw_overlaps = &rw;
      j->check_rw = 1;
      j->write = i < WRITERS;
    }
    /* Submit writers and readers interleaved, 4 writers then 3 readers. */
    for (int i = 0, w = 0, r = 0; i < WRITERS + READERS; i++) {
      int reader = r < READERS && (w >= WRITERS || i % 7 >= 4);
      path_job_t *j = reader ? &jobs[WRITERS + r++] : &jobs[w++];
      CHECK_RC(submit_path_job(pool, j, spellings[i % 5]), TG_OK);
    }
    CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
    int ran = 0;
    for (int i = 0; i < WRITERS + READERS; i++) ran += jobs[i].runs == 1;
    CHECK(ran == WRITERS + READERS, "%d of %d path tasks ran once", ran, WRITERS + READERS);
    CHECK(max_writers == 1 && ww == 0, "writers of one path overlapped: max %d in flight, %d overlaps", max_writers,
          ww);
    CHECK(rw == 0, "readers overlapped writers %d times", rw);
    shutdown_and_destroy(pool);
  }

  /* 2. Different paths do not exclude each other: a writer of a/x waits for a
     writer of b/x to start. */
  if (workers >= 2) {
    tg_pool *pool = tap_pool(workers, 0, 0);
    int writers_a = 0, writers_b = 0, readers = 0, max = 0, ww = 0, rw = 0, b_started = 0, saw = 0;
    path_job_t a = {0}, b = {0};
    a.writers = &writers_a;
    b.writers = &writers_b;
    a.readers = b.readers = &readers;
    a.max_writers = b.max_writers = &max;
    a.ww_overlaps = b.ww_overlaps = &ww;
    a.rw_overlaps = b.rw_overlaps = &rw;
    a.write = b.write = 1;
    a.wait_for = &b_started;
    a.saw = &saw;
    b.signal = &b_started;
    CHECK_RC(submit_path_job(pool, &a, "tgd/a/x"), TG_OK);
    CHECK_RC(submit_path_job(pool, &b, "tgd/b/x"), TG_OK);
    CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
    CHECK(saw == 1, "a writer of another path ran while the first one held its path");
    shutdown_and_destroy(pool);
  }

  /* 3. With TG_POOL_ALLOW_READ_WRITE_OVERLAP: everything completes, writers
     still never overlap, and a reader can start while a writer runs. */
  {
    tg_pool *pool = tap_pool(workers, 0, TG_POOL_ALLOW_READ_WRITE_OVERLAP);
    int writers = 0, readers = 0, max_writers = 0, ww = 0, rw = 0;
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < WRITERS + READERS; i++) {
      path_job_t *j = &jobs[i];
      j->writers = &writers;
      j->readers = &readers;
      j->max_writers = &max_writers;
      j->ww_overlaps = &ww;
      j->rw_overlaps = &rw;
      j->write = i % 2 == 0;
      CHECK_RC(submit_path_job(pool, j, spellings[i % 5]), TG_OK);
    }
    CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
    int ran = 0;
    for (int i = 0; i < WRITERS + READERS; i++) ran += jobs[i].runs == 1;
    CHECK(ran == WRITERS + READERS, "overlap pool: %d of %d path tasks ran once", ran, WRITERS + READERS);
    CHECK(max_writers == 1 && ww == 0, "overlap pool: writers overlapped: max %d, %d overlaps", max_writers, ww);

    if (workers >= 2) {
      /* Two readers and a writer of one path: the writer waits until both
         readers have started. */
      int r_started = 0, saw = 0;
      path_job_t w = {0}, r1 = {0}, r2 = {0};
      w.writers = r1.writers = r2.writers = &writers;
      w.readers = r1.readers = r2.readers = &readers;
      w.max_writers = r1.max_writers = r2.max_writers = &max_writers;
      w.ww_overlaps = r1.ww_overlaps = r2.ww_overlaps = &ww;
      w.rw_overlaps = r1.rw_overlaps = r2.rw_overlaps = &rw;
      w.write = 1;
      w.wait_for = &r_started;
      w.saw = &saw;
      r1.signal = &r_started;
      r2.signal = &r_started;
      CHECK_RC(submit_path_job(pool, &w, "tgo/f"), TG_OK);
      CHECK_RC(submit_path_job(pool, &r1, "tgo/./f"), TG_OK);
      CHECK_RC(submit_path_job(pool, &r2, "tgo//f"), TG_OK);
      CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
      CHECK(saw == 1, "overlap pool: a reader ran while a writer of the same path ran");
      CHECK(w.runs == 1 && r1.runs == 1 && r2.runs == 1, "overlap trio ran once each");
    }
    shutdown_and_destroy(pool);
  }
}

/* ---- max_concurrency ------------------------------------------------------------- */

typedef struct conc {
  int *running;
  int *max_running;
  int runs;
} conc_t;

static int conc_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  conc_t *c = (conc_t *)user;
  at_add(&c->runs, 1);
  at_max(c->max_running, at_add(c->running, 1));
  sleep_us(500);
  at_add(c->running, -1);
  return TG_TASK_SUCCEEDED;
}

static void test_max_concurrency(uint32_t workers) {
  enum { N = 40, LIMIT = 2 };
  tg_pool *pool = tap_pool(workers, LIMIT, 0);
  static conc_t jobs[N];
  int running = 0, max_running = 0;
  memset(jobs, 0, sizeof jobs);
  for (int i = 0; i < N; i++) {
    jobs[i].running = &running;
    jobs[i].max_running = &max_running;
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = conc_fn;
    d.user = &jobs[i];
    d.priority = (i % 3) - 1;
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  int ran = 0;
  for (int i = 0; i < N; i++) ran += jobs[i].runs == 1;
  CHECK(ran == N, "%d of %d ran once", ran, N);
  uint32_t limit = workers < LIMIT ? workers : LIMIT;
  CHECK(max_running >= 1 && max_running <= (int)limit, "max %d processors at once; limit %u", max_running, limit);
  shutdown_and_destroy(pool);
}

/* ---- timeouts ----------------------------------------------------------------------- */

struct waiter_arg {
  tg_pool *pool;
  const char *id;
  int rc;
};

static void *waiter_thread(void *p) {
  struct waiter_arg *a = (struct waiter_arg *)p;
  a->rc = tg_pool_wait(a->pool, a->id, WAIT_MS);
  return NULL;
}

static void test_timeouts(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  static job_t slow, child, grand, quick, queued;
  static job_t gates[8];
  memset(&slow, 0, sizeof slow);
  child = grand = quick = queued = slow;
  slow.until_cancel = 1;
  slow.late_output = "late";
  slow.error = "late error";

  /* A task with a timeout must not time out while it waits in the queue:
     the clock starts when it starts. */
  int open = 0;
  hold_workers(pool, "to-gate", gates, workers, &open);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "to-queued";
  d.fn = job_fn;
  d.user = &queued;
  d.timeout_ms = 50;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  sleep_us(120 * 1000); /* longer than its timeout, spent queued */
  CHECK_STATUS(pool, "to-queued", TG_STATUS_QUEUED);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait(pool, "to-queued", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "to-queued", TG_STATUS_SUCCEEDED);

  /* A task that outlives its timeout. */
  d.id = "to-slow";
  d.user = &slow;
  d.timeout_ms = 50;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  const char *on_slow[] = {"to-slow"}, *on_child[] = {"to-child"};
  CHECK_RC(submit_job(pool, "to-child", &child, on_slow, 1, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "to-grand", &grand, on_child, 1, NULL), TG_OK);
  d.id = "to-quick";
  d.user = &quick;
  d.timeout_ms = WAIT_MS; /* generous: it must not fire */
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);

  struct waiter_arg wa = {pool, "to-slow", 12345};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, waiter_thread, &wa) == 0, "waiter thread");
  CHECK_RC(tg_pool_wait(pool, "to-slow", WAIT_MS), TG_OK);
  pthread_join(t, NULL);
  CHECK(wa.rc == TG_OK, "the other waiter was released (%s)", tg_error_name(wa.rc));

  tg_result r = res(pool, "to-slow");
  CHECK(r.status == TG_STATUS_TIMED_OUT, "to-slow: %s", tg_status_name(r.status));
  CHECK(r.error != NULL && r.error[0] != '\0', "a timed-out task says why");
  CHECK(wait_flag(&slow.returned, 1, WAIT_MS), "to-slow's processor returned");
  CHECK(slow.saw_cancel == 1, "to-slow saw tg_task_cancelled() turn true");
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  check_skipped(pool, "to-child", &child, "to-slow");
  check_skipped(pool, "to-grand", &grand, "to-child");
  CHECK_STATUS(pool, "to-quick", TG_STATUS_SUCCEEDED);

  /* Once every processor has returned (drained), the late output and error
     the timed-out processor set must not appear. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  r = res(pool, "to-slow");
  CHECK(r.status == TG_STATUS_TIMED_OUT, "still timed out: %s", tg_status_name(r.status));
  CHECK(r.output == NULL && r.output_len == 0, "late output discarded (%zu bytes)", r.output_len);
  CHECK(!contains(r.error, "late error"), "late error discarded ('%s')", r.error ? r.error : "(null)");
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.timed_out == 1, "stats: %llu timed out", (unsigned long long)st.timed_out);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- cancellation ------------------------------------------------------------------ */

/* Holds a path after being cancelled until told to return. */
typedef struct holder {
  int started;
  int noticed;
  int let_go;
  int returned;
  int runs;
} holder_t;

static int holder_fn(tg_task_ctx *ctx, void *user) {
  holder_t *h = (holder_t *)user;
  at_add(&h->runs, 1);
  at_store(&h->started, 1);
  int64_t give_up = now_ns() + GIVE_UP_NS;
  while (!tg_task_cancelled(ctx) && now_ns() < give_up) sleep_us(100);
  at_store(&h->noticed, 1);
  while (!at_load(&h->let_go) && now_ns() < give_up) sleep_us(100);
  at_store(&h->returned, 1);
  return TG_TASK_SUCCEEDED;
}

/* Checks on start that the holder has returned. */
static int after_holder_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  holder_t *h = (holder_t *)user;
  return at_load(&h->returned) ? TG_TASK_SUCCEEDED : TG_TASK_FAILED;
}

static void test_cancellation(uint32_t workers) {
  static job_t gates[8], victim, dep, run, run_child, cg[8], other[8], extra[8], fresh;
  int open = 0;
  tg_result r;

  /* 1. A queued task, cancelled before any worker is free, never runs. */
  tg_pool *pool = tap_pool(workers, 0, 0);
  memset(&victim, 0, sizeof victim);
  dep = run = run_child = fresh = victim;
  hold_workers(pool, "c-gate", gates, workers, &open);
  CHECK_RC(submit_job(pool, "c-victim", &victim, NULL, 0, NULL), TG_OK);
  CHECK_STATUS(pool, "c-victim", TG_STATUS_QUEUED);
  CHECK_RC(tg_pool_cancel(pool, "c-victim"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "c-victim", 0), TG_OK); /* ended at once */
  r = res(pool, "c-victim");
  CHECK(r.status == TG_STATUS_CANCELLED && r.error != NULL, "c-victim: %s", tg_status_name(r.status));
  const char *on_victim[] = {"c-victim"};
  CHECK_RC(submit_job(pool, "c-dep", &dep, on_victim, 1, NULL), TG_OK);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  check_skipped(pool, "c-dep", &dep, "c-victim");
  CHECK(victim.runs == 0, "the cancelled queued task ran %d times", victim.runs);
  CHECK_RC(tg_pool_cancel(pool, "c-victim"), TG_EFINISHED);
  shutdown_and_destroy(pool);

  /* 2. A running task sees tg_task_cancelled(); its dependents are skipped. */
  pool = tap_pool(workers, 0, 0);
  run.until_cancel = 1;
  CHECK_RC(submit_job(pool, "c-run", &run, NULL, 0, NULL), TG_OK);
  const char *on_run[] = {"c-run"};
  CHECK_RC(submit_job(pool, "c-run-child", &run_child, on_run, 1, NULL), TG_OK);
  CHECK(wait_flag(&run.started, 1, WAIT_MS), "c-run started");
  CHECK_STATUS(pool, "c-run", TG_STATUS_RUNNING);
  CHECK_RC(tg_pool_cancel(pool, "c-run"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "c-run", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "c-run", TG_STATUS_CANCELLED);
  CHECK(wait_flag(&run.saw_cancel, 1, WAIT_MS), "the running processor saw tg_task_cancelled()");
  CHECK_RC(tg_pool_wait(pool, "c-run-child", WAIT_MS), TG_OK);
  check_skipped(pool, "c-run-child", &run_child, "c-run");

  /* A cancelled processor keeps its declared paths until it returns. */
  holder_t h = {0, 0, 0, 0, 0};
  tg_task_desc d = TG_TASK_DESC_INIT;
  const char *path[] = {"tgc/held"};
  d.id = "c-holder";
  d.fn = holder_fn;
  d.user = &h;
  d.writes = path;
  d.n_writes = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&h.started, 1, WAIT_MS), "holder started");
  CHECK_RC(tg_pool_cancel(pool, "c-holder"), TG_OK);
  d.id = "c-next-writer";
  d.fn = after_holder_fn;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&h.noticed, 1, WAIT_MS), "holder noticed the cancel");
  sleep_us(20 * 1000); /* a chance for a wrong scheduler to start the next writer */
  at_store(&h.let_go, 1);
  CHECK_RC(tg_pool_wait(pool, "c-next-writer", WAIT_MS), TG_OK);
  r = res(pool, "c-next-writer");
  CHECK(r.status == TG_STATUS_SUCCEEDED, "the next writer started only after the cancelled holder returned (%s)",
        tg_status_name(r.status));
  shutdown_and_destroy(pool);

  /* 3. cancel_group cancels the group's unfinished tasks only. */
  pool = tap_pool(workers, 0, 0);
  open = 0;
  hold_workers(pool, "cg-gate", gates, workers, &open);
  memset(cg, 0, sizeof cg);
  memset(other, 0, sizeof other);
  char id[32];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "cg-a-%d", i);
    CHECK_RC(submit_job(pool, id, &cg[i], NULL, 0, "grp-a"), TG_OK);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "cg-b-%d", i);
    CHECK_RC(submit_job(pool, id, &other[i], NULL, 0, "grp-b"), TG_OK);
  }
  size_t n = 0;
  CHECK_RC(tg_pool_cancel_group(pool, "grp-a", &n), TG_OK);
  CHECK(n == 5, "cancel_group cancelled %zu of 5", n);
  CHECK_RC(tg_pool_wait_group(pool, "grp-a", 0), TG_OK);
  at_store(&open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "cg-a-%d", i);
    CHECK_STATUS(pool, id, TG_STATUS_CANCELLED);
    CHECK(cg[i].runs == 0, "%s ran", id);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(id, sizeof id, "cg-b-%d", i);
    CHECK_STATUS(pool, id, TG_STATUS_SUCCEEDED);
  }
  shutdown_and_destroy(pool);

  /* 4. cancel_all cancels running and queued tasks; the pool stays usable. */
  pool = tap_pool(workers, 0, 0);
  int never = 0;
  hold_workers(pool, "ca-gate", gates, workers, &never);
  memset(extra, 0, sizeof extra);
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "ca-q-%d", i);
    CHECK_RC(submit_job(pool, id, &extra[i], NULL, 0, NULL), TG_OK);
  }
  n = 0;
  CHECK_RC(tg_pool_cancel_all(pool, &n), TG_OK);
  CHECK(n == workers + 6, "cancel_all cancelled %zu of %u", n, workers + 6);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  for (uint32_t i = 0; i < workers; i++) {
    snprintf(id, sizeof id, "ca-gate-%u", i);
    CHECK_STATUS(pool, id, TG_STATUS_CANCELLED);
    CHECK(wait_flag(&gates[i].saw_cancel, 1, WAIT_MS), "%s saw the cancel", id);
  }
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "ca-q-%d", i);
    CHECK_STATUS(pool, id, TG_STATUS_CANCELLED);
    CHECK(extra[i].runs == 0, "%s ran", id);
  }
  CHECK_RC(submit_job(pool, "ca-fresh", &fresh, NULL, 0, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "ca-fresh", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "ca-fresh", TG_STATUS_SUCCEEDED);
  shutdown_and_destroy(pool);
}

/* ---- cancelling running and queued tasks at once --------------------------------- */

/* Spins until cancelled: returns the moment it sees the cancel. */
static int spin_fn(tg_task_ctx *ctx, void *user) {
  at_add((int *)user, 1);
  int64_t give_up = now_ns() + GIVE_UP_NS;
  while (!tg_task_cancelled(ctx) && now_ns() < give_up) {
  }
  return TG_TASK_SUCCEEDED;
}

static int count_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  at_add((int *)user, 1);
  return TG_TASK_SUCCEEDED;
}

/* Every worker runs a task that returns as soon as it is cancelled, and six
   quick tasks are queued behind them. cancel_all (or cancel_group) must
   cancel all of them: a queued task must not be started by a worker that the
   cancel of a running one just freed. Repeated, as that would be a race. */
static void test_cancel_running_and_queued(uint32_t workers, int use_group) {
  enum { ROUNDS = 10, QUEUED = 6 };
  int bad_rounds = 0;
  size_t worst_n = 0;
  int worst_ran = 0;
  for (int round = 0; round < ROUNDS; round++) {
    tg_pool *pool = tap_pool(workers, 0, 0);
    int started = 0, ran = 0;
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.group = "race";
    d.fn = spin_fn;
    d.user = &started;
    for (uint32_t i = 0; i < workers; i++) CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
    CHECK(wait_flag(&started, (int)workers, WAIT_MS), "spinners started");
    d.fn = count_fn;
    d.user = &ran;
    for (int i = 0; i < QUEUED; i++) CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
    size_t n = 0;
    if (use_group)
      CHECK_RC(tg_pool_cancel_group(pool, "race", &n), TG_OK);
    else
      CHECK_RC(tg_pool_cancel_all(pool, &n), TG_OK);
    CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
    if (n != workers + QUEUED || at_load(&ran) != 0) {
      bad_rounds++;
      worst_n = n;
      worst_ran = at_load(&ran);
    }
    CHECK_RC(tg_pool_destroy(pool), TG_OK);
  }
  CHECK(bad_rounds == 0, "%s: in %d of %d rounds queued tasks ran past the cancel (e.g. %zu of %u cancelled, %d ran)",
        use_group ? "cancel_group" : "cancel_all", bad_rounds, ROUNDS, worst_n, workers + QUEUED, worst_ran);
}

/* ---- critical groups --------------------------------------------------------------- */

static void test_critical(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  static job_t crit, done, pend1, pend2, running, hold, other1, other2, tcrit, tsib, hold2;
  memset(&crit, 0, sizeof crit);
  done = pend1 = pend2 = running = hold = other1 = other2 = tcrit = tsib = hold2 = crit;
  int crit_open = 0, hold_open = 0, hold2_open = 0;

  /* Group "cg": crit (critical, fails when crit_open), done (finished before),
     pend1/pend2 (pending on "hold", outside the group), and with 2+ workers
     a running member. Group "og": unaffected. */
  crit.gate = &crit_open;
  crit.result = TG_TASK_FAILED;
  hold.gate = &hold_open;
  running.until_cancel = 1;
  CHECK_RC(submit_job(pool, "cg-done", &done, NULL, 0, "cg"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "cg-done", WAIT_MS), TG_OK);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "crit";
  d.fn = job_fn;
  d.user = &crit;
  d.group = "cg";
  d.flags = TG_TASK_CRITICAL;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&crit.started, 1, WAIT_MS), "crit started");
  if (workers >= 2) {
    CHECK_RC(submit_job(pool, "cg-running", &running, NULL, 0, "cg"), TG_OK);
    CHECK(wait_flag(&running.started, 1, WAIT_MS), "cg-running started");
  }
  CHECK_RC(submit_job(pool, "hold", &hold, NULL, 0, NULL), TG_OK);
  const char *on_hold[] = {"hold"};
  CHECK_RC(submit_job(pool, "cg-pend-1", &pend1, on_hold, 1, "cg"), TG_OK);
  CHECK_RC(submit_job(pool, "cg-pend-2", &pend2, on_hold, 1, "cg"), TG_OK);
  CHECK_RC(submit_job(pool, "og-1", &other1, on_hold, 1, "og"), TG_OK);
  CHECK_RC(submit_job(pool, "og-2", &other2, NULL, 0, "og"), TG_OK);

  at_store(&crit_open, 1);
  CHECK_RC(tg_pool_wait_group(pool, "cg", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "crit", TG_STATUS_FAILED);
  CHECK_STATUS(pool, "cg-done", TG_STATUS_SUCCEEDED);
  CHECK_STATUS(pool, "cg-pend-1", TG_STATUS_CANCELLED);
  CHECK_STATUS(pool, "cg-pend-2", TG_STATUS_CANCELLED);
  CHECK(contains(res(pool, "cg-pend-1").error, "crit"), "the cancelled member's error names the failed task");
  if (workers >= 2) {
    CHECK_STATUS(pool, "cg-running", TG_STATUS_CANCELLED);
    CHECK(wait_flag(&running.saw_cancel, 1, WAIT_MS), "the running sibling saw the cancel");
  }
  at_store(&hold_open, 1);
  CHECK_RC(tg_pool_wait_group(pool, "og", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "hold", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "hold", TG_STATUS_SUCCEEDED);
  CHECK_STATUS(pool, "og-1", TG_STATUS_SUCCEEDED);
  CHECK_STATUS(pool, "og-2", TG_STATUS_SUCCEEDED);
  CHECK(pend1.runs == 0 && pend2.runs == 0, "cancelled siblings never ran");

  /* A critical task that times out cancels its group too. */
  hold2.gate = &hold2_open;
  tcrit.until_cancel = 1;
  d.id = "tcrit";
  d.user = &tcrit;
  d.group = "tg";
  d.timeout_ms = 50;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "hold2", &hold2, NULL, 0, NULL), TG_OK);
  const char *on_hold2[] = {"hold2"};
  CHECK_RC(submit_job(pool, "tg-sib", &tsib, on_hold2, 1, "tg"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "tcrit", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_group(pool, "tg", WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "tcrit", TG_STATUS_TIMED_OUT);
  CHECK_STATUS(pool, "tg-sib", TG_STATUS_CANCELLED);
  at_store(&hold2_open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(tsib.runs == 0, "tg-sib never ran");
  shutdown_and_destroy(pool);

  /* Critical is a property of the group: once the group has a critical
     task, any member's failure cancels the rest; a failure from before the
     group became critical does not. */
  pool = tap_pool(workers, 0, 0);
  static job_t nc_crit, nc_fail, nc_sib, hold3, pre_fail, pre_sib, pre_crit;
  memset(&nc_crit, 0, sizeof nc_crit);
  nc_fail = nc_sib = hold3 = pre_fail = pre_sib = pre_crit = nc_crit;
  int hold3_open = 0, fail_open = 0;
  hold3.gate = &hold3_open;
  nc_fail.gate = &fail_open;
  nc_fail.result = TG_TASK_FAILED;
  pre_fail.result = TG_TASK_FAILED;
  const char *on_hold3[] = {"hold3"};
  /* Group "pre": pre-fail fails while the group is not critical yet. */
  CHECK_RC(submit_job(pool, "pre-fail", &pre_fail, NULL, 0, "pre"), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "pre-fail", WAIT_MS), TG_OK);
  /* Group "nc": nc-fail (not critical) runs and fails once the critical
     member and a sibling, both pending on hold3, are in its group. */
  CHECK_RC(submit_job(pool, "nc-fail", &nc_fail, NULL, 0, "nc"), TG_OK);
  CHECK(wait_flag(&nc_fail.started, 1, WAIT_MS), "nc-fail started");
  CHECK_RC(submit_job(pool, "hold3", &hold3, NULL, 0, NULL), TG_OK);
  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = job_fn;
  d.flags = TG_TASK_CRITICAL;
  d.deps = on_hold3;
  d.n_deps = 1;
  d.id = "nc-crit";
  d.user = &nc_crit;
  d.group = "nc";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d.id = "pre-crit";
  d.user = &pre_crit;
  d.group = "pre";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(submit_job(pool, "nc-sib", &nc_sib, on_hold3, 1, "nc"), TG_OK);
  CHECK_RC(submit_job(pool, "pre-sib", &pre_sib, on_hold3, 1, "pre"), TG_OK);
  at_store(&fail_open, 1);
  CHECK_RC(tg_pool_wait(pool, "nc-fail", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_group(pool, "nc", WAIT_MS), TG_OK); /* ends without hold3: all cancelled */
  CHECK_STATUS(pool, "nc-fail", TG_STATUS_FAILED);
  CHECK_STATUS(pool, "nc-crit", TG_STATUS_CANCELLED);
  CHECK_STATUS(pool, "nc-sib", TG_STATUS_CANCELLED);
  CHECK(contains(res(pool, "nc-sib").error, "nc-fail"), "the cancelled member's error names the failed task ('%s')",
        res(pool, "nc-sib").error ? res(pool, "nc-sib").error : "(null)");
  at_store(&hold3_open, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK_STATUS(pool, "pre-fail", TG_STATUS_FAILED);
  CHECK_STATUS(pool, "pre-crit", TG_STATUS_SUCCEEDED);
  CHECK_STATUS(pool, "pre-sib", TG_STATUS_SUCCEEDED);
  CHECK(nc_crit.runs == 0 && nc_sib.runs == 0, "cancelled members never ran");
  shutdown_and_destroy(pool);
}

/* ---- waits and result order ------------------------------------------------------- */

enum { WO_N = 60 };

struct reader_arg {
  tg_pool *pool;
  int want;
  int got;
  int rc;
  uint64_t seqs[WO_N];
};

/* Reads the completion order while tasks are still being submitted. */
static void *reader_thread(void *p) {
  struct reader_arg *a = (struct reader_arg *)p;
  uint64_t cursor = 0;
  tg_result r = TG_RESULT_INIT;
  a->rc = TG_OK;
  while (a->got < a->want) {
    a->rc = tg_pool_next_completed(a->pool, &cursor, WAIT_MS, &r);
    if (a->rc != TG_OK) break;
    a->seqs[a->got++] = r.seq;
  }
  return NULL;
}

static void test_waits_and_order(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  static job_t jobs[WO_N];
  static char ids[WO_N][16];
  static const char *idp[WO_N];
  static const char *groups[WO_N];
  memset(jobs, 0, sizeof jobs);
  struct reader_arg ra;
  memset(&ra, 0, sizeof ra);
  ra.pool = pool;
  ra.want = WO_N;
  pthread_t reader;
  CHECK(pthread_create(&reader, NULL, reader_thread, &ra) == 0, "reader thread");

  /* Every 7th task is anonymous; groups wo-a / wo-b / none in turn; every
     5th task depends on the one before it (if that one is named). Tasks 20
     to 39 go in one batch, the others one by one. */
  tg_task_desc batch[20];
  for (int i = 0; i < WO_N; i++) {
    idp[i] = NULL;
    if (i % 7 != 3) {
      snprintf(ids[i], sizeof ids[i], "wo-%d", i);
      idp[i] = ids[i];
    }
    groups[i] = i % 3 == 0 ? "wo-a" : i % 3 == 1 ? "wo-b" : NULL;
    jobs[i].sleep_us = (i * 37) % 300;
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.id = idp[i];
    d.fn = job_fn;
    d.user = &jobs[i];
    d.group = groups[i];
    if (i % 5 == 4 && idp[i - 1]) {
      d.deps = &idp[i - 1];
      d.n_deps = 1;
    }
    if (i >= 20 && i < 40)
      batch[i - 20] = d;
    else
      CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
    if (i == 39) {
      uint64_t first = 0;
      CHECK_RC(tg_pool_submit_batch(pool, batch, 20, &first), TG_OK);
      CHECK(first == 20, "batch first seq %llu", (unsigned long long)first);
    }
  }

  /* One task; then a group; then everything. */
  CHECK_RC(tg_pool_wait(pool, "wo-9", WAIT_MS), TG_OK);
  CHECK(res(pool, "wo-9").status >= TG_STATUS_SUCCEEDED, "wo-9 ended");
  CHECK_RC(tg_pool_wait_group(pool, "wo-a", WAIT_MS), TG_OK);
  int unfinished = 0;
  tg_result r = TG_RESULT_INIT;
  for (int i = 0; i < WO_N; i += 3) {
    CHECK_RC(tg_pool_result_at(pool, (uint64_t)i, &r), TG_OK);
    unfinished += r.status < TG_STATUS_SUCCEEDED;
  }
  CHECK(unfinished == 0, "%d members of wo-a unfinished after wait_group", unfinished);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  /* Submission order. */
  for (int i = 0; i < WO_N; i++) {
    if (!CHECK_RC(tg_pool_result_at(pool, (uint64_t)i, &r), TG_OK)) continue;
    CHECK(r.seq == (uint64_t)i, "result_at(%d).seq %llu", i, (unsigned long long)r.seq);
    CHECK((idp[i] == NULL && r.id == NULL) || (idp[i] && r.id && strcmp(r.id, idp[i]) == 0),
          "result_at(%d).id '%s', submitted '%s'", i, r.id ? r.id : "(null)", idp[i] ? idp[i] : "(null)");
    CHECK((groups[i] == NULL && r.group == NULL) || (groups[i] && r.group && strcmp(r.group, groups[i]) == 0),
          "result_at(%d).group", i);
    CHECK(r.status == TG_STATUS_SUCCEEDED && jobs[i].runs == 1, "task %d: %s, ran %d times", i,
          tg_status_name(r.status), jobs[i].runs);
  }
  CHECK_RC(tg_pool_result_at(pool, WO_N, &r), TG_ENOTFOUND);

  /* Completion order: every task exactly once, parents before children. */
  pthread_join(reader, NULL);
  CHECK(ra.got == WO_N, "reader got %d of %d (%s)", ra.got, WO_N, tg_error_name(ra.rc));
  int position[WO_N], dup = 0;
  for (int i = 0; i < WO_N; i++) position[i] = -1;
  for (int k = 0; k < ra.got; k++) {
    if (ra.seqs[k] >= WO_N || position[ra.seqs[k]] >= 0)
      dup++;
    else
      position[ra.seqs[k]] = k;
  }
  CHECK(dup == 0, "%d entries repeated or out of range", dup);
  for (int i = 0; i < WO_N; i++) {
    CHECK(position[i] >= 0, "task %d missing from the completion order", i);
    if (i % 5 == 4 && idp[i - 1])
      CHECK(position[i - 1] < position[i], "parent %d completed before child %d (%d, %d)", i - 1, i,
            position[i - 1], position[i]);
  }
  uint64_t cursor = (uint64_t)ra.got;
  CHECK_RC(tg_pool_next_completed(pool, &cursor, 0, &r), TG_ETIMEDOUT);
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_next_completed(pool, &cursor, WAIT_MS, &r), TG_ENOMORE);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- shutdown ------------------------------------------------------------------------- */

static void test_shutdown(uint32_t workers) {
  enum { N = 200 };
  static job_t jobs[N], gates[8], queued[20], pending[5];
  static char ids[N][16];
  memset(jobs, 0, sizeof jobs);

  /* DRAIN runs everything submitted, dependencies included. */
  tg_pool *pool = tap_pool(workers, 0, 0);
  for (int i = 0; i < N; i++) {
    snprintf(ids[i], sizeof ids[i], "dr-%d", i);
    const char *dep[] = {i >= 10 ? ids[i - 10] : NULL};
    jobs[i].sleep_us = i % 4 == 0 ? 100 : 0;
    CHECK_RC(submit_job(pool, ids[i], &jobs[i], dep, i >= 10 ? 1 : 0, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  int ok = 0;
  for (int i = 0; i < N; i++) ok += jobs[i].runs == 1 && status(pool, ids[i]) == TG_STATUS_SUCCEEDED;
  CHECK(ok == N, "drain: %d of %d succeeded once", ok, N);
  job_t late;
  memset(&late, 0, sizeof late);
  CHECK_RC(submit_job(pool, "dr-late", &late, NULL, 0, NULL), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);

  /* ABORT cancels what has not run and waits for running processors. */
  pool = tap_pool(workers, 0, 0);
  int never = 0;
  hold_workers(pool, "ab-gate", gates, workers, &never);
  memset(queued, 0, sizeof queued);
  memset(pending, 0, sizeof pending);
  char id[32];
  for (int i = 0; i < 20; i++) {
    snprintf(id, sizeof id, "ab-q-%d", i);
    CHECK_RC(submit_job(pool, id, &queued[i], NULL, 0, NULL), TG_OK);
  }
  const char *on_gate[] = {"ab-gate-0"};
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "ab-p-%d", i);
    CHECK_RC(submit_job(pool, id, &pending[i], on_gate, 1, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, WAIT_MS), TG_OK);
  for (uint32_t i = 0; i < workers; i++) {
    snprintf(id, sizeof id, "ab-gate-%u", i);
    CHECK_STATUS(pool, id, TG_STATUS_CANCELLED);
    CHECK(gates[i].saw_cancel == 1 && gates[i].returned == 1, "%s saw the abort and returned", id);
  }
  int ran = 0;
  for (int i = 0; i < 20; i++) {
    snprintf(id, sizeof id, "ab-q-%d", i);
    CHECK_STATUS(pool, id, TG_STATUS_CANCELLED);
    ran += queued[i].runs;
  }
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "ab-p-%d", i);
    int st = status(pool, id);
    /* Its parent may be cancelled first, which skips it. */
    CHECK(st == TG_STATUS_CANCELLED || st == TG_STATUS_SKIPPED, "%s: %s", id, tg_status_name(st));
    ran += pending[i].runs;
  }
  CHECK(ran == 0, "abort: %d unstarted tasks ran", ran);
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.ended == st.submitted && st.succeeded == 0, "abort: %llu of %llu ended, %llu succeeded",
        (unsigned long long)st.ended, (unsigned long long)st.submitted, (unsigned long long)st.succeeded);
  CHECK_RC(submit_job(pool, "ab-late", &late, NULL, 0, NULL), TG_ESHUTDOWN);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- concurrent submitters ------------------------------------------------------------ */

enum { SUBMITTERS = 4, PER_SUBMITTER = 400 };

struct submitter {
  tg_pool *pool;
  int index;
  job_t jobs[PER_SUBMITTER];
  char ids[PER_SUBMITTER][16];
  uint64_t seqs[PER_SUBMITTER];
  int failures;
};

static void *submitter_thread(void *p) {
  struct submitter *s = (struct submitter *)p;
  for (int i = 0; i < PER_SUBMITTER; i++) snprintf(s->ids[i], sizeof s->ids[i], "th%d-%d", s->index, i);
  int i = 0;
  while (i < PER_SUBMITTER) {
    /* Alternate single submissions and batches of 10. */
    int count = (i / 10) % 2 ? 10 : 1;
    if (i + count > PER_SUBMITTER) count = PER_SUBMITTER - i;
    tg_task_desc d[10];
    const char *deps[10][1];
    for (int k = 0; k < count; k++) {
      int t = i + k;
      tg_task_desc x = TG_TASK_DESC_INIT;
      x.id = s->ids[t];
      x.fn = job_fn;
      x.user = &s->jobs[t];
      x.priority = t % 3 - 1;
      if (t % 3 == 2) { /* depend on this thread's previous task */
        deps[k][0] = s->ids[t - 1];
        x.deps = deps[k];
        x.n_deps = 1;
      }
      d[k] = x;
    }
    uint64_t first = 0;
    int rc = count == 1 ? tg_pool_submit(s->pool, d, &first) : tg_pool_submit_batch(s->pool, d, (size_t)count, &first);
    if (rc != TG_OK) {
      s->failures++;
      fprintf(stderr, "submitter %d: %s: %s\n", s->index, tg_error_name(rc), tg_last_error());
    }
    for (int k = 0; k < count; k++) s->seqs[i + k] = first + (uint64_t)k;
    i += count;
  }
  return NULL;
}

static void test_concurrent_submitters(uint32_t workers) {
  tg_pool *pool = tap_pool(workers, 0, 0);
  static struct submitter subs[SUBMITTERS];
  memset(subs, 0, sizeof subs);
  pthread_t threads[SUBMITTERS];
  for (int t = 0; t < SUBMITTERS; t++) {
    subs[t].pool = pool;
    subs[t].index = t;
    CHECK(pthread_create(&threads[t], NULL, submitter_thread, &subs[t]) == 0, "submitter thread");
  }
  for (int t = 0; t < SUBMITTERS; t++) pthread_join(threads[t], NULL);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);

  enum { TOTAL = SUBMITTERS * PER_SUBMITTER };
  static int seq_seen[TOTAL];
  memset(seq_seen, 0, sizeof seq_seen);
  int failures = 0, wrong_runs = 0, wrong_seq = 0, bad_order = 0;
  tg_result r = TG_RESULT_INIT;
  for (int t = 0; t < SUBMITTERS; t++) {
    failures += subs[t].failures;
    for (int i = 0; i < PER_SUBMITTER; i++) {
      job_t *j = &subs[t].jobs[i];
      wrong_runs += j->runs != 1;
      uint64_t s = subs[t].seqs[i];
      if (s >= TOTAL || tg_pool_result_at(pool, s, &r) != TG_OK || !r.id || strcmp(r.id, subs[t].ids[i]) != 0 ||
          r.status != TG_STATUS_SUCCEEDED) {
        wrong_seq++;
        continue;
      }
      seq_seen[s]++;
      if (i % 3 == 2 && !(subs[t].jobs[i - 1].end_ev < j->start_ev)) bad_order++;
    }
  }
  int seq_once = 0;
  for (int s = 0; s < TOTAL; s++) seq_once += seq_seen[s] == 1;
  CHECK(failures == 0, "%d submissions failed", failures);
  CHECK(wrong_runs == 0, "%d tasks did not run exactly once", wrong_runs);
  CHECK(wrong_seq == 0, "%d tasks with a wrong seq, id or status", wrong_seq);
  CHECK(seq_once == TOTAL, "%d of %d seqs handed out exactly once", seq_once, TOTAL);
  CHECK(bad_order == 0, "%d children started before their parent ended", bad_order);
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  CHECK(st.submitted == TOTAL && st.succeeded == TOTAL, "stats: %llu submitted, %llu succeeded",
        (unsigned long long)st.submitted, (unsigned long long)st.succeeded);
  shutdown_and_destroy(pool);
}

int main(void) {
  tap_init();
  test_priorities(0);
  test_priorities(1);
  test_start_times();
  for (size_t i = 0; i < N_WORKER_COUNTS; i++) {
    uint32_t w = worker_counts[i];
    int before = tap_failures();
    int64_t t0 = now_ns();
    test_dependencies(w);
    test_failure_propagation(w);
    test_paths(w);
    test_max_concurrency(w);
    test_timeouts(w);
    test_cancellation(w);
    test_cancel_running_and_queued(w, 0);
    test_cancel_running_and_queued(w, 1);
    test_critical(w);
    test_waits_and_order(w);
    test_shutdown(w);
    test_concurrent_submitters(w);
    printf("# %u workers: %d failures, %lld ms\n", w, tap_failures() - before, (long long)((now_ns() - t0) / 1000000));
  }
  return tg_test_summary();
}
