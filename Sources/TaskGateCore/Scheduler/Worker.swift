import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// One worker thread's own state. The search order for work, per priority lane
/// from high to low: own deque, the other workers' deques, the lane's injector.
/// A higher lane anywhere wins over a lower lane in one's own deque, so
/// contended workers run high priority first.
///
/// Everything the loop touches per task is reached through raw pointers
/// copied here at creation, so the hot path does no reference counting.
final class Worker: @unchecked Sendable {
    let index: Int
    unowned(unsafe) let pool: TaskPool
    /// This worker's deques, one per lane.
    let own: UnsafeMutablePointer<WorkDeque>
    let allDeques: UnsafeMutablePointer<WorkDeque>
    let injectors: UnsafeMutablePointer<Injector>
    let workerCount: Int
    /// Futex word this worker sleeps on; 1 means "woken".
    let sleepWord: UnsafeMutablePointer<UInt32>
    /// Non-zero while a processor runs on this worker (read by destroy).
    let busy: UnsafeMutablePointer<UInt32>
    var rng: UInt64
    /// End of the task this worker just ran, or 0. A worker going straight from
    /// one task to the next stamps the next one's start with
    /// max(this, its ready time) instead of reading the clock again (21 ns on
    /// the VMs measured; a third of an empty task's cost). Only for tasks with
    /// neither dependencies nor declared paths, whose ready time is their
    /// submission: the stamp is never before it, and late by at most the time
    /// to take the task. (A dependent's ready time is the end of the parent
    /// that released it, not necessarily the last parent to end; a writer's
    /// interval must show it never overlapped another writer.) Cleared
    /// whenever the worker idles or takes a task it does not run.
    var lastEnd: Int64 = 0
    /// Written under pool.healthLock, by this worker only (so it may read
    /// its own without the lock).
    var health = WorkerHealth()
    /// The pool clock's reading when this worker last called a processor,
    /// kept only while a health monitor watches a pool on a virtual clock.
    var clockStart: Int64 = .min

    init(index: Int, pool: TaskPool) {
        self.index = index
        self.pool = pool
        own = pool.deques + index * 3
        allDeques = pool.deques
        injectors = pool.injectors
        workerCount = pool.workerCount
        sleepWord = pool.sleepWords + index * 16
        busy = sleepWord + 1
        rng = 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
    }

    @inline(__always) func nextRandom() -> UInt64 {
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        return rng
    }

    /// The next task to run, or -1 when none is anywhere to be found.
    /// Per lane, high to low: own deque, the other workers' deques, then the
    /// injector. Whatever sits in a deque was taken from the injector before
    /// what is still there, so looking at the deques first keeps FIFO within a
    /// lane; and a worker reaches the injector about once per batch it takes.
    @inline(__always) func findWork() -> Int32 {
        for lane in 0..<3 {
            let t = own[lane].take()
            if t >= 0 { return t }
            if workerCount > 1 {
                let n = workerCount
                let start = Int(nextRandom() % UInt64(n))
                for k in 0..<n {
                    let v = (start + k) % n
                    if v == index { continue }
                    let s = allDeques[v * 3 + lane].steal()
                    if s >= 0 { return s }
                }
            }
            let injector = injectors[lane]
            if !injector.isEmpty {
                let extra = min(63, injector.count / workerCount)
                let t = injector.take(moving: extra, into: own[lane])
                if t >= 0 {
                    // Others may steal from what we just took.
                    if extra > 0 && workerCount > 1 { pool.wakeWorkers(1) }
                    return t
                }
            }
        }
        return -1
    }

    func run() {
        // Under a concurrency limit the permit is taken before looking for
        // work: a worker that found a task and then waited for a permit would
        // hold that task back while higher-priority ones went ahead. A worker
        // sleeps holding its permit; submitters wake sleepers, so the permit
        // holders are the ones woken.
        let limited = pool.maxConcurrency < pool.workerCount
        while true {
            if limited { pool.acquirePermit() }
            var t = findWork()
            if t < 0 {
                lastEnd = 0
                t = idle()
            }
            if t >= 0 { pool.execute(t, on: self) }
            if limited { pool.releasePermit() }
            if t < 0 && tgs_load_u32(pool.stopping) != 0 { break }
        }
        tgs_add_sc_u32(pool.exitedWorkers, 1)
        tgs_futex_wake(pool.exitedWorkers, Int32.max)
    }

    /// Faults in the chunk the submitter mapped ahead, if no other worker took it.
    /// Reading the size after winning the exchange is safe: the submitter
    /// stores it before the address, and only the winner reads it.
    private func prefault() {
        let address = tgs_exchange_u64(pool.prefault, 0)
        if address == 0 { return }
        let bytes = Int(tgs_load_u64(pool.prefaultBytes))
        tgs_populate(UnsafeMutableRawPointer(bitPattern: UInt(address)), bytes)
    }

    /// Spins briefly, then sleeps until woken. Returns a task found on the way, or -1.
    ///
    /// No lost wake-ups: the worker sets its idle bit (a sequentially consistent
    /// RMW) before its last look for work; a submitter publishes work, then
    /// (after a full fence) reads the idle bits. Either the last look sees the
    /// work or the submitter sees the bit, clears it and wakes this worker.
    /// The futex word makes a wake that lands before the sleep count.
    private func idle() -> Int32 {
        for round in 0..<64 {
            if round < 48 {
                for _ in 0..<32 { tgs_cpu_relax() }
            } else {
                sched_yield()
            }
            let t = findWork()
            if t >= 0 { return t }
            if tgs_load_relaxed_u32(pool.stopping) != 0 { return -1 }
            if tgs_load_relaxed_u64(pool.prefault) != 0 { prefault() }
        }
        let word = index >> 6, bit = UInt64(1) << UInt64(index & 63)
        tgs_store_u32(sleepWord, 0)
        tgs_or_sc_u64(pool.idleMasks + word, bit)
        let t = findWork()
        if t >= 0 || tgs_load_u32(pool.stopping) != 0 {
            tgs_and_sc_u64(pool.idleMasks + word, ~bit)
            return t
        }
        _ = tgs_futex_wait(sleepWord, 0, -1)
        tgs_and_sc_u64(pool.idleMasks + word, ~bit)
        return -1
    }
}

extension TaskPool {
    /// Wakes up to `n` sleeping workers. Call after publishing work.
    @inline(__always) func wakeWorkers(_ n: Int) {
        tgs_fence_sc()
        var left = n
        for w in 0..<idleMaskWords {
            var mask = tgs_load_relaxed_u64(idleMasks + w)
            while mask != 0 && left > 0 {
                let bit = mask & (~mask &+ 1)
                let before = tgs_and_sc_u64(idleMasks + w, ~bit)
                if before & bit != 0 {
                    let word = sleepWords + (w * 64 + bit.trailingZeroBitCount) * 16
                    tgs_store_u32(word, 1)
                    tgs_futex_wake(word, 1)
                    left -= 1
                }
                mask = before & ~bit
            }
            if left == 0 { return }
        }
    }

    /// Runs one task popped from a queue on worker `w`.
    func execute(_ i: Int32, on w: Worker) {
        let t = task(i)
        let hasPaths = t.pointee.flags & UInt8(TGS_TASK_HAS_PATHS) != 0
        if tgs_load_u32(&t.pointee.state) != UInt32(TGS_STATE_QUEUED) {  // cancelled while queued
            w.lastEnd = 0
            if t.pointee.flags & UInt8(TGS_TASK_HAS_POLICY) != 0 { dropHeld(t) }
            if hasPaths {
                let again = pathGate.forget(i)
                if !again.isEmpty { makeReady(again, worker: -1) }
            }
            return
        }
        if hasPaths {
            var again: [Int32] = []
            let claimed = pathGate.tryClaim(i, pool: self, again: &again)
            if !again.isEmpty { makeReady(again, worker: -1) }
            if !claimed {  // parked until a path frees up
                w.lastEnd = 0
                return
            }
        }
        // Busy before the claim: destroy must never see a worker that holds a
        // task (perhaps cancelled since) as idle.
        tgs_store_sc_u32(w.busy, 1)
        guard tgs_cas_sc_u32(&t.pointee.state, UInt32(TGS_STATE_QUEUED), UInt32(TGS_STATE_RUNNING)) != 0 else {
            tgs_store_u32(w.busy, 0)
            w.lastEnd = 0
            if hasPaths { releasePaths(i, worker: w.index) }
            return
        }
        // Claimed; but a bulk cancellation that began before the claim wins.
        // Its loop has not reached this task yet (had it, the claim would have
        // failed), so hand the task back unstarted and let the loop end and
        // count it. Sequentially consistent on both sides: the canceller
        // raises the watermark, then walks the states.
        if cancelledBeforeStart(i, t) {
            tgs_store_u32(w.busy, 0)
            w.lastEnd = 0
            if tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_QUEUED)) == 0 {
                // The canceller finalized it while it was ours: it will never run.
                if t.pointee.flags & UInt8(TGS_TASK_HAS_POLICY) != 0 { dropHeld(t) }
                releaseProcessor(t)
            }
            if hasPaths { releasePaths(i, worker: w.index) }
            return
        }
        var fileLocks: [FileLock] = []
        if hasPaths, let dir = lockDirectory {
            do {
                fileLocks = try takeFileLocks(i, t, dir)
            } catch {
                tgs_store_u32(w.busy, 0)
                w.lastEnd = 0
                endEarly(i, t, w, .failed, "\(error)")
                releasePaths(i, worker: w.index)
                return
            }
        }
        if t.pointee.flags & UInt8(TGS_TASK_CACHED) != 0 && t.pointee.attempts == 0, let output = cacheLookup(i, t) {
            answerFromCache(i, t, w, output, fileLocks: fileLocks, hasPaths: hasPaths)
            return
        }
        let clockFree = w.lastEnd != 0 && t.pointee.flags & UInt8(TGS_TASK_HAS_PATHS | TGS_TASK_HAS_DEPS) == 0
        let start = clockFree ? max(w.lastEnd, t.pointee.ready_ns) : tgs_monotonic_ns()
        let hasPolicy = t.pointee.flags & UInt8(TGS_TASK_HAS_POLICY) != 0
        var admission = Admission.run
        if hasPolicy {
            // A fresh reading: `start` may be as old as the previous task's end
            // hooks, which would skew breaker timing and slow-call durations.
            admission = admit(i, t, w, now: clock.now())
            if admission == .deferred {
                tgs_store_u32(w.busy, 0)
                w.lastEnd = 0
                for l in fileLocks { try? l.release() }
                if hasPaths { releasePaths(i, worker: w.index) }
                return
            }
        }
        // Relaxed atomics: a canceller may publish the end of this task before
        // these stores, and readers of its result then race with them.
        let attempt = t.pointee.attempts + 1
        tgs_store_relaxed_i64(&t.pointee.start_ns, start)
        tgs_store_relaxed_i32(&t.pointee.worker, Int32(w.index))
        tgs_store_relaxed_u32(&t.pointee.attempts, attempt)
        if t.pointee.flags & UInt8(TGS_TASK_HAS_TIMEOUT) != 0 {
            startTimer(deadlines)
            deadlines.add(task: i, attempt: attempt, deadline: start + t.pointee.extra.pointee.timeout_ns)
        }
        if tgs_load_relaxed_u32(observing) != 0 {
            if clock.isVirtual { w.clockStart = clock.now() }
            observeStart(i, attempt: attempt, worker: w.index)
        }
        let rc = admission == .run ? tgs_call_processor(t) : callFallback(t)
        if !hasPolicy { releaseProcessor(t) }
        tgs_store_u32(w.busy, 0)
        let end = tgs_monotonic_ns()
        w.lastEnd = end
        if !fileLocks.isEmpty { for l in fileLocks { try? l.release() } }
        if hasPaths { releasePaths(i, worker: w.index) }
        // Worker health: one worker-local load on success.
        var health = (recover: false, exhausted: false)
        var plugin: UnsafeMutablePointer<tgp_plugin>? = nil
        if rc != 0 {
            health = healthFailure(w, t)
            if health.recover && t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0 { plugin = tgp_task_plugin(t) }
        } else if w.health.consecutiveFailures != 0 {
            healthSuccess(w)
        }
        if hasPolicy {
            settle(i, t, w, rc: rc, fallback: admission == .fallback, end: end, now: clock.isVirtual ? clock.now() : end,
                   exhausted: health.exhausted)
        } else if tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_FINALIZING)) != 0 {
            if health.exhausted { t.pointee.result_bits |= UInt8(TGS_RESULT_EXHAUSTED_RECOVERY) }
            t.pointee.end_ns = end
            finish(i, rc == 0 ? .succeeded : .failed, worker: w.index)
        } else {
            // Timed out or cancelled meanwhile: the late result is discarded.
            free(t.pointee.output)
            t.pointee.output = nil
            t.pointee.output_len = 0
            free(t.pointee.error)
            t.pointee.error = nil
        }
        // After the task is settled: a retry is already queued for the others.
        if health.recover { recover(w, after: t, plugin: plugin) }
    }

    /// Ends task i with its cached output; the processor never runs.
    private func answerFromCache(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ w: Worker, _ output: [UInt8],
                                 fileLocks: [FileLock], hasPaths: Bool) {
        let start = tgs_monotonic_ns()
        tgs_store_u32(w.busy, 0)
        w.lastEnd = 0
        for l in fileLocks { try? l.release() }
        if hasPaths { releasePaths(i, worker: w.index) }
        guard tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_FINALIZING)) != 0 else { return }
        if !output.isEmpty, let copy = malloc(output.count) {
            output.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            t.pointee.output = copy
            t.pointee.output_len = UInt32(output.count)
        }
        t.pointee.result_bits |= UInt8(TGS_RESULT_CACHE_HIT)
        tgs_store_relaxed_i64(&t.pointee.start_ns, start)
        tgs_store_relaxed_i32(&t.pointee.worker, Int32(w.index))
        if t.pointee.flags & UInt8(TGS_TASK_HAS_POLICY) != 0 { dropHeld(t) }
        releaseProcessor(t)
        t.pointee.end_ns = tgs_monotonic_ns()
        finish(i, .succeeded, worker: w.index)
    }

    /// The engine will not call this task's processor again: a plugin task
    /// stops counting as in flight for its plugin (which may then unload; see
    /// pluginTasksInFlight). Called once per task, before its end is published
    /// where it can be. A store to the task's own record: no shared counter.
    @inline(__always) func releaseProcessor(_ t: UnsafeMutablePointer<tgs_task>) {
        if t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0 { tgs_store_u8(&t.pointee.released, 1) }
    }

    /// Takes the cross-process lock of each declared path of task `i`
    /// (exclusive for a write, shared for a read), in the order of their lock
    /// file names: every process takes them in one order, so no two wait on
    /// each other. The task already holds these paths inside this process.
    private func takeFileLocks(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>, _ dir: LockDirectory) throws(TaskGateError) -> [FileLock] {
        let start = Int(t.pointee.extra.pointee.paths_start), n = Int(t.pointee.extra.pointee.paths_count)
        var wanted: [(name: String, key: String, write: Bool)] = []
        submitLock.lock()
        for k in start..<(start + n) {
            let c = claim(k).pointee
            let key = paths.text(Int(c >> 1))
            wanted.append((LockDirectory.fileName(forKey: key), key, c & 1 != 0))
        }
        submitLock.unlock()
        wanted.sort { $0.name < $1.name }
        let holder = "pid-\(getpid()) task " + describe(t.pointee.id, Int(i), quoted: false)
        var held: [FileLock] = []
        do {
            for w in wanted {
                let l = try FileLock(directory: dir, key: w.key, holderId: holder, holdTimeout: lockHoldTimeout, shared: !w.write)
                try l.acquire(timeout: lockWait) { tgs_load_u32(&t.pointee.state) != UInt32(TGS_STATE_RUNNING) }
                held.append(l)
            }
        } catch {
            for l in held { try? l.release() }
            throw error
        }
        return held
    }

    private func releasePaths(_ i: Int32, worker: Int) {
        let again = pathGate.release(i, pool: self)
        if !again.isEmpty { makeReady(again, worker: -1) }
    }

    /// Queues tasks that became runnable: onto the worker's own deque when
    /// called on a worker, else the injector of their lane.
    func makeReady(_ list: [Int32], worker: Int) {
        for i in list { enqueue(i, worker: worker) }
        wakeWorkers(list.count)
    }

    @inline(__always) func enqueue(_ i: Int32, worker: Int) {
        let lane = Int(task(i).pointee.priority)
        if worker >= 0 && deques[worker * 3 + lane].push(i) { return }
        injectors[lane].push(i)
    }

    func acquirePermit() {
        while true {
            let p = tgs_load_u32(permits)
            if p > 0 {
                if tgs_cas_u32(permits, p, p - 1) != 0 { return }
                continue
            }
            tgs_add_sc_i32(permitWaiters, 1)
            _ = tgs_futex_wait(permits, 0, -1)
            tgs_add_sc_i32(permitWaiters, -1)
        }
    }

    func releasePermit() {
        tgs_add_sc_u32(permits, 1)
        if tgs_load_i32(permitWaiters) > 0 { tgs_futex_wake(permits, 1) }
    }

    /// Publishes a final status. The caller won the move to FINALIZING and
    /// wrote the result fields. Then: dependents are released or skipped, the
    /// group and pool counters drop, waiters are woken.
    func finish(_ i: Int32, _ status: TaskStatus, worker: Int) {
        var none: [Int32] = []
        finish(i, status, worker: worker, deferEnds: &none, deferring: false)
    }

    /// The same; with `deferring`, the end hooks of the tasks it ends are not
    /// called but appended to `deferEnds` (for a caller holding a lock).
    func finish(_ i: Int32, _ status: TaskStatus, worker: Int, deferEnds: inout [Int32], deferring: Bool) {
        if status == .succeeded, task(i).pointee.flags & UInt8(TGS_TASK_CACHED) != 0 { cacheStore(i, task(i)) }
        var skips: [Int32] = []  // stays unallocated unless a dependent must be skipped
        var readied = finishOne(i, status, worker: worker, skips: &skips, deferEnds: &deferEnds, deferring: deferring)
        while let c = skips.popLast() {
            readied += finishOne(c, .skipped, worker: worker, skips: &skips, deferEnds: &deferEnds, deferring: deferring)
        }
        if readied > 0 { wakeWorkers(readied) }
    }

    /// Calls task `j`'s end hook, if it has one. Never under an engine lock.
    func callOnEnd(_ j: Int32) {
        if j < 0 {  // a deferred observation (finishOne)
            observeEnd(-j - 1, status(-j - 1), worker: -1)
            return
        }
        let t = task(j)
        guard t.pointee.flags & UInt8(TGS_TASK_HAS_ON_END) != 0 else { return }
        tgs_call_on_end(t.pointee.extra, owner, UInt64(j), Int32(bitPattern: tgs_load_u32(&t.pointee.state)))
    }

    /// Returns how many dependents it made ready.
    @inline(__always)
    private func finishOne(_ j: Int32, _ st: TaskStatus, worker: Int, skips: inout [Int32],
                           deferEnds: inout [Int32], deferring: Bool) -> Int {
        var readied = 0
        let t = task(j)
        // Events and the health monitor first: whoever sees the task ended
        // has its events delivered (rare: one relaxed load when unobserved).
        // (Under the submission lock, deferred like end hooks, as -(j + 1):
        // a sink may submit.)
        if tgs_load_relaxed_u32(observing) != 0 {
            if deferring { deferEnds.append(-(j + 1)) } else { observeEnd(j, st, worker: worker) }
        }
        // Counted before the status is published: whoever sees the task ended
        // (a waiter, then reading the stats) sees it counted too.
        countEnd(st, worker: worker)
        tgs_store_u32(&t.pointee.state, st.rawValue)
        // The one shared read-modify-write per task; sequentially consistent,
        // it also orders the stores above before the waiter checks below.
        let slot = Int(tgs_add_sc_i64(completed, 1))
        tgs_store_i32(logSlot(slot), j + 1)

        var e = tgs_exchange_i32(&t.pointee.dependents, Int32(TGS_EDGE_SEALED))
        while e >= 0 {
            let child = edge(e).pointee.child
            e = edge(e).pointee.next
            let c = task(child)
            if st == .succeeded {
                if tgs_add_i32(&c.pointee.pending, -1) == 1,
                   tgs_cas_u32(&c.pointee.state, UInt32(TGS_STATE_PENDING), UInt32(TGS_STATE_QUEUED)) != 0 {
                    c.pointee.ready_ns = t.pointee.end_ns
                    enqueue(child, worker: worker)
                    readied += 1
                }
            } else {
                _ = tgs_cas_i32(&c.pointee.cause, -1, j)
                if claimSkip(child) { skips.append(child) }
            }
        }

        let g = t.pointee.group
        if g >= 0 && st != .succeeded {
            // A group fails once fewer than it requires can still succeed;
            // a critical one then cancels what remains.
            let gs = group(g)
            let ended = tgs_add_u32(&gs.pointee.notSucceeded, 1) &+ 1
            if (st == .failed || st == .timedOut || st == .rejected) && tgs_load_u32(&gs.pointee.critical) != 0 {
                let members = tgs_load_u32(&gs.pointee.members)
                if members &- min(ended, members) < groupRequired(gs, of: members) {
                    cascadeCritical(j, group: g)
                }
            }
        }
        if tgs_load_sc_i32(waiterCount) > 0 {
            // A waiter watches one task at a time (the waited flag), or reads
            // the completion log.
            if tgs_load_u32(&t.pointee.signals) & UInt32(TGS_SIGNAL_WAITED) != 0 || tgs_load_i32(logWaiters) > 0 {
                wakeWaiters()
            }
        }
        // After the end is published and waiters are woken: the hook may read
        // the result, or wait on the task, and sees it ended.
        if t.pointee.flags & UInt8(TGS_TASK_HAS_ON_END) != 0 {
            if deferring { deferEnds.append(j) } else { callOnEnd(j) }
        }
        return readied
    }

    @inline(__always) func countEnd(_ st: TaskStatus, worker: Int) {
        let k = Int(st.rawValue) - 4
        if worker >= 0 {
            let line = endCounts + worker * 8
            tgs_store_relaxed_i64(line + k, tgs_load_relaxed_i64(line + k) + 1)
            // Release, summed with acquire in endedCount: stats and destroy's
            // in-flight check then see everything the counted tasks wrote.
            tgs_store_i64(line + TaskPool.endedTotal, tgs_load_relaxed_i64(line + TaskPool.endedTotal) + 1)
        } else {
            let line = endCounts + workerCount * 8
            tgs_add_i64(line + k, 1)
            tgs_add_i64(line + TaskPool.endedTotal, 1)
        }
    }

    /// Tasks ended so far, summed over the finishers' counters.
    func endedCount(_ k: Int = TaskPool.endedTotal) -> Int64 {
        var sum: Int64 = 0
        for line in 0...workerCount { sum += tgs_load_i64(endCounts + line * 8 + k) }
        return sum
    }

    func unfinishedCount() -> Int64 { tgs_load_i64(admitted) - endedCount() }

    @inline(__always) func wakeWaiters() {
        tgs_add_sc_u32(waitSeq, 1)
        tgs_futex_wake(waitSeq, Int32.max)
    }

    /// Moves a pending task to FINALIZING as skipped, writing why. False when it
    /// had already ended (or was claimed by another finalizer).
    private func claimSkip(_ child: Int32) -> Bool {
        let c = task(child)
        guard tgs_cas_u32(&c.pointee.state, UInt32(TGS_STATE_PENDING), UInt32(TGS_STATE_FINALIZING)) != 0 else {
            return false
        }
        let cause = tgs_load_i32(&c.pointee.cause)
        var note = "skipped"
        if cause >= 0 {
            let p = task(cause)
            let pid = p.pointee.id.map { "'\(String(cString: $0))'" } ?? "#\(cause)"
            let st = TaskStatus(rawValue: tgs_load_u32(&p.pointee.state))?.name ?? "ended"
            note = "skipped: dependency \(pid) \(st == "skipped" ? "was skipped" : st)"
        }
        c.pointee.note = strdup(note)
        c.pointee.end_ns = tgs_monotonic_ns()
        releaseProcessor(c)
        return true
    }

    /// Ends a task whose dependency did not succeed before it was released.
    func skip(_ i: Int32, worker: Int, deferEnds: inout [Int32]) {
        if claimSkip(i) { finish(i, .skipped, worker: worker, deferEnds: &deferEnds, deferring: true) }
    }

    private func cascadeCritical(_ failed: Int32, group g: Int32) {
        let t = task(failed)
        submitLock.lock()
        let name = String(cString: groupNames[Int(g)])
        submitLock.unlock()
        let who = t.pointee.id.map { "'\(String(cString: $0))'" } ?? "#\(failed)"
        let st = TaskStatus(rawValue: tgs_load_u32(&t.pointee.state))?.name ?? "failed"
        let note = "cancelled: task \(who) of critical group '\(name)' \(st)"
        observeGroupFailed(name, cause: failed, cancelAll: tgs_load_u32(&group(g).pointee.cancelAll) != 0)
        if tgs_load_u32(&group(g).pointee.cancelAll) != 0 {
            _ = cancelAll(note: note)
        } else {
            _ = cancelGroup(g, note: note)
        }
    }

    /// True when a bulk cancellation covers task `i`, which has not started.
    @inline(__always) func cancelledBeforeStart(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>) -> Bool {
        if Int64(i) < tgs_load_sc_i64(cancelBelow) { return true }
        let g = t.pointee.group
        return g >= 0 && Int64(i) < tgs_load_sc_i64(&group(g).pointee.cancelBelow)
    }

    /// Cancels every unfinished task of group `g` submitted so far, atomically
    /// with respect to starts. Returns how many this call cancelled.
    func cancelGroup(_ g: Int32, note: String) -> Int {
        submitLock.lock()
        let members = groupMembers[Int(g)]
        if let last = members.last { tgs_store_sc_i64(&group(g).pointee.cancelBelow, Int64(last) + 1) }
        submitLock.unlock()
        return members.reduce(0) { $0 + (cancel($1, note: note) ? 1 : 0) }
    }

    /// Cancels a task only if it has not started (pending or queued): a
    /// graceful stop lets running tasks finish. True when this call cancelled it.
    @discardableResult
    public func cancelUnstarted(_ i: Int32, note: String) -> Bool { cancel(i, note: note, unstartedOnly: true) }

    /// Cancels one task unless it has ended (or, with `unstartedOnly`, started).
    /// True when this call cancelled it.
    @discardableResult
    func cancel(_ i: Int32, note: String, unstartedOnly: Bool = false) -> Bool {
        let t = task(i)
        while true {
            let s = tgs_load_u32(&t.pointee.state)
            if s >= UInt32(unstartedOnly ? TGS_STATE_RUNNING : TGS_STATE_FINALIZING) { return false }
            if tgs_cas_u32(&t.pointee.state, s, UInt32(TGS_STATE_FINALIZING)) != 0 {
                if s == UInt32(TGS_STATE_RUNNING) {
                    tgs_or_sc_u32(&t.pointee.signals, UInt32(TGS_SIGNAL_CANCEL))
                } else {
                    releaseProcessor(t)  // never started, never will
                }
                t.pointee.note = strdup(note)
                t.pointee.end_ns = tgs_monotonic_ns()
                finish(i, .cancelled, worker: -1)
                return true
            }
        }
    }

    /// Called by the deadline timer.
    func timeOut(_ i: Int32, attempt: UInt32) {
        let t = task(i)
        guard tgs_load_relaxed_u32(&t.pointee.attempts) == attempt,
              tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_RUNNING), UInt32(TGS_STATE_FINALIZING)) != 0
        else { return }
        tgs_or_sc_u32(&t.pointee.signals, UInt32(TGS_SIGNAL_CANCEL))
        t.pointee.note = strdup("timed out after \(Double(t.pointee.extra.pointee.timeout_ns) / 1e6) ms")
        t.pointee.end_ns = tgs_monotonic_ns()
        finish(i, .timedOut, worker: -1)
    }
}
