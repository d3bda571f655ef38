import Glibc

// Parallel execution gates: may this group of tasks run at the same time?
// `gateValidate` answers with a report (see README.md in this folder for the
// conflict model); `gateSuggestBatches` (Batches.swift) splits a group into
// batches that pass. Paths arrive normalised, so they are compared as strings.

// MARK: - Inputs

/// One task of a group, as the gates see it.
public struct GateTask: Sendable, Equatable {
    public var id: String
    /// Ids of tasks this one must run after. Ids outside the group are external.
    public var dependsOn: [String]
    public var reads: [String]
    /// A path in both `reads` and `writes` counts as written.
    public var writes: [String]
    /// Complexity points counted against `GateOptions.maxComplexity`; never negative.
    public var difficulty: Int
    /// Names of shared state (not files) the task touches; two tasks naming one key never run together.
    public var shared: [String]

    public init(id: String, dependsOn: [String] = [], reads: [String] = [], writes: [String] = [],
                difficulty: Int = 0, shared: [String] = []) {
        self.id = id
        self.dependsOn = dependsOn
        self.reads = reads
        self.writes = writes
        self.difficulty = difficulty
        self.shared = shared
    }
}

/// Who holds a lock on a path right now (what a lock probe answers).
public struct GateLockHolder: Sendable, Equatable {
    public var holderId: String
    public var pid: Int32
    public var host: String
    /// A shared (reader) lock; false means exclusive.
    public var shared: Bool

    public init(holderId: String, pid: Int32, host: String, shared: Bool) {
        self.holderId = holderId
        self.pid = pid
        self.host = host
        self.shared = shared
    }
}

/// A snapshot of the machine's load, for the optional system check.
public struct GateSystemSample: Sendable, Equatable {
    /// One-minute load average divided by the online CPUs.
    public var cpuLoad: Double
    /// 1 - MemAvailable / MemTotal.
    public var memoryUsed: Double
    /// Soft RLIMIT_NOFILE; 0 when unknown (the open-file check is then skipped).
    public var openFileLimit: Int
    /// Descriptors open in this process.
    public var openFiles: Int

    public init(cpuLoad: Double, memoryUsed: Double, openFileLimit: Int, openFiles: Int) {
        self.cpuLoad = cpuLoad
        self.memoryUsed = memoryUsed
        self.openFileLimit = openFileLimit
        self.openFiles = openFiles
    }

    /// Reads /proc/loadavg, /proc/meminfo, getrlimit(RLIMIT_NOFILE) and /proc/self/fd.
    /// Whatever cannot be read is 0.
    public static func current() -> GateSystemSample {
        var cpu = 0.0
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let loadText = gateReadSmallFile("/proc/loadavg")
        let end = loadText.firstIndex(where: { $0 == 0x20 || $0 == 0x0A }) ?? loadText.endIndex
        if cpus > 0, let load = Double(String(decoding: loadText[..<end], as: UTF8.self)), load.isFinite, load >= 0 {
            cpu = load / Double(cpus)
        }

        var memory = 0.0
        let info = gateReadSmallFile("/proc/meminfo")
        if let total = gateMeminfoValue(info, "MemTotal:"), let available = gateMeminfoValue(info, "MemAvailable:"), total > 0 {
            memory = min(1, max(0, 1 - Double(available) / Double(total)))
        }

        var limit = 0
        var r = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &r) == 0 {
            limit = r.rlim_cur >= UInt64(Int.max) ? Int.max : Int(r.rlim_cur)
        }

        var descriptors = 0
        if let dir = opendir("/proc/self/fd") {
            while let entry = readdir(dir) {
                let dot = withUnsafeBytes(of: &entry.pointee.d_name) { raw -> Bool in
                    raw[0] == 0x2E && (raw[1] == 0 || (raw[1] == 0x2E && raw[2] == 0))
                }
                if !dot { descriptors += 1 }
            }
            closedir(dir)
            descriptors = max(0, descriptors - 1)  // the descriptor opendir itself held
        }
        return GateSystemSample(cpuLoad: cpu, memoryUsed: memory, openFileLimit: limit, openFiles: descriptors)
    }
}

/// Reads a small file (at most 1 MiB) whole; empty when it cannot be read.
func gateReadSmallFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return [] }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while out.count < 1 << 20 {
        let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if got < 0 {
            if errno == EINTR { continue }
            break
        }
        if got == 0 { break }
        out.append(contentsOf: chunk[0..<got])
    }
    return out
}

/// The number after `key` on a /proc/meminfo line (in kB).
func gateMeminfoValue(_ text: [UInt8], _ key: String) -> Int? {
    let k = Array(key.utf8)
    var lineStart = 0
    while lineStart < text.count {
        var lineEnd = lineStart
        while lineEnd < text.count && text[lineEnd] != 0x0A { lineEnd += 1 }
        if lineEnd - lineStart > k.count && text[lineStart..<(lineStart + k.count)].elementsEqual(k) {
            var i = lineStart + k.count
            while i < lineEnd && text[i] == 0x20 { i += 1 }
            var value = 0
            var digits = 0
            while i < lineEnd, text[i] >= 0x30, text[i] <= 0x39, value < Int.max / 20 {
                value = value * 10 + Int(text[i] - 0x30)
                digits += 1
                i += 1
            }
            return digits > 0 ? value : nil
        }
        lineStart = lineEnd + 1
    }
    return nil
}

/// Limits and switches for validation and batching. Defaults are the seed's.
public struct GateOptions: Sendable, Equatable {
    public var maxParallelTasks: Int
    /// Tasks already running elsewhere; available = max(0, maxParallelTasks - activeTasks).
    public var activeTasks: Int
    public var maxComplexity: Int
    public var cpuThreshold: Double
    public var memoryThreshold: Double
    /// nil: no CPU / memory / open-file check (deterministic). Pass `.current()` to check.
    public var system: GateSystemSample?
    /// The scheduler's flag: when false, a reader and a writer of one path run one at a time.
    public var allowReadWriteOverlap: Bool
    /// Cap on listed file conflicts; the rest are only counted.
    public var maxListed: Int

    public init(maxParallelTasks: Int = 5, activeTasks: Int = 0, maxComplexity: Int = 30,
                cpuThreshold: Double = 0.80, memoryThreshold: Double = 0.70,
                system: GateSystemSample? = nil, allowReadWriteOverlap: Bool = false, maxListed: Int = 1000) {
        self.maxParallelTasks = maxParallelTasks
        self.activeTasks = activeTasks
        self.maxComplexity = maxComplexity
        self.cpuThreshold = cpuThreshold
        self.memoryThreshold = memoryThreshold
        self.system = system
        self.allowReadWriteOverlap = allowReadWriteOverlap
        self.maxListed = maxListed
    }
}

// MARK: - Errors

/// Why a group could not be examined (or batched).
public enum GateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The task at this input index has an empty id.
    case emptyId(index: Int)
    /// Two tasks share an id (input indices of the first and the second).
    case duplicateId(String, first: Int, second: Int)
    case negativeDifficulty(task: String, index: Int, difficulty: Int)
    /// A dependency cycle, each id depending on the next, the first repeated at the end.
    case cycle([String])
    /// An edge names a node outside 0..<nodeCount (integer cycle check).
    case edgeOutOfRange(edge: Int, node: Int32, nodeCount: Int)
    /// Malformed graph input (integer cycle check).
    case invalidGraph(String)

    public var message: String {
        switch self {
        case .emptyId(let index):
            return "task at index \(index): empty id"
        case .duplicateId(let id, let first, let second):
            return "task '\(id)' at index \(second): duplicate id (first used at index \(first))"
        case .negativeDifficulty(let task, let index, let difficulty):
            return "task '\(task)' at index \(index): negative difficulty \(difficulty)"
        case .cycle(let ids):
            return "dependency cycle (each task depends on the next): " + ids.joined(separator: " -> ")
        case .edgeOutOfRange(let edge, let node, let nodeCount):
            return "edge \(edge): node \(node) is outside 0..<\(nodeCount)"
        case .invalidGraph(let why):
            return why
        }
    }

    public var description: String { message }
}

// MARK: - Report

public enum GateConflictKind: String, Sendable, Equatable {
    /// Both tasks write the path.
    case blocking
    /// One writes, the other reads.
    case warning
    /// Both only read.
    case info
}

public struct GateFileConflict: Sendable, Equatable {
    /// The task earlier in input order.
    public var task1: String
    public var task2: String
    public var file: String
    public var kind: GateConflictKind
    /// The scheduler will run the pair one at a time.
    public var serialized: Bool

    public init(task1: String, task2: String, file: String, kind: GateConflictKind, serialized: Bool) {
        self.task1 = task1
        self.task2 = task2
        self.file = file
        self.kind = kind
        self.serialized = serialized
    }
}

/// How many conflicting pairs of each kind exist (listed or not).
public struct GateConflictCounts: Sendable, Equatable {
    public var blocking = 0
    public var warning = 0
    public var info = 0
    /// Pairs the scheduler runs one at a time (blocking, plus warnings unless overlap is allowed).
    public var serialized = 0
    public var total: Int { blocking + warning + info }
    public init() {}
}

public struct GateLockIssue: Sendable, Equatable {
    public var task: String
    public var file: String
    public var holder: GateLockHolder
    /// The task writes the path (false: reads it).
    public var write: Bool
    public var mode: String { holder.shared ? "shared" : "exclusive" }
}

/// `task` depends on `dependsOn` (an ordered pair inside the group, or an external dependency).
public struct GateDependency: Sendable, Equatable {
    public var task: String
    public var dependsOn: String
    public init(task: String, dependsOn: String) {
        self.task = task
        self.dependsOn = dependsOn
    }
}

public struct GateResourceCapacity: Sendable, Equatable {
    public var maxParallelTasks: Int
    public var requested: Int
    public var available: Int
    public var withinCapacity: Bool
    /// The sample checked, when one was given.
    public var system: GateSystemSample?
    public var cpuThreshold: Double
    public var memoryThreshold: Double
    /// nil when no sample was given.
    public var systemOK: Bool?
}

public struct GateContextBudget: Sendable, Equatable {
    public var totalComplexity: Int
    public var maxComplexity: Int
    public var withinBudget: Bool
}

public struct GateSharedState: Sendable, Equatable {
    public var resource: String
    /// Ids in input order.
    public var tasks: [String]
}

public struct GateReport: Sendable, Equatable {
    public var canParallel: Bool
    public var taskCount: Int
    /// At most `maxListed`, ordered by file, then task1's and task2's input index.
    public var fileConflicts: [GateFileConflict]
    /// All conflicting pairs, listed or not.
    public var fileConflictsTotal: Int
    public var conflictCounts: GateConflictCounts
    /// One cycle per cyclic strongly connected component; each id depends on the next.
    public var circularDependencies: [[String]]
    /// In-group dependencies outside cycles; `dependsOn` must finish first.
    public var orderedPairs: [GateDependency]
    /// Dependencies on ids not in the group (ignored for the verdict).
    public var externalDependencies: [GateDependency]
    public var lockIssues: [GateLockIssue]
    public var resourceCapacity: GateResourceCapacity
    public var contextBudget: GateContextBudget
    public var sharedState: [GateSharedState]
    public var recommendations: [String]
}

// MARK: - Indexing a group

/// Interns strings by their UTF-8 bytes: byte equality (not Unicode canonical
/// equivalence, which Swift's String == uses), byte order for sorting. An open-addressing
/// table with linear probing over a seeded multiply-mix hash, the bytes kept in one arena.
final class GateInterner {
    private(set) var names: [String] = []
    private var arena: UnsafeMutablePointer<UInt8>
    private var arenaCount = 0
    private var arenaCapacity: Int
    /// Byte range of name i: starts[i]..<starts[i + 1].
    private var starts: [Int] = [0]
    /// 0: empty; else (low 32 bits of the hash) << 32 | (index + 1).
    private var slots: UnsafeMutablePointer<UInt64>
    private var mask: Int
    private let seed: UInt64

    init(expected: Int, seed: UInt64) {
        var size = 16
        while size < 2 * max(expected, 1) { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0, count: size)
        mask = size - 1
        arenaCapacity = max(256, expected * 32)
        arena = .allocate(capacity: arenaCapacity)
        self.seed = seed
        names.reserveCapacity(expected)
        starts.reserveCapacity(expected + 1)
    }

    deinit {
        slots.deallocate()
        arena.deallocate()
    }

    var count: Int { names.count }

    /// The index of `s`, adding it when new.
    func intern(_ s: String) -> (index: Int32, isNew: Bool) {
        gateWithUTF8(s) { bytes in
            let h = gateHash(bytes, seed)
            let (slot, found) = probe(bytes, h)
            if found >= 0 { return (found, false) }
            let index = Int32(names.count)
            names.append(s)
            append(bytes)
            slots[slot] = UInt64(truncatingIfNeeded: h) << 32 | UInt64(index + 1)
            if names.count * 2 > mask + 1 { grow() }
            return (index, true)
        }
    }

    /// The index of `s`, or -1.
    func find(_ s: String) -> Int32 {
        gateWithUTF8(s) { bytes in probe(bytes, gateHash(bytes, seed)).found }
    }

    /// Byte order of two interned names.
    func less(_ a: Int32, _ b: Int32) -> Bool {
        let a0 = starts[Int(a)], la = starts[Int(a) + 1] - a0
        let b0 = starts[Int(b)], lb = starts[Int(b) + 1] - b0
        let common = min(la, lb)
        if common > 0 {
            let c = memcmp(arena + a0, arena + b0, common)
            if c != 0 { return c < 0 }
        }
        return la < lb
    }

    @inline(__always)
    private func probe(_ bytes: UnsafeRawBufferPointer, _ h: UInt64) -> (slot: Int, found: Int32) {
        let tag = UInt64(truncatingIfNeeded: UInt32(truncatingIfNeeded: h))
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { return (i, -1) }
            if s >> 32 == tag {
                let index = Int(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
                let start = starts[index]
                let length = starts[index + 1] - start
                if length == bytes.count && gateSameBytes(UnsafeRawPointer(arena + start), bytes.baseAddress, length) {
                    return (i, Int32(truncatingIfNeeded: index))
                }
            }
            i = (i &+ 1) & mask
        }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) {
        if arenaCount + bytes.count > arenaCapacity {
            var capacity = arenaCapacity * 2
            while capacity < arenaCount + bytes.count { capacity *= 2 }
            let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
            bigger.initialize(from: arena, count: arenaCount)
            arena.deallocate()
            arena = bigger
            arenaCapacity = capacity
        }
        if bytes.count > 0 {
            (arena + arenaCount).initialize(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        }
        arenaCount += bytes.count
        starts.append(arenaCount)
    }

    private func grow() {
        let size = (mask + 1) * 2
        let bigger = UnsafeMutablePointer<UInt64>.allocate(capacity: size)
        bigger.initialize(repeating: 0, count: size)
        for i in 0...mask where slots[i] != 0 {
            var j = Int(truncatingIfNeeded: slots[i] >> 32) & (size - 1)
            while bigger[j] != 0 { j = (j &+ 1) & (size - 1) }
            bigger[j] = slots[i]
        }
        slots.deallocate()
        slots = bigger
        mask = size - 1
    }
}

/// Whether `length` bytes at `a` and `b` are equal (8 at a time; short keys make memcmp's call cost dominate).
@inline(__always)
func gateSameBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer?, _ length: Int) -> Bool {
    guard length > 0, let b = b else { return true }
    var i = 0
    while i &+ 8 <= length {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return false
        }
        i &+= 8
    }
    while i < length {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
        i &+= 1
    }
    return true
}

/// A per-process random seed for the interner's hash (Swift's Hasher is randomly seeded),
/// so crafted inputs cannot aim at collisions. Never affects any output order.
func gateHashSeed() -> UInt64 {
    var h = Hasher()
    h.combine(0x6761_7465 as UInt64)
    return UInt64(bitPattern: Int64(h.finalize()))
}

@inline(__always)
func gateMix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    let r = a.multipliedFullWidth(by: b)
    return r.high ^ r.low
}

/// Seeded multiply-mix hash over bytes, 8 at a time.
@inline(__always)
func gateHash(_ bytes: UnsafeRawBufferPointer, _ seed: UInt64) -> UInt64 {
    let n = bytes.count
    var h = seed ^ (UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15)
    guard n > 0, let p = bytes.baseAddress else { return gateMix(h, 0x8EBC_6AF0_9C88_C6E3) }
    var i = 0
    while i &+ 8 <= n {
        h = gateMix(h ^ p.loadUnaligned(fromByteOffset: i, as: UInt64.self), 0xA076_1D64_78BD_642F)
        i &+= 8
    }
    if i < n {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            w |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift &+= 8
            i &+= 1
        }
        h = gateMix(h ^ w, 0xE703_7ED1_A0B4_28DB)
    }
    return gateMix(h, 0x8EBC_6AF0_9C88_C6E3)
}

/// Calls `body` with the UTF-8 bytes of `s` (in place for native strings).
@inline(__always)
func gateWithUTF8<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    if let r = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
    var copy = s
    copy.makeContiguousUTF8()
    return copy.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) })
        ?? Array(s.utf8).withUnsafeBytes(body)
}

/// The group turned into integers: ids, interned paths and keys, per-task accesses, edges.
struct GateIndex {
    /// Interned paths in first-appearance order.
    var paths: GateInterner
    /// Task t's accesses are accCode[accStart[t]..<accStart[t+1]]: path << 1 | write,
    /// writes first (listed order), then reads not already present.
    var accStart: [Int32] = []
    var accCode: [UInt32] = []
    /// In-group dependency edges (task depends on task), deduplicated, in task then listed order.
    var depFrom: [Int32] = []
    var depTo: [Int32] = []
    var external: [GateDependency] = []
    var keys: GateInterner
    /// Task t's shared keys are keyCode[keyStart[t]..<keyStart[t+1]], deduplicated.
    var keyStart: [Int32] = []
    var keyCode: [Int32] = []
    /// Sum of difficulties, saturating at Int.max.
    var totalDifficulty = 0

    var pathNames: [String] { paths.names }

    init(_ tasks: [GateTask]) throws(GateError) {
        let n = tasks.count
        guard n < 1 << 30 else { throw .invalidGraph("too many tasks (\(n))") }
        let seed = gateHashSeed()
        let ids = GateInterner(expected: n, seed: seed)
        for i in 0..<n {
            let t = tasks[i]
            if t.id.isEmpty { throw .emptyId(index: i) }
            let (first, isNew) = ids.intern(t.id)
            if !isNew { throw .duplicateId(t.id, first: Int(first), second: i) }
            if t.difficulty < 0 { throw .negativeDifficulty(task: t.id, index: i, difficulty: t.difficulty) }
            let (sum, over) = totalDifficulty.addingReportingOverflow(t.difficulty)
            totalDifficulty = over ? Int.max : sum
        }

        // Paths: intern, deduplicate within a task (stamp = last task that touched the path).
        var estimate = 0
        for t in tasks { estimate += t.reads.count + t.writes.count }
        guard estimate < 1 << 30 else { throw .invalidGraph("too many paths (\(estimate))") }
        // Distinct paths are usually far fewer than accesses; the table grows when needed.
        let table = GateInterner(expected: estimate / 4, seed: seed)
        var codes: [UInt32] = []
        codes.reserveCapacity(estimate)
        var codeStart: [Int32] = []
        codeStart.reserveCapacity(n + 1)
        var stamp: [Int32] = []
        codeStart.append(0)
        for i in 0..<n {
            let me = Int32(i)
            for pass in 0..<2 {
                let bit: UInt32 = pass == 0 ? 1 : 0
                let list = pass == 0 ? tasks[i].writes : tasks[i].reads
                list.withUnsafeBufferPointer { listed in
                    for k in 0..<listed.count {
                        let (p, isNew) = table.intern(listed[k])
                        if isNew { stamp.append(-1) }
                        if stamp[Int(p)] == me { continue }
                        stamp[Int(p)] = me
                        codes.append(UInt32(p) << 1 | bit)
                    }
                }
            }
            codeStart.append(Int32(codes.count))
        }
        paths = table
        accCode = codes
        accStart = codeStart

        // Dependencies: in-group edges deduplicated per task; the rest are external.
        var depStamp = [Int32](repeating: -1, count: n)
        for i in 0..<n {
            let me = Int32(i)
            let externalStart = external.count
            for dep in tasks[i].dependsOn {
                let j = ids.find(dep)
                if j >= 0 {
                    if depStamp[Int(j)] == me { continue }
                    depStamp[Int(j)] = me
                    depFrom.append(me)
                    depTo.append(j)
                } else if !external[externalStart...].contains(where: { $0.dependsOn.utf8.elementsEqual(dep.utf8) }) {
                    external.append(GateDependency(task: tasks[i].id, dependsOn: dep))
                }
            }
        }

        // Shared-state keys.
        keys = GateInterner(expected: 16, seed: seed)
        var keyStamp: [Int32] = []
        keyStart.reserveCapacity(n + 1)
        keyStart.append(0)
        for i in 0..<n {
            let me = Int32(i)
            for key in tasks[i].shared {
                let (k, isNew) = keys.intern(key)
                if isNew { keyStamp.append(-1) }
                if keyStamp[Int(k)] == me { continue }
                keyStamp[Int(k)] = me
                keyCode.append(k)
            }
            keyStart.append(Int32(keyCode.count))
        }
    }
}

/// Sorts `items` by `less` only as far as needed to hand the first ones to `take`,
/// which returns false to stop (a binary heap: O(n + k log n) comparisons for k taken).
func gateSelectInOrder(_ items: [Int32], by less: (Int32, Int32) -> Bool, take: (Int32) -> Bool) {
    var heap = items
    let count = heap.count
    if count == 0 { return }
    func siftDown(_ start: Int, _ end: Int) {
        var i = start
        while true {
            let l = 2 * i + 1
            if l >= end { return }
            var m = l
            if l + 1 < end && less(heap[l + 1], heap[l]) { m = l + 1 }
            if !less(heap[m], heap[i]) { return }
            heap.swapAt(i, m)
            i = m
        }
    }
    var i = count / 2
    while i > 0 {
        i -= 1
        siftDown(i, count)
    }
    var end = count
    while end > 0 {
        let top = heap[0]
        if !take(top) { return }
        end -= 1
        heap[0] = heap[end]
        siftDown(0, end)
    }
}

// MARK: - Validate

/// Examines whether `tasks` may all run at the same time.
///
/// `lockProbe` is asked once per distinct path (first-appearance order) who holds a lock on it now.
/// Throws for an empty or duplicate id, or a negative difficulty.
public func gateValidate(_ tasks: [GateTask], options: GateOptions = GateOptions(),
                         lockProbe: (String) -> GateLockHolder? = { _ in nil }) throws(GateError) -> GateReport {
    let g = try GateIndex(tasks)
    let pathNames = g.pathNames
    let n = tasks.count
    let pathCount = pathNames.count
    let overlap = options.allowReadWriteOverlap

    // File conflicts: group accesses by path (counting sort, so each path's list is in task order),
    // count pairs per path arithmetically, list pairs only for the first paths in name order.
    var pathStart = [Int32](repeating: 0, count: pathCount + 1)
    for code in g.accCode { pathStart[Int(code >> 1) + 1] &+= 1 }
    for p in 0..<pathCount { pathStart[p + 1] &+= pathStart[p] }
    var occurrence = [UInt32](repeating: 0, count: g.accCode.count)
    do {
        var fill = pathStart
        for t in 0..<n {
            for a in Int(g.accStart[t])..<Int(g.accStart[t + 1]) {
                let code = g.accCode[a]
                let p = Int(code >> 1)
                occurrence[Int(fill[p])] = UInt32(t) << 1 | (code & 1)
                fill[p] &+= 1
            }
        }
    }
    var counts = GateConflictCounts()
    var conflicted: [Int32] = []
    for p in 0..<pathCount {
        let s = Int(pathStart[p]), e = Int(pathStart[p + 1])
        let k = e - s
        if k < 2 { continue }
        var w = 0
        for o in s..<e { w &+= Int(occurrence[o] & 1) }
        let r = k - w
        counts.blocking += w * (w - 1) / 2
        counts.warning += w * r
        counts.info += r * (r - 1) / 2
        conflicted.append(Int32(p))
    }
    counts.serialized = counts.blocking + (overlap ? 0 : counts.warning)

    var fileConflicts: [GateFileConflict] = []
    let cap = max(0, options.maxListed)
    if cap > 0 {
        fileConflicts.reserveCapacity(min(cap, counts.total))
        let names = pathNames
        let table = g.paths
        gateSelectInOrder(conflicted, by: { table.less($0, $1) }) { p in
            let s = Int(pathStart[Int(p)]), e = Int(pathStart[Int(p) + 1])
            let file = names[Int(p)]
            for i in s..<(e - 1) {
                let a = occurrence[i]
                for j in (i + 1)..<e {
                    let b = occurrence[j]
                    let kind: GateConflictKind
                    switch (a & 1) + (b & 1) {
                    case 2: kind = .blocking
                    case 1: kind = .warning
                    default: kind = .info
                    }
                    let serialized = kind == .blocking || (kind == .warning && !overlap)
                    fileConflicts.append(GateFileConflict(task1: tasks[Int(a >> 1)].id, task2: tasks[Int(b >> 1)].id,
                                                          file: file, kind: kind, serialized: serialized))
                    if fileConflicts.count == cap { return false }
                }
            }
            return true
        }
    }

    // Locks: one probe per distinct path, then each task's accesses in its own order.
    var holders: [GateLockHolder] = []
    var holderOf: [Int32] = []
    for p in 0..<pathCount {
        guard let h = lockProbe(pathNames[p]) else { continue }
        if holderOf.isEmpty { holderOf = [Int32](repeating: -1, count: pathCount) }
        holderOf[p] = Int32(holders.count)
        holders.append(h)
    }
    var lockIssues: [GateLockIssue] = []
    if !holders.isEmpty {
        for t in 0..<n {
            for a in Int(g.accStart[t])..<Int(g.accStart[t + 1]) {
                let code = g.accCode[a]
                let held = holderOf[Int(code >> 1)]
                if held < 0 { continue }
                let h = holders[Int(held)]
                let write = code & 1 == 1
                if write || !h.shared {
                    lockIssues.append(GateLockIssue(task: tasks[t].id, file: pathNames[Int(code >> 1)], holder: h, write: write))
                }
            }
        }
    }

    // Dependencies: cycles, then ordered pairs outside cycles.
    var cycles: [[String]] = []
    var ordered: [GateDependency] = []
    if !g.depFrom.isEmpty {
        let scan = try g.depFrom.withUnsafeBufferPointer { (f) throws(GateError) in
            try g.depTo.withUnsafeBufferPointer { (t) throws(GateError) in
                try gateScanCycles(nodeCount: n, from: f, to: t, wantComponents: true)
            }
        }
        cycles = scan.cycles.map { $0.map { tasks[Int($0)].id } }
        for e in 0..<g.depFrom.count {
            let a = Int(g.depFrom[e]), b = Int(g.depTo[e])
            if !scan.component.isEmpty && scan.component[a] >= 0 && scan.component[a] == scan.component[b] { continue }
            ordered.append(GateDependency(task: tasks[a].id, dependsOn: tasks[b].id))
        }
    }

    // Shared state: keys declared by two or more tasks, in key order.
    var shared: [GateSharedState] = []
    if g.keys.count > 0 {
        let keyNames = g.keys.names
        var holdersOfKey = [[Int32]](repeating: [], count: keyNames.count)
        for t in 0..<n {
            for a in Int(g.keyStart[t])..<Int(g.keyStart[t + 1]) { holdersOfKey[Int(g.keyCode[a])].append(Int32(t)) }
        }
        var keys: [Int32] = []
        for k in 0..<keyNames.count where holdersOfKey[k].count >= 2 { keys.append(Int32(k)) }
        keys.sort { g.keys.less($0, $1) }
        shared = keys.map { k in
            GateSharedState(resource: keyNames[Int(k)], tasks: holdersOfKey[Int(k)].map { tasks[Int($0)].id })
        }
    }

    // Capacity, system, budget.
    let available = max(0, options.maxParallelTasks &- options.activeTasks)
    var capacity = GateResourceCapacity(maxParallelTasks: options.maxParallelTasks, requested: n, available: available,
                                        withinCapacity: n <= available, system: options.system,
                                        cpuThreshold: options.cpuThreshold, memoryThreshold: options.memoryThreshold,
                                        systemOK: nil)
    var systemProblems: [String] = []
    if let s = options.system {
        if !(s.cpuLoad <= options.cpuThreshold) { systemProblems.append("cpu load \(s.cpuLoad) over \(options.cpuThreshold)") }
        if !(s.memoryUsed <= options.memoryThreshold) {
            systemProblems.append("memory used \(s.memoryUsed) over \(options.memoryThreshold)")
        }
        let (extra, o1) = n.multipliedReportingOverflow(by: 4)
        let (need, o2) = s.openFiles.addingReportingOverflow(extra)
        if s.openFileLimit > 0 && (o1 || o2 || need > s.openFileLimit) {
            systemProblems.append("open files \(s.openFiles) + \(n)*4 over \(s.openFileLimit)")
        }
        capacity.systemOK = systemProblems.isEmpty
    }
    let budget = GateContextBudget(totalComplexity: g.totalDifficulty, maxComplexity: options.maxComplexity,
                                   withinBudget: g.totalDifficulty <= options.maxComplexity)

    // Recommendations: one line per kind of problem, in a fixed order.
    var recommendations: [String] = []
    if counts.serialized > 0 { recommendations.append("Execute conflicting tasks sequentially") }
    if overlap && counts.warning > 0 {
        recommendations.append("Readers may see partial writes: \(counts.warning) read-write pair(s) run in parallel because read-write overlap is allowed")
    }
    if !lockIssues.isEmpty { recommendations.append("Wait for file locks to be released") }
    for c in cycles { recommendations.append("Break the dependency cycle " + c.joined(separator: " -> ")) }
    if !ordered.isEmpty { recommendations.append("Run dependent tasks in order: see the suggested batches") }
    if !capacity.withinCapacity {
        recommendations.append("Batch tasks into smaller groups (requested \(n), available \(available))")
    }
    if !budget.withinBudget {
        recommendations.append("Split high-complexity task groups (total \(budget.totalComplexity) over \(budget.maxComplexity))")
    }
    if !shared.isEmpty {
        var names = shared.prefix(10).map { $0.resource }.joined(separator: ", ")
        if shared.count > 10 { names += " and \(shared.count - 10) more" }
        recommendations.append("Protect shared state: run tasks sharing \(names) one at a time")
    }
    if !systemProblems.isEmpty {
        recommendations.append("Wait for system load to drop (" + systemProblems.joined(separator: "; ") + ")")
    }

    let canParallel = counts.serialized == 0 && cycles.isEmpty && ordered.isEmpty && lockIssues.isEmpty
        && capacity.withinCapacity && budget.withinBudget && shared.isEmpty && capacity.systemOK != false

    return GateReport(canParallel: canParallel, taskCount: n, fileConflicts: fileConflicts,
                      fileConflictsTotal: counts.total, conflictCounts: counts, circularDependencies: cycles,
                      orderedPairs: ordered, externalDependencies: g.external, lockIssues: lockIssues,
                      resourceCapacity: capacity, contextBudget: budget, sharedState: shared,
                      recommendations: recommendations)
}
