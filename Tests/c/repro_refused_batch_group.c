/*
 * repro_refused_batch_group.c: a refused batch leaves its group behind.
 *
 * taskgate.h: tg_pool_submit_batch() is "all or nothing ... on any error
 * nothing was submitted", and TG_ENOTFOUND means "no such task or group".
 * After a batch naming group "ghost" is refused (here: a duplicate id), no
 * task was ever submitted to "ghost", yet tg_pool_wait_group("ghost") and
 * tg_pool_cancel_group("ghost") return TG_OK instead of TG_ENOTFOUND.
 *
 * Cause (Sources/TaskGateCore/Scheduler/TaskPool.swift): submitBatch() interns
 * group names in phase 1 (internGroup adds to groupIndex/groupNames/
 * groupMembers), and refuse() rolls back ids, tasks, claims and bytes but not
 * the group tables.
 *
 * Build: gcc -std=c99 -pthread repro_refused_batch_group.c $(pkg-config --cflags --libs taskgate)
 * Expected: two "ok" lines. Exit status 1 when the bug is present.
 */
#include <stdio.h>
#include <taskgate.h>

static int noop(tg_task_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
  return TG_TASK_SUCCEEDED;
}

int main(void) {
  tg_pool *pool;
  if (tg_pool_create(NULL, &pool) != TG_OK) return 2;
  tg_task_desc b[2] = {TG_TASK_DESC_INIT, TG_TASK_DESC_INIT};
  for (int i = 0; i < 2; i++) {
    b[i].id = "same-id"; /* duplicate: the batch is refused */
    b[i].fn = noop;
    b[i].group = "ghost";
  }
  int rc = tg_pool_submit_batch(pool, b, 2, NULL);
  printf("submit_batch -> %s (expected EDUPLICATE)\n", tg_error_name(rc));

  int bad = 0;
  rc = tg_pool_wait_group(pool, "ghost", 0);
  printf("%s: wait_group(\"ghost\") -> %s (expected ENOTFOUND)\n", rc == TG_ENOTFOUND ? "ok" : "BUG",
         tg_error_name(rc));
  bad |= rc != TG_ENOTFOUND;
  size_t n = 0;
  rc = tg_pool_cancel_group(pool, "ghost", &n);
  printf("%s: cancel_group(\"ghost\") -> %s (expected ENOTFOUND)\n", rc == TG_ENOTFOUND ? "ok" : "BUG",
         tg_error_name(rc));
  bad |= rc != TG_ENOTFOUND;
  tg_pool_destroy(pool);
  return bad;
}
