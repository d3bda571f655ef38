/*
 * repro_cancel_all_lets_queued_run.c: tg_pool_cancel_all() can let tasks
 * that were queued when it was called run (and succeed) instead of
 * cancelling them.
 *
 * taskgate.h: "Cancels every unfinished task of the pool". Here two workers
 * are held by two running tasks (they return as soon as they see
 * tg_task_cancelled()) and six quick tasks are queued behind them. After
 * cancel_all, all eight should be TG_STATUS_CANCELLED and the six should
 * never have run. Sometimes cancel_all reports only 2 cancelled and the six
 * queued tasks succeed.
 *
 * Cause (Sources/TaskGateCore/Scheduler/PoolControl.swift, cancelAll): it
 * cancels tasks one by one in submission order. Cancelling the running tasks
 * first lets their processors return; the freed workers take the queued
 * tasks and finish them before the loop reaches them. (cancel_group and the
 * critical-group cascade walk members the same way.) Cancelling the tasks
 * that have not started before the running ones, or marking the pool so
 * workers start nothing cancelled-to-be (as ABORT does with `aborting`),
 * would close the window.
 *
 * Build: gcc -std=c99 -pthread repro_cancel_all_lets_queued_run.c $(pkg-config --cflags --libs taskgate)
 * Runs the scenario 300 times; prints how often it went wrong. Exit 1 if ever.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <taskgate.h>
#include <time.h>

static int hold(tg_task_ctx *ctx, void *user) {
  __atomic_add_fetch((int *)user, 1, __ATOMIC_SEQ_CST);
  while (!tg_task_cancelled(ctx)) {
  }
  return TG_TASK_SUCCEEDED;
}
static int quick(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  __atomic_add_fetch((int *)user, 1, __ATOMIC_SEQ_CST);
  return TG_TASK_SUCCEEDED;
}

int main(void) {
  enum { WORKERS = 2, QUEUED = 6, ROUNDS = 300 };
  int bad_rounds = 0;
  for (int round = 0; round < ROUNDS; round++) {
    tg_pool_options o = TG_POOL_OPTIONS_INIT;
    o.workers = WORKERS;
    tg_pool *pool;
    if (tg_pool_create(&o, &pool) != TG_OK) return 2;
    int started = 0, ran = 0;
    for (int i = 0; i < WORKERS; i++) {
      tg_task_desc d = TG_TASK_DESC_INIT;
      d.fn = hold;
      d.user = &started;
      tg_pool_submit(pool, &d, NULL);
    }
    while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < WORKERS) {
    }
    for (int i = 0; i < QUEUED; i++) {
      tg_task_desc d = TG_TASK_DESC_INIT;
      d.fn = quick;
      d.user = &ran;
      tg_pool_submit(pool, &d, NULL);
    }
    size_t n = 0;
    tg_pool_cancel_all(pool, &n);
    tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 10000);
    if (n != WORKERS + QUEUED || ran != 0) {
      if (bad_rounds++ < 3)
        printf("BUG (round %d): cancel_all cancelled %zu of %d; %d queued tasks ran anyway\n", round, n,
               WORKERS + QUEUED, ran);
    }
    tg_pool_destroy(pool);
  }
  printf("%s: %d of %d rounds let queued tasks run past cancel_all\n", bad_rounds ? "BUG" : "ok", bad_rounds, ROUNDS);
  return bad_rounds != 0;
}
