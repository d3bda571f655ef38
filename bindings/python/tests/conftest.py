"""Fixtures for the taskgate tests: the real library, real plugins, real processes.

PLUGINS names the folder of the example plugins (build/plugins from `make
plugins`); fixtures that need other plugins compile them here with cc.
"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PLUGINS = os.environ.get("PLUGINS", os.path.join(REPO, "build", "plugins"))

# Every wait in these tests has a limit, so a deadlock fails instead of hanging.
WAIT = 30.0


@pytest.fixture(scope="session")
def plugin_dir():
    if not os.path.isfile(os.path.join(PLUGINS, "libflaky.so")):
        pytest.fail(f"no example plugins in {PLUGINS}: run `make plugins` (or set PLUGINS)")
    return PLUGINS


@pytest.fixture(scope="session")
def flaky_path(plugin_dir):
    return os.path.join(plugin_dir, "libflaky.so")


@pytest.fixture(scope="session")
def text_path(plugin_dir):
    return os.path.join(plugin_dir, "libtext.so")


def compile_c(out, source, *flags):
    cmd = [os.environ.get("CC", "cc"), "-std=c99", "-O2", "-fPIC", "-shared", "-fvisibility=hidden",
           "-I" + os.path.join(REPO, "include"), *flags, "-o", out, source]
    subprocess.run(cmd, check=True)
    return out


@pytest.fixture(scope="session")
def fixtures_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fixtures"))


@pytest.fixture(scope="session")
def good_path(fixtures_dir):
    return compile_c(os.path.join(fixtures_dir, "libgood.so"), os.path.join(REPO, "Tests", "c", "plugins", "good.c"))


@pytest.fixture(scope="session")
def wrong_abi_path(fixtures_dir):
    return compile_c(os.path.join(fixtures_dir, "r_major.so"), os.path.join(REPO, "Tests", "c", "plugins", "refuse.c"),
                     "-DMAJOR=(TG_PLUGIN_ABI_MAJOR+1)")


@pytest.fixture(params=[1, 2, 4, 8], ids=lambda w: f"W{w}")
def workers(request):
    return request.param


def run_python(code, env=None, timeout=60, **kw):
    """Runs code in a fresh interpreter with this one's taskgate; returns CompletedProcess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=e, **kw)
