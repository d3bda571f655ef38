"""Resilience from Python: retries with backoff, circuit breakers, limits,
credential rings, a virtual clock, and the running task's context.

    clock = taskgate.VirtualClock()
    with taskgate.Pool(workers=4, clock=clock) as pool:
        api = pool.policy(retry=taskgate.Retry(max_attempts=5, base_delay=0.1),
                          breaker=taskgate.Breaker(failure_threshold=5, open_for=60),
                          limit=taskgate.Limit(max_concurrent=2, requests_per_minute=600),
                          credentials=pool.credentials_from_env("OPENAI_API_KEY"))
        fut = pool.submit(call_api, url, policy=api, key="api.example.com")

Times are seconds (floats) here, as everywhere in the Python door; the
library keeps them in milliseconds and nanoseconds. The options mirror
``tg_retry_options``, ``tg_breaker_options`` and ``tg_limit_options`` in
taskgate.h, with the same defaults (the seeds': 3 attempts, 1 s doubling to
60 s with +-10% jitter; a breaker opened by 5 failures for 60 s and closed
by 2 successes). A policy lives as long as its pool.
"""
from __future__ import annotations

import ctypes
import math
from ctypes import byref, c_int64, c_void_p
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Union

from . import _capi as C
from . import errors
from ._capi import lib

if TYPE_CHECKING:  # pragma: no cover
    from .pool import Pool, Processor

__all__ = ["Retry", "Breaker", "Limit", "Policy", "Credentials", "Credential", "VirtualClock", "BreakerState",
           "WorkerHealth", "TaskContext", "current_task"]

_YEAR = 31_536_000.0


def _seconds(v: Any, what: str, *, allow_zero: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or v > _YEAR \
            or (not allow_zero and v == 0):
        lo = ">= 0" if allow_zero else "> 0"
        raise errors.InvalidArgumentError(f"{what} must be a number of seconds {lo} (at most a year), got {v!r}")
    return float(v)


def _ms(v: Any, what: str, *, allow_zero: bool = True) -> int:
    s = _seconds(v, what, allow_zero=allow_zero)
    ms = int(round(s * 1000))
    return max(ms, 0 if allow_zero or s == 0 else 1)


def _count(v: Any, what: str, lo: int = 0, hi: int = 0xFFFFFFFF) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise errors.InvalidArgumentError(f"{what} must be an integer {lo} .. {hi}, got {v!r}")
    return v


def _number(v: Any, what: str, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or not lo <= v <= hi:
        raise errors.InvalidArgumentError(f"{what} must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


# ---- options ---------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """How a failed task is tried again.

    The k-th retry waits ``min(max_delay, base_delay * multiplier**(k-1))``,
    or ``delays[k-1]`` (the last repeating) when ``delays`` is given; then
    ``jitter`` ("none", "proportional" (+-jitter_factor, the seeds' 10%),
    "full", "equal", "decorrelated") and a clamp to [0, max_delay]. A
    ``retry_after`` a task reports replaces it (unless
    ``ignore_retry_after``). ``failed_is_permanent``: only
    :class:`taskgate.Retryable` is retried, other exceptions end the task.
    A budget (``budget_ratio`` > 0) lets retries be at most that share of the
    first calls of the last ``budget_window`` seconds, plus
    ``budget_min_per_second``.
    """
    max_attempts: int = 3
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: str = "proportional"
    jitter_factor: float = 0.1
    delays: Optional[Sequence[float]] = None
    failed_is_permanent: bool = False
    ignore_retry_after: bool = False
    budget_ratio: float = 0.0
    budget_window: float = 10.0
    budget_min_per_second: float = 10.0

    def _c(self, keep: list) -> C.RetryOptions:
        o = C.sized(C.RetryOptions)
        o.max_attempts = _count(self.max_attempts, "Retry.max_attempts", 1, 1_000_000)
        o.base_delay_ms = _ms(self.base_delay, "Retry.base_delay")
        o.multiplier = _number(self.multiplier, "Retry.multiplier", 1.0, 1e6)
        o.max_delay_ms = _ms(self.max_delay, "Retry.max_delay")
        if self.jitter not in C.JITTERS:
            raise errors.InvalidArgumentError(
                f"Retry.jitter must be one of {', '.join(map(repr, C.JITTERS))}, got {self.jitter!r}")
        o.jitter = C.JITTERS[self.jitter]
        o.jitter_factor = _number(self.jitter_factor, "Retry.jitter_factor", 0.0, 1.0)
        o.flags = (C.RETRY_FAILED_IS_PERMANENT if self.failed_is_permanent else 0) | \
            (C.RETRY_IGNORE_RETRY_AFTER if self.ignore_retry_after else 0)
        if self.delays is not None:
            if isinstance(self.delays, (str, bytes)) or not isinstance(self.delays, Iterable):
                raise errors.InvalidArgumentError(f"Retry.delays must be a list of seconds, got {self.delays!r}")
            ms = [_ms(d, f"Retry.delays[{k}]") for k, d in enumerate(self.delays)]
            if not ms:
                raise errors.InvalidArgumentError("Retry.delays is empty: give at least one delay, or None")
            arr = (c_int64 * len(ms))(*ms)
            keep.append(arr)
            o.delays_ms, o.n_delays = ctypes.cast(arr, ctypes.POINTER(c_int64)), len(ms)
        o.budget_ratio = _number(self.budget_ratio, "Retry.budget_ratio", 0.0, 1e6)
        o.budget_window_ms = _ms(self.budget_window, "Retry.budget_window")
        o.budget_min_per_second = _number(self.budget_min_per_second, "Retry.budget_min_per_second", 0.0, 1e9)
        return o


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker per key (seed 004 section 6).

    Opens after ``failure_threshold`` failures in a row, or when the
    ``window`` ("count": the last ``window_size`` calls; "time": the calls of
    the last ``window_size`` seconds) holds at least ``minimum_calls`` and
    its failure share reaches ``failure_rate`` (or its share of calls taking
    ``slow_call`` seconds or more reaches ``slow_call_rate``). Stays open
    ``open_for`` seconds, then admits ``half_open_calls`` probes
    (default: ``success_threshold``); ``success_threshold`` successes close it.
    """
    failure_threshold: int = 5
    success_threshold: int = 2
    half_open_calls: int = 0
    open_for: float = 60.0
    window: Optional[str] = None
    window_size: int = 0
    minimum_calls: int = 10
    failure_rate: float = 0.0
    slow_call: float = 0.0
    slow_call_rate: float = 0.0

    def _c(self) -> C.BreakerOptions:
        o = C.sized(C.BreakerOptions)
        o.failure_threshold = _count(self.failure_threshold, "Breaker.failure_threshold")
        o.success_threshold = _count(self.success_threshold, "Breaker.success_threshold", 1)
        o.half_open_calls = _count(self.half_open_calls, "Breaker.half_open_calls")
        o.open_ms = _ms(self.open_for, "Breaker.open_for")
        if self.window not in C.WINDOWS:
            raise errors.InvalidArgumentError(f"Breaker.window must be None, 'count' or 'time', got {self.window!r}")
        o.window = C.WINDOWS[self.window]
        o.window_size = _count(self.window_size, "Breaker.window_size")
        o.minimum_calls = _count(self.minimum_calls, "Breaker.minimum_calls")
        o.failure_rate = _number(self.failure_rate, "Breaker.failure_rate", 0.0, 1.0)
        o.slow_call_ms = _ms(self.slow_call, "Breaker.slow_call")
        o.slow_call_rate = _number(self.slow_call_rate, "Breaker.slow_call_rate", 0.0, 1.0)
        return o


@dataclass(frozen=True)
class Limit:
    """Limits per key (seed 002): at most ``max_concurrent`` tasks of a key
    running at once (0: no limit), and a token bucket refilled with
    ``requests_per_minute`` tokens a minute (0: no rate limit), holding
    ``burst`` (default: requests_per_minute), of which each call takes
    ``cost``. A task waiting for a limit holds no worker."""
    max_concurrent: int = 0
    requests_per_minute: float = 0.0
    cost: float = 1.0
    burst: float = 0.0

    def _c(self) -> C.LimitOptions:
        o = C.sized(C.LimitOptions)
        o.max_concurrent = _count(self.max_concurrent, "Limit.max_concurrent")
        o.requests_per_minute = _number(self.requests_per_minute, "Limit.requests_per_minute", 0.0, 1e12)
        o.cost = _number(self.cost, "Limit.cost", 0.0, 1e12)
        o.burst = _number(self.burst, "Limit.burst", 0.0, 1e12)
        return o


# ---- states ----------------------------------------------------------------------


@dataclass(frozen=True)
class BreakerState:
    """A breaker as of now on the pool's clock: ``state`` is "closed", "open",
    "half_open", "forced_open" or "forced_closed"."""
    state: str
    generation: int
    consecutive_failures: int
    half_open_successes: int
    probes_admitted: int
    window_calls: int
    window_failures: int
    window_slow: int
    opened_at_ns: int
    rejected: int
    times_opened: int


@dataclass(frozen=True)
class WorkerHealth:
    """One worker's health (seed 000 WorkerHealthState)."""
    worker: int
    healthy: bool
    consecutive_failures: int
    recovery_attempts: int
    total_recoveries: int
    last_status_code: Optional[int]
    failures: int


# ---- credentials -------------------------------------------------------------------


class Credential:
    """One credential: ``key`` (the secret), ``base_url``, ``model``,
    ``index`` in its ring. Its repr never shows the key."""
    __slots__ = ("key", "base_url", "model", "index")

    def __init__(self, key: str, base_url: Optional[str] = None, model: Optional[str] = None, index: int = 0):
        self.key, self.base_url, self.model, self.index = key, base_url, model, index

    def __repr__(self) -> str:
        extra = "".join(f" {k}={getattr(self, k)!r}" for k in ("base_url", "model") if getattr(self, k))
        return f"<Credential {self.index} key=[redacted]{extra}>"

    __str__ = __repr__


def _text(v: Any, what: str, *, optional: bool = False) -> Optional[bytes]:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise errors.InvalidArgumentError(f"{what} must be a non-empty string")  # never echo a secret
    b = v.encode("utf-8")
    if b"\0" in b:
        raise errors.InvalidArgumentError(f"{what} contains a NUL character")
    return b


class Credentials:
    """A ring of credentials in a pool (``Pool.credentials``,
    ``Pool.credentials_from_env``). Tasks under a policy holding it read
    theirs with ``taskgate.current_task().credential``; a 429, 401, 403 or a
    message with "quota" rotates to the next; "daily quota" retires one; a 429
    rests one for its retry-after (else ``cooldown`` seconds)."""

    def __init__(self, pool: "Pool", handle: int):
        self._pool, self._handle = pool, handle

    def status(self) -> Dict[str, int]:
        """{count, current, available, exhausted, cooling_down}."""
        self._pool._h()
        s = C.sized(C.CredentialsStatus)
        lib.credentials_status_get(self._handle, byref(s))
        return {k: getattr(s, k) for k, _ in C.CredentialsStatus._fields_ if k != "struct_size"}

    def __repr__(self) -> str:
        if self._pool.closed:
            return "<Credentials (pool closed)>"
        s = self.status()
        return f"<Credentials {s['available']}/{s['count']} available, current {s['current']}>"


def _make_credentials(pool: "Pool", items: Sequence[Any], cooldown: Optional[float]) -> Credentials:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        raise errors.InvalidArgumentError("credentials: give a non-empty list of keys, dicts or Credential")
    arr = (C.Credential * len(items))()
    keep: list = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            item = Credential(item)
        elif isinstance(item, Mapping):
            unknown = set(item) - {"key", "base_url", "model"}
            if unknown:
                raise errors.InvalidArgumentError(f"credentials[{k}]: unknown field(s) {sorted(unknown)}")
            item = Credential(item.get("key"), item.get("base_url"), item.get("model"))  # type: ignore[arg-type]
        elif not isinstance(item, Credential):
            raise errors.InvalidArgumentError(
                f"credentials[{k}] is a {type(item).__name__}; give a key string, a dict or a Credential")
        c = arr[k]
        c.struct_size = ctypes.sizeof(C.Credential)
        fields = (_text(item.key, f"credentials[{k}].key"),
                  _text(item.base_url, f"credentials[{k}].base_url", optional=True),
                  _text(item.model, f"credentials[{k}].model", optional=True))
        keep.extend(fields)
        c.key, c.base_url, c.model = fields
    out = c_void_p()
    lib.credentials_create(pool._h(), arr, len(items), _cooldown(cooldown), byref(out))
    return Credentials(pool, out.value)  # type: ignore[arg-type]


def _cooldown(cooldown: Optional[float]) -> int:
    return -1 if cooldown is None else _ms(cooldown, "cooldown")


def _credentials_from_env(pool: "Pool", prefix: str, cooldown: Optional[float]) -> Credentials:
    out = c_void_p()
    lib.credentials_from_env(pool._h(), _text(prefix, "prefix"), _cooldown(cooldown), byref(out))
    return Credentials(pool, out.value)  # type: ignore[arg-type]


# ---- policies ----------------------------------------------------------------------


class Policy:
    """A policy made in a pool (``Pool.policy``): pass it to ``submit``,
    ``batch`` or ``Pool.set_policy``. Breakers are per key: the task's
    ``key``, else a plugin task's processor name, else "" (one per policy)."""

    def __init__(self, pool: "Pool", handle: int, retry: Optional[Retry], breaker: Optional[Breaker],
                 limit: Optional[Limit], credentials: Optional[Credentials], fallback: Any, keep: list):
        self._pool, self._handle = pool, handle
        self.retry, self.breaker_options, self.limit, self.credentials = retry, breaker, limit, credentials
        self.fallback = fallback
        self._keep = keep  # the fallback callback must live as long as the pool

    def breaker(self, key: Optional[str] = None) -> BreakerState:
        """The breaker of ``key`` now (a key no task used yet reads closed)."""
        from .pool import _name
        self._pool._h()
        s = C.sized(C.BreakerState)
        lib.policy_breaker_state(self._handle, _name(key, "key") if key else None, byref(s))
        return BreakerState(C.BREAKER_STATES.get(s.state, "unknown"), s.generation, s.consecutive_failures,
                            s.half_open_successes, s.probes_admitted, s.window_calls, s.window_failures,
                            s.window_slow, s.opened_at_ns, s.rejected, s.times_opened)

    def _command(self, key: Optional[str], command: int) -> None:
        from .pool import _name
        self._pool._h()
        lib.policy_breaker_command(self._handle, _name(key, "key") if key else None, command)

    def reset(self, key: Optional[str] = None) -> None:
        """Closes the breaker of ``key`` and clears its counts."""
        self._command(key, C.BREAKER_RESET)

    def force_open(self, key: Optional[str] = None) -> None:
        """Refuses every call of ``key`` until the next command."""
        self._command(key, C.BREAKER_FORCE_OPEN)

    def force_closed(self, key: Optional[str] = None) -> None:
        """Admits every call of ``key`` until the next command."""
        self._command(key, C.BREAKER_FORCE_CLOSED)

    def __repr__(self) -> str:
        parts = [n for n, v in (("retry", self.retry), ("breaker", self.breaker_options), ("limit", self.limit),
                                ("credentials", self.credentials), ("fallback", self.fallback)) if v is not None]
        return f"<Policy {' '.join(parts) or 'empty'}>"


def _make_policy(pool: "Pool", retry: Optional[Retry], breaker: Optional[Breaker], limit: Optional[Limit],
                 credentials: Optional[Credentials], fallback: Any, seed: int) -> Policy:
    from .pool import Processor, _fallback_callback
    for name, v, cls in (("retry", retry, Retry), ("breaker", breaker, Breaker), ("limit", limit, Limit),
                         ("credentials", credentials, Credentials)):
        if v is not None and not isinstance(v, cls):
            raise errors.InvalidArgumentError(f"{name} must be a taskgate.{cls.__name__} or None, got {v!r}")
    if credentials is not None and credentials._pool is not pool:
        raise errors.InvalidArgumentError("credentials belong to another pool")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < (1 << 64):
        raise errors.InvalidArgumentError(f"seed must be an integer 0 .. 2**64-1, got {seed!r}")
    keep: list = []
    o = C.sized(C.PolicyOptions)
    if retry is not None:
        r = retry._c(keep)
        keep.append(r)
        o.retry = ctypes.pointer(r)
    if breaker is not None:
        b = breaker._c()
        keep.append(b)
        o.breaker = ctypes.pointer(b)
    if limit is not None:
        lo = limit._c()
        keep.append(lo)
        o.limit = ctypes.pointer(lo)
    if credentials is not None:
        o.credentials = credentials._handle
    long_lived: list = []
    if fallback is not None:
        if isinstance(fallback, str):
            fallback = pool.processor(fallback)
        if isinstance(fallback, Processor):
            if fallback._pool is not pool:
                raise errors.InvalidArgumentError(f"fallback processor {fallback.name} belongs to another pool")
            o.fallback = fallback._ptr
        elif callable(fallback):
            cb = _fallback_callback(fallback)
            long_lived.append(cb)
            o.fallback_fn = ctypes.cast(cb, c_void_p).value
        else:
            raise errors.InvalidArgumentError(
                f"fallback must be a callable, a Processor or a processor name, got {type(fallback).__name__}")
    o.seed = seed
    out = c_void_p()
    lib.policy_create(pool._h(), byref(o), byref(out))
    return Policy(pool, out.value, retry, breaker, limit, credentials, fallback, long_lived)  # type: ignore[arg-type]


# ---- the virtual clock ---------------------------------------------------------------


class VirtualClock:
    """A clock that moves only when told (``advance``): give it to
    ``Pool(clock=...)`` and retry delays, breakers, limits and cool-downs run
    on it, so tests of them are exact and instant. Timeouts stay on real
    time. ``now_ns`` is its reading."""

    def __init__(self, start_ns: int = 0):
        if isinstance(start_ns, bool) or not isinstance(start_ns, int) or not 0 <= start_ns < (1 << 62):
            raise errors.InvalidArgumentError(f"start_ns must be an integer 0 .. 2**62, got {start_ns!r}")
        h = c_void_p()
        lib.clock_create_virtual(start_ns, byref(h))
        self._handle: Optional[int] = h.value

    def _h(self) -> int:
        if self._handle is None:
            raise errors.BadHandleError("the clock is closed", -3, "EBADHANDLE")
        return self._handle

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        """Moves the clock forward by ``seconds`` plus ``ns`` nanoseconds."""
        if isinstance(ns, bool) or not isinstance(ns, int) or ns < 0:
            raise errors.InvalidArgumentError(f"ns must be an integer >= 0, got {ns!r}")
        total = int(round(_seconds(seconds, "seconds") * 1e9)) + ns
        lib.clock_advance(self._h(), total)

    @property
    def now_ns(self) -> int:
        v = c_int64()
        lib.clock_now(self._h(), byref(v))
        return v.value

    def now(self) -> float:
        """The reading in seconds."""
        return self.now_ns / 1e9

    def close(self) -> None:
        """Drops this reference (pools using it keep their own)."""
        h, self._handle = self._handle, None
        if h is not None:
            lib.clock_destroy(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return "<VirtualClock closed>" if self._handle is None else f"<VirtualClock {self.now_ns} ns>"


# ---- the running task ------------------------------------------------------------------


class TaskContext:
    """What a running task may ask of the engine (``taskgate.current_task()``).
    Valid during that call only, on its thread: afterwards every use raises
    RuntimeError (the engine's context is gone)."""
    __slots__ = ("_ctx_value",)

    def __init__(self, ctx: int):
        self._ctx_value = ctx

    @property
    def _ctx(self) -> int:
        from .pool import _PINNED
        if getattr(_PINNED, "ctx", 0) != self._ctx_value:
            raise RuntimeError("this TaskContext is no longer valid: its task's call has returned "
                               "(or it is used from another thread)")
        return self._ctx_value

    @property
    def id(self) -> Optional[str]:
        b = lib.task_id(self._ctx)
        return b.decode() if b is not None else None

    @property
    def attempt(self) -> int:
        """1 on the first call, 2 on the first retry, ..."""
        return lib.task_attempt(self._ctx)

    @property
    def worker(self) -> int:
        return lib.task_worker(self._ctx)

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled or timed out: stop early."""
        return bool(lib.task_cancelled(self._ctx))

    @property
    def credential(self) -> Optional[Credential]:
        """This attempt's credential, or None when the policy has none."""
        c = C.sized(C.Credential)
        if lib.task_credential(self._ctx, byref(c)) != 0:
            return None
        dec = (lambda b: b.decode("utf-8", "replace") if b is not None else None)
        return Credential(dec(c.key), dec(c.base_url), dec(c.model), c.index)  # type: ignore[arg-type]

    def set_status_code(self, code: int) -> None:
        lib.task_set_status_code(self._ctx, _count(code, "status code", -(1 << 31), (1 << 31) - 1))

    def set_retry_after(self, seconds: float) -> None:
        lib.task_set_retry_after(self._ctx, _ms(seconds, "retry_after"))


def current_task() -> TaskContext:
    """The context of the task running on this thread. RuntimeError outside a task."""
    from .pool import _PINNED
    ctx = getattr(_PINNED, "ctx", 0)
    if not ctx:
        raise RuntimeError("taskgate.current_task() called outside a running task")
    return TaskContext(ctx)
