"""Build step of the taskgate wheel: puts libtaskgate.so inside the package.

Where the library comes from, in order:
  1. TASKGATE_BUILD_LIBRARY: a path to a built libtaskgate.so;
  2. the repository's release build, ../../build/lib/libtaskgate.so (from `make lib`);
  3. otherwise, when this is a checkout with a Swift toolchain on PATH, `make lib`
     is run in the repository root first.
The library is self-contained (the Swift runtime is linked in statically), so
the installed package needs no Swift toolchain.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def find_library() -> str:
    given = os.environ.get("TASKGATE_BUILD_LIBRARY")
    if given:
        if not os.path.isfile(given):
            raise SystemExit(f"taskgate: TASKGATE_BUILD_LIBRARY={given!r} is not a file")
        return given
    built = os.path.join(REPO, "build", "lib", "libtaskgate.so")
    makefile = os.path.join(REPO, "Makefile")
    if not os.path.exists(built) and os.path.exists(makefile) and shutil.which("swift"):
        subprocess.check_call(["make", "-C", REPO, "lib"])
    if os.path.exists(built):
        return os.path.realpath(built)
    raise SystemExit(
        "taskgate: no libtaskgate.so to package. Build it first (`make lib` in the repository root, "
        "which needs the Swift toolchain), or set TASKGATE_BUILD_LIBRARY to a built library.")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "taskgate", "libtaskgate.so")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(find_library(), target)
        os.chmod(target, 0o755)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
