import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// Lexical path normalisation, so that two spellings of one path are one
/// scheduling resource: relative paths are taken from `base` (the current
/// directory at submission), "." segments and repeated slashes are dropped,
/// ".." removes the segment before it (never above the root). Symbolic links
/// are not resolved: the file may not exist yet, and resolving would make
/// the answer depend on the moment of the check.
///
/// Works on bytes into a reusable buffer: submitting a million tasks that
/// declare paths must not build strings per path.
public struct PathNormalizer {
    private(set) var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init() {
        capacity = 256
        buffer = .allocate(capacity: capacity)
    }

    func release() { buffer.deallocate() }

    private mutating func reserve(_ n: Int) {
        guard n > capacity else { return }
        var c = capacity
        while c < n { c *= 2 }
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        fresh.update(from: buffer, count: count)
        buffer.deallocate()
        buffer = fresh
        capacity = c
    }

    /// Normalises `path` (NUL-terminated) against `base` (absolute, `baseCount`
    /// bytes) into `buffer[0 ..< count]`; the result starts with "/".
    mutating func normalize(_ path: UnsafePointer<CChar>, base: UnsafePointer<UInt8>, baseCount: Int) {
        let p = UnsafeRawPointer(path).assumingMemoryBound(to: UInt8.self)
        let n = strlen(path)
        reserve(baseCount + n + 2)
        count = 0
        if p[0] != UInt8(ascii: "/") { append(base, baseCount) }
        append(p, n)
    }

    /// Appends the segments of `s` to the normalised path being built.
    private mutating func append(_ s: UnsafePointer<UInt8>, _ n: Int) {
        var i = 0
        while i < n {
            while i < n && s[i] == UInt8(ascii: "/") { i += 1 }
            let start = i
            while i < n && s[i] != UInt8(ascii: "/") { i += 1 }
            let len = i - start
            if len == 0 || (len == 1 && s[start] == UInt8(ascii: ".")) { continue }
            if len == 2 && s[start] == UInt8(ascii: ".") && s[start + 1] == UInt8(ascii: ".") {
                while count > 0 && buffer[count - 1] != UInt8(ascii: "/") { count -= 1 }
                if count > 0 { count -= 1 }  // the slash before the removed segment
                continue
            }
            buffer[count] = UInt8(ascii: "/")
            (buffer + count + 1).update(from: s + start, count: len)
            count += 1 + len
        }
    }

    /// The normalised form as a String ("/" for the root).
    var string: String {
        count == 0 ? "/" : String(decoding: UnsafeBufferPointer(start: buffer, count: count), as: UTF8.self)
    }

    /// One-off normalisation of Swift strings (tests, cold paths, the CLI's
    /// conflict check: the same model the scheduler claims paths with).
    public static func normalize(_ path: String, base: String) -> String {
        var n = PathNormalizer()
        defer { n.release() }
        var b = Array(base.utf8)
        b.withUnsafeMutableBufferPointer { bb in
            path.withCString { n.normalize($0, base: bb.baseAddress!, baseCount: bb.count) }
        }
        return n.string
    }

    /// Many C paths against one base with one buffer: the C doors' form
    /// (one String made per path, nothing else).
    public struct Batch: ~Copyable {
        private var normalizer = PathNormalizer()
        private let base: [UInt8]

        /// `base` must be absolute.
        public init(base: String) { self.base = Array(base.utf8) }

        public mutating func normalize(_ path: UnsafePointer<CChar>) -> String {
            base.withUnsafeBufferPointer { normalizer.normalize(path, base: $0.baseAddress!, baseCount: $0.count) }
            return normalizer.string
        }

        deinit { normalizer.release() }
    }

    /// The current directory's bytes (absolute), or "/" when it cannot be read.
    public static func currentDirectory() -> [UInt8] {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return Array("/".utf8) }
        return buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    }
}

/// Normalised path -> small dense id, open addressing over path bytes kept in
/// an arena of its own. Ids are never taken back: a path interned by a batch
/// that is then refused keeps its id (and its bytes), which is harmless, while
/// rolling the bytes back would leave keys pointing at freed memory. Guarded
/// by the pool's submission lock.
struct PathTable {
    private struct Key { var bytes: UnsafeRawPointer; var count: Int }
    private var slots: [Int32]   // path id + 1, 0 empty
    private var keys: [Key] = []
    private var hashes: [UInt64] = []
    private var arena = ByteArena()
    var count: Int { keys.count }

    init() { slots = [Int32](repeating: 0, count: 64) }

    func release() { arena.release() }

    /// The path with id `id`, as text. Under the same lock as `intern`.
    func text(_ id: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: keys[id].bytes, count: keys[id].count), as: UTF8.self)
    }

    /// The id of the path in `bytes[0 ..< n]`, interning a copy when new; nil
    /// when out of memory.
    mutating func intern(_ bytes: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        let h = IdIndex.hash(UnsafeRawPointer(bytes).assumingMemoryBound(to: CChar.self), n)
        var mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] != 0 {
            let id = Int(slots[i] - 1)
            if hashes[id] == h && keys[id].count == n && memcmp(keys[id].bytes, bytes, n) == 0 { return Int32(id) }
            i = (i + 1) & mask
        }
        let id = Int32(keys.count)
        guard let copy = arena.copy(bytes, count: n, terminate: false) else { return nil }
        keys.append(Key(bytes: UnsafeRawPointer(copy), count: n))
        hashes.append(h)
        slots[i] = id + 1
        if keys.count * 2 > slots.count {
            slots = [Int32](repeating: 0, count: slots.count * 2)
            mask = slots.count - 1
            for (k, kh) in hashes.enumerated() {
                var j = Int(truncatingIfNeeded: kh) & mask
                while slots[j] != 0 { j = (j + 1) & mask }
                slots[j] = Int32(k + 1)
            }
        }
        return id
    }
}
