"""Partial failure and aggregation from Python: real pools, real tasks."""
import threading

import pytest

import taskgate
from conftest import WAIT

WORKERS = [1, 2, 4, 8]


def boom():
    raise RuntimeError("boom")


def value(v):
    return v


@pytest.mark.parametrize("workers", WORKERS)
def test_min_required_exactly_and_one_below(workers):
    with taskgate.Pool(workers) as pool:
        pool.set_group("exact", min_required=3)
        pool.set_group("below", min_required=3)
        for g, fails in (("exact", 2), ("below", 3)):
            for i in range(5):
                if i < fails:
                    pool.submit(boom, id=f"{g}-{i}", group=g)
                else:
                    pool.submit(value, i, id=f"{g}-{i}", group=g)
        pool.wait(timeout=WAIT)
        ok = pool.group_outcome("exact")
        assert ok["state"] == "succeeded" and ok["success"] is True
        assert ok["partial_results"] is True and ok["failed_count"] == 2 and ok["min_required"] == 3
        assert [f["task"] for f in ok["failures"]] == ["exact-0", "exact-1"]
        assert "boom" in ok["failures"][0]["error"]
        bad = pool.group_outcome("below")
        assert bad["state"] == "failed" and bad["success"] is False
        assert bad["reason"] == "insufficient results (2/3): 2 of 5 tasks succeeded, 3 required"


@pytest.mark.parametrize("workers", WORKERS)
def test_critical_group_cancels_what_remains(workers):
    release = threading.Event()

    def wait_for_release():
        ctx = taskgate.current_task()
        while not release.wait(0.01):
            if ctx.cancelled:
                raise RuntimeError("cancelled")
        return 1

    with taskgate.Pool(workers) as pool:
        pool.set_group("core", critical=True, min_required=0.5)  # half of 4: 2
        for i in range(3):
            pool.submit(boom, id=f"core-f{i}", group="core", priority="high")
        pool.submit(wait_for_release, id="core-w", group="core")
        pool.wait_group("core", timeout=WAIT)
        out = pool.group_outcome("core")
        assert out["state"] == "failed" and out["min_required"] == 2
        assert out["failed"] == 3 and out["cancelled"] == 1
        assert "critical group 'core'" in pool.result("core-w").error
        release.set()


@pytest.mark.parametrize("workers", WORKERS)
def test_cancel_all_fails_the_run(workers):
    submitted = threading.Event()

    def fail_after_submission():
        submitted.wait(WAIT)  # so the others exist when it fails, on any worker count
        raise RuntimeError("core down")

    def wait_until_cancelled():
        ctx = taskgate.current_task()
        for _ in range(int(WAIT * 100)):
            if ctx.cancelled:
                raise RuntimeError("cancelled")
            threading.Event().wait(0.01)
        return 1

    with taskgate.Pool(workers) as pool:
        pool.set_group("core", critical=True, cancel_all=True)
        pool.submit(fail_after_submission, id="core-0", group="core", priority="high")
        for i in range(3):
            pool.submit(wait_until_cancelled, id=f"side-{i}", group="side")
        submitted.set()
        pool.wait(timeout=WAIT)
        side = pool.group_outcome("side")
        assert side["cancelled"] == 3 and side["state"] == "failed"
        assert "task 'core-0' of critical group 'core' failed" in pool.result("side-2").error


def test_aggregate_kinds_and_order():
    lists = [["numpy", "requests", {"b": 2, "a": 1}], ["requests", "flask", {"a": 1, "b": 2.0}],
             RuntimeError("down"), ["requests", "numpy", "numpy"], "requests"]
    u = taskgate.aggregate(lists, "union")
    assert u["result"] == ["numpy", "requests", {"b": 2, "a": 1}, "flask"]
    assert u["success"] and u["partial_results"] and u["failed_count"] == 1 and u["used"] == 4
    assert u["failures"] == [{"task": None, "status": "failed", "error": "RuntimeError: down"}]
    assert taskgate.aggregate(lists, "intersection")["result"] == ["requests"]
    f = taskgate.aggregate(lists, "frequency")
    assert f["result"] == [{"pattern": "numpy", "count": 2, "frequency": 0.5},
                           {"pattern": "requests", "count": 4, "frequency": 1},
                           {"pattern": {"b": 2, "a": 1}, "count": 2, "frequency": 0.5}]
    assert [x["pattern"] for x in taskgate.aggregate(lists, "frequency", threshold=0.75)["result"]] == ["requests"]
    m = taskgate.aggregate(["yes", "no", "yes", {"x": 1}, "no", "yes"], "majority")
    assert (m["result"], m["votes"], m["tie"]) == ("yes", 3, False)
    assert taskgate.aggregate([1, RuntimeError(), {"k": "v"}], "collect")["result"] == [1, None, {"k": "v"}]


def test_aggregate_min_required_and_results():
    with taskgate.Pool(2) as pool:
        futs = [pool.submit(value, [1]), pool.submit(boom, id="dead"), pool.submit(value, [2])]
        results = [f.task_result(timeout=WAIT) for f in futs]
    ok = taskgate.aggregate(results, "union", min_required=2)
    assert ok["success"] and ok["result"] == [1, 2]
    assert ok["failures"] == [{"task": "dead", "status": "failed", "error": ok["failures"][0]["error"]}]
    short = taskgate.aggregate(results, "union", min_required=3)
    assert short["success"] is False and short["reason"] == "insufficient results (2/3)" and short["result"] is None


def test_aggregate_plugin_outputs(plugin_dir, tmp_path):
    (tmp_path / "a.txt").write_text("one two\nthree\n")
    (tmp_path / "b.txt").write_text("one two\nthree\n")
    with taskgate.Pool(2) as pool:
        pool.load_plugin(f"{plugin_dir}/libtext.so")
        pool.load_plugin(f"{plugin_dir}/libflaky.so")
        futs = [pool.submit("text.stats", str(tmp_path / "a.txt"), 1.5, id="a"),
                pool.submit("text.stats", str(tmp_path / "b.txt"), 1.5, id="b"),
                pool.submit("flaky.sleep_ms", 0, id="not-json")]
        results = [f.task_result(timeout=WAIT) for f in futs]
    m = taskgate.aggregate(results, "majority")
    assert m["result"]["lines"] == 2 and m["result"]["words"] == 3 and m["votes"] == 2
    assert m["failures"][0]["task"] == "not-json" and m["failures"][0]["status"] == "bad_output"
    assert m["partial_results"] is True


def test_bad_input():
    with pytest.raises(taskgate.InvalidArgumentError, match="kind must be one of"):
        taskgate.aggregate([1], "average")
    with pytest.raises(taskgate.InvalidArgumentError, match="threshold"):
        taskgate.aggregate([1], "frequency", threshold=0)
    with pytest.raises(taskgate.InvalidArgumentError, match="min_required"):
        taskgate.aggregate([1], min_required=-1)
    with pytest.raises(taskgate.InvalidArgumentError, match=r"outputs\[1\] is not JSON-serialisable"):
        taskgate.aggregate([1, object()])
    with pytest.raises(taskgate.InvalidArgumentError, match="JSON"):
        taskgate.aggregate([float("nan")])
    with taskgate.Pool(1) as pool:
        with pytest.raises(taskgate.NotFoundError, match="nope"):
            pool.group_outcome("nope")
        with pytest.raises(taskgate.InvalidArgumentError, match="critical"):
            pool.set_group("g", cancel_all=True)
        with pytest.raises(taskgate.InvalidArgumentError, match="fraction"):
            pool.set_group("g", min_required=1.5)
        with pytest.raises(taskgate.InvalidArgumentError):
            pool.set_group("g", min_required=-2)
        with pytest.raises(taskgate.InvalidArgumentError):
            pool.set_group("", min_required=1)
