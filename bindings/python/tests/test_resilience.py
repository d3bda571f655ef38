"""Resilience through the Python door: retries, breakers, limits, credentials
and worker health, on a virtual clock, with real worker threads and the real
flaky plugin. Every wait has a limit (conftest.WAIT)."""
import os
import threading
import time

import pytest

import taskgate
from conftest import WAIT, run_python

MS = 1_000_000  # ns


def wait_until(pred, what, limit=WAIT):
    deadline = time.monotonic() + limit
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def settled(pool, tid, attempts):
    """The task has made `attempts` calls and waits for its next (queued)."""
    wait_until(lambda: (lambda r: r.attempts == attempts and r.status == "queued")(pool.result(tid)),
               f"{tid} to wait after attempt {attempts}")


def quiet_for(pool, tid, attempts, seconds=0.05):
    """Nothing more happens to the task for a little while (it is not run early)."""
    time.sleep(seconds)
    r = pool.result(tid)
    assert (r.attempts, r.status) == (attempts, "queued"), r


# ---- retries ----------------------------------------------------------------------


def test_retry_runs_at_the_exact_delays_on_virtual_time(workers):
    clock = taskgate.VirtualClock()
    calls = []

    def flaky():
        n = taskgate.current_task().attempt
        calls.append(n)
        if n < 3:
            raise taskgate.Retryable(f"attempt {n}: service unavailable", status_code=503)
        return f"ok on {n}"

    with taskgate.Pool(workers, clock=clock) as pool:
        policy = pool.policy(retry=taskgate.Retry(max_attempts=5, base_delay=0.1, multiplier=2.0, jitter="none"))
        fut = pool.submit(flaky, id="t", policy=policy)
        settled(pool, "t", 1)
        clock.advance(0.099)
        quiet_for(pool, "t", 1)
        clock.advance(ns=1 * MS)
        settled(pool, "t", 2)
        clock.advance(0.199)
        quiet_for(pool, "t", 2)
        clock.advance(0.001)
        assert fut.result(WAIT) == "ok on 3"
        r = fut.task_result()
        assert r.attempts == 3 and calls == [1, 2, 3]
        assert r.retry_delays_ns == (100 * MS, 200 * MS)
        assert r.retry_delays == (0.1, 0.2)
        assert r.status_code == 503 and r.flags == frozenset() and r.exception is None


def test_retry_after_replaces_the_backoff_and_can_be_ignored():
    clock = taskgate.VirtualClock()

    def limited():
        if taskgate.current_task().attempt == 1:
            raise taskgate.Retryable("slow down", status_code=429, retry_after=0.5)
        return "ok"

    with taskgate.Pool(2, clock=clock) as pool:
        honour = pool.policy(retry=taskgate.Retry(base_delay=0.01, jitter="none"))
        ignore = pool.policy(retry=taskgate.Retry(base_delay=0.01, jitter="none", ignore_retry_after=True))
        a = pool.submit(limited, id="a", policy=honour)
        b = pool.submit(limited, id="b", policy=ignore)
        settled(pool, "a", 1)
        settled(pool, "b", 1)
        clock.advance(0.01)
        assert b.result(WAIT) == "ok"
        quiet_for(pool, "a", 1)
        clock.advance(0.49)
        assert a.result(WAIT) == "ok"
        assert a.task_result().retry_delays_ns == (500 * MS,)
        assert b.task_result().retry_delays_ns == (10 * MS,)


def test_permanent_stops_at_once_and_the_callable_exception_comes_back():
    clock = taskgate.VirtualClock()

    def bad_request():
        raise taskgate.Permanent("400: the prompt is empty", status_code=400)

    with taskgate.Pool(1, clock=clock) as pool:
        policy = pool.policy(retry=taskgate.Retry(max_attempts=5, base_delay=0))
        fut = pool.submit(bad_request, policy=policy)
        with pytest.raises(taskgate.Permanent, match="prompt is empty") as info:
            fut.result(WAIT)
        assert info.value.status_code == 400
        r = fut.task_result()
        assert r.status == "failed" and r.attempts == 1 and r.flags == {"permanent"} and r.status_code == 400
        assert "Permanent: 400: the prompt is empty" in r.error


def test_other_exceptions_retry_unless_the_policy_says_failed_is_permanent():
    clock = taskgate.VirtualClock()

    class HTTPError(Exception):
        status_code = 502

    def boom():
        raise HTTPError("bad gateway")

    with taskgate.Pool(2, clock=clock) as pool:
        retrying = pool.policy(retry=taskgate.Retry(max_attempts=3, base_delay=0, jitter="none"))
        strict = pool.policy(retry=taskgate.Retry(max_attempts=3, base_delay=0, failed_is_permanent=True))
        a = pool.submit(boom, policy=retrying)
        b = pool.submit(boom, policy=strict)
        with pytest.raises(HTTPError):
            a.result(WAIT)
        with pytest.raises(HTTPError):
            b.result(WAIT)
        ra, rb = a.task_result(), b.task_result()
        assert ra.attempts == 3 and "retries_exhausted" in ra.flags and ra.status_code == 502
        assert ra.retry_delays_ns == (0, 0)
        assert rb.attempts == 1 and rb.flags == {"permanent"}


def test_seeded_jitter_gives_the_same_delays_and_stays_under_the_cap():
    def run(seed):
        clock = taskgate.VirtualClock()

        def fail():
            raise taskgate.Retryable("no")

        with taskgate.Pool(1, clock=clock) as pool:
            p = pool.policy(retry=taskgate.Retry(max_attempts=6, base_delay=0.1, multiplier=3, max_delay=1.0,
                                                 jitter="full"), seed=seed)
            fut = pool.submit(fail, id="j", policy=p)
            for k in range(1, 6):
                settled(pool, "j", k)
                clock.advance(1.0)
            with pytest.raises(taskgate.Retryable):
                fut.result(WAIT)
            return fut.task_result().retry_delays_ns

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c and len(a) == 5
    assert all(0 <= d <= 1000 * MS for d in a + c)


def test_batch_and_map_take_a_policy():
    clock = taskgate.VirtualClock()
    seen = {}
    lock = threading.Lock()

    def once_flaky(x):
        with lock:
            seen[x] = seen.get(x, 0) + 1
            if seen[x] == 1:
                raise taskgate.Retryable("first call fails")
        return x * 10

    with taskgate.Pool(4, clock=clock) as pool:
        p = pool.policy(retry=taskgate.Retry(max_attempts=2, base_delay=0))
        batch = pool.batch(once_flaky, [(k,) for k in range(50)], policy=p, key="rows")
        assert list(batch.values(WAIT)) == [k * 10 for k in range(50)]
        assert all(r.attempts == 2 for r in batch.results(WAIT))


# ---- circuit breaker -----------------------------------------------------------------


def test_breaker_opens_rejects_and_probes_at_the_exact_instant(workers):
    clock = taskgate.VirtualClock()
    healthy = threading.Event()

    def call():
        if not healthy.is_set():
            raise taskgate.Retryable("503", status_code=503)
        return "up"

    with taskgate.Pool(workers, clock=clock) as pool:
        p = pool.policy(breaker=taskgate.Breaker(failure_threshold=3, success_threshold=1, open_for=10))
        for k in range(3):
            with pytest.raises(taskgate.Retryable):
                pool.submit(call, policy=p, key="api").result(WAIT)
        s = p.breaker("api")
        assert s.state == "open" and s.times_opened == 1 and s.opened_at_ns == 0
        assert p.breaker("other").state == "closed"
        rejected = pool.submit(call, policy=p, key="api")
        with pytest.raises(taskgate.TaskRejected):
            rejected.result(WAIT)
        r = rejected.task_result()
        assert r.status == "rejected" and r.attempts == 0 and "breaker_open" in r.flags
        assert pool.stats()["rejected"] == 1 and p.breaker("api").rejected == 1
        clock.advance(9.999)
        assert p.breaker("api").state == "open"
        clock.advance(0.001)
        assert p.breaker("api").state == "half_open"
        healthy.set()
        assert pool.submit(call, policy=p, key="api").result(WAIT) == "up"
        s = p.breaker("api")
        assert s.state == "closed" and s.generation >= 3


def test_half_open_admits_exactly_n_probes_among_many():
    clock = taskgate.VirtualClock()
    gate = threading.Event()
    running = []
    lock = threading.Lock()

    def probe():
        with lock:
            running.append(1)
        if not gate.wait(WAIT):
            raise RuntimeError("gate never opened")
        return "ok"

    with taskgate.Pool(8, clock=clock) as pool:
        p = pool.policy(breaker=taskgate.Breaker(failure_threshold=1, success_threshold=2, half_open_calls=2,
                                                 open_for=1))
        def down():
            raise taskgate.Permanent("down")

        with pytest.raises(taskgate.Permanent):
            pool.submit(down, policy=p).result(WAIT)
        assert p.breaker().state == "open"
        clock.advance(1.0)
        futs = [pool.submit(probe, policy=p) for _ in range(20)]
        wait_until(lambda: sum(f.done() for f in futs) == 18, "18 of 20 to be rejected")
        wait_until(lambda: len(running) == 2, "the two probes to start")
        assert len(running) == 2 and p.breaker().probes_admitted == 2
        gate.set()
        statuses = sorted(f.task_result(WAIT).status for f in futs)
        assert statuses == ["rejected"] * 18 + ["succeeded"] * 2
        assert p.breaker().state == "closed"


def test_force_reset_and_fallback():
    with taskgate.Pool(2) as pool:
        p = pool.policy(breaker=taskgate.Breaker(), fallback=lambda x: f"cached {x}")
        q = pool.policy(breaker=taskgate.Breaker())
        p.force_open("db")
        q.force_open()
        assert p.breaker("db").state == "forced_open"
        f = pool.submit(lambda x: f"live {x}", 7, policy=p, key="db")
        assert f.result(WAIT) == "cached 7" and "fallback" in f.task_result().flags
        with pytest.raises(taskgate.TaskRejected):
            pool.submit(lambda: 1, policy=q).result(WAIT)
        p.force_closed("db")
        assert pool.submit(lambda x: f"live {x}", 8, policy=p, key="db").result(WAIT) == "live 8"
        p.reset("db")
        q.reset()
        assert p.breaker("db").state == "closed" and q.breaker().state == "closed"
        assert pool.submit(lambda: 2, policy=q).result(WAIT) == 2


def test_group_and_pool_policies_apply_to_tasks_naming_none():
    clock = taskgate.VirtualClock()
    with taskgate.Pool(2, clock=clock) as pool:
        group_p = pool.policy(breaker=taskgate.Breaker())
        pool_p = pool.policy(breaker=taskgate.Breaker())
        group_p.force_open()
        pool.set_policy(group_p, group="api")
        pool.set_policy(pool_p)
        with pytest.raises(taskgate.TaskRejected):
            pool.submit(lambda: 1, group="api").result(WAIT)
        assert pool.submit(lambda: 1).result(WAIT) == 1
        pool_p.force_open()
        with pytest.raises(taskgate.TaskRejected):
            pool.submit(lambda: 1).result(WAIT)
        pool.set_policy(None)
        assert pool.submit(lambda: 3).result(WAIT) == 3


# ---- limits -------------------------------------------------------------------------------


def test_concurrency_limit_and_try_submit(workers):
    gate = threading.Event()
    active, peak = [0], [0]
    lock = threading.Lock()

    def work():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        gate.wait(WAIT)
        with lock:
            active[0] -= 1
        return "done"

    with taskgate.Pool(workers) as pool:
        p = pool.policy(limit=taskgate.Limit(max_concurrent=1))
        first = pool.try_submit(work, policy=p, key="db")
        with pytest.raises(taskgate.LimitedError) as info:
            pool.try_submit(work, id="second", policy=p, key="db")
        assert info.value.code == -18 and info.value.name == "ELIMITED"
        with pytest.raises(taskgate.NotFoundError):
            pool.result("second")  # nothing was submitted
        other = pool.try_submit(work, policy=p, key="cache")  # another key has its own slot
        queued = [pool.submit(work, policy=p, key="db") for _ in range(5)]
        wait_until(lambda: active[0] == min(workers, 2), "the running tasks to start")
        gate.set()
        assert [f.result(WAIT) for f in [first, other] + queued] == ["done"] * 7
        assert peak[0] <= 2  # one "db" and one "cache" at a time, whatever the workers
        assert pool.try_submit(work, policy=p, key="db").result(WAIT) == "done"


def test_rate_limit_on_virtual_time():
    clock = taskgate.VirtualClock()
    with taskgate.Pool(1, clock=clock) as pool:  # one worker: the postponed tasks run in order
        p = pool.policy(limit=taskgate.Limit(requests_per_minute=60, burst=2))  # one a second after two
        futs = [pool.submit(lambda k=k: k, policy=p) for k in range(4)]
        wait_until(lambda: futs[0].done() and futs[1].done(), "the burst of two")
        time.sleep(0.05)
        assert not futs[2].done() and not futs[3].done()
        with pytest.raises(taskgate.LimitedError):
            pool.try_submit(lambda: 0, policy=p)
        clock.advance(1.0)
        assert futs[2].result(WAIT) == 2
        clock.advance(1.0)
        assert futs[3].result(WAIT) == 3


# ---- credentials ---------------------------------------------------------------------------


def test_credentials_rotate_on_429_and_are_never_shown():
    clock = taskgate.VirtualClock()
    used = []

    def call():
        c = taskgate.current_task().credential
        used.append(c.index)
        if c.key == "SECRET-AAA":
            raise taskgate.Retryable(f"429 Too Many Requests for key {c.key}", status_code=429, retry_after=30)
        return f"answered by {c.model} at {c.base_url}"

    with taskgate.Pool(1, clock=clock) as pool:
        ring = pool.credentials(["SECRET-AAA", {"key": "SECRET-BBB", "base_url": "https://b", "model": "m-b"}],
                                cooldown=5)
        p = pool.policy(retry=taskgate.Retry(max_attempts=3, base_delay=0, ignore_retry_after=True),
                        credentials=ring)
        fut = pool.submit(call, policy=p)
        assert fut.result(WAIT) == "answered by m-b at https://b"
        r = fut.task_result()
        assert used == [0, 1] and "rotated" in r.flags and r.attempts == 2
        st = ring.status()
        assert st["count"] == 2 and st["current"] == 1 and st["cooling_down"] == 1
        clock.advance(30)
        assert ring.status()["cooling_down"] == 0
        text = repr(ring) + repr(p) + repr(r) + str(r.as_dict())
        assert "SECRET" not in text


def test_all_credentials_exhausted_fails_with_a_redacted_error():
    def call():
        c = taskgate.current_task().credential
        raise taskgate.Retryable(f"daily quota exceeded for {c.key}", status_code=429)

    with taskgate.Pool(2) as pool:
        ring = pool.credentials(["SECRET-ONE", "SECRET-TWO"])
        p = pool.policy(retry=taskgate.Retry(max_attempts=5, base_delay=0), credentials=ring)
        fut = pool.submit(call, policy=p)
        with pytest.raises(taskgate.TaskError) as info:
            fut.result(WAIT)
        r = fut.task_result()
        assert r.status == "failed" and "credentials_exhausted" in r.flags
        assert "exhausted" in r.error and "SECRET" not in r.error and "SECRET" not in str(info.value)
        assert ring.status()["exhausted"] == 2
        assert "SECRET" not in repr(taskgate.Credential("SECRET-X"))


def test_credentials_from_the_environment_in_a_fresh_process():
    code = (
        "import taskgate\n"
        "with taskgate.Pool(1) as pool:\n"
        "    ring = pool.credentials_from_env('TG_PYTEST_API_KEY')\n"
        "    p = pool.policy(credentials=ring)\n"
        "    c = pool.submit(lambda: taskgate.current_task().credential, policy=p).result(30)\n"
        "    print(ring.status()['count'], c.index, c.base_url, c.model, c.key == 'sk-one')\n"
        "    try:\n"
        "        pool.credentials_from_env('TG_PYTEST_NOTHING_HERE')\n"
        "    except taskgate.NotFoundError as e:\n"
        "        print('notfound', e.name)\n")
    env = {"TG_PYTEST_API_KEY_1": "sk-one", "TG_PYTEST_API_KEY_2": "sk-two",
           "TG_PYTEST_BASE_URL_1": "https://one", "TG_PYTEST_MODEL_1": "model-one"}
    p = run_python(code, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["2 0 https://one model-one True", "notfound ENOTFOUND"]
    assert "sk-" not in p.stdout + p.stderr


# ---- plugins under a policy ----------------------------------------------------------------


def test_plugin_task_retries_with_the_configured_delays(flaky_path, workers):
    clock = taskgate.VirtualClock()
    with taskgate.Pool(workers, clock=clock) as pool:
        pool.load_plugin(flaky_path)
        p = pool.policy(retry=taskgate.Retry(max_attempts=4, delays=[0.25, 1.5], jitter="none"))
        key = f"py-plugin-{workers}"
        fut = pool.submit("flaky.fail_first", key, 2, id="f", policy=p)
        settled(pool, "f", 1)
        clock.advance(0.25)
        settled(pool, "f", 2)
        clock.advance(1.499)
        quiet_for(pool, "f", 2)
        clock.advance(0.001)
        assert fut.result(WAIT) == b"ok after 3 attempts"
        assert fut.task_result().retry_delays_ns == (250 * MS, 1500 * MS)
        # the plugin's breaker key defaults to its processor name
        q = pool.policy(breaker=taskgate.Breaker(failure_threshold=1))
        with pytest.raises(taskgate.TaskFailed):
            pool.submit("flaky.fail_first", key + "-b", 1, policy=q).result(WAIT)
        assert q.breaker("flaky.fail_first").state == "open"


# ---- worker health ---------------------------------------------------------------------------


def test_worker_health_and_recover_hook():
    recovered = []

    def recover(worker):
        recovered.append(worker)

    def fail():
        raise taskgate.Retryable("connection reset", status_code=503)

    with taskgate.Pool(1, unhealthy_after=2, max_recoveries=1, recover=recover) as pool:
        p = pool.policy()
        for _ in range(2):
            with pytest.raises(taskgate.Retryable):
                pool.submit(fail, policy=p).result(WAIT)
        wait_until(lambda: pool.worker_health(0).total_recoveries == 1, "the recover hook")
        assert recovered == [0]
        h = pool.worker_health(0)
        assert h.worker == 0 and h.total_recoveries == 1 and h.failures == 2 and h.last_status_code == 503
        assert [w.worker for w in pool.worker_health()] == [0]
        for _ in range(2):
            with pytest.raises(taskgate.Retryable):
                pool.submit(fail, policy=p).result(WAIT)
        wait_until(lambda: "exhausted_recovery" in pool.submit(fail, policy=p).task_result(WAIT).flags,
                   "a result marked exhausted_recovery")
        assert recovered == [0]
        assert pool.submit(lambda: "fine", policy=p).result(WAIT) == "fine"
        assert pool.worker_health(0).healthy
        with pytest.raises(taskgate.RangeError):
            pool.worker_health(1)


# ---- the task file door ----------------------------------------------------------------------


def test_run_task_dicts_with_policy_and_key(flaky_path):
    clock = taskgate.VirtualClock()
    with taskgate.Pool(2, clock=clock) as pool:
        pool.load_plugin(flaky_path)
        p = pool.policy(retry=taskgate.Retry(max_attempts=3, base_delay=0))
        out = pool.run([{"id": "a", "processor": "flaky.fail_first", "args": ["run-a", 1], "policy": p,
                         "key": "svc"}], timeout=WAIT)
        assert out["a"].status == "succeeded" and out["a"].attempts == 2
        with pytest.raises(taskgate.InvalidArgumentError, match="task 'b' field 'policy'"):
            pool.run([{"id": "b", "processor": "flaky.echo", "args": ["x"], "policy": "fast"}])
        with pytest.raises(taskgate.InvalidArgumentError, match="task 'c' field 'key'"):
            pool.run([{"id": "c", "processor": "flaky.echo", "args": ["x"], "key": ""}])


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda pool: pool.policy(retry=taskgate.Retry(max_attempts=0)), "max_attempts"),
    (lambda pool: pool.policy(retry=taskgate.Retry(jitter="wild")), "jitter"),
    (lambda pool: pool.policy(retry=taskgate.Retry(multiplier=0.5)), "multiplier"),
    (lambda pool: pool.policy(retry=taskgate.Retry(base_delay=-1)), "base_delay"),
    (lambda pool: pool.policy(retry=taskgate.Retry(delays=[])), "delays"),
    (lambda pool: pool.policy(retry=taskgate.Retry(delays=[0.1, "x"])), r"delays\[1\]"),
    (lambda pool: pool.policy(retry=taskgate.Retry(jitter_factor=2)), "jitter_factor"),
    (lambda pool: pool.policy(breaker=taskgate.Breaker(window="sliding")), "window"),
    (lambda pool: pool.policy(breaker=taskgate.Breaker(failure_rate=1.5)), "failure_rate"),
    (lambda pool: pool.policy(breaker=taskgate.Breaker(success_threshold=0)), "success_threshold"),
    (lambda pool: pool.policy(limit=taskgate.Limit(max_concurrent=-1)), "max_concurrent"),
    (lambda pool: pool.policy(retry={"max_attempts": 3}), "taskgate.Retry"),
    (lambda pool: pool.policy(seed=-1), "seed"),
    (lambda pool: pool.policy(fallback=42), "fallback"),
    (lambda pool: pool.policy(fallback=lambda: 0), "fallback"),  # a fallback needs a breaker
    (lambda pool: pool.credentials([]), "credentials"),
    (lambda pool: pool.credentials(["ok", "bad\0key"]), r"credentials\[1\]"),
    (lambda pool: pool.credentials([{"key": "k", "token": "t"}]), "unknown field"),
    (lambda pool: pool.credentials([3]), r"credentials\[0\]"),
    (lambda pool: pool.credentials_from_env("bad prefix"), "prefix"),
    (lambda pool: pool.submit(lambda: 0, policy="fast"), "policy"),
    (lambda pool: pool.submit(lambda: 0, key=""), "key"),
    (lambda pool: pool.set_policy(object()), "policy"),
    (lambda pool: taskgate.Pool(1, clock="wall"), "clock"),
    (lambda pool: taskgate.Pool(1, recover=3), "recover"),
    (lambda pool: taskgate.Pool(1, unhealthy_after=-2), "unhealthy_after"),
    (lambda pool: pool.worker_health(-1), "worker"),
])
def test_bad_input_is_refused_with_a_message_naming_it(make, match):
    with taskgate.Pool(1) as pool:
        with pytest.raises(taskgate.InvalidArgumentError, match=match):
            make(pool)


def test_bad_input_outside_pools():
    with pytest.raises(taskgate.InvalidArgumentError, match="seconds"):
        taskgate.VirtualClock().advance(-1)
    with pytest.raises(taskgate.InvalidArgumentError, match="ns"):
        taskgate.VirtualClock().advance(ns=-5)
    with pytest.raises(taskgate.InvalidArgumentError, match="start_ns"):
        taskgate.VirtualClock(start_ns=-1)
    with pytest.raises(TypeError, match="status_code"):
        taskgate.Retryable("x", status_code="429")
    with pytest.raises(TypeError, match="retry_after"):
        taskgate.Retryable("x", retry_after=-1)
    with pytest.raises(RuntimeError, match="outside a running task"):
        taskgate.current_task()
    with taskgate.Pool(1) as pool:
        kept = pool.submit(taskgate.current_task).result(WAIT)
        with pytest.raises(RuntimeError, match="no longer valid"):
            kept.attempt
    clock = taskgate.VirtualClock(5)
    clock.close()
    with pytest.raises(taskgate.BadHandleError):
        clock.advance(1)
    a, b = taskgate.Pool(1), taskgate.Pool(1)
    try:
        p = a.policy()
        with pytest.raises(taskgate.InvalidArgumentError, match="another pool"):
            b.submit(lambda: 0, policy=p)
        with pytest.raises(taskgate.InvalidArgumentError, match="another pool"):
            b.policy(credentials=a.credentials(["k"]))
    finally:
        a.close()
        b.close()


def test_the_pool_outlives_the_clock_object():
    clock = taskgate.VirtualClock()
    with taskgate.Pool(1, clock=clock) as pool:
        p = pool.policy(retry=taskgate.Retry(max_attempts=2, base_delay=0))
        clock.close()  # the pool keeps its own reference
        n = [0]

        def once():
            n[0] += 1
            if n[0] == 1:
                raise taskgate.Retryable("again")
            return "ok"
        assert pool.submit(once, policy=p).result(WAIT) == "ok"
