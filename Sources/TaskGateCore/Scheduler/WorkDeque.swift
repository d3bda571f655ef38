import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// A worker's own queue of task indices: a Chase-Lev deque (in the C11
/// formulation of Lê, Pop, Cohen and Zappa Nardelli, 2013) used as a FIFO.
///
/// Only the owner pushes, at the bottom, without contention. Everyone takes
/// from the top with one CAS, the owner too: oldest first, so FIFO within a
/// priority lane holds even when other workers steal part of a batch. (With
/// the classic owner pop at the bottom, a thief taking the top of a batch
/// runs its newest task before the owner runs its oldest.) The owner's CAS
/// costs about what the classic pop pays for its fence.
///
/// The ring has a fixed capacity: a push that finds it full returns false and
/// the caller sends the task to the injector instead, which keeps the deque
/// free of the resize-and-reclaim machinery (a full deque means plenty of
/// work is already local).
///
struct WorkDeque: @unchecked Sendable {
    static let capacity = 4096
    private let block: UnsafeMutableRawPointer
    private let top: UnsafeMutablePointer<Int64>
    private let bottom: UnsafeMutablePointer<Int64>
    private let buffer: UnsafeMutablePointer<Int32>
    private var mask: Int64 { Int64(Self.capacity - 1) }

    init() {
        block = .allocate(byteCount: 128 + Self.capacity * 4, alignment: 64)
        top = block.bindMemory(to: Int64.self, capacity: 1)
        bottom = (block + 64).bindMemory(to: Int64.self, capacity: 1)
        buffer = (block + 128).bindMemory(to: Int32.self, capacity: Self.capacity)
        top.initialize(to: 0)
        bottom.initialize(to: 0)
        buffer.initialize(repeating: 0, count: Self.capacity)
    }

    func release() { block.deallocate() }

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

    /// The oldest task, for the owner: retries a lost race while tasks remain. -1 when empty.
    @inline(__always) func take() -> Int32 {
        while true {
            let t = steal()
            if t >= 0 || isEmpty { return t }
        }
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
/// lane: a growable ring under a mutex, FIFO. Workers take a batch per lock
/// acquisition and keep it in their own deque, so the lock is paid once per
/// batch, not once per task, and other workers can steal from the batch.
/// A struct over raw memory, like WorkDeque.
struct Injector: @unchecked Sendable {
    private struct State {
        var mutex = pthread_mutex_t()
        var ring: UnsafeMutablePointer<Int32>
        var capacity: Int
        var head = 0
        var size = 0
    }
    private let state: UnsafeMutablePointer<State>
    /// Mirrors `size` for lock-free emptiness checks, on a cache line of its own.
    private let published: UnsafeMutablePointer<Int64>

    init() {
        state = .allocate(capacity: 1)
        state.initialize(to: State(ring: .allocate(capacity: 1024), capacity: 1024))
        pthread_mutex_init(&state.pointee.mutex, nil)
        published = .allocate(capacity: 8)
        published.initialize(repeating: 0, count: 8)
    }

    func release() {
        pthread_mutex_destroy(&state.pointee.mutex)
        state.pointee.ring.deallocate()
        state.deallocate()
        published.deallocate()
    }

    @inline(__always) var isEmpty: Bool { tgs_load_relaxed_i64(published) == 0 }
    @inline(__always) var count: Int { Int(tgs_load_relaxed_i64(published)) }

    private func grow(to needed: Int) {
        let s = state
        var newCapacity = s.pointee.capacity
        while newCapacity < needed { newCapacity *= 2 }
        let fresh = UnsafeMutablePointer<Int32>.allocate(capacity: newCapacity)
        for i in 0..<s.pointee.size { fresh[i] = s.pointee.ring[(s.pointee.head + i) & (s.pointee.capacity - 1)] }
        s.pointee.ring.deallocate()
        s.pointee.ring = fresh
        s.pointee.capacity = newCapacity
        s.pointee.head = 0
    }

    func push(_ task: Int32) {
        let s = state
        pthread_mutex_lock(&s.pointee.mutex)
        if s.pointee.size == s.pointee.capacity { grow(to: s.pointee.size + 1) }
        s.pointee.ring[(s.pointee.head + s.pointee.size) & (s.pointee.capacity - 1)] = task
        s.pointee.size += 1
        tgs_store_i64(published, Int64(s.pointee.size))
        pthread_mutex_unlock(&s.pointee.mutex)
    }

    func push(contentsOf tasks: UnsafeBufferPointer<Int32>) {
        if tasks.isEmpty { return }
        let s = state
        pthread_mutex_lock(&s.pointee.mutex)
        if s.pointee.size + tasks.count > s.pointee.capacity { grow(to: s.pointee.size + tasks.count) }
        let ring = s.pointee.ring, m = s.pointee.capacity - 1
        var tail = s.pointee.head + s.pointee.size
        for t in tasks {
            ring[tail & m] = t
            tail += 1
        }
        s.pointee.size += tasks.count
        tgs_store_i64(published, Int64(s.pointee.size))
        pthread_mutex_unlock(&s.pointee.mutex)
    }

    /// Takes one task for the caller to run and moves up to `extra` more into
    /// `deque`, in order.
    /// Returns -1 when empty.
    func take(moving extra: Int, into deque: WorkDeque) -> Int32 {
        if isEmpty { return -1 }
        let s = state
        pthread_mutex_lock(&s.pointee.mutex)
        let size = s.pointee.size
        if size == 0 {
            pthread_mutex_unlock(&s.pointee.mutex)
            return -1
        }
        let ring = s.pointee.ring, m = s.pointee.capacity - 1, head = s.pointee.head
        let first = ring[head]
        let n = min(extra, size - 1, deque.room())
        var i = 1
        while i <= n {
            _ = deque.push(ring[(head + i) & m])
            i += 1
        }
        s.pointee.head = (head + n + 1) & m
        s.pointee.size = size - n - 1
        tgs_store_i64(published, Int64(size - n - 1))
        pthread_mutex_unlock(&s.pointee.mutex)
        return first
    }
}
