import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// Bump allocation of task ids, group names and payloads, freed all at once
/// with the pool. Addresses are stable. Appends are serialised by the caller.
/// `mark()`/`rollback(to:)` undo a refused batch.
struct ByteArena: @unchecked Sendable {
    /// Huge arenas take 2 MiB chunks from tgs_map (transparent huge pages: a
    /// fault per 2 MiB instead of per 4 KiB, which plugin argument blocks and
    /// ids of big batches feel); others 1 MiB from malloc.
    private let huge: Bool
    private var chunkBytes: Int { huge ? 2 << 20 : 1 << 20 }

    init(huge: Bool = false) { self.huge = huge }

    /// (pointer, size when mapped with tgs_map, or 0 when malloc'd)
    private var blocks: [(UnsafeMutableRawPointer, Int)] = []
    private var cursor: UnsafeMutableRawPointer? = nil
    private var remaining = 0

    struct Mark { let blocks: Int; let cursor: UnsafeMutableRawPointer?; let remaining: Int }

    func mark() -> Mark { Mark(blocks: blocks.count, cursor: cursor, remaining: remaining) }

    mutating func rollback(to m: Mark) {
        while blocks.count > m.blocks { Self.freeBlock(blocks.removeLast()) }
        cursor = m.cursor
        remaining = m.remaining
    }

    /// Copies `count` bytes from `source`, plus a NUL when `terminate`; 8-byte
    /// aligned. Nil when out of memory.
    @inline(__always)
    mutating func copy(_ source: UnsafeRawPointer, count: Int, terminate: Bool) -> UnsafeMutableRawPointer? {
        let need = (count + (terminate ? 1 : 0) + 7) & ~7
        let p: UnsafeMutableRawPointer
        if need <= remaining {
            p = cursor.unsafelyUnwrapped
            cursor = p + need
            remaining -= need
        } else {
            guard let fresh = allocate(need) else { return nil }
            p = fresh
        }
        p.copyMemory(from: source, byteCount: count)
        if terminate { p.storeBytes(of: 0, toByteOffset: count, as: UInt8.self) }
        return p
    }

    /// `count` uninitialised bytes, 8-byte aligned. Nil when out of memory.
    mutating func reserve(_ count: Int) -> UnsafeMutableRawPointer? {
        let need = (count + 7) & ~7
        if need <= remaining {
            let p = cursor.unsafelyUnwrapped
            cursor = p + need
            remaining -= need
            return p
        }
        return allocate(need)
    }

    private mutating func allocate(_ need: Int) -> UnsafeMutableRawPointer? {
        if need > chunkBytes / 4 {
            // A large payload gets a block of its own; the current chunk keeps serving small ones.
            guard let p = malloc(need) else { return nil }
            blocks.append((p, 0))
            return p
        }
        let chunk = chunkBytes
        guard let p = huge ? tgs_map(chunk, 1) : malloc(chunk) else { return nil }
        blocks.append((p, huge ? chunk : 0))
        cursor = p + need
        remaining = chunk - need
        return p
    }

    private static func freeBlock(_ b: (UnsafeMutableRawPointer, Int)) {
        if b.1 > 0 { tgs_unmap(b.0, b.1) } else { free(b.0) }
    }

    func release() { for b in blocks { Self.freeBlock(b) } }
}
