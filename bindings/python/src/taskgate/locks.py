"""Cross-process file locks and the parallel execution gates (seeds 000 and 003).

    with taskgate.FileLock("task-42", dir=".taskgate/locks", timeout=10):
        ...                       # no other process (or thread) holds task-42 here

    report = taskgate.validate([{"id": "a", "writes": ["out.txt"]},
                                {"id": "b", "writes": ["out.txt"]}])
    report["can_parallel"]        # False: a write-write conflict
    taskgate.suggest_batches(tasks)   # [["a"], ["b"]]

Lock files hold JSON about their holder (key, holder_id, pid, start_time,
host, acquired_at, timeout). A lock is taken over only from a holder that is
provably gone (its pid is gone or was reused) or past its own timeout; a live
holder is never robbed. Symbolic links, FIFOs and sockets at a lock path are
refused (:class:`UnsafePathError`); a filesystem without working locks raises
:class:`LockUnsupportedError`.
"""
from __future__ import annotations

import json
import os
import threading
from ctypes import byref, c_char_p, c_size_t, c_uint32, c_void_p
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from . import _capi as C
from . import errors
from ._capi import lib

__all__ = ["FileLock", "list_locks", "clean_stale_locks", "validate", "suggest_batches", "find_cycles",
           "DEFAULT_LOCK_DIR"]

DEFAULT_LOCK_DIR = ".taskgate/locks"


def _text(v: Any, what: str) -> bytes:
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if not isinstance(v, str) or not v:
        raise errors.InvalidArgumentError(f"{what} must be a non-empty string, got {v!r}")
    b = v.encode("utf-8")
    if b"\0" in b:
        raise errors.InvalidArgumentError(f"{what} {v!r} contains a NUL character")
    return b


def _seconds(v: Any, what: str, allow_none: bool = True) -> Optional[float]:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or v > 31_536_000:
        raise errors.InvalidArgumentError(f"{what} must be a number of seconds 0 .. a year or None, got {v!r}")
    return float(v)


class FileLock:
    """A cross-process lock on ``key`` (a task id, a path, any text) in ``dir``.

    ``timeout``: seconds to wait in ``acquire`` and ``with`` (None: forever,
    0: try once). ``hold_timeout``: after this many seconds other processes
    may take the lock over (None: never). ``shared=True`` takes a shared
    (reader) lock. One FileLock is one holder: use it from one thread at a
    time; two FileLocks on one key exclude each other even in one process.
    """

    def __init__(self, key: str, dir: Any = DEFAULT_LOCK_DIR, *, timeout: Optional[float] = None,
                 hold_timeout: Optional[float] = 300.0, shared: bool = False, holder_id: Optional[str] = None):
        self.key = key
        self.dir = os.fspath(dir) if isinstance(dir, os.PathLike) else dir
        self.timeout = _seconds(timeout, "timeout")
        hold = _seconds(hold_timeout, "hold_timeout")
        if hold == 0:
            raise errors.InvalidArgumentError("hold_timeout must be above 0 seconds, or None for no limit")
        o = C.sized(C.LockOptions)
        o.flags = C.LOCK_SHARED if shared else 0
        o.holder_id = _text(holder_id, "holder_id") if holder_id is not None else None
        o.hold_timeout_ms = -1 if hold is None else max(1, int(hold * 1000))
        h = c_void_p()
        lib.lock_open(_text(self.dir, "dir"), _text(key, "key"), byref(o), byref(h))
        self._handle: Optional[int] = h.value
        self._mutex = threading.Lock()

    def _h(self) -> int:
        if self._handle is None:
            raise errors.BadHandleError("the FileLock is closed", -3, "EBADHANDLE")
        return self._handle

    def acquire(self, timeout: Any = "default") -> "FileLock":
        """Takes the lock, waiting up to ``timeout`` seconds (the constructor's
        by default; None: forever; 0: try once). Raises :class:`LockedError`
        (naming the holder) when a live holder keeps it."""
        t = self.timeout if timeout == "default" else _seconds(timeout, "timeout")
        ms = -1 if t is None else int(t * 1000)
        with self._mutex:
            lib.lock_acquire(self._h(), ms)
        return self

    def release(self) -> None:
        """Releases the lock; :class:`InvalidArgumentError` if not held."""
        with self._mutex:
            lib.lock_release(self._h())

    @property
    def is_locked(self) -> bool:
        """True while held by this FileLock and its file is still the one at the path."""
        return self._handle is not None and lib.lock_held(self._handle) == 1

    @property
    def took_over(self) -> Optional[Dict[str, Any]]:
        """After an acquire that took the lock from a stale holder: that
        holder's metadata ({} when unreadable); None otherwise."""
        if self._handle is None:
            return None
        p = c_void_p()
        if lib.lock_took_over(self._handle, byref(p)) != 1:
            return None
        text = C.take_text(p)
        return json.loads(text) if text else {}

    def close(self) -> None:
        """Releases the lock if held and frees the handle (idempotent)."""
        h, self._handle = self._handle, None
        if h is not None:
            lib.lock_close(h)

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None and lib.lock_held(self._handle) == 1:
            self.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"FileLock({self.key!r}, dir={self.dir!r}, locked={self.is_locked})"


def _stale_ms(stale_after: Optional[float]) -> int:
    s = _seconds(stale_after, "stale_after")
    return 0 if s is None else int(s * 1000)


def list_locks(dir: Any = DEFAULT_LOCK_DIR, *, stale_after: Optional[float] = None) -> List[Dict[str, Any]]:
    """Every lock file in ``dir``: {"file", "state" ("free", "held", "shared",
    "stale", "unsafe"), holder fields, "stale_reason"...}. ``stale_after``
    judges held locks whose metadata cannot be read (None: never stale)."""
    p = c_void_p()
    lib.locks_list(_text(dir, "dir"), _stale_ms(stale_after), byref(p))
    return json.loads(C.take_text(p))


def clean_stale_locks(dir: Any = DEFAULT_LOCK_DIR, *, stale_after: Optional[float] = None) -> int:
    """Removes the free and stale lock files in ``dir`` (never a live
    holder's); returns how many stale locks were cleaned (seed 000's
    clean_all_stale_locks)."""
    n = c_size_t()
    lib.locks_clean(_text(dir, "dir"), _stale_ms(stale_after), byref(n), None)
    return n.value


# ---- gates --------------------------------------------------------------------

_TASK_KEYS = {"id", "depends_on", "reads", "writes", "shared", "difficulty"}


def _strings(v: Any, what: str) -> List[bytes]:
    if v is None:
        return []
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        raise errors.InvalidArgumentError(f"{what} must be a list of strings, got {v!r}")
    return [_text(x, what) for x in v]


def _gate_input(tasks: Iterable[Mapping[str, Any]], keep: List[Any]) -> Any:
    rows = list(tasks)
    arr = (C.GateTask * max(1, len(rows)))()
    for i, t in enumerate(rows):
        if not isinstance(t, Mapping):
            raise errors.InvalidArgumentError(f"task {i} must be a dict, got {t!r}")
        unknown = set(t) - _TASK_KEYS
        if unknown:
            raise errors.InvalidArgumentError(
                f"task {i}: unknown field {sorted(unknown)[0]!r} (known: {', '.join(sorted(_TASK_KEYS))})")
        if "id" not in t:
            raise errors.InvalidArgumentError(f"task {i}: 'id' is missing")
        g = arr[i]
        g.struct_size = C.ctypes.sizeof(C.GateTask)
        g.id = _text(t["id"], f"task {i} id")
        for field, cname in (("depends_on", "deps"), ("reads", "reads"), ("writes", "writes"), ("shared", "shared")):
            items = _strings(t.get(field), f"task {t['id']!r} {field}")
            if items:
                buf = (c_char_p * len(items))(*items)
                keep.append(buf)
                setattr(g, cname, C.ctypes.cast(buf, c_void_p))
                setattr(g, "n_" + cname, len(items))
        d = t.get("difficulty", 0)
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 1_000_000:
            raise errors.InvalidArgumentError(f"task {t['id']!r} difficulty must be an integer 0 .. 1000000, got {d!r}")
        g.difficulty = d
    if not rows:
        arr[0].struct_size = C.ctypes.sizeof(C.GateTask)
    return arr, len(rows)


def _gate_options(max_parallel_tasks: int, active_tasks: int, max_complexity: int, check_system: bool,
                  allow_read_write_overlap: bool, lock_dir: Any, base_dir: Any) -> Any:
    o = C.sized(C.GateOptions)
    for name, v, lo in (("max_parallel_tasks", max_parallel_tasks, 1), ("active_tasks", active_tasks, 0),
                        ("max_complexity", max_complexity, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 0xFFFFFFFF:
            raise errors.InvalidArgumentError(f"{name} must be an integer >= {lo}, got {v!r}")
    o.max_parallel_tasks, o.active_tasks, o.max_complexity = max_parallel_tasks, active_tasks, max_complexity
    o.flags = (C.GATE_CHECK_SYSTEM if check_system else 0) | (C.GATE_ALLOW_READ_WRITE_OVERLAP if allow_read_write_overlap else 0)
    o.lock_dir = _text(lock_dir, "lock_dir") if lock_dir is not None else None
    o.base_dir = _text(os.path.abspath(os.fspath(base_dir if base_dir is not None else os.getcwd())), "base_dir")
    return o


def validate(tasks: Iterable[Mapping[str, Any]], *, max_parallel_tasks: int = 5, active_tasks: int = 0,
             max_complexity: int = 30, check_system: bool = False, allow_read_write_overlap: bool = False,
             lock_dir: Any = None, base_dir: Any = None) -> Dict[str, Any]:
    """Seed 003's ``validate_parallel_group``: the report as a dict, the seed's
    fields ("can_parallel", "task_count", "file_conflicts", "circular_dependencies",
    "lock_issues", "resource_capacity", "context_budget", "recommendations")
    and more. Tasks are dicts with "id" and optional "depends_on", "reads",
    "writes", "shared", "difficulty"; relative paths are from ``base_dir``
    (the current directory). ``lock_dir``: report paths locked there now."""
    keep: List[Any] = []
    arr, n = _gate_input(tasks, keep)
    o = _gate_options(max_parallel_tasks, active_tasks, max_complexity, check_system, allow_read_write_overlap,
                      lock_dir, base_dir)
    p = c_void_p()
    lib.gate_validate(arr, n, byref(o), None, byref(p))
    return json.loads(C.take_text(p))


def suggest_batches(tasks: Iterable[Mapping[str, Any]], *, max_parallel_tasks: int = 5, max_complexity: int = 30,
                    allow_read_write_overlap: bool = False, base_dir: Any = None,
                    details: bool = False) -> Any:
    """Seed 003's ``suggest_execution_batches``: lists of task ids, each list
    safe to run in parallel, in an order that honours dependencies. With
    ``details=True``, the whole answer (notes, external dependencies).
    Raises :class:`CycleError` when the dependencies form a cycle."""
    keep: List[Any] = []
    arr, n = _gate_input(tasks, keep)
    o = _gate_options(max_parallel_tasks, 0, max_complexity, False, allow_read_write_overlap, None, base_dir)
    p = c_void_p()
    lib.gate_suggest(arr, n, byref(o), byref(p))
    out = json.loads(C.take_text(p))
    return out if details else out["batches"]


def find_cycles(n_nodes: int, edges: Sequence[Sequence[int]]) -> List[List[int]]:
    """Cycles of an integer graph (edge (a, b): a depends on b), one per
    cyclic strongly connected component; [] when acyclic."""
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 0:
        raise errors.InvalidArgumentError(f"n_nodes must be an integer >= 0, got {n_nodes!r}")
    m = len(edges)
    frm, to = (c_uint32 * max(1, m))(), (c_uint32 * max(1, m))()
    for i, e in enumerate(edges):
        a, b = e
        if not (isinstance(a, int) and isinstance(b, int)) or a < 0 or b < 0 or a > 0xFFFFFFFF or b > 0xFFFFFFFF:
            raise errors.InvalidArgumentError(f"edge {i} must be two node numbers >= 0, got {e!r}")
        frm[i], to[i] = a, b
    p = c_void_p()
    lib.gate_find_cycles(n_nodes, frm, to, m, None, byref(p))
    return json.loads(C.take_text(p))
