import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// Task timeouts and retry delays: one thread sleeping until the earliest
/// deadline. A pool has two: timeouts on the real clock, delays (retries,
/// rate limits, cool-downs) on the policy clock, which may be virtual; a
/// virtual clock wakes its timers when it moves.
///
/// A min-heap of (deadline, task, attempt) under a lock. Entries are not
/// removed when a task ends early; the action finds them ended and drops them
/// (the attempt number keeps an old entry from acting on a later attempt).
/// Started on the first entry.
final class DeadlineTimer: @unchecked Sendable {
    private struct Entry { var deadline: Int64; var task: Int32; var attempt: UInt32 }
    private let lock = Lock()
    private var heap: [Entry] = []
    private unowned(unsafe) let pool: TaskPool
    private let clock: PolicyClock
    private let fire: (TaskPool, Int32, UInt32) -> Void
    private var listener: Int? = nil
    /// Bumped to wake the timer early (an earlier deadline, a clock move, or stop).
    let word: UnsafeMutablePointer<UInt32>
    private var stopped = false
    private var thread: pthread_t? = nil
    /// Non-zero once the thread runs.
    let started: UnsafeMutablePointer<UInt32>

    init(pool: TaskPool, clock: PolicyClock = .system, fire: @escaping (TaskPool, Int32, UInt32) -> Void) {
        self.pool = pool
        self.clock = clock
        self.fire = fire
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
        started = .allocate(capacity: 1)
        started.initialize(to: 0)
    }

    deinit {
        word.deallocate()
        started.deallocate()
    }

    private func poke() {
        tgs_add_sc_u32(word, 1)
        tgs_futex_wake(word, 1)
    }

    /// False when the thread could not be started.
    func start() -> Bool {
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            Unmanaged<DeadlineTimer>.fromOpaque(arg!).takeUnretainedValue().loop()
            return nil
        }, ctx)
        if rc != 0 { return false }
        thread = tid
        if clock.isVirtual {
            let w = word
            listener = clock.listen {
                tgs_add_sc_u32(w, 1)
                tgs_futex_wake(w, 1)
            }
        }
        return true
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        poke()
        if let t = thread { pthread_join(t, nil) }
        thread = nil
        if let l = listener { clock.unlisten(l) }
        listener = nil
    }

    func add(task: Int32, attempt: UInt32, deadline: Int64) {
        lock.lock()
        let earliest = heap.first?.deadline ?? Int64.max
        heap.append(Entry(deadline: deadline, task: task, attempt: attempt))
        var c = heap.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if heap[p].deadline <= heap[c].deadline { break }
            heap.swapAt(p, c)
            c = p
        }
        lock.unlock()
        if deadline < earliest { poke() }
    }

    private func popMin() -> Entry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < heap.count && heap[l].deadline < heap[m].deadline { m = l }
                if r < heap.count && heap[r].deadline < heap[m].deadline { m = r }
                if m == p { break }
                heap.swapAt(p, m)
                p = m
            }
        }
        return top
    }

    private func loop() {
        var due: [Entry] = []
        while true {
            let seen = tgs_load_u32(word)
            lock.lock()
            if stopped { lock.unlock(); return }
            let now = clock.now()
            while let first = heap.first, first.deadline <= now { due.append(popMin()) }
            let next = heap.first?.deadline
            lock.unlock()
            for e in due { fire(pool, e.task, e.attempt) }
            due.removeAll(keepingCapacity: true)
            // A virtual clock wakes this thread itself when it moves.
            let wait = clock.isVirtual ? -1 : next.map { max(0, $0 - clock.now()) } ?? -1
            _ = tgs_futex_wait(word, seen, wait)
        }
    }
}
