import CTaskGateSupport

/// Declared reads and writes as scheduling constraints. Writers are preferred
/// over readers that arrive after them (see `waitingWriters`).
///
/// Each normalised path is a reader-writer resource. A task claims all its
/// paths at once or none (so no task ever holds some while waiting for the
/// rest, and no two tasks can deadlock on each other's paths); a task that
/// cannot claim them is parked on the first path that blocked it and queued
/// again when that path is released. Only tasks that declared paths come
/// here, so the lock is off the hot path of plain tasks.
///
/// Alternatives weighed: per-path locks taken in sorted order would let a
/// worker block holding some paths (a worker is a thread; blocking it wastes
/// it); an optimistic lock-free claim needs a retry protocol for partial
/// claims that is hard to prove free of starvation and deadlock.
final class PathGate: @unchecked Sendable {
    private let lock = Lock()
    private let allowReadWriteOverlap: Bool
    private var writer: [Bool] = []
    private var readers: [Int32] = []
    private var parked: [[Int32]] = []
    /// Writers parked on each path. While a path has one, new readers wait
    /// too (unless read-write overlap is allowed): otherwise a steady stream of
    /// readers could keep a writer parked forever.
    private var waitingWriters: [Int32] = []
    /// Which path a parked writer is counted on. The count stays through
    /// requeues until the writer claims its paths (dropping it on requeue let
    /// readers queued ahead slip in every time, starving the writer under
    /// load) or is found ended when popped (`forget`), so a writer cancelled
    /// while parked never leaves readers waiting.
    private var countedWriter: [Int32: Int] = [:]

    init(allowReadWriteOverlap: Bool) { self.allowReadWriteOverlap = allowReadWriteOverlap }

    func ensureCapacity(_ paths: Int) {
        lock.lock()
        while writer.count < paths {
            writer.append(false)
            readers.append(0)
            parked.append([])
            waitingWriters.append(0)
        }
        lock.unlock()
    }

    /// Claims every path of task `i`, or parks it and returns false.
    func tryClaim(_ i: Int32, pool: TaskPool) -> Bool {
        let t = pool.task(i)
        let start = Int(t.pointee.extra.pointee.paths_start), n = Int(t.pointee.extra.pointee.paths_count)
        lock.lock()
        defer { lock.unlock() }
        for k in start..<(start + n) {
            let c = pool.claim(k).pointee
            let path = Int(c >> 1), isWrite = c & 1 != 0
            let blocked = isWrite
                ? (writer[path] || (!allowReadWriteOverlap && readers[path] > 0))
                : (!allowReadWriteOverlap && (writer[path] || waitingWriters[path] > 0))
            if blocked {
                parked[path].append(i)
                if isWrite && !allowReadWriteOverlap && countedWriter[i] != path {
                    if let previous = countedWriter[i] { waitingWriters[previous] -= 1 }
                    waitingWriters[path] += 1
                    countedWriter[i] = path
                }
                return false
            }
        }
        if let counted = countedWriter.removeValue(forKey: i) { waitingWriters[counted] -= 1 }
        for k in start..<(start + n) {
            let c = pool.claim(k).pointee
            let path = Int(c >> 1)
            if c & 1 != 0 { writer[path] = true } else { readers[path] += 1 }
        }
        return true
    }

    /// Task `i` ended without claiming its paths (cancelled while parked):
    /// drops the count it may hold as a waiting writer.
    func forget(_ i: Int32) {
        lock.lock()
        if let counted = countedWriter.removeValue(forKey: i) { waitingWriters[counted] -= 1 }
        lock.unlock()
    }

    /// Releases task `i`'s paths; returns the parked tasks to queue again.
    func release(_ i: Int32, pool: TaskPool) -> [Int32] {
        let t = pool.task(i)
        let start = Int(t.pointee.extra.pointee.paths_start), n = Int(t.pointee.extra.pointee.paths_count)
        var again: [Int32] = []
        lock.lock()
        for k in start..<(start + n) {
            let c = pool.claim(k).pointee
            let path = Int(c >> 1)
            if c & 1 != 0 { writer[path] = false } else { readers[path] -= 1 }
            if !parked[path].isEmpty {
                again.append(contentsOf: parked[path])
                parked[path].removeAll()
            }
        }
        lock.unlock()
        return again
    }
}
