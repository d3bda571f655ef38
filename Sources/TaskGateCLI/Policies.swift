import CTaskGateSupport
import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

/// A task file's `policies` section, checked for shape before anything
/// loads: name -> { retry, breaker, limit, credentials, fallback, seed }.
/// A policy named "default" applies to every task that names none.
/// Times are seconds (`_s`), as `timeout_s` is.
struct PolicyDef {
    var name: String
    var node: Node
    var options = PolicyOptions()
    var credentialsPrefix: String? = nil
    var credentialsCooldown: Int64 = 60_000_000_000
    var fallback: (String, Node)? = nil
}

enum PolicyFile {
    static let sections: Set<String> = ["retry", "breaker", "limit", "credentials", "fallback", "seed", "description"]
    static let retryFields: Set<String> = ["max_attempts", "delays_s", "base_delay_s", "multiplier", "max_delay_s", "jitter",
                                           "jitter_factor", "failed_is_permanent", "ignore_retry_after", "budget_ratio",
                                           "budget_window_s", "budget_min_per_second"]
    static let breakerFields: Set<String> = ["failure_threshold", "success_threshold", "half_open_calls", "open_s", "window",
                                             "window_size", "minimum_calls", "failure_rate", "slow_call_s", "slow_call_rate"]
    static let limitFields: Set<String> = ["max_concurrent", "requests_per_minute", "cost", "burst"]
    static let credentialFields: Set<String> = ["env", "cooldown_s"]
    static let jitters: [String: Jitter] = ["none": .none, "proportional": .proportional, "full": .full, "equal": .equal,
                                            "decorrelated": .decorrelated]

    /// Parses `policies`; `configDelays` (the config's retry_delays, in
    /// seconds) are a retry's delays when it gives neither delays_s nor base_delay_s.
    static func parse(_ section: Node, file: String, configDelays: [Double]) throws(UsageError) -> [PolicyDef] {
        func at(_ n: Node) -> String { "\(file):\(n.position)" }
        guard let members = section.members else {
            throw UsageError("\(at(section)): field 'policies' must be an object of name: policy, got \(section.kind)")
        }
        var out: [PolicyDef] = []
        for (name, n) in members {
            guard PluginRegistry.validName(name) else {
                throw UsageError("\(at(n)): policy name '\(name)' must be 1-64 characters of A-Z a-z 0-9 _ -")
            }
            guard let fields = n.members else { throw UsageError("\(at(n)): policy '\(name)' must be an object, got \(n.kind)") }
            var def = PolicyDef(name: name, node: n)
            func bad(_ node: Node, _ path: String, _ why: String) -> UsageError {
                UsageError("\(at(node)): policy '\(name)' field '\(path)': \(why)")
            }
            for (k, v) in fields where !sections.contains(k) {
                throw UsageError("\(at(v)): policy '\(name)': unknown field '\(k)' (known: \(sections.sorted().joined(separator: ", ")))")
            }
            func object(_ key: String, _ known: Set<String>) throws(UsageError) -> Node? {
                guard let s = n[key] else { return nil }
                guard let m = s.members else { throw bad(s, key, "must be an object, got \(s.kind)") }
                for (k, v) in m where !known.contains(k) {
                    throw bad(v, "\(key).\(k)", "unknown (known: \(known.sorted().joined(separator: ", ")))")
                }
                return s
            }
            func number(_ s: Node, _ key: String, _ field: String, _ range: ClosedRange<Double>) throws(UsageError) -> Double? {
                guard let v = s[field] else { return nil }
                guard let d = v.double, d.isFinite, range.contains(d) else {
                    throw bad(v, "\(key).\(field)", "must be a number from \(JSONOut.number(range.lowerBound)) to \(JSONOut.number(range.upperBound)), got \(v.kind == "a number" ? v.number : v.kind)")
                }
                return d
            }
            func integer(_ s: Node, _ key: String, _ field: String, _ range: ClosedRange<Int64>) throws(UsageError) -> Int? {
                guard let v = s[field] else { return nil }
                guard let i = v.int64, range.contains(i) else {
                    throw bad(v, "\(key).\(field)", "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(v.kind == "a number" ? v.number : v.kind)")
                }
                return Int(i)
            }
            func flag(_ s: Node, _ key: String, _ field: String) throws(UsageError) -> Bool? {
                guard let v = s[field] else { return nil }
                guard let b = v.bool else { throw bad(v, "\(key).\(field)", "must be true or false, got \(v.kind)") }
                return b
            }
            func ns(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }

            if let r = try object("retry", retryFields) {
                var o = RetryOptions()
                o.maxAttempts = try integer(r, "retry", "max_attempts", 1...1_000_000) ?? 3
                o.backoff.jitter = .proportional
                if let j = r["jitter"] {
                    guard let s = j.string, let mode = jitters[s] else {
                        throw bad(j, "retry.jitter", "must be one of \(jitters.keys.sorted().joined(separator: ", ")), got \(j.string.map { "'\($0)'" } ?? j.kind)")
                    }
                    o.backoff.jitter = mode
                }
                if let f = try number(r, "retry", "jitter_factor", 0...1) { o.backoff.jitterFactor = f }
                if let d = r["delays_s"] {
                    guard let items = d.array, !items.isEmpty, items.count <= 1000 else {
                        throw bad(d, "retry.delays_s", "must be a list of 1 .. 1000 delays in seconds, got \(d.array.map { "\($0.count) items" } ?? d.kind)")
                    }
                    var delays: [Int64] = []
                    for (k, x) in items.enumerated() {
                        guard let s = x.double, s.isFinite, s >= 0, s <= 86_400 else {
                            throw bad(x, "retry.delays_s", "item \(k + 1) must be seconds from 0 to 86400, got \(x.kind == "a number" ? x.number : x.kind)")
                        }
                        delays.append(ns(s))
                    }
                    o.backoff.delays = delays
                } else if r["base_delay_s"] == nil {
                    o.backoff.delays = configDelays.map(ns)
                }
                if let b = try number(r, "retry", "base_delay_s", 0...86_400) { o.backoff.base = ns(b) }
                if let m = try number(r, "retry", "multiplier", 1...1000) { o.backoff.multiplier = m }
                if let c = try number(r, "retry", "max_delay_s", 0...86_400) {
                    o.backoff.cap = ns(c)
                } else if let longest = o.backoff.delays.max(), longest > o.backoff.cap {
                    o.backoff.cap = longest  // explicit delays are not cut to the default cap
                }
                if let p = try flag(r, "retry", "failed_is_permanent") { o.failedIsPermanent = p }
                if let i = try flag(r, "retry", "ignore_retry_after") { o.honorRetryAfter = !i }
                if let b = try number(r, "retry", "budget_ratio", 0...1000) { o.budgetRatio = b }
                if let w = try number(r, "retry", "budget_window_s", 0.001...3600) { o.budgetWindow = ns(w) }
                if let m = try number(r, "retry", "budget_min_per_second", 0...1e9) { o.budgetMinPerSecond = m }
                if let p = o.problem() { throw bad(r, "retry", p) }
                def.options.retry = o
            }
            if let b = try object("breaker", breakerFields) {
                var o = BreakerOptions()
                if let v = try integer(b, "breaker", "failure_threshold", 0...1_000_000) { o.failureThreshold = v }
                if let v = try integer(b, "breaker", "success_threshold", 1...1_000_000) { o.successThreshold = v }
                if let v = try integer(b, "breaker", "half_open_calls", 0...1_000_000) { o.halfOpenCalls = v }
                if let v = try number(b, "breaker", "open_s", 0...31_536_000) { o.openFor = ns(v) }
                let size = try integer(b, "breaker", "window_size", 1...100_000)
                if let w = b["window"] {
                    switch w.string {
                    case "none"?: o.window = .none
                    case "count"?: o.window = .count(size ?? 10)
                    case "time"?: o.window = .time(size ?? 60)
                    default: throw bad(w, "breaker.window", "must be \"none\", \"count\" or \"time\", got \(w.string.map { "'\($0)'" } ?? w.kind)")
                    }
                } else if let s = b["window_size"] {
                    throw bad(s, "breaker.window_size", "needs a window (\"count\" or \"time\")")
                }
                if let v = try integer(b, "breaker", "minimum_calls", 1...1_000_000) { o.minimumCalls = v }
                if let v = try number(b, "breaker", "failure_rate", 0...1) { o.failureRate = v }
                if let v = try number(b, "breaker", "slow_call_s", 0...31_536_000) { o.slowCall = ns(v) }
                if let v = try number(b, "breaker", "slow_call_rate", 0...1) { o.slowCallRate = v }
                if let p = o.problem() { throw bad(b, "breaker", p) }
                def.options.breaker = o
            }
            if let l = try object("limit", limitFields) {
                var o = LimitOptions()
                if let v = try integer(l, "limit", "max_concurrent", 0...1_000_000) { o.maxConcurrent = v }
                if let v = try number(l, "limit", "requests_per_minute", 0...1e12) { o.perMinute = v }
                if let v = try number(l, "limit", "cost", 0...1e12) { o.cost = v }
                if let v = try number(l, "limit", "burst", 0...1e12) { o.burst = v }
                if let p = o.problem() { throw bad(l, "limit", p) }
                def.options.limit = o
            }
            if let c = try object("credentials", credentialFields) {
                guard let e = c["env"] else { throw bad(c, "credentials", "needs 'env': the prefix of the environment variables holding the keys (secrets never go in a task file)") }
                guard let prefix = e.string, CredentialRing.isValidPrefix(prefix) else {
                    throw bad(e, "credentials.env", "must be an environment variable name ([A-Za-z0-9_]), got \(e.string.map { "'\($0)'" } ?? e.kind)")
                }
                def.credentialsPrefix = prefix
                if let s = try number(c, "credentials", "cooldown_s", 0...86_400) { def.credentialsCooldown = ns(s) }
            }
            if let f = n["fallback"] {
                guard let s = f.string, s.contains(".") else {
                    throw bad(f, "fallback", "must be a processor \"plugin.processor\", got \(f.string.map { "'\($0)'" } ?? f.kind)")
                }
                guard def.options.breaker != nil else { throw bad(f, "fallback", "runs while the breaker is open: the policy needs a 'breaker'") }
                def.fallback = (s, f)
            }
            if let s = n["seed"] {
                guard let v = s.uint64 ?? s.int64.flatMap({ $0 >= 0 ? UInt64($0) : nil }) else {
                    throw bad(s, "seed", "must be an integer from 0 to 2^64-1, got \(s.kind == "a number" ? s.number : s.kind)")
                }
                def.options.seed = v
            }
            if let d = n["description"], d.string == nil { throw bad(d, "description", "must be a string, got \(d.kind)") }
            out.append(def)
        }
        return out
    }
}

/// Breaker transitions reported from worker threads, written as events by the
/// main thread (one writer for stdout, in the order they happened).
final class BreakerEvents: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var pending: [(policy: String, key: String, from: BreakerState, to: BreakerState, generation: UInt64, time: Double)] = []

    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }

    func add(policy: String, key: String, from: BreakerState, to: BreakerState, generation: UInt64) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let t = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        pthread_mutex_lock(&mutex)
        pending.append((policy, key, from, to, generation, t))
        pthread_mutex_unlock(&mutex)
    }

    func take() -> [(policy: String, key: String, from: BreakerState, to: BreakerState, generation: UInt64, time: Double)] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let out = pending
        pending.removeAll()
        return out
    }
}
