"""What needs its own interpreter: exit with work in flight, Ctrl-C, the
library check at import, and the installed package's layout."""
import os
import signal
import subprocess
import sys
import time

import pytest

import taskgate
from conftest import compile_c, run_python


def test_package_ships_its_library_and_types():
    here = os.path.dirname(taskgate.__file__)
    assert os.path.isfile(os.path.join(here, "py.typed"))
    if "TASKGATE_LIBRARY" not in os.environ:
        assert os.path.dirname(taskgate.LIBRARY_PATH) == here
    assert taskgate.LIBRARY_VERSION == taskgate.__version__


def test_exit_with_work_in_flight_neither_hangs_nor_crashes(flaky_path):
    code = f"""
import time, taskgate
pool = taskgate.Pool(workers=2)
pool.load_plugin({flaky_path!r})
for k in range(200):
    pool.submit(time.sleep, 0.05)
    pool.submit("flaky.sleep_ms", 50)
pool.map(lambda x: x, range(1000))
time.sleep(0.1)
print("leaving", flush=True)
"""
    t0 = time.monotonic()
    p = run_python(code, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "leaving" in p.stdout
    assert "Fatal" not in p.stderr and "Segmentation" not in p.stderr and "Traceback" not in p.stderr
    assert time.monotonic() - t0 < 30


def test_exit_while_a_callable_never_returns():
    code = """
import threading, time, taskgate
pool = taskgate.Pool(workers=1)
pool.submit(threading.Event().wait)
time.sleep(0.2)
print("leaving", flush=True)
"""
    p = run_python(code, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Fatal" not in p.stderr and "Segmentation" not in p.stderr


def test_ctrl_c_cancels_cleanly():
    code = """
import time, taskgate
futs = []
try:
    with taskgate.Pool(workers=1) as pool:
        futs = [pool.submit(time.sleep, 0.05) for _ in range(400)]
        print("ready", flush=True)
        pool.wait()
except KeyboardInterrupt:
    done = sum(f.done() for f in futs)
    cancelled = sum(f.cancelled() for f in futs)
    print(f"interrupted done={done} cancelled={cancelled}", flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    line = out.strip().splitlines()[-1]
    assert line.startswith("interrupted done=400"), line
    assert int(line.split("cancelled=")[1]) > 300


def test_library_version_mismatch_fails_at_import(tmp_path):
    src = tmp_path / "old.c"
    src.write_text('#define E __attribute__((visibility("default")))\n'
                   'E int tg_version(void) { return 200; }\nE const char *tg_version_string(void) { return "0.2.0"; }\n')
    lib = compile_c(str(tmp_path / "libold.so"), str(src))
    p = run_python("import taskgate", env={"TASKGATE_LIBRARY": lib})
    assert p.returncode != 0
    need = "%d.%d" % taskgate.BINDINGS_VERSION[:2]  # what these bindings ask for
    assert "ImportError" in p.stderr and "0.2.0" in p.stderr and need in p.stderr and "libold.so" in p.stderr


def test_taskgate_library_variable(tmp_path):
    p = run_python("import taskgate", env={"TASKGATE_LIBRARY": str(tmp_path / "missing.so")})
    assert p.returncode != 0 and "missing.so" in p.stderr and "is not a file" in p.stderr
    junk = tmp_path / "junk.so"
    junk.write_text("junk")
    p = run_python("import taskgate", env={"TASKGATE_LIBRARY": str(junk)})
    assert p.returncode != 0 and "cannot load" in p.stderr
    real = taskgate.LIBRARY_PATH
    p = run_python("import taskgate; print(taskgate.LIBRARY_PATH)", env={"TASKGATE_LIBRARY": real})
    assert p.returncode == 0 and p.stdout.strip() == real
