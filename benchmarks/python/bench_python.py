"""taskgate from Python: 100,000 tasks, the same shapes as the baselines in
../shared/baselines/py (ThreadPoolExecutor: submit 1e5 trivial callables and
wait; the pool is created before timing). Prints RESULT lines.

usage: bench_python.py WORKERS REPS PLUGIN_SO
"""
import concurrent.futures as cf
import sys
import time

import taskgate

N = 100_000


def trivial(x):
    return x


def measure(label, reps, body):
    body()  # warm
    v = []
    for _ in range(reps):
        t0 = time.perf_counter()
        body()
        v.append(time.perf_counter() - t0)
    v.sort()
    med = v[len(v) // 2]
    print(f"RESULT {label} ns_per_op={med / N * 1e9:.1f} ops_per_s={N / med:.0f} "
          f"(in-process median of {reps}, min {v[0] / N * 1e9:.1f} max {v[-1] / N * 1e9:.1f} ns)", flush=True)


def main():
    workers, reps, plugin = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    w = workers
    # A fresh pool per repetition would time pool start-up; one pool, as the
    # ThreadPoolExecutor baseline does.
    with taskgate.Pool(workers=workers) as pool:
        proc = pool.load_plugin(plugin)["sum3"]
        rows = [(i, i, "x") for i in range(N)]

        def submit_callables():
            futs = [pool.submit(trivial, i) for i in range(N)]
            cf.wait(futs)

        def map_callables():
            for _ in pool.map(trivial, range(N)):
                pass

        def batch_callables():
            pool.batch(trivial, ((i,) for i in range(N))).wait()

        def batch_plugin():
            pool.batch(proc, rows).wait()

        def map_plugin():
            for _ in pool.map(proc, range(N), range(N), ["x"] * N):
                pass

        def submit_plugin():
            futs = [pool.submit(proc, i, i, "x") for i in range(N)]
            cf.wait(futs)

        measure(f"py_taskgate_submit_callables_W{w}_1e5", reps, submit_callables)
        measure(f"py_taskgate_map_callables_W{w}_1e5", reps, map_callables)
        measure(f"py_taskgate_batch_callables_W{w}_1e5", reps, batch_callables)
        measure(f"py_taskgate_batch_plugin_W{w}_1e5", reps, batch_plugin)
        measure(f"py_taskgate_map_plugin_W{w}_1e5", reps, map_plugin)
        measure(f"py_taskgate_submit_plugin_W{w}_1e5", reps, submit_plugin)


main()
