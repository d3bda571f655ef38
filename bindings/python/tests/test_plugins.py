"""Plugin processors from Python: loading, info, every argument type, batches."""
import concurrent.futures as cf

import pytest

import taskgate
from conftest import WAIT


def test_load_and_describe(flaky_path, text_path):
    with taskgate.Pool(workers=2) as pool:
        flaky = pool.load_plugin(flaky_path)
        assert (flaky.name, flaky.path) == ("flaky", flaky_path)
        assert set(flaky.processors) >= {"echo", "sleep_ms", "fail_first"}
        echo = flaky["echo"]
        assert (echo.name, echo.signature, echo.arg_types) == ("flaky.echo", "(string)", ("string",))
        assert pool.plugins["flaky"] is flaky
        assert pool.processor("flaky.echo").name == "flaky.echo"
        text = pool.load_plugin(text_path)
        assert text["wrap"].arg_types == ("string", "string", "i32", "bool")


def test_plugin_tasks_every_door(flaky_path, workers):
    with taskgate.Pool(workers=workers) as pool:
        pool.load_plugin(flaky_path)
        echo = pool.processor("flaky.echo")
        assert pool.submit(echo, "hello").result(WAIT) == b"hello"
        assert pool.submit("flaky.echo", "by name", id="n").result(WAIT) == b"by name"
        assert pool.result("n").output == b"by name"
        assert list(pool.map(echo, [f"v{k}" for k in range(500)])) == [f"v{k}".encode() for k in range(500)]
        b = pool.batch("flaky.sleep_ms", [(0,)] * 100)
        assert [r.status for r in b.results(WAIT)] == ["succeeded"] * 100
        bad = pool.submit("flaky.sleep_ms", -1)
        with pytest.raises(taskgate.TaskFailed, match="bad ms") as e:
            bad.result(WAIT)
        assert e.value.result.error.startswith("bad ms")


def test_every_argument_type(good_path):
    with taskgate.Pool(workers=2) as pool:
        good = pool.load_plugin(good_path)
        out = pool.submit(good["all_types"], -5, 7, -(2**40), 2**64 - 1, 2.5, True, "süß", b"\x00\xff", 1.5,
                          -8, 200, -300, 60000).result(WAIT).decode()
        assert out == ("i32=-5 u32=7 i64=-1099511627776 u64=18446744073709551615 double=2.5 bool=1 "
                       "string=süß bytes=2:00ff float=1.5 i8=-8 u8=200 i16=-300 u16=60000")
        rows = [(k, k, k, k, float(k), False, str(k), bytes([k]), 0.5, 1, 2, 3, 4) for k in range(50)]
        outs = pool.batch(good["all_types"], rows).results(WAIT)
        assert outs[7].output.decode().startswith("i32=7 u32=7 i64=7 u64=7 double=7 bool=0 string=7 bytes=1:07")


def test_timeout_and_cancel_of_plugin_tasks(flaky_path):
    with taskgate.Pool(workers=1) as pool:
        pool.load_plugin(flaky_path)
        slow = pool.submit("flaky.sleep_ms", 5000, timeout=0.05)
        with pytest.raises(taskgate.TaskTimedOut):
            slow.result(WAIT)
        blocker = pool.submit("flaky.sleep_ms", 200)
        queued = pool.submit("flaky.sleep_ms", 0)
        assert queued.cancel()
        assert blocker.result(WAIT) == b"slept"


def test_unload_is_refused_while_tasks_are_in_flight(flaky_path):
    with taskgate.Pool(workers=1) as pool:
        flaky = pool.load_plugin(flaky_path)
        f = pool.submit("flaky.sleep_ms", 300)
        with pytest.raises(taskgate.BusyError):
            flaky.unload()
        f.result(WAIT)
        flaky.unload()
        with pytest.raises(taskgate.NotFoundError):
            pool.processor("flaky.echo")


def test_run_task_dicts_with_plugins_and_callables(text_path, flaky_path, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello world\n")
    with taskgate.Pool(workers=2) as pool:
        pool.load_plugin(text_path)
        pool.load_plugin(flaky_path)
        tasks = [
            {"id": "upper", "processor": "text.upper", "args": [str(src), str(tmp_path / "up.txt")],
             "reads": [str(src)], "writes": [str(tmp_path / "up.txt")], "priority": "high"},
            {"id": "read", "processor": lambda p: open(p).read(), "args": [str(tmp_path / "up.txt")],
             "depends_on": ["upper"]},
            {"id": "fails", "processor": "flaky.sleep_ms", "args": [-1], "group": "g"},
            {"id": "after", "processor": "flaky.echo", "args": ["x"], "depends_on": ["fails"]},
        ]
        results = pool.run(tasks, timeout=WAIT)
    assert list(results) == ["upper", "read", "fails", "after"]
    assert results["upper"].ok and results["read"].output == "HELLO WORLD\n"
    assert results["fails"].status == "failed" and results["after"].status == "skipped"
    with pytest.raises(taskgate.TaskSkipped):
        results["after"].raise_for_status()
