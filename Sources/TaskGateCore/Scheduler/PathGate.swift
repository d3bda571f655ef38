import CTaskGateSupport

/// Declared reads and writes as scheduling constraints.
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

    init(allowReadWriteOverlap: Bool) { self.allowReadWriteOverlap = allowReadWriteOverlap }

    func ensureCapacity(_ paths: Int) {
        lock.lock()
        while writer.count < paths {
            writer.append(false)
            readers.append(0)
            parked.append([])
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
                : (!allowReadWriteOverlap && writer[path])
            if blocked {
                parked[path].append(i)
                return false
            }
        }
        for k in start..<(start + n) {
            let c = pool.claim(k).pointee
            let path = Int(c >> 1)
            if c & 1 != 0 { writer[path] = true } else { readers[path] += 1 }
        }
        return true
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
