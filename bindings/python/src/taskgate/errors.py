"""The exceptions taskgate raises.

Every failed C call becomes a :class:`TaskgateError` (or a subclass) carrying
the code, its name and the library's detail text (``tg_last_error()``). A task
that did not succeed raises a :class:`TaskError` from its future, unless it was
a Python callable that raised: then its own exception comes back.
"""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Dict, Optional, Type

if TYPE_CHECKING:  # pragma: no cover
    from .pool import Result

__all__ = [
    "TaskgateError", "InvalidArgumentError", "OutOfMemoryError", "BadHandleError", "VersionError",
    "DuplicateIdError", "UnknownDependencyError", "CycleError", "ShutdownError", "TimeoutError",
    "BusyError", "NotFoundError", "AlreadyFinishedError", "NoMoreResultsError", "RangeError",
    "InternalError", "PluginError", "ArgumentTypeError", "ConflictError", "LimitedError",
    "LockedError", "LockUnsupportedError", "UnsafePathError", "SystemCallError",
    "TaskError", "TaskFailed", "TaskTimedOut", "TaskSkipped", "TaskRejected", "Retryable", "Permanent",
]


class TaskgateError(Exception):
    """A taskgate call failed. ``code`` is the negative TG_E* number, ``name``
    its name ("ECYCLE"), ``detail`` the library's explanation."""

    code: int = -15
    name: str = "EINTERNAL"

    def __init__(self, detail: str, code: Optional[int] = None, name: Optional[str] = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name

    def __str__(self) -> str:
        return f"{self.detail} [{self.name}]" if self.detail else self.name


class InvalidArgumentError(TaskgateError, ValueError):
    """TG_EINVAL: an argument is not acceptable."""
    code, name = -1, "EINVAL"


class OutOfMemoryError(TaskgateError, MemoryError):
    code, name = -2, "ENOMEM"


class BadHandleError(TaskgateError):
    """TG_EBADHANDLE: the pool (or plugin) is closed or was never valid."""
    code, name = -3, "EBADHANDLE"


class VersionError(TaskgateError):
    """TG_EVERSION, or a library whose version these bindings cannot use."""
    code, name = -4, "EVERSION"


class DuplicateIdError(TaskgateError, ValueError):
    code, name = -5, "EDUPLICATE"


class UnknownDependencyError(TaskgateError, LookupError):
    code, name = -6, "EUNKNOWNDEP"


class CycleError(TaskgateError, ValueError):
    """TG_ECYCLE: the dependencies form a cycle; the detail names it."""
    code, name = -7, "ECYCLE"


class ShutdownError(TaskgateError, RuntimeError):
    code, name = -8, "ESHUTDOWN"


class TimeoutError(TaskgateError, builtins.TimeoutError):
    """TG_ETIMEDOUT: a wait ran out of time. Also a built-in TimeoutError."""
    code, name = -9, "ETIMEDOUT"


class BusyError(TaskgateError):
    code, name = -10, "EBUSY"


class NotFoundError(TaskgateError, LookupError):
    code, name = -11, "ENOTFOUND"


class AlreadyFinishedError(TaskgateError):
    code, name = -12, "EFINISHED"


class NoMoreResultsError(TaskgateError):
    code, name = -13, "ENOMORE"


class RangeError(TaskgateError, ValueError):
    code, name = -14, "ERANGE"


class InternalError(TaskgateError):
    code, name = -15, "EINTERNAL"


class PluginError(TaskgateError):
    """TG_EPLUGIN: a plugin was refused; the detail names the file and why."""
    code, name = -16, "EPLUGIN"


class ArgumentTypeError(TaskgateError, TypeError):
    """TG_ETYPE: an argument does not match the processor's signature."""
    code, name = -17, "ETYPE"


class LimitedError(TaskgateError):
    """TG_ELIMITED: ``try_submit`` found the task's breaker open or a limit
    of its key full; nothing was submitted. The detail says which."""
    code, name = -18, "ELIMITED"


class LockedError(TaskgateError):
    """TG_ELOCKED: a file lock is held by a live holder (the detail names it:
    holder id, pid, host, since when)."""
    code, name = -19, "ELOCKED"


class LockUnsupportedError(TaskgateError, OSError):
    """TG_ENOLCK: file locking does not work on that filesystem."""
    code, name = -20, "ENOLCK"


class UnsafePathError(TaskgateError, OSError):
    """TG_EUNSAFE: a symbolic link, FIFO, socket, device or another user's
    file sits where a lock file should be; it was not used."""
    code, name = -21, "EUNSAFE"


class SystemCallError(TaskgateError, OSError):
    """TG_EIO: an operating-system call failed (the detail names it and the path)."""
    code, name = -22, "EIO"


class ConflictError(TaskgateError, ValueError):
    """Two tasks of a run write one path and the run asked to refuse that
    (``conflict_resolution="fail"``)."""
    code, name = -1, "EINVAL"


BY_CODE: Dict[int, Type[TaskgateError]] = {
    cls.code: cls for cls in (
        InvalidArgumentError, OutOfMemoryError, BadHandleError, VersionError, DuplicateIdError,
        UnknownDependencyError, CycleError, ShutdownError, TimeoutError, BusyError, NotFoundError,
        AlreadyFinishedError, NoMoreResultsError, RangeError, InternalError, PluginError,
        ArgumentTypeError, LimitedError, LockedError, LockUnsupportedError, UnsafePathError, SystemCallError)
}


def error_for(code: int, detail: str, name: str) -> TaskgateError:
    cls = BY_CODE.get(code, TaskgateError)
    return cls(detail, code, name)


class TaskError(Exception):
    """A task ended without succeeding. ``result`` is its :class:`Result`."""

    def __init__(self, result: "Result"):
        who = f"task {result.id!r}" if result.id is not None else f"task #{result.seq}"
        super().__init__(f"{who} {result.status}: {result.error or result.status}")
        self.result = result


class TaskFailed(TaskError):
    """The processor reported a failure (the error text is in ``result.error``)."""


class TaskTimedOut(TaskError, builtins.TimeoutError):
    """The task ran past its timeout."""


class TaskSkipped(TaskError):
    """The task never ran: a dependency did not succeed."""


class TaskRejected(TaskError):
    """The task's circuit breaker was open: it never ran (status "rejected")."""


class _Outcome(Exception):
    def __init__(self, message: str = "", *, status_code: Optional[int] = None):
        super().__init__(message)
        if status_code is not None and (isinstance(status_code, bool) or not isinstance(status_code, int)
                                        or not -(1 << 31) <= status_code < (1 << 31)):
            raise builtins.TypeError(f"status_code must be a 32-bit int, got {status_code!r}")
        self.status_code = status_code


class Retryable(_Outcome):
    """Raise from a task to report a transient failure: the policy retries it
    (after ``retry_after`` seconds when given, else its backoff). A
    ``status_code`` such as 429 or 503 is recorded in the result and read by
    credential rotation. Any other exception counts as retryable too, unless
    the policy's retry says ``failed_is_permanent``."""

    def __init__(self, message: str = "", *, status_code: Optional[int] = None,
                 retry_after: Optional[float] = None):
        super().__init__(message, status_code=status_code)
        if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, (int, float))
                                        or not retry_after >= 0 or retry_after > 31_536_000):
            raise builtins.TypeError(f"retry_after must be seconds >= 0 (at most a year), got {retry_after!r}")
        self.retry_after = retry_after


class Permanent(_Outcome):
    """Raise from a task to report a failure that retrying cannot help
    (a 400, bad input): the policy stops at once."""
