import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// TG_RESULT_* bits of a task's result.
public enum ResultFlags {
    public static let permanent: UInt32 = 1 << 0
    public static let retriesExhausted: UInt32 = 1 << 1
    public static let budgetExhausted: UInt32 = 1 << 2
    public static let breakerOpen: UInt32 = 1 << 3
    public static let fallback: UInt32 = 1 << 4
    public static let credentialsExhausted: UInt32 = 1 << 5
    public static let exhaustedRecovery: UInt32 = 1 << 6
    public static let limited: UInt32 = 1 << 7
    public static let rotated: UInt32 = 1 << 8
    /// The output came from the result cache; the processor did not run.
    public static let cacheHit: UInt32 = 1 << 9
    /// The task declared a cache, found no usable entry (the result says why) and ran.
    public static let cacheMiss: UInt32 = 1 << 10
    /// Each bit's name, bit k at index k (as events and the Python door spell them).
    public static let names = ["permanent", "retries_exhausted", "budget_exhausted", "breaker_open", "fallback",
                               "credentials_exhausted", "exhausted_recovery", "limited", "rotated", "cache_hit", "cache_miss"]
    /// The names of the bits set in `flags`, lowest bit first.
    public static func names(_ flags: UInt32) -> [String] {
        names.indices.filter { flags & (1 << UInt32($0)) != 0 }.map { names[$0] }
    }
}

/// What a processor's return value says (TG_TASK_*).
enum ProcessorCode {
    static let retry: Int32 = 2
    static let permanent: Int32 = 3
}

enum Admission { case run, fallback, deferred }

/// How policies act on tasks: around each attempt of a task under a policy,
/// `admit` before the processor runs (limits, credential, breaker) and
/// `settle` after it returned (breaker report, rotation, retry or end).
/// Tasks without a policy never reach this file.
extension TaskPool {
    // MARK: - Policies and scopes

    /// Keeps an object (a C handle's engine) alive as long as the pool.
    public func keepAlive(_ object: AnyObject) {
        submitLock.lock()
        kept.append(object)
        submitLock.unlock()
    }

    /// Makes a credential ring read this pool's clock.
    public func adopt(_ ring: CredentialRing) { ring.clock = clock }

    /// True when the ring was adopted by this pool.
    public func owns(_ ring: CredentialRing) -> Bool {
        submitLock.lock()
        defer { submitLock.unlock() }
        return kept.contains { $0 === ring }
    }

    /// A new policy of this pool (kept as long as the pool).
    public func makePolicy(_ options: PolicyOptions) throws(TaskGateError) -> Policy {
        let p = try Policy(options, clock: clock)
        p.ownerID = ObjectIdentifier(self)
        submitLock.lock()
        policies.append(p)
        submitLock.unlock()
        return p
    }

    /// Sets the policy of tasks that name none: for `group`, or (nil) for the
    /// whole pool. nil policy: clears it. Tasks already submitted keep theirs.
    public func setPolicy(_ policy: Policy?, group: UnsafePointer<CChar>?) throws(TaskGateError) {
        if let policy, policy.ownerID != ObjectIdentifier(self) { throw .invalid("the policy belongs to another pool") }
        submitLock.lock()
        defer { submitLock.unlock() }
        if let group {
            if group.pointee == 0 { throw .invalid("the group name is empty") }
            groupPolicies[TaskPool.key(group)] = policy
        } else {
            defaultPolicy = policy
        }
    }

    func policyForGroup(_ g: UnsafePointer<CChar>?) -> Policy? {
        guard let g, !groupPolicies.isEmpty else { return nil }
        return groupPolicies[TaskPool.key(g)]
    }

    /// Under submitLock: gives task `t` (with its extra) a policy record.
    func attachPolicy(_ policy: Policy, _ t: UnsafeMutablePointer<tgs_task>, _ s: TaskSpec, _ i: Int) throws(TaskGateError) {
        guard policy.ownerID == ObjectIdentifier(self) else { throw .invalid("\(describe(s.id, i)): its policy belongs to another pool") }
        guard policyRecords.reserve(1) else { throw .outOfMemory("\(describe(s.id, i)): no memory for its policy record") }
        let r = policyRecords.pointer(policyRecords.append())
        r.initialize(to: tgs_task_policy())
        r.pointee.policy = Unmanaged.passUnretained(policy).toOpaque()
        r.pointee.retry_after_ns = -1
        r.pointee.credential = -1
        if let k = s.key, k.pointee == 0 { throw .invalid("\(describe(s.id, i)): the policy key is empty") }
        if policy.keyed {
            let name: String
            if let k = s.key {
                name = String(cString: k)
            } else if let p = s.plugin, let owner = p.pointee.owner {
                name = Unmanaged<PluginProcessor>.fromOpaque(owner).takeUnretainedValue().name
            } else {
                name = ""
            }
            r.pointee.key = Unmanaged.passUnretained(policy.key(name)).toOpaque()
        }
        if let p = s.plugin, let fb = policy.options.fallbackPlugin {
            guard tgs_load_u64(&fb.pointee.magic) == TGP_PROC_MAGIC else {
                throw .pluginRefused("\(describe(s.id, i)): its policy's fallback processor is no longer loaded")
            }
            let same = fb.pointee.n_args == p.pointee.n_args && withUnsafeBytes(of: fb.pointee.types) { a in
                withUnsafeBytes(of: p.pointee.types) { b in a.prefix(Int(p.pointee.n_args)).elementsEqual(b.prefix(Int(p.pointee.n_args))) }
            }
            if !same {
                let name = { (q: UnsafeMutablePointer<tgp_proc>) in
                    q.pointee.owner.map { Unmanaged<PluginProcessor>.fromOpaque($0).takeUnretainedValue().signature } ?? "?"
                }
                throw .argumentMismatch("\(describe(s.id, i)): its policy's fallback takes \(name(fb)) but the task's processor takes \(name(p))")
            }
        }
        t.pointee.extra.pointee.policy = r
        t.pointee.flags |= UInt8(TGS_TASK_HAS_POLICY)
    }

    @inline(__always) func parts(_ r: UnsafeMutablePointer<tgs_task_policy>) -> (Policy, Policy.KeyState?) {
        let policy = Unmanaged<Policy>.fromOpaque(r.pointee.policy!).takeUnretainedValue()
        let key = r.pointee.key.map { Unmanaged<Policy.KeyState>.fromOpaque($0).takeUnretainedValue() }
        return (policy, key)
    }

    /// A try-submit's admission, under submitLock: the breaker must admit
    /// calls now and the key's limits have room, which it takes.
    func tryAdmit(_ t: UnsafeMutablePointer<tgs_task>, _ s: TaskSpec, _ i: Int) throws(TaskGateError) {
        guard let r = tgs_policy_of(t) else { return }
        let (_, key) = parts(r)
        guard let key else { return }
        let now = clock.now()
        if let b = key.breaker, b.wouldReject(now: now) {
            throw .limited("\(describe(s.id, i)): circuit breaker '\(key.name)' is \(b.snapshot(now: now).state.name)")
        }
        if let lim = key.limiter {
            guard lim.tryAcquire(now: now) else {
                let snap = lim.snapshot(now: now)
                throw .limited("\(describe(s.id, i)): key '\(key.name)' has no room now (\(snap.running) of \(lim.options.maxConcurrent == 0 ? "unlimited" : String(lim.options.maxConcurrent)) running, \(Int(snap.tokens)) tokens of \(Int(lim.options.capacity)))")
            }
            r.pointee.holds_slot = lim.options.maxConcurrent > 0 ? 1 : 0
            r.pointee.holds_token = lim.options.perMinute > 0 ? 1 : 0
        }
    }

    /// Undoes tryAdmit for a batch refused after it.
    func untryAdmit(_ t: UnsafeMutablePointer<tgs_task>) {
        guard let r = tgs_policy_of(t) else { return }
        releaseLimits(r)
    }

    /// Gives back the key's slot (handing it to a parked task) and tokens
    /// taken for a call that has not happened.
    func releaseLimits(_ r: UnsafeMutablePointer<tgs_task_policy>) {
        guard r.pointee.holds_slot != 0 || r.pointee.holds_token != 0, let lim = parts(r).1?.limiter else { return }
        if r.pointee.holds_token != 0 {
            r.pointee.holds_token = 0
            lim.refund()
        }
        if r.pointee.holds_slot != 0 {
            r.pointee.holds_slot = 0
            let next = lim.release()
            if next >= 0 {
                // The slot passes to the parked task (state QUEUED, in no queue).
                tgs_policy_of(task(next))!.pointee.holds_slot = 1
                enqueue(next, worker: -1)
                wakeWorkers(1)
            }
        }
    }

    /// A task that will not run after all (ended while queued, or while we
    /// held it): what it held goes back.
    func dropHeld(_ t: UnsafeMutablePointer<tgs_task>) {
        guard let r = tgs_policy_of(t) else { return }
        releaseLimits(r)
        if r.pointee.generation != 0, let b = parts(r).1?.breaker {
            b.release(CircuitBreaker.Ticket(generation: r.pointee.generation, probe: r.pointee.probe != 0))
            r.pointee.generation = 0
        }
    }

    // MARK: - Before an attempt

    /// Called by the worker that moved the task to RUNNING.
    /// `now` is the policy clock's reading (the start stamp on the monotonic clock).
    func admit(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ w: Worker, now: Int64) -> Admission {
        let r = t.pointee.extra.pointee.policy!
        let (policy, key) = parts(r)
        if let lim = key?.limiter {
            let d = lim.acquire(now: now, haveSlot: r.pointee.holds_slot != 0, prepaid: r.pointee.holds_token != 0, task: i) {
                // Under the limiter's lock, so a releaser that pops it finds it queued.
                tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_QUEUED)) != 0
            }
            switch d {
            case .granted:
                if lim.options.maxConcurrent > 0 { r.pointee.holds_slot = 1 }
                r.pointee.holds_token = lim.options.perMinute > 0 ? 1 : 0
            case .parked:
                r.pointee.flags |= ResultFlags.limited
                return .deferred
            case .gone:
                abandon(t)
                return .deferred
            case .retryAt(let at):
                r.pointee.flags |= ResultFlags.limited
                postpone(i, t, until: at)
                return .deferred
            }
        }
        if let ring = policy.options.credentials {
            switch ring.pick(now: now) {
            case .use(let k):
                let e = ring.entry(k)
                r.pointee.credential = Int32(k)
                r.pointee.cred_key = UnsafePointer(e.key)
                r.pointee.cred_base_url = e.baseURL.map { UnsafePointer($0) }
                r.pointee.cred_model = e.model.map { UnsafePointer($0) }
            case .waitUntil(let at):
                releaseLimits(r)
                postpone(i, t, until: at)
                return .deferred
            case .exhausted:
                releaseLimits(r)
                r.pointee.flags |= ResultFlags.credentialsExhausted
                let last = (0..<ring.count).compactMap { ring.entry($0).lastError }.last
                endEarly(i, t, w, .failed, "all \(ring.count) credentials are exhausted" + (last.map { " (last error: \($0))" } ?? ""))
                return .deferred
            }
        }
        if let b = key?.breaker {
            if let ticket = b.allow(now: now) {
                r.pointee.generation = ticket.generation
                r.pointee.probe = ticket.probe ? 1 : 0
            } else {
                releaseLimits(r)
                clearCredential(r)
                r.pointee.flags |= ResultFlags.breakerOpen
                let plugin = t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0
                if plugin ? policy.options.fallbackPlugin != nil : policy.options.fallback != nil {
                    r.pointee.flags |= ResultFlags.fallback
                    return .fallback
                }
                endEarly(i, t, w, .rejected, "rejected: circuit breaker '\(key!.name)' is open")
                return .deferred
            }
        }
        if t.pointee.attempts == 0, let budget = policy.budget { budget.deposit(now: now) }
        r.pointee.holds_token = 0  // spent on this call
        r.pointee.attempt_start = now
        return .run
    }

    /// Runs the policy's fallback in place of the task's processor.
    func callFallback(_ t: UnsafeMutablePointer<tgs_task>) -> Int32 {
        let (policy, _) = parts(t.pointee.extra.pointee.policy!)
        if t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0 {
            return tgp_call_fallback(t, policy.options.fallbackPlugin!)
        }
        return tgs_call_processor_as(t, unsafeBitCast(policy.options.fallback!, to: UnsafeMutableRawPointer.self), t.pointee.user)
    }

    @inline(__always) func clearCredential(_ r: UnsafeMutablePointer<tgs_task_policy>) {
        r.pointee.credential = -1
        r.pointee.cred_key = nil
        r.pointee.cred_base_url = nil
        r.pointee.cred_model = nil
    }

    /// Hands a RUNNING task back to QUEUED, to be queued again at `until`
    /// (the policy clock).
    func postpone(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, until: Int64) {
        guard tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_QUEUED)) != 0 else {
            abandon(t)
            return
        }
        schedule(i, attempt: tgs_load_relaxed_u32(&t.pointee.attempts), at: until)
    }

    func schedule(_ i: Int32, attempt: UInt32, at: Int64) {
        startTimer(delays)
        delays.add(task: i, attempt: attempt, deadline: at)
    }

    /// The task was ended by someone else while this worker held it RUNNING.
    func abandon(_ t: UnsafeMutablePointer<tgs_task>) {
        dropHeld(t)
        releaseProcessor(t)
    }

    /// Ends a RUNNING task that never called its processor.
    func endEarly(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ w: Worker, _ st: TaskStatus, _ message: String) {
        guard tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_FINALIZING)) != 0 else {
            abandon(t)
            return
        }
        if st == .failed {
            free(t.pointee.error)
            t.pointee.error = strdup(message)
        } else {
            t.pointee.note = strdup(message)
        }
        t.pointee.end_ns = tgs_monotonic_ns()
        releaseProcessor(t)
        finish(i, st, worker: w.index)
    }

    /// The delay timer's action: a retry's (or a limit's) wait is over.
    func delayOver(_ i: Int32, attempt: UInt32) {
        let t = task(i)
        let state = tgs_load_u32(&t.pointee.state)
        if state == UInt32(TGS_STATE_QUEUED) && tgs_load_relaxed_u32(&t.pointee.attempts) == attempt {
            enqueue(i, worker: -1)
            wakeWorkers(1)
        } else if state >= UInt32(TGS_STATE_FINAL_MIN) {
            dropHeld(t)
        }
    }

    // MARK: - After an attempt

    /// Called by the worker whose processor call for task `i` returned `rc`.
    /// `now` is the policy clock's reading (`end` on the monotonic clock).
    func settle(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ w: Worker, rc: Int32, fallback: Bool, end: Int64,
                now: Int64, exhausted: Bool) {
        let r = t.pointee.extra.pointee.policy!
        let (policy, key) = parts(r)
        let signalled = tgs_load_u32(&t.pointee.signals) & UInt32(TGS_SIGNAL_CANCEL) != 0
        let success = rc == 0
        let permanent = rc == ProcessorCode.permanent
            || (rc != 0 && rc != ProcessorCode.retry && policy.options.retry.failedIsPermanent)
        releaseLimits(r)
        if r.pointee.generation != 0, let b = key?.breaker {
            let ticket = CircuitBreaker.Ticket(generation: r.pointee.generation, probe: r.pointee.probe != 0)
            r.pointee.generation = 0
            if signalled && endedStatus(t) != .timedOut {
                b.release(ticket)  // cancelled: the call says nothing about the service
            } else {
                b.report(ticket, success: success && !signalled, duration: now - r.pointee.attempt_start, now: now)
            }
        }
        if r.pointee.credential >= 0, let ring = policy.options.credentials {
            if !success && !signalled {
                let message = t.pointee.error.map { String(cString: $0) } ?? ""
                if ring.report(Int(r.pointee.credential), statusCode: r.pointee.status_code, message: message,
                               retryAfter: r.pointee.retry_after_ns >= 0 ? r.pointee.retry_after_ns : nil, now: now) {
                    r.pointee.flags |= ResultFlags.rotated
                }
            }
            clearCredential(r)
            if !signalled, let e = t.pointee.error, ring.containsSecret(e) {
                let clean = ring.redact(String(cString: e))
                free(e)
                t.pointee.error = strdup(clean)
            }
        }
        if signalled {
            discardLate(t)
            return
        }
        if fallback || success {
            finalize(i, t, w, success ? .succeeded : .failed, end: end, exhausted: exhausted)
            return
        }
        let retry = policy.options.retry
        let attempts = Int(t.pointee.attempts)
        if !permanent && attempts < retry.maxAttempts {
            if let budget = policy.budget, !budget.tryWithdraw(now: now) {
                r.pointee.flags |= ResultFlags.budgetExhausted
                finalize(i, t, w, .failed, end: end, exhausted: exhausted)
                return
            }
            let delay: Int64
            if retry.honorRetryAfter && r.pointee.retry_after_ns >= 0 {
                delay = r.pointee.retry_after_ns
            } else {
                let u = PolicyRandom.unit(seed: policy.options.seed, stream: UInt64(i), n: UInt64(attempts))
                delay = retry.backoff.delay(attempts, previous: r.pointee.last_delay_ns, unit: u)
            }
            // A canceller may end the task while we are here, and its result
            // is read at once: the buffer is made once and never moves, and
            // the count is published after the value it covers.
            let n = Int(r.pointee.n_delays)
            let room = min(retry.maxAttempts - 1, TaskPool.maxRecordedDelays)
            if r.pointee.delays == nil, let b = malloc(room * 8) {
                r.pointee.delays = b.assumingMemoryBound(to: Int64.self)
            }
            if n < room, let d = r.pointee.delays {
                d[n] = delay
                tgs_store_u32(&r.pointee.n_delays, UInt32(n + 1))
            }
            r.pointee.last_delay_ns = delay
            r.pointee.retry_after_ns = -1
            if logs(.info) {
                observeRetry(i, attempt: attempts, delayNs: delay, error: t.pointee.error.map { String(cString: $0) }, worker: w.index)
            }
            free(t.pointee.output)
            t.pointee.output = nil
            t.pointee.output_len = 0
            free(t.pointee.error)
            t.pointee.error = nil
            guard tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_QUEUED)) != 0 else {
                discardLate(t)
                return
            }
            if delay <= 0 {
                enqueue(i, worker: -1)
                wakeWorkers(1)
            } else {
                schedule(i, attempt: UInt32(attempts), at: now &+ delay)
            }
            return
        }
        if permanent {
            r.pointee.flags |= ResultFlags.permanent
        } else if retry.maxAttempts > 1 {
            r.pointee.flags |= ResultFlags.retriesExhausted
        }
        finalize(i, t, w, .failed, end: end, exhausted: exhausted)
    }

    private func finalize(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ w: Worker, _ st: TaskStatus, end: Int64, exhausted: Bool) {
        guard tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_FINALIZING)) != 0 else {
            discardLate(t)
            return
        }
        if exhausted { t.pointee.result_bits |= UInt8(TGS_RESULT_EXHAUSTED_RECOVERY) }
        t.pointee.end_ns = end
        releaseProcessor(t)
        finish(i, st, worker: w.index)
    }

    /// A late result of a task someone else ended: thrown away.
    func discardLate(_ t: UnsafeMutablePointer<tgs_task>) {
        free(t.pointee.output)
        t.pointee.output = nil
        t.pointee.output_len = 0
        free(t.pointee.error)
        t.pointee.error = nil
        dropHeld(t)
        releaseProcessor(t)
    }

    /// The final status a canceller or the timer is publishing.
    func endedStatus(_ t: UnsafeMutablePointer<tgs_task>) -> TaskStatus {
        var s = tgs_load_u32(&t.pointee.state)
        while s == UInt32(TGS_STATE_FINALIZING) {
            tgs_cpu_relax()
            s = tgs_load_u32(&t.pointee.state)
        }
        return TaskStatus(rawValue: s) ?? .cancelled
    }

    // MARK: - Worker health

    /// Counts a failure on worker `w`. Returns whether to run a recover hook
    /// now, and whether the worker's recoveries are spent.
    func healthFailure(_ w: Worker, _ t: UnsafeMutablePointer<tgs_task>) -> (recover: Bool, exhausted: Bool) {
        let code = tgs_policy_of(t)?.pointee.status_code ?? 0
        let plugin = t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0
        let hasHook = plugin ? tgp_task_plugin(t).pointee.recover != nil : recoverHook != nil
        healthLock.lock()
        w.health.recordFailure(statusCode: code)
        let unhealthy = !w.health.isHealthy(threshold: unhealthyAfter)
        let canRecover = w.health.shouldAttemptRecovery(max: maxRecoveries)
        healthLock.unlock()
        let recover = unhealthy && canRecover && hasHook
        if recover && plugin { tgs_add_sc_u32(&tgp_task_plugin(t).pointee.recovering, 1) }
        return (recover, unhealthy && !canRecover && w.health.recoveryAttempts > 0)
    }

    func healthSuccess(_ w: Worker) {
        healthLock.lock()
        w.health.recordSuccess()
        healthLock.unlock()
    }

    /// Runs the recover hook for worker `w` after task `t` failed on it (the
    /// task is settled by now; a plugin's `recovering` count keeps it loaded).
    func recover(_ w: Worker, after t: UnsafeMutablePointer<tgs_task>, plugin: UnsafeMutablePointer<tgp_plugin>?) {
        tgs_store_sc_u32(w.busy, 1)
        let rc: Int32
        if let plugin {
            rc = tgp_call_recover(plugin, Int32(w.index))
            tgs_add_sc_u32(&plugin.pointee.recovering, UInt32.max)  // -1
        } else {
            rc = recoverHook!(owner, Int32(w.index), recoverUser)
        }
        tgs_store_u32(w.busy, 0)
        healthLock.lock()
        w.health.recordRecovery(success: rc == 0)
        healthLock.unlock()
    }

    /// Worker `k`'s health, and whether it is healthy.
    public func health(worker k: Int) throws(TaskGateError) -> (WorkerHealth, Bool) {
        guard k >= 0 && k < workerCount else { throw .outOfRange("worker \(k): the pool has workers 0 .. \(workerCount - 1)") }
        healthLock.lock()
        defer { healthLock.unlock() }
        let h = workers[k].health
        return (h, h.isHealthy(threshold: unhealthyAfter))
    }
}
