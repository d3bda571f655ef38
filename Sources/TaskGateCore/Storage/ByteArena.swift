#if canImport(Glibc)
import Glibc
#endif

/// Bump allocation of task ids, group names and payloads, freed all at once
/// with the pool. Addresses are stable. Appends are serialised by the caller.
/// `mark()`/`rollback(to:)` undo a refused batch.
struct ByteArena: @unchecked Sendable {
    private static var chunkBytes: Int { 1 << 20 }

    private var blocks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer? = nil
    private var remaining = 0

    struct Mark { let blocks: Int; let cursor: UnsafeMutableRawPointer?; let remaining: Int }

    func mark() -> Mark { Mark(blocks: blocks.count, cursor: cursor, remaining: remaining) }

    mutating func rollback(to m: Mark) {
        while blocks.count > m.blocks { free(blocks.removeLast()) }
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
        if need > Self.chunkBytes / 4 {
            // A large payload gets a block of its own; the current chunk keeps serving small ones.
            guard let p = malloc(need) else { return nil }
            blocks.append(p)
            return p
        }
        guard let p = malloc(Self.chunkBytes) else { return nil }
        blocks.append(p)
        cursor = p + need
        remaining = Self.chunkBytes - need
        return p
    }

    func release() { for b in blocks { free(b) } }
}
