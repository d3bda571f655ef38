/* Lock cycle with metadata through taskgate (tg_lock_acquire + tg_lock_release
 * on a reused handle, and tg_lock_with), beside the plain C cycle of
 * ../shared/baselines/locks (run it in the same benchmark run).
 * usage: bench_locks DIR [REPS] */
#define _POSIX_C_SOURCE 200809L
#include <taskgate.h>
#include <unistd.h>
#define BENCH_NAME "bench_locks"
#define N 100000
#define MAX_REPS 64
#include "bench_common.h"

static int noop(void *u) { (void)u; return 0; }

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  if (reps < 1 || reps > MAX_REPS) reps = 5;
  char ldir[4096];
  snprintf(ldir, sizeof ldir, "%s/bench-locks-%d", dir, (int)getpid());
  tg_lock *l = NULL;
  tg_lock_options o = TG_LOCK_OPTIONS_INIT;
  o.holder_id = "task-000123";
  CHECK(tg_lock_open(ldir, "task-000123", &o, &l));
  double v[MAX_REPS];
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    for (long i = 0; i < N; i++) {
      CHECK(tg_lock_acquire(l, 0));
      CHECK(tg_lock_release(l));
    }
    v[r] = now_s() - t0;
  }
  report("taskgate_lock_acquire_release_with_metadata", v, reps, "reused handle");
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    for (long i = 0; i < N; i++) CHECK(tg_lock_with(ldir, "task-000123", &o, 0, noop, NULL, NULL));
    v[r] = now_s() - t0;
  }
  report("taskgate_lock_with_open_acquire_release_close", v, reps, "new handle each cycle");
  tg_lock_close(l);
  size_t cleaned = 0;
  tg_locks_clean(ldir, 0, &cleaned, NULL);
  rmdir(ldir);
  return 0;
}
