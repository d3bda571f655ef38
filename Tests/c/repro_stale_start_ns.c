/*
 * repro_stale_start_ns.c: tg_result.start_ns can be earlier than the task's
 * submission (and than its parents' end_ns); queue_ns comes out negative.
 *
 * taskgate.h: start_ns is the CLOCK_MONOTONIC time the task started, and
 * queue_ns runs "from ready (dependencies done) to start". A task cannot start
 * before it was submitted, nor before its dependencies ended.
 *
 * Cause (Sources/TaskGateCore/Scheduler/Worker.swift, execute): to save a
 * clock read, `start = w.lastEnd != 0 ? w.lastEnd : tgs_monotonic_ns()` reuses
 * the end time of the worker's previous task. lastEnd is reset only when
 * findWork() comes back empty, so when the worker pops tasks that do not run
 * (cancelled while queued, or parked on a busy path), lastEnd goes stale and
 * the next task that does run is stamped with a time from before it existed.
 * test_stress.c sees the same thing as children whose start_ns precedes their
 * parent's end_ns (while, by the processors' own clocks, the order was right).
 *
 * Here, with one worker: task "x" ends; the worker then works through 300,000
 * queued tasks that were cancelled; meanwhile "c" is submitted (high priority,
 * so it is taken next). Its start_ns is x's end, before its own submit_ns.
 *
 * Build: gcc -std=c99 -pthread repro_stale_start_ns.c $(pkg-config --cflags --libs taskgate)
 * Expected: "ok". Exit status 1 when the bug shows.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <taskgate.h>

static int gate_open;

static int gate(tg_task_ctx *ctx, void *user) {
  (void)user;
  while (!__atomic_load_n(&gate_open, __ATOMIC_SEQ_CST) && !tg_task_cancelled(ctx)) {
  }
  return TG_TASK_SUCCEEDED;
}
static int noop(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

int main(void) {
  enum { JUNK = 300000, CHUNK = 10000 };
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  tg_pool *pool;
  if (tg_pool_create(&o, &pool) != TG_OK) return 2;

  tg_task_desc g = TG_TASK_DESC_INIT;
  g.id = "gate";
  g.fn = gate;
  tg_pool_submit(pool, &g, NULL);
  tg_task_desc x = TG_TASK_DESC_INIT;
  x.id = "x";
  x.fn = noop;
  x.priority = TG_PRIORITY_HIGH;
  tg_pool_submit(pool, &x, NULL);
  /* Queued behind the gate, then cancelled: popped later without running. */
  tg_task_desc *junk = calloc(CHUNK, sizeof *junk);
  for (int i = 0; i < CHUNK; i++) {
    tg_task_desc j = TG_TASK_DESC_INIT;
    j.fn = noop;
    j.group = "junk";
    junk[i] = j;
  }
  for (int k = 0; k < JUNK / CHUNK; k++) tg_pool_submit_batch(pool, junk, CHUNK, NULL);
  size_t n = 0;
  tg_pool_cancel_group(pool, "junk", &n);

  __atomic_store_n(&gate_open, 1, __ATOMIC_SEQ_CST);
  tg_pool_wait(pool, "x", 10000); /* x ran; the worker now pops cancelled tasks */
  tg_task_desc c = TG_TASK_DESC_INIT;
  c.id = "c";
  c.fn = noop;
  c.priority = TG_PRIORITY_HIGH;
  tg_pool_submit(pool, &c, NULL);
  tg_pool_wait_all(pool, 10000);

  tg_result rx = TG_RESULT_INIT, rc = TG_RESULT_INIT;
  tg_pool_result(pool, "x", &rx);
  tg_pool_result(pool, "c", &rc);
  int bug = rc.start_ns < rc.submit_ns || rc.queue_ns < 0;
  printf("%s: c submit_ns %lld, start_ns %lld (%+lld ns), queue_ns %lld; x end_ns %lld; %zu cancelled\n",
         bug ? "BUG" : "ok", (long long)rc.submit_ns, (long long)rc.start_ns,
         (long long)(rc.start_ns - rc.submit_ns), (long long)rc.queue_ns, (long long)rx.end_ns, n);
  tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 10000);
  tg_pool_destroy(pool);
  free(junk);
  return bug;
}
