import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Pools

@_cdecl("tg_pool_create")
public func tg_pool_create(_ opts: UnsafePointer<tg_pool_options>?,
                           _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_pool>?>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_pool_create: out is NULL") }
    out.pointee = nil
    var config = PoolConfiguration()
    if let opts {
        let size = opts.pointee.struct_size
        guard size == UInt32(MemoryLayout<tg_pool_options>.size) || size == poolOptionsSize03 || size == poolOptionsSize04
                || size == poolOptionsSize06 else {
            return fail(TG_EVERSION, "tg_pool_create: opts->struct_size is \(size), this library knows \(MemoryLayout<tg_pool_options>.size) (use TG_POOL_OPTIONS_INIT)")
        }
        if size > poolOptionsSize03 {
            if let c = opts.pointee.clock {
                guard let clock = clockEngine(c, "tg_pool_create") else { return TG_EBADHANDLE.rawValue }
                config.clock = clock
            }
            if opts.pointee.unhealthy_after > 0 { config.unhealthyAfter = Int(opts.pointee.unhealthy_after) }
            if opts.pointee.max_recoveries > 0 { config.maxRecoveries = Int(opts.pointee.max_recoveries) }
            if let f = opts.pointee.recover {
                config.recover = unsafeBitCast(f, to: RecoverHook.self)
                config.recoverUser = opts.pointee.recover_user
            }
        }
        if size > poolOptionsSize04, let d = opts.pointee.lock_dir {
            let path = String(cString: d)
            do { config.lockDirectory = try LockDirectory(path) } catch { return fail(error) }
            let hold = opts.pointee.lock_hold_timeout_ms
            config.lockHoldTimeout = hold == 0 ? 300 : hold < 0 ? 0 : Double(hold) / 1000
            let wait = opts.pointee.lock_wait_ms
            config.lockWait = wait <= 0 ? -1 : Double(wait) / 1000
        }
        if size > poolOptionsSize06, let d = opts.pointee.cache_dir {
            do { config.resultCache = try ResultCache(String(cString: d)) } catch { return fail(error) }
        } else if let d = opts.pointee.lock_dir, size > poolOptionsSize04 {
            config.lazyResultCachePath = ResultCache.defaultPath(besideLockDirectory: String(cString: d))
        }
        let known = TG_POOL_ALLOW_READ_WRITE_OVERLAP
        guard opts.pointee.flags & ~known == 0 else {
            return fail(TG_EINVAL, "tg_pool_create: unknown flags 0x\(String(opts.pointee.flags & ~known, radix: 16))")
        }
        config.workers = Int(opts.pointee.workers)
        config.maxConcurrency = Int(opts.pointee.max_concurrency)
        config.allowReadWriteOverlap = opts.pointee.flags & TG_POOL_ALLOW_READ_WRITE_OVERLAP != 0
        if opts.pointee.workers > 1024 {
            return fail(TG_EINVAL, "tg_pool_create: workers is \(opts.pointee.workers); at most 1024")
        }
    }
    let pool: TaskPool
    do { pool = try TaskPool(config) } catch { return fail(error) }
    let handle = UnsafeMutablePointer<tg_pool>.allocate(capacity: 1)
    handle.initialize(to: tg_pool(magic: TG_POOL_MAGIC, engine: Unmanaged.passRetained(pool).toOpaque()))
    pool.owner = UnsafeMutableRawPointer(handle)
    out.pointee = handle
    return ok()
}

@_cdecl("tg_pool_shutdown")
public func tg_pool_shutdown(_ p: UnsafeMutablePointer<tg_pool>?, _ mode: Int32, _ timeoutMs: Int64) -> Int32 {
    guard let pool = engine(p, "tg_pool_shutdown") else { return badHandleCode(p) }
    let m: ShutdownMode
    switch mode {
    case TG_SHUTDOWN_DRAIN: m = .drain
    case TG_SHUTDOWN_ABORT: m = .abort
    default: return fail(TG_EINVAL, "tg_pool_shutdown: mode \(mode) is neither TG_SHUTDOWN_DRAIN nor TG_SHUTDOWN_ABORT")
    }
    do { try pool.shutdown(m, timeout: nanos(timeoutMs)) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_destroy")
public func tg_pool_destroy(_ p: UnsafeMutablePointer<tg_pool>?) -> Int32 {
    guard let p else { return ok() }
    guard let pool = engine(p, "tg_pool_destroy") else { return badHandleCode(p) }
    do { try pool.close() } catch { return fail(error) }
    freeResilienceHandles(pool)
    let e = p.pointee.engine!
    p.pointee.magic = TG_POOL_DEAD
    p.pointee.engine = nil
    Unmanaged<TaskPool>.fromOpaque(e).release()
    p.deallocate()
    return ok()
}

// MARK: - Submission

private let descSize = UInt32(MemoryLayout<tg_task_desc>.size)
/// tg_task_desc as 0.1 knew it (before processor, args, n_args).
private let descSize01 = UInt32(MemoryLayout<tg_task_desc>.offset(of: \tg_task_desc.processor)!)
/// tg_task_desc as 0.2 knew it (before on_end).
private let descSize02 = UInt32(MemoryLayout<tg_task_desc>.offset(of: \tg_task_desc.on_end)!)
/// tg_task_desc as 0.3 knew it (before policy, key).
private let descSize03 = UInt32(MemoryLayout<tg_task_desc>.offset(of: \tg_task_desc.policy)!)
/// tg_task_desc as 0.4 to 0.6 knew it (before cache_ttl_ms, cache_key).
private let descSize06 = UInt32(MemoryLayout<tg_task_desc>.offset(of: \tg_task_desc.cache_ttl_ms)!)
private let poolOptionsSize03 = UInt32(MemoryLayout<tg_pool_options>.offset(of: \tg_pool_options.clock)!)
/// tg_pool_options as 0.4 knew it (before lock_dir).
private let poolOptionsSize04 = UInt32(MemoryLayout<tg_pool_options>.offset(of: \tg_pool_options.lock_dir)!)
/// tg_pool_options as 0.6 knew it (before cache_dir).
private let poolOptionsSize06 = UInt32(MemoryLayout<tg_pool_options>.offset(of: \tg_pool_options.cache_dir)!)
@inline(__always) private func knownDescSize(_ n: UInt32) -> Bool {
    n == descSize || n == descSize06 || n == descSize03 || n == descSize02 || n == descSize01
}
@inline(__always) private func hasCache(_ d: UnsafePointer<tg_task_desc>) -> Bool { d.pointee.struct_size >= descSize }
@inline(__always) private func hasPluginFields(_ d: UnsafePointer<tg_task_desc>) -> Bool { d.pointee.struct_size >= descSize02 }
@inline(__always) private func hasEndHook(_ d: UnsafePointer<tg_task_desc>) -> Bool { d.pointee.struct_size >= descSize03 }
@inline(__always) private func hasPolicy(_ d: UnsafePointer<tg_task_desc>) -> Bool { d.pointee.struct_size >= descSize06 }

/// Checks one description; nil when fine, else the message.
@inline(__always)
private func problem(_ d: UnsafePointer<tg_task_desc>, _ i: Int, batch: Bool) -> String? {
    let t = d.pointee
    // size_t arrives as Int: a count of 2^63 or more shows as negative.
    let plugin = hasPluginFields(d) && t.processor != nil
    let fine = (t.fn != nil) != plugin && t.priority >= TG_PRIORITY_LOW && t.priority <= TG_PRIORITY_HIGH
        && t.n_deps >= 0 && t.n_reads >= 0 && t.n_writes >= 0 && t.payload_len >= 0
        && (t.n_deps == 0 || t.deps != nil) && (t.n_reads == 0 || t.reads != nil)
        && (t.n_writes == 0 || t.writes != nil) && (t.payload_len == 0 || t.payload != nil)
        && t.flags & ~TG_TASK_CRITICAL == 0
        && (!plugin || (t.n_args >= 0 && (t.n_args == 0 || t.args != nil)))
    return fine ? nil : describeProblem(d, i, batch: batch)
}

private func describeProblem(_ d: UnsafePointer<tg_task_desc>, _ i: Int, batch: Bool) -> String {
    let who: String = d.pointee.id.map { "task '\(String(cString: $0))'" }
        ?? (batch ? "task #\(i) of the batch" : "the task")
    let plugin = hasPluginFields(d) && d.pointee.processor != nil
    if d.pointee.fn == nil && !plugin { return "\(who): fn (the processor) is NULL, and so is processor" }
    if d.pointee.fn != nil && plugin { return "\(who): both fn and processor are set; give one" }
    if plugin && d.pointee.n_args < 0 { return "\(who): n_args is \(UInt(bitPattern: d.pointee.n_args)), more than any array could hold" }
    if plugin && d.pointee.n_args > 0 && d.pointee.args == nil { return "\(who): n_args is \(d.pointee.n_args) but args is NULL" }
    if d.pointee.priority < TG_PRIORITY_LOW || d.pointee.priority > TG_PRIORITY_HIGH {
        return "\(who): priority \(d.pointee.priority) is not TG_PRIORITY_LOW, _NORMAL or _HIGH"
    }
    for (field, n) in [("n_deps", d.pointee.n_deps), ("n_reads", d.pointee.n_reads),
                       ("n_writes", d.pointee.n_writes), ("payload_len", d.pointee.payload_len)] where n < 0 {
        return "\(who): \(field) is \(UInt(bitPattern: n)), more than any array could hold"
    }
    if d.pointee.n_deps > 0 && d.pointee.deps == nil { return "\(who): n_deps is \(d.pointee.n_deps) but deps is NULL" }
    if d.pointee.n_reads > 0 && d.pointee.reads == nil { return "\(who): n_reads is \(d.pointee.n_reads) but reads is NULL" }
    if d.pointee.n_writes > 0 && d.pointee.writes == nil { return "\(who): n_writes is \(d.pointee.n_writes) but writes is NULL" }
    if d.pointee.payload_len > 0 && d.pointee.payload == nil {
        return "\(who): payload_len is \(d.pointee.payload_len) but payload is NULL"
    }
    if d.pointee.flags & ~TG_TASK_CRITICAL != 0 { return "\(who): unknown flags 0x\(String(d.pointee.flags, radix: 16))" }
    return "\(who): invalid description"
}

private func refusedProcessor(_: UnsafeMutablePointer<tgs_task>?, _: UnsafeMutableRawPointer?) -> Int32 { 1 }

@inline(__always) private func spec(_ d: UnsafePointer<tg_task_desc>, _ pool: TaskPool) -> TaskSpec {
    var s: TaskSpec
    if hasPluginFields(d), let proc = d.pointee.processor {
        s = TaskSpec(id: d.pointee.id, processor: refusedProcessor, user: nil)
        if let q = pool.plugins.liveProcessor(UnsafeRawPointer(proc)) {
            s.plugin = q
            if d.pointee.n_args > 0 {
                s.arguments = UnsafeBufferPointer(start: UnsafeRawPointer(d.pointee.args!).assumingMemoryBound(to: tgs_value.self),
                                                  count: d.pointee.n_args)
            }
        } else {
            s.invalidReason = "\(d.pointee.id.map { "task '\(String(cString: $0))'" } ?? "the task"): processor \(proc) is not a processor of a plugin loaded in this pool (unloaded, or from another pool)"
        }
    } else {
        s = TaskSpec(id: d.pointee.id, processor: unsafeBitCast(d.pointee.fn, to: Processor.self), user: d.pointee.user)
    }
    if d.pointee.payload_len > 0 { s.payload = UnsafeRawBufferPointer(start: d.pointee.payload, count: d.pointee.payload_len) }
    if d.pointee.n_deps > 0 { s.dependencies = UnsafeBufferPointer(start: d.pointee.deps, count: d.pointee.n_deps) }
    if d.pointee.n_reads > 0 { s.reads = UnsafeBufferPointer(start: d.pointee.reads, count: d.pointee.n_reads) }
    if d.pointee.n_writes > 0 { s.writes = UnsafeBufferPointer(start: d.pointee.writes, count: d.pointee.n_writes) }
    s.group = d.pointee.group
    s.lane = Int(1 - d.pointee.priority)
    s.critical = d.pointee.flags & TG_TASK_CRITICAL != 0
    s.difficulty = d.pointee.difficulty
    if d.pointee.timeout_ms > 0 { s.timeoutNanoseconds = nanos(d.pointee.timeout_ms) }
    if hasEndHook(d), let f = d.pointee.on_end {
        s.onEnd = unsafeBitCast(f, to: OnEnd.self)
        s.onEndUser = d.pointee.user
    }
    if hasPolicy(d) {
        if let h = d.pointee.policy {
            if let policy = policyEngine(h) {
                s.policy = policy
            } else if s.invalidReason == nil {
                s.invalidReason = "\(d.pointee.id.map { "task '\(String(cString: $0))'" } ?? "the task"): policy \(h) is not a live tg_policy"
            }
        }
        s.key = d.pointee.key
    }
    if hasCache(d), d.pointee.cache_ttl_ms != 0 {
        let ms = d.pointee.cache_ttl_ms
        if ms == Int64(TG_CACHE_NO_EXPIRY) {
            s.cache = TaskCacheRequest(ttl: .infinity, key: d.pointee.cache_key.map { String(cString: $0) } ?? "")
        } else if ms > 0 {
            s.cache = TaskCacheRequest(ttl: Double(ms) / 1000, key: d.pointee.cache_key.map { String(cString: $0) } ?? "")
        } else if s.invalidReason == nil {
            s.invalidReason = "\(d.pointee.id.map { "task '\(String(cString: $0))'" } ?? "the task"): cache_ttl_ms is \(ms); give > 0 ms, TG_CACHE_NO_EXPIRY or 0 (no cache)"
        }
    }
    return s
}

@_cdecl("tg_pool_submit")
public func tg_pool_submit(_ p: UnsafeMutablePointer<tg_pool>?, _ d: UnsafePointer<tg_task_desc>?,
                           _ outSeq: UnsafeMutablePointer<UInt64>?) -> Int32 {
    submitOne(p, d, outSeq, tryOnly: false, "tg_pool_submit")
}

@_cdecl("tg_pool_try_submit")
public func tg_pool_try_submit(_ p: UnsafeMutablePointer<tg_pool>?, _ d: UnsafePointer<tg_task_desc>?,
                               _ outSeq: UnsafeMutablePointer<UInt64>?) -> Int32 {
    submitOne(p, d, outSeq, tryOnly: true, "tg_pool_try_submit")
}

@inline(__always)
private func submitOne(_ p: UnsafeMutablePointer<tg_pool>?, _ d: UnsafePointer<tg_task_desc>?,
                       _ outSeq: UnsafeMutablePointer<UInt64>?, tryOnly: Bool, _ function: StaticString) -> Int32 {
    guard let pool = engine(p, function) else { return badHandleCode(p) }
    guard let d else { return fail(TG_EINVAL, "\(function): task is NULL") }
    guard knownDescSize(d.pointee.struct_size) else {
        return fail(TG_EVERSION, "\(function): task->struct_size is \(d.pointee.struct_size), this library knows \(descSize) (use TG_TASK_DESC_INIT)")
    }
    if let message = problem(d, 0, batch: false) { return fail(TG_EINVAL, message) }
    do {
        var s = spec(d, pool)
        s.tryOnly = tryOnly
        let seq = try pool.submit(s)
        outSeq?.pointee = seq
    } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_submit_batch")
public func tg_pool_submit_batch(_ p: UnsafeMutablePointer<tg_pool>?, _ tasks: UnsafePointer<tg_task_desc>?,
                                 _ countIn: UInt, _ outFirst: UnsafeMutablePointer<UInt64>?) -> Int32 {
    let count = Int(bitPattern: countIn)
    guard let pool = engine(p, "tg_pool_submit_batch") else { return badHandleCode(p) }
    guard let tasks else { return fail(TG_EINVAL, "tg_pool_submit_batch: tasks is NULL") }
    guard count > 0 else { return fail(TG_EINVAL, "tg_pool_submit_batch: count is \(countIn) (must be 1 .. \(Int32.max - 2))") }
    let stride = Int(tasks.pointee.struct_size)
    guard knownDescSize(UInt32(stride)) else {
        return fail(TG_EVERSION, "tg_pool_submit_batch: tasks[0].struct_size is \(stride), this library knows \(descSize) (use TG_TASK_DESC_INIT)")
    }
    let raw = UnsafeRawPointer(tasks)
    @inline(__always) func at(_ i: Int) -> UnsafePointer<tg_task_desc> {
        (raw + i * stride).assumingMemoryBound(to: tg_task_desc.self)
    }
    // Descriptions are checked as the engine converts them, in its one pass
    // over the array (a separate checking pass read the caller's whole array
    // twice). A bad one refuses the batch before anything of it is kept; a
    // version mismatch keeps its own code.
    var versionError: String? = nil
    func checkedSpec(_ i: Int) -> TaskSpec {
        let d = at(i)
        var reason: String? = nil
        if Int(d.pointee.struct_size) != stride {
            reason = "tg_pool_submit_batch: tasks[\(i)].struct_size is \(d.pointee.struct_size), tasks[0]'s is \(stride)"
            versionError = reason
        } else if let message = problem(d, i, batch: true) {
            reason = message
        }
        guard let reason else { return spec(d, pool) }
        var refused = TaskSpec(id: nil, processor: refusedProcessor)
        refused.invalidReason = reason
        return refused
    }
    do {
        let first = try pool.submitBatch(
            count: count,
            id: { Int(at($0).pointee.struct_size) == stride ? at($0).pointee.id : nil },
            spec: checkedSpec)
        outFirst?.pointee = first
    } catch {
        if let versionError { return fail(TG_EVERSION, versionError) }
        return fail(error)
    }
    return ok()
}

// MARK: - Waiting

private func lookupTask(_ pool: TaskPool, _ id: UnsafePointer<CChar>?, _ function: String) -> (Int32?, Int32) {
    guard let id else { return (nil, fail(TG_EINVAL, "\(function): id is NULL")) }
    do { return (try pool.lookup(id), 0) } catch { return (nil, fail(error)) }
}

@_cdecl("tg_pool_wait")
public func tg_pool_wait(_ p: UnsafeMutablePointer<tg_pool>?, _ id: UnsafePointer<CChar>?, _ timeoutMs: Int64) -> Int32 {
    guard let pool = engine(p, "tg_pool_wait") else { return badHandleCode(p) }
    let (i, rc) = lookupTask(pool, id, "tg_pool_wait")
    guard let i else { return rc }
    do { try pool.wait(task: i, timeout: nanos(timeoutMs)) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_wait_group")
public func tg_pool_wait_group(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?, _ timeoutMs: Int64) -> Int32 {
    guard let pool = engine(p, "tg_pool_wait_group") else { return badHandleCode(p) }
    guard let group else { return fail(TG_EINVAL, "tg_pool_wait_group: group is NULL") }
    do { try pool.wait(group: group, timeout: nanos(timeoutMs)) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_wait_all")
public func tg_pool_wait_all(_ p: UnsafeMutablePointer<tg_pool>?, _ timeoutMs: Int64) -> Int32 {
    guard let pool = engine(p, "tg_pool_wait_all") else { return badHandleCode(p) }
    do { try pool.waitAll(timeout: nanos(timeoutMs)) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_wait_range")
public func tg_pool_wait_range(_ p: UnsafeMutablePointer<tg_pool>?, _ first: UInt64, _ countIn: UInt, _ timeoutMs: Int64) -> Int32 {
    guard let pool = engine(p, "tg_pool_wait_range") else { return badHandleCode(p) }
    guard countIn <= UInt(Int32.max) else { return fail(TG_ENOTFOUND, "tg_pool_wait_range: count \(countIn) reaches past every task") }
    do { try pool.wait(from: first, count: Int(countIn), timeout: nanos(timeoutMs)) } catch { return fail(error) }
    return ok()
}

// MARK: - Cancellation

@_cdecl("tg_pool_cancel")
public func tg_pool_cancel(_ p: UnsafeMutablePointer<tg_pool>?, _ id: UnsafePointer<CChar>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_cancel") else { return badHandleCode(p) }
    let (i, rc) = lookupTask(pool, id, "tg_pool_cancel")
    guard let i else { return rc }
    do { try pool.cancel(task: i) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_cancel_at")
public func tg_pool_cancel_at(_ p: UnsafeMutablePointer<tg_pool>?, _ seq: UInt64) -> Int32 {
    guard let pool = engine(p, "tg_pool_cancel_at") else { return badHandleCode(p) }
    let n = pool.submittedCount
    guard seq < UInt64(n) else { return fail(TG_ENOTFOUND, "tg_pool_cancel_at: seq \(seq) is beyond the \(n) tasks submitted") }
    do { try pool.cancel(task: Int32(seq)) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_pool_cancel_group")
public func tg_pool_cancel_group(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?,
                                 _ outCount: UnsafeMutablePointer<UInt>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_cancel_group") else { return badHandleCode(p) }
    guard let group else { return fail(TG_EINVAL, "tg_pool_cancel_group: group is NULL") }
    // Evaluated before the assignment: `outCount?.pointee = f()` would skip f() when outCount is NULL.
    let n: Int
    do { n = try pool.cancel(group: group) } catch { return fail(error) }
    outCount?.pointee = UInt(n)
    return ok()
}

@_cdecl("tg_pool_cancel_all")
public func tg_pool_cancel_all(_ p: UnsafeMutablePointer<tg_pool>?, _ outCount: UnsafeMutablePointer<UInt>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_cancel_all") else { return badHandleCode(p) }
    let n = pool.cancelAll()
    outCount?.pointee = UInt(n)
    return ok()
}

// MARK: - Results

private let resultSize = UInt32(MemoryLayout<tg_result>.size)
private let resultSize03 = UInt32(MemoryLayout<tg_result>.offset(of: \tg_result.flags)!)
/// tg_result as 0.4 to 0.6 knew it (before cache_reason).
private let resultSize06 = UInt32(MemoryLayout<tg_result>.offset(of: \tg_result.cache_reason)!)

private func fill(_ out: UnsafeMutablePointer<tg_result>, _ v: TaskResultView) {
    out.pointee.status = Int32(v.status.rawValue)
    out.pointee.seq = v.seq
    out.pointee.id = v.id
    out.pointee.group = v.group
    out.pointee.output = v.output
    out.pointee.output_len = v.outputLength
    out.pointee.error = v.error
    out.pointee.attempts = v.attempts
    out.pointee.worker = v.worker
    out.pointee.submit_ns = v.submitNanoseconds
    out.pointee.start_ns = v.startNanoseconds
    out.pointee.end_ns = v.endNanoseconds
    out.pointee.queue_ns = v.queueNanoseconds
    guard out.pointee.struct_size >= resultSize06 else { return }
    out.pointee.flags = v.flags
    out.pointee.status_code = v.statusCode
    out.pointee.retry_delays_ns = v.retryDelays.baseAddress
    out.pointee.n_retry_delays = v.retryDelays.count
    guard out.pointee.struct_size == resultSize else { return }
    out.pointee.cache_reason = v.cacheReason
}

private func checkResult(_ out: UnsafeMutablePointer<tg_result>?, _ function: String) -> Int32? {
    guard let out else { return fail(TG_EINVAL, "\(function): out is NULL") }
    guard out.pointee.struct_size == resultSize || out.pointee.struct_size == resultSize06 || out.pointee.struct_size == resultSize03 else {
        return fail(TG_EVERSION, "\(function): out->struct_size is \(out.pointee.struct_size), this library knows \(resultSize) (use TG_RESULT_INIT)")
    }
    return nil
}

@_cdecl("tg_pool_result")
public func tg_pool_result(_ p: UnsafeMutablePointer<tg_pool>?, _ id: UnsafePointer<CChar>?,
                           _ out: UnsafeMutablePointer<tg_result>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_result") else { return badHandleCode(p) }
    if let rc = checkResult(out, "tg_pool_result") { return rc }
    let (i, rc) = lookupTask(pool, id, "tg_pool_result")
    guard let i else { return rc }
    fill(out!, pool.result(i))
    return ok()
}

@_cdecl("tg_pool_result_at")
public func tg_pool_result_at(_ p: UnsafeMutablePointer<tg_pool>?, _ seq: UInt64,
                              _ out: UnsafeMutablePointer<tg_result>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_result_at") else { return badHandleCode(p) }
    if let rc = checkResult(out, "tg_pool_result_at") { return rc }
    let n = pool.submittedCount
    guard seq < UInt64(n) else {
        return fail(TG_ENOTFOUND, "tg_pool_result_at: seq \(seq) is beyond the \(n) tasks submitted")
    }
    fill(out!, pool.result(Int32(seq)))
    return ok()
}

@_cdecl("tg_pool_next_completed")
public func tg_pool_next_completed(_ p: UnsafeMutablePointer<tg_pool>?, _ cursor: UnsafeMutablePointer<UInt64>?,
                                   _ timeoutMs: Int64, _ out: UnsafeMutablePointer<tg_result>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_next_completed") else { return badHandleCode(p) }
    guard let cursor else { return fail(TG_EINVAL, "tg_pool_next_completed: cursor is NULL") }
    if let rc = checkResult(out, "tg_pool_next_completed") { return rc }
    do {
        let i = try pool.nextCompleted(cursor: &cursor.pointee, timeout: nanos(timeoutMs))
        fill(out!, pool.result(i))
    } catch { return fail(error) }
    return ok()
}

private let statsSize = UInt32(MemoryLayout<tg_pool_stats>.size)
private let statsSize03 = UInt32(MemoryLayout<tg_pool_stats>.offset(of: \tg_pool_stats.rejected)!)

@_cdecl("tg_pool_stats_get")
public func tg_pool_stats_get(_ p: UnsafeMutablePointer<tg_pool>?, _ out: UnsafeMutablePointer<tg_pool_stats>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_stats_get") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_stats_get: out is NULL") }
    guard out.pointee.struct_size == statsSize || out.pointee.struct_size == statsSize03 else {
        return fail(TG_EVERSION, "tg_pool_stats_get: out->struct_size is \(out.pointee.struct_size), this library knows \(statsSize) (use TG_POOL_STATS_INIT)")
    }
    let s = pool.stats()
    out.pointee.workers = UInt32(pool.workerCount)
    out.pointee.submitted = UInt64(s.submitted)
    out.pointee.ended = UInt64(s.ended)
    out.pointee.succeeded = UInt64(s.succeeded)
    out.pointee.failed = UInt64(s.failed)
    out.pointee.timed_out = UInt64(s.timedOut)
    out.pointee.cancelled = UInt64(s.cancelled)
    out.pointee.skipped = UInt64(s.skipped)
    if out.pointee.struct_size == statsSize {
        out.pointee.rejected = UInt64(s.rejected)
    } else {
        out.pointee.ended -= UInt64(s.rejected)  // a 0.3 caller's ended is the sum of the five it knows
    }
    return ok()
}

// MARK: - Inside a processor

@inline(__always) private func record(_ ctx: UnsafePointer<tg_task_ctx>) -> UnsafeMutablePointer<tgs_task> {
    UnsafeMutableRawPointer(mutating: ctx).assumingMemoryBound(to: tgs_task.self)
}

@_cdecl("tg_task_id")
public func tg_task_id(_ ctx: UnsafePointer<tg_task_ctx>?) -> UnsafePointer<CChar>? {
    guard let ctx else { return nil }
    return record(ctx).pointee.id
}

@_cdecl("tg_task_payload")
public func tg_task_payload(_ ctx: UnsafePointer<tg_task_ctx>?, _ len: UnsafeMutablePointer<UInt>?) -> UnsafeRawPointer? {
    guard let ctx else { len?.pointee = 0; return nil }
    guard let x = record(ctx).pointee.extra else { len?.pointee = 0; return nil }
    len?.pointee = UInt(x.pointee.payload_len)
    return x.pointee.payload
}

@_cdecl("tg_task_cancelled")
public func tg_task_cancelled(_ ctx: UnsafePointer<tg_task_ctx>?) -> Int32 {
    guard let ctx else { return 0 }
    return tgs_load_u32(&record(ctx).pointee.signals) & UInt32(TGS_SIGNAL_CANCEL) != 0 ? 1 : 0
}

@_cdecl("tg_task_worker")
public func tg_task_worker(_ ctx: UnsafePointer<tg_task_ctx>?) -> Int32 {
    guard let ctx else { return -1 }
    return record(ctx).pointee.worker
}

@_cdecl("tg_task_set_output")
public func tg_task_set_output(_ ctx: UnsafeMutablePointer<tg_task_ctx>?, _ data: UnsafeRawPointer?, _ lenIn: UInt) -> Int32 {
    let len = Int(bitPattern: lenIn)
    guard let ctx else { return fail(TG_EINVAL, "tg_task_set_output: ctx is NULL") }
    guard data != nil || len == 0 else { return fail(TG_EINVAL, "tg_task_set_output: data is NULL but len is \(lenIn)") }
    guard len >= 0 && len <= Int(UInt32.max) else { return fail(TG_ERANGE, "tg_task_set_output: len \(lenIn) is over the 4 GiB an output may hold") }
    let t = record(ctx)
    var copy: UnsafeMutableRawPointer? = nil
    if len > 0 {
        guard let m = malloc(len) else { return fail(TG_ENOMEM, "tg_task_set_output: \(len) bytes") }
        m.copyMemory(from: data!, byteCount: len)
        copy = m
    }
    free(t.pointee.output)
    t.pointee.output = copy
    t.pointee.output_len = UInt32(len)
    return ok()
}

@_cdecl("tg_task_set_error")
public func tg_task_set_error(_ ctx: UnsafeMutablePointer<tg_task_ctx>?, _ message: UnsafePointer<CChar>?) -> Int32 {
    guard let ctx else { return fail(TG_EINVAL, "tg_task_set_error: ctx is NULL") }
    let t = record(ctx)
    free(t.pointee.error)
    t.pointee.error = message.flatMap { strdup($0) }
    return ok()
}
