"""Python callables through the pool: futures, ordering, constraints, errors."""
import asyncio
import concurrent.futures as cf
import gc
import threading
import time
import weakref

import pytest

import taskgate
from conftest import WAIT


def test_submit_returns_value_and_result_details(workers):
    with taskgate.Pool(workers=workers) as pool:
        f = pool.submit(pow, 2, 10, id="pow")
        assert isinstance(f, cf.Future)
        assert f.result(WAIT) == 1024
        r = f.task_result(WAIT)
        assert (r.id, r.status, r.ok, r.output, r.error, r.attempts) == ("pow", "succeeded", True, 1024, None, 1)
        assert 0 <= r.worker < workers
        assert 0 < r.submit_ns <= r.start_ns <= r.end_ns and r.duration >= 0
        assert pool.stats()["succeeded"] == 1


def test_kwargs_reach_the_callable():
    with taskgate.Pool(workers=2) as pool:
        assert pool.submit(lambda a, *, b: a - b, 10, b=3).result(WAIT) == 7


def test_exception_in_callable_fails_the_task_with_type_and_message(workers):
    class Oops(RuntimeError):
        pass

    def boom(x):
        raise Oops(f"bad value {x}")

    with taskgate.Pool(workers=workers) as pool:
        f = pool.submit(boom, 7, id="boom")
        with pytest.raises(Oops, match="bad value 7"):
            f.result(WAIT)
        assert isinstance(f.exception(WAIT), Oops)
        r = pool.result("boom")
        assert r.status == "failed" and r.error == "Oops: bad value 7"
        # The pool goes on.
        assert pool.submit(int, "5").result(WAIT) == 5


def test_base_exceptions_and_bad_str_never_crash():
    class BadStr(Exception):
        def __str__(self):
            raise ValueError("no")

    def exit_():
        raise SystemExit(3)

    def bad():
        raise BadStr()

    with taskgate.Pool(workers=2) as pool:
        f1, f2 = pool.submit(exit_), pool.submit(bad)
        assert isinstance(f1.exception(WAIT), SystemExit)
        assert isinstance(f2.exception(WAIT), BadStr)
        assert f1.task_result().error == "SystemExit: 3"
        assert f2.task_result().error == "BadStr"


def test_dependencies_order_and_skips(workers):
    seen = []
    lock = threading.Lock()

    def note(x):
        with lock:
            seen.append(x)
        return x

    def fail():
        raise ValueError("parent failed")

    with taskgate.Pool(workers=workers) as pool:
        a = pool.submit(note, "a", id="a")
        b = pool.submit(note, "b", id="b", depends_on=["a"])
        c = pool.submit(note, "c", id="c", depends_on=["a", "b"])
        assert c.result(WAIT) == "c" and seen == ["a", "b", "c"]
        bad = pool.submit(fail, id="bad")
        child = pool.submit(note, "child", id="child", depends_on="bad")
        with pytest.raises(taskgate.TaskSkipped) as e:
            child.result(WAIT)
        assert e.value.result.status == "skipped" and "bad" in e.value.result.error
        assert "child" not in seen
        assert isinstance(bad.exception(WAIT), ValueError)


def test_writers_of_one_path_never_overlap(workers, tmp_path):
    inside = [0]
    worst = [0]
    lock = threading.Lock()

    def write():
        with lock:
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
        time.sleep(0.002)
        with lock:
            inside[0] -= 1

    with taskgate.Pool(workers=workers) as pool:
        futs = [pool.submit(write, writes=[str(tmp_path / "out.txt")]) for _ in range(30)]
        cf.wait(futs, WAIT)
    assert worst[0] == 1


def test_priorities_run_high_first_on_one_worker():
    order = []
    gate = threading.Event()
    with taskgate.Pool(workers=1) as pool:
        pool.submit(gate.wait, WAIT)
        low = [pool.submit(order.append, f"low{k}", priority="low") for k in range(3)]
        high = [pool.submit(order.append, f"high{k}", priority=1) for k in range(3)]
        gate.set()
        cf.wait(low + high, WAIT)
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]


def test_timeout_ends_the_task_even_while_the_callable_runs():
    with taskgate.Pool(workers=2) as pool:
        f = pool.submit(time.sleep, 1.0, timeout=0.05, id="slow")
        with pytest.raises(taskgate.TaskTimedOut):
            f.result(WAIT)
        with pytest.raises(TimeoutError):  # also a built-in TimeoutError
            f.result(WAIT)
        assert pool.result("slow").status == "timed_out"


def test_critical_group_cancels_its_siblings():
    gate = threading.Event()

    def fail():
        gate.wait(WAIT)
        raise RuntimeError("down")

    with taskgate.Pool(workers=1) as pool:
        first = pool.submit(fail, group="g", critical=True)
        rest = [pool.submit(time.sleep, 0, group="g") for _ in range(5)]
        gate.set()
        assert isinstance(first.exception(WAIT), RuntimeError)
        for f in rest:
            with pytest.raises(cf.CancelledError):
                f.result(WAIT)
        assert all(f.cancelled() for f in rest)


def test_future_cancel_before_start_and_not_while_running():
    started = threading.Event()
    release = threading.Event()

    def block():
        started.set()
        release.wait(WAIT)
        return "done"

    with taskgate.Pool(workers=1) as pool:
        running = pool.submit(block)
        queued = pool.submit(pow, 2, 2)
        assert started.wait(WAIT)
        assert running.running()
        assert not running.cancel()
        assert queued.cancel() and queued.cancelled() and queued.done()
        with pytest.raises(cf.CancelledError):
            queued.result(0)
        release.set()
        assert running.result(WAIT) == "done"
        assert not queued.running()


def test_concurrent_futures_helpers_and_done_callbacks(workers):
    called = []
    with taskgate.Pool(workers=workers) as pool:
        futs = [pool.submit(lambda k=k: k * k) for k in range(200)]
        futs[0].add_done_callback(lambda f: called.append(f.result()))
        done, not_done = cf.wait(futs, WAIT)
        assert len(done) == 200 and not not_done
        assert sorted(f.result() for f in cf.as_completed(futs, WAIT)) == sorted(k * k for k in range(200))
    assert called == [0]


def test_asyncio_await_and_wrap_future():
    async def main(pool):
        a = await pool.submit(sum, [1, 2, 3])
        b = await asyncio.wrap_future(pool.submit(max, 4, 9))
        many = await asyncio.gather(*(pool.submit(abs, -k) for k in range(50)))
        with pytest.raises(ZeroDivisionError):
            await pool.submit(lambda: 1 / 0)
        return a, b, many

    with taskgate.Pool(workers=2) as pool:
        a, b, many = asyncio.run(main(pool))
    assert (a, b, many) == (6, 9, list(range(50)))


def test_map_and_batch(workers):
    with taskgate.Pool(workers=workers) as pool:
        assert list(pool.map(lambda a, b: a * b, range(1000), range(1000))) == [k * k for k in range(1000)]
        b = pool.batch(divmod, [(k, 3) for k in range(10)])
        b.wait(WAIT)
        assert b.done() and len(b) == 10
        assert [r.output for r in b.results()] == [divmod(k, 3) for k in range(10)]
        assert list(pool.map(str, [])) == []

        def maybe(k):
            if k == 5:
                raise KeyError(k)
            return k

        it = pool.map(maybe, range(10))
        assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(KeyError):
            next(it)
        results = pool.batch(maybe, [(k,) for k in range(10)]).results(WAIT)
        assert [r.status for r in results].count("failed") == 1 and results[5].error == "KeyError: 5"


def test_map_timeout():
    with taskgate.Pool(workers=1) as pool:
        with pytest.raises(TimeoutError):
            list(pool.map(time.sleep, [0.5, 0.5], timeout=0.1))
        pool.cancel_all()


def test_garbage_collection_while_callbacks_are_pending(workers):
    gate = threading.Event()
    refs = []

    def make(k):
        payload = [k] * 100

        def task():
            gate.wait(WAIT)
            return sum(payload)

        refs.append(weakref.ref(task))
        return task

    with taskgate.Pool(workers=workers) as pool:
        futs = [pool.submit(make(k)) for k in range(300)]
        for _ in range(5):
            gc.collect()
        assert all(r() is not None for r in refs)  # C still needs them: alive
        gate.set()
        assert [f.result(WAIT) for f in futs] == [k * 100 for k in range(300)]
    futs = None
    for _ in range(3):
        gc.collect()
    assert all(r() is None for r in refs)  # and freed once it does not


def test_many_python_threads_submitting_at_once(workers):
    n_threads, per = 8, 500
    out = {}
    with taskgate.Pool(workers=workers) as pool:
        def client(t):
            futs = [pool.submit(lambda a, b: (a, b), t, k, id=f"t{t}-{k}") for k in range(per)]
            out[t] = [f.result(WAIT) for f in futs]

        threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(WAIT)
        assert not any(th.is_alive() for th in threads)
        assert pool.stats()["succeeded"] == n_threads * per
    assert all(out[t] == [(t, k) for k in range(per)] for t in range(n_threads))


def test_nested_submission_from_a_callable():
    with taskgate.Pool(workers=2) as pool:
        def parent():
            return pool.submit(pow, 3, 3)

        child = pool.submit(parent).result(WAIT)
        assert child.result(WAIT) == 27


def test_pool_wait_cancel_and_read():
    release = threading.Event()
    with taskgate.Pool(workers=1) as pool:
        pool.submit(release.wait, WAIT, id="gate", group="g")
        pool.submit(pow, 1, 1, id="queued", group="g")
        with pytest.raises(taskgate.TimeoutError):
            pool.wait(0.05)
        with pytest.raises(taskgate.TimeoutError):
            pool.wait_group("g", 0.05)
        assert pool.cancel("queued") and not pool.cancel("queued")
        assert pool.result("queued").status == "cancelled"
        release.set()
        r = pool.wait_for("gate", WAIT)
        assert r.ok
        pool.wait(WAIT)
        assert pool.cancel_all() == 0
        assert [r.id for r in pool.completed(timeout=0)] == ["queued", "gate"]
        assert pool.result_at(0).id == "gate"


def test_closing_and_closed_pool():
    pool = taskgate.Pool(workers=2)
    f = pool.submit(time.sleep, 0.05)
    pool.close()  # waits
    assert f.done() and pool.closed
    with pytest.raises(taskgate.BadHandleError):
        pool.submit(pow, 1, 1)
    pool.close()  # twice is harmless
    assert repr(pool) == "<Pool closed>"


def test_exception_in_with_block_cancels_the_rest():
    futs = []
    with pytest.raises(RuntimeError):
        with taskgate.Pool(workers=1) as pool:
            futs = [pool.submit(time.sleep, 0.2) for _ in range(20)]
            raise RuntimeError("leave")
    assert all(f.done() for f in futs)
    assert sum(f.cancelled() for f in futs) >= 18
