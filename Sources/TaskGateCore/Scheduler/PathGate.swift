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
    /// Which path a parked writer is counted on. A writer is counted only
    /// while it waits for holders of a path it writes (who always finish), so
    /// counts never wait on each other. The count stays through requeues until
    /// the writer claims its paths (dropping it on requeue let readers queued
    /// ahead slip in every time, starving the writer under load), moves to
    /// another path, is blocked on a read, or is found ended (`forget`);
    /// whenever it leaves a path that way, the readers parked there are
    /// queued again, since no release may ever come for them.
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

    /// Claims every path of task `i`, or parks it and returns false. Tasks
    /// that must look again (parked behind a writer's count that went away)
    /// are appended to `again`.
    func tryClaim(_ i: Int32, pool: TaskPool, again: inout [Int32]) -> Bool {
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
                if isWrite && !allowReadWriteOverlap && (writer[path] || readers[path] > 0) {
                    // Waiting for holders, who always finish: hold new readers back.
                    if countedWriter[i] != path {
                        if let previous = countedWriter[i] { uncount(previous, again: &again) }
                        waitingWriters[path] += 1
                        countedWriter[i] = path
                    }
                } else if let previous = countedWriter.removeValue(forKey: i) {
                    // Blocked on a read, behind another writer's count: keeping
                    // ours could make two counts wait on each other with no
                    // holder left to release either. Give it up.
                    uncount(previous, again: &again)
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

    /// A writer's count leaves `path` without the writer holding it: readers
    /// parked there because of the count may be free to go, and nobody else
    /// would requeue them (the path may be held by no one). Lock held.
    private func uncount(_ path: Int, again: inout [Int32]) {
        waitingWriters[path] -= 1
        if !parked[path].isEmpty {
            again.append(contentsOf: parked[path])
            parked[path].removeAll()
        }
    }

    /// Task `i` ended without claiming its paths (cancelled while parked):
    /// drops the count it may hold as a waiting writer; returns the tasks to
    /// queue again.
    func forget(_ i: Int32) -> [Int32] {
        var again: [Int32] = []
        lock.lock()
        if let counted = countedWriter.removeValue(forKey: i) { uncount(counted, again: &again) }
        lock.unlock()
        return again
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
