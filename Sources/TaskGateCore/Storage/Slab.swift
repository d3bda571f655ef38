import CTaskGateSupport

/// Append-only storage with stable element addresses.
///
/// Elements live in fixed-size chunks found through a chunk table that is
/// allocated once, so an element's address never changes and readers on other
/// threads need no lock: a writer fills an element, then publishes its index
/// through an atomic (a queue, a CAS on an edge list); the reader acquires the
/// index and reads the chunk table entry written before it.
///
/// Chunks are zeroed anonymous mappings (`tgs_map`); every chunk after the
/// first asks for transparent huge pages, so a large pool pays a fraction of
/// the page-fault cost while a small one pays only for pages it touches.
///
/// Appends are the caller's to serialise (the pool's submission lock).
struct Slab<Element>: @unchecked Sendable {
    let chunkShift: Int
    var chunkSize: Int { 1 << chunkShift }
    var chunkBytes: Int { MemoryLayout<Element>.stride << chunkShift }
    var maxChunks: Int { (1 << 31) >> chunkShift }

    let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>
    private(set) var count: Int = 0
    private var allocatedChunks = 0

    /// `chunkShift`: log2 of the elements per chunk.
    init(chunkShift: Int) {
        self.chunkShift = chunkShift
        // A zeroed mapping is an all-nil table that costs memory only for the
        // entries ever written (a few pages), however large the limit.
        let n = (1 << 31) >> chunkShift
        chunks = tgs_map(n * 8, 0)!.bindMemory(to: UnsafeMutablePointer<Element>?.self, capacity: n)
    }

    /// Frees the chunks. Elements are not deinitialised (they are trivial).
    func release() {
        for i in 0..<allocatedChunks { tgs_unmap(chunks[i], chunkBytes) }
        tgs_unmap(chunks, maxChunks * 8)
    }

    @inline(__always) func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        chunks[index >> chunkShift].unsafelyUnwrapped + (index & (chunkSize - 1))
    }

    /// Makes room for `n` more elements, so `append` will not allocate.
    /// Returns false when the slab would exceed its maximum size or memory ran out.
    mutating func reserve(_ n: Int) -> Bool { ensureCapacity(count + n) }

    /// Makes indices 0 ..< total addressable (for slabs written by index, not by `append`).
    mutating func ensureCapacity(_ needed: Int) -> Bool {
        guard needed <= maxChunks << chunkShift else { return false }
        while allocatedChunks << chunkShift < needed {
            guard let raw = tgs_map(chunkBytes, allocatedChunks > 0 ? 1 : 0) else { return false }
            chunks[allocatedChunks] = raw.bindMemory(to: Element.self, capacity: chunkSize)
            allocatedChunks += 1
        }
        return true
    }

    /// When fewer than half a chunk of room is left beyond `count`, maps the
    /// next chunk now and returns it, so another thread can fault its pages in
    /// before the appender reaches them. Nil when nothing was mapped.
    mutating func mapAhead() -> (UnsafeMutableRawPointer, Int)? {
        let room = (allocatedChunks << chunkShift) - count
        guard room < chunkSize / 2, ensureCapacity(count + room + 1) else { return nil }
        return (UnsafeMutableRawPointer(chunks[allocatedChunks - 1]!), chunkBytes)
    }

    /// Appends one element (zeroed, or left from a refused batch) and returns its index. Call `reserve` first.
    @inline(__always) mutating func append() -> Int {
        let i = count
        count += 1
        return i
    }

    /// Forgets elements from `newCount` on (a refused batch is rolled back).
    mutating func truncate(to newCount: Int) { count = newCount }
}
