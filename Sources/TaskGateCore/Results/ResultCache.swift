#if canImport(Glibc)
import Glibc
#endif

// The result cache (seed 002 "Cache Invalidation", seed 004 §8): a task that
// declares a cache reuses its previous output while its TTL has not passed,
// its definition is the same and none of its declared read files changed.
// Format, rules and the designs rejected: Results/README-cache.md.

// MARK: - Public types

/// How an entry checks its read files.
public enum CacheVerify: String, Sendable {
    /// mtime (nanoseconds) and size; a file modified so recently at snapshot
    /// time that a later write could share its mtime ("racy") also has its
    /// content hashed, at snapshot and at every lookup.
    case stat
    /// Size and a 64-bit hash of the content of every regular read file,
    /// taken at snapshot and at every lookup; mtime is ignored, so a touched
    /// but unchanged file still hits. Costs a read of every read file.
    case contentHash = "content_hash"
}

/// A read file as observed at one moment (`ResultCache.snapshot(reads:)`).
public struct CacheFileStamp: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case file, directory
        /// A FIFO, socket or device: compared by stat only, never opened.
        case other
        /// Absent (ENOENT, ENOTDIR, or a dangling symbolic link).
        case missing
        /// stat or open failed otherwise (EACCES...): never matches anything.
        case unreadable
    }

    /// Absolute; symbolic links are followed (the stamp is the target's).
    public var path: String
    public var kind: Kind
    /// st_mtim in nanoseconds since the epoch; 0 for missing/unreadable.
    public var mtimeNs: Int64
    public var size: Int64
    /// 64-bit hash of the content: every regular file under `.contentHash`,
    /// racy ones under `.stat`; nil otherwise.
    public var contentHash: UInt64?

    public init(path: String, kind: Kind, mtimeNs: Int64 = 0, size: Int64 = 0, contentHash: UInt64? = nil) {
        self.path = path
        self.kind = kind
        self.mtimeNs = mtimeNs
        self.size = size
        self.contentHash = contentHash
    }

    public var json: String {
        var s = "{\"path\":" + JSONText.quote(path) + ",\"kind\":\"\(kind.rawValue)\""
        if kind != .missing && kind != .unreadable { s += ",\"mtime_ns\":\"\(mtimeNs)\",\"size\":\(size)" }
        if let h = contentHash { s += ",\"hash\":\"" + CacheHash.hex(h) + "\"" }
        return s + "}"
    }
}

/// What an entry's first line records (everything but the output bytes).
public struct CacheEntryInfo: Sendable, Equatable {
    public var taskId: String
    /// 32 hex digits: the 128-bit fingerprint of the definition and verify mode.
    public var definitionHash: String
    /// Seconds since the epoch, by the cache's clock when stored.
    public var createdAt: Double
    /// The TTL given to store (infinity: none). Lookups judge by the TTL they
    /// are given; purge and list by this one.
    public var ttl: Double
    public var verify: CacheVerify
    /// Sorted by path, one per path.
    public var reads: [CacheFileStamp]
    public var outputLength: Int
    public var outputHash: UInt64

    /// Seconds since creation at `now` (negative when created "in the future").
    public func age(at now: Double) -> Double { now - createdAt }

    public var json: String {
        var s = "{\"task_id\":" + JSONText.quote(taskId) + ",\"definition\":\"" + definitionHash + "\""
        s += ",\"created_at\":" + JSONText.number(createdAt) + ",\"created\":" + JSONText.quote(JSONText.iso8601(createdAt))
        s += ",\"ttl\":" + (ttl.isInfinite ? "null" : JSONText.number(ttl)) + ",\"verify\":\"\(verify.rawValue)\""
        s += ",\"output_length\":\(outputLength),\"reads\":[" + reads.map(\.json).joined(separator: ",") + "]}"
        return s
    }
}

/// A cached result: its metadata and the output bytes exactly as stored.
public struct CacheEntry: Sendable, Equatable {
    public var info: CacheEntryInfo
    public var output: [UInt8]
}

/// Why a lookup did not hit. `code` is short and stable (for reports and
/// tests); `description` is for people.
public enum CacheMissReason: Sendable, Equatable, CustomStringConvertible {
    /// No entry for this task id.
    case absent
    /// Older than the TTL (age > ttl), or created after now (clock moved back).
    case expired(ageSeconds: Double, ttl: Double)
    /// The entry was made for another definition (or another verify mode).
    case definitionChanged
    /// The declared read list is not the one the entry recorded.
    case readsChanged(added: [String], removed: [String])
    /// A read file differs from its stamp. `what`: "mtime", "size",
    /// "content", "missing" (was there, is gone), "appeared" (was missing,
    /// is there), "type" (file became directory...), "unreadable".
    case readChanged(path: String, what: String)
    /// The entry file is damaged: truncated, garbage, unknown version,
    /// over a size cap, checksum mismatch.
    case corrupt(String)
    /// The entry file could not be opened or trusted (permissions, a
    /// symbolic link in its place, another user's file in a shared directory).
    case unreadable(String)

    public var code: String {
        switch self {
        case .absent: return "absent"
        case .expired: return "expired"
        case .definitionChanged: return "definition_changed"
        case .readsChanged: return "reads_list_changed"
        case .readChanged: return "read_changed"
        case .corrupt: return "corrupt"
        case .unreadable: return "unreadable"
        }
    }

    public var description: String {
        switch self {
        case .absent: return "no cached result"
        case .expired(let age, let ttl):
            if age < 0 { return "cached result was created \(Self.seconds(-age)) s in the future (clock moved back?); not trusted" }
            return "cached result expired: age \(Self.seconds(age)) s > ttl \(Self.seconds(ttl)) s"
        case .definitionChanged: return "task definition changed"
        case .readsChanged(let added, let removed):
            var parts: [String] = []
            if !added.isEmpty { parts.append("added " + added.joined(separator: ", ")) }
            if !removed.isEmpty { parts.append("removed " + removed.joined(separator: ", ")) }
            return "declared reads changed (" + parts.joined(separator: "; ") + ")"
        case .readChanged(let path, let what): return "read file \(path) changed (\(what))"
        case .corrupt(let d): return "cache entry corrupt: \(d)"
        case .unreadable(let d): return "cache entry unreadable: \(d)"
        }
    }

    static func seconds(_ d: Double) -> String { JSONText.number((d * 1000).rounded() / 1000) }

    public var json: String {
        var s = "{\"code\":\"\(code)\",\"detail\":" + JSONText.quote(description)
        switch self {
        case .expired(let age, let ttl): s += ",\"age\":" + JSONText.number(age) + ",\"ttl\":" + (ttl.isInfinite ? "null" : JSONText.number(ttl))
        case .readChanged(let path, let what): s += ",\"path\":" + JSONText.quote(path) + ",\"what\":\"\(what)\""
        default: break
        }
        return s + "}"
    }
}

/// A lookup's answer.
public enum CacheLookup: Sendable, Equatable, CustomStringConvertible {
    case hit(CacheEntry)
    case miss(CacheMissReason)

    public var isHit: Bool { if case .hit = self { return true }; return false }
    public var entry: CacheEntry? { if case .hit(let e) = self { return e }; return nil }
    public var missReason: CacheMissReason? { if case .miss(let r) = self { return r }; return nil }
    /// "hit", or the miss reason's code.
    public var code: String { if case .miss(let r) = self { return r.code }; return "hit" }

    public var description: String {
        switch self {
        case .hit(let e): return "cache hit: result of " + JSONText.iso8601(e.info.createdAt) + " (\(e.info.outputLength) bytes)"
        case .miss(let r): return "cache miss: " + r.description
        }
    }

    /// `{"cache":"hit","created_at":...}` or `{"cache":"miss","code":...,"detail":...}`.
    public var json: String {
        switch self {
        case .hit(let e):
            return "{\"cache\":\"hit\",\"created_at\":" + JSONText.number(e.info.createdAt) + ",\"output_length\":\(e.info.outputLength)}"
        case .miss(let r): return "{\"cache\":\"miss\"," + r.json.dropFirst()
        }
    }
}

/// One entry file as `list()` sees it.
public struct CacheListing: Sendable {
    public var file: String
    /// nil when the entry cannot be read; `problem` says why.
    public var info: CacheEntryInfo?
    public var problem: CacheMissReason?

    public var json: String {
        var s = "{\"file\":" + JSONText.quote(file)
        if let i = info { s += ",\"entry\":" + i.json }
        if let p = problem { s += ",\"problem\":" + p.json }
        return s + "}"
    }
}

public struct ResultCacheOptions: Sendable {
    public var verify: CacheVerify
    /// Outputs over this are refused by store and read back as corrupt.
    public var maxOutputBytes: Int
    /// At most this many read files per entry.
    public var maxReads: Int
    /// Under `.stat`, a read file whose mtime is less than this many seconds
    /// before the snapshot (by the real clock; or after it) is racy and has
    /// its content hashed too. 0 turns the guard off. The default covers
    /// filesystems with 1-2 s timestamps and the kernel's coarse clock tick.
    public var racyWindowSeconds: Double
    /// fsync each entry before renaming it into place.
    public var fsync: Bool
    /// Make the directory (and its parents) when missing.
    public var create: Bool

    public init(verify: CacheVerify = .stat, maxOutputBytes: Int = 64 << 20, maxReads: Int = 100_000,
                racyWindowSeconds: Double = 2, fsync: Bool = true, create: Bool = true) {
        self.verify = verify
        self.maxOutputBytes = max(0, maxOutputBytes)
        self.maxReads = max(0, maxReads)
        self.racyWindowSeconds = racyWindowSeconds.isNaN ? 0 : min(max(0, racyWindowSeconds), 1e9)
        self.fsync = fsync
        self.create = create
    }
}

// MARK: - The cache

/// A directory of cached task results, one file per task id (see
/// README-cache.md for the format and the rules).
///
/// **Threads**: one instance may be used from any number of threads at once.
/// Its only mutable state is the temp-name counter, under a lock; every file
/// operation is an `openat`/`renameat`/`unlinkat` relative to the directory
/// descriptor held open, and an entry is replaced only by renaming a
/// complete file over it, so a reader holds either the old inode or the new.
///
/// **Processes**: any number of processes (and instances) may share the
/// directory; the same atomic rename keeps every reader from a half-written
/// file. Two stores of one task id race harmlessly: the last rename wins and
/// both entries were complete. A crash leaves at worst a `.tmp.*` file, which
/// `purge` removes once it is older than its grace period.
public final class ResultCache: @unchecked Sendable {
    public let path: String
    public let options: ResultCacheOptions
    /// The wall clock that dates entries and judges TTLs (seconds since the epoch).
    public let now: @Sendable () -> Double
    let fd: Int32
    /// Others may write the directory: entries owned by another user are ignored.
    let othersWritable: Bool
    private let uid = geteuid()
    private let counterLock = Lock()
    private var counter: UInt64 = 0

    /// Header lines over this are refused (store) or corrupt (lookup).
    static let maxHeaderBytes = 16 << 20
    static let format = "taskgate-cache"
    static let version = 1
    static let entrySuffix = ".entry"
    static let tempPrefix = ".tmp."

    /// CLOCK_REALTIME in seconds.
    public static let wallClock: @Sendable () -> Double = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func realNowNs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// `.taskgate/cache` for `.taskgate/locks`: the directory beside a lock directory.
    public static func defaultPath(besideLockDirectory lockDir: String) -> String {
        var p = Substring(lockDir)
        while p.count > 1, p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "cache" }
        return String(p[...slash]) + "cache"
    }

    /// Opens (and, with `options.create`, makes, 0755, parents included) the
    /// cache directory. A symbolic link in the last component is refused
    /// (`.unsafePath`), as is anything that is not a directory (`.invalid`).
    public init(_ path: String, options: ResultCacheOptions = ResultCacheOptions(),
                now: @escaping @Sendable () -> Double = ResultCache.wallClock) throws(TaskGateError) {
        guard !path.isEmpty else { throw .invalid("result cache: the directory path is empty") }
        guard !path.utf8.contains(0) else { throw .invalid("result cache: the directory path contains a NUL byte") }
        let (fd, othersWritable) = try StateDirectory.open(path, what: "result cache directory", create: options.create, refuseLink: true)
        self.path = path
        self.options = options
        self.now = now
        self.fd = fd
        self.othersWritable = othersWritable
    }

    deinit { close(fd) }

    // MARK: Names and fingerprints

    /// The entry file for `taskId`: `k_ID.entry` when the id is at most 100
    /// bytes of `[A-Za-z0-9._-]` not starting with '.'; otherwise
    /// `h_TAIL_HASH.entry` (the id's last 40 bytes made safe, a 64-bit hash of
    /// it all). The entry records the full id, so two ids sharing a name
    /// never read each other's result (the other's entry reads as absent).
    public static func fileName(forTaskId taskId: String) -> String {
        if let plain = StateDirectory.plainName(taskId, suffix: entrySuffix) { return plain }
        return "h_" + StateDirectory.safeTail(taskId, 40) + "_" + CacheHash.hex(CacheHash.of(taskId, seed: 0x7461_736b_6964)) + entrySuffix
    }


    /// The 128-bit fingerprint (32 hex digits) of a definition under a verify
    /// mode. The caller's definition string should be canonical: the same
    /// task always spells it the same way (processor, args, reads, writes...).
    public static func definitionHash(_ definition: String, verify: CacheVerify) -> String {
        var h = CacheHasher(seed: 0x6465_6669_6e69_7469)
        h.update("taskgate-cache-definition\u{0}" + verify.rawValue + "\u{0}")
        h.update(definition)
        let (a, b) = h.finish128()
        return CacheHash.hex(a) + CacheHash.hex(b)
    }

    // MARK: Stamps

    /// Stamps of `reads` (absolute paths; sorted, duplicates dropped). Take
    /// them *before* the task runs and pass them to `store(stamps:)`: a file
    /// the task reads and someone changes while it runs then differs from its
    /// stamp, and the next lookup misses instead of reusing a stale result.
    public func snapshot(reads: [String]) throws(TaskGateError) -> [CacheFileStamp] {
        let paths = try normalizedReads(reads)
        return paths.map { stamp($0, hash: options.verify == .contentHash ? .always : .ifRacy) }
    }

    enum HashWhen { case never, ifRacy, always }

    func stamp(_ path: String, hash: HashWhen) -> CacheFileStamp {
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            return CacheFileStamp(path: path, kind: e == ENOENT || e == ENOTDIR ? .missing : .unreadable)
        }
        var s = Self.stampFields(path, st)
        guard s.kind == .file else { return s }
        let wantHash: Bool
        switch hash {
        case .never: wantHash = false
        case .always: wantHash = true
        case .ifRacy:
            let window = Int64(options.racyWindowSeconds * 1e9)
            wantHash = window > 0 && Self.realNowNs() - s.mtimeNs < window
        }
        guard wantHash else { return s }
        // Hash through one descriptor and stamp that descriptor's inode, so the
        // stamp and the hash describe the same file.
        let f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard f >= 0 else { return CacheFileStamp(path: path, kind: errno == ENOENT ? .missing : .unreadable) }
        defer { close(f) }
        if fstat(f, &st) != 0 { return CacheFileStamp(path: path, kind: .unreadable) }
        s = Self.stampFields(path, st)
        guard s.kind == .file else { return s }
        guard let h = CacheHash.ofFile(f) else { return CacheFileStamp(path: path, kind: .unreadable) }
        s.contentHash = h
        return s
    }

    static func stampFields(_ path: String, _ st: stat) -> CacheFileStamp {
        let fmt = st.st_mode & S_IFMT
        let kind: CacheFileStamp.Kind = fmt == S_IFREG ? .file : fmt == S_IFDIR ? .directory : .other
        let mtime = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
        return CacheFileStamp(path: path, kind: kind, mtimeNs: mtime, size: Int64(st.st_size))
    }

    func normalizedReads(_ reads: [String]) throws(TaskGateError) -> [String] {
        for r in reads {
            guard r.hasPrefix("/") else { throw .invalid("result cache: read path '\(r)' is not absolute") }
            guard !r.utf8.contains(0) else { throw .invalid("result cache: a read path contains a NUL byte") }
        }
        var sorted = reads.sorted()
        var w = 0
        for i in 0..<sorted.count where i == 0 || sorted[i] != sorted[i - 1] {
            sorted[w] = sorted[i]
            w += 1
        }
        sorted.removeLast(sorted.count - w)
        guard sorted.count <= options.maxReads else {
            throw .outOfRange("result cache: \(sorted.count) read files, over the limit of \(options.maxReads)")
        }
        return sorted
    }

    /// Why the file now differs from `stored`, or nil if it does not. Stat
    /// first; a content hash only when the stamp has one (or the mode wants
    /// one) and stat found nothing.
    func difference(stored: CacheFileStamp, verify: CacheVerify) -> String? {
        let current = stamp(stored.path, hash: .never)
        switch (stored.kind, current.kind) {
        case (.missing, .missing): return nil
        case (.missing, _): return "appeared"
        case (.unreadable, _), (_, .unreadable): return "unreadable"
        case (_, .missing): return "missing"
        default: break
        }
        if stored.kind != current.kind { return "type" }
        if stored.size != current.size { return "size" }
        let byContent = verify == .contentHash && stored.kind == .file
        if !byContent, stored.mtimeNs != current.mtimeNs { return "mtime" }
        guard stored.kind == .file, byContent || stored.contentHash != nil else { return nil }
        // Hashed through one descriptor, whose stat is checked again: the
        // file may have been replaced since the stat above.
        let hashed = stamp(stored.path, hash: .always)
        switch hashed.kind {
        case .file: break
        case .missing: return "missing"
        case .unreadable: return "unreadable"
        case .directory, .other: return "type"
        }
        if hashed.size != stored.size { return "size" }
        if !byContent, hashed.mtimeNs != stored.mtimeNs { return "mtime" }
        guard let a = stored.contentHash, let b = hashed.contentHash, a == b else { return "content" }
        return nil
    }

    // MARK: Lookup

    /// The cached result of `taskId`, if its entry was stored for the same
    /// `definition` (and verify mode) and the same read list, is at most
    /// `ttl` seconds old (age == ttl still hits; `.infinity`: no limit), and
    /// no read file differs from its stamp. Otherwise the first reason found,
    /// in this order: absent, corrupt/unreadable, definition, read list, age,
    /// each read file (sorted by path), output checksum.
    ///
    /// Throws only for bad arguments (a relative read path, a negative or NaN
    /// TTL, an empty id); anything wrong on disk is a miss that says why.
    public func lookup(taskId: String, definition: String, reads: [String], ttl: Double) throws(TaskGateError) -> CacheLookup {
        try checkTaskId(taskId)
        try checkTTL(ttl)
        let paths = try normalizedReads(reads)
        let read = readEntry(Self.fileName(forTaskId: taskId))
        let info: CacheEntryInfo
        let file: Int32
        switch read {
        case .absent: return .miss(.absent)
        case .problem(let r): return .miss(r)
        case .ok(let i, let f, _):
            info = i
            file = f
        }
        defer { close(file) }
        if info.taskId != taskId { return .miss(.absent) }
        if info.definitionHash != Self.definitionHash(definition, verify: options.verify) { return .miss(.definitionChanged) }
        let storedPaths = info.reads.map(\.path)
        if storedPaths != paths {
            let s = Set(storedPaths), c = Set(paths)
            return .miss(.readsChanged(added: paths.filter { !s.contains($0) }, removed: storedPaths.filter { !c.contains($0) }))
        }
        let age = now() - info.createdAt
        if !(age >= 0 && age <= ttl) { return .miss(.expired(ageSeconds: age, ttl: ttl)) }
        for s in info.reads {
            if let what = difference(stored: s, verify: info.verify) { return .miss(.readChanged(path: s.path, what: what)) }
        }
        switch readOutput(file, info: info) {
        case .bytes(let out): return .hit(CacheEntry(info: info, output: out))
        case .problem(let r): return .miss(r)
        }
    }

    func checkTaskId(_ id: String) throws(TaskGateError) {
        guard !id.isEmpty else { throw .invalid("result cache: the task id is empty") }
    }

    func checkTTL(_ ttl: Double) throws(TaskGateError) {
        guard !ttl.isNaN, ttl >= 0 else { throw .invalid("result cache: ttl must be a number >= 0 (infinity: none), not \(ttl)") }
    }

    // MARK: Store

    /// Stamps the reads now and stores: for callers that cannot stamp before
    /// running. A read changed while the task ran goes unnoticed; prefer
    /// `snapshot` before the run and `store(stamps:)` after.
    @discardableResult
    public func store(taskId: String, definition: String, reads: [String], output: [UInt8], ttl: Double) throws(TaskGateError) -> CacheEntryInfo {
        try store(taskId: taskId, definition: definition, stamps: snapshot(reads: reads), output: output, ttl: ttl)
    }

    /// Records `output` (any bytes, up to `options.maxOutputBytes`) as the
    /// result of `taskId` under `definition`, with the read stamps taken
    /// before it ran, replacing any entry for that id. The entry is written to
    /// a temp file in the directory (O_EXCL), fsynced, and renamed over the
    /// old one, so no reader ever sees part of it.
    @discardableResult
    public func store(taskId: String, definition: String, stamps: [CacheFileStamp], output: [UInt8], ttl: Double) throws(TaskGateError) -> CacheEntryInfo {
        try checkTaskId(taskId)
        try checkTTL(ttl)
        guard output.count <= options.maxOutputBytes else {
            throw .outOfRange("result cache: task '\(taskId)': output of \(output.count) bytes is over the cap of \(options.maxOutputBytes)")
        }
        let paths = try normalizedReads(stamps.map(\.path))
        var byPath: [String: CacheFileStamp] = [:]
        for s in stamps where byPath[s.path] == nil { byPath[s.path] = s }
        let reads = paths.map { byPath[$0]! }
        if options.verify == .contentHash, let s = reads.first(where: { $0.kind == .file && $0.contentHash == nil }) {
            throw .invalid("result cache: the stamp of \(s.path) has no content hash (take stamps with this cache's snapshot)")
        }
        let createdAt = now()
        guard createdAt.isFinite else { throw .invalid("result cache: the clock says \(createdAt)") }
        let info = CacheEntryInfo(taskId: taskId, definitionHash: Self.definitionHash(definition, verify: options.verify),
                                  createdAt: createdAt, ttl: ttl, verify: options.verify, reads: reads,
                                  outputLength: output.count, outputHash: output.withUnsafeBytes { CacheHash.of($0, seed: 0) })
        let header = Self.headerLine(info)
        guard header.utf8.count <= Self.maxHeaderBytes else {
            throw .outOfRange("result cache: task '\(taskId)': entry metadata of \(header.utf8.count) bytes is over the cap of \(Self.maxHeaderBytes)")
        }
        try writeAtomically(Self.fileName(forTaskId: taskId), header: header, output: output, what: "task '\(taskId)'")
        return info
    }

    private func nextTempName() -> String {
        let n = counterLock.withLock { () -> UInt64 in
            counter &+= 1
            return counter
        }
        let r = CacheHash.mix(UInt64(bitPattern: Self.realNowNs()) ^ (n &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(pthread_self()))
        return Self.tempPrefix + "\(getpid()).\(n)." + String(CacheHash.hex(r).prefix(8))
    }

    private func writeAtomically(_ name: String, header: String, output: [UInt8], what: String) throws(TaskGateError) {
        var temp = ""
        var t: Int32 = -1
        for _ in 0..<16 {
            temp = nextTempName()
            t = openat(fd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if t >= 0 || errno != EEXIST { break }
        }
        guard t >= 0 else { throw .io("result cache '\(path)': \(what): cannot create a temp file: \(String(cString: strerror(errno)))") }
        func fail(_ op: String, _ e: Int32) -> TaskGateError {
            close(t)
            unlinkat(fd, temp, 0)
            return .io("result cache '\(path)': \(what): \(op) \(temp): \(String(cString: strerror(e)))")
        }
        var line = header
        line += "\n"
        var e = line.withUTF8 { Self.writeAll(t, UnsafeRawBufferPointer($0)) }
        if e == 0 { e = output.withUnsafeBytes { Self.writeAll(t, $0) } }
        if e != 0 { throw fail("write", e) }
        if options.fsync, Glibc.fsync(t) != 0 { throw fail("fsync", errno) }
        if close(t) != 0 {
            let e = errno
            unlinkat(fd, temp, 0)
            throw .io("result cache '\(path)': \(what): close \(temp): \(String(cString: strerror(e)))")
        }
        if renameat(fd, temp, fd, name) != 0 {
            let e = errno
            unlinkat(fd, temp, 0)
            throw .io("result cache '\(path)': \(what): rename \(temp) to \(name): \(String(cString: strerror(e)))")
        }
    }

    /// 0, or the errno of the failed write.
    static func writeAll(_ f: Int32, _ b: UnsafeRawBufferPointer) -> Int32 {
        var done = 0
        while done < b.count {
            let n = write(f, b.baseAddress! + done, b.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            done += n
        }
        return 0
    }

    // MARK: Remove, purge, list

    /// Removes `taskId`'s entry; false when there was none.
    @discardableResult
    public func remove(taskId: String) throws(TaskGateError) -> Bool {
        try checkTaskId(taskId)
        let name = Self.fileName(forTaskId: taskId)
        if unlinkat(fd, name, 0) == 0 { return true }
        let e = errno
        if e == ENOENT { return false }
        throw .io("result cache '\(path)': remove \(name): \(String(cString: strerror(e)))")
    }

    /// Removes entries expired by their stored TTL (age > ttl), entries older
    /// than `maxAge` seconds when given, corrupt entries, and temp files left
    /// by interrupted stores whose mtime is at least `tempGrace` seconds old
    /// by the real clock (temp files carry no metadata; a younger one may
    /// belong to a store in progress in another process). Returns how many
    /// files it removed. An entry replaced by a fresh store while purge
    /// judged it is left alone (its inode is checked just before unlinking).
    @discardableResult
    public func purge(olderThan maxAge: Double? = nil, tempGrace: Double = 600) -> Int {
        let t = now()
        let realNs = Self.realNowNs()
        var removed = 0
        for name in directoryNames() {
            if name.hasPrefix(Self.tempPrefix) {
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                let m = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
                if Double(realNs - m) >= tempGrace * 1e9, unlinkat(fd, name, 0) == 0 { removed += 1 }
                continue
            }
            guard Self.isEntryName(name) else { continue }
            var gone = false
            var inode: (UInt64, UInt64)?
            switch readEntry(name) {
            case .absent: continue
            case .problem(let r):
                // Unreadable for a reason that is not the file's (permissions,
                // another user's file): leave it.
                guard case .corrupt = r else { continue }
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                inode = (UInt64(st.st_dev), UInt64(st.st_ino))
                gone = true
            case .ok(let info, let f, let ino):
                close(f)
                inode = ino
                let age = t - info.createdAt
                gone = age > info.ttl || (maxAge.map { age > $0 } ?? false)
            }
            guard gone, let (dev, ino) = inode else { continue }
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0, UInt64(st.st_dev) == dev, UInt64(st.st_ino) == ino else { continue }
            if unlinkat(fd, name, 0) == 0 { removed += 1 }
        }
        return removed
    }

    /// Every entry file, sorted by name, with its metadata or its problem.
    public func list() -> [CacheListing] {
        directoryNames().filter(Self.isEntryName).sorted().compactMap { name in
            switch readEntry(name) {
            case .absent: return nil
            case .problem(let r): return CacheListing(file: name, info: nil, problem: r)
            case .ok(let info, let f, _):
                close(f)
                return CacheListing(file: name, info: info, problem: nil)
            }
        }
    }

    static func isEntryName(_ name: String) -> Bool {
        (name.hasPrefix("k_") || name.hasPrefix("h_")) && name.hasSuffix(entrySuffix)
    }

    /// Names in the directory (each listing with its own offset).
    func directoryNames() -> [String] { StateDirectory.names(in: fd) }

    // MARK: Reading entries

    enum EntryRead {
        case absent
        case problem(CacheMissReason)
        /// The header, the open file (the caller closes it) and its (dev, inode).
        case ok(CacheEntryInfo, Int32, (UInt64, UInt64))
    }

    /// Opens and checks an entry's header: never crashes on any bytes.
    func readEntry(_ name: String) -> EntryRead {
        let f = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if f < 0 {
            let e = errno
            if e == ENOENT { return .absent }
            if e == ELOOP { return .problem(.unreadable("\(name) is a symbolic link")) }
            return .problem(.unreadable("open \(name): \(String(cString: strerror(e)))"))
        }
        var st = stat()
        guard fstat(f, &st) == 0 else {
            let e = errno
            close(f)
            return .problem(.unreadable("fstat \(name): \(String(cString: strerror(e)))"))
        }
        func problem(_ r: CacheMissReason) -> EntryRead {
            close(f)
            return .problem(r)
        }
        guard st.st_mode & S_IFMT == S_IFREG else { return problem(.unreadable("\(name) is not a regular file")) }
        if othersWritable, st.st_uid != uid {
            return problem(.unreadable("\(name) is owned by uid \(st.st_uid) in a directory others may write; ignored"))
        }
        let size = Int(st.st_size)
        if size == 0 { return problem(.corrupt("\(name) is empty")) }
        let cap = options.maxOutputBytes + Self.maxHeaderBytes + 1
        if size > cap { return problem(.corrupt("\(name) is \(size) bytes, over the cap of \(cap)")) }
        // The header: up to the first newline, read in chunks.
        var buf: [UInt8] = []
        var newline: Int? = nil
        let limit = min(size, Self.maxHeaderBytes + 1)
        while newline == nil, buf.count < limit {
            let want = min(64 << 10, limit - buf.count)
            let start = buf.count
            buf.append(contentsOf: repeatElement(0, count: want))
            let n = buf.withUnsafeMutableBytes { pread(f, $0.baseAddress! + start, want, off_t(start)) }
            if n < 0 && errno == EINTR { buf.removeLast(want); continue }
            if n <= 0 {
                buf.removeLast(want)
                if n < 0 { return problem(.unreadable("read \(name): \(String(cString: strerror(errno)))")) }
                break
            }
            buf.removeLast(want - n)
            newline = buf[start...].firstIndex(of: 0x0a)
        }
        guard let nl = newline else {
            return problem(.corrupt(buf.count > Self.maxHeaderBytes ? "\(name): no header line within \(Self.maxHeaderBytes) bytes" : "\(name): no header line (truncated?)"))
        }
        let parsed = buf.withUnsafeBufferPointer { Self.parseHeader(UnsafeBufferPointer(rebasing: $0[0..<nl]), maxOutput: options.maxOutputBytes, maxReads: options.maxReads) }
        switch parsed {
        case .failure(let e): return problem(.corrupt("\(name): \(e.detail)"))
        case .success(let info):
            let expected = nl + 1 + info.outputLength
            if size != expected {
                return problem(.corrupt(size < expected
                    ? "\(name): truncated: \(size - nl - 1) of \(info.outputLength) output bytes"
                    : "\(name): \(size - expected) bytes after the output"))
            }
            return .ok(info, f, (UInt64(st.st_dev), UInt64(st.st_ino)))
        }
    }

    enum OutputRead { case bytes([UInt8]), problem(CacheMissReason) }

    /// The output bytes of an entry whose header `readEntry` accepted.
    func readOutput(_ f: Int32, info: CacheEntryInfo) -> OutputRead {
        var st = stat()
        guard fstat(f, &st) == 0 else { return .problem(.unreadable("fstat: \(String(cString: strerror(errno)))")) }
        let start = Int(st.st_size) - info.outputLength
        var out = [UInt8](repeating: 0, count: info.outputLength)
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { pread(f, $0.baseAddress! + done, $0.count - done, off_t(start + done)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .problem(.unreadable("read: \(String(cString: strerror(errno)))")) }
            if n == 0 { return .problem(.corrupt("output truncated at \(done) of \(out.count) bytes")) }
            done += n
        }
        let h = out.withUnsafeBytes { CacheHash.of($0, seed: 0) }
        guard h == info.outputHash else { return .problem(.corrupt("output checksum mismatch")) }
        return .bytes(out)
    }

    // MARK: The header line

    /// `{...,"check":"HASH"}`: the body, then a 64-bit hash of everything
    /// before `,"check"`. Internal for tests that forge entries.
    static func seal(_ body: String) -> String {
        body + ",\"check\":\"" + CacheHash.hex(CacheHash.of(body, seed: 0x6368_6563_6b)) + "\"}"
    }

    static func headerLine(_ info: CacheEntryInfo) -> String {
        var h = "{\"format\":\"\(format)\",\"version\":\(version)"
        h += ",\"task_id\":" + JSONText.quote(info.taskId)
        h += ",\"definition\":\"" + info.definitionHash + "\""
        h += ",\"created_at\":" + JSONText.number(info.createdAt)
        h += ",\"ttl\":" + (info.ttl.isInfinite ? "null" : JSONText.number(info.ttl))
        h += ",\"verify\":\"\(info.verify.rawValue)\""
        h += ",\"reads\":\(info.reads.count)"
        for (i, s) in info.reads.enumerated() {
            h += ",\"r\(i)\":" + JSONText.quote(s.path) + ",\"r\(i).kind\":\"\(s.kind.rawValue)\""
            h += ",\"r\(i).mtime_ns\":\"\(s.mtimeNs)\",\"r\(i).size\":\(s.size)"
            if let c = s.contentHash { h += ",\"r\(i).hash\":\"" + CacheHash.hex(c) + "\"" }
        }
        h += ",\"output_length\":\(info.outputLength),\"output_encoding\":\"raw\""
        h += ",\"output_hash\":\"" + CacheHash.hex(info.outputHash) + "\""
        return seal(h)
    }

    static func parseHeader(_ b: UnsafeBufferPointer<UInt8>, maxOutput: Int, maxReads: Int) -> Result<CacheEntryInfo, HeaderError> {
        func bad(_ s: String) -> Result<CacheEntryInfo, HeaderError> { .failure(HeaderError(detail: s)) }
        // The seal: `,"check":"` + 16 hex + `"}` ends the line.
        let tail = 28
        guard b.count > tail + 1, b[0] == 0x7b else { return bad("the header is not an entry header") }
        let sealStart = b.count - tail
        guard Array(b[sealStart..<(sealStart + 10)]) == Array(",\"check\":\"".utf8), b[b.count - 2] == 0x22, b[b.count - 1] == 0x7d,
              let check = CacheHash.parseHex(Array(b[(sealStart + 10)..<(sealStart + 26)]))
        else { return bad("the header has no checksum") }
        guard CacheHash.of(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: b[0..<sealStart])), seed: 0x6368_6563_6b) == check else {
            return bad("header checksum mismatch")
        }
        guard let o = JSONText.flatObject(b) else { return bad("the header is not a flat JSON object") }
        func string(_ k: String) -> String? { if case .string(let s)? = o[k] { return s }; return nil }
        func number(_ k: String) -> Double? { if case .number(let d)? = o[k] { return d }; return nil }
        func count(_ k: String, max: Int) -> Int? {
            guard let d = number(k), d >= 0, d == d.rounded(), d <= Double(max) else { return nil }
            return Int(d)
        }
        guard string("format") == format else { return bad("not a taskgate cache entry") }
        guard let v = number("version") else { return bad("no format version") }
        guard v == Double(version) else { return bad("unknown format version \(JSONText.number(v))") }
        guard let taskId = string("task_id"), !taskId.isEmpty else { return bad("no task_id") }
        guard let def = string("definition"), def.utf8.count == 32, CacheHash.parseHex(Array(def.utf8.prefix(16))) != nil,
              CacheHash.parseHex(Array(def.utf8.suffix(16))) != nil else { return bad("no definition hash") }
        guard let created = number("created_at"), created.isFinite else { return bad("no created_at") }
        let ttl: Double
        switch o["ttl"] {
        case .null?: ttl = .infinity
        case .number(let d)? where d >= 0 && d.isFinite: ttl = d
        default: return bad("no ttl")
        }
        guard let vs = string("verify"), let verify = CacheVerify(rawValue: vs) else { return bad("unknown verify mode") }
        guard let n = count("reads", max: maxReads) else { return bad("bad read count") }
        var reads: [CacheFileStamp] = []
        reads.reserveCapacity(n)
        for i in 0..<n {
            guard let p = string("r\(i)"), p.hasPrefix("/") else { return bad("read \(i): no absolute path") }
            guard let ks = string("r\(i).kind"), let kind = CacheFileStamp.Kind(rawValue: ks) else { return bad("read \(i): bad kind") }
            guard let ms = string("r\(i).mtime_ns"), let m = Int64(ms) else { return bad("read \(i): bad mtime_ns") }
            guard let size = count("r\(i).size", max: 1 << 53) else { return bad("read \(i): bad size") }
            var hash: UInt64? = nil
            if let hs = string("r\(i).hash") {
                guard let h = CacheHash.parseHex(Array(hs.utf8)) else { return bad("read \(i): bad hash") }
                hash = h
            }
            if i > 0, !(reads[i - 1].path < p) { return bad("reads not sorted") }
            reads.append(CacheFileStamp(path: p, kind: kind, mtimeNs: m, size: Int64(size), contentHash: hash))
        }
        guard let len = number("output_length"), len >= 0, len == len.rounded(), len.isFinite else { return bad("bad output_length") }
        guard len <= Double(maxOutput) else { return bad("output_length \(JSONText.number(len)) is over the cap of \(maxOutput)") }
        guard string("output_encoding") == "raw" else { return bad("unknown output_encoding") }
        guard let hs = string("output_hash"), let oh = CacheHash.parseHex(Array(hs.utf8)) else { return bad("no output_hash") }
        return .success(CacheEntryInfo(taskId: taskId, definitionHash: def, createdAt: created, ttl: ttl, verify: verify,
                                       reads: reads, outputLength: Int(len), outputHash: oh))
    }

    struct HeaderError: Error { var detail: String }
}

// MARK: - Hashing

/// A streaming non-cryptographic hash with two 64-bit lanes (xxHash64-style
/// rounds over 8-byte words, murmur3's finaliser): 128 bits for definition
/// fingerprints, 64 for contents and checksums. Good against accidents, not
/// against an adversary who can write the cache directory anyway.
struct CacheHasher {
    private var a: UInt64
    private var b: UInt64
    private var count: UInt64 = 0
    private var pending: UInt64 = 0
    private var pendingBytes = 0

    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    init(seed: UInt64) {
        a = seed &+ Self.p1 &+ Self.p2
        b = CacheHash.mix(seed ^ Self.p5)
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    @inline(__always) private mutating func word(_ w: UInt64) {
        a = Self.rotl(a &+ w &* Self.p2, 31) &* Self.p1
        b = (Self.rotl(b ^ (w &* Self.p3), 27) &* Self.p4) &+ Self.p5
    }

    mutating func update(_ p: UnsafeRawBufferPointer) {
        let n = p.count
        var i = 0
        count &+= UInt64(n)
        if pendingBytes > 0 {
            while pendingBytes < 8, i < n {
                pending |= UInt64(p[i]) << UInt64(8 * pendingBytes)
                pendingBytes += 1
                i += 1
            }
            guard pendingBytes == 8 else { return }
            word(pending)
            pending = 0
            pendingBytes = 0
        }
        while i + 8 <= n {
            word(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            i += 8
        }
        while i < n {
            pending |= UInt64(p[i]) << UInt64(8 * pendingBytes)
            pendingBytes += 1
            i += 1
        }
    }

    mutating func update(_ s: String) {
        var s = s
        s.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    func finish128() -> (UInt64, UInt64) {
        var h = self
        if h.pendingBytes > 0 { h.word(h.pending | (UInt64(h.pendingBytes) << 56)) }
        let x = CacheHash.fmix(h.a ^ (h.count &* Self.p3))
        let y = CacheHash.fmix(h.b ^ Self.rotl(h.count, 32) ^ x)
        return (x, y)
    }

    func finish64() -> UInt64 {
        let (x, y) = finish128()
        return CacheHash.fmix(x ^ Self.rotl(y, 29))
    }
}

enum CacheHash {
    static func fmix(_ k0: UInt64) -> UInt64 {
        var k = k0
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        return k ^ (k >> 33)
    }

    /// splitmix64's finaliser.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func of(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = CacheHasher(seed: seed)
        h.update(p)
        return h.finish64()
    }

    static func of(_ s: String, seed: UInt64) -> UInt64 {
        var h = CacheHasher(seed: seed)
        h.update(s)
        return h.finish64()
    }

    /// The content hash of an open file, read from its start; nil on a read error.
    static func ofFile(_ f: Int32) -> UInt64? {
        var h = CacheHasher(seed: 0x636f_6e74_656e_74)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { buf.deallocate() }
        var offset: off_t = 0
        while true {
            let n = pread(f, buf.baseAddress!, buf.count, offset)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            offset += off_t(n)
        }
        return h.finish64()
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// Exactly 16 lowercase hex digits.
    static func parseHex(_ u: [UInt8]) -> UInt64? {
        guard u.count == 16 else { return nil }
        var v: UInt64 = 0
        for c in u {
            switch c {
            case 0x30...0x39: v = v << 4 | UInt64(c - 0x30)
            case 0x61...0x66: v = v << 4 | UInt64(c - 0x61 + 10)
            default: return nil
            }
        }
        return v
    }
}
