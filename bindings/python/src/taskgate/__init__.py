"""taskgate: an embeddable parallel task engine, from Python.

    import taskgate

    with taskgate.Pool(workers=4) as pool:
        futures = [pool.submit(pow, 2, k) for k in range(10)]
        print([f.result() for f in futures])
        text = pool.load_plugin("build/plugins/libtext.so")
        pool.submit("text.upper", "in.txt", "out.txt", writes=["out.txt"]).result()

The bindings load ``libtaskgate.so`` through ctypes: the copy installed in
this package, or the file named by ``TASKGATE_LIBRARY``.
"""
from ._capi import BINDINGS_VERSION, LIBRARY_PATH, LIBRARY_VERSION
from .errors import (AlreadyFinishedError, ArgumentTypeError, BadHandleError, BusyError, ConflictError,
                     CycleError, DuplicateIdError, InternalError, InvalidArgumentError, NoMoreResultsError,
                     NotFoundError, OutOfMemoryError, PluginError, RangeError, ShutdownError, TaskError,
                     TaskFailed, TaskgateError, TaskSkipped, TaskTimedOut, TimeoutError,
                     UnknownDependencyError, VersionError)
from .pool import Batch, Plugin, Pool, Processor, Result, TaskFuture

__version__ = ".".join(map(str, BINDINGS_VERSION))

__all__ = [
    "Pool", "TaskFuture", "Result", "Batch", "Plugin", "Processor",
    "TaskgateError", "InvalidArgumentError", "OutOfMemoryError", "BadHandleError", "VersionError",
    "DuplicateIdError", "UnknownDependencyError", "CycleError", "ShutdownError", "TimeoutError",
    "BusyError", "NotFoundError", "AlreadyFinishedError", "NoMoreResultsError", "RangeError",
    "InternalError", "PluginError", "ArgumentTypeError", "ConflictError",
    "TaskError", "TaskFailed", "TaskTimedOut", "TaskSkipped",
    "LIBRARY_PATH", "LIBRARY_VERSION", "__version__",
]
