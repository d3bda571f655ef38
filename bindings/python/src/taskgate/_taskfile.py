"""``Pool.run``: task dicts in the task-file format (schema/taskfile.schema.json).

Shapes are checked here, each error naming the task and the field; the
semantic checks (duplicate ids, unknown dependencies, cycles, argument types
against a processor's signature) are the engine's, made when the list is
submitted as one batch, so the Python door and the C door refuse the same
things with the same words.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_uint64
from typing import Any, Dict, List, Mapping, Optional, Sequence

from . import _capi as C
from . import errors
from ._capi import lib
from .pool import (_DESC_SIZE, _difficulty, _timeout_ms, _END_ADDRESS, _ENTRIES, _KEYS, _PROCESSOR_ADDRESS, Processor, Result, _Call, _name,
                   _priority, _read, _strings, TaskFuture)

FIELDS = ("id", "processor", "args", "priority", "depends_on", "reads", "writes", "difficulty", "timeout_s",
          "group", "critical", "payload", "description", "policy", "key")


class _Prepared:
    def __init__(self, pool: Any, descs: Any, keys: List[int], futures: List[TaskFuture], ids: List[str],
                 keep: list):
        self.pool, self.descs, self.keys, self.futures, self.ids, self.keep = pool, descs, keys, futures, ids, keep

    def run(self, timeout: Optional[float]) -> Dict[str, Result]:
        pool = self.pool
        if not self.ids:
            return {}
        for k, f in zip(self.keys, self.futures):
            _ENTRIES[k] = f._entry  # type: ignore[attr-defined]
        first = c_uint64()
        try:
            lib.pool_submit_batch(pool._h(), self.descs, len(self.ids), byref(first))
        except BaseException:
            for k in self.keys:
                _ENTRIES.pop(k, None)
            raise
        del self.keep
        n = len(self.ids)
        try:
            pool._wait_slices(lambda ms: lib.pool_wait_range(pool._h(), first.value, n, ms), timeout)
        except BaseException:
            # Interrupted or out of time: what has not ended is cancelled.
            for j in range(n):
                try:
                    lib.pool_cancel_at(pool._h(), first.value + j)
                except errors.TaskgateError:
                    pass
            raise
        out: Dict[str, Result] = {}
        for j, f in enumerate(self.futures):
            e = f._entry  # type: ignore[attr-defined]
            r = _read(pool._h(), first.value + j)
            out[self.ids[j]] = Result(r, e.value, e.exc, e.fn is not None)
        return out


def prepare(pool: Any, tasks: Sequence[Mapping[str, Any]], conflict_resolution: str) -> _Prepared:
    if conflict_resolution not in ("sequential", "fail"):
        raise errors.InvalidArgumentError(
            f"conflict_resolution must be 'sequential' or 'fail', got {conflict_resolution!r}")
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise errors.InvalidArgumentError(f"tasks must be a list of task dicts, got {type(tasks).__name__}")
    n = len(tasks)
    if n == 0:
        return _Prepared(pool, None, [], [], [], [])
    descs = (C.TaskDesc * n)()
    keep: list = []
    keys: List[int] = []
    futures: List[TaskFuture] = []
    ids: List[str] = []
    writers: Dict[str, str] = {}
    for k, t in enumerate(tasks):
        where = f"tasks[{k}]"
        if not isinstance(t, Mapping):
            raise errors.InvalidArgumentError(f"{where} must be a dict, got {type(t).__name__}")
        tid = t.get("id")
        if not isinstance(tid, str) or not tid or len(tid.encode()) > 256:
            raise errors.InvalidArgumentError(f"{where} field 'id' must be a string of 1-256 bytes, got {tid!r}")
        where = f"task {tid!r}"
        for field in t:
            if field not in FIELDS:
                raise errors.InvalidArgumentError(
                    f"{where}: unknown field {field!r} (known: {', '.join(sorted(FIELDS))})")

        def bad(field: str, why: str) -> errors.InvalidArgumentError:
            return errors.InvalidArgumentError(f"{where} field {field!r}: {why}")

        d = descs[k]
        d.struct_size = _DESC_SIZE
        d.id = _name(tid, f"{where} field 'id'")
        if "processor" not in t:
            raise errors.InvalidArgumentError(f"{where} has no 'processor'")
        proc_spec = t["processor"]
        args = t.get("args", [])
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
            raise bad("args", f"must be a list, got {type(args).__name__}")
        proc: Optional[Processor] = None
        if isinstance(proc_spec, Processor):
            proc = proc_spec
        elif isinstance(proc_spec, str):
            if "." not in proc_spec:
                raise bad("processor", f"must be \"plugin.processor\", got {proc_spec!r}")
            try:
                proc = pool.processor(proc_spec)
            except errors.NotFoundError as e:
                raise errors.NotFoundError(f"{where} field 'processor': {e.detail}") from None
        elif not callable(proc_spec):
            raise bad("processor", f"must be a processor name, a Processor or a callable, got {type(proc_spec).__name__}")
        if "priority" in t:
            try:
                d.priority = _priority(t["priority"])
            except errors.InvalidArgumentError:
                raise bad("priority", "must be \"high\", \"normal\", \"low\" or 1, 0, -1") from None
        for field in ("depends_on", "reads", "writes"):
            v = t.get(field, [])
            if isinstance(v, (str, bytes)) or not isinstance(v, Sequence):
                raise bad(field, f"must be a list of strings, got {type(v).__name__}")
            arr, count = _strings(v, f"{where} field {field!r}")
            if count:
                keep.append(arr)
                setattr(d, {"depends_on": "deps"}.get(field, field), arr)
                setattr(d, {"depends_on": "n_deps", "reads": "n_reads", "writes": "n_writes"}[field], count)
        if tid in (t.get("depends_on") or []):
            raise bad("depends_on", "a task cannot depend on itself")
        if conflict_resolution == "fail":
            for w in t.get("writes") or []:
                path = os.path.normpath(os.path.abspath(os.fspath(w)))
                if path in writers:
                    raise errors.ConflictError(
                        f"{where} field 'writes': {w!r} is also written by task {writers[path]!r} "
                        "(conflict_resolution is 'fail')")
                writers[path] = tid
        if "difficulty" in t:
            try:
                d.difficulty = _difficulty(t["difficulty"])
            except errors.InvalidArgumentError:
                raise bad("difficulty", "must be an integer 0 .. 1000000") from None
        if "timeout_s" in t:
            try:
                d.timeout_ms = _timeout_ms(t["timeout_s"])
            except errors.InvalidArgumentError:
                raise bad("timeout_s", "must be a number of seconds above 0 (at most a year)") from None
        if "group" in t:
            g = t["group"]
            if not isinstance(g, str) or not g:
                raise bad("group", f"must be a non-empty string, got {g!r}")
            d.group = _name(g, f"{where} field 'group'")
        if "critical" in t:
            if not isinstance(t["critical"], bool):
                raise bad("critical", f"must be true or false, got {t['critical']!r}")
            if t["critical"]:
                d.flags = C.TASK_CRITICAL
        if "payload" in t:
            p = t["payload"]
            if not isinstance(p, (str, bytes)):
                raise bad("payload", f"must be a string, got {type(p).__name__}")
            pb = p.encode("utf-8") if isinstance(p, str) else p
            keep.append(pb)
            d.payload, d.payload_len = pb, len(pb)
        if "description" in t and not isinstance(t["description"], str):
            raise bad("description", "must be a string")
        if t.get("policy") is not None:
            try:
                d.policy = pool._policy_handle(t["policy"])
            except errors.InvalidArgumentError as e:
                raise bad("policy", e.detail) from None
        if "key" in t:
            kv = t["key"]
            if not isinstance(kv, str) or not kv:
                raise bad("key", f"must be a non-empty string, got {kv!r}")
            kb = _name(kv, f"{where} field 'key'")
            keep.append(kb)
            d.key = kb
        future = TaskFuture(pool, proc is None)
        future.id = tid
        if proc is None:
            entry = _Call(proc_spec, tuple(args), None, future)
            d.fn = _PROCESSOR_ADDRESS
        else:
            entry = _Call(None, (), None, future)
            try:
                vals, more = proc.values(list(args))
            except errors.TaskgateError as e:
                raise type(e)(f"{where} field 'args': {e.detail}", e.code, e.name) from None
            keep.extend(more)
            d.processor, d.args, d.n_args = proc._ptr, ctypes.cast(vals, ctypes.POINTER(C.Value)), len(args)
        future._entry = entry  # type: ignore[attr-defined]
        key = next(_KEYS)
        d.user = key << 32
        d.on_end = _END_ADDRESS
        keys.append(key)
        futures.append(future)
        ids.append(tid)
    return _Prepared(pool, descs, keys, futures, ids, keep)
