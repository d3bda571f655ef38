"""Pool, futures, batches, plugins: the Pythonic face of libtaskgate.

How Python callables run
------------------------
Every Python task is submitted with the same C processor, a ctypes callback
(``_run_python``), and a ``user`` number that names an entry in ``_ENTRIES``:
the callable, its arguments, and where its value goes. The entry is the one
strong reference C depends on; it lives from before the submission until the
task's end hook (``_on_end``) has run, so garbage collection can never free
what a worker is about to call. The GIL is taken only by ctypes around the
callback; the engine itself never holds it.

Futures are completed by the task's end hook, which the engine calls exactly
once on whichever thread ended the task; their state is therefore the
engine's verdict (a task that timed out while its callable was still running
reports the timeout, not the late value). Batches (``map``, ``batch``) skip
the hook and the per-task future: their results are read back from the pool
in submission order.
"""
from __future__ import annotations

import atexit
import concurrent.futures as _cf
import ctypes
import itertools
import json
import os
import threading
import time
from array import array
from ctypes import byref, c_char_p, c_size_t, c_uint64, c_void_p
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from . import _capi as C
from . import errors
from ._capi import lib
from .resilience import (Breaker, Credentials, Limit, Policy, Retry, VirtualClock, WorkerHealth,
                         _credentials_from_env, _make_credentials, _make_policy)

__all__ = ["Pool", "TaskFuture", "Result", "Batch", "Plugin", "Processor"]

#: How long one blocking C wait lasts before Python gets a chance to run
#: signal handlers (Ctrl-C), in milliseconds.
WAIT_SLICE_MS = 50

_PRIORITIES = {"high": 1, "normal": 0, "low": -1, 1: 1, 0: 0, -1: -1}

# ---- entries: what C may call back into ----------------------------------------

_ENTRIES: Dict[int, Any] = {}
_KEYS = itertools.count(1)
_EXITING = False
_LIVE: "set[Pool]" = set()
_LIVE_LOCK = threading.Lock()


class _Call:
    """One task: a Python callable and its arguments, or a plugin task (fn None).
    ``cached``: the value also goes to the engine as JSON, for the result cache."""
    __slots__ = ("fn", "args", "kwargs", "future", "value", "exc", "cached")

    def __init__(self, fn: Optional[Callable[..., Any]], args: tuple, kwargs: Optional[dict],
                 future: "TaskFuture", cached: bool = False):
        self.fn, self.args, self.kwargs, self.future = fn, args, kwargs, future
        self.value: Any = None
        self.exc: Optional[BaseException] = None
        self.cached = cached


class _Rows:
    """A batch of Python calls: row i of ``rows`` is the arguments of task i."""
    __slots__ = ("fn", "rows", "values", "excs")

    def __init__(self, fn: Callable[..., Any], rows: List[tuple]):
        self.fn, self.rows = fn, rows
        self.values: List[Any] = [None] * len(rows)
        self.excs: Dict[int, BaseException] = {}


def _describe(exc: BaseException) -> bytes:
    try:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except BaseException:  # a __str__ that raises
        text = type(exc).__name__
    return text.encode("utf-8", "replace").replace(b"\0", b"\\0")


# ctypes wraps each callback from a thread Python did not start in
# PyGILState_Ensure/Release, which creates and destroys a thread state per
# call (microseconds). One extra Ensure per worker thread, never released,
# keeps its thread state alive: later callbacks only take and drop the GIL.
# Per thread state, not per thread id: ids are reused once a pool's workers
# exit, thread states are not.
_PINNED = threading.local()
_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype, _gil_ensure.argtypes = ctypes.c_int, []


def _pin() -> None:
    _PINNED.done = True
    _gil_ensure()


def _run_python(ctx: int, user: int) -> int:
    if not hasattr(_PINNED, "done"):
        _pin()
    e = _ENTRIES.get(user >> 32)
    if e is None or _EXITING:
        return 1
    _PINNED.ctx = ctx
    try:
        if e.__class__ is _Call:
            e.value = e.fn(*e.args, **e.kwargs) if e.kwargs else e.fn(*e.args)
            if e.cached:
                _cache_output(ctx, e)
        else:
            i = user & 0xFFFFFFFF
            e.values[i] = e.fn(*e.rows[i])
        return 0
    except BaseException as exc:  # never let an exception cross into C
        return _failed(ctx, e, user, exc)
    finally:
        _PINNED.ctx = 0


def _cache_output(ctx: int, e: "_Call") -> None:
    """A cached callable's value goes into the cache as JSON: text any later
    run can read back, never code (a cache directory is shared on disk)."""
    try:
        text = json.dumps(e.value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgumentError(
            f"cache: the return value of {getattr(e.fn, '__qualname__', e.fn)!r} cannot be stored: "
            f"a cached callable must return JSON data (dict, list, str, int, float, bool, None): {exc}") from None
    lib.task_set_output(ctx, text, len(text))


def _failed(ctx: int, e: Any, user: int, exc: BaseException) -> int:
    """Records a callable's exception and says what kind of failure it was:
    Retryable (with its status code and retry-after), Permanent, or any other
    exception (TG_TASK_FAILED: retried unless the policy says otherwise; a
    ``status_code`` attribute on it is reported too)."""
    try:
        if e.__class__ is _Call:
            e.exc = exc
        else:
            e.excs[user & 0xFFFFFFFF] = exc
        lib.task_set_error(ctx, _describe(exc))
        code = getattr(exc, "status_code", None)
        if isinstance(code, int) and not isinstance(code, bool) and -(1 << 31) <= code < (1 << 31):
            lib.task_set_status_code(ctx, code)
        if isinstance(exc, errors.Retryable):
            if exc.retry_after is not None:
                lib.task_set_retry_after(ctx, max(0, int(round(exc.retry_after * 1000))))
            return C.TASK_RETRY
        if isinstance(exc, errors.Permanent):
            return C.TASK_PERMANENT
    except BaseException:
        pass
    return C.TASK_FAILED


def _fallback_callback(fallback: Callable[..., Any]) -> Any:
    """The C fallback of a policy whose breaker is open: calls ``fallback``
    with the task's own arguments in place of its callable."""
    def run(ctx: int, user: int) -> int:
        if not hasattr(_PINNED, "done"):
            _pin()
        e = _ENTRIES.get(user >> 32)
        if e is None or _EXITING or getattr(e, "fn", None) is None:
            return 1
        _PINNED.ctx = ctx
        try:
            if e.__class__ is _Call:
                e.value = fallback(*e.args, **e.kwargs) if e.kwargs else fallback(*e.args)
            else:
                i = user & 0xFFFFFFFF
                e.values[i] = fallback(*e.rows[i])
            return 0
        except BaseException as exc:
            return _failed(ctx, e, user, exc)
        finally:
            _PINNED.ctx = 0
    return C.PROCESSOR_FN(run)


def _on_end(pool: int, seq: int, status: int, user: int) -> None:
    if not hasattr(_PINNED, "done"):
        _pin()
    e = _ENTRIES.pop(user >> 32, None)
    if e is None:
        return
    try:
        e.future._finish(seq, status, e)
    except BaseException as exc:  # nothing may reach C; and the future must not stay pending
        f = e.future
        if not f.done():
            try:
                _cf.Future.set_exception(f, exc)
            except BaseException:
                pass


def _recover_callback(recover: Callable[[int], Any]) -> Any:
    """The pool's recover hook: ``recover(worker)`` returning anything but
    False (or raising) counts as recovered."""
    def run(pool: int, worker: int, user: int) -> int:
        if not hasattr(_PINNED, "done"):
            _pin()
        if _EXITING:
            return 1
        try:
            return 1 if recover(worker) is False else 0
        except BaseException:
            return 1
    return C.RECOVER_FN(run)


_PROCESSOR = C.PROCESSOR_FN(_run_python)
_END = C.END_FN(_on_end)
_PROCESSOR_ADDRESS = ctypes.cast(_PROCESSOR, c_void_p).value
_END_ADDRESS = ctypes.cast(_END, c_void_p).value

# ---- results ------------------------------------------------------------------


class Result:
    """What happened to one task, as the pool recorded it.

    ``status`` is one of "succeeded", "failed", "timed_out", "cancelled",
    "skipped" (or "pending", "queued", "running" before it ends). ``output`` is
    the callable's return value for Python tasks, the bytes the processor set
    for plugin tasks (None when none). Times are CLOCK_MONOTONIC nanoseconds.
    """
    __slots__ = ("seq", "id", "group", "status", "output", "error", "exception", "attempts", "worker",
                 "submit_ns", "start_ns", "end_ns", "queue_ns", "flags", "status_code", "retry_delays_ns",
                 "cache", "cache_reason")

    def __init__(self, r: C.CResult, output: Any = None, exception: Optional[BaseException] = None,
                 python: bool = False):
        self.seq: int = r.seq
        self.id: Optional[str] = r.id.decode() if r.id is not None else None
        self.group: Optional[str] = r.group.decode() if r.group is not None else None
        self.status: str = C.STATUS_NAMES.get(r.status, "unknown")
        if python and r.flags & _CACHE_HIT and r.status == C.SUCCEEDED:
            # Answered from the result cache: the callable never ran; its value is the stored JSON.
            self.output = json.loads(ctypes.string_at(r.output, r.output_len)) if r.output else None
        elif python:
            self.output = output if r.status == C.SUCCEEDED else None
        else:
            self.output = ctypes.string_at(r.output, r.output_len) if r.output else None
        self.error: Optional[str] = r.error.decode("utf-8", "replace") if r.error is not None else None
        # The callable's own exception, when its call is what ended the task
        # (not when the engine ended it before a call: no credential left).
        self.exception = exception if r.status == C.FAILED and not r.flags & _ENDED_BEFORE_CALL else None
        self.attempts: int = r.attempts
        self.worker: Optional[int] = r.worker if r.worker >= 0 else None
        self.submit_ns: int = r.submit_ns
        self.start_ns: int = r.start_ns
        self.end_ns: int = r.end_ns
        self.queue_ns: int = r.queue_ns
        #: Why a task under a policy ended as it did: names from
        #: "permanent", "retries_exhausted", "budget_exhausted", "breaker_open",
        #: "fallback", "credentials_exhausted", "exhausted_recovery", "limited", "rotated".
        self.flags: frozenset = _flag_names(r.flags)
        #: The last status code the task reported (429, 503, ...); None when none.
        self.status_code: Optional[int] = r.status_code or None
        #: The delay waited before each retry, in nanoseconds on the pool's clock.
        self.retry_delays_ns: Tuple[int, ...] = tuple(r.retry_delays_ns[k] for k in range(r.n_retry_delays)) \
            if r.n_retry_delays else ()
        #: For a task submitted with ``cache_ttl``: "hit" (its output came from
        #: the cache; it did not run) or "miss" (it ran); None otherwise.
        self.cache: Optional[str] = "hit" if r.flags & _CACHE_HIT else "miss" if r.flags & _CACHE_MISS else None
        #: With a miss: why ("absent: ...", "expired: ...", "read_changed: ...").
        self.cache_reason: Optional[str] = r.cache_reason.decode("utf-8", "replace") \
            if r.cache_reason is not None else None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def ended(self) -> bool:
        return self.status in ("succeeded", "failed", "timed_out", "cancelled", "skipped", "rejected")

    @property
    def retry_delays(self) -> Tuple[float, ...]:
        """The delay waited before each retry, in seconds."""
        return tuple(d / 1e9 for d in self.retry_delays_ns)

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to end; None if it never started."""
        return (self.end_ns - self.start_ns) / 1e9 if self.start_ns and self.end_ns else None

    def raise_for_status(self) -> None:
        """Raises the matching TaskError (or the callable's own exception) unless it succeeded."""
        if self.status == "succeeded":
            return
        if self.exception is not None:
            raise self.exception
        raise _task_error(self)

    def as_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "exception"}

    def __repr__(self) -> str:
        who = repr(self.id) if self.id is not None else f"#{self.seq}"
        extra = f" error={self.error!r}" if self.error else ""
        return f"<Result {who} {self.status} attempts={self.attempts}{extra}>"


def _task_error(r: Result) -> BaseException:
    if r.status == "timed_out":
        return errors.TaskTimedOut(r)
    if r.status == "skipped":
        return errors.TaskSkipped(r)
    if r.status == "cancelled":
        return _cf.CancelledError(r.error or "cancelled")
    if r.status == "rejected":
        return errors.TaskRejected(r)
    return errors.TaskFailed(r)


_FLAG_CACHE: Dict[int, frozenset] = {0: frozenset()}
_ENDED_BEFORE_CALL = 1 << C.RESULT_FLAGS.index("credentials_exhausted")
_CACHE_HIT = 1 << C.RESULT_FLAGS.index("cache_hit")
_CACHE_MISS = 1 << C.RESULT_FLAGS.index("cache_miss")


def _flag_names(bits: int) -> frozenset:
    names = _FLAG_CACHE.get(bits)
    if names is None:
        names = frozenset(n for k, n in enumerate(C.RESULT_FLAGS) if bits >> k & 1)
        _FLAG_CACHE[bits] = names
    return names


def _read(handle: int, seq: int) -> C.CResult:
    r = C.sized(C.CResult)
    lib.pool_result_at(handle, seq, byref(r))
    return r


# ---- futures ------------------------------------------------------------------


class TaskFuture(_cf.Future):
    """A ``concurrent.futures.Future`` for one task, completed by the engine.

    Works with ``concurrent.futures.wait``/``as_completed``,
    ``asyncio.wrap_future`` and ``await``. ``result()`` gives the callable's
    value (or the plugin's output bytes); a failed callable re-raises its own
    exception; other endings raise TaskFailed, TaskTimedOut, TaskSkipped or
    CancelledError.
    """

    def __init__(self, pool: "Pool", python: bool):
        super().__init__()
        self._pool = pool
        self._python = python
        self.seq: Optional[int] = None
        self.id: Optional[str] = None
        self._details: Optional[Result] = None

    def _finish(self, seq: int, status: int, e: _Call) -> None:
        self.seq = seq
        if status == C.SUCCEEDED and self._python and not e.cached:
            self.set_result(e.value)
            return
        if status == C.CANCELLED:
            _cf.Future.cancel(self)
            self.set_running_or_notify_cancel()
            return
        r = Result(_read(self._pool._h(), seq), e.value, e.exc, self._python)
        self._details = r
        if status == C.SUCCEEDED:
            self.set_result(r.output)
        elif r.exception is not None:
            self.set_exception(r.exception)
        else:
            self.set_exception(_task_error(r))

    def cancel(self) -> bool:
        """Cancels the task unless it is running or has ended (as concurrent.futures does)."""
        if self.done():
            return self.cancelled()
        if self.seq is None:
            return False
        try:
            h = self._pool._h()
            if _read(h, self.seq).status == 2:  # running
                return False
            lib.pool_cancel_at(h, self.seq)
        except (errors.AlreadyFinishedError, errors.BadHandleError):
            return self.cancelled()
        return True

    def running(self) -> bool:
        if self.done() or self.seq is None:
            return False
        try:
            return _read(self._pool._h(), self.seq).status == 2
        except errors.TaskgateError:
            return False

    def task_result(self, timeout: Optional[float] = None) -> Result:
        """The full Result (status, error, attempts, timings) once the task ended."""
        try:
            self.exception(timeout)
        except _cf.CancelledError:
            pass
        if self._details is None:
            r = _read(self._pool._h(), self.seq)  # type: ignore[arg-type]
            value = self._result if not self.cancelled() else None
            self._details = Result(r, value, self._exception, self._python)
        return self._details

    def __await__(self):  # type: ignore[override]
        import asyncio
        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        who = repr(self.id) if self.id is not None else f"#{self.seq}"
        return f"<TaskFuture {who} {self._state.lower()}>"


# ---- plugins ------------------------------------------------------------------


class Processor:
    """A plugin processor: ``name`` ("text.upper"), ``signature``, ``arg_types``."""

    def __init__(self, pool: "Pool", ptr: int):
        info = C.sized(C.ProcessorInfo)
        lib.processor_get_info(ptr, byref(info))
        self._pool = pool
        self._ptr = ptr
        self.name: str = info.name.decode()
        self.description: str = info.description.decode() if info.description else ""
        self.signature: str = info.signature.decode()
        self.types: Tuple[int, ...] = tuple(info.arg_types[k] for k in range(info.n_args))
        self.arg_types: Tuple[str, ...] = tuple(C.TYPE_NAMES.get(t, "unknown") for t in self.types)
        self.has_setup = bool(info.flags & C.PROCESSOR_HAS_SETUP)
        self.has_cleanup = bool(info.flags & C.PROCESSOR_HAS_CLEANUP)

    def values(self, args: Sequence[Any]) -> Tuple[Any, list]:
        """tg_value array for args, and the objects that must outlive the submission."""
        n = len(args)
        vals = (C.Value * max(n, 1))()
        keep: list = [vals]
        for k, a in enumerate(args):
            _set_value(vals[k], a, self.types[k] if k < len(self.types) else C.TYPE_I64, k, self.name, keep)
        return vals, keep

    def __repr__(self) -> str:
        return f"<Processor {self.name}{self.signature}>"


def _set_value(v: C.Value, a: Any, declared: int, k: int, proc: str, keep: list) -> None:
    if isinstance(a, bool):
        v.type, v.as_.i = C.TYPE_BOOL, int(a)
    elif isinstance(a, int):
        if -(1 << 63) <= a < (1 << 63):
            v.type, v.as_.i = (declared if declared in C.INTEGER_TYPES else C.TYPE_I64), a
        elif 0 <= a < (1 << 64):
            v.type, v.as_.u = C.TYPE_U64, a
        else:
            raise errors.RangeError(f"{proc}: argument {k + 1} ({a}) does not fit in 64 bits")
    elif isinstance(a, float):
        v.type, v.as_.d = (C.TYPE_FLOAT if declared == C.TYPE_FLOAT else C.TYPE_DOUBLE), a
    elif isinstance(a, str):
        b = a.encode("utf-8")
        if b"\0" in b:
            raise errors.InvalidArgumentError(f"{proc}: argument {k + 1} contains a NUL character")
        buf = ctypes.create_string_buffer(b)
        keep.append(buf)
        v.type, v.as_.s = C.TYPE_STRING, ctypes.addressof(buf)
    elif isinstance(a, (bytes, bytearray, memoryview)):
        b = bytes(a)
        buf = ctypes.create_string_buffer(b, len(b) or 1)
        keep.append(buf)
        v.type = C.TYPE_BYTES
        v.as_.bytes.data, v.as_.bytes.len = ctypes.addressof(buf), len(b)
    else:
        raise errors.ArgumentTypeError(
            f"{proc}: argument {k + 1} is a {type(a).__name__}; arguments are int, float, bool, str or bytes")


class Plugin:
    """A plugin loaded into a pool: ``name``, ``version``, ``path``, ``processors``."""

    def __init__(self, pool: "Pool", ptr: int):
        info = C.sized(C.PluginInfo)
        lib.plugin_get_info(ptr, byref(info))
        self._pool = pool
        self._ptr: Optional[int] = ptr
        self.name: str = info.name.decode()
        self.version: str = info.version.decode()
        self.description: str = info.description.decode() if info.description else ""
        self.path: str = info.path.decode()
        self.abi: Tuple[int, int] = (info.abi_major, info.abi_minor)
        self.processors: Dict[str, Processor] = {}
        for k in range(info.n_processors):
            out = c_void_p()
            lib.plugin_processor_at(ptr, k, byref(out))
            p = Processor(pool, out.value)  # type: ignore[arg-type]
            self.processors[p.name.split(".", 1)[1]] = p

    def __getitem__(self, name: str) -> Processor:
        return self.processors[name]

    def unload(self) -> None:
        """Undoes one load; BusyError while its tasks are in flight."""
        if self._ptr is None:
            return
        lib.plugin_unload(self._pool._h(), self._ptr)
        self._ptr = None

    def __repr__(self) -> str:
        return f"<Plugin {self.name} {self.version} ({len(self.processors)} processors) {self.path}>"


# ---- batches ------------------------------------------------------------------


class Batch:
    """Tasks submitted together (``Pool.batch``), numbered first_seq .. first_seq+len-1."""

    def __init__(self, pool: "Pool", first_seq: int, count: int, rows: Optional[_Rows], key: Optional[int]):
        self._pool, self.first_seq, self._count, self._rows, self._key = pool, first_seq, count, rows, key

    def __len__(self) -> int:
        return self._count

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until every task of the batch has ended (TimeoutError otherwise)."""
        self._pool._wait_slices(lambda ms: lib.pool_wait_range(self._pool._h(), self.first_seq, self._count, ms),
                                timeout)

    def done(self) -> bool:
        try:
            lib.pool_wait_range(self._pool._h(), self.first_seq, self._count, 0)
            return True
        except errors.TimeoutError:
            return False

    def results(self, timeout: Optional[float] = None) -> List[Result]:
        """Every task's Result, in submission order, once all have ended."""
        self.wait(timeout)
        h = self._pool._h()
        rows = self._rows
        out = []
        for k in range(self._count):
            r = _read(h, self.first_seq + k)
            if rows is not None:
                out.append(Result(r, rows.values[k], rows.excs.get(k), True))
            else:
                out.append(Result(r))
        return out

    def __iter__(self) -> Iterator[Any]:
        return self.values()

    def values(self, timeout: Optional[float] = None, chunk: int = 1024) -> Iterator[Any]:
        """Each task's value (return value or output bytes) in submission order, as
        they become available; the first task that did not succeed raises."""
        deadline = None if timeout is None else time.monotonic() + timeout
        h = self._pool._h()
        rows = self._rows
        k = 0
        while k < self._count:
            n = min(chunk, self._count - k)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            first = self.first_seq + k
            self._pool._wait_slices(lambda ms: lib.pool_wait_range(h, first, n, ms), left)
            r = C.sized(C.CResult)
            for j in range(k, k + n):
                lib.pool_result_at(h, self.first_seq + j, byref(r))
                if r.status != C.SUCCEEDED:
                    exc = rows.excs.get(j) if rows is not None else None
                    if exc is not None and r.status == C.FAILED and not r.flags & _ENDED_BEFORE_CALL:
                        raise exc
                    raise _task_error(Result(r, None, None, rows is not None))
                if rows is not None:
                    yield rows.values[j]
                else:
                    yield ctypes.string_at(r.output, r.output_len) if r.output else None
            k += n
        self.release()

    def release(self) -> None:
        """Drops the Python values held for the batch (after reading them)."""
        if self._key is not None:
            try:
                self.wait(0)
            except errors.TimeoutError:
                return  # C may still call: keep the entry
            _ENTRIES.pop(self._key, None)
            self._pool._batch_keys.discard(self._key)


# ---- the pool -----------------------------------------------------------------


_DESC_SIZE = ctypes.sizeof(C.TaskDesc)
_VALUE_SIZE = ctypes.sizeof(C.Value)
_OFF = {name: getattr(C.TaskDesc, name).offset for name, _ in C.TaskDesc._fields_}


def _strings(items: Iterable[Any], what: str) -> Tuple[Any, int]:
    enc = []
    for s in items:
        if isinstance(s, os.PathLike):
            s = os.fspath(s)
        if not isinstance(s, str) or not s:
            raise errors.InvalidArgumentError(f"{what}: items must be non-empty strings, got {s!r}")
        b = s.encode("utf-8")
        if b"\0" in b:
            raise errors.InvalidArgumentError(f"{what}: {s!r} contains a NUL character")
        enc.append(b)
    if not enc:
        return None, 0
    return (c_char_p * len(enc))(*enc), len(enc)


def _name(s: Optional[str], what: str) -> Optional[bytes]:
    if s is None:
        return None
    if not isinstance(s, str) or not s:
        raise errors.InvalidArgumentError(f"{what} must be a non-empty string, got {s!r}")
    b = s.encode("utf-8")
    if b"\0" in b:
        raise errors.InvalidArgumentError(f"{what} {s!r} contains a NUL character")
    return b


def _priority(p: Union[str, int]) -> int:
    try:
        return _PRIORITIES[p]
    except (KeyError, TypeError):
        raise errors.InvalidArgumentError(
            f"priority must be 'high', 'normal', 'low' or 1, 0, -1; got {p!r}") from None


def _timeout_ms(t: Optional[float]) -> int:
    if t is None:
        return 0
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0) or t != t or t > 31_536_000:
        raise errors.InvalidArgumentError(f"timeout must be a number of seconds above 0 (at most a year), got {t!r}")
    return max(1, int(t * 1000 + 0.999))


def _cache_ttl_ms(ttl: Any) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != ttl or ttl <= 0:
        raise errors.InvalidArgumentError(f"cache_ttl must be a number of seconds above 0 (math.inf: no limit), got {ttl!r}")
    if ttl == float("inf"):
        return C.CACHE_NO_EXPIRY
    return max(1, min(int(round(ttl * 1000)), (1 << 62)))


def _callable_cache_key(fn: Any, args: tuple, kwargs: Optional[dict]) -> str:
    """What the engine cannot see of a Python task: which callable, with which arguments."""
    where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    try:
        spelled = json.dumps([list(args), kwargs or {}], sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        spelled = repr((args, sorted((kwargs or {}).items())))
    return "python:" + where + "\n" + spelled


def _seconds_ms(t: Any, what: str) -> int:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0) or t != t or t > 31_536_000:
        raise errors.InvalidArgumentError(f"{what} must be a number of seconds above 0 (at most a year), got {t!r}")
    return max(1, int(t * 1000 + 0.999))


def _difficulty(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1_000_000:
        raise errors.InvalidArgumentError(f"difficulty must be an integer 0 .. 1000000, got {v!r}")
    return v


class Pool:
    """A pool of worker threads running tasks: Python callables, or plugin processors.

    ``with Pool(workers=4) as pool:`` -- leaving the block waits for every
    task; leaving it with an exception (Ctrl-C included) cancels what has not
    finished first. ``workers=0`` means one per CPU this process may use;
    ``max_concurrency`` caps tasks running at once.
    """

    def __init__(self, workers: int = 0, *, max_concurrency: int = 0, allow_read_write_overlap: bool = False,
                 clock: Optional["VirtualClock"] = None, unhealthy_after: int = 0, max_recoveries: int = 0,
                 recover: Optional[Callable[[int], Any]] = None, lock_dir: Optional[str] = None,
                 lock_hold_timeout: Optional[float] = 300.0, lock_wait: Optional[float] = None,
                 cache_dir: Optional[str] = None):
        for name, v in (("workers", workers), ("max_concurrency", max_concurrency),
                        ("unhealthy_after", unhealthy_after), ("max_recoveries", max_recoveries)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
                raise errors.InvalidArgumentError(f"{name} must be an integer >= 0, got {v!r}")
        if clock is not None and not isinstance(clock, VirtualClock):
            raise errors.InvalidArgumentError(f"clock must be a taskgate.VirtualClock or None, got {clock!r}")
        if recover is not None and not callable(recover):
            raise errors.InvalidArgumentError(f"recover must be a callable(worker) or None, got {recover!r}")
        o = C.sized(C.PoolOptions)
        o.workers = workers
        o.max_concurrency = max_concurrency
        o.flags = C.POOL_ALLOW_READ_WRITE_OVERLAP if allow_read_write_overlap else 0
        o.clock = clock._h() if clock is not None else None
        o.unhealthy_after = unhealthy_after
        o.max_recoveries = max_recoveries
        self._recover = _recover_callback(recover) if recover is not None else None
        o.recover = ctypes.cast(self._recover, c_void_p).value if self._recover is not None else None
        if lock_dir is not None:
            # Cross-process locks for declared reads and writes (taskgate.FileLock's files).
            o.lock_dir = _name(os.fspath(lock_dir), "lock_dir")
            o.lock_hold_timeout_ms = -1 if lock_hold_timeout is None else _seconds_ms(lock_hold_timeout, "lock_hold_timeout")
            o.lock_wait_ms = 0 if lock_wait is None else _seconds_ms(lock_wait, "lock_wait")
        if cache_dir is not None:
            # The result cache for tasks submitted with cache_ttl (default: "cache" beside lock_dir).
            o.cache_dir = _name(os.fspath(cache_dir), "cache_dir")
        h = c_void_p()
        lib.pool_create(byref(o), byref(h))
        self._handle: Optional[int] = h.value
        self._policies: List[Policy] = []
        self._close_lock = threading.Lock()
        self._batch_keys: "set[int]" = set()
        self.plugins: Dict[str, Plugin] = {}
        with _LIVE_LOCK:
            _LIVE.add(self)

    # -- plumbing --

    def _h(self) -> int:
        h = self._handle
        if h is None:
            raise errors.BadHandleError("the pool is closed", -3, "EBADHANDLE")
        return h

    def _wait_slices(self, call: Callable[[int], Any], timeout: Optional[float]) -> None:
        """Runs a blocking C wait in short slices so Ctrl-C is seen promptly."""
        if timeout is not None and timeout <= 0:
            call(0)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ms = WAIT_SLICE_MS
            if deadline is not None:
                ms = min(ms, max(0, int((deadline - time.monotonic()) * 1000)))
            try:
                call(ms)
                return
            except errors.TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    @property
    def closed(self) -> bool:
        return self._handle is None

    # -- submitting --

    def _resolve(self, fn: Any) -> Optional[Processor]:
        if isinstance(fn, Processor):
            if fn._pool is not self:
                raise errors.InvalidArgumentError(f"processor {fn.name} belongs to another pool")
            return fn
        if isinstance(fn, str):
            return self.processor(fn)
        if not callable(fn):
            raise errors.InvalidArgumentError(
                f"a task runs a callable, a Processor, or a processor name 'plugin.proc'; got {type(fn).__name__}")
        return None

    def submit(self, fn: Union[Callable[..., Any], Processor, str], /, *args: Any, id: Optional[str] = None,
               priority: Union[str, int] = "normal", depends_on: Sequence[str] = (), reads: Sequence[str] = (),
               writes: Sequence[str] = (), timeout: Optional[float] = None, group: Optional[str] = None,
               critical: bool = False, difficulty: int = 0, payload: Union[bytes, str, None] = None,
               policy: Optional[Policy] = None, key: Optional[str] = None, cache_ttl: Optional[float] = None,
               cache_key: Optional[str] = None, **kwargs: Any) -> TaskFuture:
        """Submits one task and returns its future.

        ``fn`` is a Python callable (called as ``fn(*args, **kwargs)`` on a
        worker thread), a :class:`Processor`, or a processor's full name
        ("text.upper") whose arguments are ``args``. ``depends_on`` names
        tasks (by id) that must succeed first; ``reads``/``writes`` are paths
        that order the task against others writing them; ``timeout`` is in
        seconds from its start; ``critical`` makes its ``group`` cancel the
        rest once one of them fails. ``policy`` (from :meth:`policy`) says
        how failures are met, else its group's or the pool's
        (:meth:`set_policy`); ``key`` picks its breaker and limits (an API
        host, say; default: a plugin task's processor name, else one per
        policy).

        ``cache_ttl`` (seconds; ``math.inf``: no limit) reuses the task's
        previous result from the pool's ``cache_dir`` (it needs an ``id``)
        while the TTL has not passed and neither its definition nor any of
        its ``reads`` changed: a plugin processor's name, version and
        arguments, or a callable's module, qualified name and arguments, its
        payload, writes and ``cache_key`` (put a version of your code there).
        A cached callable must return JSON data; a hit gives it back parsed.
        ``task_result().cache`` says "hit" or "miss", ``cache_reason`` why.
        """
        return self._submit(lib.pool_submit, fn, args, kwargs, id, priority, depends_on, reads, writes, timeout,
                            group, critical, difficulty, payload, policy, key, cache_ttl, cache_key)

    def try_submit(self, fn: Union[Callable[..., Any], Processor, str], /, *args: Any, id: Optional[str] = None,
                   priority: Union[str, int] = "normal", depends_on: Sequence[str] = (), reads: Sequence[str] = (),
                   writes: Sequence[str] = (), timeout: Optional[float] = None, group: Optional[str] = None,
                   critical: bool = False, difficulty: int = 0, payload: Union[bytes, str, None] = None,
                   policy: Optional[Policy] = None, key: Optional[str] = None, cache_ttl: Optional[float] = None,
                   cache_key: Optional[str] = None, **kwargs: Any) -> TaskFuture:
        """As :meth:`submit`, but only if the task could start now as far as
        its policy goes (its breaker admits calls, its key's limits have
        room); otherwise raises :class:`LimitedError` at once, nothing
        submitted. The task holds its limit slot from now on."""
        return self._submit(lib.pool_try_submit, fn, args, kwargs, id, priority, depends_on, reads, writes,
                            timeout, group, critical, difficulty, payload, policy, key, cache_ttl, cache_key)

    def _submit(self, call: Any, fn: Any, args: tuple, kwargs: dict, id: Optional[str], priority: Union[str, int],
                depends_on: Sequence[str], reads: Sequence[str], writes: Sequence[str], timeout: Optional[float],
                group: Optional[str], critical: bool, difficulty: int, payload: Union[bytes, str, None],
                policy: Optional[Policy], key: Optional[str], cache_ttl: Optional[float] = None,
                cache_key: Optional[str] = None) -> TaskFuture:
        proc = self._resolve(fn)
        if proc is not None and kwargs:
            raise errors.InvalidArgumentError(f"{proc.name}: processors take positional arguments only")
        d = C.TaskDesc()
        d.struct_size = _DESC_SIZE
        keep: list = []
        if id is not None:
            d.id = _name(id, "id")
        d.priority = _priority(priority)
        if depends_on:
            if isinstance(depends_on, str):
                depends_on = [depends_on]
            d.deps, d.n_deps = _strings(depends_on, "depends_on")
        if reads:
            d.reads, d.n_reads = _strings([reads] if isinstance(reads, str) else reads, "reads")
        if writes:
            d.writes, d.n_writes = _strings([writes] if isinstance(writes, str) else writes, "writes")
        if timeout is not None:
            d.timeout_ms = _timeout_ms(timeout)
        if group is not None:
            d.group = _name(group, "group")
        if critical:
            d.flags = C.TASK_CRITICAL
        if difficulty:
            d.difficulty = _difficulty(difficulty)
        if payload is not None:
            pb = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
            d.payload, d.payload_len = pb, len(pb)
        if policy is not None:
            d.policy = self._policy_handle(policy)
        if key is not None:
            d.key = _name(key, "key")
        if cache_ttl is not None:
            d.cache_ttl_ms = _cache_ttl_ms(cache_ttl)
            if cache_key is not None and not isinstance(cache_key, str):
                raise errors.InvalidArgumentError(f"cache_key must be a str or None, got {type(cache_key).__name__}")
            ck = cache_key or ""
            if proc is None:
                # The engine knows a callable only as "fn": name it and its arguments in the key.
                ck = _callable_cache_key(fn, args, kwargs) + "\n" + ck
            d.cache_key = _name(ck, "cache_key") if ck else None
        elif cache_key is not None:
            raise errors.InvalidArgumentError("cache_key needs cache_ttl (how long a stored result stays usable)")
        future = TaskFuture(self, proc is None)
        future.id = id
        if proc is None:
            entry = _Call(fn, args, kwargs, future, cached=cache_ttl is not None)  # type: ignore[arg-type]
            d.fn = _PROCESSOR_ADDRESS
        else:
            entry = _Call(None, (), None, future)
            vals, keep = proc.values(args)
            d.processor, d.args, d.n_args = proc._ptr, vals, len(args)
        key = next(_KEYS)
        d.user = key << 32
        d.on_end = _END_ADDRESS
        _ENTRIES[key] = entry
        seq = c_uint64()
        try:
            call(self._h(), byref(d), byref(seq))
        except BaseException:
            _ENTRIES.pop(key, None)
            raise
        if future.seq is None:
            future.seq = seq.value
        del keep
        return future

    def batch(self, fn: Union[Callable[..., Any], Processor, str], rows: Iterable[Sequence[Any]], *,
              priority: Union[str, int] = "normal", group: Optional[str] = None,
              timeout: Optional[float] = None, policy: Optional[Policy] = None, key: Optional[str] = None) -> Batch:
        """Submits one anonymous task per row of arguments, all at once (all or
        nothing), and returns the :class:`Batch`. The fast path for many tasks."""
        proc = self._resolve(fn)
        rows = [tuple(r) for r in rows]
        n = len(rows)
        if n == 0:
            return Batch(self, 0, 0, None, None)
        if n >= (1 << 31):
            raise errors.RangeError(f"a batch holds fewer than 2^31 tasks, got {n}")
        template = C.TaskDesc()
        template.struct_size = _DESC_SIZE
        template.priority = _priority(priority)
        gname = _name(group, "group")
        if gname is not None:
            template.group = gname
        if timeout is not None:
            template.timeout_ms = _timeout_ms(timeout)
        if policy is not None:
            template.policy = self._policy_handle(policy)
        kname = _name(key, "key")
        if kname is not None:
            template.key = kname
        keep: list = []
        key = next(_KEYS)
        entry: Optional[_Rows] = None
        if proc is None:
            template.fn = _PROCESSOR_ADDRESS
        else:
            width = len(proc.types)
            values, keep = _pack_rows(proc, rows, width)
            template.processor = proc._ptr
            template.n_args = width
        descs = (ctypes.c_char * (_DESC_SIZE * n))()
        ctypes.memmove(descs, bytes(template) * n, _DESC_SIZE * n)
        words = memoryview(descs).cast("B").cast("Q")
        stride = _DESC_SIZE // 8
        if proc is None:
            entry = _Rows(fn, rows)  # type: ignore[arg-type]
            base = key << 32
            words[_OFF["user"] // 8::stride] = array("Q", range(base, base + n))
            _ENTRIES[key] = entry
            self._batch_keys.add(key)
        elif width:
            start = ctypes.addressof(values)
            step = _VALUE_SIZE * width
            words[_OFF["args"] // 8::stride] = array("Q", range(start, start + step * n, step))
        first = c_uint64()
        try:
            lib.pool_submit_batch(self._h(), descs, n, byref(first))
        except BaseException:
            if entry is not None:
                _ENTRIES.pop(key, None)
                self._batch_keys.discard(key)
            raise
        del keep
        return Batch(self, first.value, n, entry, key if entry is not None else None)

    def map(self, fn: Union[Callable[..., Any], Processor, str], *iterables: Iterable[Any],
            timeout: Optional[float] = None) -> Iterator[Any]:
        """Like ``Executor.map``: every task submitted at once, values yielded in
        order; the first task that did not succeed raises when reached."""
        return self.batch(fn, zip(*iterables)).values(timeout)

    def run(self, tasks: Sequence[Mapping[str, Any]], *, timeout: Optional[float] = None,
            conflict_resolution: str = "sequential") -> Dict[str, Result]:
        """Runs task dicts in the task-file format and returns {id: Result} in their order.

        Each dict has ``id`` and ``processor`` (a loaded plugin processor's
        name, a :class:`Processor`, or a Python callable), and optionally
        ``args``, ``priority``, ``depends_on``, ``reads``, ``writes``,
        ``difficulty``, ``timeout_s``, ``group``, ``critical``, ``payload``,
        ``description``. The whole list is checked and submitted as one batch:
        a bad task, a duplicate id, an unknown dependency or a cycle refuses it
        before anything runs. ``conflict_resolution="fail"`` refuses two tasks
        writing one path (ConflictError); the default runs them one at a time.
        """
        from ._taskfile import prepare
        prepared = prepare(self, tasks, conflict_resolution)
        return prepared.run(timeout)

    # -- resilience --

    def policy(self, *, retry: Optional[Retry] = None, breaker: Optional[Breaker] = None,
               limit: Optional[Limit] = None, credentials: Optional[Credentials] = None,
               fallback: Union[Callable[..., Any], Processor, str, None] = None, seed: int = 0) -> Policy:
        """Makes a policy in this pool (it lives as long as the pool).

        ``retry``, ``breaker`` and ``limit`` are :class:`Retry`,
        :class:`Breaker` and :class:`Limit` options (None: that part is off);
        ``credentials`` a ring from :meth:`credentials` or
        :meth:`credentials_from_env`; ``fallback`` runs in place of a task
        while its breaker refuses calls (a callable taking the task's
        arguments for Python tasks, a processor of the same signature for
        plugin tasks); ``seed`` seeds the jitter (same seed, same delays).
        """
        p = _make_policy(self, retry, breaker, limit, credentials, fallback, seed)
        self._policies.append(p)
        return p

    def set_policy(self, policy: Optional[Policy], group: Optional[str] = None) -> None:
        """The policy of later tasks that name none: those of ``group``, or
        every task when ``group`` is None. ``policy=None`` removes it."""
        lib.pool_set_policy(self._h(), _name(group, "group"),
                            self._policy_handle(policy) if policy is not None else None)

    def _policy_handle(self, policy: Any) -> int:
        if not isinstance(policy, Policy):
            raise errors.InvalidArgumentError(f"policy must be a taskgate.Policy (from Pool.policy), got {policy!r}")
        if policy._pool is not self:
            raise errors.InvalidArgumentError("the policy belongs to another pool")
        return policy._handle

    def credentials(self, items: Sequence[Any], *, cooldown: Optional[float] = None) -> Credentials:
        """A credential ring from a list of keys, dicts {key, base_url, model}
        or :class:`Credential`; ``cooldown``: seconds a rate-limited one rests
        when the service gave no retry-after (default 60)."""
        return _make_credentials(self, items, cooldown)

    def credentials_from_env(self, prefix: str, *, cooldown: Optional[float] = None) -> Credentials:
        """A ring read from PREFIX_1, PREFIX_2, ... (with STEM_BASE_URL_n and
        STEM_MODEL_n; STEM is the prefix without _API_KEY or _KEY), else plain
        PREFIX. NotFoundError when none is set."""
        return _credentials_from_env(self, prefix, cooldown)

    def worker_health(self, worker: Optional[int] = None) -> Union[WorkerHealth, List[WorkerHealth]]:
        """One worker's health, or every worker's when ``worker`` is None."""
        h = self._h()
        if worker is None:
            return [self.worker_health(k) for k in range(self.stats()["workers"])]  # type: ignore[misc]
        if isinstance(worker, bool) or not isinstance(worker, int) or worker < 0:
            raise errors.InvalidArgumentError(f"worker must be an index >= 0, got {worker!r}")
        w = C.sized(C.WorkerHealth)
        lib.pool_worker_health(h, worker, byref(w))
        return WorkerHealth(worker, bool(w.healthy), w.consecutive_failures, w.recovery_attempts,
                            w.total_recoveries, w.last_status_code or None, w.failures)

    # -- plugins --

    def load_plugin(self, path: Union[str, os.PathLike]) -> Plugin:
        """Loads a plugin (.so) by path (relative paths from the current directory)."""
        p = os.fspath(path)
        if not isinstance(p, str) or not p:
            raise errors.InvalidArgumentError(f"a plugin path must be a non-empty string, got {path!r}")
        if "\0" in p:
            raise errors.InvalidArgumentError("the plugin path contains a NUL character")
        out = c_void_p()
        lib.plugin_load(self._h(), os.path.abspath(p).encode(), byref(out))
        plugin = Plugin(self, out.value)  # type: ignore[arg-type]
        self.plugins[plugin.name] = plugin
        return plugin

    def processor(self, name: str) -> Processor:
        """A loaded processor by its full name, "plugin.processor"."""
        out = c_void_p()
        lib.pool_find_processor(self._h(), _name(name, "processor name"), byref(out))
        return Processor(self, out.value)  # type: ignore[arg-type]

    # -- waiting, cancelling, reading --

    def wait(self, timeout: Optional[float] = None) -> None:
        """Waits until every task submitted so far has ended. A task's future
        is completed by its end hook, which may run a moment after this
        returns: read futures with ``result()``, which waits for that."""
        h = self._h()
        self._wait_slices(lambda ms: lib.pool_wait_all(h, ms), timeout)

    def wait_for(self, id: str, timeout: Optional[float] = None) -> Result:
        """Waits for the task with this id and returns its Result."""
        h, b = self._h(), _name(id, "id")
        self._wait_slices(lambda ms: lib.pool_wait(h, b, ms), timeout)
        return self.result(id)

    def wait_group(self, group: str, timeout: Optional[float] = None) -> None:
        h, b = self._h(), _name(group, "group")
        self._wait_slices(lambda ms: lib.pool_wait_group(h, b, ms), timeout)

    def cancel(self, id: str) -> bool:
        """Cancels a task by id; False if it had already ended."""
        try:
            lib.pool_cancel(self._h(), _name(id, "id"))
            return True
        except errors.AlreadyFinishedError:
            return False

    def cancel_group(self, group: str) -> int:
        n = c_size_t()
        lib.pool_cancel_group(self._h(), _name(group, "group"), byref(n))
        return n.value

    def set_group(self, group: str, *, min_required: Any = 0, critical: bool = False,
                  cancel_all: bool = False) -> None:
        """Sets a group's partial-failure policy (seed 002 section 6).

        ``min_required``: successes the group needs: a whole number, a
        fraction 0 < f <= 1 ("half of them": 0.5), or 0 for all. ``critical``:
        once fewer than that can still succeed, the group's unfinished tasks
        are cancelled; with ``cancel_all`` every unfinished task of the pool
        is (the run fails). Counted over the tasks submitted so far.
        """
        o = C.sized(C.GroupOptions)
        if isinstance(min_required, bool) or not isinstance(min_required, (int, float)) or min_required < 0:
            raise errors.InvalidArgumentError(f"min_required must be a whole number or a fraction 0 .. 1, got {min_required!r}")
        if isinstance(min_required, float):
            if not 0 < min_required <= 1:
                raise errors.InvalidArgumentError(f"a fractional min_required must be above 0 and at most 1, got {min_required!r}")
            o.min_fraction = min_required
        else:
            if int(min_required) >= 2**32:
                raise errors.InvalidArgumentError(f"min_required {min_required!r} is too large")
            o.min_required = int(min_required)
        o.flags = (C.GROUP_CRITICAL if critical else 0) | (C.GROUP_CANCEL_ALL if cancel_all else 0)
        lib.pool_set_group(self._h(), _name(group, "group"), byref(o))

    def group_outcome(self, group: str) -> Dict[str, Any]:
        """The group's outcome now: ``state`` ("running", "succeeded",
        "failed"), ``success``, ``partial_results``, ``failed_count``,
        ``min_required``, the counts, ``reason`` ("insufficient results
        (k/required): ...") and ``failures`` [{"task", "status", "error"}]."""
        p = c_void_p()
        lib.pool_group_outcome(self._h(), _name(group, "group"), None, byref(p))
        return json.loads(C.take_text(p))

    def cancel_all(self) -> int:
        """Cancels every unfinished task; returns how many it cancelled."""
        n = c_size_t()
        lib.pool_cancel_all(self._h(), byref(n))
        return n.value

    def result(self, id: str) -> Result:
        """The task's Result now (its status may not be final yet)."""
        r = C.sized(C.CResult)
        lib.pool_result(self._h(), _name(id, "id"), byref(r))
        return Result(r)

    def result_at(self, seq: int) -> Result:
        return Result(_read(self._h(), seq))

    def completed(self, timeout: Optional[float] = None) -> Iterator[Result]:
        """Results in the order tasks end, until none comes within ``timeout``
        (None: until the pool is shut down and every result was returned)."""
        h = self._h()
        cursor = c_uint64(0)
        while True:
            r = C.sized(C.CResult)
            try:
                self._wait_slices(lambda ms: lib.pool_next_completed(h, byref(cursor), ms, byref(r)), timeout)
            except (errors.TimeoutError, errors.NoMoreResultsError):
                return
            yield Result(r)

    def stats(self) -> Dict[str, int]:
        s = C.sized(C.PoolStats)
        lib.pool_stats_get(self._h(), byref(s))
        return {k: getattr(s, k) for k, _ in C.PoolStats._fields_ if k != "struct_size"}

    # -- ending --

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting tasks. With ``wait``, waits for the tasks to end
        (``cancel_futures`` cancels the unfinished ones first) and frees the
        pool. Ctrl-C while waiting cancels everything, then re-raises."""
        with self._close_lock:
            h = self._handle
            if h is None:
                return
            mode = C.SHUTDOWN_ABORT if cancel_futures else C.SHUTDOWN_DRAIN
            if not wait:
                try:
                    lib.pool_shutdown(h, mode, 0)
                except errors.TimeoutError:
                    return
            else:
                try:
                    self._wait_slices(lambda ms: lib.pool_shutdown(h, mode, ms), None)
                except BaseException:
                    # Interrupted: stop what is left, then let the interrupt through.
                    try:
                        self._wait_slices(lambda ms: lib.pool_shutdown(h, C.SHUTDOWN_ABORT, ms), 10.0)
                    except errors.TimeoutError:
                        raise
                    finally:
                        self._destroy()
                    raise
            self._destroy()

    def _destroy(self) -> None:
        h = self._handle
        if h is None:
            return
        try:
            lib.pool_destroy(h)
        except errors.BusyError:
            return  # work still in flight (a callable that ignores cancellation): keep everything alive
        self._handle = None
        for k in self._batch_keys:
            _ENTRIES.pop(k, None)
        self._batch_keys.clear()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def close(self) -> None:
        """Waits for every task, then frees the pool (same as shutdown())."""
        self.shutdown(wait=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)

    def __repr__(self) -> str:
        if self._handle is None:
            return "<Pool closed>"
        s = self.stats()
        return f"<Pool workers={s['workers']} submitted={s['submitted']} ended={s['ended']}>"


def _pack_rows(proc: Processor, rows: List[tuple], width: int) -> Tuple[Any, list]:
    """One tg_value array for every row: rows[i] goes to values[i*width ..]."""
    n = len(rows)
    values = (C.Value * max(1, n * width))()
    keep: list = [values]
    for i, row in enumerate(rows):
        if len(row) != width:
            raise errors.ArgumentTypeError(
                f"{proc.name}: row {i} has {len(row)} arguments; the processor takes {width} {proc.signature}")
    if not width:
        return values, keep
    words = memoryview(values).cast("B").cast("Q")
    stride = _VALUE_SIZE // 8  # 3 words: (type, reserved), value, value2
    for j in range(width):
        declared = proc.types[j]
        column = [row[j] for row in rows]
        kinds = set(map(type, column))
        if kinds == {int} and declared != C.TYPE_BOOL:
            tag = declared if declared in C.INTEGER_TYPES else C.TYPE_I64
            try:
                packed = array("q", column)
            except OverflowError:
                packed = None
            if packed is not None:
                words[j * stride::stride * width] = array("Q", [tag]) * n
                words[j * stride + 1::stride * width] = memoryview(packed).cast("B").cast("Q")
                continue
        if kinds == {float}:
            tag = C.TYPE_FLOAT if declared == C.TYPE_FLOAT else C.TYPE_DOUBLE
            words[j * stride::stride * width] = array("Q", [tag]) * n
            words[j * stride + 1::stride * width] = memoryview(array("d", column)).cast("B").cast("Q")
            continue
        if kinds == {str}:
            enc = [s.encode("utf-8") for s in column]
            blob = b"\0".join(enc) + b"\0"
            if blob.count(b"\0") != n:
                bad = next(k for k, b in enumerate(enc) if b"\0" in b)
                raise errors.InvalidArgumentError(f"{proc.name}: row {bad} argument {j + 1} contains a NUL character")
            buf = ctypes.create_string_buffer(blob, len(blob))
            keep.append(buf)
            base = ctypes.addressof(buf)
            offsets = itertools.accumulate((len(b) + 1 for b in enc), initial=base)
            words[j * stride::stride * width] = array("Q", [C.TYPE_STRING]) * n
            words[j * stride + 1::stride * width] = array("Q", itertools.islice(offsets, n))
            continue
        for i, a in enumerate(column):  # mixed or other kinds: one at a time
            _set_value(values[i * width + j], a, declared, j, proc.name, keep)
    return values, keep


@atexit.register
def _close_all_at_exit() -> None:
    """Interpreter exit with work in flight: cancel it, give running tasks a
    moment to return, free what can be freed; never hang."""
    global _EXITING
    _EXITING = True
    with _LIVE_LOCK:
        pools = list(_LIVE)
    for pool in pools:
        h = pool._handle
        if h is None:
            continue
        try:
            lib.pool_shutdown(h, C.SHUTDOWN_ABORT, 2000)
            pool._destroy()
        except errors.TaskgateError:
            pass
