import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// Task id -> task index, open addressing with linear probing.
///
/// A slot is one UInt64: 32 bits of the id's hash (the tag) in the high half,
/// index + 1 in the low half (0 is empty). The home slot is `tag & mask`, so
/// growing the table moves slots without touching a single id string. Keys
/// are not stored twice: a probe whose tag matches compares against the id
/// bytes the task record already holds. At most half full. Guarded by the
/// pool's submission lock.
///
/// A refused batch is undone with `removeInserted(since:)`: entries of the batch
/// were inserted last into slots that were empty, and no older key's probe
/// sequence crosses a slot that was empty when it was inserted, so emptying
/// those slots restores the table exactly (no tombstones needed). `reserve`
/// runs before a batch so no rehash happens in the middle of one.
struct IdIndex: @unchecked Sendable {
    private var slots: UnsafeMutablePointer<UInt64>
    private var mask: Int
    private(set) var count = 0
    private var inserted: [Int] = []  // slots filled by the batch in progress

    init() {
        mask = 1023
        slots = Self.allocate(mask + 1)!  // 8 KiB at pool creation
    }

    /// Zeroed slots from an anonymous mapping (huge pages once large).
    private static func allocate(_ n: Int) -> UnsafeMutablePointer<UInt64>? {
        tgs_map(n * 8, 1)?.bindMemory(to: UInt64.self, capacity: n)
    }

    func release() { tgs_unmap(slots, (mask + 1) * 8) }

    @inline(__always) static func hash(_ key: UnsafePointer<CChar>, _ len: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(len) &* 0xFF51_AFD7_ED55_8CCD)
        let raw = UnsafeRawPointer(key)
        var i = 0
        while i + 8 <= len {
            let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < len {
            tail |= UInt64(raw.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            i += 1
        }
        // A full avalanche (murmur3's fmix64), so keys that differ only in
        // their last bytes still land far apart.
        h ^= tail
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    /// Index of the task with this id, or -1.
    func find(_ key: UnsafePointer<CChar>, _ len: Int, tasks: Slab<tgs_task>) -> Int {
        find(key, hash: Self.hash(key, len), tasks: tasks)
    }

    func find(_ key: UnsafePointer<CChar>, hash: UInt64, tasks: Slab<tgs_task>) -> Int {
        let tag = hash >> 32
        var i = Int(tag) & mask
        while true {
            let s = slots[i]
            if s == 0 { return -1 }
            if s >> 32 == tag {
                let idx = Int(s & 0xFFFF_FFFF) - 1
                if strcmp(tasks.pointer(idx).pointee.id, key) == 0 { return idx }
            }
            i = (i + 1) & mask
        }
    }

    /// Starts fetching the slot a key with this hash will probe first.
    @inline(__always) func prefetch(hash: UInt64) {
        tgs_prefetch(slots + (Int(hash >> 32) & mask))
    }

    /// Inserts id -> index unless the id is present; returns the existing index, or -1 when inserted.
    mutating func insert(_ key: UnsafePointer<CChar>, _ len: Int, index: Int, tasks: Slab<tgs_task>) -> Int {
        insert(key, hash: Self.hash(key, len), index: index, tasks: tasks)
    }

    mutating func insert(_ key: UnsafePointer<CChar>, hash: UInt64, index: Int, tasks: Slab<tgs_task>) -> Int {
        let tag = hash >> 32
        var i = Int(tag) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            if s >> 32 == tag {
                let idx = Int(s & 0xFFFF_FFFF) - 1
                if strcmp(tasks.pointer(idx).pointee.id, key) == 0 { return idx }
            }
            i = (i + 1) & mask
        }
        slots[i] = (tag << 32) | UInt64(index + 1)
        inserted.append(i)
        count += 1
        return -1
    }

    /// Ensures `n` more inserts fit without rehashing, and starts a new batch.
    /// False (and the table unchanged) when out of memory.
    mutating func beginBatch(reserving n: Int, tasks: Slab<tgs_task>) -> Bool {
        inserted.removeAll(keepingCapacity: true)
        guard (count + n) * 2 > mask + 1 else { return true }
        var capacity = mask + 1
        while (count + n) * 2 > capacity { capacity *= 2 }
        let old = slots, oldCapacity = mask + 1
        guard let fresh = Self.allocate(capacity) else { return false }
        slots = fresh
        mask = capacity - 1
        for j in 0..<oldCapacity where old[j] != 0 {
            var i = Int(old[j] >> 32) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = old[j]
        }
        tgs_unmap(old, oldCapacity * 8)
        return true
    }

    /// Undoes the inserts of the batch in progress.
    mutating func rollbackBatch() {
        for i in inserted { slots[i] = 0 }
        count -= inserted.count
        inserted.removeAll(keepingCapacity: true)
    }
}
