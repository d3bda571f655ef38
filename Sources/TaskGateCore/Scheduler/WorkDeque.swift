import CTaskGateSupport

/// A worker's own deque of task indices (Chase-Lev, in the C11 formulation of
/// Lê, Pop, Cohen and Zappa Nardelli, 2013).
///
/// The owner pushes and pops at the bottom without contention; thieves take
/// from the top with one CAS. The ring has a fixed capacity: a push that finds
/// it full returns false and the caller sends the task to the injector
/// instead, which keeps the deque free of the resize-and-reclaim machinery
/// (a full deque means plenty of work is already local).
///
/// `top` and `bottom` sit on separate cache lines so thieves polling `top`
/// do not slow the owner's pushes.
final class WorkDeque: @unchecked Sendable {
    static let capacity = 4096
    private let block: UnsafeMutableRawPointer
    private let top: UnsafeMutablePointer<Int64>
    private let bottom: UnsafeMutablePointer<Int64>
    private let buffer: UnsafeMutablePointer<Int32>
    private let mask = Int64(capacity - 1)

    init() {
        block = .allocate(byteCount: 128 + Self.capacity * 4, alignment: 64)
        top = block.bindMemory(to: Int64.self, capacity: 1)
        bottom = (block + 64).bindMemory(to: Int64.self, capacity: 1)
        buffer = (block + 128).bindMemory(to: Int32.self, capacity: Self.capacity)
        top.initialize(to: 0)
        bottom.initialize(to: 0)
        buffer.initialize(repeating: 0, count: Self.capacity)
    }

    deinit { block.deallocate() }

    /// Owner only. False when full.
    @inline(__always) func push(_ task: Int32) -> Bool {
        let b = tgs_load_relaxed_i64(bottom)
        let t = tgs_load_i64(top)
        if b - t >= Int64(Self.capacity) { return false }
        tgs_store_relaxed_i32(buffer + Int(b & mask), task)
        tgs_store_i64(bottom, b + 1)  // release: the slot is visible before the new bottom
        return true
    }

    /// Owner only: how many more pushes fit right now.
    @inline(__always) func room() -> Int {
        Self.capacity - Int(tgs_load_relaxed_i64(bottom) - tgs_load_i64(top))
    }

    /// Owner only. -1 when empty.
    @inline(__always) func pop() -> Int32 {
        let b = tgs_load_relaxed_i64(bottom) - 1
        tgs_store_relaxed_i64(bottom, b)
        tgs_fence_sc()
        let t = tgs_load_relaxed_i64(top)
        if t > b {
            tgs_store_relaxed_i64(bottom, b + 1)
            return -1
        }
        var x = tgs_load_relaxed_i32(buffer + Int(b & mask))
        if t == b {
            // Last element: race the thieves for it.
            if tgs_cas_sc_i64(top, t, t + 1) == 0 { x = -1 }
            tgs_store_relaxed_i64(bottom, b + 1)
        }
        return x
    }

    /// Any thread. -1 when empty or when it lost a race (the caller moves on).
    @inline(__always) func steal() -> Int32 {
        let t = tgs_load_i64(top)
        tgs_fence_sc()
        let b = tgs_load_i64(bottom)
        if t >= b { return -1 }
        let x = tgs_load_relaxed_i32(buffer + Int(t & mask))
        if tgs_cas_sc_i64(top, t, t + 1) == 0 { return -1 }
        return x
    }

    /// Any thread; a hint.
    @inline(__always) var isEmpty: Bool { tgs_load_i64(top) >= tgs_load_i64(bottom) }
}

/// The queue that submissions from outside the workers go to, one per priority
/// lane: a growable ring under a lock, FIFO. Workers take a batch per lock
/// acquisition and keep it in their own deque, so the lock is paid once per
/// batch, not once per task, and other workers can steal from the batch.
final class Injector: @unchecked Sendable {
    private let lock = Lock()
    private var ring: UnsafeMutablePointer<Int32>
    private var capacity = 1024
    private var head = 0
    private var size = 0
    /// Mirrors `size` for lock-free emptiness checks.
    private let published: UnsafeMutablePointer<Int64>

    init() {
        ring = .allocate(capacity: capacity)
        published = .allocate(capacity: 8)  // a cache line of its own
        published.initialize(repeating: 0, count: 8)
    }

    deinit {
        ring.deallocate()
        published.deallocate()
    }

    @inline(__always) var isEmpty: Bool { tgs_load_relaxed_i64(published) == 0 }
    var count: Int { Int(tgs_load_relaxed_i64(published)) }

    private func grow(to needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        let fresh = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        for i in 0..<size { fresh[i] = ring[(head + i) & (capacity - 1)] }
        ring.deallocate()
        ring = fresh
        capacity = newCapacity
        head = 0
    }

    func push(_ task: Int32) {
        lock.lock()
        if size == capacity { grow(to: size + 1) }
        ring[(head + size) & (capacity - 1)] = task
        size += 1
        tgs_store_i64(published, Int64(size))
        lock.unlock()
    }

    func push(contentsOf tasks: UnsafeBufferPointer<Int32>) {
        if tasks.isEmpty { return }
        lock.lock()
        if size + tasks.count > capacity { grow(to: size + tasks.count) }
        for t in tasks {
            ring[(head + size) & (capacity - 1)] = t
            size += 1
        }
        tgs_store_i64(published, Int64(size))
        lock.unlock()
    }

    /// Takes one task for the caller to run and moves up to `extra` more into
    /// `deque` (in reverse, so the owner's LIFO pops keep FIFO order).
    /// Returns -1 when empty.
    func take(moving extra: Int, into deque: WorkDeque) -> Int32 {
        if isEmpty { return -1 }
        lock.lock()
        if size == 0 {
            lock.unlock()
            return -1
        }
        let first = ring[head]
        let n = min(extra, size - 1, deque.room())
        if n > 0 {
            var i = n
            while i >= 1 {
                _ = deque.push(ring[(head + i) & (capacity - 1)])
                i -= 1
            }
        }
        head = (head + n + 1) & (capacity - 1)
        size -= n + 1
        tgs_store_i64(published, Int64(size))
        lock.unlock()
        return first
    }
}
