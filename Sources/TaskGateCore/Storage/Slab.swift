/// Append-only storage with stable element addresses.
///
/// Elements live in fixed-size chunks found through a chunk table that is
/// allocated once, so an element's address never changes and readers on other
/// threads need no lock: a writer fills an element, then publishes its index
/// through an atomic (a queue, a CAS on an edge list); the reader acquires the
/// index and reads the chunk table entry written before it.
///
/// Appends are the caller's to serialise (the pool's submission lock).
/// Memory is uninitialised until the caller writes an element.
struct Slab<Element>: @unchecked Sendable {
    static var chunkShift: Int { 12 }
    static var chunkSize: Int { 1 << chunkShift }
    static var maxChunks: Int { 1 << 19 }  // 2^31 elements

    let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>
    private(set) var count: Int = 0
    private var allocatedChunks = 0

    init() {
        chunks = .allocate(capacity: Self.maxChunks)
        chunks.initialize(repeating: nil, count: Self.maxChunks)
    }

    /// Frees the chunks. Elements are not deinitialised (they are trivial).
    func release() {
        for i in 0..<allocatedChunks { chunks[i]?.deallocate() }
        chunks.deallocate()
    }

    @inline(__always) func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        chunks[index >> Self.chunkShift].unsafelyUnwrapped + (index & (Self.chunkSize - 1))
    }

    /// Makes room for `n` more elements, so `append` will not allocate.
    /// Returns false when the slab would exceed its maximum size.
    mutating func reserve(_ n: Int) -> Bool { ensureCapacity(count + n) }

    /// Makes indices 0 ..< total addressable (for slabs written by index, not by `append`).
    mutating func ensureCapacity(_ needed: Int) -> Bool {
        guard needed <= Self.maxChunks << Self.chunkShift else { return false }
        while allocatedChunks << Self.chunkShift < needed {
            chunks[allocatedChunks] = .allocate(capacity: Self.chunkSize)
            allocatedChunks += 1
        }
        return true
    }

    /// Appends one uninitialised element and returns its index. Call `reserve` first.
    @inline(__always) mutating func append() -> Int {
        let i = count
        count += 1
        return i
    }

    /// Forgets elements from `newCount` on (a refused batch is rolled back).
    mutating func truncate(to newCount: Int) { count = newCount }
}
