"""Partial failure and aggregation (seed 002 sections 5 and 6).

    pool.set_group("fetch", min_required=3)          # or 0.5 for half, critical=True
    futures = [pool.submit(fetch, u, group="fetch") for u in urls]
    pool.wait_group("fetch")
    pool.group_outcome("fetch")   # {"state": "succeeded", "partial_results": True, "failed_count": 1, ...}

    taskgate.aggregate([f.task_result() for f in futures], "union")
    # {"success": True, "partial_results": True, "result": [...], "failures": [{"task": "f2", ...}]}

Kinds: "collect" (each output in order, None for a failure), "union",
"intersection", "majority" (the output most gave; "votes", "tie"),
"frequency" (items named by at least ``threshold`` of the outputs, the
seed's 40% by default, as {"pattern", "count", "frequency"}). Values compare
as JSON: key order and 1 vs 1.0 do not matter; order of first appearance is
kept.
"""
from __future__ import annotations

import json
from ctypes import byref, c_char_p, c_void_p
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import _capi as C
from . import errors
from ._capi import lib

__all__ = ["aggregate", "AGGREGATE_KINDS"]

AGGREGATE_KINDS = ("collect", "union", "intersection", "majority", "frequency")


def aggregate_options(kind: str, threshold: float, min_required: int) -> Any:
    if kind not in AGGREGATE_KINDS:
        raise errors.InvalidArgumentError(f"kind must be one of {', '.join(AGGREGATE_KINDS)}, got {kind!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise errors.InvalidArgumentError(f"threshold must be above 0 and at most 1, got {threshold!r}")
    if isinstance(min_required, bool) or not isinstance(min_required, int) or not 0 <= min_required < 2**32:
        raise errors.InvalidArgumentError(f"min_required must be a whole number 0 or more, got {min_required!r}")
    o = C.sized(C.AggregateOptions)
    o.kind = AGGREGATE_KINDS.index(kind)
    o.threshold = float(threshold)
    o.min_required = min_required
    return o


def _encode(item: Any, i: int) -> Tuple[Optional[bytes], Optional[Dict[str, Any]]]:
    """(JSON text, None) for an output; (None, failure) for a failed one."""
    from .pool import Result  # late: pool imports this module's users
    if isinstance(item, Result):
        if not item.ok:
            return None, {"task": item.id, "status": item.status, "error": item.error}
        out = item.output
        if isinstance(out, (bytes, bytearray)):  # a plugin's output: JSON text
            text = bytes(out).rstrip(b"\0")
            try:
                json.loads(text)
            except ValueError as e:
                return None, {"task": item.id, "status": "bad_output", "error": f"output is not JSON: {e}"}
            return text, None
        item = out
    if isinstance(item, BaseException):
        return None, {"task": None, "status": "failed", "error": f"{type(item).__name__}: {item}"}
    try:
        return json.dumps(item, allow_nan=False).encode(), None
    except (TypeError, ValueError) as e:
        raise errors.InvalidArgumentError(f"outputs[{i}] is not JSON-serialisable: {e}") from None


def aggregate(outputs: Iterable[Any], kind: str = "union", *, threshold: float = 0.4,
              min_required: int = 0) -> Dict[str, Any]:
    """Aggregates task outputs in the order given (seed 002 section 5).

    Each item is a JSON-serialisable value, a :class:`taskgate.Result` (its
    output if it succeeded, else a failure naming the task), or an exception
    (a failure). With fewer than ``min_required`` usable outputs the answer is
    ``{"success": False, "reason": "insufficient results (k/min_required)"}``.
    """
    o = aggregate_options(kind, threshold, min_required)
    texts: List[Optional[bytes]] = []
    failures: List[Dict[str, Any]] = []
    for i, item in enumerate(outputs):
        t, f = _encode(item, i)
        texts.append(t)
        if f is not None:
            failures.append(f)
    arr = (c_char_p * max(1, len(texts)))(*texts)
    p = c_void_p()
    lib.aggregate(arr, len(texts), byref(o), byref(p))
    report = json.loads(C.take_text(p))
    report["failures"] = failures  # the same entries, in order, with what C could not know
    return report
