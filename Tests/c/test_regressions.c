/*
 * test_regressions.c: one test per bug a code review found (and the library
 * has fixed since), each built from the review's reproducer so that the bug
 * coming back fails a check (or crashes the program, which run-c-tests counts
 * as a failure):
 *
 *   test_path_uaf            a refused submission declaring a write left the
 *                            path table pointing at freed bytes; the next
 *                            task declaring the path read them.
 *   test_path_alias          the same stale keys let one path get a second id,
 *                            so two writers of it ran at the same time.
 *   test_concurrent_shutdown two threads shutting one pool down at once.
 *   test_cursor              tg_pool_next_completed() with *cursor = UINT64_MAX
 *                            trapped (the cursor was converted to a signed
 *                            64-bit number).
 *   test_wait_submitted_so_far  wait_all and wait_group waited for tasks
 *                            submitted after the call (by processors or by
 *                            another thread), so they never returned while
 *                            submissions went on.
 *   test_sizes               n_deps, n_reads, n_writes or payload_len of 2^63
 *                            or more were taken as negative.
 *   test_idle_shutdown_timeout_0  shutdown(.., 0) of an idle pool could time
 *                            out waiting for its idle workers to exit.
 *   test_group_bytes         group names were compared as Swift Strings, so
 *                            invalid UTF-8 names ("\xff", "\xfe") were equal.
 *   test_many_paths          a task's paths were deduplicated pairwise
 *                            (quadratic in the number of paths).
 *   test_thread_start_failure  a failed pthread_create was a precondition
 *                            failure (crash) instead of TG_ENOMEM.
 *
 * No check depends on how fast anything runs. Every wait has a timeout.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "tap.h"

/* Processors never wait longer than this for anything, so a broken library
   fails checks instead of hanging the program. */
#define GIVE_UP_NS ((int64_t)20 * 1000000000)

/* ---- helpers ----------------------------------------------------------------- */

static int noop_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

/* Drains (or, if that times out, aborts) and destroys the pool, checking both. */
static void finish_pool(tg_pool *pool) {
  int rc = tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS);
  if (!CHECK_RC(rc, TG_OK)) tg_pool_shutdown(pool, TG_SHUTDOWN_ABORT, WAIT_MS);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

static int contains(const char *haystack, const char *needle) {
  return haystack != NULL && strstr(haystack, needle) != NULL;
}

static int status_of(tg_pool *pool, const char *id) {
  tg_result r = TG_RESULT_INIT;
  if (!CHECK_RC(tg_pool_result(pool, id, &r), TG_OK)) return -1;
  return r.status;
}

static uint64_t submitted_count(tg_pool *pool) {
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  return st.submitted;
}

/* How many of the tasks with seq < n have not reached a final status. */
static uint64_t unfinished_below(tg_pool *pool, uint64_t n) {
  uint64_t left = 0;
  for (uint64_t s = 0; s < n; s++) {
    tg_result r = TG_RESULT_INIT;
    if (tg_pool_result_at(pool, s, &r) != TG_OK || r.status < TG_STATUS_SUCCEEDED) left++;
  }
  return left;
}

/* ---- 1. path_uaf ------------------------------------------------------------- */

/* The first submission to a fresh pool is refused (unknown dependency) after
   interning its declared write; then a task declaring the same path is
   submitted. Before the fix the path table kept a key pointing into the arena
   block the refusal freed, and the lookup read freed memory (a crash). */
static void test_path_uaf(void) {
  const char *path[] = {"/tmp/tg_uaf_x"};
  const char *nope[] = {"nope"};

  /* One task refused by tg_pool_submit. */
  tg_pool *pool = tap_pool(0, 0, 0);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "a";
  d.writes = path;
  d.n_writes = 1;
  d.deps = nope;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_EUNKNOWNDEP);
  d.id = "b";
  d.deps = NULL;
  d.n_deps = 0;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "b", WAIT_MS), TG_OK);
  CHECK(status_of(pool, "b") == TG_STATUS_SUCCEEDED, "b succeeded");
  CHECK_RC(tg_pool_wait(pool, "a", 0), TG_ENOTFOUND); /* the refused task left nothing */
  finish_pool(pool);

  /* A batch refused as a whole: its first task declares writes of two paths,
     its second names an unknown dependency. Then tasks writing the paths. */
  const char *paths2[] = {"/tmp/tg_uaf_batch/one", "/tmp/tg_uaf_batch/two"};
  pool = tap_pool(2, 0, 0);
  tg_task_desc b[2] = {TG_TASK_DESC_INIT, TG_TASK_DESC_INIT};
  b[0].fn = noop_fn;
  b[0].id = "first";
  b[0].writes = paths2;
  b[0].n_writes = 2;
  b[1].fn = noop_fn;
  b[1].id = "second";
  b[1].writes = paths2 + 1;
  b[1].n_writes = 1;
  b[1].deps = nope;
  b[1].n_deps = 1;
  CHECK_RC(tg_pool_submit_batch(pool, b, 2, NULL), TG_EUNKNOWNDEP);
  CHECK(submitted_count(pool) == 0, "the refused batch submitted nothing");
  for (int i = 0; i < 2; i++) {
    char id[16];
    snprintf(id, sizeof id, "again%d", i);
    d = (tg_task_desc)TG_TASK_DESC_INIT;
    d.fn = noop_fn;
    d.id = id;
    d.writes = &paths2[i];
    d.n_writes = 1;
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "both";
  d.writes = paths2;
  d.n_writes = 2;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(status_of(pool, "again0") == TG_STATUS_SUCCEEDED && status_of(pool, "again1") == TG_STATUS_SUCCEEDED &&
            status_of(pool, "both") == TG_STATUS_SUCCEEDED,
        "the tasks writing the refused batch's paths succeeded");
  finish_pool(pool);
}

/* ---- 2. path_alias ------------------------------------------------------------ */

static int alias_in_flight, alias_max_in_flight, alias_release, alias_runs;

/* A writer of the path: counts writers in flight. user != NULL: hold the
   write until alias_release (or GIVE_UP_NS); otherwise sleep a little, which
   only widens the window in which an overlap would be seen. */
static int alias_writer(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  at_add(&alias_runs, 1);
  at_max(&alias_max_in_flight, at_add(&alias_in_flight, 1));
  if (user) {
    int64_t give_up = now_ns() + GIVE_UP_NS;
    while (!at_load(&alias_release) && now_ns() < give_up) sleep_us(500);
  } else {
    sleep_us(20000);
  }
  at_add(&alias_in_flight, -1);
  return TG_TASK_SUCCEEDED;
}

/* path_alias.c: after a refused submission, the path's key in the path table
   pointed at bytes that the next allocation ("overwrite_key", an id of the
   right length) overwrote; the path then got a second id and a second writer
   ran beside the first. */
static void test_path_alias(void) {
  at_store(&alias_in_flight, 0);
  at_store(&alias_max_in_flight, 0);
  at_store(&alias_release, 0);
  at_store(&alias_runs, 0);
  tg_pool *pool = tap_pool(2, 0, 0);
  const char *path[] = {"/tmp/tg_alias_x"}; /* 15 bytes */
  const char *nope[] = {"nope"};

  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "warm";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);

  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "r";
  d.writes = path;
  d.n_writes = 1;
  d.deps = nope;
  d.n_deps = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_EUNKNOWNDEP);

  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = alias_writer;
  d.user = (void *)1; /* holds the write */
  d.id = "w1";
  d.writes = path;
  d.n_writes = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&alias_runs, 1, WAIT_MS), "w1 started");

  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "overwrite_key"; /* 14 bytes: landed on the stale key */
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);

  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = alias_writer;
  d.id = "w3";
  d.writes = path;
  d.n_writes = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);

  /* While w1 holds the write, w3 cannot end (the other worker is free). */
  CHECK_RC(tg_pool_wait(pool, "overwrite_key", WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "w3", 300), TG_ETIMEDOUT);
  int st = status_of(pool, "w3");
  CHECK(st == TG_STATUS_QUEUED || st == TG_STATUS_PENDING, "w3 waits for w1's write: status %s",
        tg_status_name(st));
  CHECK(at_load(&alias_runs) == 1, "only w1 ran so far (%d writers ran)", at_load(&alias_runs));

  at_store(&alias_release, 1);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(status_of(pool, "w1") == TG_STATUS_SUCCEEDED && status_of(pool, "w3") == TG_STATUS_SUCCEEDED,
        "both writers succeeded");
  CHECK(at_load(&alias_runs) == 2, "both writers ran (%d)", at_load(&alias_runs));
  CHECK(at_load(&alias_max_in_flight) == 1, "writers of %s in flight at once: %d (must be 1)", path[0],
        at_load(&alias_max_in_flight));
  finish_pool(pool);
}

/* ---- 3. concurrent shutdown ----------------------------------------------------- */

typedef struct shut_arg {
  tg_pool *pool;
  pthread_barrier_t *barrier;
  int rc;
} shut_arg_t;

static void *shutdown_thread(void *arg) {
  shut_arg_t *a = (shut_arg_t *)arg;
  pthread_barrier_wait(a->barrier);
  a->rc = tg_pool_shutdown(a->pool, TG_SHUTDOWN_DRAIN, -1);
  return NULL;
}

/* dshut.c: two threads call tg_pool_shutdown(DRAIN, -1) at once. Before the
   fix both stopped and joined the workers (a crash, a hang or an error). */
static void test_concurrent_shutdown(void) {
  enum { ITERS = 200, WORKERS = 4 };
  int bad_create = 0, bad_shutdown = 0, bad_destroy = 0, bad_thread = 0;
  int first_bad = -1, first_rc[2] = {0, 0};
  for (int i = 0; i < ITERS; i++) {
    tg_pool_options o = TG_POOL_OPTIONS_INIT;
    o.workers = WORKERS;
    tg_pool *pool = NULL;
    if (tg_pool_create(&o, &pool) != TG_OK) {
      bad_create++;
      continue;
    }
    /* Every other pool has a little work to drain. */
    if (i % 2) {
      for (int k = 0; k < 8; k++) {
        tg_task_desc d = TG_TASK_DESC_INIT;
        d.fn = noop_fn;
        tg_pool_submit(pool, &d, NULL);
      }
    }
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    shut_arg_t args[2] = {{pool, &barrier, 99}, {pool, &barrier, 99}};
    pthread_t t[2];
    int made = 0;
    for (int k = 0; k < 2; k++) made += pthread_create(&t[k], NULL, shutdown_thread, &args[k]) == 0;
    if (made != 2) {
      bad_thread++; /* cannot happen in practice; do not leave a thread at the barrier */
      fprintf(stderr, "cannot start the shutdown threads\n");
      tg_test_summary();
      exit(1);
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_barrier_destroy(&barrier);
    if (args[0].rc != TG_OK || args[1].rc != TG_OK) {
      if (bad_shutdown++ == 0) {
        first_bad = i;
        first_rc[0] = args[0].rc;
        first_rc[1] = args[1].rc;
      }
    }
    if (tg_pool_destroy(pool) != TG_OK) bad_destroy++;
  }
  CHECK(bad_create == 0, "%d of %d pools could not be created", bad_create, ITERS);
  CHECK(bad_thread == 0, "threads");
  CHECK(bad_shutdown == 0, "%d of %d pools: concurrent shutdowns did not both return OK (first: pool %d, %s and %s)",
        bad_shutdown, ITERS, first_bad, tg_error_name(first_rc[0]), tg_error_name(first_rc[1]));
  CHECK(bad_destroy == 0, "%d of %d pools: destroy after the shutdowns did not return OK", bad_destroy, ITERS);
}

/* ---- 4. cursor ---------------------------------------------------------------- */

/* cursor.c: *cursor = UINT64_MAX trapped in the conversion to Int64. */
static void test_cursor(void) {
  const uint64_t cursors[] = {UINT64_MAX, UINT64_MAX - 1, (uint64_t)INT64_MAX + 1, (uint64_t)INT64_MAX, 1000};
  const size_t n = sizeof cursors / sizeof cursors[0];
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_result r = TG_RESULT_INIT;

  /* No task at all. */
  for (size_t i = 0; i < n; i++) {
    uint64_t c = cursors[i];
    CHECK_RC(tg_pool_next_completed(pool, &c, 0, &r), TG_ETIMEDOUT);
    CHECK(c == cursors[i], "cursor %llu unchanged (%llu)", (unsigned long long)cursors[i], (unsigned long long)c);
  }
  uint64_t c = UINT64_MAX;
  CHECK_RC(tg_pool_next_completed(pool, &c, 5, &r), TG_ETIMEDOUT); /* a short wait, too */

  /* With ended tasks: still nothing after cursors far past them. */
  for (int k = 0; k < 3; k++) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = noop_fn;
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  for (size_t i = 0; i < n; i++) {
    c = cursors[i];
    CHECK_RC(tg_pool_next_completed(pool, &c, 0, &r), TG_ETIMEDOUT);
    CHECK(c == cursors[i], "cursor %llu unchanged (%llu)", (unsigned long long)cursors[i], (unsigned long long)c);
  }
  c = 0;
  CHECK_RC(tg_pool_next_completed(pool, &c, 0, &r), TG_OK);
  CHECK(c == 1, "a cursor from 0 still works (%llu)", (unsigned long long)c);

  /* After shutdown: no more results will come, for any cursor past the end. */
  CHECK_RC(tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS), TG_OK);
  for (size_t i = 0; i < n; i++) {
    c = cursors[i];
    CHECK_RC(tg_pool_next_completed(pool, &c, 0, &r), TG_ENOMORE);
  }
  c = UINT64_MAX;
  CHECK_RC(tg_pool_next_completed(pool, &c, WAIT_MS, &r), TG_ENOMORE);
  CHECK_RC(tg_pool_destroy(pool), TG_OK);
}

/* ---- 5. wait_all / wait_group wait for the tasks submitted so far ---------------- */

static tg_pool *chain_pool;
static int chain_stop, chain_runs, chain_bad_submits;

/* Each run submits its successor (group "g"), then sleeps 1 ms: never more
   than two unfinished tasks, yet an endless stream of new ones. */
static int chain_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  at_add(&chain_runs, 1);
  if (!at_load(&chain_stop)) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = chain_fn;
    d.group = "g";
    if (tg_pool_submit(chain_pool, &d, NULL) != TG_OK) at_add(&chain_bad_submits, 1);
  }
  sleep_us(1000);
  return TG_TASK_SUCCEEDED;
}

static int nap_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  sleep_us(2000);
  return TG_TASK_SUCCEEDED;
}

static tg_pool *producer_pool;
static int producer_stop, producer_bad_submits, producer_count;

/* waitall_sofar.c's producer: a task of group "g" every millisecond, each
   taking 2 ms on the one worker, so the backlog only grows. */
static void *producer(void *arg) {
  (void)arg;
  while (!at_load(&producer_stop)) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.fn = nap_fn;
    d.group = "g";
    if (tg_pool_submit(producer_pool, &d, NULL) != TG_OK) at_add(&producer_bad_submits, 1);
    at_add(&producer_count, 1);
    sleep_us(1000);
  }
  return NULL;
}

/* Submits a named task (group "g") that sleeps 2 ms. */
static void submit_named(tg_pool *pool, const char *id) {
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = nap_fn;
  d.id = id;
  d.group = "g";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
}

/* After a wait for "submitted so far" returned OK: the named task submitted
   before the call, and every task numbered below the count taken before the
   call, have ended. */
static void check_ended_before(tg_pool *pool, const char *id, uint64_t before, const char *what) {
  CHECK_RC(tg_pool_wait(pool, id, 0), TG_OK);
  int st = status_of(pool, id);
  CHECK(st == TG_STATUS_SUCCEEDED, "%s: '%s', submitted before the call, has ended: %s", what, id,
        tg_status_name(st));
  uint64_t left = unfinished_below(pool, before);
  CHECK(left == 0, "%s: %llu of the %llu tasks submitted before the call have not ended", what,
        (unsigned long long)left, (unsigned long long)before);
}

/* waitall_chain.c and waitall_sofar.c: wait_all and wait_group never returned
   while new tasks kept coming. */
static void test_wait_submitted_so_far(void) {
  const int64_t timeout_ms = 5000; /* with the bug: TG_ETIMEDOUT after this */

  /* Tasks that submit their successors. */
  at_store(&chain_stop, 0);
  at_store(&chain_runs, 0);
  at_store(&chain_bad_submits, 0);
  chain_pool = tap_pool(2, 0, 0);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = chain_fn;
  d.group = "g";
  CHECK_RC(tg_pool_submit(chain_pool, &d, NULL), TG_OK);
  CHECK(wait_flag(&chain_runs, 5, WAIT_MS), "the chain runs");

  submit_named(chain_pool, "before_all");
  uint64_t before = submitted_count(chain_pool);
  CHECK_RC(tg_pool_wait_all(chain_pool, timeout_ms), TG_OK);
  check_ended_before(chain_pool, "before_all", before, "chain, wait_all");

  submit_named(chain_pool, "before_group");
  before = submitted_count(chain_pool);
  CHECK_RC(tg_pool_wait_group(chain_pool, "g", timeout_ms), TG_OK);
  check_ended_before(chain_pool, "before_group", before, "chain, wait_group");

  at_store(&chain_stop, 1);
  CHECK_RC(tg_pool_wait_all(chain_pool, WAIT_MS), TG_OK);
  CHECK(at_load(&chain_bad_submits) == 0, "%d submissions from processors failed", at_load(&chain_bad_submits));
  finish_pool(chain_pool);
  chain_pool = NULL;

  /* A thread that keeps submitting. */
  at_store(&producer_stop, 0);
  at_store(&producer_bad_submits, 0);
  at_store(&producer_count, 0);
  producer_pool = tap_pool(1, 0, 0);
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, producer, NULL) == 0, "producer thread")) {
    finish_pool(producer_pool);
    return;
  }
  CHECK(wait_flag(&producer_count, 10, WAIT_MS), "the producer submits");

  submit_named(producer_pool, "mine");
  before = submitted_count(producer_pool);
  CHECK_RC(tg_pool_wait_all(producer_pool, timeout_ms), TG_OK);
  check_ended_before(producer_pool, "mine", before, "producer, wait_all");

  submit_named(producer_pool, "mine_too");
  before = submitted_count(producer_pool);
  CHECK_RC(tg_pool_wait_group(producer_pool, "g", timeout_ms), TG_OK);
  check_ended_before(producer_pool, "mine_too", before, "producer, wait_group");

  at_store(&producer_stop, 1);
  pthread_join(t, NULL);
  CHECK(at_load(&producer_bad_submits) == 0, "%d submissions of the producer failed",
        at_load(&producer_bad_submits));
  finish_pool(producer_pool);
  producer_pool = NULL;
}

/* ---- 6. sizes ------------------------------------------------------------------ */

/* Submits d alone, then as the second task of a batch; both must be refused
   with TG_EINVAL and a detail naming `field`. */
static void expect_size_refused(tg_pool *pool, const tg_task_desc *d, const char *field, const char *how) {
  char detail[512];
  int rc = tg_pool_submit(pool, d, NULL);
  snprintf(detail, sizeof detail, "%s", tg_last_error());
  CHECK(rc == TG_EINVAL, "%s: submit returned %s, expected EINVAL", how, tg_error_name(rc));
  CHECK(contains(detail, field), "%s: the detail '%s' names %s", how, detail, field);
  CHECK(contains(detail, d->id), "%s: the detail '%s' names the task '%s'", how, detail, d->id);

  tg_task_desc b[2] = {TG_TASK_DESC_INIT, TG_TASK_DESC_INIT};
  b[0].fn = noop_fn;
  b[0].id = "batch_fine";
  b[1] = *d;
  rc = tg_pool_submit_batch(pool, b, 2, NULL);
  snprintf(detail, sizeof detail, "%s", tg_last_error());
  CHECK(rc == TG_EINVAL, "%s, in a batch: returned %s, expected EINVAL", how, tg_error_name(rc));
  CHECK(contains(detail, field), "%s, in a batch: the detail '%s' names %s", how, detail, field);
}

/* sizes.c: counts of 2^63 or more arrive in Swift as negative Ints. */
static void test_sizes(void) {
  static const char *const one[] = {"does-not-exist"};
  static const unsigned char payload[1] = {42};
  const char *fields[] = {"n_deps", "n_reads", "n_writes", "payload_len"};
  const size_t values[] = {SIZE_MAX, (size_t)1 << (sizeof(size_t) * 8 - 1)};
  tg_pool *pool = tap_pool(2, 0, 0);
  for (size_t f = 0; f < 4; f++) {
    for (int with_ptr = 1; with_ptr >= 0; with_ptr--) {
      for (size_t v = 0; v < 2; v++) {
        tg_task_desc d = TG_TASK_DESC_INIT;
        d.fn = noop_fn;
        d.id = "sized";
        switch (f) {
        case 0:
          d.deps = with_ptr ? one : NULL;
          d.n_deps = values[v];
          break;
        case 1:
          d.reads = with_ptr ? one : NULL;
          d.n_reads = values[v];
          break;
        case 2:
          d.writes = with_ptr ? one : NULL;
          d.n_writes = values[v];
          break;
        default:
          d.payload = with_ptr ? payload : NULL;
          d.payload_len = values[v];
          break;
        }
        char how[96];
        snprintf(how, sizeof how, "%s = %zu, pointer %s", fields[f], values[v], with_ptr ? "non-NULL" : "NULL");
        expect_size_refused(pool, &d, fields[f], how);
      }
    }
  }
  CHECK(submitted_count(pool) == 0, "the refused tasks submitted nothing");
  /* The ids are free, and the pool works. */
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "sized";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d.id = "batch_fine";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(status_of(pool, "sized") == TG_STATUS_SUCCEEDED, "a valid task after the refusals succeeded");
  finish_pool(pool);
}

/* ---- 7. shutdown(.., 0) of an idle pool ------------------------------------------ */

/* shut0.c: the workers of an idle pool had not exited yet when a timeout of
   0 ran out, so shutdown returned TG_ETIMEDOUT though no work remained. */
static void test_idle_shutdown_timeout_0(void) {
  enum { ITERS = 50 };
  int bad_drain = 0, bad_abort = 0, bad_destroy = 0, first_rc = TG_OK;
  char first_detail[256] = "";
  for (int i = 0; i < ITERS; i++) {
    tg_pool *pool = tap_pool(4, 0, 0);
    int mode = i % 5 == 4 ? TG_SHUTDOWN_ABORT : TG_SHUTDOWN_DRAIN; /* mostly DRAIN, as the reproducer */
    int rc = tg_pool_shutdown(pool, mode, 0);
    if (rc != TG_OK) {
      if (bad_drain + bad_abort == 0) {
        first_rc = rc;
        snprintf(first_detail, sizeof first_detail, "%s", tg_last_error());
      }
      if (mode == TG_SHUTDOWN_DRAIN) bad_drain++;
      else bad_abort++;
      tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS);
    }
    if (tg_pool_destroy(pool) != TG_OK) bad_destroy++;
  }
  CHECK(bad_drain == 0 && bad_abort == 0,
        "idle pools refused shutdown(.., 0): %d with DRAIN, %d with ABORT; first: %s (%s)", bad_drain, bad_abort,
        tg_error_name(first_rc), first_detail);
  CHECK(bad_destroy == 0, "%d destroys failed", bad_destroy);
}

/* ---- 8. group names are bytes ------------------------------------------------------ */

/* grp_utf8.c: group names were keyed by Swift Strings, which turn every
   invalid UTF-8 sequence into U+FFFD: "\xff" and "\xfe" were one group. */
static void test_group_bytes(void) {
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = noop_fn;
  d.id = "a";
  d.group = "\xff";
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK_RC(tg_pool_wait_group(pool, "\xfe", 0), TG_ENOTFOUND);
  CHECK_RC(tg_pool_wait_group(pool, "\xff", 0), TG_OK);
  size_t n = 99;
  CHECK_RC(tg_pool_cancel_group(pool, "\xfe", &n), TG_ENOTFOUND);
  tg_result r = TG_RESULT_INIT;
  CHECK_RC(tg_pool_result(pool, "a", &r), TG_OK);
  CHECK(r.group != NULL && strcmp(r.group, "\xff") == 0, "a's group is the byte 0xff (0x%02x)",
        r.group ? (unsigned)(unsigned char)r.group[0] : 0u);

  /* More names that are not UTF-8, each its own group. */
  static const char *const names[] = {"x\x80", "x\x81", "\xc3", "\xc4", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80"};
  const size_t nn = sizeof names / sizeof names[0];
  d.id = NULL;
  d.group = names[0];
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  for (size_t i = 1; i < nn; i++) {
    int rc = tg_pool_wait_group(pool, names[i], 0);
    CHECK(rc == TG_ENOTFOUND, "after only group 'x\\x80' of these: wait_group(name %zu) returned %s", i,
          tg_error_name(rc));
  }
  for (size_t i = 1; i < nn; i++) {
    d.group = names[i];
    CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  }
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  tg_pool_stats st = TG_POOL_STATS_INIT;
  CHECK_RC(tg_pool_stats_get(pool, &st), TG_OK);
  for (uint64_t s = 1; s < st.submitted; s++) {
    r = (tg_result)TG_RESULT_INIT;
    CHECK_RC(tg_pool_result_at(pool, s, &r), TG_OK);
    CHECK(r.group != NULL && s - 1 < nn && strcmp(r.group, names[s - 1]) == 0, "task %llu keeps its group's bytes",
          (unsigned long long)s);
  }
  finish_pool(pool);
}

/* ---- 9. many paths --------------------------------------------------------------- */

enum { MANY = 20000 };
static int many_runs;

static int many_fn(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  at_add(&many_runs, 1);
  return TG_TASK_SUCCEEDED;
}

/* manypaths.c: a task's paths were deduplicated pairwise, quadratic in their
   number (20,000 paths took minutes). */
static void test_many_paths(void) {
  static char names[MANY][24];
  static const char *ptrs[MANY];
  for (int i = 0; i < MANY; i++) {
    snprintf(names[i], sizeof names[i], "/data/regress/f%d", i);
    ptrs[i] = names[i];
  }
  at_store(&many_runs, 0);
  tg_pool *pool = tap_pool(2, 0, 0);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.fn = many_fn;
  d.id = "writer";
  d.writes = ptrs;
  d.n_writes = MANY;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  d.id = "reader";
  d.writes = NULL;
  d.n_writes = 0;
  d.reads = ptrs;
  d.n_reads = MANY;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  /* One path of the many, written again, spelled differently. */
  const char *one[] = {"/data//regress/./f19999"};
  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = many_fn;
  d.id = "one";
  d.writes = one;
  d.n_writes = 1;
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait_all(pool, WAIT_MS), TG_OK);
  CHECK(status_of(pool, "writer") == TG_STATUS_SUCCEEDED, "the task writing %d paths succeeded", MANY);
  CHECK(status_of(pool, "reader") == TG_STATUS_SUCCEEDED, "the task reading %d paths succeeded", MANY);
  CHECK(status_of(pool, "one") == TG_STATUS_SUCCEEDED, "a task writing one of them succeeded");
  CHECK(at_load(&many_runs) == 3, "each ran once (%d runs)", at_load(&many_runs));

  /* The sort-merge that replaced the pairwise pass: a task naming one path
     several times (as spelled, and after normalisation) claims it once and
     does not wait for itself. */
  const char *dup_w[] = {"/data/dup", "/data//dup", "/data/./dup", "/data/x/../dup", "/data/dup"};
  const char *dup_r[] = {"/data/dup", "/data/dup2", "/data/dup2"};
  d = (tg_task_desc)TG_TASK_DESC_INIT;
  d.fn = many_fn;
  d.id = "dups";
  d.writes = dup_w;
  d.n_writes = sizeof dup_w / sizeof dup_w[0];
  d.reads = dup_r;
  d.n_reads = sizeof dup_r / sizeof dup_r[0];
  CHECK_RC(tg_pool_submit(pool, &d, NULL), TG_OK);
  CHECK_RC(tg_pool_wait(pool, "dups", WAIT_MS), TG_OK);
  CHECK(status_of(pool, "dups") == TG_STATUS_SUCCEEDED, "a task naming a path several times succeeded");
  finish_pool(pool);
}

/* ---- 10. thread start failure ------------------------------------------------------ */

/* Exit statuses of the child below. */
enum {
  CHILD_ENOMEM = 0,        /* create failed with TG_ENOMEM, the library still works */
  CHILD_CREATED = 1,       /* the environment let all 1024 threads start */
  CHILD_NO_RLIMIT = 10,    /* setrlimit failed */
  CHILD_NO_DETAIL = 11,    /* TG_ENOMEM without a detail */
  CHILD_AFTER_FAILED = 12, /* a small pool could not be created after the failure */
  CHILD_DESTROY = 13,      /* destroy of the 1024-worker pool failed */
  CHILD_OTHER_RC = 20      /* + -rc: create returned another code */
};

static void thread_start_child(void) {
  struct rlimit lim;
  lim.rlim_cur = lim.rlim_max = (rlim_t)256 << 20;
  if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(CHILD_NO_RLIMIT);
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1024;
  tg_pool *pool = NULL;
  int rc = tg_pool_create(&o, &pool);
  if (rc == TG_OK) _exit(tg_pool_destroy(pool) == TG_OK ? CHILD_CREATED : CHILD_DESTROY);
  if (rc != TG_ENOMEM) _exit(CHILD_OTHER_RC + (rc < 0 && rc > -100 ? -rc : 99));
  if (tg_last_error()[0] == '\0') _exit(CHILD_NO_DETAIL);
  /* The workers already started were stopped: a small pool still fits. */
  o.workers = 2;
  pool = NULL;
  if (tg_pool_create(&o, &pool) != TG_OK) _exit(CHILD_AFTER_FAILED);
  if (tg_pool_destroy(pool) != TG_OK) _exit(CHILD_DESTROY);
  _exit(CHILD_ENOMEM);
}

/* nothreads.c: pthread_create failing (here: address space exhausted by
   1024 thread stacks) was a precondition failure, a crash. Runs first, while
   this process has no other thread, since the child forks from it. */
/* Runs child() in a forked process (it must _exit) and waits for it, at most
   WAIT_MS. Returns its exit status, or -1 (with a failed check naming `what`)
   when it did not exit normally in time. */
static int run_in_child(void (*child)(void), const char *what) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (!CHECK(pid >= 0, "fork: %s", strerror(errno))) return -1;
  if (pid == 0) child();
  int status = 0;
  pid_t got = 0;
  int64_t deadline = now_ns() + (int64_t)WAIT_MS * 1000000;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_ns() < deadline) sleep_us(2000);
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CHECK(0, "%s: the child did not finish within %d ms", what, WAIT_MS);
    return -1;
  }
  if (!CHECK(got == pid, "%s: waitpid: %s", what, strerror(errno))) return -1;
  if (!CHECK(WIFEXITED(status), "%s: the child exited normally (%s %d: crashed)", what,
             WIFSIGNALED(status) ? "signal" : "status", WIFSIGNALED(status) ? WTERMSIG(status) : status))
    return -1;
  return WEXITSTATUS(status);
}

static void test_thread_start_failure(void) {
  int code = run_in_child(thread_start_child, "1024 workers under RLIMIT_AS");
  if (code < 0) return;
  CHECK(code == CHILD_ENOMEM || code == CHILD_CREATED,
        "the child's tg_pool_create(1024 workers) under a 256 MiB address space: exit status %d "
        "(0: ENOMEM, 1: created; 10: setrlimit failed, 11: no detail, 12: no pool fits after the failure, "
        "13: destroy failed, 20+n: returned -n)",
        code);
  if (code == CHILD_CREATED) printf("# thread start failure: this environment started all 1024 workers\n");
}

/* 11. Out of memory while copying a submission is TG_ENOMEM naming the task,
   not a trap, and the pool stays usable. In a child (before any other thread
   exists): map the caller's 512 MiB payload first, then cap the address space
   so the library's copy of it cannot be made. */
static void payload_oom_child(void) {
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  tg_pool *pool = NULL;
  if (tg_pool_create(&o, &pool) != TG_OK) _exit(10);
  size_t len = (size_t)512 << 20;
  /* C99 with _POSIX_C_SOURCE hides MAP_ANONYMOUS; an anonymous read-only map of /dev/zero is the same. */
  int zero = open("/dev/zero", O_RDONLY);
  if (zero < 0) _exit(11);
  void *big = mmap(NULL, len, PROT_READ, MAP_PRIVATE, zero, 0);
  close(zero);
  if (big == MAP_FAILED) _exit(11);
  struct rlimit r;
  if (getrlimit(RLIMIT_AS, &r) != 0) _exit(12);
  /* Current use plus 128 MiB: room to work, no room for a 512 MiB copy. */
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (!f || fscanf(f, "%lu", &pages) != 1) _exit(13);
  fclose(f);
  r.rlim_cur = (rlim_t)pages * 4096 + ((rlim_t)128 << 20);
  if (setrlimit(RLIMIT_AS, &r) != 0) _exit(14);
  tg_task_desc d = TG_TASK_DESC_INIT;
  d.id = "heavy";
  d.fn = noop_fn;
  d.payload = big;
  d.payload_len = len;
  int rc = tg_pool_submit(pool, &d, NULL);
  if (rc != TG_ENOMEM) _exit(rc == TG_OK ? 15 : 16);
  if (!strstr(tg_last_error(), "heavy")) _exit(17);
  /* Nothing of it was kept: the id is free and a small task runs. */
  d.payload = NULL;
  d.payload_len = 0;
  if (tg_pool_submit(pool, &d, NULL) != TG_OK) _exit(18);
  if (tg_pool_wait_all(pool, WAIT_MS) != TG_OK) _exit(19);
  tg_result res = TG_RESULT_INIT;
  if (tg_pool_result(pool, "heavy", &res) != TG_OK || res.status != TG_STATUS_SUCCEEDED) _exit(20);
  if (tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, WAIT_MS) != TG_OK || tg_pool_destroy(pool) != TG_OK) _exit(21);
  _exit(0);
}

static void test_payload_oom(void) {
  int code = run_in_child(payload_oom_child, "payload copy under a capped address space");
  if (code < 0) return;
  CHECK(code == 0,
        "payload copy under a capped address space: child exit status %d (15: TG_OK, 16: another code, "
        "17: tg_last_error does not name the task, 18-21: pool not usable afterwards; 10-14: set-up)",
        code);
}

int main(void) {
  tap_init();
  test_thread_start_failure();
  test_payload_oom();
  test_path_uaf();
  test_path_alias();
  test_concurrent_shutdown();
  test_cursor();
  test_wait_submitted_so_far();
  test_sizes();
  test_idle_shutdown_timeout_0();
  test_group_bytes();
  test_many_paths();
  return tg_test_summary();
}
