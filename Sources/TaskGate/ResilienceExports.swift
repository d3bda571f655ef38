// Thunks for clocks, policies, credential rings and worker health (0.4).

import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Handles

@inline(__always) func clockEngine(_ c: UnsafePointer<tg_clock>, _ function: StaticString) -> PolicyClock? {
    guard c.pointee.magic == TG_CLOCK_MAGIC, let e = c.pointee.engine else {
        _ = fail(TG_EBADHANDLE, "\(function): \(c) is not a live tg_clock")
        return nil
    }
    return Unmanaged<PolicyClock>.fromOpaque(e).takeUnretainedValue()
}

@inline(__always) func policyEngine(_ p: UnsafePointer<tg_policy>) -> Policy? {
    guard p.pointee.magic == TG_POLICY_MAGIC, let e = p.pointee.engine else { return nil }
    return Unmanaged<Policy>.fromOpaque(e).takeUnretainedValue()
}

@inline(__always) func credentialsEngine(_ c: UnsafePointer<tg_credentials>) -> CredentialRing? {
    guard c.pointee.magic == TG_CREDS_MAGIC, let e = c.pointee.engine else { return nil }
    return Unmanaged<CredentialRing>.fromOpaque(e).takeUnretainedValue()
}

/// Handles the pool hands out live as long as it: kept here, freed with it.
private let handleLock = Locked()
nonisolated(unsafe) private var poolHandles: [ObjectIdentifier: [UnsafeMutableRawPointer]] = [:]

private final class Locked: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func run<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}

private func keep(_ pool: TaskPool, _ handle: UnsafeMutableRawPointer, _ object: AnyObject) {
    pool.keepAlive(object)
    handleLock.run { poolHandles[ObjectIdentifier(pool), default: []].append(handle) }
}

/// Called by tg_pool_destroy once the pool is closed.
func freeResilienceHandles(_ pool: TaskPool) {
    let handles = handleLock.run { poolHandles.removeValue(forKey: ObjectIdentifier(pool)) ?? [] }
    for h in handles {
        // Every such handle is {magic, engine}: poison, then free.
        let words = h.assumingMemoryBound(to: UInt64.self)
        words[0] = 0xdeaddeaddeaddead
        words[1] = 0
        h.deallocate()
    }
}

// MARK: - Clocks

@_cdecl("tg_clock_create_virtual")
public func tg_clock_create_virtual(_ start: Int64, _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_clock>?>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_clock_create_virtual: out is NULL") }
    let clock = PolicyClock(virtualStart: start)
    let h = UnsafeMutablePointer<tg_clock>.allocate(capacity: 1)
    h.initialize(to: tg_clock(magic: TG_CLOCK_MAGIC, engine: Unmanaged.passRetained(clock).toOpaque()))
    out.pointee = h
    return ok()
}

@_cdecl("tg_clock_advance")
public func tg_clock_advance(_ c: UnsafeMutablePointer<tg_clock>?, _ ns: Int64) -> Int32 {
    guard let c else { return fail(TG_EINVAL, "tg_clock_advance: clock is NULL") }
    guard let clock = clockEngine(c, "tg_clock_advance") else { return TG_EBADHANDLE.rawValue }
    guard ns >= 0 else { return fail(TG_EINVAL, "tg_clock_advance: ns is \(ns); a clock only moves forward") }
    clock.advance(by: ns)
    return ok()
}

@_cdecl("tg_clock_now")
public func tg_clock_now(_ c: UnsafePointer<tg_clock>?, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
    guard let c, let out else { return fail(TG_EINVAL, "tg_clock_now: clock or out is NULL") }
    guard let clock = clockEngine(c, "tg_clock_now") else { return TG_EBADHANDLE.rawValue }
    out.pointee = clock.now()
    return ok()
}

@_cdecl("tg_clock_destroy")
public func tg_clock_destroy(_ c: UnsafeMutablePointer<tg_clock>?) -> Int32 {
    guard let c else { return ok() }
    guard c.pointee.magic == TG_CLOCK_MAGIC, let e = c.pointee.engine else {
        return fail(TG_EBADHANDLE, "tg_clock_destroy: \(c) is not a live tg_clock")
    }
    c.pointee.magic = 0xdeaddeaddeaddead
    c.pointee.engine = nil
    Unmanaged<PolicyClock>.fromOpaque(e).release()
    c.deallocate()
    return ok()
}

// MARK: - Policies

private func convert(_ r: UnsafePointer<tg_retry_options>) throws(TaskGateError) -> RetryOptions {
    let o = r.pointee
    var x = RetryOptions()
    x.maxAttempts = Int(o.max_attempts)
    guard o.base_delay_ms >= 0, o.max_delay_ms >= 0 else { throw .invalid("policy: retry: delays must not be negative") }
    x.backoff.base = nanos(o.base_delay_ms)
    x.backoff.multiplier = o.multiplier
    x.backoff.cap = nanos(o.max_delay_ms)
    guard let j = Jitter(rawValue: o.jitter) else { throw .invalid("policy: retry: jitter \(o.jitter) is not a TG_JITTER_* value") }
    x.backoff.jitter = j
    x.backoff.jitterFactor = o.jitter_factor
    let known = TG_RETRY_FAILED_IS_PERMANENT | TG_RETRY_IGNORE_RETRY_AFTER
    guard o.flags & ~known == 0 else { throw .invalid("policy: retry: unknown flags 0x\(String(o.flags & ~known, radix: 16))") }
    x.failedIsPermanent = o.flags & TG_RETRY_FAILED_IS_PERMANENT != 0
    x.honorRetryAfter = o.flags & TG_RETRY_IGNORE_RETRY_AFTER == 0
    if o.n_delays > 0 {
        guard let d = o.delays_ms, o.n_delays <= 1000 else { throw .invalid("policy: retry: delays_ms is NULL or n_delays is over 1000") }
        for k in 0..<o.n_delays {
            guard d[k] >= 0 else { throw .invalid("policy: retry: delays_ms[\(k)] is \(d[k]); delays must not be negative") }
            x.backoff.delays.append(nanos(d[k]))
        }
    }
    x.budgetRatio = o.budget_ratio
    x.budgetWindow = nanos(o.budget_window_ms)
    x.budgetMinPerSecond = o.budget_min_per_second
    return x
}

private func convert(_ b: UnsafePointer<tg_breaker_options>) throws(TaskGateError) -> BreakerOptions {
    let o = b.pointee
    var x = BreakerOptions()
    x.failureThreshold = Int(o.failure_threshold)
    x.successThreshold = Int(o.success_threshold)
    x.halfOpenCalls = Int(o.half_open_calls)
    guard o.open_ms >= 0, o.slow_call_ms >= 0 else { throw .invalid("policy: breaker: open_ms and slow_call_ms must not be negative") }
    x.openFor = nanos(o.open_ms)
    switch o.window {
    case UInt32(TG_WINDOW_NONE): x.window = .none
    case UInt32(TG_WINDOW_COUNT): x.window = .count(Int(o.window_size))
    case UInt32(TG_WINDOW_TIME): x.window = .time(Int(o.window_size))
    default: throw .invalid("policy: breaker: window \(o.window) is not a TG_WINDOW_* value")
    }
    x.minimumCalls = Int(o.minimum_calls)
    x.failureRate = o.failure_rate
    x.slowCall = nanos(o.slow_call_ms)
    x.slowCallRate = o.slow_call_rate
    return x
}

@_cdecl("tg_policy_create")
public func tg_policy_create(_ p: UnsafeMutablePointer<tg_pool>?, _ opts: UnsafePointer<tg_policy_options>?,
                             _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_policy>?>?) -> Int32 {
    guard let pool = engine(p, "tg_policy_create") else { return badHandleCode(p) }
    guard let opts, let out else { return fail(TG_EINVAL, "tg_policy_create: opts or out is NULL") }
    out.pointee = nil
    guard opts.pointee.struct_size == UInt32(MemoryLayout<tg_policy_options>.size) else {
        return fail(TG_EVERSION, "tg_policy_create: opts->struct_size is \(opts.pointee.struct_size), this library knows \(MemoryLayout<tg_policy_options>.size) (use TG_POLICY_OPTIONS_INIT)")
    }
    for (field, size, want, macro) in [
        ("retry", opts.pointee.retry?.pointee.struct_size, MemoryLayout<tg_retry_options>.size, "TG_RETRY_OPTIONS_INIT"),
        ("breaker", opts.pointee.breaker?.pointee.struct_size, MemoryLayout<tg_breaker_options>.size, "TG_BREAKER_OPTIONS_INIT"),
        ("limit", opts.pointee.limit?.pointee.struct_size, MemoryLayout<tg_limit_options>.size, "TG_LIMIT_OPTIONS_INIT"),
    ] {
        if let size, size != UInt32(want) {
            return fail(TG_EVERSION, "tg_policy_create: \(field)->struct_size is \(size), this library knows \(want) (use \(macro))")
        }
    }
    var o = PolicyOptions()
    do {
        if let r = opts.pointee.retry { o.retry = try convert(r) }
        if let b = opts.pointee.breaker { o.breaker = try convert(b) }
        if let l = opts.pointee.limit {
            var x = LimitOptions()
            x.maxConcurrent = Int(l.pointee.max_concurrent)
            x.perMinute = l.pointee.requests_per_minute
            x.cost = l.pointee.cost
            x.burst = l.pointee.burst
            o.limit = x
        }
        if let c = opts.pointee.credentials {
            guard let ring = credentialsEngine(c), pool.owns(ring) else {
                throw TaskGateError.invalid("policy: credentials \(c) is not a live tg_credentials of this pool")
            }
            o.credentials = ring
        }
        if let f = opts.pointee.fallback_fn { o.fallback = unsafeBitCast(f, to: Processor.self) }
        if let f = opts.pointee.fallback {
            guard let q = pool.plugins.liveProcessor(UnsafeRawPointer(f)) else {
                throw TaskGateError.invalid("policy: fallback \(f) is not a processor of a plugin loaded in this pool")
            }
            o.fallbackPlugin = q
        }
        o.seed = opts.pointee.seed
        let policy = try pool.makePolicy(o)
        let h = UnsafeMutablePointer<tg_policy>.allocate(capacity: 1)
        h.initialize(to: tg_policy(magic: TG_POLICY_MAGIC, engine: Unmanaged.passUnretained(policy).toOpaque()))
        keep(pool, UnsafeMutableRawPointer(h), policy)
        out.pointee = h
    } catch let e as TaskGateError {
        return fail(e)
    } catch { return fail(TG_EINTERNAL, "tg_policy_create: \(error)") }
    return ok()
}

@_cdecl("tg_pool_set_policy")
public func tg_pool_set_policy(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?,
                               _ h: UnsafePointer<tg_policy>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_set_policy") else { return badHandleCode(p) }
    var policy: Policy? = nil
    if let h {
        guard let q = policyEngine(h) else { return fail(TG_EBADHANDLE, "tg_pool_set_policy: \(h) is not a live tg_policy") }
        policy = q
    }
    do { try pool.setPolicy(policy, group: group) } catch { return fail(error) }
    return ok()
}

/// The policy and the breaker of `key`; nil with `code` (and the error) set.
private func breaker(_ h: UnsafePointer<tg_policy>?, _ key: UnsafePointer<CChar>?, _ function: StaticString,
                     _ code: inout Int32) -> (policy: Policy, breaker: CircuitBreaker)? {
    guard let h else { code = fail(TG_EINVAL, "\(function): policy is NULL"); return nil }
    guard let policy = policyEngine(h) else { code = fail(TG_EBADHANDLE, "\(function): \(h) is not a live tg_policy"); return nil }
    guard policy.options.breaker != nil, let b = policy.key(key.map { String(cString: $0) } ?? "").breaker else {
        code = fail(TG_EINVAL, "\(function): the policy has no breaker")
        return nil
    }
    return (policy, b)
}

private let breakerStateSize = UInt32(MemoryLayout<tg_breaker_state>.size)

@_cdecl("tg_policy_breaker_state")
public func tg_policy_breaker_state(_ h: UnsafePointer<tg_policy>?, _ key: UnsafePointer<CChar>?,
                                    _ out: UnsafeMutablePointer<tg_breaker_state>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_policy_breaker_state: out is NULL") }
    guard out.pointee.struct_size == breakerStateSize else {
        return fail(TG_EVERSION, "tg_policy_breaker_state: out->struct_size is \(out.pointee.struct_size), this library knows \(breakerStateSize) (use TG_BREAKER_STATE_INIT)")
    }
    var code: Int32 = 0
    guard let (policy, b) = breaker(h, key, "tg_policy_breaker_state", &code) else { return code }
    let s = b.snapshot(now: policy.clock.now())
    out.pointee.state = s.state.rawValue
    out.pointee.generation = s.generation
    out.pointee.consecutive_failures = UInt32(clamping: s.consecutiveFailures)
    out.pointee.half_open_successes = UInt32(clamping: s.halfOpenSuccesses)
    out.pointee.probes_admitted = UInt32(clamping: s.probesAdmitted)
    out.pointee.window_calls = UInt32(clamping: s.windowCalls)
    out.pointee.window_failures = UInt32(clamping: s.windowFailures)
    out.pointee.window_slow = UInt32(clamping: s.windowSlow)
    out.pointee.opened_at_ns = s.openedAt
    out.pointee.rejected = UInt64(s.rejected)
    out.pointee.times_opened = UInt64(s.timesOpened)
    return ok()
}

@_cdecl("tg_policy_breaker_command")
public func tg_policy_breaker_command(_ h: UnsafeMutablePointer<tg_policy>?, _ key: UnsafePointer<CChar>?, _ command: Int32) -> Int32 {
    guard let c = CircuitBreaker.Command(rawValue: command) else {
        return fail(TG_EINVAL, "tg_policy_breaker_command: command \(command) is not TG_BREAKER_RESET, _FORCE_OPEN or _FORCE_CLOSED")
    }
    var code: Int32 = 0
    guard let (policy, b) = breaker(h.map { UnsafePointer($0) }, key, "tg_policy_breaker_command", &code) else { return code }
    b.apply(c, now: policy.clock.now())
    return ok()
}

// MARK: - Credentials

private func makeRing(_ pool: TaskPool, _ list: [Credential], _ cooldownMs: Int64,
                      _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_credentials>?>) throws(TaskGateError) {
    let ring = try CredentialRing(list, cooldown: cooldownMs < 0 ? 60_000_000_000 : nanos(cooldownMs))
    pool.adopt(ring)
    let h = UnsafeMutablePointer<tg_credentials>.allocate(capacity: 1)
    h.initialize(to: tg_credentials(magic: TG_CREDS_MAGIC, engine: Unmanaged.passUnretained(ring).toOpaque()))
    keep(pool, UnsafeMutableRawPointer(h), ring)
    out.pointee = h
}

@_cdecl("tg_credentials_create")
public func tg_credentials_create(_ p: UnsafeMutablePointer<tg_pool>?, _ list: UnsafePointer<tg_credential>?, _ nIn: UInt,
                                  _ cooldownMs: Int64, _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_credentials>?>?) -> Int32 {
    guard let pool = engine(p, "tg_credentials_create") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_credentials_create: out is NULL") }
    out.pointee = nil
    let n = Int(bitPattern: nIn)
    guard n > 0, n <= 1024, let list else { return fail(TG_EINVAL, "tg_credentials_create: give 1 .. 1024 credentials (n is \(nIn)\(list == nil ? ", list is NULL" : ""))") }
    var creds: [Credential] = []
    for k in 0..<n {
        let c = list[k]
        guard c.struct_size == UInt32(MemoryLayout<tg_credential>.size) else {
            return fail(TG_EVERSION, "tg_credentials_create: list[\(k)].struct_size is \(c.struct_size), this library knows \(MemoryLayout<tg_credential>.size) (use TG_CREDENTIAL_INIT)")
        }
        guard let key = c.key, key.pointee != 0 else { return fail(TG_EINVAL, "tg_credentials_create: list[\(k)].key is NULL or empty") }
        creds.append(Credential(key: String(cString: key), baseURL: c.base_url.map { String(cString: $0) }, model: c.model.map { String(cString: $0) }))
    }
    do { try makeRing(pool, creds, cooldownMs, out) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_credentials_from_env")
public func tg_credentials_from_env(_ p: UnsafeMutablePointer<tg_pool>?, _ prefix: UnsafePointer<CChar>?, _ cooldownMs: Int64,
                                    _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_credentials>?>?) -> Int32 {
    guard let pool = engine(p, "tg_credentials_from_env") else { return badHandleCode(p) }
    guard let out, let prefix else { return fail(TG_EINVAL, "tg_credentials_from_env: prefix or out is NULL") }
    out.pointee = nil
    do {
        let creds = try CredentialRing.fromEnvironment(prefix: String(cString: prefix))
        try makeRing(pool, creds, cooldownMs, out)
    } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_credentials_status_get")
public func tg_credentials_status_get(_ h: UnsafePointer<tg_credentials>?, _ out: UnsafeMutablePointer<tg_credentials_status>?) -> Int32 {
    guard let h, let out else { return fail(TG_EINVAL, "tg_credentials_status_get: creds or out is NULL") }
    guard out.pointee.struct_size == UInt32(MemoryLayout<tg_credentials_status>.size) else {
        return fail(TG_EVERSION, "tg_credentials_status_get: out->struct_size is \(out.pointee.struct_size) (use TG_CREDENTIALS_STATUS_INIT)")
    }
    guard let ring = credentialsEngine(h) else { return fail(TG_EBADHANDLE, "tg_credentials_status_get: \(h) is not a live tg_credentials") }
    let s = ring.status(now: ring.clockNow())
    out.pointee.count = UInt32(s.count)
    out.pointee.current = UInt32(s.current)
    out.pointee.available = UInt32(s.available)
    out.pointee.exhausted = UInt32(s.exhausted)
    out.pointee.cooling_down = UInt32(s.coolingDown)
    return ok()
}

// MARK: - Worker health

@_cdecl("tg_pool_worker_health")
public func tg_pool_worker_health(_ p: UnsafeMutablePointer<tg_pool>?, _ worker: UInt32,
                                  _ out: UnsafeMutablePointer<tg_worker_health>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_worker_health") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_worker_health: out is NULL") }
    guard out.pointee.struct_size == UInt32(MemoryLayout<tg_worker_health>.size) else {
        return fail(TG_EVERSION, "tg_pool_worker_health: out->struct_size is \(out.pointee.struct_size) (use TG_WORKER_HEALTH_INIT)")
    }
    do {
        let (h, healthy) = try pool.health(worker: Int(worker))
        out.pointee.healthy = healthy ? 1 : 0
        out.pointee.consecutive_failures = UInt32(clamping: h.consecutiveFailures)
        out.pointee.recovery_attempts = UInt32(clamping: h.recoveryAttempts)
        out.pointee.total_recoveries = UInt32(clamping: h.totalRecoveries)
        out.pointee.last_status_code = h.lastStatusCode
        out.pointee.failures = UInt64(h.failures)
    } catch { return fail(error) }
    return ok()
}

// MARK: - Inside a processor

@inline(__always) private func taskRecord(_ ctx: UnsafePointer<tg_task_ctx>) -> UnsafeMutablePointer<tgs_task> {
    UnsafeMutableRawPointer(mutating: ctx).assumingMemoryBound(to: tgs_task.self)
}

@_cdecl("tg_task_attempt")
public func tg_task_attempt(_ ctx: UnsafePointer<tg_task_ctx>?) -> Int32 {
    guard let ctx else { return 0 }
    return Int32(clamping: tgs_load_relaxed_u32(&taskRecord(ctx).pointee.attempts))
}

@_cdecl("tg_task_set_status_code")
public func tg_task_set_status_code(_ ctx: UnsafeMutablePointer<tg_task_ctx>?, _ code: Int32) -> Int32 {
    guard let ctx else { return fail(TG_EINVAL, "tg_task_set_status_code: ctx is NULL") }
    if let r = tgs_policy_of(taskRecord(ctx)) { r.pointee.status_code = code }
    return ok()
}

@_cdecl("tg_task_set_retry_after")
public func tg_task_set_retry_after(_ ctx: UnsafeMutablePointer<tg_task_ctx>?, _ ms: Int64) -> Int32 {
    guard let ctx else { return fail(TG_EINVAL, "tg_task_set_retry_after: ctx is NULL") }
    guard ms >= 0 else { return fail(TG_EINVAL, "tg_task_set_retry_after: ms is \(ms); must not be negative") }
    // At most a year: later instants on the policy clock must not overflow.
    if let r = tgs_policy_of(taskRecord(ctx)) { r.pointee.retry_after_ns = nanos(min(ms, 31_536_000_000)) }
    return ok()
}

@_cdecl("tg_task_credential")
public func tg_task_credential(_ ctx: UnsafePointer<tg_task_ctx>?, _ out: UnsafeMutablePointer<tg_credential>?) -> Int32 {
    guard let ctx, let out else { return fail(TG_EINVAL, "tg_task_credential: ctx or out is NULL") }
    guard out.pointee.struct_size == UInt32(MemoryLayout<tg_credential>.size) else {
        return fail(TG_EVERSION, "tg_task_credential: out->struct_size is \(out.pointee.struct_size) (use TG_CREDENTIAL_INIT)")
    }
    guard let r = tgs_policy_of(taskRecord(ctx)), r.pointee.credential >= 0, let key = r.pointee.cred_key else {
        return fail(TG_ENOTFOUND, "tg_task_credential: the task's policy has no credentials")
    }
    out.pointee.index = UInt32(r.pointee.credential)
    out.pointee.key = key
    out.pointee.base_url = r.pointee.cred_base_url
    out.pointee.model = r.pointee.cred_model
    return ok()
}
