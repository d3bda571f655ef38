import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// A task's state and result, as a view into pool-owned memory that stays
/// valid until the pool is freed.
public struct TaskResultView {
    public var status: TaskStatus
    public var seq: UInt64
    public var id: UnsafePointer<CChar>?
    public var group: UnsafePointer<CChar>?
    public var output: UnsafeRawPointer?
    public var outputLength: Int
    public var error: UnsafePointer<CChar>?
    public var attempts: UInt32
    public var worker: Int32
    public var submitNanoseconds: Int64
    public var startNanoseconds: Int64
    public var endNanoseconds: Int64
    public var queueNanoseconds: Int64
    /// TG_RESULT_* bits.
    public var flags: UInt32 = 0
    /// The status code the processor last reported (tasks under a policy).
    public var statusCode: Int32 = 0
    /// The delay waited before each retry, in ns (pool-owned).
    public var retryDelays = UnsafeBufferPointer<Int64>(start: nil, count: 0)
    /// With `ResultFlags.cacheMiss`: why the cache could not answer
    /// ("expired: ..."), pool-owned. nil otherwise.
    public var cacheReason: UnsafePointer<CChar>? = nil
}

public struct PoolStats: Sendable {
    public var submitted: Int
    public var succeeded: Int
    public var failed: Int
    public var timedOut: Int
    public var cancelled: Int
    public var skipped: Int
    public var rejected: Int
    public var ended: Int { succeeded + failed + timedOut + cancelled + skipped + rejected }
}

public enum ShutdownMode: Sendable { case drain, abort }

private let failedWithoutMessage: StaticString = "the processor reported failure"
let abortNote = "cancelled: the pool was shut down (abort)"
public let cancelAllNote = "cancelled: the pool's tasks were cancelled"

extension TaskPool {
    // MARK: - Threads

    /// Starts the workers; on failure stops those already started and throws.
    func startThreads() throws(TaskGateError) {
        for w in workers {
            var tid = pthread_t()
            let ctx = Unmanaged.passUnretained(w).toOpaque()
            let rc = pthread_create(&tid, nil, { arg in
                Unmanaged<Worker>.fromOpaque(arg!).takeUnretainedValue().run()
                return nil
            }, ctx)
            if rc != 0 {
                let started = threads.count
                requestStop()
                joinThreads()
                throw .outOfMemory("could not start worker thread \(started + 1) of \(workerCount): \(String(cString: strerror(rc)))")
            }
            threads.append(tid)
        }
    }

    /// Starts a timer's thread on first use. If it cannot be started, the
    /// next entry tries again (and this one is acted on then).
    func startTimer(_ timer: DeadlineTimer) {
        if tgs_load_u32(timer.started) != 0 { return }
        submitLock.lock()
        if tgs_load_u32(timer.started) == 0 && timer.start() {
            tgs_store_u32(timer.started, 1)
        }
        submitLock.unlock()
    }

    func requestStop() {
        tgs_store_u32(stopping, 1)
        tgs_fence_sc()
        for w in 0..<workerCount {
            tgs_store_u32(sleepWords + w * 16, 1)
            tgs_futex_wake(sleepWords + w * 16, 1)
        }
        // Workers blocked on a concurrency permit must see the stop too.
        tgs_add_sc_u32(permits, UInt32(workerCount))
        tgs_futex_wake(permits, Int32.max)
    }

    func joinThreads() {
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
        if tgs_load_u32(deadlines.started) != 0 { deadlines.stop() }
        if tgs_load_u32(delays.started) != 0 { delays.stop() }
        threadsJoined = true
    }

    func freeStorage() {
        let n = tasks.count
        for i in 0..<n {
            let t = task(i)
            free(t.pointee.output)
            free(t.pointee.error)
            free(t.pointee.note)
        }
        for g in groupNames { free(UnsafeMutablePointer(mutating: g)) }
        for k in 0..<policyRecords.count { free(policyRecords.pointer(k).pointee.delays) }
        policyRecords.release()
        tasks.release()
        extras.release()
        edges.release()
        claims.release()
        completionLog.release()
        groups.release()
        bytes.release()
        ids.release()
        normalizer.release()
        paths.release()
        words.deallocate()
        UnsafeMutableRawPointer(endCounts).deallocate()
        for lane in 0..<3 { injectors[lane].release() }
        injectors.deallocate()
        for k in 0..<(workerCount * 3) { deques[k].release() }
        deques.deallocate()
        UnsafeMutableRawPointer(sleepWords).deallocate()
    }

    // MARK: - Waiting

    /// Waits until `condition` holds or the timeout (ns; negative: none) passes.
    func waitUntil(timeout: Int64, log: Bool = false, _ condition: () -> Bool) -> Bool {
        if condition() { return true }
        if timeout == 0 { return false }
        let deadline = timeout < 0 ? Int64.max : tgs_monotonic_ns() &+ timeout
        tgs_add_sc_i32(waiterCount, 1)
        if log { tgs_add_sc_i32(logWaiters, 1) }
        defer {
            if log { tgs_add_sc_i32(logWaiters, -1) }
            tgs_add_sc_i32(waiterCount, -1)
        }
        while true {
            let seq = tgs_load_u32(waitSeq)
            tgs_fence_sc()
            if condition() { return true }
            var remaining: Int64 = -1
            if deadline != Int64.max {
                remaining = deadline - tgs_monotonic_ns()
                if remaining <= 0 { return false }
            }
            _ = tgs_futex_wait(waitSeq, seq, remaining)
        }
    }

    @inline(__always) func hasEnded(_ i: Int32) -> Bool {
        tgs_load_u32(&task(i).pointee.state) >= UInt32(TGS_STATE_FINAL_MIN)
    }

    /// Index of the task with this id.
    public func lookup(_ id: UnsafePointer<CChar>) throws(TaskGateError) -> Int32 {
        submitLock.lock()
        let i = ids.find(id, strlen(id), tasks: tasks)
        submitLock.unlock()
        if i < 0 { throw .notFound("no task with id '\(String(cString: id))'") }
        return Int32(i)
    }

    func lookupGroup(_ name: UnsafePointer<CChar>) throws(TaskGateError) -> Int32 {
        submitLock.lock()
        let g = groupIndex[TaskPool.key(name)]
        submitLock.unlock()
        guard let g else { throw .notFound("no group named '\(String(cString: name))'") }
        return g
    }

    public func wait(task i: Int32, timeout: Int64) throws(TaskGateError) {
        let t = task(i)
        tgs_or_sc_u32(&t.pointee.signals, UInt32(TGS_SIGNAL_WAITED))
        guard waitUntil(timeout: timeout, { hasEnded(i) }) else {
            throw .timedOut("task \(name(of: i)) has not ended within the timeout")
        }
    }

    /// Waits until every task of the group submitted before the call has ended.
    public func wait(group name: UnsafePointer<CChar>, timeout: Int64) throws(TaskGateError) {
        let g = try lookupGroup(name)
        submitLock.lock()
        let members = groupMembers[Int(g)]
        submitLock.unlock()
        let left = members.withUnsafeBufferPointer { m in
            waitEnded(count: m.count, timeout: timeout) { m[$0] }
        }
        if left > 0 {
            throw .timedOut("group '\(String(cString: name))': \(left) of its tasks have not ended within the timeout")
        }
    }

    /// Waits until the tasks numbered first ..< first + count have all ended.
    public func wait(from first: UInt64, count: Int, timeout: Int64) throws(TaskGateError) {
        let n = UInt64(submittedCount)
        guard first <= n, UInt64(count) <= n - first else {
            throw .notFound("tasks \(first) ..< \(first &+ UInt64(count)): only \(n) tasks were submitted")
        }
        let left = waitEnded(count: count, timeout: timeout) { Int32(truncatingIfNeeded: first + UInt64($0)) }
        if left > 0 { throw .timedOut("\(left) of tasks \(first) ..< \(first + UInt64(count)) have not ended within the timeout") }
    }

    /// Waits until every task submitted before the call has ended (tasks
    /// submitted meanwhile, by processors say, do not extend the wait).
    public func waitAll(timeout: Int64) throws(TaskGateError) {
        let n = submittedCount
        let left = waitEnded(count: n, timeout: timeout, hint: true) { Int32($0) }
        if left > 0 { throw .timedOut("\(left) tasks have not ended within the timeout") }
    }

    /// Waits until the tasks at(0) ..< at(count) have all ended; returns how
    /// many had not when the timeout passed (0: all ended).
    ///
    /// The waiter watches the highest-placed task that has not ended (setting
    /// its waited flag, so its finisher wakes waiters) and rescans when it
    /// ends. `low` only rises past ended tasks and `high` only falls, so the
    /// scanning is linear in `count` overall, and tasks that end roughly in
    /// order take one or two rounds. `hint` keeps, for the whole pool, how far
    /// from 0 every task is known to have ended, so repeated waits on a
    /// long-lived pool do not rescan the past.
    func waitEnded(count: Int, timeout: Int64, hint: Bool = false, at: (Int) -> Int32) -> Int {
        let deadline = timeout < 0 ? Int64.max : tgs_monotonic_ns() &+ timeout
        var low = hint ? min(Int(tgs_load_i64(endedPrefix)), count) : 0
        var high = count - 1
        while true {
            while low <= high && hasEnded(at(low)) { low += 1 }
            if hint && Int64(low) > tgs_load_i64(endedPrefix) { tgs_store_i64(endedPrefix, Int64(low)) }
            if low > high { return 0 }
            while high > low && hasEnded(at(high)) { high -= 1 }
            let watched = at(high)
            tgs_or_sc_u32(&task(watched).pointee.signals, UInt32(TGS_SIGNAL_WAITED))
            let remaining = deadline == Int64.max ? -1 : max(0, deadline - tgs_monotonic_ns())
            if !waitUntil(timeout: remaining, { hasEnded(watched) }) {
                return (low...high).reduce(0) { $0 + (hasEnded(at($1)) ? 0 : 1) }
            }
        }
    }

    func name(of i: Int32) -> String {
        task(i).pointee.id.map { "'\(String(cString: $0))'" } ?? "#\(i)"
    }

    // MARK: - Results

    /// The task's status alone (one atomic load).
    public func status(_ i: Int32) -> TaskStatus {
        var raw = tgs_load_u32(&task(i).pointee.state)
        if raw == UInt32(TGS_STATE_FINALIZING) { raw = UInt32(TGS_STATE_RUNNING) }
        return TaskStatus(rawValue: raw) ?? .running
    }

    public func result(_ i: Int32) -> TaskResultView {
        let t = task(i)
        let status = status(i)
        var v = TaskResultView(
            status: status, seq: UInt64(i), id: t.pointee.id,
            group: t.pointee.group >= 0 ? groupNameUnlocked(t.pointee.group) : nil,
            output: nil, outputLength: 0, error: nil, attempts: 0, worker: -1,
            submitNanoseconds: t.pointee.submit_ns, startNanoseconds: 0, endNanoseconds: 0, queueNanoseconds: 0)
        // Calls so far, also while a retrying task waits for its next attempt.
        v.attempts = tgs_load_relaxed_u32(&t.pointee.attempts)
        guard status.isFinal else { return v }
        // Ended: every field below was written before the final status was published.
        v.worker = tgs_load_relaxed_i32(&t.pointee.worker)
        v.startNanoseconds = tgs_load_relaxed_i64(&t.pointee.start_ns)
        v.endNanoseconds = t.pointee.end_ns
        if v.startNanoseconds > 0 { v.queueNanoseconds = v.startNanoseconds - t.pointee.ready_ns }
        let bits = t.pointee.result_bits
        v.flags = bits & UInt8(TGS_RESULT_EXHAUSTED_RECOVERY) != 0 ? ResultFlags.exhaustedRecovery : 0
        if bits & UInt8(TGS_RESULT_CACHE_HIT) != 0 { v.flags |= ResultFlags.cacheHit }
        if bits & UInt8(TGS_RESULT_CACHE_MISS) != 0 {
            v.flags |= ResultFlags.cacheMiss
            v.cacheReason = cacheMissReason(i)
        }
        if let r = tgs_policy_of(t) {
            v.flags |= r.pointee.flags
            v.statusCode = r.pointee.status_code
            let n = Int(tgs_load_u32(&r.pointee.n_delays))  // the count first: it covers written values
            v.retryDelays = UnsafeBufferPointer(start: n > 0 ? r.pointee.delays : nil, count: n)
        }
        switch status {
        case .succeeded, .failed:
            v.output = UnsafeRawPointer(t.pointee.output)
            v.outputLength = Int(t.pointee.output_len)
            if status == .failed {
                v.error = t.pointee.error.map { UnsafePointer($0) }
                    ?? UnsafeRawPointer(failedWithoutMessage.utf8Start).assumingMemoryBound(to: CChar.self)
            }
        default:
            // A processor that was cut short may still be writing its own fields.
            v.error = t.pointee.note.map { UnsafePointer($0) }
        }
        return v
    }

    private func groupNameUnlocked(_ g: Int32) -> UnsafePointer<CChar> {
        submitLock.lock()
        defer { submitLock.unlock() }
        return groupNames[Int(g)]
    }

    /// The next ended task after `cursor` in completion order.
    public func nextCompleted(cursor: inout UInt64, timeout: Int64) throws(TaskGateError) -> Int32 {
        let c = Int64(clamping: cursor)
        let got = waitUntil(timeout: timeout, log: true) {
            tgs_load_i64(completed) > c || (tgs_load_u32(closed) != 0 && c >= tgs_load_i64(submitted))
        }
        if tgs_load_i64(completed) > c {
            let slot = logSlot(Int(c))
            var v = tgs_load_i32(slot)
            while v == 0 { tgs_cpu_relax(); v = tgs_load_i32(slot) }  // its finisher is between two stores
            cursor += 1
            return v - 1
        }
        if got { throw .noMore }
        throw .timedOut("no task ended within the timeout")
    }

    public func stats() -> PoolStats {
        func n(_ s: TaskStatus) -> Int { Int(endedCount(Int(s.rawValue) - 4)) }
        return PoolStats(submitted: submittedCount, succeeded: n(.succeeded), failed: n(.failed),
                         timedOut: n(.timedOut), cancelled: n(.cancelled), skipped: n(.skipped),
                         rejected: n(.rejected))
    }

    // MARK: - Groups: partial failure

    /// Sets group `name`'s policy (creating the group when new). It applies
    /// from now on: a failure already past is judged again only when the
    /// next member fails. `critical` here replaces what TG_TASK_CRITICAL
    /// tasks set.
    public func setGroup(_ name: UnsafePointer<CChar>, _ p: GroupPolicy) throws(TaskGateError) {
        guard name.pointee != 0 else { throw .invalid("group name is empty") }
        guard p.minRequired >= 0, p.minRequired <= Int(UInt32.max) else { throw .invalid("min_required must be 0 or more, got \(p.minRequired)") }
        guard p.minFraction.isFinite, p.minFraction >= 0, p.minFraction <= 1 else {
            throw .invalid("min_fraction must be between 0 and 1, got \(p.minFraction)")
        }
        guard !p.cancelAll || p.critical else { throw .invalid("cancel_all needs critical: only a critical group's failure cancels the pool") }
        submitLock.lock()
        defer { submitLock.unlock() }
        guard let g = internGroup(name) else { throw .outOfMemory("group '\(String(cString: name))'") }
        let gs = group(g)
        tgs_store_u32(&gs.pointee.minRequired, UInt32(p.minRequired))
        tgs_store_u32(&gs.pointee.minFractionBp, p.minRequired > 0 ? 0 : UInt32((p.minFraction * 10000).rounded()))
        tgs_store_u32(&gs.pointee.cancelAll, p.cancelAll ? 1 : 0)
        tgs_store_u32(&gs.pointee.critical, p.critical ? 1 : 0)
    }

    /// The group's policy as it stands (critical, cancel-all, requirement).
    func groupPolicy(_ g: Int32) -> GroupPolicy {
        let gs = group(g)
        let bp = tgs_load_u32(&gs.pointee.minFractionBp)
        return GroupPolicy(critical: tgs_load_u32(&gs.pointee.critical) != 0, cancelAll: tgs_load_u32(&gs.pointee.cancelAll) != 0,
                           minRequired: Int(tgs_load_u32(&gs.pointee.minRequired)), minFraction: Double(bp) / 10000)
    }

    /// The group's outcome now, over the members submitted so far.
    public func groupOutcome(_ name: UnsafePointer<CChar>) throws(TaskGateError) -> GroupOutcome {
        let g = try lookupGroup(name)
        submitLock.lock()
        let members = groupMembers[Int(g)]
        submitLock.unlock()
        let list = members.map { i -> (id: String?, status: TaskStatus, error: String?) in
            let r = result(i)
            return (r.id.map { String(cString: $0) }, r.status, r.status.isFinal ? r.error.map { String(cString: $0) } : nil)
        }
        let required = Int(groupRequired(group(g), of: UInt32(clamping: list.count)))
        return GroupOutcome.evaluate(name: String(cString: name), policy: groupPolicy(g), required: required, members: list)
    }

    /// Member task indices of the group, in submission order.
    public func groupMemberIndices(_ name: UnsafePointer<CChar>) throws(TaskGateError) -> [Int32] {
        let g = try lookupGroup(name)
        submitLock.lock()
        defer { submitLock.unlock() }
        return groupMembers[Int(g)]
    }

    // MARK: - Cancellation

    public func cancel(task i: Int32) throws(TaskGateError) {
        if !cancel(i, note: "cancelled") { throw .alreadyFinished(String(name(of: i).dropFirst().dropLast())) }
    }

    public func cancel(group name: UnsafePointer<CChar>) throws(TaskGateError) -> Int {
        let g = try lookupGroup(name)
        return cancelGroup(g, note: "cancelled: group '\(String(cString: name))' was cancelled")
    }

    /// Cancels every task submitted so far that has not ended; tasks not yet
    /// started will not start. The pool stays usable for later submissions.
    @discardableResult
    public func cancelAll(note: String = cancelAllNote) -> Int {
        submitLock.lock()  // no batch is half-wired while the watermark moves
        let n = submittedCount
        if tgs_load_i64(cancelBelow) < Int64(n) { tgs_store_sc_i64(cancelBelow, Int64(n)) }
        submitLock.unlock()
        var count = 0
        for i in 0..<n where cancel(Int32(i), note: note) { count += 1 }
        return count
    }

    // MARK: - Shutdown

    /// Stops accepting work and waits (ns; negative: forever) for it to end as `mode` says.
    public func shutdown(_ mode: ShutdownMode, timeout: Int64) throws(TaskGateError) {
        let deadline = timeout < 0 ? Int64.max : tgs_monotonic_ns() &+ timeout
        func left() -> Int64 { deadline == Int64.max ? -1 : max(0, deadline - tgs_monotonic_ns()) }
        submitLock.lock()
        accepting = false
        tgs_store_u32(closed, 1)
        submitLock.unlock()
        // Readers of the completion log may now be owed an end-of-results.
        tgs_add_sc_u32(waitSeq, 1)
        tgs_futex_wake(waitSeq, Int32.max)
        if threadsJoined { return }
        if mode == .abort {
            tgs_store_sc_i64(cancelBelow, Int64.max)
            for i in 0..<submittedCount { cancel(Int32(i), note: abortNote) }
        }
        try waitAll(timeout: left())
        // One caller at a time stops and joins the threads; a second waits
        // for the first and then finds them joined.
        shutdownLock.lock()
        defer { shutdownLock.unlock() }
        if threadsJoined { return }
        requestStop()
        let n = UInt32(workerCount)
        while true {
            let exited = tgs_load_u32(exitedWorkers)
            if exited >= n { break }
            // Workers outside a processor exit at once; only one still inside
            // a processor that has not returned can outlast the timeout.
            let inside = workersInsideProcessors()
            let remaining = left()
            if remaining == 0 && inside > 0 {
                throw .timedOut("\(inside) workers are still inside a processor that has not returned")
            }
            _ = tgs_futex_wait(exitedWorkers, exited, inside > 0 ? remaining : 1_000_000)
        }
        joinThreads()
    }

    /// Workers currently between claiming a task and returning from its processor.
    func workersInsideProcessors() -> Int {
        (0..<workerCount).filter { tgs_load_u32(sleepWords + $0 * 16 + 1) != 0 }.count
    }

    /// False once shutdown began.
    public var isAccepting: Bool {
        submitLock.lock(); defer { submitLock.unlock() }
        return accepting
    }

    /// Gets the pool ready to be freed. Refuses while anything is in flight.
    public func close() throws(TaskGateError) {
        if threadsJoined { return }
        let left = unfinishedCount()
        let busy = workersInsideProcessors()
        if left > 0 || busy > 0 {
            throw .busy("\(left) tasks have not ended and \(busy) processors are running; shut the pool down first")
        }
        try shutdown(.drain, timeout: -1)
        plugins.closeAll()
    }
}
