import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

/// One task of a task file, checked for shape (arguments are checked against
/// the processor's signature once plugins are loaded).
struct TaskDef {
    var id: String
    var processor: String
    var args: [Node]
    var argsNode: Node?
    var priority: Int32 = 0
    var dependsOn: [String] = []
    var reads: [String] = []
    var writes: [String] = []
    /// Shared mutable state the task touches (keys such as "db:orders"): two
    /// tasks naming one key never run at once (gates: shared state).
    var shared: [String] = []
    var difficulty: Int32 = 0
    var timeoutSeconds: Double = 0
    var group: String? = nil
    var critical = false
    var payload: String? = nil
    /// The name of a policy in the file's `policies`; nil: "default" if there is one.
    var policy: (String, Node)? = nil
    /// The key of its breaker and limits; nil: the processor's name.
    var key: String? = nil
    /// `cache: {"ttl_s": N, "key": "v2"}`: reuse the previous result (seed 002 §4).
    var cache: TaskCacheRequest? = nil
    var node: Node
}

/// One entry of the task file's `aggregate` section.
struct AggregateDef {
    var name: String
    var options: AggregationOptions
    /// Task indices (file order) whose outputs it combines.
    var from: [Int]
    var node: Node
}

struct TaskFile {
    var path: String          // as given
    var folder: String        // absolute folder of the file
    var root: Node
    var config: Node?
    var policies: Node?
    /// alias -> (path as written, node)
    var plugins: [(String, String, Node)] = []
    var tasks: [TaskDef] = []
    /// `groups`: partial-failure policies by group name (seed 002 §6).
    var groups: [(String, GroupPolicy, Node)] = []
    /// `aggregate`: named aggregations of task outputs (seed 002 §5).
    var aggregates: [AggregateDef] = []

    static let taskFields: Set<String> = ["id", "processor", "args", "priority", "depends_on", "reads", "writes",
                                          "difficulty", "timeout_s", "group", "critical", "payload", "description",
                                          "policy", "key", "shared", "cache"]

    /// Reads and checks a task file. Errors name the file, line:column, task and field.
    /// `cycles: false` leaves dependency cycles to the caller (validate reports them).
    static func load(_ path: String, cycles: Bool = true) throws(UsageError) -> TaskFile {
        let bytes = try readWholeFile(path, what: "task file")
        let root: Node
        do { root = try JSONReader.parse(bytes) } catch {
            throw UsageError("\(path):\(error.line):\(error.column): invalid JSON: \(error.message)")
        }
        guard let resolved = realpath(path, nil) else { throw UsageError("\(path): \(errnoText())") }
        var full = String(cString: resolved)
        free(resolved)
        if let slash = full.lastIndex(of: "/") { full = String(full[..<slash]) }
        if full.isEmpty { full = "/" }
        var f = TaskFile(path: path, folder: full, root: root, config: nil)
        try f.check(cycles: cycles)
        return f
    }

    private func at(_ n: Node) -> String { "\(path):\(n.position)" }

    private mutating func check(cycles: Bool) throws(UsageError) {
        guard let top = root.members else { throw UsageError("\(at(root)): a task file is a JSON object, got \(root.kind)") }
        for (k, n) in top where !["version", "config", "plugins", "policies", "groups", "aggregate", "tasks", "description", "$schema"].contains(k) {
            throw UsageError("\(at(n)): unknown top-level field '\(k)' (known: version, config, plugins, policies, groups, aggregate, tasks, description, $schema)")
        }
        for k in ["description", "$schema"] {
            if let n = root[k], n.string == nil { throw UsageError("\(at(n)): field '\(k)' must be a string, got \(n.kind)") }
        }
        guard let v = root["version"] else { throw UsageError("\(at(root)): field 'version' is missing (write \"version\": 1)") }
        guard v.int64 == 1 else { throw UsageError("\(at(v)): field 'version' must be 1 (this taskgate reads task file version 1), got \(v.kind == "a number" ? describe(v) : v.kind)") }
        config = root["config"]
        policies = root["policies"]
        if let p = policies, p.members == nil {
            throw UsageError("\(at(p)): field 'policies' must be an object of name: policy, got \(p.kind)")
        }
        if let p = root["plugins"] {
            guard let members = p.members else { throw UsageError("\(at(p)): field 'plugins' must be an object of alias: path, got \(p.kind)") }
            for (alias, n) in members {
                guard PluginRegistry.validName(alias) else { throw UsageError("\(at(n)): plugin alias '\(alias)' must be 1-64 characters of A-Z a-z 0-9 _ -") }
                guard let s = n.string, !s.isEmpty else {
                    throw UsageError("\(at(n)): plugin '\(alias)': the path must be a non-empty string, got \(n.string != nil ? "an empty one" : n.kind)")
                }
                guard !s.utf8.contains(0) else { throw UsageError("\(at(n)): plugin '\(alias)': the path contains a NUL character") }
                plugins.append((alias, s, n))
            }
        }
        guard let t = root["tasks"] else { throw UsageError("\(at(root)): field 'tasks' is missing") }
        guard let list = t.array else { throw UsageError("\(at(t)): field 'tasks' must be an array, got \(t.kind)") }
        var seen: [String: Node] = [:]
        for (k, n) in list.enumerated() {
            let def = try task(n, index: k)
            if let first = seen[def.id] {
                throw UsageError("\(at(n)): task '\(def.id)': the id is already used by the task at \(first.position)")
            }
            seen[def.id] = n
            tasks.append(def)
        }
        for def in tasks {
            for (k, d) in def.dependsOn.enumerated() where seen[d] == nil {
                let dn = def.node["depends_on"]!.array![k]
                throw UsageError("\(at(dn)): task '\(def.id)' field 'depends_on': no task has the id '\(d)'")
            }
        }
        try readGroups()
        try readAggregates(ids: seen)
        if cycles { try checkCycles() }
    }

    /// `"groups": {"fetch": {"min_required": 3 | "50%" | 0.5, "critical": true, "cancel_all": false}}`.
    private mutating func readGroups() throws(UsageError) {
        guard let g = root["groups"] else { return }
        guard let members = g.members else { throw UsageError("\(at(g)): field 'groups' must be an object of name: policy, got \(g.kind)") }
        let used = Set(tasks.compactMap(\.group))
        for (name, n) in members {
            let who = "group '\(name)'"
            guard !name.isEmpty, !name.utf8.contains(0) else { throw UsageError("\(at(n)): a group name must be non-empty text without NUL") }
            guard let fields = n.members else { throw UsageError("\(at(n)): \(who) must be an object, got \(n.kind)") }
            var p = GroupPolicy()
            for (k, v) in fields {
                switch k {
                case "critical", "cancel_all":
                    guard let b = v.bool else { throw UsageError("\(at(v)): \(who) field '\(k)' must be true or false, got \(v.kind)") }
                    if k == "critical" { p.critical = b } else { p.cancelAll = b }
                case "min_required":
                    if let t = v.string, t.hasSuffix("%"), let pct = Double(t.dropLast()), pct > 0, pct <= 100 {
                        p.minFraction = pct / 100
                    } else if v.isIntegerText, let i = v.int64, i >= 0, i <= Int64(UInt32.max) {
                        p.minRequired = Int(i)
                    } else if let d = v.double, d > 0, d < 1 {
                        p.minFraction = d
                    } else {
                        throw UsageError("\(at(v)): \(who) field 'min_required' must be a count (3), a percentage (\"50%\") or a fraction (0.5), got \(v.kind == "a string" ? "'\(v.string!)'" : v.kind)")
                    }
                default:
                    throw UsageError("\(at(v)): \(who): unknown field '\(k)' (known: critical, cancel_all, min_required)")
                }
            }
            if p.cancelAll && !p.critical { throw UsageError("\(at(n)): \(who): cancel_all needs \"critical\": true") }
            guard used.contains(name) else { throw UsageError("\(at(n)): \(who): no task names this group (set a task's \"group\")") }
            groups.append((name, p, n))
        }
    }

    /// `"aggregate": {"deps": {"kind": "union", "from": "fetch" | ["t1", "t2"], "threshold": 0.4, "min_required": 2}}`.
    private mutating func readAggregates(ids: [String: Node]) throws(UsageError) {
        guard let a = root["aggregate"] else { return }
        guard let members = a.members else { throw UsageError("\(at(a)): field 'aggregate' must be an object of name: aggregation, got \(a.kind)") }
        let groupNames = Set(tasks.compactMap(\.group))
        for (name, n) in members {
            let who = "aggregate '\(name)'"
            guard let fields = n.members else { throw UsageError("\(at(n)): \(who) must be an object, got \(n.kind)") }
            var def = AggregateDef(name: name, options: AggregationOptions(kind: .union), from: [], node: n)
            var sawFrom = false
            for (k, v) in fields {
                switch k {
                case "kind":
                    guard let t = v.string, let kind = AggregationKind(rawValue: t) else {
                        throw UsageError("\(at(v)): \(who) field 'kind' must be one of \(AggregationKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(v.string.map { "'\($0)'" } ?? v.kind)")
                    }
                    def.options.kind = kind
                case "threshold":
                    guard let d = v.double, d > 0, d <= 1 else { throw UsageError("\(at(v)): \(who) field 'threshold' must be a number above 0 and at most 1, got \(v.kind)") }
                    def.options.threshold = d
                case "min_required":
                    guard v.isIntegerText, let i = v.int64, i >= 0, i <= Int64(Int32.max) else {
                        throw UsageError("\(at(v)): \(who) field 'min_required' must be a whole number 0 or more, got \(v.kind)")
                    }
                    def.options.minRequired = Int(i)
                case "from":
                    sawFrom = true
                    if let g = v.string {
                        guard groupNames.contains(g) else { throw UsageError("\(at(v)): \(who) field 'from': no task is in group '\(g)'") }
                        def.from = tasks.indices.filter { tasks[$0].group == g }
                    } else if let list = v.array, !list.isEmpty {
                        for item in list {
                            guard let id = item.string, ids[id] != nil else {
                                throw UsageError("\(at(item)): \(who) field 'from': no task has the id \(item.string.map { "'\($0)'" } ?? item.kind)")
                            }
                            def.from.append(tasks.firstIndex { $0.id == id }!)
                        }
                    } else {
                        throw UsageError("\(at(v)): \(who) field 'from' must be a group name or a non-empty list of task ids, got \(v.kind)")
                    }
                default:
                    throw UsageError("\(at(v)): \(who): unknown field '\(k)' (known: kind, from, threshold, min_required)")
                }
            }
            guard sawFrom else { throw UsageError("\(at(n)): \(who): field 'from' is missing (a group name or a list of task ids)") }
            aggregates.append(def)
        }
    }

    /// Finds a dependency cycle before anything loads, naming it and where
    /// it closes (the engine would refuse it too, without a position).
    private func checkCycles() throws(UsageError) {
        var index: [String: Int] = [:]
        for (k, t) in tasks.enumerated() { index[t.id] = k }
        var state = [UInt8](repeating: 0, count: tasks.count)  // 0 new, 1 on the path, 2 done
        var path: [Int] = []
        for start in 0..<tasks.count where state[start] == 0 {
            // Iterative depth-first search: (task, next dependency to visit).
            var stack: [(Int, Int)] = [(start, 0)]
            state[start] = 1
            path.append(start)
            while let (t, next) = stack.last {
                let deps = tasks[t].dependsOn
                if next == deps.count {
                    stack.removeLast()
                    path.removeLast()
                    state[t] = 2
                    continue
                }
                stack[stack.count - 1].1 += 1
                let d = index[deps[next]]!
                if state[d] == 1 {
                    let from = path.lastIndex(of: d)!
                    let cycle = path[from...].map { tasks[$0].id } + [tasks[d].id]
                    let n = tasks[t].node["depends_on"]!.array![next]
                    throw UsageError("\(at(n)): task '\(tasks[t].id)' field 'depends_on': dependency cycle: \(cycle.joined(separator: " -> "))")
                }
                if state[d] == 0 {
                    state[d] = 1
                    path.append(d)
                    stack.append((d, 0))
                }
            }
        }
    }

    private func describe(_ n: Node) -> String {
        if case .number(let t) = n.value { return t }
        return n.kind
    }

    private func task(_ n: Node, index k: Int) throws(UsageError) -> TaskDef {
        guard let members = n.members else { throw UsageError("\(at(n)): tasks[\(k)] must be an object, got \(n.kind)") }
        guard let idNode = n["id"] else { throw UsageError("\(at(n)): tasks[\(k)] has no 'id'") }
        guard let id = idNode.string, !id.isEmpty, id.utf8.count <= 256 else {
            throw UsageError("\(at(idNode)): tasks[\(k)] field 'id' must be a string of 1-256 bytes, got \(idNode.string.map { $0.isEmpty ? "an empty one" : "\($0.utf8.count) bytes" } ?? idNode.kind)")
        }
        guard !id.utf8.contains(0) else { throw UsageError("\(at(idNode)): tasks[\(k)] field 'id' contains a NUL character") }
        let who = "task '\(id)'"
        func bad(_ node: Node, _ field: String, _ why: String) -> UsageError { UsageError("\(at(node)): \(who) field '\(field)': \(why)") }
        for (key, v) in members where !TaskFile.taskFields.contains(key) {
            throw UsageError("\(at(v)): \(who): unknown field '\(key)' (known: \(TaskFile.taskFields.sorted().joined(separator: ", ")))")
        }
        guard let pn = n["processor"] else { throw UsageError("\(at(n)): \(who) has no 'processor'") }
        guard let proc = pn.string, proc.contains(".") else {
            throw bad(pn, "processor", "must be a string \"plugin.processor\", got \(pn.kind == "a string" ? "'\(pn.string!)'" : pn.kind)")
        }
        var def = TaskDef(id: id, processor: proc, args: [], argsNode: n["args"], node: n)
        if let a = n["args"] {
            guard let items = a.array else { throw bad(a, "args", "must be an array, got \(a.kind)") }
            def.args = items
        }
        if let p = n["priority"] {
            switch (p.string, p.int64) {
            case ("high", _): def.priority = 1
            case ("normal", _): def.priority = 0
            case ("low", _): def.priority = -1
            case (nil, let i?) where i >= -1 && i <= 1: def.priority = Int32(i)
            default: throw bad(p, "priority", "must be \"high\", \"normal\", \"low\" or -1, 0, 1")
            }
        }
        func strings(_ field: String) throws(UsageError) -> [String] {
            guard let x = n[field] else { return [] }
            guard let items = x.array else { throw bad(x, field, "must be an array of strings, got \(x.kind)") }
            var out: [String] = []
            for (j, item) in items.enumerated() {
                guard let s = item.string, !s.isEmpty else {
                    throw bad(item, field, "item \(j + 1) must be a non-empty string, got \(item.string != nil ? "an empty one" : item.kind)")
                }
                guard !s.utf8.contains(0) else { throw bad(item, field, "item \(j + 1) contains a NUL character") }
                out.append(s)
            }
            return out
        }
        def.dependsOn = try strings("depends_on")
        if def.dependsOn.contains(id) {
            throw bad(n["depends_on"]!, "depends_on", "a task cannot depend on itself")
        }
        def.reads = try strings("reads")
        def.writes = try strings("writes")
        def.shared = try strings("shared")
        if let d = n["difficulty"] {
            guard let v = d.int64, v >= 0, v <= 1_000_000 else { throw bad(d, "difficulty", "must be an integer 0 .. 1000000") }
            def.difficulty = Int32(v)
        }
        if let t = n["timeout_s"] {
            guard let v = t.double, v.isFinite, v > 0, v <= 31_536_000 else { throw bad(t, "timeout_s", "must be a number of seconds above 0 (at most a year)") }
            def.timeoutSeconds = v
        }
        if let g = n["group"] {
            guard let s = g.string, !s.isEmpty else { throw bad(g, "group", "must be a non-empty string, got \(g.string != nil ? "an empty one" : g.kind)") }
            guard !s.utf8.contains(0) else { throw bad(g, "group", "contains a NUL character") }
            def.group = s
        }
        if let c = n["critical"] {
            guard let b = c.bool else { throw bad(c, "critical", "must be true or false, got \(c.kind)") }
            def.critical = b
        }
        if let p = n["payload"] {
            guard let s = p.string else { throw bad(p, "payload", "must be a string, got \(p.kind)") }
            guard !s.utf8.contains(0) else { throw bad(p, "payload", "contains a NUL character (payloads are text)") }
            def.payload = s
        }
        if let d = n["description"], d.string == nil { throw bad(d, "description", "must be a string, got \(d.kind)") }
        if let p = n["policy"] {
            guard let s = p.string, !s.isEmpty else { throw bad(p, "policy", "must be the name of a policy in 'policies', got \(p.string != nil ? "an empty string" : p.kind)") }
            guard policies?[s] != nil else {
                let known = policies?.members?.map(\.0) ?? []
                throw bad(p, "policy", "no policy is named '\(s)' in 'policies'" + (known.isEmpty ? " (the file has none)" : " (known: \(known.joined(separator: ", ")))"))
            }
            def.policy = (s, p)
        }
        if let kn = n["key"] {
            guard let s = kn.string, !s.isEmpty, s.utf8.count <= 256 else { throw bad(kn, "key", "must be a string of 1-256 bytes, got \(kn.string != nil ? "\(kn.string!.utf8.count) bytes" : kn.kind)") }
            guard !s.utf8.contains(0) else { throw bad(kn, "key", "contains a NUL character") }
            def.key = s
        }
        if let c = n["cache"] {
            guard let members = c.members else { throw bad(c, "cache", "must be an object such as {\"ttl_s\": 3600}, got \(c.kind)") }
            for (k, v) in members where k != "ttl_s" && k != "key" {
                throw bad(v, "cache.\(k)", "is not a cache field (known: ttl_s, key)")
            }
            guard let t = c["ttl_s"] else { throw bad(c, "cache", "needs ttl_s: how many seconds a stored result stays usable") }
            guard let ttl = t.double, ttl.isFinite, ttl > 0, ttl <= 315_360_000 else {
                throw bad(t, "cache.ttl_s", "must be a number of seconds above 0 (at most ten years)")
            }
            var key = ""
            if let kn = c["key"] {
                guard let s = kn.string, s.utf8.count <= 4096, !s.utf8.contains(0) else {
                    throw bad(kn, "cache.key", "must be a string of at most 4096 bytes without NUL, got \(kn.kind)")
                }
                key = s
            }
            def.cache = TaskCacheRequest(ttl: ttl, key: key)
        }
        return def
    }
}

func errnoText() -> String { String(cString: strerror(errno)).lowercased() }

/// The whole file, or a usage error naming it.
func readWholeFile(_ path: String, what: String) throws(UsageError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw UsageError("\(path): cannot open the \(what): \(errnoText())") }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { throw UsageError("\(path): the \(what) is a directory") }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
        if n < 0 {
            if errno == EINTR { continue }
            throw UsageError("\(path): cannot read the \(what): \(errnoText())")
        }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
        if out.count > 256 << 20 { throw UsageError("\(path): the \(what) is larger than 256 MiB") }
    }
    return out
}
