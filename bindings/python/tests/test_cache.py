"""The result cache from Python: callables and plugin processors, hits across
pools, TTL expiry, a touched read file, changed definitions, and bad input."""
import math
import os
import time

import pytest

import taskgate
from taskgate import errors

CALLS = []


def build(name, n):
    CALLS.append((name, n))
    return {"name": name, "n": n, "items": [n, n * 2]}


def not_json(x):
    return {x}  # a set: not JSON


def run(tmp_path, fn, *args, workers=2, **kw):
    with taskgate.Pool(workers, cache_dir=tmp_path / "cache") as pool:
        f = pool.submit(fn, *args, **kw)
        f.exception(timeout=30)
        return f, f.task_result(timeout=30)


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_callable_hit_across_pools(tmp_path, workers):
    CALLS.clear()
    src = tmp_path / "in.txt"
    src.write_text("v1\n")
    f, r = run(tmp_path, build, "a", 3, id="t", cache_ttl=60, reads=[str(src)], workers=workers)
    assert f.result() == {"name": "a", "n": 3, "items": [3, 6]}
    assert r.cache == "miss" and r.cache_reason.startswith("absent")
    assert "cache_miss" in r.flags
    f, r = run(tmp_path, build, "a", 3, id="t", cache_ttl=60, reads=[str(src)], workers=workers)
    assert f.result() == {"name": "a", "n": 3, "items": [3, 6]}  # parsed back from the stored JSON
    assert r.cache == "hit" and r.cache_reason is None and r.attempts == 0
    assert CALLS == [("a", 3)], "a hit must not call the callable"


def test_invalidation(tmp_path):
    CALLS.clear()
    src = tmp_path / "in.txt"
    src.write_text("v1\n")
    kw = dict(id="t", cache_ttl=60, reads=[str(src)])
    run(tmp_path, build, "a", 1, **kw)
    # A touched read file (same size, later mtime).
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    _, r = run(tmp_path, build, "a", 1, **kw)
    assert r.cache == "miss" and r.cache_reason.startswith("read_changed") and str(src) in r.cache_reason
    # Other arguments, another callable, another cache_key: each is a new definition.
    _, r = run(tmp_path, build, "a", 2, **kw)
    assert r.cache_reason.startswith("definition_changed"), r.cache_reason
    _, r = run(tmp_path, build, "a", 2, **kw)
    assert r.cache == "hit"
    _, r = run(tmp_path, build, "a", 2, cache_key="v2", **kw)
    assert r.cache_reason.startswith("definition_changed")
    def g(name, n):
        return build(name, n)

    _, r = run(tmp_path, g, "a", 2, cache_key="v2", **kw)
    assert r.cache_reason.startswith("definition_changed")
    # The list of reads.
    _, r = run(tmp_path, g, "a", 2, id="t", cache_ttl=60, cache_key="v2")
    assert r.cache_reason.startswith("reads_list_changed"), r.cache_reason
    assert len(CALLS) == 6


def test_ttl(tmp_path):
    CALLS.clear()
    run(tmp_path, build, "b", 1, id="short", cache_ttl=0.01)
    time.sleep(0.1)  # ten TTLs later: expired (nothing is asserted about how fast)
    _, r = run(tmp_path, build, "b", 1, id="short", cache_ttl=0.01)
    assert r.cache == "miss" and r.cache_reason.startswith("expired")
    _, r = run(tmp_path, build, "b", 1, id="short", cache_ttl=math.inf)
    assert r.cache == "hit"
    assert len(CALLS) == 2


def test_plugin_processor(tmp_path, plugin_dir):
    src = tmp_path / "in.txt"
    src.write_text("hello there\n")
    out = tmp_path / "out.txt"
    for round_ in range(2):
        with taskgate.Pool(2, cache_dir=tmp_path / "cache") as pool:
            pool.load_plugin(os.path.join(plugin_dir, "libtext.so"))
            f = pool.submit("text.upper", str(src), str(out), id="up", reads=[str(src)], writes=[str(out)],
                            cache_ttl=60)
            r = f.task_result(timeout=30)
        assert r.status == "succeeded"
        assert r.cache == ("miss" if round_ == 0 else "hit")
        if round_ == 0:
            assert out.read_text() == "HELLO THERE\n"
            out.unlink()
    assert not out.exists(), "a hit must not run the processor"


def test_failures_and_unstorable_values_are_not_cached(tmp_path):
    def boom():
        raise RuntimeError("no")

    for _ in range(2):
        f, r = run(tmp_path, boom, id="boom", cache_ttl=60)
        assert r.status == "failed" and r.cache == "miss" and r.cache_reason.startswith("absent")
    f, r = run(tmp_path, not_json, 1, id="set", cache_ttl=60)
    assert r.status == "failed"
    with pytest.raises(errors.InvalidArgumentError, match="must return JSON data"):
        f.result()


def test_uncached_tasks_report_no_cache(tmp_path):
    f, r = run(tmp_path, build, "c", 1, id="plain")
    assert r.cache is None and r.cache_reason is None
    assert "cache_hit" not in r.flags and "cache_miss" not in r.flags


def test_bad_input(tmp_path):
    with taskgate.Pool(1, cache_dir=tmp_path / "cache") as pool:
        for ttl in (0, -1, float("nan"), "1h", True):
            with pytest.raises(errors.InvalidArgumentError, match="cache_ttl"):
                pool.submit(build, "x", 1, id="x", cache_ttl=ttl)
        with pytest.raises(errors.InvalidArgumentError, match="needs an id"):
            pool.submit(build, "x", 1, cache_ttl=5)
        with pytest.raises(errors.InvalidArgumentError, match="cache_key needs cache_ttl"):
            pool.submit(build, "x", 1, id="y", cache_key="v1")
        with pytest.raises(errors.InvalidArgumentError, match="cache_key"):
            pool.submit(build, "x", 1, id="z", cache_ttl=5, cache_key=3)
    with taskgate.Pool(1) as pool:
        with pytest.raises(errors.InvalidArgumentError, match="has none"):
            pool.submit(build, "x", 1, id="x", cache_ttl=5)
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(errors.TaskgateError, match=str(f)):
        taskgate.Pool(1, cache_dir=f)


def test_default_cache_beside_lock_dir(tmp_path):
    locks = tmp_path / "state" / "locks"
    with taskgate.Pool(1, lock_dir=locks) as pool:
        pool.submit(build, "d", 1, id="plain").result(timeout=30)
        assert not (tmp_path / "state" / "cache").exists()
        r = pool.submit(build, "d", 1, id="d", cache_ttl=60).task_result(timeout=30)
        assert r.cache == "miss"
    assert (tmp_path / "state" / "cache").is_dir()
    with taskgate.Pool(1, lock_dir=locks) as pool:
        assert pool.submit(build, "d", 1, id="d", cache_ttl=60).task_result(timeout=30).cache == "hit"
