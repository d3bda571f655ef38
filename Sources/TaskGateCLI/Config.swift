#if canImport(Glibc)
import Glibc
#endif

/// Where an effective configuration value came from; later sources win.
enum ConfigSource: Int, Comparable {
    case defaults, taskFile, configFile, environment, flag
    static func < (a: ConfigSource, b: ConfigSource) -> Bool { a.rawValue < b.rawValue }
}

/// A configuration value, already checked.
enum ConfigValue: Equatable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case doubles([Double])

    var text: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return JSONOut.number(v)
        case .bool(let v): return String(v)
        case .string(let v): return v
        case .doubles(let v): return v.map(JSONOut.number).joined(separator: ",")
        }
    }

    var json: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return JSONOut.number(v)
        case .bool(let v): return String(v)
        case .string(let v): return JSONOut.quote(v)
        case .doubles(let v): return "[" + v.map(JSONOut.number).joined(separator: ",") + "]"
        }
    }
}

/// One configuration key: the seed's names (seed 003's parallel-execution
/// config and its environment variables), under the TASKGATE_ prefix.
struct ConfigKey {
    enum Kind { case int(ClosedRange<Int>), seconds, bool, choice([String]), delays, text }
    let name: String
    let environment: String
    let flag: String
    let kind: Kind
    let defaultValue: ConfigValue
    let help: String

    /// Checks a value written as text (environment, flags).
    func parse(text: String) -> Result<ConfigValue, ConfigProblem> {
        let t = text.trimmingSpaces
        switch kind {
        case .int:
            guard let v = Int(t) else { return .failure(.init("'\(text)' is not an integer")) }
            return check(.int(v))
        case .seconds:
            guard let v = Double(t) else { return .failure(.init("'\(text)' is not a number of seconds")) }
            return check(.double(v))
        case .bool:
            switch t.lowercased() {
            case "1", "true", "yes", "on": return .success(.bool(true))
            case "0", "false", "no", "off": return .success(.bool(false))
            default: return .failure(.init("'\(text)' is not a boolean (true/false, 1/0, yes/no, on/off)"))
            }
        case .choice:
            return check(.string(name == "log_level" ? t.uppercased() : t))
        case .text:
            return check(.string(t))
        case .delays:
            var out: [Double] = []
            for part in t.split(separator: ",", omittingEmptySubsequences: false) {
                guard let d = Double(String(part).trimmingSpaces) else { return .failure(.init("'\(part)' in '\(text)' is not a number")) }
                out.append(d)
            }
            return check(.doubles(out))
        }
    }

    /// Checks a value from a JSON config section.
    func parse(json n: Node) -> Result<ConfigValue, ConfigProblem> {
        switch kind {
        case .int:
            guard let v = n.int64, let i = Int(exactly: v) else { return .failure(.init("expected an integer, got \(n.kind)")) }
            return check(.int(i))
        case .seconds:
            guard let v = n.double else { return .failure(.init("expected a number of seconds, got \(n.kind)")) }
            return check(.double(v))
        case .bool:
            guard let v = n.bool else { return .failure(.init("expected true or false, got \(n.kind)")) }
            return .success(.bool(v))
        case .choice:
            guard let v = n.string else { return .failure(.init("expected a string, got \(n.kind)")) }
            return check(.string(name == "log_level" ? v.uppercased() : v))
        case .text:
            guard let v = n.string else { return .failure(.init("expected a string, got \(n.kind)")) }
            return check(.string(v))
        case .delays:
            guard let a = n.array else { return .failure(.init("expected an array of seconds, got \(n.kind)")) }
            var out: [Double] = []
            for (k, x) in a.enumerated() {
                guard let d = x.double else { return .failure(.init("item \(k + 1) is \(x.kind), not a number")) }
                out.append(d)
            }
            return check(.doubles(out))
        }
    }

    private func check(_ v: ConfigValue) -> Result<ConfigValue, ConfigProblem> {
        switch (kind, v) {
        case (.int(let r), .int(let i)):
            return r.contains(i) ? .success(v) : .failure(.init("\(i) is out of range (\(r.lowerBound) .. \(r.upperBound))"))
        case (.seconds, .double(let d)):
            return d.isFinite && d > 0 && d <= 31_536_000 ? .success(v) : .failure(.init("\(JSONOut.number(d)) must be more than 0 seconds and at most a year"))
        case (.choice(let options), .string(let s)):
            return options.contains(s) ? .success(v) : .failure(.init("'\(s)' is not one of \(options.joined(separator: ", "))"))
        case (.text, .string(let s)):
            if s.isEmpty { return .failure(.init("the path is empty (use 'off' for no cross-process locks)")) }
            if s.utf8.contains(0) { return .failure(.init("the path contains a NUL byte")) }
            return .success(v)
        case (.delays, .doubles(let ds)):
            if ds.isEmpty { return .failure(.init("the list is empty")) }
            if ds.count > 100 { return .failure(.init("more than 100 delays")) }
            for d in ds where !(d.isFinite && d >= 0 && d <= 86_400) {
                return .failure(.init("delay \(JSONOut.number(d)) must be between 0 and 86400 seconds"))
            }
            return .success(v)
        default:
            return .success(v)
        }
    }
}

struct ConfigProblem: Error {
    var message: String
    init(_ m: String) { message = m }
}

enum ConfigKeys {
    static let all: [ConfigKey] = [
        ConfigKey(name: "max_parallel_tasks", environment: "TASKGATE_MAX_PARALLEL_TASKS", flag: "--max-parallel-tasks",
                  kind: .int(1...1024), defaultValue: .int(5), help: "tasks running at once"),
        ConfigKey(name: "workers", environment: "TASKGATE_WORKERS", flag: "--workers",
                  kind: .int(0...1024), defaultValue: .int(0), help: "worker threads (0: as many as max_parallel_tasks)"),
        ConfigKey(name: "max_context_complexity", environment: "TASKGATE_MAX_CONTEXT_COMPLEXITY", flag: "--max-context-complexity",
                  kind: .int(1...1_000_000), defaultValue: .int(30), help: "budget for the sum of task difficulties in one parallel group (gates)"),
        ConfigKey(name: "lock_timeout_seconds", environment: "TASKGATE_LOCK_TIMEOUT", flag: "--lock-timeout",
                  kind: .seconds, defaultValue: .double(30), help: "how long a file lock may be held before it counts as stale (locks)"),
        ConfigKey(name: "lock_dir", environment: "TASKGATE_LOCK_DIR", flag: "--lock-dir",
                  kind: .text, defaultValue: .string(".taskgate/locks"),
                  help: "cross-process lock directory for declared reads and writes, from the task file's folder ('off': none)"),
        ConfigKey(name: "cache_dir", environment: "TASKGATE_CACHE_DIR", flag: "--cache-dir",
                  kind: .text, defaultValue: .string(".taskgate/cache"),
                  help: "result cache for tasks that declare 'cache', from the task file's folder ('off': tasks with a cache are refused)"),
        ConfigKey(name: "retry_delays", environment: "TASKGATE_RETRY_DELAYS", flag: "--retry-delays",
                  kind: .delays, defaultValue: .doubles([0.1, 0.5, 1.0, 2.0]), help: "seconds to wait before each retry, for policies whose retry gives neither delays_s nor base_delay_s"),
        ConfigKey(name: "conflict_resolution", environment: "TASKGATE_CONFLICT_RESOLUTION", flag: "--conflict-resolution",
                  kind: .choice(["sequential", "fail"]), defaultValue: .string("sequential"),
                  help: "tasks writing the same file: run them one at a time, or refuse the task file"),
        ConfigKey(name: "enable_monitoring", environment: "TASKGATE_ENABLE_MONITORING", flag: "--enable-monitoring",
                  kind: .bool, defaultValue: .bool(true), help: "live progress on a terminal and the end-of-run summary"),
        ConfigKey(name: "checkpoint_frequency", environment: "TASKGATE_CHECKPOINT_FREQUENCY", flag: "--checkpoint-frequency",
                  kind: .int(1...1_000_000), defaultValue: .int(3), help: "tasks between checkpoints (the durable ledger)"),
        ConfigKey(name: "log_level", environment: "TASKGATE_LOG_LEVEL", flag: "--log-level",
                  kind: .choice(["DEBUG", "INFO", "WARNING", "ERROR"]), defaultValue: .string("INFO"),
                  help: "DEBUG also prints a line per ended task on stderr; ERROR only errors"),
    ]

    static func key(named n: String) -> ConfigKey? { all.first { $0.name == n } }
    static func key(flag f: String) -> ConfigKey? { all.first { $0.flag == f } }
}

/// The effective configuration: each key's value and where it came from.
struct Config {
    var values: [String: (ConfigValue, ConfigSource, String)] = [:]

    init() {
        for k in ConfigKeys.all { values[k.name] = (k.defaultValue, .defaults, "default") }
    }

    subscript(_ name: String) -> ConfigValue { values[name]!.0 }

    var maxParallel: Int { if case .int(let v) = self["max_parallel_tasks"] { return v }; return 5 }
    var workers: Int { if case .int(let v) = self["workers"] { return v }; return 0 }
    var monitoring: Bool { if case .bool(let v) = self["enable_monitoring"] { return v }; return true }
    var logLevel: String { if case .string(let v) = self["log_level"] { return v }; return "INFO" }
    var retryDelays: [Double] { if case .doubles(let v) = self["retry_delays"] { return v }; return [0.1, 0.5, 1.0, 2.0] }
    var lockDir: String { if case .string(let v) = self["lock_dir"] { return v }; return ".taskgate/locks" }
    var cacheDir: String { if case .string(let v) = self["cache_dir"] { return v }; return ".taskgate/cache" }
    var lockTimeout: Double { if case .double(let v) = self["lock_timeout_seconds"] { return v }; return 30 }
    var maxComplexity: Int { if case .int(let v) = self["max_context_complexity"] { return v }; return 30 }
    var conflictResolution: String { if case .string(let v) = self["conflict_resolution"] { return v }; return "sequential" }

    mutating func set(_ name: String, _ v: ConfigValue, _ source: ConfigSource, _ origin: String) {
        if let cur = values[name], cur.1 > source { return }
        values[name] = (v, source, origin)
    }

    /// Applies a JSON config object; errors name the file, position and key.
    mutating func apply(json section: Node, source: ConfigSource, file: String) throws(UsageError) {
        guard let members = section.members else {
            throw UsageError("\(file):\(section.position): config must be an object, got \(section.kind)")
        }
        for (key, n) in members {
            guard let k = ConfigKeys.key(named: key) else {
                throw UsageError("\(file):\(n.position): config key '\(key)' is unknown (known: \(ConfigKeys.all.map(\.name).joined(separator: ", ")))")
            }
            switch k.parse(json: n) {
            case .success(let v): set(key, v, source, "\(file):\(n.position)")
            case .failure(let p): throw UsageError("\(file):\(n.position): config key '\(key)': \(p.message)")
            }
        }
    }

    /// Applies TASKGATE_* environment variables.
    mutating func applyEnvironment() throws(UsageError) {
        for k in ConfigKeys.all {
            guard let raw = getenv(k.environment) else { continue }
            let text = String(cString: raw)
            switch k.parse(text: text) {
            case .success(let v): set(k.name, v, .environment, "environment \(k.environment)")
            case .failure(let p): throw UsageError("environment variable \(k.environment) (config key '\(k.name)'): \(p.message)")
            }
        }
    }

    mutating func apply(flag k: ConfigKey, text: String) throws(UsageError) {
        switch k.parse(text: text) {
        case .success(let v): set(k.name, v, .flag, "flag \(k.flag)")
        case .failure(let p): throw UsageError("\(k.flag) (config key '\(k.name)'): \(p.message)")
        }
    }
}

/// Bad input or usage: exit status 2.
struct UsageError: Error {
    var message: String
    init(_ m: String) { message = m }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
