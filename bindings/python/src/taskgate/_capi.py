"""The C interface of libtaskgate, as ctypes sees it.

One declarative table (``_FUNCTIONS``) names every C function with its
argument types, result type, error check, and whether the call may block.
Calls that may block (waits, shutdown, plugin loading) release the GIL so
that worker threads can run Python callables meanwhile; the short ones
(submit, cancel, result reads) keep it: they never wait on a worker, and
keeping the GIL avoids a hand-over per call.

The library is found, in order: ``TASKGATE_LIBRARY`` (a path to another
libtaskgate.so), then the copy installed inside this package. Its version is
checked at import: the same major version, and a minor at least ours.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, Union, c_char_p, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, Tuple

from . import errors

BINDINGS_VERSION = (0, 7, 0)

# ---- status, types, flags (taskgate.h, taskgate_plugin.h) --------------------

STATUS_NAMES = {0: "pending", 1: "queued", 2: "running", 4: "succeeded", 5: "failed", 6: "timed_out",
                7: "cancelled", 8: "skipped", 9: "rejected"}
SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, SKIPPED, REJECTED = 4, 5, 6, 7, 8, 9
ENDED = frozenset({SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, SKIPPED, REJECTED})

# processor return codes
TASK_OK, TASK_FAILED, TASK_RETRY, TASK_PERMANENT = 0, 1, 2, 3

# tg_result.flags, by bit
RESULT_FLAGS = ("permanent", "retries_exhausted", "budget_exhausted", "breaker_open", "fallback",
                "credentials_exhausted", "exhausted_recovery", "limited", "rotated", "cache_hit", "cache_miss")
CACHE_NO_EXPIRY = -1

JITTERS = {"none": 0, "proportional": 1, "full": 2, "equal": 3, "decorrelated": 4}
RETRY_FAILED_IS_PERMANENT, RETRY_IGNORE_RETRY_AFTER = 1, 2
WINDOWS = {None: 0, "none": 0, "count": 1, "time": 2}
BREAKER_STATES = {0: "closed", 1: "open", 2: "half_open", 3: "forced_open", 4: "forced_closed"}
BREAKER_RESET, BREAKER_FORCE_OPEN, BREAKER_FORCE_CLOSED = 0, 1, 2

TYPE_I32, TYPE_U32, TYPE_I64, TYPE_U64, TYPE_DOUBLE, TYPE_BOOL, TYPE_STRING, TYPE_BYTES = 1, 2, 3, 4, 5, 6, 7, 8
TYPE_FLOAT, TYPE_I8, TYPE_U8, TYPE_I16, TYPE_U16 = 9, 10, 11, 12, 13
TYPE_NAMES = {1: "i32", 2: "u32", 3: "i64", 4: "u64", 5: "double", 6: "bool", 7: "string", 8: "bytes",
              9: "float", 10: "i8", 11: "u8", 12: "i16", 13: "u16"}
INTEGER_TYPES = frozenset({TYPE_I32, TYPE_U32, TYPE_I64, TYPE_U64, TYPE_I8, TYPE_U8, TYPE_I16, TYPE_U16})

TASK_CRITICAL = 1
POOL_ALLOW_READ_WRITE_OVERLAP = 1
SHUTDOWN_DRAIN, SHUTDOWN_ABORT = 0, 1
PROCESSOR_HAS_SETUP, PROCESSOR_HAS_CLEANUP = 1, 2

# ---- structs -------------------------------------------------------------------


RECOVER_FN = CFUNCTYPE(c_int, c_void_p, c_int, c_void_p)


class PoolOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("workers", c_uint32), ("max_concurrency", c_uint32),
                ("flags", c_uint32), ("clock", c_void_p), ("unhealthy_after", c_uint32),
                ("max_recoveries", c_uint32), ("recover", c_void_p), ("recover_user", c_void_p),
                ("lock_dir", c_char_p), ("lock_hold_timeout_ms", c_int64), ("lock_wait_ms", c_int64),
                ("cache_dir", c_char_p)]


LOCK_SHARED = 1
GATE_ALLOW_READ_WRITE_OVERLAP, GATE_CHECK_SYSTEM = 1, 2


class LockOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("flags", c_uint32), ("holder_id", c_char_p), ("hold_timeout_ms", c_int64)]


class GateTask(Structure):
    _fields_ = [("struct_size", c_uint32), ("id", c_char_p), ("deps", c_void_p), ("n_deps", c_size_t),
                ("reads", c_void_p), ("n_reads", c_size_t), ("writes", c_void_p), ("n_writes", c_size_t),
                ("shared", c_void_p), ("n_shared", c_size_t), ("difficulty", c_int32)]


class GateOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("flags", c_uint32), ("max_parallel_tasks", c_uint32),
                ("active_tasks", c_uint32), ("max_complexity", c_int64), ("cpu_threshold", c_double),
                ("memory_threshold", c_double), ("lock_dir", c_char_p), ("base_dir", c_char_p)]


class GroupOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("flags", c_uint32), ("min_required", c_uint32), ("reserved", c_uint32),
                ("min_fraction", c_double)]


class GroupOutcome(Structure):
    _fields_ = [("struct_size", c_uint32), ("state", c_int32), ("total", c_uint32), ("required", c_uint32),
                ("succeeded", c_uint32), ("failed", c_uint32), ("timed_out", c_uint32), ("rejected", c_uint32),
                ("cancelled", c_uint32), ("skipped", c_uint32), ("unfinished", c_uint32), ("partial_results", c_int32)]


class AggregateOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("kind", c_uint32), ("min_required", c_uint32), ("reserved", c_uint32),
                ("threshold", c_double)]


GROUP_CRITICAL = 1 << 0
GROUP_CANCEL_ALL = 1 << 1


class _Bytes(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class _ValueUnion(Union):
    _fields_ = [("i", c_int64), ("u", c_uint64), ("d", c_double), ("s", c_void_p), ("bytes", _Bytes)]


class Value(Structure):
    _fields_ = [("type", c_int32), ("reserved", c_uint32), ("as_", _ValueUnion)]


PROCESSOR_FN = CFUNCTYPE(c_int, c_void_p, c_void_p)
END_FN = CFUNCTYPE(None, c_void_p, c_uint64, c_int, c_void_p)


class TaskDesc(Structure):
    _fields_ = [("struct_size", c_uint32), ("priority", c_int32), ("id", c_char_p), ("fn", c_void_p),
                ("user", c_void_p), ("payload", c_char_p), ("payload_len", c_size_t),
                ("deps", POINTER(c_char_p)), ("n_deps", c_size_t), ("reads", POINTER(c_char_p)),
                ("n_reads", c_size_t), ("writes", POINTER(c_char_p)), ("n_writes", c_size_t),
                ("group", c_char_p), ("flags", c_uint32), ("difficulty", c_int32), ("timeout_ms", c_int64),
                ("processor", c_void_p), ("args", POINTER(Value)), ("n_args", c_size_t),
                ("on_end", c_void_p), ("policy", c_void_p), ("key", c_char_p),
                ("cache_ttl_ms", c_int64), ("cache_key", c_char_p)]


class CResult(Structure):
    _fields_ = [("struct_size", c_uint32), ("status", c_int32), ("seq", c_uint64), ("id", c_char_p),
                ("group", c_char_p), ("output", c_void_p), ("output_len", c_size_t), ("error", c_char_p),
                ("attempts", c_uint32), ("worker", c_int32), ("submit_ns", c_int64), ("start_ns", c_int64),
                ("end_ns", c_int64), ("queue_ns", c_int64), ("flags", c_uint32), ("status_code", c_int32),
                ("retry_delays_ns", POINTER(c_int64)), ("n_retry_delays", c_size_t), ("cache_reason", c_char_p)]


class PoolStats(Structure):
    _fields_ = [("struct_size", c_uint32), ("workers", c_uint32), ("submitted", c_uint64),
                ("ended", c_uint64), ("succeeded", c_uint64), ("failed", c_uint64),
                ("timed_out", c_uint64), ("cancelled", c_uint64), ("skipped", c_uint64),
                ("rejected", c_uint64)]


class PluginInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_processors", c_uint32), ("name", c_char_p),
                ("version", c_char_p), ("description", c_char_p), ("path", c_char_p),
                ("abi_major", c_uint32), ("abi_minor", c_uint32)]


class ProcessorInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_args", c_uint32), ("name", c_char_p),
                ("description", c_char_p), ("arg_types", POINTER(c_uint8)), ("signature", c_char_p),
                ("flags", c_uint32), ("reserved", c_uint32)]


class Credential(Structure):
    _fields_ = [("struct_size", c_uint32), ("index", c_uint32), ("key", c_char_p), ("base_url", c_char_p),
                ("model", c_char_p)]


class RetryOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("max_attempts", c_uint32), ("base_delay_ms", c_int64),
                ("multiplier", c_double), ("max_delay_ms", c_int64), ("jitter", c_int32), ("flags", c_uint32),
                ("jitter_factor", c_double), ("delays_ms", POINTER(c_int64)), ("n_delays", c_size_t),
                ("budget_ratio", c_double), ("budget_window_ms", c_int64), ("budget_min_per_second", c_double)]


class BreakerOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("failure_threshold", c_uint32), ("success_threshold", c_uint32),
                ("half_open_calls", c_uint32), ("open_ms", c_int64), ("window", c_uint32),
                ("window_size", c_uint32), ("minimum_calls", c_uint32), ("reserved", c_uint32),
                ("failure_rate", c_double), ("slow_call_ms", c_int64), ("slow_call_rate", c_double)]


class LimitOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("max_concurrent", c_uint32), ("requests_per_minute", c_double),
                ("cost", c_double), ("burst", c_double)]


class PolicyOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("reserved", c_uint32), ("retry", POINTER(RetryOptions)),
                ("breaker", POINTER(BreakerOptions)), ("limit", POINTER(LimitOptions)), ("credentials", c_void_p),
                ("fallback_fn", c_void_p), ("fallback", c_void_p), ("seed", c_uint64)]


class BreakerState(Structure):
    _fields_ = [("struct_size", c_uint32), ("state", c_int32), ("generation", c_uint64),
                ("consecutive_failures", c_uint32), ("half_open_successes", c_uint32),
                ("probes_admitted", c_uint32), ("window_calls", c_uint32), ("window_failures", c_uint32),
                ("window_slow", c_uint32), ("opened_at_ns", c_int64), ("rejected", c_uint64),
                ("times_opened", c_uint64)]


class CredentialsStatus(Structure):
    _fields_ = [("struct_size", c_uint32), ("count", c_uint32), ("current", c_uint32), ("available", c_uint32),
                ("exhausted", c_uint32), ("cooling_down", c_uint32)]


class WorkerHealth(Structure):
    _fields_ = [("struct_size", c_uint32), ("healthy", c_int32), ("consecutive_failures", c_uint32),
                ("recovery_attempts", c_uint32), ("total_recoveries", c_uint32), ("last_status_code", c_int32),
                ("failures", c_uint64)]


def sized(cls: Any) -> Any:
    """A struct with its struct_size set, as the *_INIT macros do."""
    s = cls()
    s.struct_size = ctypes.sizeof(cls)
    return s


# ---- loading -------------------------------------------------------------------


def _library_path() -> str:
    given = os.environ.get("TASKGATE_LIBRARY")
    if given:
        if not os.path.isfile(given):
            raise ImportError(f"taskgate: TASKGATE_LIBRARY={given!r} is not a file")
        return given
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libtaskgate.so")
    if not os.path.isfile(here):
        raise ImportError(
            f"taskgate: the package has no libtaskgate.so ({here}); install it with "
            "`pip install ./bindings/python` after `make lib`, or set TASKGATE_LIBRARY")
    return here


def _open(path: str) -> Tuple[ctypes.CDLL, ctypes.PyDLL]:
    try:
        blocking = ctypes.CDLL(path)
        fast = ctypes.PyDLL(path)
    except OSError as e:
        raise ImportError(f"taskgate: cannot load {path}: {e}") from None
    return blocking, fast


LIBRARY_PATH = _library_path()
_blocking_lib, _fast_lib = _open(LIBRARY_PATH)


def _check_version() -> str:
    try:
        version = _fast_lib.tg_version
        version_string = _fast_lib.tg_version_string
    except AttributeError:
        raise ImportError(f"taskgate: {LIBRARY_PATH} is not libtaskgate (it has no tg_version)") from None
    version.restype, version.argtypes = c_int, []
    version_string.restype, version_string.argtypes = c_char_p, []
    number = version()
    text = version_string().decode()
    major, minor = number // 10000, number // 100 % 100
    want = BINDINGS_VERSION
    if major != want[0] or minor < want[1]:
        raise ImportError(
            f"taskgate: {LIBRARY_PATH} is libtaskgate {text}, but these bindings ({'.'.join(map(str, want))}) "
            f"need {want[0]}.{want[1]} or a later {want[0]}.x; install matching bindings, or point "
            "TASKGATE_LIBRARY at a matching library")
    return text


LIBRARY_VERSION = _check_version()

# ---- the function table --------------------------------------------------------

_last_error: Callable[[], bytes] = _fast_lib.tg_last_error
_last_error.restype, _last_error.argtypes = c_char_p, []
_error_name = _fast_lib.tg_error_name
_error_name.restype, _error_name.argtypes = c_char_p, [c_int]


def check(rc: int, func: Any, args: Any) -> int:
    """errcheck for every int-returning call: negative codes raise."""
    if rc < 0:
        raise errors.error_for(rc, _last_error().decode(errors="replace"), _error_name(rc).decode())
    return rc


P = c_void_p
_u64p = POINTER(c_uint64)
_sizep = POINTER(c_size_t)
# (name, argtypes, restype, checked, blocks)
_FUNCTIONS = [
    ("tg_strerror", [c_int], c_char_p, False, False),
    ("tg_status_name", [c_int], c_char_p, False, False),
    ("tg_type_name", [c_int], c_char_p, False, False),
    ("tg_pool_create", [POINTER(PoolOptions), POINTER(P)], c_int, True, False),
    ("tg_pool_shutdown", [P, c_int, c_int64], c_int, True, True),
    ("tg_pool_destroy", [P], c_int, True, True),
    ("tg_pool_submit", [P, POINTER(TaskDesc), _u64p], c_int, True, False),
    ("tg_pool_submit_batch", [P, c_void_p, c_size_t, _u64p], c_int, True, False),
    ("tg_pool_wait", [P, c_char_p, c_int64], c_int, True, True),
    ("tg_pool_wait_group", [P, c_char_p, c_int64], c_int, True, True),
    ("tg_pool_wait_all", [P, c_int64], c_int, True, True),
    ("tg_pool_wait_range", [P, c_uint64, c_size_t, c_int64], c_int, True, True),
    ("tg_pool_cancel", [P, c_char_p], c_int, True, False),
    ("tg_pool_cancel_at", [P, c_uint64], c_int, True, False),
    ("tg_pool_cancel_group", [P, c_char_p, _sizep], c_int, True, False),
    ("tg_pool_cancel_all", [P, _sizep], c_int, True, False),
    ("tg_pool_result", [P, c_char_p, POINTER(CResult)], c_int, True, False),
    ("tg_pool_result_at", [P, c_uint64, POINTER(CResult)], c_int, True, False),
    ("tg_pool_next_completed", [P, _u64p, c_int64, POINTER(CResult)], c_int, True, True),
    ("tg_pool_stats_get", [P, POINTER(PoolStats)], c_int, True, False),
    ("tg_plugin_load", [P, c_char_p, POINTER(P)], c_int, True, True),
    ("tg_plugin_unload", [P, P], c_int, True, True),
    ("tg_plugin_get_info", [P, POINTER(PluginInfo)], c_int, True, False),
    ("tg_plugin_processor_at", [P, c_uint32, POINTER(P)], c_int, True, False),
    ("tg_pool_find_processor", [P, c_char_p, POINTER(P)], c_int, True, False),
    ("tg_processor_get_info", [P, POINTER(ProcessorInfo)], c_int, True, False),
    ("tg_task_set_error", [P, c_char_p], c_int, True, False),
    ("tg_task_set_output", [P, c_void_p, c_size_t], c_int, True, False),
    ("tg_task_cancelled", [P], c_int, False, False),
    ("tg_task_id", [P], c_char_p, False, False),
    ("tg_task_worker", [P], c_int, False, False),
    ("tg_pool_try_submit", [P, POINTER(TaskDesc), _u64p], c_int, True, False),
    ("tg_task_attempt", [P], c_int, False, False),
    ("tg_task_set_status_code", [P, c_int32], c_int, True, False),
    ("tg_task_set_retry_after", [P, c_int64], c_int, True, False),
    ("tg_task_credential", [P, POINTER(Credential)], c_int, False, False),
    ("tg_clock_create_virtual", [c_int64, POINTER(P)], c_int, True, False),
    ("tg_clock_advance", [P, c_int64], c_int, True, False),
    ("tg_clock_now", [P, POINTER(c_int64)], c_int, True, False),
    ("tg_clock_destroy", [P], c_int, True, False),
    ("tg_policy_create", [P, POINTER(PolicyOptions), POINTER(P)], c_int, True, False),
    ("tg_pool_set_policy", [P, c_char_p, P], c_int, True, False),
    ("tg_policy_breaker_state", [P, c_char_p, POINTER(BreakerState)], c_int, True, False),
    ("tg_policy_breaker_command", [P, c_char_p, c_int], c_int, True, False),
    ("tg_credentials_create", [P, POINTER(Credential), c_size_t, c_int64, POINTER(P)], c_int, True, False),
    ("tg_credentials_from_env", [P, c_char_p, c_int64, POINTER(P)], c_int, True, False),
    ("tg_credentials_status_get", [P, POINTER(CredentialsStatus)], c_int, True, False),
    ("tg_pool_worker_health", [P, c_uint32, POINTER(WorkerHealth)], c_int, True, False),
    ("tg_lock_open", [c_char_p, c_char_p, POINTER(LockOptions), POINTER(P)], c_int, True, False),
    ("tg_lock_acquire", [P, c_int64], c_int, True, True),
    ("tg_lock_release", [P], c_int, True, False),
    ("tg_lock_held", [P], c_int, False, False),
    ("tg_lock_took_over", [P, POINTER(c_void_p)], c_int, False, False),
    ("tg_lock_close", [P], c_int, True, False),
    ("tg_locks_list", [c_char_p, c_int64, POINTER(c_void_p)], c_int, True, False),
    ("tg_locks_clean", [c_char_p, c_int64, _sizep, POINTER(c_void_p)], c_int, True, False),
    ("tg_gate_validate", [c_void_p, c_size_t, POINTER(GateOptions), POINTER(c_int), POINTER(c_void_p)], c_int, True, False),
    ("tg_gate_suggest", [c_void_p, c_size_t, POINTER(GateOptions), POINTER(c_void_p)], c_int, True, False),
    ("tg_gate_find_cycles", [c_size_t, c_void_p, c_void_p, c_size_t, _sizep, POINTER(c_void_p)], c_int, True, False),
    ("tg_pool_set_group", [P, c_char_p, POINTER(GroupOptions)], c_int, True, False),
    ("tg_pool_group_outcome", [P, c_char_p, POINTER(GroupOutcome), POINTER(c_void_p)], c_int, True, False),
    ("tg_aggregate", [c_void_p, c_size_t, POINTER(AggregateOptions), POINTER(c_void_p)], c_int, True, False),
    ("tg_pool_aggregate", [P, c_char_p, POINTER(AggregateOptions), POINTER(c_void_p)], c_int, True, False),
    ("tg_free", [c_void_p], None, False, False),
]


def take_text(p: c_void_p) -> str:
    """Library-made text as str, freed with tg_free."""
    if not p.value:
        return ""
    try:
        return ctypes.string_at(p.value).decode("utf-8", errors="replace")
    finally:
        lib.free(p)


class _Lib:
    """Attribute access to the table's functions, configured once."""

    def __init__(self) -> None:
        self.fn: Dict[str, Any] = {}
        for name, argtypes, restype, checked, blocks in _FUNCTIONS:
            try:
                f = getattr(_blocking_lib if blocks else _fast_lib, name)
            except AttributeError:
                raise ImportError(f"taskgate: {LIBRARY_PATH} lacks {name}") from None
            f.argtypes, f.restype = argtypes, restype
            if checked:
                f.errcheck = check
            setattr(self, name[3:], f)  # tg_pool_submit -> lib.pool_submit


lib: Any = _Lib()
