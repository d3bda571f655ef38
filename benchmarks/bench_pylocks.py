"""taskgate.FileLock cycles from Python, beside ../shared/baselines/py/filelocks.py
(py-filelock, portalocker) in the same run. usage: bench_pylocks.py DIR [REPS] [N]"""
import os
import sys
import time

import taskgate

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
N = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
ldir = os.path.join(d, f"bench-pylocks-{os.getpid()}")


def bench(name, f):
    f(200)
    v = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(N)
        v.append(time.perf_counter() - t0)
    v.sort()
    med = v[len(v) // 2]
    print(f"RESULT {name} ns_per_op={med / N * 1e9:.1f} ops_per_s={N / med:.0f} (median of {reps}, "
          f"min {v[0] / N * 1e9:.1f} max {v[-1] / N * 1e9:.1f} ns)", flush=True)


lk = taskgate.FileLock("task-000123", dir=ldir, timeout=0)


def reuse(n):
    for _ in range(n):
        lk.acquire()
        lk.release()


def with_new(n):
    for _ in range(n):
        with taskgate.FileLock("task-000123", dir=ldir, timeout=0):
            pass


bench("py_taskgate_FileLock_reuse_acquire_release", reuse)
bench("py_taskgate_FileLock_new_object_with", with_new)
lk.close()
taskgate.clean_stale_locks(ldir)
os.rmdir(ldir) if not os.listdir(ldir) else None
