"""taskgate: an embeddable parallel task engine, from Python.

    import taskgate

    with taskgate.Pool(workers=4) as pool:
        futures = [pool.submit(pow, 2, k) for k in range(10)]
        print([f.result() for f in futures])
        text = pool.load_plugin("build/plugins/libtext.so")
        pool.submit("text.upper", "in.txt", "out.txt", writes=["out.txt"]).result()

        api = pool.policy(retry=taskgate.Retry(max_attempts=5, base_delay=0.2),
                          breaker=taskgate.Breaker(failure_threshold=5, open_for=30))
        pool.submit(fetch, url, policy=api, key="api.example.com")  # fetch may raise
                                                                   # taskgate.Retryable(status_code=503)

The bindings load ``libtaskgate.so`` through ctypes: the copy installed in
this package, or the file named by ``TASKGATE_LIBRARY``.
"""
from ._capi import BINDINGS_VERSION, LIBRARY_PATH, LIBRARY_VERSION
from .errors import (AlreadyFinishedError, ArgumentTypeError, BadHandleError, BusyError, ConflictError,
                     CycleError, DuplicateIdError, InternalError, InvalidArgumentError, NoMoreResultsError,
                     NotFoundError, OutOfMemoryError, PluginError, RangeError, ShutdownError, TaskError,
                     TaskFailed, TaskgateError, TaskSkipped, TaskTimedOut, TimeoutError,
                     UnknownDependencyError, VersionError, LimitedError, TaskRejected, Retryable, Permanent,
                     LockedError, LockUnsupportedError, UnsafePathError, SystemCallError)
from .locks import FileLock, clean_stale_locks, find_cycles, list_locks, suggest_batches, validate
from .results import AGGREGATE_KINDS, aggregate
from .pool import Batch, Plugin, Pool, Processor, Result, TaskFuture
from .resilience import (Breaker, BreakerState, Credential, Credentials, Limit, Policy, Retry, TaskContext,
                         VirtualClock, WorkerHealth, current_task)

__version__ = ".".join(map(str, BINDINGS_VERSION))

__all__ = [
    "Pool", "TaskFuture", "Result", "Batch", "Plugin", "Processor",
    "TaskgateError", "InvalidArgumentError", "OutOfMemoryError", "BadHandleError", "VersionError",
    "DuplicateIdError", "UnknownDependencyError", "CycleError", "ShutdownError", "TimeoutError",
    "BusyError", "NotFoundError", "AlreadyFinishedError", "NoMoreResultsError", "RangeError",
    "InternalError", "PluginError", "ArgumentTypeError", "ConflictError",
    "TaskError", "TaskFailed", "TaskTimedOut", "TaskSkipped", "TaskRejected", "LimitedError",
    "Retryable", "Permanent", "Retry", "Breaker", "Limit", "Policy", "Credentials", "Credential", "VirtualClock",
    "BreakerState", "WorkerHealth", "TaskContext", "current_task",
    "FileLock", "list_locks", "clean_stale_locks", "validate", "suggest_batches", "find_cycles",
    "LockedError", "LockUnsupportedError", "UnsafePathError", "SystemCallError",
    "aggregate", "AGGREGATE_KINDS",
    "LIBRARY_PATH", "LIBRARY_VERSION", "__version__",
]
