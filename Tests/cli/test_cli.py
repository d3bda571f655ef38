"""Tests of the taskgate command-line program, run on the real binary.

    TASKGATE=build/bin/taskgate PLUGINS=build/plugins \
        python3 -m unittest discover -s Tests/cli -t Tests/cli -v

TASKGATE is the binary (default /work/main/build/bin/taskgate), PLUGINS the
folder of the example plugins libchecksum.so, libtext.so and libflaky.so
(default /work/main/build/plugins). Only the standard library is needed; the
schema tests also need the jsonschema package and are skipped without it.

Every test works in a temporary folder of its own, writes its task files there
with absolute plugin paths, and runs the binary with a timeout, so that a hang
fails the test instead of stopping the suite.
"""

import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASKGATE = os.path.abspath(os.environ.get("TASKGATE", "/work/main/build/bin/taskgate"))
PLUGINS = os.path.abspath(os.environ.get("PLUGINS", "/work/main/build/plugins"))
SCHEMA_PATH = REPO / "schema" / "taskfile.schema.json"
EXAMPLE = REPO / "examples" / "pipeline" / "tasks.json"

# Every call of the binary gets this many seconds at most.
TIMEOUT = 30

CONFIG_KEYS = {
    "max_parallel_tasks": 5,
    "workers": 0,
    "max_context_complexity": 30,
    "lock_timeout_seconds": 30,
    "lock_dir": ".taskgate/locks",
    "cache_dir": ".taskgate/cache",
    "retry_delays": [0.1, 0.5, 1, 2],
    "conflict_resolution": "sequential",
    "enable_monitoring": True,
    "checkpoint_frequency": 3,
    "log_level": "INFO",
}

try:
    import jsonschema
except ImportError:  # pragma: no cover - CI installs it
    jsonschema = None


def plugin(name):
    """Absolute path of an example plugin: plugin('text') -> .../libtext.so."""
    return os.path.join(PLUGINS, f"lib{name}.so")


def clean_env(**extra):
    """The environment without TASKGATE_* configuration and NO_COLOR, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKGATE_") and k != "NO_COLOR"}
    env.update(extra)
    return env


def tg(*args, cwd=None, env=None, timeout=TIMEOUT):
    """Runs taskgate to the end (or raises TimeoutExpired) and returns the CompletedProcess."""
    return subprocess.run(
        [TASKGATE, *map(str, args)], cwd=cwd, env=env if env is not None else clean_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, errors="replace", timeout=timeout)


def write_task_file(folder, tasks, plugins=("flaky",), config=None, name="tasks.json", **top):
    """Writes a task file (plugins by absolute path) and returns its path."""
    doc = {"version": 1}
    if config is not None:
        doc["config"] = config
    doc["plugins"] = {p: plugin(p) for p in plugins}
    doc["tasks"] = tasks
    doc.update(top)
    path = Path(folder) / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def sleep_task(tid, ms, **fields):
    return dict({"id": tid, "processor": "flaky.sleep_ms", "args": [ms]}, **fields)


def echo_task(tid, text="hi", **fields):
    return dict({"id": tid, "processor": "flaky.echo", "args": [text]}, **fields)


def json_lines(text):
    """Every line of text parsed as JSON (a failure names the line)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError as e:  # pragma: no cover - reported as a failure
            raise AssertionError(f"stdout line is not JSON ({e}): {line!r}")
    return out


def events(text, name):
    return [e for e in json_lines(text) if e.get("event") == name]


MARK = "@@"


def unmark(text):
    """Removes the marker @@ from text; returns (text, 'LINE:COLUMN' of where it was)."""
    i = text.index(MARK)
    before = text[:i]
    line = before.count("\n") + 1
    column = i - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), f"{line}:{column}"


def overlap(a, b):
    """Whether two results' run intervals [queue_ms, queue_ms + duration_ms] overlap (5 ms slack for the clocks)."""
    a0, a1 = a["queue_ms"], a["queue_ms"] + a["duration_ms"]
    b0, b1 = b["queue_ms"], b["queue_ms"] + b["duration_ms"]
    return a0 < b1 - 5.0 and b0 < a1 - 5.0


class Background:
    """taskgate run in the background with --json, its output read by threads."""

    def __init__(self, test, args, cwd):
        self.p = subprocess.Popen(
            [TASKGATE, *map(str, args)], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        test.addCleanup(self.kill)
        self.out, self.err = [], []
        self.started = threading.Event()
        self.readers = [threading.Thread(target=self._read, args=(self.p.stdout, self.out, True), daemon=True),
                        threading.Thread(target=self._read, args=(self.p.stderr, self.err, False), daemon=True)]
        for t in self.readers:
            t.start()

    def _read(self, stream, into, watch):
        for line in stream:
            into.append(line)
            if watch and '"run_started"' in line:
                self.started.set()

    def wait_started(self, timeout=10):
        if not self.started.wait(timeout):
            raise AssertionError(f"no run_started event within {timeout} s; stderr: {''.join(self.err)}")

    def signal(self, sig):
        self.p.send_signal(sig)

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"taskgate did not end within {timeout} s")
        for t in self.readers:
            t.join(5)
        self.p.stdout.close()
        self.p.stderr.close()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        for t in self.readers:
            t.join(5)
        for stream in (self.p.stdout, self.p.stderr):
            if not stream.closed:
                stream.close()

    @property
    def stdout(self):
        return "".join(self.out)

    @property
    def stderr(self):
        return "".join(self.err)


def run_in_pty(args, cwd, env, timeout=20):
    """Runs taskgate with a pseudo-terminal as stderr; returns (exit status, bytes written to stderr)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([TASKGATE, *map(str, args)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
    finally:
        os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not chunk:
                    break
                data += chunk
            elif p.poll() is not None:
                break
        else:
            raise AssertionError(f"taskgate under a terminal did not end within {timeout} s")
        return p.wait(10), data
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        os.close(master)


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="taskgate-cli-")
        self.addCleanup(self._tmp.cleanup)
        # Resolved, as taskgate resolves the task file's folder.
        self.dir = Path(os.path.realpath(self._tmp.name))


# ---------------------------------------------------------------------------
# The shipped example


class ShippedExampleTest(TempDirTest):
    def copy_example(self):
        """Copies examples/pipeline (without out/) and examples/data, keeping their layout."""
        shutil.copytree(REPO / "examples" / "pipeline", self.dir / "examples" / "pipeline",
                        ignore=shutil.ignore_patterns("out"))
        shutil.copytree(REPO / "examples" / "data", self.dir / "examples" / "data")
        path = self.dir / "examples" / "pipeline" / "tasks.json"
        doc = json.loads(path.read_text())
        doc["plugins"] = {alias: plugin(Path(p).name[3:-3]) for alias, p in doc["plugins"].items()}
        path.write_text(json.dumps(doc, indent=2))
        return path, doc

    def test_example_runs_and_its_outputs_are_right(self):
        path, doc = self.copy_example()
        pipeline = path.parent
        r = tg("run", "examples/pipeline/tasks.json", "--results", "results.json", "--json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertEqual(len(results["tasks"]), 46)
        self.assertEqual(results["summary"]["tasks"], 46)
        self.assertEqual(results["summary"]["succeeded"], 46)
        self.assertEqual([t["id"] for t in results["tasks"]], [t["id"] for t in doc["tasks"]])
        for t in results["tasks"]:
            self.assertEqual(t["status"], "succeeded", t)
        by_id = {t["id"]: t for t in results["tasks"]}

        # Checksums: the sha256sum format, relative to the task file's folder.
        for k in range(24):
            name = f"sample-{k:02d}"
            digest = hashlib.sha256((self.dir / "examples" / "data" / f"{name}.bin").read_bytes()).hexdigest()
            self.assertEqual((pipeline / "out" / "sums" / f"{name}.sha256").read_text(),
                             f"{digest}  ../data/{name}.bin\n")
            self.assertEqual(by_id[f"sum-{k:02d}"]["output"], digest)

        texts = sorted(p.stem for p in (pipeline / "texts").glob("*.txt"))
        self.assertEqual(len(texts), 6)
        for name in texts:
            original = (pipeline / "texts" / f"{name}.txt").read_bytes()
            upper = (pipeline / "out" / "upper" / f"{name}.txt").read_bytes()
            self.assertEqual(upper, original.upper())
            self.assertEqual(by_id[f"upper-{name}"]["output"], str(len(original)))
            wrapped = (pipeline / "out" / "wrapped" / f"{name}.txt").read_text(encoding="utf-8")
            self.assertEqual(wrapped.split(), upper.decode().split())
            for line in wrapped.splitlines():
                self.assertTrue(len(line) <= 48 or " " not in line, line)
            stats = json.loads(by_id[f"stats-{name}"]["output"])
            self.assertEqual(stats["bytes"], len(original))
            self.assertEqual(stats["words"], len(original.split()))
            self.assertEqual(stats["lines"], len(original.decode().splitlines()))

        # Three tasks write out/latest.txt one at a time: it holds one whole result.
        latest = (pipeline / "out" / "latest.txt").read_text()
        reversed_texts = ["".join(line + "\n" for line in reversed((pipeline / "texts" / f"{n}.txt").read_text().splitlines()))
                          for n in ("harbour", "kitchen", "library")]
        self.assertIn(latest, reversed_texts)
        self.assertEqual(by_id["all-sums"]["output"], "all 24 checksums written")

        # Dependencies first: the order of task_ended events.
        order = [e["task_id"] for e in events(r.stdout, "task_ended")]
        self.assertEqual(sorted(order), sorted(by_id))
        for name in texts:
            self.assertLess(order.index(f"upper-{name}"), order.index(f"wrap-{name}"))
        for k in range(24):
            self.assertLess(order.index(f"sum-{k:02d}"), order.index("all-sums"))

    def test_example_validates_against_the_schema(self):
        if jsonschema is None:
            self.skipTest("the jsonschema package is not installed (python3 -m pip install jsonschema)")
        schema = json.loads(SCHEMA_PATH.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        errors = [e.message for e in validator.iter_errors(json.loads(EXAMPLE.read_text()))]
        self.assertEqual(errors, [])


# ---------------------------------------------------------------------------
# The schema and the CLI agree


@unittest.skipIf(jsonschema is None, "the jsonschema package is not installed (python3 -m pip install jsonschema)")
class SchemaAgreesWithCLITest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
        (self.dir / "in.txt").write_text("hello\n")

    def good(self):
        return {
            "$schema": "../schema/taskfile.schema.json",
            "version": 1,
            "description": "every field",
            "config": {"max_parallel_tasks": 2, "workers": 2, "max_context_complexity": 100,
                       "lock_timeout_seconds": 2.5, "lock_dir": "locks", "retry_delays": [0, 0.25], "conflict_resolution": "sequential",
                       "enable_monitoring": False, "checkpoint_frequency": 10, "log_level": "warning"},
            "plugins": {"flaky": plugin("flaky"), "text_2": plugin("text")},
            "tasks": [
                {"id": "a", "processor": "text_2.upper", "args": ["in.txt", "out/a.txt"], "priority": "high",
                 "reads": ["in.txt"], "writes": ["out/a.txt"], "shared": ["db"], "difficulty": 7, "timeout_s": 30,
                 "group": "g", "critical": True, "payload": "p", "description": "d"},
                {"id": "b", "processor": "text_2.wrap", "args": ["out/a.txt", "out/b.txt", 20, False],
                 "depends_on": ["a"], "priority": -1},
                {"id": "c", "processor": "text_2.stats", "args": ["in.txt", 1.5], "priority": 1},
                {"id": "d", "processor": "flaky.fail_first", "args": ["k", 0], "priority": "low",
                 "policy": "api", "key": "api.example.com"},
            ],
            "policies": {
                "default": {"retry": {"max_attempts": 2}},
                "api": {
                    "description": "every policy field",
                    "retry": {"max_attempts": 3, "delays_s": [0, 0.01], "base_delay_s": 0.01, "multiplier": 1.5,
                              "max_delay_s": 1, "jitter": "equal", "jitter_factor": 0.2, "failed_is_permanent": False,
                              "ignore_retry_after": True, "budget_ratio": 0.5, "budget_window_s": 5,
                              "budget_min_per_second": 2},
                    "breaker": {"failure_threshold": 3, "success_threshold": 1, "half_open_calls": 2, "open_s": 1,
                                "window": "count", "window_size": 20, "minimum_calls": 5, "failure_rate": 0.5,
                                "slow_call_s": 2, "slow_call_rate": 0.9},
                    "limit": {"max_concurrent": 2, "requests_per_minute": 600, "cost": 2, "burst": 10},
                    "credentials": {"env": "TG_SCHEMA_TEST_KEY", "cooldown_s": 1},
                    "fallback": "flaky.fail_first",
                    "seed": 42,
                },
            },
            "groups": {"g": {"min_required": 1, "critical": True, "cancel_all": False}},
            "aggregate": {"stats": {"kind": "collect", "from": ["c"], "min_required": 1},
                          "common": {"kind": "frequency", "from": "g", "threshold": 0.5}},
        }

    def check(self, doc):
        errors = [e.message for e in self.validator.iter_errors(doc)]
        (self.dir / "tasks.json").write_text(json.dumps(doc, indent=2))
        r = tg("run", "tasks.json", "-q", cwd=self.dir, env=clean_env(TG_SCHEMA_TEST_KEY="k-schema"))
        return errors, r

    def test_a_file_using_every_field_is_valid_and_runs(self):
        errors, r = self.check(self.good())
        self.assertEqual(errors, [])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.dir / "out" / "a.txt").read_text(), "HELLO\n")

    def test_bad_files_are_refused_by_the_schema_and_by_the_cli(self):
        def task_change(**fields):
            def f(doc):
                doc["tasks"][0].update(fields)
            return f

        def set_top(key, value):
            def f(doc):
                doc[key] = value
            return f

        def drop(key):
            def f(doc):
                del doc[key]
            return f

        def config(**fields):
            def f(doc):
                doc["config"].update(fields)
            return f

        def add_task_field(key, value):
            return task_change(**{key: value})

        cases = {
            "version 2": set_top("version", 2),
            "version missing": drop("version"),
            "tasks missing": drop("tasks"),
            "tasks an object": set_top("tasks", {"a": 1}),
            "unknown top-level field": set_top("extra", 1),
            "plugins an array": set_top("plugins", []),
            "plugin alias with a space": set_top("plugins", {"fl aky": plugin("flaky"), "text_2": plugin("text")}),
            "plugin path empty": set_top("plugins", {"flaky": "", "text_2": plugin("text")}),
            "task not an object": set_top("tasks", [5]),
            "task without id": lambda d: d["tasks"][0].pop("id"),
            "task without processor": lambda d: d["tasks"][0].pop("processor"),
            "empty id": task_change(id=""),
            "id of 257 characters": task_change(id="x" * 257),
            "reads with a NUL": task_change(reads=["in.txt\u0000x"]),
            "unknown task field (typo depends)": add_task_field("depends", ["b"]),
            "processor without a dot": task_change(processor="upper"),
            "args not an array": task_change(args="in.txt"),
            "args item null": task_change(args=["in.txt", None]),
            "args item odd hex": task_change(args=["in.txt", {"hex": "abc"}]),
            "priority urgent": task_change(priority="urgent"),
            "priority 2": task_change(priority=2),
            "depends_on a string": task_change(depends_on="b"),
            "depends_on empty string": task_change(depends_on=[""]),
            "reads a number": task_change(reads=[1]),
            "writes empty string": task_change(writes=[""]),
            "difficulty -1": task_change(difficulty=-1),
            "difficulty 1.5": task_change(difficulty=1.5),
            "difficulty 1000001": task_change(difficulty=1000001),
            "timeout_s 0": task_change(timeout_s=0),
            "timeout_s -1": task_change(timeout_s=-1),
            "timeout_s over a year": task_change(timeout_s=31536001),
            "timeout_s a string": task_change(timeout_s="5"),
            "group empty": task_change(group=""),
            "shared a string": task_change(shared="db"),
            "shared with an empty key": task_change(shared=[""]),
            "critical a string": task_change(critical="yes"),
            "payload a number": task_change(payload=5),
            "task description a number": task_change(description=5),
            "groups an array": set_top("groups", []),
            "group min_required -1": set_top("groups", {"g": {"min_required": -1}}),
            "group min_required 150%": set_top("groups", {"g": {"min_required": "150%"}}),
            "group min_required 1.5": set_top("groups", {"g": {"min_required": 1.5}}),
            "group unknown field": set_top("groups", {"g": {"minimum": 1}}),
            "group critical a string": set_top("groups", {"g": {"critical": "yes"}}),
            "aggregate kind average": set_top("aggregate", {"x": {"kind": "average", "from": "g"}}),
            "aggregate without from": set_top("aggregate", {"x": {"kind": "union"}}),
            "aggregate from empty list": set_top("aggregate", {"x": {"from": []}}),
            "aggregate threshold 0": set_top("aggregate", {"x": {"from": "g", "threshold": 0}}),
            "aggregate unknown field": set_top("aggregate", {"x": {"from": "g", "by": "id"}}),
            "config an array": set_top("config", []),
            "config unknown key": config(max_paralel_tasks=2),
            "config max_parallel_tasks 0": config(max_parallel_tasks=0),
            "config max_parallel_tasks a string": config(max_parallel_tasks="4"),
            "config workers 1025": config(workers=1025),
            "config lock_timeout_seconds 0": config(lock_timeout_seconds=0),
            "config lock_dir empty": config(lock_dir=""),
            "config lock_dir a number": config(lock_dir=3),
            "config retry_delays empty": config(retry_delays=[]),
            "config retry_delays -1": config(retry_delays=[-1]),
            "config conflict_resolution bogus": config(conflict_resolution="parallel"),
            "config enable_monitoring a string": config(enable_monitoring="yes"),
            "config checkpoint_frequency 0": config(checkpoint_frequency=0),
            "config log_level bogus": config(log_level="bogus"),
            "policies an array": set_top("policies", []),
            "policy name with a space": lambda d: d["policies"].update({"a b": {}}),
            "policy not an object": lambda d: d["policies"].update({"p": 5}),
            "policy unknown field": lambda d: d["policies"]["api"].update({"retries": {}}),
            "retry unknown field": lambda d: d["policies"]["api"]["retry"].update({"max_retries": 3}),
            "retry max_attempts 0": lambda d: d["policies"]["api"]["retry"].update({"max_attempts": 0}),
            "retry max_attempts 1.5": lambda d: d["policies"]["api"]["retry"].update({"max_attempts": 1.5}),
            "retry delays_s empty": lambda d: d["policies"]["api"]["retry"].update({"delays_s": []}),
            "retry delays_s negative": lambda d: d["policies"]["api"]["retry"].update({"delays_s": [-1]}),
            "retry multiplier 0.5": lambda d: d["policies"]["api"]["retry"].update({"multiplier": 0.5}),
            "retry jitter bogus": lambda d: d["policies"]["api"]["retry"].update({"jitter": "wild"}),
            "retry jitter_factor 2": lambda d: d["policies"]["api"]["retry"].update({"jitter_factor": 2}),
            "retry failed_is_permanent a string": lambda d: d["policies"]["api"]["retry"].update({"failed_is_permanent": "no"}),
            "breaker window bogus": lambda d: d["policies"]["api"]["breaker"].update({"window": "sliding"}),
            "breaker failure_rate 2": lambda d: d["policies"]["api"]["breaker"].update({"failure_rate": 2}),
            "breaker success_threshold 0": lambda d: d["policies"]["api"]["breaker"].update({"success_threshold": 0}),
            "breaker open_s negative": lambda d: d["policies"]["api"]["breaker"].update({"open_s": -1}),
            "limit max_concurrent -1": lambda d: d["policies"]["api"]["limit"].update({"max_concurrent": -1}),
            "limit unknown field": lambda d: d["policies"]["api"]["limit"].update({"rpm": 5}),
            "credentials without env": lambda d: d["policies"]["api"]["credentials"].pop("env"),
            "credentials env with a dash": lambda d: d["policies"]["api"]["credentials"].update({"env": "A-B"}),
            "credentials with a key in the file": lambda d: d["policies"]["api"]["credentials"].update({"keys": ["sk"]}),
            "fallback without a dot": lambda d: d["policies"]["api"].update({"fallback": "cached"}),
            "seed -1": lambda d: d["policies"]["api"].update({"seed": -1}),
            "task policy empty": task_change(policy=""),
            "task policy a number": task_change(policy=1),
            "task key empty": task_change(key=""),
        }
        for name, change in cases.items():
            with self.subTest(name):
                shutil.rmtree(self.dir / "out", ignore_errors=True)
                doc = self.good()
                change(doc)
                errors, r = self.check(doc)
                self.assertNotEqual(errors, [], "the schema accepts it")
                self.assertEqual(r.returncode, 2, f"the CLI accepts it: {r.stderr}")
                self.assertTrue(r.stderr.startswith("taskgate: tasks.json"), r.stderr)
                self.assertFalse((self.dir / "out").exists(), "a task ran")

    def test_nul_characters_are_refused_by_both(self):
        # taskgate hands ids and plugin paths to C as NUL-terminated strings,
        # so a NUL would silently cut them short.
        def with_id(doc):
            doc["tasks"][2]["id"] = "c\u0000x"

        def with_plugin_path(doc):
            doc["plugins"]["flaky"] = plugin("flaky") + "\u0000.txt"

        for name, change in (("id", with_id), ("plugin path", with_plugin_path)):
            with self.subTest(name):
                shutil.rmtree(self.dir / "out", ignore_errors=True)
                doc = self.good()
                change(doc)
                errors, r = self.check(doc)
                self.assertNotEqual(errors, [], "the schema accepts it")
                self.assertEqual(r.returncode, 2, f"the CLI accepts it: {r.stderr}")
                self.assertIn("NUL", r.stderr)
                self.assertFalse((self.dir / "out").exists(), "a task ran")

    def test_top_level_description_must_be_a_string(self):
        # The schema says so, and a task's description is checked the same way.
        doc = self.good()
        doc["description"] = 5
        errors, r = self.check(doc)
        self.assertNotEqual(errors, [])
        self.assertEqual(r.returncode, 2, "taskgate accepts a top-level description that is not a string")
        self.assertIn("'description'", r.stderr)


# ---------------------------------------------------------------------------
# Exit status


class ExitStatusTest(TempDirTest):
    def test_0_when_every_task_succeeds(self):
        write_task_file(self.dir, [echo_task("a"), sleep_task("b", 10, depends_on=["a"])])
        r = tg("run", "tasks.json", "--results", "results.json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertEqual([t["status"] for t in results["tasks"]], ["succeeded", "succeeded"])

    def test_1_when_a_task_fails_and_its_dependents_are_skipped(self):
        write_task_file(self.dir, [
            {"id": "bad", "processor": "flaky.fail_first", "args": ["key", 1]},
            echo_task("child", depends_on=["bad"]),
            echo_task("grandchild", depends_on=["child"]),
            echo_task("other"),
        ])
        r = tg("run", "tasks.json", "--results", "results.json", cwd=self.dir)
        self.assertEqual(r.returncode, 1, r.stderr)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        self.assertEqual(res["bad"]["status"], "failed")
        self.assertEqual(res["bad"]["error"], "attempt 1 of key 'key': failing on purpose (n=1)")
        self.assertEqual(res["child"]["status"], "skipped")
        self.assertIn("'bad'", res["child"]["error"])
        self.assertEqual(res["child"]["attempts"], 0)
        self.assertEqual(res["grandchild"]["status"], "skipped")
        self.assertEqual(res["other"]["status"], "succeeded")
        self.assertIn("failed bad (flaky.fail_first): attempt 1 of key 'key'", r.stderr)

    def test_2_for_usage_errors(self):
        write_task_file(self.dir, [echo_task("a")])
        write_task_file(self.dir, [echo_task("b")], name="other.json")
        cases = {
            "no arguments": ([], "usage: taskgate"),
            "run without a file": (["run"], "run needs a task file"),
            "unknown option": (["run", "tasks.json", "--bogus"], "unknown option '--bogus'"),
            "unknown option before the file": (["run", "--frobnicate", "tasks.json"], "unknown option '--frobnicate'"),
            "unknown command": (["frobnicate"], "unknown command 'frobnicate'"),
            "missing file": (["run", "missing.json"], "missing.json: cannot open the task file"),
            "a folder": (["run", "."], "is a directory"),
            "two files": (["run", "tasks.json", "other.json"], "run takes one task file, got 2"),
            "--results without a value": (["run", "tasks.json", "--results"], "--results needs a value"),
            "help on an unknown command": (["help", "frobnicate"], "no help for 'frobnicate'"),
            "config with two files": (["config", "tasks.json", "other.json"], "at most one task file"),
            "config with an unknown option": (["config", "--bogus"], "unknown option '--bogus'"),
        }
        for name, (args, message) in cases.items():
            with self.subTest(name):
                r = tg(*args, cwd=self.dir)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertEqual(r.stdout, "")

    def test_empty_task_list_is_nothing_to_do(self):
        # "tasks": [] is a valid task file (the schema and the file checks accept
        # it): nothing to run, so every task succeeded.
        (self.dir / "tasks.json").write_text('{"version": 1, "tasks": []}\n')
        r = tg("run", "tasks.json", "--results", "results.json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertEqual(results["summary"]["tasks"], 0)
        self.assertEqual(results["tasks"], [])


# ---------------------------------------------------------------------------
# Bad task files: each refused with exit 2 before anything runs


class BadTaskFileTest(TempDirTest):
    """Each file starts with a task that would write out/in.txt: nothing may run."""

    def setUp(self):
        super().setUp()
        (self.dir / "in.txt").write_text("hello\n")

    def text(self, *task_lines, plugins=None, head='  "version": 1,\n'):
        plugins = plugins if plugins is not None else (
            '    "flaky": ' + json.dumps(plugin("flaky")) + ',\n'
            '    "text": ' + json.dumps(plugin("text")) + '\n')
        lines = ['    {"id": "writer", "processor": "text.upper", "args": ["in.txt", "out/in.txt"], "writes": ["out/in.txt"]}']
        lines += ["    " + t for t in task_lines]
        return ("{\n" + head + '  "plugins": {\n' + plugins + "  },\n"
                '  "tasks": [\n' + ",\n".join(lines) + "\n  ]\n}\n")

    def refused(self, text, *needles, name="tasks.json"):
        """Writes text (with @@ where the error points) and checks that run refuses it."""
        where = None
        if MARK in text:
            text, where = unmark(text)
        (self.dir / name).write_text(text)
        r = tg("run", name, "--results", "results.json", cwd=self.dir)
        self.assertEqual(r.returncode, 2, f"exit status {r.returncode}; stderr: {r.stderr}")
        self.assertEqual(r.stdout, "")
        first = r.stderr.splitlines()[0] if r.stderr else ""
        if where:
            self.assertTrue(first.startswith(f"taskgate: {name}:{where}: "),
                            f"expected the message to start with 'taskgate: {name}:{where}: ', got: {first}")
        for needle in needles:
            self.assertIn(needle, first)
        self.assertFalse((self.dir / "out").exists(), "a task ran")
        self.assertFalse((self.dir / "results.json").exists(), "a results file was written for a refused file")
        return first

    def test_the_template_itself_runs(self):
        # The control for the tests below: without the fault, the file runs.
        (self.dir / "tasks.json").write_text(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": ["writer"]}'))
        r = tg("run", "tasks.json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((self.dir / "out" / "in.txt").read_text(), "HELLO\n")

    def test_invalid_json(self):
        self.refused('{\n  "version": 1,\n  "tasks": [{"id": "a",@@, "processor": "flaky.echo"}]\n}\n', "invalid JSON")

    def test_empty_file(self):
        self.refused("@@", "invalid JSON")

    def test_not_an_object(self):
        self.refused("@@[]\n", "JSON object")

    def test_version_missing(self):
        self.refused(MARK + self.text(head=""), "'version'", "missing")

    def test_version_2(self):
        self.refused(self.text(head='  "version": @@2,\n'), "'version'", "must be 1", "got 2")

    def test_version_1_0(self):
        self.refused(self.text(head='  "version": @@1.0,\n'), "'version'", "must be 1")

    def test_tasks_not_an_array(self):
        self.refused('{\n  "version": 1,\n  "tasks": @@{"id": "a"}\n}\n', "'tasks'", "must be an array")

    def test_unknown_top_level_field(self):
        self.refused(self.text(head='  "version": 1,\n  "task": @@[],\n'), "unknown top-level field 'task'")

    def test_duplicate_task_id(self):
        text = self.text('{"id": "a", "processor": "flaky.echo", "args": ["x"]}',
                         '@@{"id": "a", "processor": "flaky.echo", "args": ["y"]}')
        first_line = text.splitlines().index('    {"id": "a", "processor": "flaky.echo", "args": ["x"]},') + 1
        self.refused(text, "task 'a'", "id", f"already used by the task at {first_line}:5")

    def test_unknown_field_in_a_task(self):
        msg = self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends": @@["writer"]}'),
                           "task 'b'", "unknown field 'depends'")
        self.assertIn("depends_on", msg)  # the known fields are listed

    def test_processor_without_a_dot(self):
        self.refused(self.text('{"id": "b", "processor": @@"echo", "args": ["x"]}'),
                     "task 'b' field 'processor'", "plugin.processor")

    def test_processor_missing(self):
        self.refused(self.text('@@{"id": "b", "args": ["x"]}'), "task 'b'", "'processor'")

    def test_unknown_plugin_alias(self):
        self.refused(self.text('{"id": "b", "processor": @@"flakey.echo", "args": ["x"]}'),
                     "task 'b' field 'processor'", "'flakey'", "flaky")

    def test_unknown_processor_name(self):
        self.refused(self.text('{"id": "b", "processor": @@"flaky.ekho", "args": ["x"]}'),
                     "task 'b' field 'processor'", "no processor 'ekho'", "echo")

    def test_wrong_argument_count(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.fail_first", "args": @@["k"]}'),
                     "task 'b' field 'args'", "takes 2 arguments", "(string, i32)", "got 1")

    def test_args_missing(self):
        self.refused(self.text('@@{"id": "b", "processor": "flaky.echo"}'), "task 'b' field 'args'", "got 0")

    def test_wrong_argument_type(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.fail_first", "args": ["k", @@"3"]}'),
                     "task 'b' field 'args'", "argument 2", "expected i32", "a string")

    def test_argument_out_of_range(self):
        # Points at the argument and names the field, like a wrong type does.
        self.refused(self.text('{"id": "b", "processor": "flaky.fail_first", "args": ["k", @@3000000000]}'),
                     "task 'b' field 'args'", "argument 2", "3000000000", "out of range")

    def test_argument_not_an_integer(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.sleep_ms", "args": [@@1.5]}'),
                     "task 'b' field 'args'", "argument 1", "expected i64")

    def test_depends_on_an_unknown_id(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": ["writer", @@"nope"]}'),
                     "task 'b' field 'depends_on'", "'nope'")

    def test_self_dependency(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": @@["b"]}'),
                     "task 'b' field 'depends_on'", "itself")

    def cycle_text(self):
        return self.text('{"id": "a", "processor": "flaky.echo", "args": ["x"], "depends_on": ["b"]}',
                         '{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": ["a"]}')

    def test_dependency_cycle_is_refused_and_named(self):
        msg = self.refused(self.cycle_text())
        self.assertTrue("a -> b -> a" in msg or "b -> a -> b" in msg, msg)

    def test_dependency_cycle_message_names_position_and_field(self):
        msg = self.refused(self.cycle_text())
        self.assertRegex(msg, r"^taskgate: tasks\.json:\d+:\d+: ", "no line:column")
        self.assertIn("'depends_on'", msg)
        self.assertRegex(msg, r"task '[ab]'")

    def test_longer_cycle(self):
        msg = self.refused(self.text('{"id": "a", "processor": "flaky.echo", "args": ["x"], "depends_on": ["c"]}',
                                     '{"id": "b", "processor": "flaky.echo", "args": ["x"], "depends_on": ["a"]}',
                                     '{"id": "c", "processor": "flaky.echo", "args": ["x"], "depends_on": ["b", "writer"]}'))
        self.assertTrue(re.search(r"([abc]) -> [abc] -> [abc] -> \1", msg), msg)

    def plugins_text(self, flaky_path_json):
        return '    "flaky": @@' + flaky_path_json + ',\n    "text": ' + json.dumps(plugin("text")) + '\n'

    def test_plugin_path_missing(self):
        missing = str(self.dir / "nowhere" / "libmissing.so")
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"]}', plugins=self.plugins_text(json.dumps(missing))),
                     "plugin 'flaky'", missing, "no such file")

    def test_plugin_is_a_text_file(self):
        (self.dir / "notes.txt").write_text("not a shared object\n")
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"]}', plugins=self.plugins_text('"notes.txt"')),
                     "plugin 'flaky'", "notes.txt", "not a loadable shared object")

    def test_plugin_is_a_text_file_named_so(self):
        (self.dir / "libfake.so").write_text("not a shared object\n")
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"]}', plugins=self.plugins_text('"libfake.so"')),
                     "plugin 'flaky'", "libfake.so", "not a loadable shared object")

    def test_plugin_bare_name_is_not_searched(self):
        # A bare name is a path relative to the task file's folder, never looked up
        # on the library path (libm.so.6 is there on every glibc system).
        for bare in ("libflaky.so", "libm.so.6"):
            with self.subTest(bare):
                self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"]}', plugins=self.plugins_text(json.dumps(bare))),
                             "plugin 'flaky'", str(self.dir / bare), "no such file")

    def test_plugin_alias_invalid(self):
        plugins = '    "fl aky": @@' + json.dumps(plugin("flaky")) + ',\n    "text": ' + json.dumps(plugin("text")) + '\n'
        self.refused(self.text(plugins=plugins), "plugin alias 'fl aky'")

    def test_plugin_path_empty(self):
        self.refused(self.text(plugins=self.plugins_text('""')), "plugin 'flaky'", "non-empty string")

    def test_bad_priority(self):
        for value in ('"urgent"', "2", '"HIGH"', "true"):
            with self.subTest(value):
                self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "priority": @@' + value + '}'),
                             "task 'b' field 'priority'")

    def test_bad_timeout(self):
        for value in ("0", "-1", '"5"', "31536001", "null"):
            with self.subTest(value):
                self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "timeout_s": @@' + value + '}'),
                             "task 'b' field 'timeout_s'")

    def test_other_bad_fields(self):
        cases = [
            ("difficulty", "-1"), ("difficulty", "1.5"), ("difficulty", "1000001"), ("difficulty", '"3"'),
            ("group", '""'), ("group", "7"), ("critical", '"yes"'), ("payload", "5"), ("description", "[]"),
            ("args", '"x"'), ("depends_on", '"writer"'), ("reads", "[@@1]"), ("writes", '[@@""]'),
        ]
        for field, value in cases:
            with self.subTest(field=field, value=value):
                value = value if MARK in value else MARK + value
                self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "' + field + '": ' + value + '}')
                             .replace('"args": ["x"], "args": ', '"args": '),
                             f"task 'b' field '{field}'")

    def test_bad_id(self):
        for value in ('""', "5", json.dumps("x" * 257)):
            with self.subTest(value):
                self.refused(self.text('{"id": @@' + value + ', "processor": "flaky.echo", "args": ["x"]}'), "'id'")

    def test_nul_in_id(self):
        # Ids are C strings to the engine: "a\\u0000b" and "a\\u0000c" would both be "a".
        self.refused(self.text('{"id": @@"a\\u0000b", "processor": "flaky.echo", "args": ["x"]}',
                               '{"id": "a\\u0000c", "processor": "flaky.echo", "args": ["y"]}'),
                     "'id'", "NUL")

    def test_nul_in_plugin_path(self):
        self.refused(self.text(plugins=self.plugins_text(json.dumps(plugin("flaky") + "\u0000.txt"))),
                     "plugin 'flaky'", "NUL")

    def test_the_message_names_the_file_as_given(self):
        (self.dir / "sub").mkdir()
        text, where = unmark(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "priority": @@"urgent"}'))
        (self.dir / "sub" / "bad.json").write_text(text)
        for given in ("sub/bad.json", str(self.dir / "sub" / "bad.json")):
            with self.subTest(given):
                r = tg("run", given, cwd=self.dir)
                self.assertEqual(r.returncode, 2)
                self.assertTrue(r.stderr.startswith(f"taskgate: {given}:{where}: task 'b' field 'priority'"), r.stderr)

    def test_conflicting_writes_refused_with_conflict_resolution_fail(self):
        write_task_file(self.dir, [sleep_task("w1", 10, writes=["same.txt"]), sleep_task("w2", 10, writes=["./x/../same.txt"])])
        r = tg("run", "tasks.json", "--conflict-resolution", "fail", cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("'w1'", r.stderr)
        self.assertIn("'w2'", r.stderr)
        self.assertIn(str(self.dir / "same.txt"), r.stderr)


# ---------------------------------------------------------------------------
# Configuration


class ConfigTest(TempDirTest):
    def config_json(self, *args, env=None):
        r = tg("config", *args, "--json", cwd=self.dir, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        return json.loads(lines[0])

    def test_defaults_and_their_sources(self):
        c = self.config_json()
        self.assertEqual(set(c), set(CONFIG_KEYS))
        for key, value in CONFIG_KEYS.items():
            self.assertEqual(c[key], {"value": value, "source": "default", "from": "default"}, key)
        r = tg("config", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual([line.split()[0] for line in lines], list(CONFIG_KEYS))
        for line in lines:
            self.assertEqual(line.split()[-1], "default", line)
        self.assertRegex(r.stdout, r"(?m)^max_parallel_tasks +5 +default$")
        self.assertRegex(r.stdout, r"(?m)^retry_delays +0\.1,0\.5,1,2 +default$")

    def test_each_layer_beats_the_one_below(self):
        text, where = unmark('{\n  "version": 1,\n  "config": {"max_parallel_tasks": @@2, "log_level": "debug"},\n  "tasks": []\n}\n')
        (self.dir / "tasks.json").write_text(text)
        (self.dir / "c.json").write_text('{"max_parallel_tasks": 3}\n')
        mpt = "max_parallel_tasks"

        c = self.config_json("tasks.json")
        self.assertEqual(c[mpt], {"value": 2, "source": "task file", "from": f"tasks.json:{where}"})
        self.assertEqual(c["log_level"]["value"], "DEBUG")
        self.assertEqual(c["log_level"]["source"], "task file")
        self.assertEqual(c["workers"]["source"], "default")

        c = self.config_json("tasks.json", "--config", "c.json")
        self.assertEqual(c[mpt], {"value": 3, "source": "config file", "from": "c.json:1:24"})
        self.assertEqual(c["log_level"]["source"], "task file")

        c = self.config_json("tasks.json", env=clean_env(TASKGATE_CONFIG="c.json"))
        self.assertEqual(c[mpt]["value"], 3)
        self.assertEqual(c[mpt]["source"], "config file")

        env = clean_env(TASKGATE_MAX_PARALLEL_TASKS="4")
        c = self.config_json("tasks.json", "--config", "c.json", env=env)
        self.assertEqual(c[mpt], {"value": 4, "source": "environment", "from": "environment TASKGATE_MAX_PARALLEL_TASKS"})

        c = self.config_json("tasks.json", "--config", "c.json", "--max-parallel-tasks", "6", env=env)
        self.assertEqual(c[mpt], {"value": 6, "source": "flag", "from": "flag --max-parallel-tasks"})
        c = self.config_json("tasks.json", "--config=c.json", "--max-parallel-tasks=7", env=env)
        self.assertEqual(c[mpt]["value"], 7)
        self.assertEqual(c[mpt]["source"], "flag")

        text = tg("config", "tasks.json", "--config", "c.json", cwd=self.dir, env=env).stdout
        self.assertRegex(text, r"(?m)^max_parallel_tasks +4 +environment TASKGATE_MAX_PARALLEL_TASKS$")
        self.assertRegex(text, rf"(?m)^log_level +DEBUG +tasks\.json:\d+:\d+$")

    def test_run_uses_the_effective_configuration(self):
        write_task_file(self.dir, [echo_task("a")], config={"max_parallel_tasks": 2})
        (self.dir / "c.json").write_text('{"max_parallel_tasks": 3}\n')
        cases = [
            ([], None, 2),
            (["--config", "c.json"], None, 3),
            (["--config", "c.json"], "4", 4),
            (["--config", "c.json", "--max-parallel-tasks", "6"], "4", 6),
        ]
        for args, env_value, expected in cases:
            with self.subTest(args=args, env=env_value):
                env = clean_env(TASKGATE_MAX_PARALLEL_TASKS=env_value) if env_value else clean_env()
                r = tg("run", "tasks.json", "--json", "-q", *args, cwd=self.dir, env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                started = events(r.stdout, "run_started")
                self.assertEqual(len(started), 1)
                self.assertEqual(started[0]["max_parallel_tasks"], expected)

    def assert_refused(self, args, env, *needles):
        write_task_file(self.dir, [{"id": "w", "processor": "text.upper", "args": ["in.txt", "out/in.txt"]}],
                        plugins=("text",))
        (self.dir / "in.txt").write_text("x\n")
        for command in (["config", "tasks.json"], ["run", "tasks.json"]):
            with self.subTest(command=command[0]):
                r = tg(*command, *args, cwd=self.dir, env=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, "")
                for needle in needles:
                    self.assertIn(needle, r.stderr)
                self.assertFalse((self.dir / "out").exists(), "a task ran")

    def test_env_out_of_range(self):
        self.assert_refused([], clean_env(TASKGATE_MAX_PARALLEL_TASKS="0"),
                            "TASKGATE_MAX_PARALLEL_TASKS", "'max_parallel_tasks'", "out of range")

    def test_env_not_a_number(self):
        self.assert_refused([], clean_env(TASKGATE_WORKERS="many"), "TASKGATE_WORKERS", "'workers'", "not an integer")

    def test_env_bad_boolean(self):
        self.assert_refused([], clean_env(TASKGATE_ENABLE_MONITORING="maybe"), "TASKGATE_ENABLE_MONITORING", "not a boolean")

    def test_flag_negative_retry_delay(self):
        self.assert_refused(["--retry-delays=-1"], clean_env(), "--retry-delays", "'retry_delays'", "-1")
        self.assert_refused(["--retry-delays", "0.5,-1"], clean_env(), "--retry-delays", "'retry_delays'", "-1")

    def test_flag_without_value(self):
        self.assert_refused(["--max-parallel-tasks"], clean_env(), "--max-parallel-tasks needs a value")

    def test_config_file_unknown_key(self):
        (self.dir / "c.json").write_text('{\n  "max_paralel_tasks": 2\n}\n')
        self.assert_refused(["--config", "c.json"], clean_env(), "c.json:2:24", "'max_paralel_tasks'", "unknown")

    def test_config_file_from_env_unknown_key(self):
        (self.dir / "c.json").write_text('{"bogus": 1}\n')
        self.assert_refused([], clean_env(TASKGATE_CONFIG="c.json"), "c.json:1:", "'bogus'", "unknown")

    def test_config_file_missing(self):
        self.assert_refused(["--config", "nope.json"], clean_env(), "nope.json", "config file")

    def test_config_file_invalid_json(self):
        (self.dir / "c.json").write_text('{"workers": }\n')
        self.assert_refused(["--config", "c.json"], clean_env(), "c.json:1:", "invalid JSON")

    def test_log_level_bogus(self):
        self.assert_refused(["--log-level", "bogus"], clean_env(), "'log_level'", "not one of")
        self.assert_refused([], clean_env(TASKGATE_LOG_LEVEL="bogus"), "TASKGATE_LOG_LEVEL", "'log_level'", "not one of")
        (self.dir / "c.json").write_text('{"log_level": "bogus"}\n')
        self.assert_refused(["--config", "c.json"], clean_env(), "c.json:1:15", "'log_level'", "not one of")

    def test_task_file_config_bad_value(self):
        text, where = unmark('{"version": 1, "config": {"max_parallel_tasks": @@"4"}, "tasks": []}\n')
        (self.dir / "tasks.json").write_text(text)
        r = tg("config", "tasks.json", cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"tasks.json:{where}: config key 'max_parallel_tasks'", r.stderr)


# ---------------------------------------------------------------------------
# Output: --json events, --quiet, the summary, the results file


class OutputTest(TempDirTest):
    def tasks(self):
        return [echo_task("a", "hello"), sleep_task("b", 30, depends_on=["a"]),
                {"id": "c", "processor": "text.upper", "args": ["in.txt", "out/in.txt"], "writes": ["out/in.txt"]}]

    def setUp(self):
        super().setUp()
        (self.dir / "in.txt").write_text("abc\n")

    def test_json_events(self):
        write_task_file(self.dir, self.tasks(), plugins=("flaky", "text"))
        r = tg("run", "tasks.json", "--json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        evs = json_lines(r.stdout)
        names = [e["event"] for e in evs]
        self.assertEqual(names.count("run_started"), 1)
        self.assertEqual(names.count("plugin_loaded"), 2)
        self.assertEqual(names.count("task_ended"), 3)
        self.assertEqual(names[-1], "run_finished")
        self.assertEqual(len(names), 7)
        self.assertEqual(len({e["run_id"] for e in evs}), 1)
        for e in evs:
            self.assertIsInstance(e["time"], (int, float))

        started = events(r.stdout, "run_started")[0]
        self.assertEqual(started["tasks"], 3)
        self.assertEqual(started["file"], "tasks.json")
        self.assertEqual(started["max_parallel_tasks"], 5)

        loaded = {e["alias"]: e for e in events(r.stdout, "plugin_loaded")}
        self.assertEqual(set(loaded), {"flaky", "text"})
        self.assertEqual(loaded["flaky"]["path"], plugin("flaky"))
        self.assertEqual(loaded["flaky"]["processors"], 6)
        self.assertEqual(loaded["text"]["name"], "text")

        ended = {e["task_id"]: e for e in events(r.stdout, "task_ended")}
        self.assertEqual(set(ended), {"a", "b", "c"})
        for e in ended.values():
            self.assertEqual(e["status"], "succeeded")
            self.assertEqual(e["attempts"], 1)
            self.assertIsInstance(e["worker"], int)
            self.assertGreaterEqual(e["worker"], 0)
            self.assertIsInstance(e["duration_ms"], (int, float))
            self.assertIsNone(e["error"])
        self.assertEqual(ended["a"]["output"], "hello")
        self.assertEqual(ended["a"]["processor"], "flaky.echo")
        self.assertGreaterEqual(ended["b"]["duration_ms"], 25)
        self.assertEqual(ended["c"]["output"], "4")

        finished = evs[-1]
        self.assertEqual(finished["tasks"], 3)
        self.assertEqual(finished["succeeded"], 3)
        for key in ("failed", "timed_out", "cancelled", "skipped"):
            self.assertEqual(finished[key], 0)
        self.assertFalse(finished["interrupted"])
        self.assertEqual(finished["exit_code"], 0)
        self.assertIsInstance(finished["wall_s"], (int, float))

    def test_json_run_started_is_the_first_event(self):
        # 'taskgate help run' lists the events in the order run_started,
        # plugin_loaded, task_ended, interrupted, run_finished.
        write_task_file(self.dir, self.tasks(), plugins=("flaky", "text"))
        r = tg("run", "tasks.json", "--json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [e["event"] for e in json_lines(r.stdout)]
        self.assertEqual(names[0], "run_started", names)
        self.assertEqual(names[1:3], ["plugin_loaded", "plugin_loaded"], names)

    def test_json_with_a_failure(self):
        write_task_file(self.dir, [{"id": "bad", "processor": "flaky.fail_first", "args": ["k", 1]},
                                   echo_task("child", depends_on=["bad"])])
        r = tg("run", "tasks.json", "--json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 1)
        ended = {e["task_id"]: e for e in events(r.stdout, "task_ended")}
        self.assertEqual(ended["bad"]["status"], "failed")
        self.assertIn("failing on purpose", ended["bad"]["error"])
        self.assertEqual(ended["child"]["status"], "skipped")
        self.assertEqual(ended["child"]["attempts"], 0)
        finished = events(r.stdout, "run_finished")[0]
        self.assertEqual((finished["failed"], finished["skipped"], finished["exit_code"]), (1, 1, 1))

    def test_quiet_prints_nothing(self):
        write_task_file(self.dir, self.tasks(), plugins=("flaky", "text"))
        for flag in ("--quiet", "-q"):
            with self.subTest(flag):
                shutil.rmtree(self.dir / "out", ignore_errors=True)
                r = tg("run", "tasks.json", flag, cwd=self.dir)
                self.assertEqual(r.returncode, 0)
                self.assertEqual(r.stderr, "")
                self.assertEqual(r.stdout, "")
                self.assertEqual((self.dir / "out" / "in.txt").read_text(), "ABC\n")

    def test_summary_line(self):
        write_task_file(self.dir, self.tasks(), plugins=("flaky", "text"))
        r = tg("run", "tasks.json", cwd=self.dir)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertRegex(r.stderr, r"^taskgate: 3 tasks in \d+\.\d\d s: 3 succeeded, 0 failed, 0 timed out, 0 skipped, 0 cancelled\n$")

    def test_monitoring_off_and_log_levels(self):
        write_task_file(self.dir, self.tasks(), plugins=("flaky", "text"))
        r = tg("run", "tasks.json", "--enable-monitoring", "false", cwd=self.dir)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = tg("run", "tasks.json", cwd=self.dir, env=clean_env(TASKGATE_LOG_LEVEL="error"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = tg("run", "tasks.json", "--log-level", "debug", cwd=self.dir)
        self.assertEqual(r.returncode, 0)
        for tid in ("a", "b", "c"):
            self.assertIn(f"taskgate: {tid} succeeded", r.stderr)
        self.assertIn("3 tasks in", r.stderr)

    def test_results_file(self):
        # File order differs from the order tasks end in.
        (self.dir / "sub").mkdir()
        (self.dir / "sub" / "in.txt").write_text("abc\n")
        write_task_file(self.dir / "sub", [
            sleep_task("slow", 150),
            echo_task("after", "x", depends_on=["fast"], group="g"),
            echo_task("fast", "first"),
            {"id": "up", "processor": "text.upper", "args": ["in.txt", "out/in.txt"], "writes": ["out/in.txt"]},
        ], plugins=("flaky", "text"))
        (self.dir / "results.json").write_text("old contents, not JSON")
        r = tg("run", "sub/tasks.json", "--results", "results.json", "--json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Relative to the current folder, not to the task file's.
        self.assertFalse((self.dir / "sub" / "results.json").exists())
        # The processors ran in the task file's folder.
        self.assertEqual((self.dir / "sub" / "out" / "in.txt").read_text(), "ABC\n")
        results = json.loads((self.dir / "results.json").read_text())
        self.assertEqual(results["version"], 1)
        self.assertEqual(results["run_id"], events(r.stdout, "run_started")[0]["run_id"])
        self.assertEqual(results["exit_code"], 0)
        self.assertIs(results["interrupted"], False)
        self.assertEqual(results["summary"], {"tasks": 4, "succeeded": 4, "failed": 0, "timed_out": 0,
                                              "cancelled": 0, "skipped": 0, "rejected": 0})
        self.assertEqual([t["id"] for t in results["tasks"]], ["slow", "after", "fast", "up"])
        order = [e["task_id"] for e in events(r.stdout, "task_ended")]
        self.assertNotEqual(order, ["slow", "after", "fast", "up"])
        for t in results["tasks"]:
            for key in ("id", "processor", "status", "error", "output", "attempts", "worker", "group", "queue_ms", "duration_ms"):
                self.assertIn(key, t)
            self.assertEqual(t["status"], "succeeded")
            self.assertIsNone(t["error"])
            self.assertEqual(t["attempts"], 1)
            self.assertGreaterEqual(t["worker"], 0)
        by_id = {t["id"]: t for t in results["tasks"]}
        self.assertEqual(by_id["slow"]["processor"], "flaky.sleep_ms")
        self.assertEqual(by_id["slow"]["output"], "slept")
        self.assertGreaterEqual(by_id["slow"]["duration_ms"], 140)
        self.assertEqual(by_id["fast"]["output"], "first")
        self.assertEqual(by_id["after"]["group"], "g")
        self.assertIsNone(by_id["fast"]["group"])
        self.assertEqual(by_id["up"]["output"], "4")
        # Written atomically: no temporary file is left beside it.
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), ["in.txt", "results.json", "sub"])

    def test_results_file_unwritable(self):
        # Exit status 2 means nothing ran: a results path that cannot be
        # written is refused before the tasks run, not after.
        write_task_file(self.dir, [{"id": "c", "processor": "text.upper", "args": ["in.txt", "out/in.txt"]}],
                        plugins=("text",))
        r = tg("run", "tasks.json", "--results", "no/such/folder/results.json", cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(str(self.dir / "no" / "such" / "folder" / "results.json"), r.stderr)
        self.assertFalse((self.dir / "out").exists(), "the tasks ran before the results path was found unwritable")


# ---------------------------------------------------------------------------
# Scheduling seen from outside


class SchedulingTest(TempDirTest):
    def test_priorities_with_one_task_at_a_time(self):
        prios = ["low", "normal", "high", "low", "high", "normal", -1, 1, 0]
        rank = {"high": 0, 1: 0, "normal": 1, 0: 1, "low": 2, -1: 2}
        tasks = [sleep_task(f"t{k}", 15, priority=p) for k, p in enumerate(prios)]
        write_task_file(self.dir, tasks, config={"max_parallel_tasks": 1})
        r = tg("run", "tasks.json", "--json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        order = [e["task_id"] for e in events(r.stdout, "task_ended")]
        self.assertEqual(sorted(order), sorted(t["id"] for t in tasks))
        ranks = [rank[prios[int(tid[1:])]] for tid in order]
        self.assertEqual(ranks, sorted(ranks), f"end order {order}")
        # Within one priority, file order.
        for level in range(3):
            same = [tid for tid in order if rank[prios[int(tid[1:])]] == level]
            self.assertEqual(same, sorted(same, key=lambda t: int(t[1:])))

    def test_tasks_writing_one_file_never_overlap(self):
        write_task_file(self.dir, [
            sleep_task("w1", 300, writes=["same.txt"]),
            sleep_task("w2", 300, writes=["./sub/../same.txt"]),
            sleep_task("free", 300, writes=["other.txt"]),
        ], config={"max_parallel_tasks": 4})
        t0 = time.monotonic()
        r = tg("run", "tasks.json", "--results", "results.json", "--json", "-q", cwd=self.dir)
        wall = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        self.assertFalse(overlap(res["w1"], res["w2"]), res)
        self.assertTrue(overlap(res["w1"], res["free"]) or overlap(res["w2"], res["free"]), res)
        self.assertGreaterEqual(wall, 0.59)
        self.assertGreaterEqual(events(r.stdout, "run_finished")[0]["wall_s"], 0.59)

    def test_a_reader_never_overlaps_a_writer_of_its_file(self):
        write_task_file(self.dir, [
            sleep_task("writer", 250, writes=["data.txt"]),
            sleep_task("reader", 250, reads=["data.txt"]),
        ], config={"max_parallel_tasks": 4})
        r = tg("run", "tasks.json", "--results", "results.json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        self.assertFalse(overlap(res["writer"], res["reader"]), res)

    def test_max_parallel_tasks_limits_concurrency(self):
        write_task_file(self.dir, [sleep_task(f"s{k}", 200) for k in range(4)], config={"max_parallel_tasks": 2})
        r = tg("run", "tasks.json", "--results", "results.json", "-q", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads((self.dir / "results.json").read_text())
        self.assertGreaterEqual(res["wall_s"], 0.39)
        # At the start of each task (1 ms later, for the clock), at most 2 run.
        for t in res["tasks"]:
            at = t["queue_ms"] + 1.0
            running = sum(1 for u in res["tasks"] if u["queue_ms"] <= at < u["queue_ms"] + u["duration_ms"])
            self.assertLessEqual(running, 2, res["tasks"])

    def test_timeout(self):
        write_task_file(self.dir, [sleep_task("slow", 5000, timeout_s=0.2), echo_task("after", depends_on=["slow"])])
        t0 = time.monotonic()
        r = tg("run", "tasks.json", "--results", "results.json", cwd=self.dir, timeout=20)
        wall = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertLess(wall, 3.0)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        self.assertEqual(res["slow"]["status"], "timed_out")
        self.assertIn("timed out", res["slow"]["error"])
        self.assertLess(res["slow"]["duration_ms"], 2000)
        self.assertGreaterEqual(res["slow"]["duration_ms"], 190)
        self.assertEqual(res["after"]["status"], "skipped")
        self.assertIn("1 timed out", r.stderr)


# ---------------------------------------------------------------------------
# Interrupts


class InterruptTest(TempDirTest):
    def test_one_sigint_drains(self):
        write_task_file(self.dir, [sleep_task(f"s{k:02d}", 300) for k in range(20)], config={"max_parallel_tasks": 2})
        run = Background(self, ["run", "tasks.json", "--results", "results.json", "--json"], self.dir)
        run.wait_started()
        t0 = time.monotonic()
        time.sleep(0.5)
        run.signal(signal.SIGINT)
        rc = run.wait(15)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 130, run.stderr)
        # All twenty would take 3 s; the running ones finish within 0.3 s of the signal.
        self.assertLess(elapsed, 2.0)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertIs(results["interrupted"], True)
        self.assertEqual(results["exit_code"], 130)
        self.assertEqual(len(results["tasks"]), 20)
        statuses = [t["status"] for t in results["tasks"]]
        self.assertTrue(set(statuses) <= {"succeeded", "cancelled"}, statuses)
        succeeded = [t for t in results["tasks"] if t["status"] == "succeeded"]
        cancelled = [t for t in results["tasks"] if t["status"] == "cancelled"]
        self.assertTrue(2 <= len(succeeded) <= 8, statuses)
        self.assertGreaterEqual(len(cancelled), 12)
        for t in succeeded:  # the running ones were let finish
            self.assertGreaterEqual(t["duration_ms"], 290)
        for t in cancelled:
            self.assertEqual(t["attempts"], 0)
            self.assertIn("interrupted", t["error"])
        self.assertEqual(results["summary"]["succeeded"], len(succeeded))
        self.assertEqual(results["summary"]["cancelled"], len(cancelled))
        interrupted = events(run.stdout, "interrupted")
        self.assertEqual([e["mode"] for e in interrupted], ["drain"])
        self.assertEqual(interrupted[0]["cancelled"], len(cancelled))
        finished = events(run.stdout, "run_finished")[0]
        self.assertIs(finished["interrupted"], True)
        self.assertEqual(finished["exit_code"], 130)
        self.assertIn("interrupted", run.stderr)

    def test_two_sigints_abort(self):
        write_task_file(self.dir, [sleep_task(f"s{k}", 20000) for k in range(6)], config={"max_parallel_tasks": 2})
        run = Background(self, ["run", "tasks.json", "--results", "results.json", "--json"], self.dir)
        run.wait_started()
        time.sleep(0.3)
        run.signal(signal.SIGINT)
        time.sleep(0.3)
        t0 = time.monotonic()
        run.signal(signal.SIGINT)
        rc = run.wait(15)
        self.assertEqual(rc, 130, run.stderr)
        self.assertLess(time.monotonic() - t0, 3.0)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertIs(results["interrupted"], True)
        self.assertEqual([t["status"] for t in results["tasks"]], ["cancelled"] * 6)
        started = [t for t in results["tasks"] if t["attempts"] > 0]
        self.assertEqual(len(started), 2, results["tasks"])
        for t in started:  # cut short, far from their 20 s
            self.assertLess(t["duration_ms"], 5000)
        self.assertEqual([e["mode"] for e in events(run.stdout, "interrupted")], ["drain", "abort"])
        self.assertIn("aborted", run.stderr)

    def test_sigterm_aborts(self):
        write_task_file(self.dir, [sleep_task(f"s{k}", 20000) for k in range(4)], config={"max_parallel_tasks": 2})
        run = Background(self, ["run", "tasks.json", "--results", "results.json", "--json", "-q"], self.dir)
        run.wait_started()
        time.sleep(0.3)
        t0 = time.monotonic()
        run.signal(signal.SIGTERM)
        rc = run.wait(15)
        self.assertEqual(rc, 130, run.stderr)
        self.assertLess(time.monotonic() - t0, 3.0)
        results = json.loads((self.dir / "results.json").read_text())
        self.assertIs(results["interrupted"], True)
        self.assertEqual([t["status"] for t in results["tasks"]], ["cancelled"] * 4)


# ---------------------------------------------------------------------------
# Progress on a terminal


class ProgressTest(TempDirTest):
    def setUp(self):
        super().setUp()
        write_task_file(self.dir, [sleep_task(f"s{k}", 150) for k in range(6)], config={"max_parallel_tasks": 3})

    def test_progress_line_on_a_terminal(self):
        rc, data = run_in_pty(["run", "tasks.json"], self.dir, clean_env())
        self.assertEqual(rc, 0, data)
        self.assertIn(b"\r", data)
        self.assertIn(b"[###", data)
        self.assertIn(b"6/6", data)
        self.assertRegex(data, rb"\x1b\[3\dm")
        self.assertIn(b"6 tasks in", data)

    def test_no_color(self):
        rc, data = run_in_pty(["run", "tasks.json"], self.dir, clean_env(NO_COLOR="1"))
        self.assertEqual(rc, 0, data)
        self.assertIn(b"[###", data)
        self.assertNotIn(b"\x1b[3", data)

    def test_quiet_on_a_terminal(self):
        rc, data = run_in_pty(["run", "tasks.json", "-q", "--results", "results.json"], self.dir, clean_env())
        self.assertEqual(rc, 0, data)
        self.assertEqual(data, b"")
        self.assertEqual(json.loads((self.dir / "results.json").read_text())["summary"]["succeeded"], 6)

    def test_no_progress_into_a_pipe(self):
        r = tg("run", "tasks.json", cwd=self.dir)
        self.assertEqual(r.returncode, 0)
        self.assertNotIn("\r", r.stderr)
        self.assertNotIn("\x1b", r.stderr)
        self.assertNotIn("[#", r.stderr)
        self.assertIn("6 tasks in", r.stderr)


# ---------------------------------------------------------------------------
# taskgate plugins, help, --version


class PluginsCommandTest(TempDirTest):
    def test_lists_processors_with_signatures(self):
        r = tg("plugins", plugin("checksum"), plugin("text"), plugin("flaky"), cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        for line in ("checksum.sha256(string)", "checksum.sha256_to(string, string)", "checksum.crc32(string)",
                     "text.upper(string, string)", "text.wrap(string, string, i32, bool)", "text.stats(string, double)",
                     "flaky.fail_first(string, i32)", "flaky.sleep_ms(i64)", "flaky.echo(string)"):
            self.assertRegex(r.stdout, rf"(?m)^  {re.escape(line)}(  |$)")
        self.assertRegex(r.stdout, rf"(?m)^flaky 1\.0\.0 \(plugin ABI \d+\.\d+\) {re.escape(plugin('flaky'))}$")

    def test_json(self):
        r = tg("plugins", plugin("text"), "--json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        [p] = json_lines(r.stdout)
        self.assertEqual(p["name"], "text")
        procs = {q["name"]: q["args"] for q in p["processors"]}
        self.assertEqual(procs["text.wrap"], ["string", "string", "i32", "bool"])

    def test_missing_file(self):
        missing = str(self.dir / "libnope.so")
        r = tg("plugins", missing, cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn(missing, r.stderr)
        self.assertIn("no such file", r.stderr)

    def test_missing_among_good_ones(self):
        r = tg("plugins", plugin("flaky"), str(self.dir / "libnope.so"), cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("flaky.echo(string)", r.stdout)
        self.assertIn("libnope.so", r.stderr)

    def test_not_a_shared_object(self):
        (self.dir / "libfake.so").write_text("text\n")
        r = tg("plugins", self.dir / "libfake.so", cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("libfake.so", r.stderr)

    def test_usage(self):
        self.assertEqual(tg("plugins", cwd=self.dir).returncode, 2)
        self.assertEqual(tg("plugins", "--bogus", cwd=self.dir).returncode, 2)


class HelpTest(unittest.TestCase):
    def test_help(self):
        for args, first in ((["help"], "usage: taskgate <command>"), (["--help"], "usage: taskgate <command>"),
                            (["-h"], "usage: taskgate <command>"), (["help", "run"], "usage: taskgate run FILE"),
                            (["run", "--help"], "usage: taskgate run FILE"), (["help", "config"], "usage: taskgate config"),
                            (["help", "plugins"], "usage: taskgate plugins")):
            with self.subTest(args):
                r = tg(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(first), r.stdout[:200])
                self.assertEqual(r.stderr, "")

    def test_help_run_documents_the_options(self):
        r = tg("help", "run")
        for word in ("--json", "--quiet", "--results", "--config", "--max-parallel-tasks", "TASKGATE_MAX_PARALLEL_TASKS",
                     "130", "schema/taskfile.schema.json"):
            self.assertIn(word, r.stdout)

    def test_version(self):
        r = tg("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^taskgate \d+\.\d+\.\d+\n$")


# ---------------------------------------------------------------------------
# Policies in task files


class PolicyFileTest(BadTaskFileTest):
    """What the schema cannot say about policies, refused with a position."""

    def with_policies(self, policies, *task_lines):
        text = self.text(*task_lines)
        return text.replace('  "tasks": [', '  "policies": ' + policies + ',\n  "tasks": [', 1)

    def test_a_task_naming_an_unknown_policy(self):
        self.refused(self.with_policies('{"api": {}}', '{"id": "b", "processor": "flaky.echo", "args": ["x"], "policy": @@"apj"}'),
                     "task 'b' field 'policy'", "no policy is named 'apj'", "known: api")

    def test_a_policy_without_policies(self):
        self.refused(self.text('{"id": "b", "processor": "flaky.echo", "args": ["x"], "policy": @@"api"}'),
                     "the file has none")

    def test_a_fallback_naming_an_unknown_processor(self):
        self.refused(self.with_policies('{"api": {"breaker": {}, "fallback": @@"flaky.nope"}}'),
                     "policy 'api' field 'fallback'", "has no processor 'nope'")

    def test_a_fallback_without_a_breaker(self):
        self.refused(self.with_policies('{"api": {"fallback": @@"flaky.echo"}}'), "needs a 'breaker'")

    def test_a_fallback_of_another_signature(self):
        self.refused(self.with_policies('{"api": {"breaker": {}, "fallback": "flaky.echo"}}',
                                        '{"id": "b", "processor": "flaky.fail_first", "args": ["k", 1], "policy": @@"api"}'),
                     "its policy's fallback flaky.echo takes (string)", "flaky.fail_first takes (string, i32)")

    def test_credentials_missing_from_the_environment(self):
        self.refused(self.with_policies('{"api": {"credentials": @@{"env": "TG_CLI_TEST_NOT_SET_KEY"}}}'),
                     "policy 'api' field 'credentials'", "neither TG_CLI_TEST_NOT_SET_KEY_1 nor TG_CLI_TEST_NOT_SET_KEY is set")

    def test_half_open_calls_below_the_success_threshold(self):
        self.refused(self.with_policies('{"api": {"breaker": @@{"success_threshold": 3, "half_open_calls": 2}}}'),
                     "policy 'api' field 'breaker'", "could never close")

    def test_a_rate_limit_whose_cost_exceeds_the_bucket(self):
        self.refused(self.with_policies('{"api": {"limit": @@{"requests_per_minute": 10, "cost": 20}}}'),
                     "policy 'api' field 'limit'", "no call could ever start")

    def test_window_size_without_a_window(self):
        self.refused(self.with_policies('{"api": {"breaker": {"window_size": @@5}}}'), "needs a window")


# ---------------------------------------------------------------------------
# Resilience: retries, breakers, credentials through a task file


class ResilienceTest(TempDirTest):
    """The flaky plugin's http and api processors under policies, on one worker
    so that tasks run in file order; real time, short delays."""

    SECRETS = {"TG_CLI_KEY_1": "limited-SECRET-one", "TG_CLI_KEY_2": "good-SECRET-two",
               "TG_CLI_BASE_URL_2": "https://two.example", "TG_CLI_MODEL_2": "model-two",
               "TG_CLI_BAD_KEY": "limited-SECRET-three"}

    def run_file(self):
        def http(tid, counter, n, status, after=-1, **fields):
            return dict({"id": tid, "processor": "flaky.http", "args": [counter, n, status, after]}, **fields)
        path = write_task_file(self.dir, [
            http("a", "svc", 3, 503, policy="svc", key="svc.example"),
            http("b", "svc", 3, 503, policy="svc", key="svc.example"),
            http("c", "svc", 3, 503, policy="svc", key="svc.example"),
            sleep_task("wait", 400),
            http("e", "svc", 2, 503, policy="svc", key="svc.example"),  # its 3rd call: ok
            http("r", "r", 2, 503, policy="retrying"),
            http("ra", "ra", 1, 429, 120, policy="retrying"),
            http("perm", "perm", 1, 400, policy="retrying"),
            {"id": "llm", "processor": "flaky.api", "args": ["limited-"], "policy": "llm"},
            {"id": "dead", "processor": "flaky.api", "args": ["limited-"], "policy": "dead"},
            http("dflt", "dflt", 1, 503),
        ], config={"max_parallel_tasks": 1, "retry_delays": [0.03]}, policies={
            "svc": {"breaker": {"failure_threshold": 2, "success_threshold": 1, "open_s": 0.3}},
            "retrying": {"retry": {"max_attempts": 4, "delays_s": [0.05, 0.1], "jitter": "none"}},
            "llm": {"retry": {"max_attempts": 3, "delays_s": [0]}, "credentials": {"env": "TG_CLI_KEY", "cooldown_s": 5}},
            "dead": {"retry": {"max_attempts": 2, "delays_s": [0]},
                     "credentials": {"env": "TG_CLI_BAD_KEY", "cooldown_s": 0.05}},
            "default": {"retry": {"jitter": "none"}},
        })
        r = tg("run", path, "--json", "--results", self.dir / "results.json", cwd=self.dir,
               env=clean_env(**self.SECRETS))
        results = json.loads((self.dir / "results.json").read_text())
        return r, {t["id"]: t for t in results["tasks"]}, (self.dir / "results.json").read_text()

    def test_retries_breaker_and_credentials_end_to_end(self):
        r, tasks, results_text = self.run_file()
        self.assertEqual(r.returncode, 1, r.stderr)  # a, b and perm failed, c was rejected
        # Retries waited the configured delays, and a retry-after replaced one.
        self.assertEqual((tasks["r"]["status"], tasks["r"]["attempts"], tasks["r"]["retry_delays_ms"]),
                         ("succeeded", 3, [50, 100]))
        self.assertEqual(tasks["r"]["status_code"], 503)
        self.assertEqual((tasks["ra"]["attempts"], tasks["ra"]["retry_delays_ms"], tasks["ra"]["status_code"]),
                         (2, [120], 429))
        self.assertEqual((tasks["perm"]["status"], tasks["perm"]["attempts"], tasks["perm"]["flags"]),
                         ("failed", 1, ["permanent"]))
        # The default policy, with the config's retry_delays.
        self.assertEqual((tasks["dflt"]["status"], tasks["dflt"]["policy"], tasks["dflt"]["retry_delays_ms"]),
                         ("succeeded", "default", [30]))
        self.assertEqual(tasks["wait"]["policy"], "default")  # tasks naming none get it
        # The breaker opened after two failures, refused c, and closed on e's probe.
        self.assertEqual([tasks[k]["status"] for k in "abce"], ["failed", "failed", "rejected", "succeeded"])
        self.assertEqual((tasks["c"]["attempts"], tasks["c"]["flags"]), (0, ["breaker_open"]))
        self.assertIn("circuit breaker 'svc.example' is open", tasks["c"]["error"])
        changes = [(e["policy"], e["key"], e["from"], e["to"]) for e in events(r.stdout, "breaker_changed")]
        self.assertEqual(changes, [("svc", "svc.example", "closed", "open"), ("svc", "svc.example", "open", "half_open"),
                                   ("svc", "svc.example", "half_open", "closed")])
        generations = [e["generation"] for e in events(r.stdout, "breaker_changed")]
        self.assertEqual(generations, sorted(set(generations)))
        finished = events(r.stdout, "run_finished")[0]
        self.assertEqual(finished["rejected"], 1)
        svc = [b for b in finished["breakers"] if b["key"] == "svc.example"][0]
        self.assertEqual((svc["state"], svc["times_opened"], svc["rejected"]), ("closed", 1, 1))
        ended = {e["task_id"]: e for e in events(r.stdout, "task_ended")}
        self.assertEqual(ended["r"]["retry_delays_ms"], [50, 100])
        self.assertEqual(ended["c"]["status"], "rejected")
        # Credentials rotated on the 429 and the second one answered.
        self.assertEqual((tasks["llm"]["status"], tasks["llm"]["output"], tasks["llm"]["flags"]),
                         ("succeeded", "answered by model-two at https://two.example", ["rotated"]))
        # With one credential, rate-limited twice: the error quotes it redacted.
        self.assertEqual(tasks["dead"]["status"], "failed")
        self.assertIn("[credential 1]", tasks["dead"]["error"])
        self.assertIn("rejected", r.stderr)
        # No secret anywhere: events, results, the summary.
        for where, text in (("stdout", r.stdout), ("stderr", r.stderr), ("results", results_text)):
            self.assertNotIn("SECRET", text, where)

    def test_policies_show_in_the_schema_example_of_help(self):
        r = tg("help", "run")
        for word in ('"policies"', '"retry"', '"breaker"', '"credentials"', "breaker_changed", '"default"'):
            self.assertIn(word, r.stdout)


# ---------------------------------------------------------------------------
# Gates and cross-process locks (seed 003, seed 000)


def excl_task(tid, sentinel, ms=2, **fields):
    return dict({"id": tid, "processor": "flaky.exclusive", "args": [str(sentinel), ms]}, **fields)


class ResultsTest(TempDirTest):
    """Groups with min_required, critical groups, and the aggregate section (seed 002 sections 5 and 6)."""

    def fail_task(self, tid, **fields):
        return dict({"id": tid, "processor": "flaky.fail_first", "args": [tid, 1]}, **fields)

    def run_results(self, tasks, **top):
        write_task_file(self.dir, tasks, **top)
        r = tg("run", "tasks.json", "--results", "results.json", "--json", cwd=self.dir)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return r, json.loads((self.dir / "results.json").read_text())

    def test_group_at_exactly_min_required_succeeds_and_one_below_fails(self):
        tasks = [echo_task("a1", group="a"), echo_task("a2", group="a"), self.fail_task("a3", group="a")]
        r, res = self.run_results(tasks, groups={"a": {"min_required": 2}})
        self.assertEqual(r.returncode, 0, r.stderr)  # the failure is tolerated by its group
        g = res["groups"]["a"]
        self.assertEqual((g["state"], g["success"], g["partial_results"], g["failed_count"], g["min_required"]),
                         ("succeeded", True, True, 1, 2))
        self.assertEqual([f["task"] for f in g["failures"]], ["a3"])
        finished = [e for e in json_lines(r.stdout) if e["event"] == "run_finished"][0]
        self.assertEqual(finished["groups"]["a"]["state"], "succeeded")

        r, res = self.run_results(tasks, groups={"a": {"min_required": "100%"}})
        self.assertEqual(r.returncode, 1)
        g = res["groups"]["a"]
        self.assertEqual((g["state"], g["success"]), ("failed", False))
        self.assertEqual(g["reason"], "insufficient results (2/3): 2 of 3 tasks succeeded, 3 required")

    def test_a_failure_outside_tolerant_groups_still_fails_the_run(self):
        tasks = [echo_task("a1", group="a"), self.fail_task("a2", group="a"), self.fail_task("loose")]
        r, res = self.run_results(tasks, groups={"a": {"min_required": 1}})
        self.assertEqual(r.returncode, 1)
        self.assertEqual(res["groups"]["a"]["state"], "succeeded")

    def test_critical_cancel_all_cancels_the_rest_of_the_run(self):
        tasks = [self.fail_task("core", group="core", priority="high")] + \
                [sleep_task(f"side{i}", 5000) for i in range(3)]
        write_task_file(self.dir, tasks, config={"workers": 2}, groups={"core": {"critical": True, "cancel_all": True}})
        r = tg("run", "tasks.json", "--results", "results.json", cwd=self.dir, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        for i in range(3):
            self.assertEqual(res[f"side{i}"]["status"], "cancelled", res[f"side{i}"])
            self.assertIn("critical group 'core'", res[f"side{i}"]["error"])

    def test_aggregations_land_in_the_results_file(self):
        tasks = [echo_task("v1", '["numpy", "requests"]', group="deps"),
                 echo_task("v2", '["requests", "flask"]', group="deps"),
                 echo_task("v3", '["requests", "numpy"]', group="deps"),
                 echo_task("junk", "not json", group="deps"),
                 self.fail_task("dead", group="deps"),
                 echo_task("yes1", '"approve"'), echo_task("no1", '"reject"'), echo_task("yes2", '"approve"')]
        r, res = self.run_results(tasks, groups={"deps": {"min_required": 3}}, aggregate={
            "all": {"kind": "union", "from": "deps"},
            "common": {"kind": "frequency", "from": "deps", "threshold": 0.5},
            "everywhere": {"kind": "intersection", "from": "deps"},
            "vote": {"kind": "majority", "from": ["yes1", "no1", "yes2"]},
            "in_order": {"kind": "collect", "from": ["yes2", "dead", "yes1"]},
            "too_few": {"kind": "union", "from": "deps", "min_required": 4}})
        self.assertEqual(r.returncode, 1)  # too_few fell short
        a = res["aggregates"]
        self.assertEqual(a["all"]["result"], ["numpy", "requests", "flask"])
        self.assertEqual((a["all"]["partial_results"], a["all"]["failed_count"], a["all"]["used"]), (True, 2, 3))
        self.assertEqual({f["task"]: f["status"] for f in a["all"]["failures"]}, {"junk": "bad_output", "dead": "failed"})
        self.assertEqual([x["pattern"] for x in a["common"]["result"]], ["numpy", "requests"])
        self.assertEqual(a["everywhere"]["result"], ["requests"])
        self.assertEqual((a["vote"]["result"], a["vote"]["votes"], a["vote"]["tie"]), ("approve", 2, False))
        self.assertEqual(a["in_order"]["result"], ["approve", None, "approve"])
        self.assertEqual((a["too_few"]["success"], a["too_few"]["reason"]), (False, "insufficient results (3/4)"))

    def test_bad_groups_and_aggregates_name_the_place(self):
        cases = [
            ({"groups": {"nobody": {"min_required": 1}}}, "group 'nobody': no task names this group"),
            ({"groups": {"a": {"min_required": "lots"}}}, "field 'min_required' must be a count"),
            ({"groups": {"a": {"cancel_all": True}}}, "cancel_all needs \"critical\": true"),
            ({"aggregate": {"x": {"from": "ghost"}}}, "no task is in group 'ghost'"),
            ({"aggregate": {"x": {"from": ["a1", "zz"]}}}, "no task has the id 'zz'"),
            ({"aggregate": {"x": {"kind": "mean", "from": "a"}}}, "field 'kind' must be one of collect, union"),
        ]
        for top, message in cases:
            with self.subTest(message):
                write_task_file(self.dir, [echo_task("a1", group="a")], **top)
                r = tg("run", "tasks.json", cwd=self.dir)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertRegex(r.stderr, r"tasks\.json:\d+:\d+: ")


class CacheTest(TempDirTest):
    """The result cache through the task file: hits across runs, TTL, a touched read file, a changed definition."""

    def tasks(self, ttl=3600, key=None, args_extra=()):
        cache = {"ttl_s": ttl}
        if key is not None:
            cache["key"] = key
        return [{"id": "up", "processor": "text.upper", "args": ["in.txt", "out.txt"], "reads": ["in.txt"],
                 "writes": ["out.txt"], "cache": dict(cache)},
                {"id": "stats", "processor": "text.stats", "args": ["in.txt", 0.5], "reads": ["in.txt"],
                 "cache": dict(cache)},
                {"id": "plain", "processor": "text.stats", "args": ["in.txt", 0.5], "reads": ["in.txt"]}]

    def run_cached(self, tasks, *extra):
        write_task_file(self.dir, tasks, plugins=("text",))
        r = tg("run", "tasks.json", "--results", "results.json", "--json", *extra, cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = {t["id"]: t for t in json.loads((self.dir / "results.json").read_text())["tasks"]}
        ended = {e["task_id"]: e for e in json_lines(r.stdout) if e["event"] == "task_ended"}
        return res, ended

    def test_hit_then_invalidated_by_a_touched_read_file_and_a_changed_definition(self):
        (self.dir / "in.txt").write_text("hello world\n")
        res, ended = self.run_cached(self.tasks())
        self.assertEqual(res["up"]["cache"]["result"], "miss")
        self.assertTrue(res["up"]["cache"]["reason"].startswith("absent"), res["up"]["cache"])
        self.assertEqual(ended["up"]["cache"]["result"], "miss")
        self.assertNotIn("cache", res["plain"])  # no cache declared: no cache field
        self.assertEqual((self.dir / "out.txt").read_text(), "HELLO WORLD\n")
        first_stats = res["stats"]["output"]
        self.assertTrue((self.dir / ".taskgate" / "cache").is_dir())

        # A second run (a new process): hits, and the processor does not run.
        (self.dir / "out.txt").unlink()
        res, ended = self.run_cached(self.tasks())
        self.assertEqual(res["up"]["cache"], {"result": "hit"})
        self.assertEqual(res["up"]["attempts"], 0)
        self.assertEqual(ended["up"]["cache"], {"result": "hit"})
        self.assertEqual(res["stats"]["output"], first_stats)
        self.assertFalse((self.dir / "out.txt").exists(), "a hit must not run the processor")

        # Touch the read file: same size and text, later mtime.
        st = os.stat(self.dir / "in.txt")
        os.utime(self.dir / "in.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        res, _ = self.run_cached(self.tasks())
        self.assertEqual(res["up"]["cache"]["result"], "miss")
        self.assertIn("read_changed", res["up"]["cache"]["reason"])
        self.assertIn("in.txt", res["up"]["cache"]["reason"])
        self.assertEqual((self.dir / "out.txt").read_text(), "HELLO WORLD\n")

        # A changed read file's content changes the output too.
        (self.dir / "in.txt").write_text("hello world, again\n")
        res, _ = self.run_cached(self.tasks())
        self.assertEqual(res["stats"]["cache"]["result"], "miss")
        self.assertNotEqual(res["stats"]["output"], first_stats)

        # The definition: args, then the cache key.
        tasks = self.tasks()
        tasks[1]["args"] = ["in.txt", 0.25]
        res, _ = self.run_cached(tasks)
        self.assertTrue(res["stats"]["cache"]["reason"].startswith("definition_changed"), res["stats"]["cache"])
        self.assertEqual(res["up"]["cache"], {"result": "hit"})
        res, _ = self.run_cached(self.tasks(key="v2"))
        self.assertTrue(res["up"]["cache"]["reason"].startswith("definition_changed"), res["up"]["cache"])

    def test_ttl_expires(self):
        (self.dir / "in.txt").write_text("x\n")
        self.run_cached(self.tasks(ttl=0.05))
        time.sleep(0.2)  # four TTLs later: must have expired (no upper bound is asserted)
        res, _ = self.run_cached(self.tasks(ttl=0.05))
        self.assertTrue(res["up"]["cache"]["reason"].startswith("expired"), res["up"]["cache"])
        res, _ = self.run_cached(self.tasks(ttl=3600))  # the TTL that counts is the task's current one
        self.assertEqual(res["up"]["cache"], {"result": "hit"})

    def test_cache_dir_config_and_off(self):
        (self.dir / "in.txt").write_text("x\n")
        self.run_cached(self.tasks(), "--cache-dir", "mycache")
        self.assertTrue(any((self.dir / "mycache").glob("*.entry")))
        write_task_file(self.dir, self.tasks(), plugins=("text",))
        r = tg("run", "tasks.json", "--cache-dir", "off", cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("task 'up' declares a cache, but cache_dir is 'off'", r.stderr)

    def test_bad_cache_fields(self):
        (self.dir / "in.txt").write_text("x\n")
        for cache, message in [(3600, "must be an object"), ({}, "needs ttl_s"), ({"ttl_s": 0}, "cache.ttl_s"),
                               ({"ttl_s": -1}, "cache.ttl_s"), ({"ttl_s": "1h"}, "cache.ttl_s"),
                               ({"ttl_s": 1, "key": 5}, "cache.key"), ({"ttl_s": 1, "tll": 5}, "cache.tll")]:
            with self.subTest(cache=cache):
                tasks = self.tasks()
                tasks[0]["cache"] = cache
                write_task_file(self.dir, tasks, plugins=("text",))
                r = tg("run", "tasks.json", cwd=self.dir)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)
                self.assertIn("tasks.json:", r.stderr)  # names the file (and line:column)


class TimelineTest(TempDirTest):
    """run --timeline: the page is written, and a real headless Chromium draws one bar per task."""
    CHECK = Path(__file__).resolve().parent.parent / "browser" / "check_timeline.py"

    def test_timeline_renders_one_bar_per_task_in_chromium(self):
        tasks = [sleep_task(f"s{i}", 20 + i % 3 * 10) for i in range(24)] + \
                [dict(echo_task(f"e{i}"), depends_on=[f"s{i}"]) for i in range(4)] + \
                [dict(ResultsTest.fail_task(None, f"f{i}"), priority="high") for i in range(3)] + \
                [dict(echo_task("never"), depends_on=["f0"])]  # skipped: a bar that never ran
        write_task_file(self.dir, tasks, config={"workers": 4, "max_parallel_tasks": 4})
        r = tg("run", "tasks.json", "--timeline", "out/run.html", cwd=self.dir)
        self.assertEqual(r.returncode, 2, r.stderr)  # out/ does not exist: refused before anything runs
        self.assertIn("--timeline", r.stderr)
        (self.dir / "out").mkdir()
        r = tg("run", "tasks.json", "--timeline=out/run.html", cwd=self.dir)
        self.assertEqual(r.returncode, 1, r.stderr)  # f0..f2 failed
        page = (self.dir / "out" / "run.html").read_text()
        self.assertIn("<svg", page)
        self.assertFalse(list((self.dir / "out").glob("*.tmp.*")), "no temp file left behind")
        if shutil.which("chromium") is None and not os.environ.get("CHROMIUM"):
            if os.environ.get("CI"):
                self.fail("chromium is not installed (CI installs it: apt-get install -y chromium)")
            self.skipTest("chromium is not installed")
        c = subprocess.run([sys.executable, str(self.CHECK), str(self.dir / "out" / "run.html"), str(len(tasks)),
                            "--screenshot", str(self.dir / "shot.png")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)

    def test_timeline_needs_a_path(self):
        write_task_file(self.dir, [echo_task("a")])
        r = tg("run", "tasks.json", "--timeline", cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--timeline needs a value", r.stderr)


class GatesCommandTest(TempDirTest):
    def tasks(self):
        return [excl_task("a", "s1", writes=["out.txt"], difficulty=10),
                excl_task("b", "s2", writes=["./x/../out.txt"], difficulty=10),
                excl_task("c", "s3", reads=["out.txt"], depends_on=["a"], difficulty=5, shared=["db"]),
                excl_task("d", "s4", reads=["in.txt"], difficulty=5, shared=["db"])]

    def test_validate_report_field_by_field(self):
        f = write_task_file(self.dir, self.tasks())
        r = tg("validate", f, "--json", "--no-system")
        self.assertEqual(r.returncode, 1, r.stderr)
        rep = json.loads(r.stdout)
        out = str(self.dir / "out.txt")
        self.assertEqual(list(rep)[:8], ["can_parallel", "task_count", "file_conflicts", "circular_dependencies",
                                         "lock_issues", "resource_capacity", "context_budget", "recommendations"])
        self.assertEqual(rep["task_count"], 4)
        self.assertEqual([(c["task1"], c["task2"], c["file"], c["type"]) for c in rep["file_conflicts"]],
                         [("a", "b", out, "blocking"), ("a", "c", out, "warning"), ("b", "c", out, "warning")])
        self.assertEqual(rep["ordered_pairs"], [{"task": "c", "after": "a"}])
        self.assertEqual(rep["shared_state"], [{"resource": "db", "tasks": ["c", "d"]}])
        self.assertEqual(rep["context_budget"], {"total_complexity": 30, "max_complexity": 30, "within_budget": True})
        self.assertEqual(rep["resource_capacity"]["available"], 5)
        # A subset without conflicts can run in parallel: exit 0.
        r = tg("validate", f, "a", "d", "--no-system", "--json")
        self.assertEqual((r.returncode, json.loads(r.stdout)["can_parallel"]), (0, True), r.stdout)
        # One over the budget.
        r = tg("validate", f, "a", "d", "--no-system", "--json", "--max-context-complexity", "14")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["context_budget"]["within_budget"], False)
        # Human output.
        r = tg("validate", f, "--no-system")
        self.assertIn("can run in parallel: no", r.stdout)
        self.assertIn("blocking: a and b on " + out, r.stdout)

    def test_cycles_are_reported_not_refused(self):
        f = write_task_file(self.dir, [echo_task("x", depends_on=["y"]), echo_task("y", depends_on=["x"]),
                                       echo_task("p", depends_on=["q"]), echo_task("q", depends_on=["r"]),
                                       echo_task("r", depends_on=["p"])])
        r = tg("validate", f, "--json", "--no-system")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(json.loads(r.stdout)["circular_dependencies"], [["x", "y", "x"], ["p", "q", "r", "p"]])
        r = tg("suggest", f)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cycle", r.stderr)

    def test_suggest_batches_deterministic(self):
        f = write_task_file(self.dir, self.tasks())
        r1, r2 = tg("suggest", f, "--json"), tg("suggest", f, "--json")
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.assertEqual(r1.stdout, r2.stdout)
        self.assertEqual(json.loads(r1.stdout)["batches"], [["a", "d"], ["b"], ["c"]])
        self.assertEqual(tg("suggest", f).stdout, "batch 1: a d\nbatch 2: b\nbatch 3: c\n")

    def test_bad_input(self):
        f = write_task_file(self.dir, self.tasks())
        for args, text in [(("validate",), "needs a task file"), (("validate", f, "zz"), "no task has the id 'zz'"),
                           (("validate", f, "a", "a"), "given twice"), (("validate", f, "--active", "x"), "--active"),
                           (("suggest", self.dir / "missing.json"), "missing.json"),
                           (("validate", f, "--bogus"), "unknown option")]:
            r = tg(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(text, r.stderr)
        self.assertEqual(tg("help", "validate").returncode, 0)

    def test_run_validate_falls_back_to_batches(self):
        f = write_task_file(self.dir, self.tasks())
        r = tg("run", f, "--validate", "--json")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        v = events(r.stdout, "validated")[0]
        self.assertEqual((v["can_parallel"], v["mode"], v["phases"]), (False, "batches", [["a", "d"], ["b"], ["c"]]))
        self.assertEqual(len(events(r.stdout, "phase_started")), 2)
        r = tg("run", f, "--validate=sequential", "--json")
        self.assertEqual(events(r.stdout, "validated")[0]["phases"], [["a"], ["d"], ["b"], ["c"]])
        r = tg("run", f, "--progressive", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(events(r.stdout, "validated")[0]["mode"], "progressive")
        self.assertEqual(tg("run", f, "--validate=never").returncode, 2)


class LocksCommandTest(TempDirTest):
    def holder(self, d, path):
        """A `taskgate run` holding the lock of `path` in lock directory d (a long task writing it)."""
        folder = Path(tempfile.mkdtemp(dir=self.dir))
        f = write_task_file(folder, [sleep_task("holds", 60000, writes=[str(path)])])
        p = subprocess.Popen([TASKGATE, "run", str(f), "--lock-dir", str(d), "-q"], env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            r = tg("locks", "list", "--dir", d, "--json")
            if any(e.get("pid") == p.pid and e["state"] == "held" for e in json.loads(r.stdout or "[]")):
                return p
            time.sleep(0.02)
        self.fail("the holder never took its lock")

    def test_list_and_clean(self):
        d = self.dir / "locks"
        live = self.holder(d, self.dir / "live.txt")
        dead = self.holder(d, self.dir / "dead.txt")
        dead.kill()
        dead.wait()
        r = tg("locks", "list", "--dir", d, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        states = sorted((e["state"], e.get("key"), e.get("pid")) for e in json.loads(r.stdout))
        self.assertEqual(states, [("held", str(self.dir / "live.txt"), live.pid), ("stale", str(self.dir / "dead.txt"), dead.pid)])
        self.assertIn("holder pid %d is gone" % dead.pid, tg("locks", "list", "--dir", d).stdout)
        r = tg("locks", "clean", "--dir", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 stale lock cleaned", r.stdout)
        left = json.loads(tg("locks", "list", "--dir", d, "--json").stdout)
        self.assertEqual([(e["state"], e.get("pid")) for e in left], [("held", live.pid)])
        # A missing directory has no locks; bad usage is refused.
        self.assertEqual(tg("locks", "list", "--dir", self.dir / "none", "--json").stdout.strip(), "[]")
        self.assertEqual(tg("locks").returncode, 2)
        self.assertEqual(tg("locks", "purge").returncode, 2)
        (self.dir / "afile").write_text("x")
        r = tg("locks", "list", "--dir", self.dir / "afile")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a directory", r.stderr)

    def test_validate_reports_a_held_lock(self):
        f = write_task_file(self.dir, [excl_task("a", "s", writes=["out.txt"])])
        p = self.holder(self.dir / ".taskgate" / "locks", self.dir / "out.txt")
        r = tg("validate", f, "--json", "--no-system")
        self.assertEqual(r.returncode, 1)
        issue = json.loads(r.stdout)["lock_issues"][0]
        self.assertEqual((issue["task"], issue["file"], issue["pid"]), ("a", str(self.dir / "out.txt"), p.pid))
        self.assertIn("holds", issue["holder"])

    def test_two_runs_never_write_one_file_at_once(self):
        shared, sentinel = self.dir / "shared.txt", self.dir / "inside"
        files = [write_task_file(self.dir, [excl_task(f"{n}{i}", sentinel, 5, writes=[str(shared)]) for i in range(15)],
                                 config={"max_parallel_tasks": 4}, name=f"{n}.json") for n in ("one", "two")]
        procs = [subprocess.Popen([TASKGATE, "run", str(f), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=clean_env(), text=True) for f in files]
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err + out)
            self.assertEqual(events(out, "run_finished")[0]["succeeded"], 15)


if __name__ == "__main__":
    unittest.main()
