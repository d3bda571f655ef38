import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// A processor as the engine calls it: a C function taking the task record
/// (the processor's context) and the submitter's user pointer, returning 0 for
/// success and anything else for failure.
public typealias Processor = @convention(c) (UnsafeMutablePointer<tgs_task>?, UnsafeMutableRawPointer?) -> Int32
/// A task's end hook: (the pool's owner handle, submission number, final status, user).
public typealias OnEnd = @convention(c) (UnsafeMutableRawPointer?, UInt64, Int32, UnsafeMutableRawPointer?) -> Void

/// One task to submit: a non-owning view. Everything it points to is copied
/// during the submit call.
public struct TaskSpec {
    public var id: UnsafePointer<CChar>?
    public var processor: Processor
    public var user: UnsafeMutableRawPointer?
    public var payload: UnsafeRawBufferPointer
    public var dependencies: UnsafeBufferPointer<UnsafePointer<CChar>?>
    public var reads: UnsafeBufferPointer<UnsafePointer<CChar>?>
    public var writes: UnsafeBufferPointer<UnsafePointer<CChar>?>
    public var group: UnsafePointer<CChar>?
    /// 0 high, 1 normal, 2 low.
    public var lane: Int
    public var critical: Bool
    public var difficulty: Int32
    /// 0: none.
    public var timeoutNanoseconds: Int64
    /// Set by a caller that found the description unusable while converting
    /// it: the batch is refused with this reason (and nothing else is read).
    public var invalidReason: String? = nil
    /// A plugin processor instead of `processor`, with its arguments (checked
    /// against its signature and copied at submission).
    public var plugin: UnsafeMutablePointer<tgp_proc>? = nil
    public var arguments = UnsafeBufferPointer<tgs_value>(start: nil, count: 0)
    /// Called once when the task has ended, with `onEndUser` (see TaskPool.owner).
    public var onEnd: OnEnd? = nil
    public var onEndUser: UnsafeMutableRawPointer? = nil
    /// The task's resilience policy; nil: its group's, else the pool's, else none.
    public var policy: Policy? = nil
    /// The key of its breaker and limits (an API host, say); nil: the plugin
    /// processor's name, else "".
    public var key: UnsafePointer<CChar>? = nil
    /// Reuse the task's previous result from the pool's result cache (the
    /// task needs an id, and the pool a `resultCache`).
    public var cache: TaskCacheRequest? = nil
    /// Submit only if the key's limits and breaker let it start now, taking
    /// its slot and tokens (a non-blocking try-submit); else `.limited`.
    public var tryOnly = false

    public init(id: UnsafePointer<CChar>?, processor: @escaping Processor, user: UnsafeMutableRawPointer? = nil) {
        self.id = id
        self.processor = processor
        self.user = user
        payload = UnsafeRawBufferPointer(start: nil, count: 0)
        dependencies = UnsafeBufferPointer(start: nil, count: 0)
        reads = UnsafeBufferPointer(start: nil, count: 0)
        writes = UnsafeBufferPointer(start: nil, count: 0)
        group = nil
        lane = 1
        critical = false
        difficulty = 0
        timeoutNanoseconds = 0
    }
}

/// A recover hook for worker health: (the pool's owner handle, worker, user); 0: recovered.
public typealias RecoverHook = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?) -> Int32

public struct PoolConfiguration: @unchecked Sendable {
    public var workers: Int
    public var maxConcurrency: Int
    public var allowReadWriteOverlap: Bool
    /// The clock of retry delays, breakers, limits and cool-downs.
    public var clock: PolicyClock = .system
    /// Consecutive failures that make a worker unhealthy (seed 000: 3).
    public var unhealthyAfter = 3
    /// Recoveries tried per worker (seed 000: 5).
    public var maxRecoveries = 5
    /// Recovers a worker after failures of plain tasks (plugin tasks use their plugin's hook).
    public var recover: RecoverHook? = nil
    public var recoverUser: UnsafeMutableRawPointer? = nil
    /// Cross-process locks for declared paths: before a task with reads or
    /// writes runs, it takes a shared (read) or exclusive (write) file lock
    /// per path here, in one global order, so other processes honouring the
    /// same directory exclude it too. nil: in-process exclusion only.
    public var lockDirectory: LockDirectory? = nil
    /// Written into each lock's metadata: how long a holder may keep it (s; 0: no limit).
    public var lockHoldTimeout: Double = 300
    /// How long a task waits for another process's locks (s; negative: until
    /// it is cancelled). Running out fails the task, naming the holder.
    public var lockWait: Double = -1
    /// Where tasks that declare a cache keep their results; nil: such tasks are refused.
    public var resultCache: ResultCache? = nil
    /// Without `resultCache`: a directory opened (and made) only when the
    /// first task declaring a cache is submitted, so pools that never cache
    /// leave no trace (the C door's default beside the lock directory).
    public var lazyResultCachePath: String? = nil
    public init(workers: Int = 0, maxConcurrency: Int = 0, allowReadWriteOverlap: Bool = false) {
        self.workers = workers
        self.maxConcurrency = maxConcurrency
        self.allowReadWriteOverlap = allowReadWriteOverlap
    }
}

struct Edge {
    var child: Int32
    var next: Int32
}

/// Per-group counters, in a slab so workers reach them without a lock.
struct GroupState {
    /// Tasks of the group with a lower index that have not started never will
    /// (cancel_group, a critical failure); see TaskPool.cancelBelow.
    var cancelBelow: Int64
    var critical: UInt32
    /// 1: a critical failure cancels the whole pool, not only the group.
    var cancelAll: UInt32
    /// Successes needed (0: minFractionBp, else every member).
    var minRequired: UInt32
    /// Basis points of the members (1 ... 10000) needed when minRequired is 0.
    var minFractionBp: UInt32
    /// Members submitted so far (written under submitLock, read by workers).
    var members: UInt32
    /// Members that ended without succeeding (atomic).
    var notSucceeded: UInt32

    init() {
        cancelBelow = 0
        critical = 0
        cancelAll = 0
        minRequired = 0
        minFractionBp = 0
        members = 0
        notSucceeded = 0
    }
}

/// Successes group `gs` needs out of `n` members (its policy read atomically:
/// set_group may change it while workers judge).
@inline(__always) func groupRequired(_ gs: UnsafeMutablePointer<GroupState>, of n: UInt32) -> UInt32 {
    let m = tgs_load_u32(&gs.pointee.minRequired)
    if m > 0 { return m }
    let bp = tgs_load_u32(&gs.pointee.minFractionBp)
    if bp > 0 { return max(1, UInt32((UInt64(n) * UInt64(bp) + 9999) / 10000)) }
    return n
}

/// The engine: a pool of worker threads and every task submitted to it.
///
/// Lock discipline: `submitLock` guards the id index, the arenas' append
/// cursors, the group and path tables and `accepting`. It is never held while
/// a processor runs, and finishing a task never takes it except to cascade a
/// critical group's failure (which only workers and the timer do, holding no
/// lock). Everything a worker touches per task is reached through atomics on
/// the task record, the deques and the injectors.
public final class TaskPool: @unchecked Sendable {
    public let workerCount: Int
    let maxConcurrency: Int
    let allowReadWriteOverlap: Bool

    // Storage (appends under submitLock; reads lock-free after publication).
    static var taskShift: Int { 14 }  // 16384 records of 128 bytes: one 2 MiB chunk
    var tasks = Slab<tgs_task>(chunkShift: TaskPool.taskShift)
    let taskChunks: UnsafeMutablePointer<UnsafeMutablePointer<tgs_task>?>
    // Chunks of 2 MiB and more (64 B x 2^15; 104 B x 2^15 = 3.25 MiB for
    // policy records) are mapped with huge pages after the first: 4 KiB pages
    // cost the submitter a fault per 64 records. Address space only until used.
    var extras = Slab<tgs_task_extra>(chunkShift: 15)
    var edges = Slab<Edge>(chunkShift: 18)
    let edgeChunks: UnsafeMutablePointer<UnsafeMutablePointer<Edge>?>
    var claims = Slab<Int32>(chunkShift: 16)
    let claimChunks: UnsafeMutablePointer<UnsafeMutablePointer<Int32>?>
    /// Task index + 1 by completion order, written by index (slot = completed count).
    var completionLog = Slab<Int32>(chunkShift: 19)
    let logChunks: UnsafeMutablePointer<UnsafeMutablePointer<Int32>?>
    var groups = Slab<GroupState>(chunkShift: 12)
    let groupChunks: UnsafeMutablePointer<UnsafeMutablePointer<GroupState>?>
    var bytes = ByteArena(huge: true)
    var ids = IdIndex()

    // Cold tables under submitLock.
    let submitLock = Lock()
    /// Serialises the stop-and-join phase of shutdown.
    let shutdownLock = Lock()
    var accepting = true
    /// Group name bytes -> group (bytes, not String: distinct invalid UTF-8
    /// names must stay distinct).
    var groupIndex: [[UInt8]: Int32] = [:]
    var groupNames: [UnsafePointer<CChar>] = []
    var groupMembers: [[Int32]] = []
    var paths = PathTable()
    var normalizer = PathNormalizer()
    /// A task's claims while it is being submitted: path id << 1 | write.
    var claimScratch: [Int32] = []
    var batchEdges: [(child: Int32, parent: Int32)] = []
    var depHashes: [UInt64] = []
    var readyScratch: [[Int32]] = [[], [], []]

    // Scheduling.
    /// One per lane (0 high, 1 normal, 2 low).
    let injectors: UnsafeMutablePointer<Injector>
    /// Worker w's deque for lane l is at `w * 3 + l`.
    let deques: UnsafeMutablePointer<WorkDeque>
    /// Worker w sleeps on `sleepWords[w * 16]` (1 means woken); `[w * 16 + 1]` is
    /// non-zero while it runs a processor. A cache line per worker.
    let sleepWords: UnsafeMutablePointer<UInt32>
    var workers: [Worker] = []
    let pathGate: PathGate
    let lockDirectory: LockDirectory?
    let lockHoldTimeout: Double
    let lockWait: Double
    /// Set at creation, or at the first cached submission (under submitLock)
    /// from lazyResultCachePath; workers read it only for cached tasks.
    public internal(set) var resultCache: ResultCache?
    let lazyResultCachePath: String?
    /// Tasks that declare a cache, by index; under cacheLock (see TaskCache.swift).
    var cachedTasks: [Int32: CachedTask] = [:]
    let cacheLock = Lock()
    /// Plugins loaded into this pool.
    public let plugins = PluginRegistry()
    /// Created with the pool; its thread starts with the first timeout.
    var deadlines: DeadlineTimer!
    /// Retry delays and limit waits, on the policy clock.
    var delays: DeadlineTimer!
    public let clock: PolicyClock
    /// Per-task policy records (appends under submitLock).
    var policyRecords = Slab<tgs_task_policy>(chunkShift: 15)
    /// Policies by scope, under submitLock; every policy made in this pool is
    /// kept until the pool goes.
    var policies: [Policy] = []
    var defaultPolicy: Policy? = nil
    /// Objects behind handles the pool gave out (policies, rings), under submitLock.
    var kept: [AnyObject] = []
    var groupPolicies: [[UInt8]: Policy] = [:]
    // Worker health.
    let unhealthyAfter: Int
    let maxRecoveries: Int
    let recoverHook: RecoverHook?
    let recoverUser: UnsafeMutableRawPointer?
    let healthLock = Lock()
    // Events (Telemetry/Observe.swift), under observeLock.
    let observeLock = Lock()
    var logSink: LogSink? = nil
    var healthMonitor: HealthMonitor? = nil
    var runIdentifier: String

    /// Counters and futex words, each on a cache line of its own.
    let words: UnsafeMutableRawPointer
    @inline(__always) var submitted: UnsafeMutablePointer<Int64> { (words + 0).assumingMemoryBound(to: Int64.self) }
    /// Tasks admitted (counted before any of a batch can end); never decreases.
    /// Unfinished = admitted - the sum of the end counters.
    @inline(__always) var admitted: UnsafeMutablePointer<Int64> { (words + 64).assumingMemoryBound(to: Int64.self) }
    @inline(__always) var completed: UnsafeMutablePointer<Int64> { (words + 128).assumingMemoryBound(to: Int64.self) }
    @inline(__always) var waitSeq: UnsafeMutablePointer<UInt32> { (words + 192).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) var waiterCount: UnsafeMutablePointer<Int32> { (words + 196).assumingMemoryBound(to: Int32.self) }
    @inline(__always) var logWaiters: UnsafeMutablePointer<Int32> { (words + 200).assumingMemoryBound(to: Int32.self) }
    @inline(__always) var stopping: UnsafeMutablePointer<UInt32> { (words + 256).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) var exitedWorkers: UnsafeMutablePointer<UInt32> { (words + 260).assumingMemoryBound(to: UInt32.self) }
    /// Non-zero once shutdown began (no more submissions).
    @inline(__always) var closed: UnsafeMutablePointer<UInt32> { (words + 264).assumingMemoryBound(to: UInt32.self) }
    /// Observing.* bits: a log sink or a health monitor wants task ends.
    @inline(__always) var observing: UnsafeMutablePointer<UInt32> { (words + 268).assumingMemoryBound(to: UInt32.self) }
    /// The sink's lowest level (LogLevel raw value).
    @inline(__always) var logLevelWord: UnsafeMutablePointer<Int32> { (words + 272).assumingMemoryBound(to: Int32.self) }
    /// A freshly mapped slab chunk (address, bytes) that an idle worker may
    /// fault in, so the submitting thread does not pay the kernel's zeroing.
    @inline(__always) var prefault: UnsafeMutablePointer<UInt64> { (words + 464).assumingMemoryBound(to: UInt64.self) }
    @inline(__always) var prefaultBytes: UnsafeMutablePointer<UInt64> { (words + 472).assumingMemoryBound(to: UInt64.self) }

    /// Every task below this index is known to have ended (a hint for wait_all).
    @inline(__always) var endedPrefix: UnsafeMutablePointer<Int64> { (words + 480).assumingMemoryBound(to: Int64.self) }

    /// Tasks with a lower index that have not started never will: cancel_all
    /// raises it to the tasks submitted so far, an aborting shutdown to the
    /// maximum. A worker checks it just after claiming a task, so a bulk
    /// cancellation is atomic with respect to starts (otherwise a worker freed
    /// by one cancellation could start a task the loop has not reached yet).
    @inline(__always) var cancelBelow: UnsafeMutablePointer<Int64> { (words + 448).assumingMemoryBound(to: Int64.self) }
    @inline(__always) var permits: UnsafeMutablePointer<UInt32> { (words + 320).assumingMemoryBound(to: UInt32.self) }
    @inline(__always) var permitWaiters: UnsafeMutablePointer<Int32> { (words + 324).assumingMemoryBound(to: Int32.self) }
    /// One bit per sleeping worker.
    @inline(__always) var idleMasks: UnsafeMutablePointer<UInt64> { (words + 512).assumingMemoryBound(to: UInt64.self) }
    let idleMaskWords: Int
    /// Tasks ended, per finisher: a cache line for each worker (written only
    /// by it), then one for every other thread (atomic adds). Within a line,
    /// [status - 4] counts each final status and [endedTotal] all of them.
    let endCounts: UnsafeMutablePointer<Int64>
    static var endedTotal: Int { 7 }
    var threadsJoined = false
    /// The host's handle for this pool, passed to end hooks. Set once, before
    /// the first submission.
    public var owner: UnsafeMutableRawPointer? = nil
    var threads: [pthread_t] = []

    public init(_ configuration: PoolConfiguration) throws(TaskGateError) {
        let n = configuration.workers > 0 ? configuration.workers : Int(tgs_cpu_count())
        guard n <= 1024 else { throw .outOfRange("workers: \(n) is more than the 1024 allowed") }
        guard configuration.maxConcurrency >= 0 else { throw .outOfRange("max_concurrency must not be negative") }
        workerCount = n
        clock = configuration.clock
        unhealthyAfter = max(1, configuration.unhealthyAfter)
        maxRecoveries = max(0, configuration.maxRecoveries)
        recoverHook = configuration.recover
        recoverUser = configuration.recoverUser
        maxConcurrency = configuration.maxConcurrency > 0 ? min(configuration.maxConcurrency, n) : n
        allowReadWriteOverlap = configuration.allowReadWriteOverlap
        taskChunks = tasks.chunks
        edgeChunks = edges.chunks
        claimChunks = claims.chunks
        logChunks = completionLog.chunks
        groupChunks = groups.chunks
        idleMaskWords = (n + 63) / 64
        let wordBytes = 512 + idleMaskWords * 8
        words = .allocate(byteCount: wordBytes, alignment: 64)
        words.initializeMemory(as: UInt8.self, repeating: 0, count: wordBytes)
        runIdentifier = TaskPool.makeRunId()
        endCounts = UnsafeMutableRawPointer.allocate(byteCount: (n + 1) * 64, alignment: 64)
            .bindMemory(to: Int64.self, capacity: (n + 1) * 8)
        endCounts.initialize(repeating: 0, count: (n + 1) * 8)
        injectors = .allocate(capacity: 3)
        for lane in 0..<3 { (injectors + lane).initialize(to: Injector()) }
        deques = .allocate(capacity: n * 3)
        for k in 0..<(n * 3) { (deques + k).initialize(to: WorkDeque()) }
        sleepWords = UnsafeMutableRawPointer.allocate(byteCount: n * 64, alignment: 64).bindMemory(to: UInt32.self, capacity: n * 16)
        sleepWords.initialize(repeating: 0, count: n * 16)
        pathGate = PathGate(allowReadWriteOverlap: configuration.allowReadWriteOverlap)
        lockDirectory = configuration.lockDirectory
        lockHoldTimeout = configuration.lockHoldTimeout
        lockWait = configuration.lockWait
        resultCache = configuration.resultCache
        lazyResultCachePath = configuration.lazyResultCachePath
        permits.pointee = UInt32(maxConcurrency)
        for w in 0..<n { workers.append(Worker(index: w, pool: self)) }
        deadlines = DeadlineTimer(pool: self) { pool, i, attempt in pool.timeOut(i, attempt: attempt) }
        delays = DeadlineTimer(pool: self, clock: clock) { pool, i, attempt in pool.delayOver(i, attempt: attempt) }
        plugins.inFlight = { [unowned self] plugin, retire in self.pluginTasksInFlight(plugin, orRetire: retire) }
        try startThreads()
    }

    nonisolated(unsafe) private static let runCounter: UnsafeMutablePointer<Int64> = {
        let p = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    static func makeRunId() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let n = tgs_add_i64(runCounter, 1) + 1
        return "run-\(String(ts.tv_sec, radix: 16))-\(String(getpid(), radix: 16))-\(n)"
    }

    deinit {
        if !threadsJoined {
            // Only reachable when the owner never called close(); make the threads go away.
            requestStop()
            joinThreads()
        }
        freeStorage()
    }

    @inline(__always) func task(_ i: Int) -> UnsafeMutablePointer<tgs_task> {
        taskChunks[i >> TaskPool.taskShift].unsafelyUnwrapped + (i & ((1 << TaskPool.taskShift) - 1))
    }
    @inline(__always) func task(_ i: Int32) -> UnsafeMutablePointer<tgs_task> { task(Int(i)) }
    @inline(__always) func edge(_ i: Int32) -> UnsafeMutablePointer<Edge> {
        edgeChunks[Int(i) >> 18].unsafelyUnwrapped + (Int(i) & ((1 << 18) - 1))
    }
    @inline(__always) func claim(_ i: Int) -> UnsafeMutablePointer<Int32> {
        claimChunks[i >> 16].unsafelyUnwrapped + (i & ((1 << 16) - 1))
    }
    @inline(__always) func logSlot(_ i: Int) -> UnsafeMutablePointer<Int32> {
        logChunks[i >> 19].unsafelyUnwrapped + (i & ((1 << 19) - 1))
    }
    @inline(__always) func group(_ g: Int32) -> UnsafeMutablePointer<GroupState> {
        groupChunks[Int(g) >> 12].unsafelyUnwrapped + (Int(g) & ((1 << 12) - 1))
    }

    /// Points a new record at the plugin trampoline with its argument block.
    /// Runs under the submission lock, which unloading takes too: a processor
    /// live here stays loaded until the task is released.
    @inline(__always)
    private func submitPluginTask(_ t: UnsafeMutablePointer<tgs_task>, _ proc: UnsafeMutablePointer<tgp_proc>, _ s: TaskSpec, _ i: Int,
                                  _ refuse: (TaskGateError) -> TaskGateError) throws(TaskGateError) {
        guard tgs_load_u64(&proc.pointee.magic) == TGP_PROC_MAGIC else {
            throw refuse(.pluginRefused("\(describe(s.id, i)): its processor is not loaded (its plugin was unloaded)"))
        }
        do { try PluginProcessor.check(proc, s.arguments, who: describe(s.id, i)) } catch { throw refuse(error) }
        let args = s.arguments.baseAddress ?? UnsafePointer(bitPattern: 8)!
        let size = tgp_block_size(proc, args)
        guard let block = bytes.reserve(size) else { throw refuse(.outOfMemory("\(describe(s.id, i)): no memory for its arguments")) }
        tgp_block_fill(proc, args, block)
        t.pointee.fn = unsafeBitCast(tgp_trampoline as Processor, to: UnsafeMutableRawPointer.self)
        t.pointee.user = block
        t.pointee.flags |= UInt8(TGS_TASK_PLUGIN)
    }

    /// Plugin tasks of `plugin` the engine may still call: submitted and not
    /// released. With none, runs `retire` before new submissions can start.
    func pluginTasksInFlight(_ plugin: UnsafeMutablePointer<tgp_plugin>, orRetire retire: () -> Void) -> Int {
        submitLock.lock()
        defer { submitLock.unlock() }
        var n = 0
        for i in 0..<tasks.count {
            let t = task(i)
            if t.pointee.flags & UInt8(TGS_TASK_PLUGIN) != 0 && tgs_load_u8(&t.pointee.released) == 0
                && tgp_task_plugin(t) == plugin { n += 1 }
        }
        // A worker recovering after a task of this plugin counts too.
        n += Int(tgs_load_u32(&plugin.pointee.recovering))
        if n == 0 { retire() }
        return n
    }

    /// Tasks submitted so far (their submission numbers are 0 ..< count).
    public var submittedCount: Int { Int(tgs_load_i64(submitted)) }

    // MARK: - Submission

    /// Submits `count` tasks, all or nothing; returns the first submission number.
    /// `spec(i)` is called more than once per task.
    public func submitBatch(count: Int, spec: (Int) -> TaskSpec) throws(TaskGateError) -> UInt64 {
        try submitBatch(count: count, id: { spec($0).id }, spec: spec)
    }

    /// The same, with a cheap accessor for task `i`'s id alone (used to hash
    /// ids ahead of the task being submitted).
    public func submitBatch(count: Int, id idOf: (Int) -> UnsafePointer<CChar>?,
                            spec: (Int) -> TaskSpec) throws(TaskGateError) -> UInt64 {
        // Tasks skipped at submission (a dependency had already failed) end
        // under the submission lock; their end hooks run once it is released,
        // since a hook may block on something whose holder is submitting.
        var ends: [Int32] = []
        let first = try submitBatchLocked(count: count, id: idOf, spec: spec, ends: &ends)
        for j in ends { callOnEnd(j) }
        return first
    }

    private func submitBatchLocked(count: Int, id idOf: (Int) -> UnsafePointer<CChar>?,
                                   spec: (Int) -> TaskSpec, ends: inout [Int32]) throws(TaskGateError) -> UInt64 {
        guard count > 0 else { throw .invalid("a batch needs at least one task") }
        submitLock.lock()
        defer { submitLock.unlock() }
        guard accepting else { throw .shutDown }
        let base = tasks.count
        guard base + count < Int(Int32.max) - 1 else {
            throw .outOfRange("the pool holds at most \(Int32.max - 2) tasks; it has \(base), the batch \(count)")
        }
        guard tasks.reserve(count), completionLog.ensureCapacity(base + count) else {
            throw .outOfMemory("no memory for \(count) more tasks")
        }
        var anyTryOnly = false
        if let (chunk, bytes) = tasks.mapAhead() { offerPrefault(chunk, bytes) }
        guard ids.beginBatch(reserving: count, tasks: tasks) else { throw .outOfMemory("no memory to index \(count) more task ids") }
        let arenaMark = bytes.mark()
        let claimsBase = claims.count
        let extrasBase = extras.count
        let recordsBase = policyRecords.count
        let groupsBase = groupNames.count
        batchEdges.removeAll(keepingCapacity: true)
        var cwd: [UInt8]? = nil
        var anyDependencies = false

        func refuse(_ e: TaskGateError) -> TaskGateError {
            ids.rollbackBatch()
            tasks.truncate(to: base)
            claims.truncate(to: claimsBase)
            extras.truncate(to: extrasBase)
            for k in recordsBase..<policyRecords.count { free(policyRecords.pointer(k).pointee.delays) }
            policyRecords.truncate(to: recordsBase)
            // Groups first named by the refused batch never existed.
            while groupNames.count > groupsBase {
                let name = groupNames.removeLast()
                groupIndex[TaskPool.key(name)] = nil
                free(UnsafeMutablePointer(mutating: name))
                groupMembers.removeLast()
            }
            groups.truncate(to: groupsBase)
            bytes.rollback(to: arenaMark)
            forgetCaches(from: Int32(base))
            return e
        }

        // Phase 1: records and ids. The id index is a large table probed at
        // random, so each insert would wait on a cache miss: hash a few tasks
        // ahead and prefetch their slots while inserting the current one.
        let ahead = 8
        // (hash, length) of the ids of tasks i ..< i + ahead, in a ring.
        var hashes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var lengths = (0, 0, 0, 0, 0, 0, 0, 0)
        func hashAhead(_ k: Int) {
            guard k < count, let id = idOf(k) else { return }
            let len = strlen(id)
            let h = IdIndex.hash(id, len)
            withUnsafeMutableBytes(of: &hashes) { $0.storeBytes(of: h, toByteOffset: (k % ahead) * 8, as: UInt64.self) }
            withUnsafeMutableBytes(of: &lengths) { $0.storeBytes(of: len, toByteOffset: (k % ahead) * 8, as: Int.self) }
            ids.prefetch(hash: h)
        }
        for k in 0..<min(ahead, count) { hashAhead(k) }
        for i in 0..<count {
            let hash = withUnsafeBytes(of: &hashes) { $0.load(fromByteOffset: (i % ahead) * 8, as: UInt64.self) }
            let idLength = withUnsafeBytes(of: &lengths) { $0.load(fromByteOffset: (i % ahead) * 8, as: Int.self) }
            hashAhead(i + ahead)
            let s = spec(i)
            if let reason = s.invalidReason { throw refuse(.invalid(reason)) }
            if !s.dependencies.isEmpty { anyDependencies = true }
            let idx = tasks.append()
            let t = task(idx)
            t.initialize(to: tgs_task())
            t.pointee.fn = unsafeBitCast(s.processor, to: UnsafeMutableRawPointer.self)
            t.pointee.user = s.user
            t.pointee.group = -1
            t.pointee.priority = UInt8(s.lane)
            t.pointee.flags = s.critical ? UInt8(TGS_TASK_CRITICAL) : 0
            t.pointee.dependents = Int32(TGS_EDGE_EMPTY)
            t.pointee.cause = -1
            t.pointee.worker = -1
            t.pointee.pending = 1  // the submission guard
            let policy = s.policy ?? policyForGroup(s.group) ?? defaultPolicy
            if s.timeoutNanoseconds > 0 || s.difficulty != 0 || s.payload.count > 0 || !s.reads.isEmpty || !s.writes.isEmpty
                || s.onEnd != nil || policy != nil {
                guard extras.reserve(1) else { throw refuse(.outOfMemory("no memory for task extras")) }
                let x = extras.pointer(extras.append())
                x.initialize(to: tgs_task_extra())
                x.pointee.difficulty = s.difficulty
                if let f = s.onEnd {
                    x.pointee.on_end = unsafeBitCast(f, to: UnsafeMutableRawPointer.self)
                    x.pointee.on_end_user = s.onEndUser
                    t.pointee.flags |= UInt8(TGS_TASK_HAS_ON_END)
                }
                t.pointee.extra = x
            }
            if let proc = s.plugin {
                try submitPluginTask(t, proc, s, i, refuse)
            }
            if let policy {
                do { try attachPolicy(policy, t, s, i) } catch { throw refuse(error) }
            } else if s.tryOnly {
                throw refuse(.invalid("\(describe(s.id, i)): a try-submit needs a policy with limits or a breaker"))
            }
            if s.tryOnly { anyTryOnly = true }
            if s.timeoutNanoseconds > 0 {
                t.pointee.extra.pointee.timeout_ns = s.timeoutNanoseconds
                t.pointee.flags |= UInt8(TGS_TASK_HAS_TIMEOUT)
            }
            if let id = s.id {
                let len = idLength
                if len == 0 { throw refuse(.invalid("task #\(i) of the batch: the id is empty (use NULL for an anonymous task)")) }
                guard let copy = bytes.copy(id, count: len, terminate: true) else {
                    throw refuse(.outOfMemory("\(describe(s.id, i)): no memory for its id"))
                }
                t.pointee.id = UnsafePointer(copy.assumingMemoryBound(to: CChar.self))
                if ids.insert(t.pointee.id, hash: hash, index: idx, tasks: tasks) >= 0 {
                    throw refuse(.duplicateId(String(cString: id)))
                }
            }
            if s.payload.count > 0, let p = s.payload.baseAddress {
                guard let copy = bytes.copy(p, count: s.payload.count, terminate: false) else {
                    throw refuse(.outOfMemory("\(describe(s.id, i)): no memory for its \(s.payload.count)-byte payload"))
                }
                t.pointee.extra.pointee.payload = UnsafeRawPointer(copy)
                t.pointee.extra.pointee.payload_len = UInt64(s.payload.count)
            }
            if let g = s.group {
                if g.pointee == 0 { throw refuse(.invalid("\(describe(s.id, i)): the group name is empty")) }
                guard let group = internGroup(g) else { throw refuse(.outOfMemory("\(describe(s.id, i)): no memory for its group")) }
                t.pointee.group = group
            }
            if !s.reads.isEmpty || !s.writes.isEmpty {
                if cwd == nil { cwd = PathNormalizer.currentDirectory() }
                do throws(TaskGateError) {
                    try cwd!.withUnsafeBufferPointer { (dir) throws(TaskGateError) in
                        try addClaims(t, reads: s.reads, writes: s.writes, cwd: dir, id: s.id, position: i)
                    }
                } catch { throw refuse(error) }
            }
            if let request = s.cache {
                do { try declareCache(request, t, s, index: Int32(idx), position: i) } catch { throw refuse(error) }
            }
        }

        if cwd != nil { pathGate.ensureCapacity(paths.count) }

        // Phase 2: dependencies, by id, in this batch or before it. A task's
        // dependencies are hashed and their slots prefetched first, then looked
        // up: a join over many tasks would otherwise wait on one miss per id.
        var forwardEdge = false
        for i in 0..<count where anyDependencies {
            let s = spec(i)
            if s.dependencies.isEmpty { continue }
            task(base + i).pointee.flags |= UInt8(TGS_TASK_HAS_DEPS)
            depHashes.removeAll(keepingCapacity: true)
            for d in s.dependencies {
                guard let d else { throw refuse(.invalid("\(describe(s.id, i)): dependency list holds NULL")) }
                let h = IdIndex.hash(d, strlen(d))
                ids.prefetch(hash: h)
                depHashes.append(h)
            }
            for (k, d) in s.dependencies.enumerated() {
                let p = ids.find(d!, hash: depHashes[k], tasks: tasks)
                if p < 0 { throw refuse(.unknownDependency(task: describe(s.id, i, quoted: false), dependency: String(cString: d!))) }
                if p >= base + i { forwardEdge = true }
                batchEdges.append((Int32(base + i), Int32(p)))
            }
        }
        // Only an edge to the same or a later task of the batch can close a
        // cycle: with none, every edge points back and there is none to find.
        if forwardEdge, let cycle = findCycle(base: base, count: count) { throw refuse(.cycle(cycle)) }

        guard edges.reserve(batchEdges.count) else { throw refuse(.outOfMemory("no memory for \(batchEdges.count) dependency edges")) }
        // A try-submit takes its slot and tokens last: nothing is refused after.
        if anyTryOnly {
            for i in 0..<count where spec(i).tryOnly {
                do { try tryAdmit(task(base + i), spec(i), i) } catch {
                    for k in 0..<i where spec(k).tryOnly { untryAdmit(task(base + k)) }
                    throw refuse(error)
                }
            }
        }

        // Phase 3: commit. Nothing can fail from here on.
        let now = tgs_monotonic_ns()
        tgs_add_sc_i64(admitted, Int64(count))
        for lane in 0..<3 { readyScratch[lane].removeAll(keepingCapacity: true) }
        for i in base..<(base + count) {
            let t = task(i)
            t.pointee.submit_ns = now
            let g = t.pointee.group
            if g >= 0 {
                groupMembers[Int(g)].append(Int32(i))
                tgs_store_u32(&group(g).pointee.members, UInt32(groupMembers[Int(g)].count))
                if t.pointee.flags & UInt8(TGS_TASK_CRITICAL) != 0 {
                    tgs_store_u32(&group(g).pointee.critical, 1)
                }
            }
            if t.pointee.flags & UInt8(TGS_TASK_HAS_DEPS) == 0 {
                // No other thread can reach this task yet: it is in no queue
                // and no parent's list, `submitted` does not cover it, and
                // lookups need the lock held here. Plain stores do.
                t.pointee.pending = 0
                t.pointee.state = UInt32(TGS_STATE_QUEUED)
                t.pointee.ready_ns = now
                readyScratch[Int(t.pointee.priority)].append(Int32(i))
            }
        }
        if anyDependencies {
            for (child, parent) in batchEdges { attach(child: child, parent: parent) }
            for i in base..<(base + count) {
                let t = task(i)
                if t.pointee.flags & UInt8(TGS_TASK_HAS_DEPS) == 0 { continue }
                if tgs_load_i32(&t.pointee.cause) >= 0 {
                    skip(Int32(i), worker: -1, deferEnds: &ends)
                } else if tgs_add_i32(&t.pointee.pending, -1) == 1,
                          tgs_cas_u32(&t.pointee.state, UInt32(TGS_STATE_PENDING), UInt32(TGS_STATE_QUEUED)) != 0 {
                    t.pointee.ready_ns = now
                    readyScratch[Int(t.pointee.priority)].append(Int32(i))
                }
            }
        }
        var woken = 0
        for lane in 0..<3 where !readyScratch[lane].isEmpty {
            readyScratch[lane].withUnsafeBufferPointer { injectors[lane].push(contentsOf: $0) }
            woken += readyScratch[lane].count
        }
        // Published last: a thread walking 0 ..< submitted (cancel_all) must
        // not meet a task that is still being wired.
        tgs_store_i64(submitted, Int64(base + count))
        if woken > 0 { wakeWorkers(woken) }
        return UInt64(base)
    }

    /// Leaves a fresh chunk for an idle worker to fault in (see Worker.idle).
    /// A chunk nobody took is simply faulted by whoever first writes it.
    private func offerPrefault(_ chunk: UnsafeMutableRawPointer, _ bytes: Int) {
        tgs_store_u64(prefaultBytes, UInt64(bytes))
        tgs_store_u64(prefault, UInt64(UInt(bitPattern: chunk)))
        if workerCount > 0 { wakeWorkers(1) }
    }

    /// One task; the common case, without the batch's scratch lists.
    public func submit(_ s: TaskSpec) throws(TaskGateError) -> UInt64 {
        try submitBatch(count: 1) { _ in s }
    }

    func describe(_ id: UnsafePointer<CChar>?, _ i: Int, quoted: Bool = true) -> String {
        if let id { return quoted ? "task '\(String(cString: id))'" : String(cString: id) }
        return "task #\(i) of the batch (anonymous)"
    }

    static func key(_ name: UnsafePointer<CChar>) -> [UInt8] {
        Array(UnsafeBufferPointer(start: UnsafeRawPointer(name).assumingMemoryBound(to: UInt8.self), count: strlen(name)))
    }

    /// The group's index, creating it when new; nil when out of memory.
    func internGroup(_ name: UnsafePointer<CChar>) -> Int32? {
        let key = TaskPool.key(name)
        if let g = groupIndex[key] { return g }
        guard groups.reserve(1), let stored = strdup(name) else { return nil }
        let g = Int32(groups.append())
        group(g).initialize(to: GroupState())
        groupNames.append(UnsafePointer(stored))
        groupMembers.append([])
        groupIndex[key] = g
        return g
    }

    private func addClaims(_ t: UnsafeMutablePointer<tgs_task>, reads: UnsafeBufferPointer<UnsafePointer<CChar>?>,
                           writes: UnsafeBufferPointer<UnsafePointer<CChar>?>, cwd: UnsafeBufferPointer<UInt8>,
                           id taskId: UnsafePointer<CChar>?, position: Int) throws(TaskGateError) {
        func name() -> String { describe(taskId, position) }
        // Claims as path id << 1 | write, deduplicated: a path both read and
        // written counts as written. A task declares few paths, so a linear
        // scan beats hashing.
        claimScratch.removeAll(keepingCapacity: true)
        func add(_ list: UnsafeBufferPointer<UnsafePointer<CChar>?>, isWrite: Bool) throws(TaskGateError) {
            for p in list {
                guard let p else { throw .invalid("\(name()): \(isWrite ? "write" : "read") list holds NULL") }
                if p.pointee == 0 { throw .invalid("\(name()): an empty path in its \(isWrite ? "writes" : "reads")") }
                normalizer.normalize(p, base: cwd.baseAddress!, baseCount: cwd.count)
                let id: Int32
                var root = UInt8(ascii: "/")
                let interned = normalizer.count == 0 ? paths.intern(&root, 1) : paths.intern(normalizer.buffer, normalizer.count)
                guard let interned else { throw .outOfMemory("\(name()): no memory for its declared paths") }
                id = interned
                claimScratch.append(id << 1 | (isWrite ? 1 : 0))
            }
        }
        try add(reads, isWrite: false)
        try add(writes, isWrite: true)
        // Sorted (so two tasks always inspect shared paths in the same order),
        // then merged: one claim per path, a write where any was a write.
        claimScratch.sort()
        var merged = 0
        for c in claimScratch {
            if merged > 0 && claimScratch[merged - 1] >> 1 == c >> 1 {
                claimScratch[merged - 1] |= c
            } else {
                claimScratch[merged] = c
                merged += 1
            }
        }
        claimScratch.removeLast(claimScratch.count - merged)
        guard claims.reserve(merged) else { throw .outOfMemory("\(name()): no memory for \(merged) declared paths") }
        t.pointee.extra.pointee.paths_start = Int32(claims.count)
        t.pointee.extra.pointee.paths_count = Int32(merged)
        for c in claimScratch { claim(claims.append()).pointee = c }
        t.pointee.flags |= UInt8(TGS_TASK_HAS_PATHS)
    }

    /// Kahn's algorithm over the batch's own edges (edges to older tasks cannot
    /// close a cycle: those tasks could not name the new ones). Returns one
    /// cycle's ids, first id repeated at the end, or nil.
    private func findCycle(base: Int, count: Int) -> [String]? {
        var inner = batchEdges.filter { Int($0.parent) >= base }
        if inner.isEmpty { return nil }
        // Children lists in CSR form, indexed by batch position.
        var degree = [Int32](repeating: 0, count: count)
        var start = [Int32](repeating: 0, count: count + 1)
        for e in inner { start[Int(e.parent) - base + 1] += 1; degree[Int(e.child) - base] += 1 }
        for i in 0..<count { start[i + 1] += start[i] }
        var fill = start
        var children = [Int32](repeating: 0, count: inner.count)
        for e in inner {
            let p = Int(e.parent) - base
            children[Int(fill[p])] = e.child - Int32(base)
            fill[p] += 1
        }
        var stack: [Int32] = []
        for i in 0..<count where degree[i] == 0 { stack.append(Int32(i)) }
        var seen = 0
        while let n = stack.popLast() {
            seen += 1
            for j in Int(start[Int(n)])..<Int(start[Int(n) + 1]) {
                let c = Int(children[j])
                degree[c] -= 1
                if degree[c] == 0 { stack.append(Int32(c)) }
            }
        }
        if seen == count { return nil }
        // Every node left has degree > 0; walk parents (which are also left) until one repeats.
        var parentOf = [Int32](repeating: -1, count: count)
        for e in inner where degree[Int(e.child) - base] > 0 && degree[Int(e.parent) - base] > 0 {
            parentOf[Int(e.child) - base] = e.parent - Int32(base)
        }
        inner.removeAll()
        var n = Int32((0..<count).first { degree[$0] > 0 }!)
        var order: [Int32] = []
        var position = [Int32: Int]()
        while position[n] == nil {
            position[n] = order.count
            order.append(n)
            n = parentOf[Int(n)]
        }
        // order[position[n]...] walks child -> parent; print it parent -> child,
        // starting from the task that comes first in the batch.
        var loop = Array(order[position[n]!...].reversed())
        let first = loop.indices.min { loop[$0] < loop[$1] }!
        loop = Array(loop[first...] + loop[..<first])
        var cycle = loop.map { idx -> String in
            let t = task(base + Int(idx))
            return t.pointee.id.map { String(cString: $0) } ?? "#\(idx)"
        }
        cycle.append(cycle[0])
        return cycle
    }

    /// Makes `child` wait for `parent`; a parent that already ended counts at once.
    private func attach(child: Int32, parent: Int32) {
        let c = task(child), p = task(parent)
        tgs_add_i32(&c.pointee.pending, 1)
        let e = Int32(edges.append())
        edge(e).pointee.child = child
        while true {
            let head = tgs_load_i32(&p.pointee.dependents)
            if head == Int32(TGS_EDGE_SEALED) {
                tgs_add_i32(&c.pointee.pending, -1)
                if tgs_load_u32(&p.pointee.state) != UInt32(TGS_STATE_SUCCEEDED) {
                    _ = tgs_cas_i32(&c.pointee.cause, -1, parent)
                }
                return
            }
            edge(e).pointee.next = head
            if tgs_cas_i32(&p.pointee.dependents, head, e) != 0 { return }
        }
    }
}
