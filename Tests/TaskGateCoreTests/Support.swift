import CTaskGateSupport
import Synchronization
@testable import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

/// A Swift closure as a processor: the C trampoline finds the closure through
/// the user pointer. The Job must outlive the task (tests keep it in `jobs`).
/// The pool never owns user pointers, so every Job is kept for the life of the
/// test process (a task may run after the test's own references are gone).
final class Job: @unchecked Sendable {
    let body: (UnsafeMutablePointer<tgs_task>) -> Int32
    private static let keep = Locked<[Job]>([])
    init(_ body: @escaping (UnsafeMutablePointer<tgs_task>) -> Int32) {
        self.body = body
        Job.keep.withLock { $0.append(self) }
    }
    var user: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
}

let trampoline: Processor = { ctx, user in
    Unmanaged<Job>.fromOpaque(user!).takeUnretainedValue().body(ctx!)
}

let ten = Int64(10_000_000_000)  // 10 s: every wait in these tests has a limit

/// Swift-side description of a task, turned into C strings for one submit.
struct Def {
    var id: String?
    var deps: [String] = []
    var reads: [String] = []
    var writes: [String] = []
    var group: String? = nil
    var lane = 1
    var critical = false
    var timeoutNs: Int64 = 0
    var job: Job
}

/// Keeps C strings alive for the duration of a submit.
final class CStrings {
    private var owned: [UnsafeMutablePointer<CChar>] = []
    func make(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        owned.append(p)
        return UnsafePointer(p)
    }
    func list(_ xs: [String]) -> UnsafeBufferPointer<UnsafePointer<CChar>?> {
        let buf = UnsafeMutableBufferPointer<UnsafePointer<CChar>?>.allocate(capacity: max(xs.count, 1))
        for (i, x) in xs.enumerated() { buf[i] = make(x) }
        lists.append(buf)
        return UnsafeBufferPointer(start: buf.baseAddress, count: xs.count)
    }
    private var lists: [UnsafeMutableBufferPointer<UnsafePointer<CChar>?>] = []
    deinit {
        owned.forEach { free($0) }
        lists.forEach { $0.deallocate() }
    }
}

extension TaskPool {
    @discardableResult
    func submit(_ defs: [Def]) throws(TaskGateError) -> UInt64 {
        let strings = CStrings()
        let specs: [TaskSpec] = defs.map { d in
            var s = TaskSpec(id: d.id.map { strings.make($0) }, processor: trampoline, user: d.job.user)
            s.dependencies = strings.list(d.deps)
            s.reads = strings.list(d.reads)
            s.writes = strings.list(d.writes)
            s.group = d.group.map { strings.make($0) }
            s.lane = d.lane
            s.critical = d.critical
            s.timeoutNanoseconds = d.timeoutNs
            return s
        }
        return try withExtendedLifetime(strings) { () throws(TaskGateError) -> UInt64 in
            try submitBatch(count: specs.count) { specs[$0] }
        }
    }

    @discardableResult
    func submit(_ d: Def) throws(TaskGateError) -> UInt64 { try submit([d]) }

    func status(_ id: String) throws -> TaskStatus {
        try id.withCString { try result(lookup($0)).status }
    }

    func resultView(_ id: String) throws -> TaskResultView {
        try id.withCString { try result(lookup($0)) }
    }

    func waitFor(_ id: String, timeout: Int64 = ten) throws {
        try id.withCString { p in try wait(task: lookup(p), timeout: timeout) }
    }

    /// Polls until the task is running (10 s at most).
    func waitRunning(_ id: String) throws {
        let deadline = tgs_monotonic_ns() + ten
        while try status(id) != .running && tgs_monotonic_ns() < deadline { usleep(100) }
    }

    /// Shuts down and checks it went cleanly; every test ends with this.
    func finish() throws {
        try waitAll(timeout: ten)
        try shutdown(.drain, timeout: ten)
    }
}

/// A latch a processor can block on, released by the test.
final class Gate: @unchecked Sendable {
    private let open = Atomic<Bool>(false)
    func release() { open.store(true, ordering: .releasing) }
    /// Spins politely until released or 10 s pass; returns whether released.
    @discardableResult
    func wait() -> Bool {
        let deadline = tgs_monotonic_ns() + ten
        while !open.load(ordering: .acquiring) {
            if tgs_monotonic_ns() > deadline { return false }
            usleep(200)
        }
        return true
    }
}

let workerCounts = [1, 2, 4, 8]

func ok() -> Job { Job { _ in 0 } }

/// What tg_task_cancelled() reports, for processors written in Swift.
func cancelled(_ t: UnsafeMutablePointer<tgs_task>) -> Bool {
    tgs_load_u32(&t.pointee.signals) & UInt32(TGS_SIGNAL_CANCEL) != 0
}

/// A value behind a pthread mutex. The tests use this rather than
/// Synchronization.Mutex because ThreadSanitizer does not recognise the
/// latter's futex-based lock and reports the accesses it guards as races.
final class Locked<Value>: @unchecked Sendable {
    private let lock = Lock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
