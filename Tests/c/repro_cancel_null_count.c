/*
 * repro_cancel_null_count.c: tg_pool_cancel_group() and tg_pool_cancel_all()
 * do nothing when out_count is NULL.
 *
 * taskgate.h documents out_count as "(may be NULL)". With NULL, both calls
 * return TG_OK without cancelling anything, and cancel_group() does not even
 * look the group up (an unknown group gives TG_OK, not TG_ENOTFOUND).
 *
 * Cause (Sources/TaskGate/PoolExports.swift): `outCount?.pointee = try
 * pool.cancel(group: group)` and `outCount?.pointee = pool.cancelAll()`. In
 * Swift, an optional-chained assignment does not evaluate its right-hand side
 * when the optional is nil, so the engine is never called.
 *
 * Build: gcc -std=c99 -pthread repro_cancel_null_count.c $(pkg-config --cflags --libs taskgate)
 * Expected: three "ok" lines. Exit status 1 when the bug is present.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
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
  tg_pool_options o = TG_POOL_OPTIONS_INIT;
  o.workers = 1;
  tg_pool *pool;
  if (tg_pool_create(&o, &pool) != TG_OK) return 2;

  /* "child" (group "g") waits on "gate", so it is pending. */
  tg_task_desc g = TG_TASK_DESC_INIT;
  g.id = "gate";
  g.fn = gate;
  tg_pool_submit(pool, &g, NULL);
  const char *deps[] = {"gate"};
  tg_task_desc c = TG_TASK_DESC_INIT;
  c.id = "child";
  c.fn = noop;
  c.deps = deps;
  c.n_deps = 1;
  c.group = "g";
  tg_pool_submit(pool, &c, NULL);

  int bad = 0;
  int rc = tg_pool_cancel_group(pool, "no-such-group", NULL);
  printf("%s: cancel_group(unknown group, NULL) -> %s (expected ENOTFOUND)\n", rc == TG_ENOTFOUND ? "ok" : "BUG",
         tg_error_name(rc));
  bad |= rc != TG_ENOTFOUND;

  rc = tg_pool_cancel_group(pool, "g", NULL);
  tg_result r = TG_RESULT_INIT;
  tg_pool_result(pool, "child", &r);
  printf("%s: cancel_group(\"g\", NULL) -> %s; child is %s (expected cancelled)\n",
         r.status == TG_STATUS_CANCELLED ? "ok" : "BUG", tg_error_name(rc), tg_status_name(r.status));
  bad |= r.status != TG_STATUS_CANCELLED;

  rc = tg_pool_cancel_all(pool, NULL);
  tg_pool_result(pool, "gate", &r);
  printf("%s: cancel_all(NULL) -> %s; gate is %s (expected cancelled)\n",
         r.status == TG_STATUS_CANCELLED ? "ok" : "BUG", tg_error_name(rc), tg_status_name(r.status));
  bad |= r.status != TG_STATUS_CANCELLED;

  __atomic_store_n(&gate_open, 1, __ATOMIC_SEQ_CST);
  tg_pool_shutdown(pool, TG_SHUTDOWN_DRAIN, 10000);
  tg_pool_destroy(pool);
  return bad;
}
