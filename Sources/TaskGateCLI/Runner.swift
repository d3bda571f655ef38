import CTaskGateSupport
import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Interrupts

/// SIGINT count (SIGTERM counts as two: abort), written by the signal thread.
nonisolated(unsafe) let interrupts: UnsafeMutablePointer<UInt32> = {
    let p = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts: the
/// pool's workers) and takes them in a thread of their own with sigwait, so
/// the work is never interrupted mid-call and no async-signal-safety rules
/// apply to what the run does about them.
func startSignalThread() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    pthread_sigmask(SIG_BLOCK, &set, nil)
    var thread = pthread_t()
    pthread_create(&thread, nil, { _ in
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        while true {
            var sig: Int32 = 0
            if sigwait(&set, &sig) != 0 { continue }
            tgs_add_sc_u32(interrupts, sig == SIGTERM ? 2 : 1)
        }
    }, nil)
    pthread_detach(thread)
}

// MARK: - Output helpers

struct Stream {
    let fd: Int32
    func write(_ s: String) {
        var bytes = Array(s.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }
    func line(_ s: String) { write(s + "\n") }
}

let stdoutStream = Stream(fd: 1)
let stderrStream = Stream(fd: 2)

func base64(_ bytes: UnsafeRawBufferPointer) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i + 3 <= bytes.count {
        let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
        out += [table[Int(v >> 18)], table[Int(v >> 12 & 63)], table[Int(v >> 6 & 63)], table[Int(v & 63)]]
        i += 3
    }
    let rest = bytes.count - i
    if rest == 1 {
        let v = UInt32(bytes[i]) << 16
        out += [table[Int(v >> 18)], table[Int(v >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
    } else if rest == 2 {
        let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
        out += [table[Int(v >> 18)], table[Int(v >> 12 & 63)], table[Int(v >> 6 & 63)], UInt8(ascii: "=")]
    }
    return String(decoding: out, as: UTF8.self)
}

/// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
func writeAtomically(_ path: String, _ text: String) throws(UsageError) {
    let tmp = "\(path).tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw UsageError("\(path): cannot write: \(errnoText())") }
    let bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n < 0 {
            if errno == EINTR { continue }
            let e = errnoText()
            close(fd); unlink(tmp)
            throw UsageError("\(path): cannot write: \(e)")
        }
        off += n
    }
    fsync(fd)
    close(fd)
    guard rename(tmp, path) == 0 else {
        let e = errnoText()
        unlink(tmp)
        throw UsageError("\(path): cannot write: \(e)")
    }
}

func absolute(_ path: String, from folder: String) -> String {
    path.hasPrefix("/") ? path : (folder == "/" ? "/" : folder + "/") + path
}

// MARK: - The run

struct RunOptions {
    var file: String
    var json = false
    var quiet = false
    var resultsPath: String? = nil
    /// run --timeline PATH: the run drawn as one HTML page.
    var timelinePath: String? = nil
    /// run --metrics PATH: Prometheus text exposition of the run.
    var metricsPath: String? = nil
    var configPath: String? = nil
    /// run --validate: the fallback ("batches" or "sequential"), nil: no validation.
    var validate: String? = nil
    var progressive = false
    var flags: [(ConfigKey, String)] = []
}

/// C strings and buffers kept alive for the one submit call.
final class CStrings {
    private var owned: [UnsafeMutableRawPointer] = []
    func make(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        owned.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }
    func adopt(_ p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        owned.append(p)
        return p
    }
    deinit { for p in owned { free(p) } }
}

final class Runner {
    let options: RunOptions
    let file: TaskFile
    var config: Config
    let pool: TaskPool
    var processors: [PluginProcessor] = []   // per task
    var policies: [String: Policy] = [:]
    var taskPolicies: [(name: String, policy: Policy)?] = []  // per task
    let breakerEvents = BreakerEvents()
    let runId: String
    let started = tgs_monotonic_ns()
    let tty: Bool
    let color: Bool
    var counts = [TaskStatus: Int]()
    var ended = 0
    var interruptMode = 0
    var lastProgress: Int64 = 0

    init(options: RunOptions, file: TaskFile, config: Config) throws(UsageError) {
        self.options = options
        self.file = file
        self.config = config
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        runId = "run-\(String(now.tv_sec, radix: 16))-\(String(getpid(), radix: 16))"
        tty = isatty(2) != 0
        let noColor = getenv("NO_COLOR").map { String(cString: $0) }.map { !$0.isEmpty } ?? false
        color = tty && !noColor
        let workers = config.workers == 0 ? config.maxParallel : config.workers
        var pc = PoolConfiguration(workers: workers, maxConcurrency: config.maxParallel)
        if config.lockDir != "off", file.tasks.contains(where: { !$0.reads.isEmpty || !$0.writes.isEmpty }) {
            let dir = absolute(config.lockDir, from: file.folder)
            do {
                pc.lockDirectory = try LockDirectory(dir)
            } catch {
                throw UsageError("lock_dir \(dir): \(error.description)")
            }
            pc.lockHoldTimeout = config.lockTimeout
        }
        if let t = file.tasks.first(where: { $0.cache != nil }) {
            guard config.cacheDir != "off" else {
                throw UsageError("\(file.path): task '\(t.id)' declares a cache, but cache_dir is 'off'")
            }
            let dir = absolute(config.cacheDir, from: file.folder)
            do {
                pc.resultCache = try ResultCache(dir)
            } catch {
                throw UsageError("cache_dir \(dir): \(error.description)")
            }
        }
        do {
            pool = try TaskPool(pc)
        } catch {
            throw UsageError("cannot start the worker pool: \(error.description)")
        }
        for (name, policy, _) in file.groups {
            var failure: TaskGateError? = nil
            name.withCString { n in
                do { try pool.setGroup(n, policy) } catch { failure = (error as? TaskGateError) ?? .invalid("\(error)") }
            }
            if let failure { throw UsageError("\(file.path): group '\(name)': \(failure.description)") }
        }
    }

    // MARK: groups and aggregates (seed 002 §5, §6)

    /// Every group the file gives a policy, judged now.
    func groupOutcomes() -> [GroupOutcome] {
        file.groups.compactMap { g in g.0.withCString { n in try? pool.groupOutcome(n) } }
    }

    /// The file's aggregations over the tasks' outputs (parsed as JSON).
    func aggregateReports() -> [(String, AggregationReport?, String?)] {
        file.aggregates.map { def in
            let inputs = def.from.map { k -> AggregationInput in
                let id = file.tasks[k].id
                guard let i = id.withCString({ n in try? pool.lookup(n) }) else {
                    return AggregationInput(id: id, value: nil, status: "not_run", error: "the task was not submitted")
                }
                return AggregationInput(id: id, result: pool.result(i))
            }
            do { return (def.name, try aggregate(inputs, options: def.options), nil) } catch { return (def.name, nil, "\(error)") }
        }
    }

    /// 1 when the run fell short: a task failed outside a group whose policy
    /// tolerates it, a group failed, or an aggregation had too few results.
    func shortfall(_ outcomes: [GroupOutcome], _ aggs: [(String, AggregationReport?, String?)]) -> Bool {
        if outcomes.contains(where: { $0.state != .succeeded }) { return true }
        if aggs.contains(where: { $0.1?.success != true }) { return true }
        let tolerant = Set(outcomes.map(\.name))
        for i in 0..<pool.submittedCount {
            let r = pool.result(Int32(i))
            if r.status == .succeeded { continue }
            guard let g = r.group, tolerant.contains(String(cString: g)) else { return true }
        }
        return false
    }

    func event(_ o: JSONObject) { if options.json { stdoutStream.line(o.text) } }

    /// An event's common fields; `time` (seconds since the epoch) defaults to now.
    func eventBase(_ name: String, time: Double? = nil) -> JSONObject {
        var o = JSONObject()
        o.add("event", name)
        o.add("run_id", runId)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        o.add("time", time ?? Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        return o
    }

    // MARK: preparing

    /// Loads the plugins and resolves every task's processor and arguments.
    func prepare() throws(UsageError) -> [TaskSpecParts] {
        var o = eventBase("run_started")
        o.add("file", file.path)
        o.add("tasks", file.tasks.count)
        o.add("workers", pool.workerCount)
        o.add("max_parallel_tasks", config.maxParallel)
        event(o)
        let policyDefs = try file.policies.map { (p) throws(UsageError) in
            try PolicyFile.parse(p, file: file.path, configDelays: config.retryDelays)
        } ?? []
        var byAlias: [String: Plugin] = [:]
        for (alias, path, node) in file.plugins {
            let full = absolute(path, from: file.folder)
            do {
                let p = try pool.plugins.load(full)
                byAlias[alias] = p
                var o = eventBase("plugin_loaded")
                o.add("alias", alias)
                o.add("name", p.name)
                o.add("version", p.version)
                o.add("path", p.path)
                o.add("processors", p.processors.count)
                event(o)
            } catch {
                throw UsageError("\(file.path):\(node.position): plugin '\(alias)': \(error.description)")
            }
        }
        func lookup(_ spec: String, _ n: Node, _ what: String) throws(UsageError) -> PluginProcessor {
            let dot = spec.firstIndex(of: ".")!
            let alias = String(spec[..<dot])
            let name = String(spec[spec.index(after: dot)...])
            guard let plugin = byAlias[alias] else {
                let known = byAlias.keys.sorted()
                throw UsageError("\(file.path):\(n.position): \(what): no plugin is named '\(alias)' in 'plugins'" +
                                 (known.isEmpty ? " (the file loads none)" : " (loaded: \(known.joined(separator: ", ")))"))
            }
            guard let proc = plugin.processors.first(where: { $0.name == "\(plugin.name).\(name)" }) else {
                let known = plugin.processors.map { String($0.name.dropFirst(plugin.name.count + 1)) }
                throw UsageError("\(file.path):\(n.position): \(what): plugin '\(alias)' (\(plugin.path)) has no processor '\(name)' (it has: \(known.joined(separator: ", ")))")
            }
            return proc
        }
        for def in policyDefs {
            var o = def.options
            if let prefix = def.credentialsPrefix {
                do {
                    let ring = try CredentialRing(CredentialRing.fromEnvironment(prefix: prefix), cooldown: def.credentialsCooldown)
                    pool.adopt(ring)
                    pool.keepAlive(ring)
                    o.credentials = ring
                } catch {
                    throw UsageError("\(file.path):\(def.node["credentials"]!.position): policy '\(def.name)' field 'credentials': \(error.description)")
                }
            }
            if let (spec, n) = def.fallback {
                o.fallbackPlugin = try lookup(spec, n, "policy '\(def.name)' field 'fallback'").c
            }
            do {
                let policy = try pool.makePolicy(o)
                let name = def.name
                let events = breakerEvents
                policy.onBreakerChange = { key, from, to, generation in
                    events.add(policy: name, key: key, from: from, to: to, generation: generation)
                }
                policies[def.name] = policy
            } catch {
                throw UsageError("\(file.path):\(def.node.position): policy '\(def.name)': \(error.description)")
            }
        }
        var parts: [TaskSpecParts] = []
        var writers: [String: String] = [:]
        for def in file.tasks {
            let proc = try lookup(def.processor, def.node["processor"]!, "task '\(def.id)' field 'processor'")
            let values = try convertArguments(def, proc)
            let policyName = def.policy?.0 ?? (policies["default"] != nil ? "default" : nil)
            let policy = policyName.map { policies[$0]! }
            if let policy, let fb = policy.options.fallbackPlugin, let owner = fb.pointee.owner {
                let f = Unmanaged<PluginProcessor>.fromOpaque(owner).takeUnretainedValue()
                if f.argumentTypes != proc.argumentTypes {
                    let at = def.policy.map { "\(file.path):\($0.1.position)" } ?? "\(file.path):\(def.node.position)"
                    throw UsageError("\(at): task '\(def.id)': its policy's fallback \(f.name) takes \(f.signature) but \(proc.name) takes \(proc.signature)")
                }
            }
            taskPolicies.append(policyName.map { ($0, policies[$0]!) })
            if config.conflictResolution == "fail" {
                for w in def.writes {
                    let key = PathNormalizer.normalize(w, base: file.folder)
                    if let other = writers[key] {
                        throw UsageError("\(file.path): tasks '\(other)' and '\(def.id)' both write \(key), and conflict_resolution is 'fail' (use 'sequential' to run them one at a time)")
                    }
                    writers[key] = def.id
                }
            }
            processors.append(proc)
            parts.append(TaskSpecParts(def: def, processor: proc, values: values))
        }
        return parts
    }

    /// JSON arguments to typed values, following the processor's signature.
    func convertArguments(_ def: TaskDef, _ proc: PluginProcessor) throws(UsageError) -> [ArgumentValue] {
        let at = def.argsNode.map { "\(file.path):\($0.position)" } ?? "\(file.path):\(def.node.position)"
        let types = proc.argumentTypes
        guard def.args.count == types.count else {
            throw UsageError("\(at): task '\(def.id)' field 'args': \(proc.name) takes \(types.count) argument\(types.count == 1 ? "" : "s") \(proc.signature), got \(def.args.count)")
        }
        var out: [ArgumentValue] = []
        for (k, n) in def.args.enumerated() {
            let t = Int32(types[k])
            func bad(_ why: String) -> UsageError {
                UsageError("\(file.path):\(n.position): task '\(def.id)' field 'args': argument \(k + 1) of \(proc.name) \(proc.signature): \(why)")
            }
            let want = pluginTypeName(t)
            switch t {
            case _ where PluginProcessor.isInteger(t):
                if let i = n.int64 { out.append(.int(i)) }
                else if let u = n.uint64 { out.append(.uint(u)) }
                else if n.isIntegerText { throw bad("\(n.number) does not fit in \(want)") }
                else { throw bad("expected \(want), got \(n.kind == "a number" ? n.number : n.kind)") }
            case 5, 9:
                guard let d = n.double else { throw bad("expected \(want), got \(n.kind)") }
                out.append(.double(d, float: t == 9))
            case 6:
                guard let b = n.bool else { throw bad("expected bool (true or false), got \(n.kind)") }
                out.append(.bool(b))
            case 7:
                guard let s = n.string else { throw bad("expected string, got \(n.kind)") }
                guard !s.utf8.contains(0) else { throw bad("the string contains a NUL character") }
                out.append(.string(s))
            case 8:
                if let s = n.string { out.append(.bytes(Array(s.utf8))) }
                else if let h = n["hex"]?.string, n.members?.count == 1 {
                    guard let b = hexBytes(h) else { throw bad("\"hex\" must be an even number of hex digits") }
                    out.append(.bytes(b))
                } else { throw bad("expected bytes (a string, or {\"hex\": \"...\"}), got \(n.kind)") }
            default:
                throw bad("type \(t) is unknown")
            }
        }
        // The engine's own test (ranges), with the argument's position.
        for (k, v) in out.enumerated() where !PluginProcessor.fits(declared: types[k], v.probe) {
            let n = def.args[k]
            let why = PluginProcessor.mismatch(declared: types[k], v.probe) ?? "does not match"
            throw UsageError("\(file.path):\(n.position): task '\(def.id)' field 'args': argument \(k + 1) of \(proc.name) \(proc.signature): \(why)")
        }
        return out
    }

    // MARK: running

    /// Submits `parts`, the tasks from position `offset` of the run's order.
    func submit(_ parts: [TaskSpecParts], offset: Int = 0) throws(UsageError) {
        let strings = CStrings()
        var specs: [TaskSpec] = []
        specs.reserveCapacity(parts.count)
        // Buffers the specs point into, alive until the submit returns.
        var lists: [UnsafeMutableBufferPointer<UnsafePointer<CChar>?>] = []
        var valueBuffers: [UnsafeMutableBufferPointer<tgs_value>] = []
        defer {
            for l in lists { l.deallocate() }
            for v in valueBuffers { v.deallocate() }
        }
        func list(_ items: [String], paths: Bool) -> UnsafeBufferPointer<UnsafePointer<CChar>?> {
            if items.isEmpty { return UnsafeBufferPointer(start: nil, count: 0) }
            let b = UnsafeMutableBufferPointer<UnsafePointer<CChar>?>.allocate(capacity: items.count)
            for (k, s) in items.enumerated() { b[k] = strings.make(paths ? absolute(s, from: file.folder) : s) }
            lists.append(b)
            return UnsafeBufferPointer(b)
        }
        for p in parts {
            let d = p.def
            var s = TaskSpec(id: strings.make(d.id), processor: { _, _ in 1 })
            s.plugin = p.processor.c
            let vb = UnsafeMutableBufferPointer<tgs_value>.allocate(capacity: max(1, p.values.count))
            valueBuffers.append(vb)
            for (k, v) in p.values.enumerated() { vb[k] = v.value(strings) }
            s.arguments = UnsafeBufferPointer(start: vb.baseAddress, count: p.values.count)
            s.dependencies = list(d.dependsOn, paths: false)
            s.reads = list(d.reads, paths: true)
            // A shared-state key is a path no file has: the scheduler (and the
            // cross-process locks) then keep two tasks naming it apart.
            s.writes = list(d.writes + d.shared.map { "/taskgate-shared/" + $0 }, paths: true)
            s.group = d.group.map { strings.make($0) }
            s.lane = Int(1 - d.priority)
            s.critical = d.critical
            s.difficulty = d.difficulty
            s.policy = taskPolicies[offset + specs.count]?.policy
            s.key = d.key.map { strings.make($0) }
            s.cache = d.cache
            if d.timeoutSeconds > 0 { s.timeoutNanoseconds = max(1, Int64(d.timeoutSeconds * 1e9)) }
            if let payload = d.payload {
                let c = strings.make(payload)
                s.payload = UnsafeRawBufferPointer(start: c, count: strlen(c))
            }
            specs.append(s)
        }
        do {
            _ = try pool.submitBatch(count: specs.count) { specs[$0] }
        } catch {
            throw UsageError("\(file.path): \(error.description)")
        }
    }

    /// Runs until every task ended; returns the exit status. With `phases`
    /// (lists of task indices, from the gates), each phase is submitted once
    /// the one before it has ended.
    func run(_ given: [TaskSpecParts], phases: [[Int]]? = nil) throws(UsageError) -> Int32 {
        var parts = given
        var sizes = [parts.count]
        if let phases {
            // Submission order is the pool's task order: put the per-task
            // tables in that order too.
            let order = phases.flatMap { $0 }
            parts = order.map { given[$0] }
            processors = order.map { processors[$0] }
            taskPolicies = order.map { taskPolicies[$0] }
            sizes = phases.map(\.count)
        }
        var phase = 0
        var submitted = sizes.first ?? 0
        if submitted > 0 { try submit(Array(parts[0..<submitted])) }
        var total = parts.count
        var cursor: UInt64 = 0
        let debug = config.logLevel == "DEBUG"
        let progress = tty && !options.quiet && config.monitoring && config.logLevel != "ERROR"
        while ended < total {
            if ended == submitted && phase + 1 < sizes.count {
                if interruptMode > 0 {
                    total = submitted  // interrupted between phases: the rest never starts
                    break
                }
                phase += 1
                var o = eventBase("phase_started")
                o.add("phase", phase + 1)
                o.add("phases", sizes.count)
                o.add(raw: "tasks", "[" + parts[submitted..<(submitted + sizes[phase])].map { JSONOut.quote($0.def.id) }.joined(separator: ",") + "]")
                event(o)
                try submit(Array(parts[submitted..<(submitted + sizes[phase])]), offset: submitted)
                submitted += sizes[phase]
            }
            handleInterrupts(total)
            var i: Int32 = -1
            do { i = try pool.nextCompleted(cursor: &cursor, timeout: 100_000_000) } catch {}
            flushBreakerEvents()
            if i >= 0 {
                ended += 1
                let r = pool.result(i)
                counts[r.status, default: 0] += 1
                taskEnded(i, r)
                if debug && !options.quiet {
                    clearProgress(progress)
                    stderrStream.line("taskgate: \(String(cString: r.id!)) \(r.status.name)" + (r.error.map { ": \(String(cString: $0))" } ?? ""))
                }
            }
            if progress { drawProgress(total, force: ended == total) }
        }
        clearProgress(progress)
        flushBreakerEvents()
        // Processors of cancelled tasks may still be returning; an abort gives them a moment.
        var stopped = true
        do { try pool.shutdown(interruptMode >= 2 ? .abort : .drain, timeout: interruptMode >= 2 ? 2_000_000_000 : -1) } catch { stopped = false }
        let wall = Double(tgs_monotonic_ns() - started) / 1e9
        let outcomes = groupOutcomes()
        let aggs = aggregateReports()
        let failedAny = total < file.tasks.count || shortfall(outcomes, aggs)
        let code: Int32 = interruptMode > 0 ? 130 : (failedAny ? 1 : 0)
        let groupsJSON = "{" + outcomes.map { JSONOut.quote($0.name) + ":" + $0.json }.joined(separator: ",") + "}"
        let aggsJSON = "{" + aggs.map { a in JSONOut.quote(a.0) + ":" + (a.1?.json ?? "{\"success\":false,\"reason\":" + JSONOut.quote(a.2 ?? "") + "}") }.joined(separator: ",") + "}"
        if let path = options.resultsPath { try writeResults(path, wall: wall, code: code, groups: groupsJSON, aggregates: aggsJSON) }
        if let path = options.timelinePath { try writeAtomically(path, timelinePage()) }
        var f = eventBase("run_finished")
        f.add("tasks", total)
        for s in [TaskStatus.succeeded, .failed, .timedOut, .cancelled, .skipped, .rejected] { f.add(key(s), counts[s] ?? 0) }
        f.add("wall_s", wall)
        f.add(raw: "breakers", breakersJSON())
        f.add("interrupted", interruptMode > 0)
        if !outcomes.isEmpty { f.add(raw: "groups", groupsJSON) }
        if !aggs.isEmpty { f.add(raw: "aggregates", aggsJSON) }
        f.add("exit_code", Int(code))
        event(f)
        if !options.quiet && config.monitoring && config.logLevel != "ERROR" { summary(total, wall) }
        if stopped { try? pool.close() }
        return code
    }

    func key(_ s: TaskStatus) -> String { s.key }

    func handleInterrupts(_ total: Int) {
        let n = min(Int(tgs_load_u32(interrupts)), 2)
        guard n > interruptMode else { return }
        let previous = interruptMode
        interruptMode = n
        if previous == 0 && n == 1 {
            var cancelled = 0
            for i in 0..<pool.submittedCount where pool.cancelUnstarted(Int32(i), note: "cancelled: the run was interrupted before it started") {
                cancelled += 1
            }
            if !options.quiet { clearProgress(true); stderrStream.line("taskgate: interrupted: \(cancelled) tasks not started are cancelled; running ones finish (Ctrl-C again to abort them)") }
            var o = eventBase("interrupted")
            o.add("mode", "drain")
            o.add("cancelled", cancelled)
            event(o)
        }
        if interruptMode >= 2 {
            let cancelled = pool.cancelAll()
            if !options.quiet { clearProgress(true); stderrStream.line("taskgate: aborted: \(cancelled) tasks cancelled") }
            var o = eventBase("interrupted")
            o.add("mode", "abort")
            o.add("cancelled", cancelled)
            event(o)
        }
    }

    /// Breaker transitions as `breaker_changed` events (--json), in order.
    func flushBreakerEvents() {
        for e in breakerEvents.take() where options.json {
            var o = eventBase("breaker_changed", time: e.time)
            o.add("policy", e.policy)
            o.add("key", e.key)
            o.add("from", e.from.name)
            o.add("to", e.to.name)
            o.add("generation", Int64(bitPattern: e.generation))
            event(o)
        }
    }

    /// Every breaker the run used, with its state and counts at the end.
    func breakersJSON() -> String {
        let now = pool.clock.now()
        var items: [String] = []
        for (name, p) in policies.sorted(by: { $0.key < $1.key }) {
            for (key, state) in p.keyStates() {
                guard let b = state.breaker else { continue }
                let s = b.snapshot(now: now)
                var o = JSONObject()
                o.add("policy", name)
                o.add("key", key)
                o.add("state", s.state.name)
                o.add("generation", Int64(bitPattern: s.generation))
                o.add("consecutive_failures", s.consecutiveFailures)
                o.add("times_opened", s.timesOpened)
                o.add("rejected", s.rejected)
                items.append(o.text)
            }
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    /// What a policy did to the task: flags, status code, retry delays.
    func addPolicyFields(_ o: inout JSONObject, _ i: Int, _ r: TaskResultView) {
        guard i < taskPolicies.count, let p = taskPolicies[i] else { return }
        o.add("policy", p.name)
        o.add(raw: "flags", "[" + ResultFlags.names(r.flags).map(JSONOut.quote).joined(separator: ",") + "]")
        o.add(raw: "status_code", r.statusCode == 0 ? "null" : String(r.statusCode))
        o.add(raw: "retry_delays_ms", "[" + r.retryDelays.map { JSONOut.number(Double($0) / 1e6) }.joined(separator: ",") + "]")
    }

    /// For a task that declares a cache: {"result": "hit"} or {"result": "miss", "reason": "expired: ..."}.
    func addCacheField(_ o: inout JSONObject, _ i: Int, _ r: TaskResultView) {
        guard i < file.tasks.count, file.tasks[i].cache != nil else { return }
        var c = JSONObject()
        if r.flags & ResultFlags.cacheHit != 0 {
            c.add("result", "hit")
        } else if r.flags & ResultFlags.cacheMiss != 0 {
            c.add("result", "miss")
            c.add("reason", r.cacheReason.map { String(cString: $0) })
        } else {
            c.add("result", "not_looked_up")  // it never reached a worker (skipped, cancelled)
        }
        o.add(raw: "cache", c.text)
    }

    func taskEnded(_ i: Int32, _ r: TaskResultView) {
        guard options.json else { return }
        var o = eventBase("task_ended")
        o.add("task_id", r.id.map { String(cString: $0) })
        o.add("seq", Int(r.seq))
        o.add("processor", processors[Int(i)].name)
        o.add("status", key(r.status))
        o.add("worker", Int(r.worker))
        o.add("attempts", Int(r.attempts))
        o.add("queue_ms", Double(r.queueNanoseconds) / 1e6)
        o.add("duration_ms", r.startNanoseconds > 0 ? Double(r.endNanoseconds - r.startNanoseconds) / 1e6 : 0)
        o.add("error", r.error.map { String(cString: $0) })
        addPolicyFields(&o, Int(i), r)
        addCacheField(&o, Int(i), r)
        if let out = r.output, r.outputLength <= 4096,
           let s = String(validating: UnsafeRawBufferPointer(start: out, count: r.outputLength), as: UTF8.self) {
            o.add("output", s)
        } else {
            o.add("output_bytes", r.outputLength)
        }
        event(o)
    }

    // MARK: progress and summary

    func paint(_ s: String, _ code: String) -> String { color ? "\u{1b}[\(code)m\(s)\u{1b}[0m" : s }

    func drawProgress(_ total: Int, force: Bool) {
        let now = tgs_monotonic_ns()
        if !force && now - lastProgress < 100_000_000 { return }
        lastProgress = now
        var running = 0
        for i in 0..<pool.submittedCount where pool.status(Int32(i)) == .running { running += 1 }
        let width = 20
        let filled = total == 0 ? width : ended * width / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let secs = Double(now - started) / 1e9
        var line = "[\(bar)] \(ended)/\(total)  " + paint("\(counts[.succeeded] ?? 0) ok", "32")
        let failed = (counts[.failed] ?? 0) + (counts[.timedOut] ?? 0)
        if failed > 0 { line += "  " + paint("\(failed) failed", "31") }
        let other = (counts[.skipped] ?? 0) + (counts[.cancelled] ?? 0)
        if other > 0 { line += "  " + paint("\(other) skipped/cancelled", "33") }
        if let n = counts[.rejected], n > 0 { line += "  " + paint("\(n) rejected", "33") }
        line += "  \(running) running  \(String(format1(secs)))s"
        stderrStream.write("\r\u{1b}[2K" + line)
    }

    func clearProgress(_ on: Bool) { if on && tty && !options.quiet { stderrStream.write("\r\u{1b}[2K") } }

    func summary(_ total: Int, _ wall: Double) {
        let s = counts[.succeeded] ?? 0, f = counts[.failed] ?? 0, t = counts[.timedOut] ?? 0
        let c = counts[.cancelled] ?? 0, k = counts[.skipped] ?? 0
        var line = "taskgate: \(total) tasks in \(format2(wall)) s: " + paint("\(s) succeeded", "32") + ", "
        line += (f > 0 ? paint("\(f) failed", "31") : "0 failed") + ", "
        line += (t > 0 ? paint("\(t) timed out", "31") : "0 timed out") + ", "
        line += "\(k) skipped, \(c) cancelled"
        if let n = counts[.rejected], n > 0 { line += ", " + paint("\(n) rejected (circuit breaker open)", "33") }
        if interruptMode > 0 { line += " (interrupted)" }
        stderrStream.line(line)
        var shown = 0
        for i in 0..<pool.submittedCount {
            let r = pool.result(Int32(i))
            guard r.status == .failed || r.status == .timedOut || r.status == .rejected else { continue }
            if shown == 10 { stderrStream.line("  ... and more; --results FILE has them all"); break }
            shown += 1
            stderrStream.line("  \(paint(r.status.name, "31")) \(String(cString: r.id!)) (\(processors[i].name)): \(r.error.map { String(cString: $0) } ?? "")")
        }
    }

    /// One bar per submitted task, one lane per worker (timeline.swift).
    func timelinePage() -> String {
        var tasks: [TimelineTask] = []
        tasks.reserveCapacity(pool.submittedCount)
        for i in 0..<pool.submittedCount {
            let r = pool.result(Int32(i))
            var error = r.error.map { String(cString: $0) }
            if r.flags & ResultFlags.cacheHit != 0 { error = "result reused from the cache" }
            tasks.append(TimelineTask(
                id: r.id.map { String(cString: $0) } ?? "#\(i)", processor: i < processors.count ? processors[i].name : nil,
                group: r.group.map { String(cString: $0) }, worker: Int(r.worker),
                submitNs: UInt64(max(0, r.submitNanoseconds)), startNs: UInt64(max(0, r.startNanoseconds)),
                endNs: UInt64(max(0, r.endNanoseconds)), status: key(r.status), attempts: Int(r.attempts), error: error))
        }
        return timelineHTML(tasks, options: TimelineOptions(title: "taskgate run " + file.path, runId: runId, workers: pool.workerCount))
    }

    func writeResults(_ path: String, wall: Double, code: Int32, groups: String = "{}", aggregates: String = "{}") throws(UsageError) {
        var text = "{\n"
        text += "  \"version\": 1,\n  \"run_id\": \(JSONOut.quote(runId)),\n  \"file\": \(JSONOut.quote(file.path)),\n"
        text += "  \"wall_s\": \(JSONOut.number(wall)),\n  \"interrupted\": \(interruptMode > 0),\n  \"exit_code\": \(code),\n"
        var sum = JSONObject()
        sum.add("tasks", file.tasks.count)
        for s in [TaskStatus.succeeded, .failed, .timedOut, .cancelled, .skipped, .rejected] { sum.add(key(s), counts[s] ?? 0) }
        text += "  \"summary\": \(sum.text),\n  \"tasks\": [\n"
        for i in 0..<pool.submittedCount {
            let r = pool.result(Int32(i))
            var o = JSONObject()
            o.add("id", r.id.map { String(cString: $0) })
            o.add("processor", processors[i].name)
            o.add("status", key(r.status))
            o.add("error", r.error.map { String(cString: $0) })
            if let out = r.output {
                let buf = UnsafeRawBufferPointer(start: out, count: r.outputLength)
                if let s = String(validating: buf, as: UTF8.self) { o.add("output", s) } else { o.add("output_base64", base64(buf)) }
            } else {
                o.add("output", nil as String?)
            }
            o.add("attempts", Int(r.attempts))
            o.add("worker", Int(r.worker))
            o.add("group", r.group.map { String(cString: $0) })
            o.add("queue_ms", Double(r.queueNanoseconds) / 1e6)
            o.add("duration_ms", r.startNanoseconds > 0 ? Double(r.endNanoseconds - r.startNanoseconds) / 1e6 : 0)
            addPolicyFields(&o, i, r)
            addCacheField(&o, i, r)
            text += "    " + o.text + (i + 1 < pool.submittedCount ? ",\n" : "\n")
        }
        text += "  ],\n  \"groups\": \(groups),\n  \"aggregates\": \(aggregates)\n}\n"
        try writeAtomically(path, text)
    }
}

func format1(_ d: Double) -> String { let t = (d * 10).rounded() / 10; return t == t.rounded() ? "\(Int(t)).0" : "\(t)" }
func format2(_ d: Double) -> String {
    let c = Int((d * 100).rounded())
    let frac = c % 100
    return "\(c / 100).\(frac < 10 ? "0" : "")\(frac)"
}

/// A task ready to submit.
struct TaskSpecParts {
    var def: TaskDef
    var processor: PluginProcessor
    var values: [ArgumentValue]
}

/// An argument after conversion from JSON.
enum ArgumentValue {
    case int(Int64)
    case uint(UInt64)
    case double(Double, float: Bool)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])

    /// For the signature check: strings and bytes with a placeholder pointer.
    var probe: tgs_value {
        var v = tgs_value()
        switch self {
        case .int(let i): v.type = 3; v.as.i = i
        case .uint(let u): v.type = 4; v.as.u = u
        case .double(let d, let f): v.type = f ? 9 : 5; v.as.d = d
        case .bool(let b): v.type = 6; v.as.i = b ? 1 : 0
        case .string: v.type = 7; v.as.s = UnsafePointer(bitPattern: 8)
        case .bytes(let b): v.type = 8; v.as.bytes.data = UnsafeRawPointer(bitPattern: 8); v.as.bytes.len = b.count
        }
        return v
    }

    func value(_ strings: CStrings) -> tgs_value {
        var v = probe
        switch self {
        case .string(let s): v.as.s = strings.make(s)
        case .bytes(let b):
            let p = malloc(max(1, b.count))!
            b.withUnsafeBytes { p.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, byteCount: b.count) }
            v.as.bytes.data = UnsafeRawPointer(strings.adopt(p))
        default: break
        }
        return v
    }
}

func hexBytes(_ h: String) -> [UInt8]? {
    let u = Array(h.utf8)
    guard u.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    var k = 0
    func digit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    while k < u.count {
        guard let a = digit(u[k]), let b = digit(u[k + 1]) else { return nil }
        out.append(a << 4 | b)
        k += 2
    }
    return out
}

extension Node {
    var number: String { if case .number(let t) = value { return t }; return kind }
}
