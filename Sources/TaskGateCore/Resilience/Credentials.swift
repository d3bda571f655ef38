#if canImport(Glibc)
import Glibc
#endif

/// One credential of a ring (seed 000 APICredential).
public struct Credential: Sendable {
    public var key: String
    public var baseURL: String?
    public var model: String?
    public init(key: String, baseURL: String? = nil, model: String? = nil) {
        self.key = key
        self.baseURL = baseURL
        self.model = model
    }
}

/// A ring of credentials that rotates on rate limits and quota errors
/// (seed 000 APIRotationState), with what the seed lacks: a rate-limited
/// credential cools down for its retry-after and comes back; a failure
/// rotates only if it was reported against the credential still current, so
/// ten calls failing together move the ring once, not ten times; and the
/// secrets are never part of any text it produces.
///
/// The strings are copied once into C memory that lives as long as the ring,
/// so a processor can be handed plain pointers.
public final class CredentialRing: @unchecked Sendable {
    public struct Entry {
        public let key: UnsafeMutablePointer<CChar>
        public let baseURL: UnsafeMutablePointer<CChar>?
        public let model: UnsafeMutablePointer<CChar>?
        public var exhausted = false
        public var coolUntil: Int64 = 0
        public var lastError: String? = nil
        public var uses: Int64 = 0
        public var failures: Int64 = 0
    }

    private let lock = Lock()
    private var entries: [Entry]
    private var current = 0
    /// How long a credential rests after a 429 without a retry-after.
    public let cooldown: Int64
    private let secrets: [String]
    /// The clock of the pool it belongs to.
    public var clock: PolicyClock = .system
    public func clockNow() -> Int64 { clock.now() }

    public init(_ credentials: [Credential], cooldown: Int64 = 60_000_000_000) throws(TaskGateError) {
        guard !credentials.isEmpty else { throw .invalid("the credential ring is empty") }
        guard credentials.count <= 1024 else { throw .outOfRange("more than 1024 credentials") }
        guard cooldown >= 0 else { throw .invalid("cool-down must not be negative") }
        for (k, c) in credentials.enumerated() where c.key.isEmpty || c.key.utf8.contains(0) {
            throw .invalid("credential \(k + 1): the key is empty or holds a NUL byte")
        }
        entries = credentials.map { c in
            Entry(key: strdup(c.key), baseURL: c.baseURL.map { strdup($0) }, model: c.model.map { strdup($0) })
        }
        self.cooldown = cooldown
        secrets = credentials.map(\.key)
    }

    deinit {
        for e in entries {
            // Overwritten before release: a secret should not linger in freed memory.
            memset(e.key, 0, strlen(e.key))
            free(e.key)
            free(e.baseURL)
            free(e.model)
        }
    }

    public var count: Int { entries.count }

    /// Reads PREFIX_1, PREFIX_2, ... (stopping at the first missing number),
    /// with BASE_n and MODEL_n beside them; without PREFIX_1, plain PREFIX.
    /// `basePrefix` and `modelPrefix` default to the prefix's stem (the part
    /// before a trailing `_API_KEY` or `_KEY`) + `_BASE_URL` / `_MODEL`, as
    /// seed 000's ANTHROPIC_API_KEY_n, ANTHROPIC_BASE_URL_n, ANTHROPIC_MODEL_n.
    /// An environment variable name: [A-Za-z0-9_]+.
    public static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }

    public static func fromEnvironment(prefix: String, basePrefix: String? = nil, modelPrefix: String? = nil,
                                       environment: (String) -> String? = { getenv($0).map { String(cString: $0) } })
        throws(TaskGateError) -> [Credential] {
        guard isValidPrefix(prefix) else {
            throw .invalid("credential prefix '\(prefix)' must be a non-empty environment variable name ([A-Za-z0-9_])")
        }
        var stem = prefix
        for suffix in ["_API_KEY", "_KEY"] where stem.hasSuffix(suffix) && stem.count > suffix.count {
            stem = String(stem.dropLast(suffix.count))
            break
        }
        let base = basePrefix ?? stem + "_BASE_URL"
        let model = modelPrefix ?? stem + "_MODEL"
        func value(_ name: String) -> String? {
            guard let v = environment(name), !v.isEmpty else { return nil }
            return v
        }
        var out: [Credential] = []
        var n = 1
        while n <= 1024, let key = value("\(prefix)_\(n)") {
            out.append(Credential(key: key, baseURL: value("\(base)_\(n)"), model: value("\(model)_\(n)")))
            n += 1
        }
        if out.isEmpty, let key = value(prefix) {
            out.append(Credential(key: key, baseURL: value(base), model: value(model)))
        }
        if out.isEmpty { throw .notFound("no credentials in the environment: neither \(prefix)_1 nor \(prefix) is set") }
        return out
    }

    public enum Pick: Equatable, Sendable {
        case use(Int)
        /// Every usable credential is cooling down until then.
        case waitUntil(Int64)
        /// Every credential is exhausted.
        case exhausted
    }

    /// The credential to use now: the current one, or the next usable after it.
    public func pick(now: Int64) -> Pick {
        lock.lock()
        defer { lock.unlock() }
        var soonest = Int64.max
        for step in 0..<entries.count {
            let k = (current + step) % entries.count
            let e = entries[k]
            if e.exhausted { continue }
            if e.coolUntil > now { soonest = min(soonest, e.coolUntil); continue }
            current = k
            entries[k].uses += 1
            return .use(k)
        }
        return soonest == Int64.max ? .exhausted : .waitUntil(soonest)
    }

    public func entry(_ k: Int) -> Entry {
        lock.lock()
        defer { lock.unlock() }
        return entries[k]
    }

    /// Seed 000's should_rotate: 429, 401, 403, or "quota" in the message.
    public static func shouldRotate(statusCode: Int32, message: String) -> Bool {
        statusCode == 429 || statusCode == 401 || statusCode == 403 || message.lowercased().contains("quota")
    }

    /// Reports a failed call made with credential `k`. Returns true when the
    /// ring rotated away from it.
    @discardableResult
    public func report(_ k: Int, statusCode: Int32, message: String, retryAfter: Int64?, now: Int64) -> Bool {
        guard CredentialRing.shouldRotate(statusCode: statusCode, message: message) else { return false }
        lock.lock()
        defer { lock.unlock() }
        entries[k].failures += 1
        entries[k].lastError = redact(message)
        if message.lowercased().contains("daily quota") {
            entries[k].exhausted = true
        } else if statusCode == 429 {
            entries[k].coolUntil = now &+ (retryAfter ?? cooldown)
        }
        guard current == k else { return false }
        current = (k + 1) % entries.count
        return true
    }

    /// `text` with every secret of the ring replaced by "[credential n]".
    public func redact(_ text: String) -> String {
        var out = text
        for (k, s) in secrets.enumerated() where out.contains(s) {
            out = out.replacing(s, with: "[credential \(k + 1)]")
        }
        return out
    }

    public func containsSecret(_ text: UnsafePointer<CChar>) -> Bool {
        for s in secrets where strstr(text, s) != nil { return true }
        return false
    }

    public struct Status: Sendable, Equatable {
        public var count: Int
        public var current: Int
        public var available: Int
        public var exhausted: Int
        public var coolingDown: Int
    }

    public func status(now: Int64) -> Status {
        lock.lock()
        defer { lock.unlock() }
        let ex = entries.filter(\.exhausted).count
        let cool = entries.filter { !$0.exhausted && $0.coolUntil > now }.count
        return Status(count: entries.count, current: current, available: entries.count - ex - cool, exhausted: ex, coolingDown: cool)
    }
}
