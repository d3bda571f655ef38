"""Bad input at every door of the Python API: clear exceptions, never a crash."""
import os

import pytest

import taskgate
from conftest import WAIT


@pytest.fixture
def pool():
    with taskgate.Pool(workers=2) as p:
        yield p


def test_errors_carry_code_name_and_detail(pool):
    with pytest.raises(taskgate.NotFoundError) as e:
        pool.wait_for("nobody", 0)
    assert e.value.code == -11 and e.value.name == "ENOTFOUND" and "nobody" in e.value.detail
    assert isinstance(e.value, taskgate.TaskgateError) and isinstance(e.value, LookupError)


def test_duplicate_id(pool):
    pool.submit(pow, 1, 1, id="x").result(WAIT)
    with pytest.raises(taskgate.DuplicateIdError, match="'x'"):
        pool.submit(pow, 1, 1, id="x")


def test_unknown_dependency_and_self_cycle(pool):
    with pytest.raises(taskgate.UnknownDependencyError, match="ghost"):
        pool.submit(pow, 1, 1, id="a", depends_on=["ghost"])
    with pytest.raises(taskgate.CycleError):
        pool.submit(pow, 1, 1, id="me", depends_on=["me"])


@pytest.mark.parametrize("kwargs, exc", [
    ({"priority": "urgent"}, taskgate.InvalidArgumentError),
    ({"priority": 5}, taskgate.InvalidArgumentError),
    ({"timeout": -1}, taskgate.InvalidArgumentError),
    ({"timeout": "soon"}, taskgate.InvalidArgumentError),
    ({"id": ""}, taskgate.InvalidArgumentError),
    ({"id": "a\0b"}, taskgate.InvalidArgumentError),
    ({"depends_on": [None]}, taskgate.InvalidArgumentError),
    ({"writes": [""]}, taskgate.InvalidArgumentError),
    ({"group": ""}, taskgate.InvalidArgumentError),
    ({"difficulty": -3}, taskgate.InvalidArgumentError),
])
def test_bad_submit_arguments(pool, kwargs, exc):
    with pytest.raises(exc):
        pool.submit(pow, 1, 1, **kwargs)
    assert pool.stats()["submitted"] == 0


def test_not_callable(pool):
    with pytest.raises(taskgate.InvalidArgumentError, match="callable"):
        pool.submit(42)


@pytest.mark.parametrize("kwargs", [{"workers": -1}, {"workers": "two"}, {"workers": 5000},
                                    {"max_concurrency": -2}])
def test_bad_pool_options(kwargs):
    with pytest.raises(taskgate.InvalidArgumentError):
        taskgate.Pool(**kwargs)


def test_unknown_processor_name(pool):
    with pytest.raises(taskgate.NotFoundError, match="nope.proc"):
        pool.submit("nope.proc", 1)


def test_run_refuses_bad_task_lists_before_anything_runs(pool, flaky_path):
    pool.load_plugin(flaky_path)
    ok = {"id": "ok", "processor": "flaky.echo", "args": ["x"]}
    cases = [
        ([ok, {"id": "ok", "processor": "flaky.echo", "args": ["y"]}], taskgate.DuplicateIdError, "ok"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "depends_on": ["b"]},
          {"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": ["a"]}], taskgate.CycleError, "a -> b -> a"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "depends_on": ["zz"]}],
         taskgate.UnknownDependencyError, "zz"),
        ([{"id": "a", "processor": "flaky.nothing", "args": []}], taskgate.NotFoundError, "flaky.nothing"),
        ([{"id": "a", "processor": "flaky.echo", "args": [12]}], taskgate.ArgumentTypeError, "a"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x", "y"]}], taskgate.ArgumentTypeError, "a"),
        ([{"id": "a", "processor": "flaky.echo", "args": [None]}], taskgate.ArgumentTypeError, "argument 1"),
        ([{"id": "a", "processor": "flaky.echo", "colour": "red"}], taskgate.InvalidArgumentError, "colour"),
        ([{"processor": "flaky.echo"}], taskgate.InvalidArgumentError, "tasks[0]"),
        ([{"id": "a"}], taskgate.InvalidArgumentError, "processor"),
        ([{"id": "a", "processor": "noplugin"}], taskgate.InvalidArgumentError, "plugin.processor"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "priority": "top"}], taskgate.InvalidArgumentError,
         "priority"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "timeout_s": 0}], taskgate.InvalidArgumentError,
         "timeout_s"),
        ([{"id": "a", "processor": "flaky.echo", "args": "x"}], taskgate.InvalidArgumentError, "args"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "critical": "yes"}], taskgate.InvalidArgumentError,
         "critical"),
        ([{"id": "a", "processor": "flaky.echo", "args": ["x"], "depends_on": ["a"]}], taskgate.InvalidArgumentError,
         "itself"),
        (["not a dict"], taskgate.InvalidArgumentError, "tasks[0]"),
        ("tasks.json", taskgate.InvalidArgumentError, "list"),
    ]
    for tasks, exc, text in cases:
        with pytest.raises(exc) as e:
            pool.run(tasks)
        assert text in str(e.value), (tasks, str(e.value))
    assert pool.stats()["submitted"] == 0


def test_run_conflict_resolution(pool, tmp_path):
    out = str(tmp_path / "out.txt")
    tasks = [{"id": "w1", "processor": len, "args": ["a"], "writes": [out]},
             {"id": "w2", "processor": len, "args": ["bb"], "writes": [out]}]
    with pytest.raises(taskgate.ConflictError, match="w1"):
        pool.run(tasks, conflict_resolution="fail")
    with pytest.raises(taskgate.InvalidArgumentError):
        pool.run(tasks, conflict_resolution="maybe")
    res = pool.run(tasks)
    assert [r.output for r in res.values()] == [1, 2]


def test_plugin_refusals(pool, tmp_path, wrong_abi_path):
    with pytest.raises(taskgate.PluginError, match="no-such.so"):
        pool.load_plugin(tmp_path / "no-such.so")
    text = tmp_path / "notes.so"
    text.write_text("not a library")
    with pytest.raises(taskgate.PluginError, match="notes.so"):
        pool.load_plugin(text)
    with pytest.raises(taskgate.PluginError, match="ABI") as e:
        pool.load_plugin(wrong_abi_path)
    assert e.value.code == -16 and "r_major.so" in e.value.detail
    with pytest.raises(taskgate.PluginError):
        pool.load_plugin(os.path.dirname(wrong_abi_path))
    with pytest.raises(taskgate.InvalidArgumentError):
        pool.load_plugin("")
    with pytest.raises(taskgate.InvalidArgumentError):
        pool.load_plugin("a\0b.so")


def test_wrong_argument_types_for_a_processor(pool, good_path):
    good = pool.load_plugin(good_path)
    work = good["plain_work"]  # (i32, i64)
    for args, exc in [((1.5, 2), taskgate.ArgumentTypeError), (("1", 2), taskgate.ArgumentTypeError),
                      ((1,), taskgate.ArgumentTypeError), ((1, 2, 3), taskgate.ArgumentTypeError),
                      ((2**40, 1), taskgate.ArgumentTypeError), ((1, 2**70), taskgate.RangeError),
                      (([1], 2), taskgate.ArgumentTypeError), ((True, 2), taskgate.ArgumentTypeError)]:
        with pytest.raises(exc):
            pool.submit(work, *args)
    with pytest.raises(taskgate.ArgumentTypeError, match="row 1"):
        pool.batch(work, [(0, 0), (1,)])
    with pytest.raises(taskgate.InvalidArgumentError, match="positional"):
        pool.submit(work, 0, 0, extra=1)
    assert pool.stats()["submitted"] == 0


def test_run_with_no_tasks_is_an_empty_result(pool):
    assert pool.run([]) == {}
