"""Cross-process file locks and gates from Python: real processes, real lock files."""
import json
import os
import subprocess
import sys
import time

import pytest

import taskgate
from conftest import WAIT

HOLDER = r"""
import sys, time, taskgate
lk = taskgate.FileLock(sys.argv[2], dir=sys.argv[1], timeout=5, holder_id="py-holder")
lk.acquire()
print("held", flush=True)
time.sleep(600)
"""

CONTEND = r"""
import os, sys, taskgate
d, sentinel, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bad = 0
with taskgate.FileLock("contended", dir=d, timeout=60) as first:
    pass
lk = taskgate.FileLock("contended", dir=d, timeout=60)
for _ in range(n):
    with lk:
        try:
            fd = os.open(sentinel, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            bad += 1
        else:
            os.close(fd)
            os.unlink(sentinel)
sys.exit(1 if bad else 0)
"""


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return e


def start_holder(d, key):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(d), key], stdout=subprocess.PIPE, env=env())
    line = p.stdout.readline()
    assert line.strip() == b"held", line
    return p


def test_with_statement_excludes_and_names_the_holder(tmp_path):
    d = tmp_path / "locks"
    with taskgate.FileLock("task-1", dir=d, timeout=0, holder_id="worker-0") as lk:
        assert lk.is_locked
        meta = json.loads((d / "k_task-1.lock").read_text())
        assert meta["key"] == "task-1" and meta["holder_id"] == "worker-0" and meta["pid"] == os.getpid()
        assert {"host", "start_time", "acquired_at", "timeout"} <= set(meta)
        other = taskgate.FileLock("task-1", dir=d)
        with pytest.raises(taskgate.LockedError, match="worker-0"):
            other.acquire(timeout=0.05)
        other.close()
    assert not lk.is_locked
    assert (d / ".gitignore").read_text() == "*\n!.gitignore\n"
    assert (d / "k_task-1.lock").read_text().strip() == ""  # released: blanked, not removed


def test_shared_readers_exclude_a_writer(tmp_path):
    r1 = taskgate.FileLock("/data/x", dir=tmp_path, shared=True, timeout=0).acquire()
    r2 = taskgate.FileLock("/data/x", dir=tmp_path, shared=True, timeout=0).acquire()
    w = taskgate.FileLock("/data/x", dir=tmp_path, timeout=0)
    with pytest.raises(taskgate.LockedError):
        w.acquire()
    r1.release()
    r2.release()
    w.acquire()
    w.close()


def test_kill_minus_9_holder_is_taken_over(tmp_path):
    p = start_holder(tmp_path, "victim")
    lk = taskgate.FileLock("victim", dir=tmp_path, timeout=0)
    with pytest.raises(taskgate.LockedError, match="py-holder"):
        lk.acquire()
    assert any(e["state"] == "held" and e["holder_id"] == "py-holder" for e in taskgate.list_locks(tmp_path))
    p.kill()
    p.wait(WAIT)
    lk.acquire(timeout=5)
    assert lk.took_over["pid"] == p.pid
    lk.close()


def test_eight_processes_never_overlap(tmp_path):
    d, sentinel = tmp_path / "locks", tmp_path / "inside"
    procs = [subprocess.Popen([sys.executable, "-c", CONTEND, str(d), str(sentinel), "200"], env=env())
             for _ in range(8)]
    codes = [p.wait(120) for p in procs]
    assert codes == [0] * 8


def test_clean_removes_stale_keeps_live(tmp_path):
    live = start_holder(tmp_path, "live")
    dead = start_holder(tmp_path, "dead")
    dead.kill()
    dead.wait(WAIT)
    states = {e["file"]: e["state"] for e in taskgate.list_locks(tmp_path)}
    assert states == {"k_live.lock": "held", "k_dead.lock": "stale"}
    assert taskgate.clean_stale_locks(tmp_path) == 1
    assert not (tmp_path / "k_dead.lock").exists() and (tmp_path / "k_live.lock").exists()
    live.kill()
    live.wait(WAIT)


def test_unsafe_paths_and_bad_input(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep")
    os.symlink(target, tmp_path / "k_link.lock")
    with pytest.raises(taskgate.UnsafePathError, match="symbolic link"):
        taskgate.FileLock("link", dir=tmp_path, timeout=0).acquire()
    os.mkfifo(tmp_path / "k_fifo.lock")
    with pytest.raises(taskgate.UnsafePathError, match="FIFO"):
        taskgate.FileLock("fifo", dir=tmp_path, timeout=1).acquire()
    assert target.read_text() == "keep"
    for bad in ("", None, 5):
        with pytest.raises(taskgate.InvalidArgumentError):
            taskgate.FileLock(bad, dir=tmp_path)
    with pytest.raises(taskgate.InvalidArgumentError):
        taskgate.FileLock("k", dir=tmp_path, timeout=-1)
    with pytest.raises(taskgate.InvalidArgumentError):
        taskgate.FileLock("k", dir=tmp_path).release()
    with pytest.raises(taskgate.NotFoundError):
        taskgate.list_locks(tmp_path / "missing")


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_pools_in_two_processes_exclude_each_other(tmp_path, workers, flaky_path):
    script = r"""
import sys, taskgate
d, shared, sentinel, flaky, w = sys.argv[1:6]
with taskgate.Pool(int(w), lock_dir=d) as pool:
    pool.load_plugin(flaky)
    fs = [pool.submit("flaky.exclusive", sentinel, 2, writes=[shared]) for _ in range(20)]
    print(sum(1 for f in fs if f.result(timeout=60) is not None))
"""
    args = [str(tmp_path / "locks"), str(tmp_path / "shared.txt"), str(tmp_path / "inside"), flaky_path, str(workers)]
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env()) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o in outs] == [b"20", b"20"]


def test_validate_report_fields():
    tasks = [{"id": "110_1", "writes": ["/p/file.py"], "difficulty": 6},
             {"id": "110_2", "writes": ["/p/file.py"], "difficulty": 6},
             {"id": "110_3", "reads": ["/p/file.py"], "difficulty": 6, "depends_on": ["999"]}]
    r = taskgate.validate(tasks, active_tasks=3)
    assert r["can_parallel"] is False and r["task_count"] == 3
    assert r["file_conflicts"][0] == {"task1": "110_1", "task2": "110_2", "file": "/p/file.py", "type": "blocking",
                                      "serialized": True}
    assert [c["type"] for c in r["file_conflicts"]] == ["blocking", "warning", "warning"]
    assert r["resource_capacity"] == {"max_parallel_tasks": 5, "requested": 3, "available": 2, "within_capacity": False}
    assert r["context_budget"] == {"total_complexity": 18, "max_complexity": 30, "within_budget": True}
    assert r["external_dependencies"] == [{"task": "110_3", "depends_on": "999"}]
    assert "Execute conflicting tasks sequentially" in r["recommendations"]
    assert taskgate.validate(tasks[:1])["can_parallel"] is True


def test_suggest_batches_valid_and_deterministic():
    tasks = [{"id": f"t{i}", "writes": [f"/f{i % 3}"], "depends_on": [f"t{i - 4}"] if i >= 4 else [],
              "difficulty": 4} for i in range(12)]
    b = taskgate.suggest_batches(tasks, max_parallel_tasks=3, max_complexity=10)
    assert b == taskgate.suggest_batches(tasks, max_parallel_tasks=3, max_complexity=10)
    assert sorted(t for batch in b for t in batch) == sorted(t["id"] for t in tasks)
    where = {t: k for k, batch in enumerate(b) for t in batch}
    by_id = {t["id"]: t for t in tasks}
    for batch in b:
        assert len(batch) <= 3
        group = [dict(by_id[t], depends_on=[]) for t in batch]
        assert taskgate.validate(group, max_parallel_tasks=3, max_complexity=10)["can_parallel"], batch
    for t in tasks:
        for dep in t["depends_on"]:
            assert where[dep] < where[t["id"]]
    with pytest.raises(taskgate.CycleError, match="cycle"):
        taskgate.suggest_batches([{"id": "a", "depends_on": ["b"]}, {"id": "b", "depends_on": ["a"]}])
    assert taskgate.find_cycles(3, [(0, 1), (1, 0), (2, 2)]) == [[0, 1, 0], [2, 2]]
    with pytest.raises(taskgate.InvalidArgumentError):
        taskgate.validate([{"id": "a", "writes": "x"}])
    with pytest.raises(taskgate.InvalidArgumentError, match="unknown field"):
        taskgate.validate([{"id": "a", "write": ["x"]}])
    with pytest.raises(taskgate.InvalidArgumentError, match="'a'"):
        taskgate.validate([{"id": "a"}, {"id": "a"}])
