/*
 * repro_completion_log.c: a pool that runs more than 4096 tasks crashes.
 *
 * Seen with build/stage/lib/libtaskgate.so.0.1.0 built 2026-11-23 13:47 from
 * commit 806a3b4: any pool whose tasks were submitted in pieces smaller than
 * the total (tg_pool_submit one by one, or tg_pool_submit_batch by 4096) gets
 * SIGSEGV on a worker thread once the 4097th task finishes, in
 * TaskPool.finishOne (Sources/TaskGateCore/Scheduler/Worker.swift), writing
 * the completion log. Cause: the completion log is a Slab written by index
 * (slot = number of tasks completed) but was sized with reserve(count) (room
 * for `count` more elements than its own count, which stays 0), so it never
 * grows past the largest single submission rounded up to a 4096-entry chunk.
 * Commit 78b81a3 ("fix completion log capacity": ensureCapacity(base + count))
 * changes exactly this; rebuild the stage and this program should print OK.
 *
 * build: gcc -std=c99 -O2 -o repro_completion_log repro_completion_log.c \
 *          $(pkg-config --cflags --libs taskgate)
 * run:   ./repro_completion_log [TASKS=4097]   -> "OK ..." or a crash (rc 139)
 */
#include <stdio.h>
#include <stdlib.h>

#include <taskgate.h>

static int empty_task(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 4097; /* 4096 passes, 4097 crashes */
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  tg_pool *pool = NULL;
  if (tg_pool_create(&o, &pool) != TG_OK) return 1;

  tg_task_desc d = TG_TASK_DESC_INIT; /* anonymous, no deps: the simplest task */
  d.fn = empty_task;
  for (long i = 0; i < n; i++)
    if (tg_pool_submit(pool, &d, NULL) != TG_OK) {
      fprintf(stderr, "submit %ld: %s\n", i, tg_last_error());
      return 1;
    }
  int rc = tg_pool_wait_all(pool, 10000);
  tg_pool_stats st = TG_POOL_STATS_INIT;
  tg_pool_stats_get(pool, &st);
  printf("%s: %ld tasks, wait_all rc=%d, succeeded=%llu\n",
         rc == TG_OK && st.succeeded == (uint64_t)n ? "OK" : "WRONG", n, rc,
         (unsigned long long)st.succeeded);
  tg_pool_destroy(pool);
  return rc == TG_OK && st.succeeded == (uint64_t)n ? 0 : 1;
}
