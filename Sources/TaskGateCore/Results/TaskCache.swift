import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A task's request to reuse its previous result (seed 002 §4, seed 004 §8).
///
/// The result is reused when the pool's `ResultCache` holds an entry for the
/// task's id that is at most `ttl` seconds old, was stored for the same
/// definition, and none of the task's declared read files changed since (see
/// README-cache.md). The definition is what the engine knows of the task:
/// its processor (a plugin processor's name and its plugin's version; "fn"
/// for a C function, whose address means nothing across runs), its
/// arguments, its payload, its declared writes, and `key`: put there what
/// else decides the result (a version of the code, a model name).
public struct TaskCacheRequest: Sendable, Equatable {
    /// Seconds an entry stays usable (age == ttl still hits); `.infinity`: no limit.
    public var ttl: Double
    public var key: String

    public init(ttl: Double, key: String = "") {
        self.ttl = ttl
        self.key = key
    }
}

/// What the pool keeps for a task that declares a cache.
final class CachedTask {
    let taskId: String
    let definition: String
    /// Normalized absolute paths, as declared.
    let reads: [String]
    let ttl: Double
    /// Stamps of the reads taken at the lookup that missed, for the store.
    var stamps: [CacheFileStamp]? = nil
    /// Why the lookup missed (and, after, whether the store failed): read by
    /// results once the task has ended; freed with the pool.
    var reason: UnsafeMutablePointer<CChar>? = nil
    var looked = false

    init(taskId: String, definition: String, reads: [String], ttl: Double) {
        self.taskId = taskId
        self.definition = definition
        self.reads = reads
        self.ttl = ttl
    }

    func setReason(_ text: String) {
        free(reason)
        reason = strdup(text)
    }

    deinit { free(reason) }
}

extension TaskPool {
    /// At submission (under submitLock): checks the request and records the
    /// task's definition. The task is flagged so a worker looks it up.
    func declareCache(_ request: TaskCacheRequest, _ t: UnsafeMutablePointer<tgs_task>, _ s: TaskSpec,
                      index: Int32, position: Int) throws(TaskGateError) {
        let who = describe(s.id, position)
        if resultCache == nil, let path = lazyResultCachePath { resultCache = try ResultCache(path) }
        guard resultCache != nil else {
            throw .invalid("\(who): declares a result cache, but the pool has none (set a cache directory)")
        }
        guard let id = s.id else { throw .invalid("\(who): a cached task needs an id (its entry is found by it)") }
        guard !request.ttl.isNaN, request.ttl >= 0 else {
            throw .invalid("\(who): cache ttl must be >= 0 seconds (infinity: no limit), not \(request.ttl)")
        }
        let cwd = String(decoding: PathNormalizer.currentDirectory(), as: UTF8.self)
        func paths(_ list: UnsafeBufferPointer<UnsafePointer<CChar>?>) -> [String] {
            Array(Set(list.compactMap { $0.map { PathNormalizer.normalize(String(cString: $0), base: cwd) } })).sorted()
        }
        var d = "taskgate-task-definition 1\n"
        func field(_ name: String, _ value: String) {
            d += name
            d += " "
            d += String(value.utf8.count)
            d += ":"
            d += value
            d += "\n"
        }
        if let proc = s.plugin, let p = PluginRegistry.processor(handle: proc) {
            let version = proc.pointee.plugin.flatMap { PluginRegistry.plugin(handle: $0) }?.version ?? ""
            field("processor", "plugin:" + p.name + "@" + version)
            for v in s.arguments { field("arg", Self.describeArgument(v)) }
        } else {
            field("processor", "fn")
        }
        if s.payload.count > 0 {
            var h = CacheHasher(seed: 0x7061_796c_6f61_64)
            h.update(s.payload)
            let (a, b) = h.finish128()
            field("payload", String(s.payload.count) + ":" + CacheHash.hex(a) + CacheHash.hex(b))
        }
        for w in paths(s.writes) { field("write", w) }
        field("key", request.key)
        let record = CachedTask(taskId: String(cString: id), definition: d, reads: paths(s.reads), ttl: request.ttl)
        cacheLock.withLock { cachedTasks[index] = record }
        t.pointee.flags |= UInt8(TGS_TASK_CACHED)
    }

    static func describeArgument(_ v: tgs_value) -> String {
        switch Int32(v.type) {
        case Int32(TG_TYPE_STRING.rawValue):
            return "s:" + (v.as.s.map { String(cString: $0) } ?? "")
        case Int32(TG_TYPE_BYTES.rawValue):
            let raw = UnsafeRawBufferPointer(start: v.as.bytes.data, count: Int(v.as.bytes.len))
            return "b:" + String(raw.count) + ":" + CacheHash.hex(CacheHash.of(raw, seed: 0x6279_7465_73))
        case Int32(TG_TYPE_DOUBLE.rawValue), Int32(TG_TYPE_FLOAT.rawValue):
            return "\(v.type):d:" + String(v.as.d.bitPattern, radix: 16)
        default:
            return "\(v.type):i:" + String(v.as.u, radix: 16)
        }
    }

    /// A refused batch: its records go.
    func forgetCaches(from base: Int32) {
        cacheLock.withLock {
            if cachedTasks.isEmpty { return }
            for k in cachedTasks.keys where k >= base { cachedTasks[k] = nil }
        }
    }

    func cacheRecord(_ i: Int32) -> CachedTask? {
        cacheLock.withLock { cachedTasks[i] }
    }

    /// Why task i's lookup missed; nil when it did not.
    func cacheMissReason(_ i: Int32) -> UnsafePointer<CChar>? {
        cacheLock.withLock { cachedTasks[i]?.reason.map { UnsafePointer($0) } }
    }

    /// On the worker that claimed task i, before its first attempt: the
    /// cached output when the cache can answer. A miss records its reason and
    /// the read stamps for the store, and flags the result.
    func cacheLookup(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>) -> [UInt8]? {
        guard let cache = resultCache, let r = cacheRecord(i), !r.looked else { return nil }
        r.looked = true
        let found: CacheLookup
        do {
            found = try cache.lookup(taskId: r.taskId, definition: r.definition, reads: r.reads, ttl: r.ttl)
        } catch {
            cacheLock.withLock { r.setReason("unusable: \(error)") }
            t.pointee.result_bits |= UInt8(TGS_RESULT_CACHE_MISS)
            return nil
        }
        switch found {
        case .hit(let entry):
            return entry.output
        case .miss(let why):
            let text = why.code == "absent" ? "absent: no entry for this task yet" : why.code + ": " + why.description
            cacheLock.withLock { r.setReason(text) }
            r.stamps = try? cache.snapshot(reads: r.reads)
            t.pointee.result_bits |= UInt8(TGS_RESULT_CACHE_MISS)
            return nil
        }
    }

    /// Task i succeeded after a miss: its output becomes the entry (not a
    /// fallback's output, which stands in for a result it is not). A failed
    /// store is told in the reason; the task's result stands.
    func cacheStore(_ i: Int32, _ t: UnsafeMutablePointer<tgs_task>) {
        guard t.pointee.result_bits & UInt8(TGS_RESULT_CACHE_MISS) != 0, let cache = resultCache, let r = cacheRecord(i) else { return }
        if let p = tgs_policy_of(t), p.pointee.flags & ResultFlags.fallback != 0 { return }
        let output = t.pointee.output_len > 0 && t.pointee.output != nil
            ? Array(UnsafeRawBufferPointer(start: t.pointee.output, count: Int(t.pointee.output_len))) : []
        do {
            if let stamps = r.stamps {
                try cache.store(taskId: r.taskId, definition: r.definition, stamps: stamps, output: output, ttl: r.ttl)
            } else {
                try cache.store(taskId: r.taskId, definition: r.definition, reads: r.reads, output: output, ttl: r.ttl)
            }
        } catch {
            let before = r.reason.map { String(cString: $0) } ?? "miss"
            cacheLock.withLock { r.setReason(before + "; the result was not stored: \(error)") }
        }
    }
}
