// taskgate: the command-line program. Its main job: `taskgate run FILE` runs
// a task file on a worker pool through plugins.
//
// Exit status: 0 every task succeeded; 1 some task did not succeed; 2 bad
// input or usage (nothing ran); 130 interrupted.
import CTaskGateSupport
import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

let version = "0.7.0"

let mainHelp = """
usage: taskgate <command> [options]

Runs task files on a parallel worker pool through plugin processors.

commands:
  run FILE          run the task file FILE (JSON)
  config [FILE]     print the effective configuration and where each value came from
  plugins PATH...   list the processors of plugin files and their signatures
  validate FILE [ID...]  check whether tasks can run in parallel (seed 003 gates report)
  suggest FILE [ID...]   conflict-free execution batches for tasks
  locks list|clean  show or clean the cross-process lock directory
  help [COMMAND]    this text, or a command's
  --version         print the version

Exit status: 0 all tasks succeeded, 1 some task failed, 2 bad input or usage, 130 interrupted.
Run 'taskgate help run' for the task file format and options.
"""

let runHelp = """
usage: taskgate run FILE [options]

Runs every task of FILE on a worker pool: dependencies first, higher priority
first, never two tasks writing the same file at once, nor two naming the same
"shared" key; declared reads and writes are also locked across processes in
lock_dir (.taskgate/locks beside FILE; 'taskgate help locks'). Relative paths in FILE
(plugins, reads, writes) are taken from FILE's folder, and processors run with
that folder as their working directory.

options:
  --json                JSON lines of events on stdout (run_started, plugin_loaded,
                        task_ended, breaker_changed, interrupted, run_finished)
  --quiet, -q           no progress line and no summary (errors still go to stderr)
  --results PATH        write every task's result to PATH (JSON, written atomically)
  --timeline PATH       draw the run as one self-contained HTML page: a lane per
                        worker, a bar per task coloured by status (hover for details)
  --metrics PATH        Prometheus text exposition of the run (counts by status,
                        durations, queue waits, per worker, throughput), written
                        atomically for a node-exporter textfile collector
  --config PATH         a JSON file of configuration keys (also TASKGATE_CONFIG)
  --validate[=FALLBACK] check the gates first (see 'taskgate help validate'); when the
                        tasks cannot all run in parallel, run the suggested batches one
                        after another (FALLBACK batches, the default) or one task at a
                        time in dependency order (sequential)
  --progressive         progressive batching (seed 003): batches of 2, then 3, then 5
                        tasks in dependency order, each validated first and run one
                        task at a time when it cannot run in parallel
\(configFlagsHelp)

A live progress line goes to stderr when it is a terminal (NO_COLOR turns off colour).
The first Ctrl-C cancels tasks not started and lets running ones finish; the
second cancels those too. Either way the results file is written and the exit
status is 130.

Configuration: flags beat TASKGATE_* environment variables, which beat the
--config file, which beats the task file's "config" section, which beats the
defaults. 'taskgate config FILE' shows the result.

Task file:
  {"version": 1,
   "config": {"max_parallel_tasks": 4},
   "plugins": {"text": "plugins/libtext.so"},
   "tasks": [{"id": "a", "processor": "text.upper", "args": ["in.txt", "out/in.txt"],
              "priority": "high", "depends_on": [], "reads": ["in.txt"], "writes": ["out/in.txt"],
              "shared": ["db:orders"],
              "difficulty": 3, "timeout_s": 30, "group": "g1", "critical": true, "payload": "...",
              "policy": "api", "key": "api.example.com",
              "cache": {"ttl_s": 3600, "key": "v2"}}],
   "policies": {"api": {
       "retry": {"max_attempts": 4, "delays_s": [0.5, 2], "jitter": "none"},
       "breaker": {"failure_threshold": 5, "success_threshold": 2, "open_s": 60},
       "limit": {"max_concurrent": 2, "requests_per_minute": 60},
       "credentials": {"env": "API_KEY", "cooldown_s": 60},
       "fallback": "text.cached"}},
   "groups": {"g1": {"min_required": 2, "critical": false, "cancel_all": false}},
   "aggregate": {"deps": {"kind": "union", "from": "g1", "threshold": 0.4, "min_required": 2}}}
  A task with "cache" reuses its last result (kept in cache_dir, .taskgate/cache
  beside FILE) while ttl_s has not passed and neither its definition (processor,
  args, payload, writes, cache key), its list of reads nor any read file's mtime
  or size changed; each result says "hit", or "miss" and why.
  A policy named "default" applies to tasks that name none.
  A group succeeds when min_required of its tasks do (a count, "50%" or 0.5;
  default all); its tolerated failures do not fail the run. A critical group
  that can no longer succeed cancels its other tasks (cancel_all: the run's).
  Aggregations (collect, union, intersection, majority, frequency) read each
  task's output as JSON and land in the results file's "aggregates". A retry with
  neither delays_s nor base_delay_s waits the config's retry_delays. Keys
  come from API_KEY_1, API_KEY_2, ... (and API_BASE_URL_n, API_MODEL_n),
  never from the file, and are never printed.
  schema/taskfile.schema.json in the source tree describes it in full.
"""

var configFlagsHelp: String {
    ConfigKeys.all.map { k in
        let pad = String(repeating: " ", count: max(1, 22 - k.flag.count - 4))
        return "  \(k.flag) V\(pad)\(k.name): \(k.help) [\(k.environment)]"
    }.joined(separator: "\n")
}

let configHelp = """
usage: taskgate config [FILE] [--config PATH] [--json] [config flags]

Prints each configuration key's effective value and where it came from
(default, the task file FILE, the --config file, the environment, a flag).

config flags:
\(configFlagsHelp)
"""

let pluginsHelp = """
usage: taskgate plugins PATH... [--json]

Loads each plugin file (paths as given; a bare name is not searched for) and
lists its processors with their argument types.
"""

func fail(_ message: String, code: Int32 = 2) -> Never {
    stderrStream.line("taskgate: \(message)")
    exit(code)
}

/// Options shared by run and config: returns what is left.
func parseCommon(_ args: [String], allowJSON: Bool, into opts: inout RunOptions, positional: inout [String]) throws(UsageError) {
    var k = 0
    func value(_ flag: String, _ inline: String?) throws(UsageError) -> String {
        if let inline { return inline }
        k += 1
        guard k < args.count else { throw UsageError("\(flag) needs a value") }
        return args[k]
    }
    while k < args.count {
        var a = args[k]
        var inline: String? = nil
        if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
            inline = String(a[a.index(after: eq)...])
            a = String(a[..<eq])
        }
        switch a {
        case "--json": opts.json = true
        case "--quiet", "-q": opts.quiet = true
        case "--results": opts.resultsPath = try value(a, inline)
        case "--config": opts.configPath = try value(a, inline)
        case "--": positional.append(contentsOf: args[(k + 1)...]); return
        default:
            if let key = ConfigKeys.key(flag: a) {
                opts.flags.append((key, try value(a, inline)))
            } else if a.hasPrefix("-") && a != "-" {
                throw UsageError("unknown option '\(args[k])' (see 'taskgate help')")
            } else {
                positional.append(a)
            }
        }
        k += 1
    }
}

/// The effective configuration: defaults < task file < config file < environment < flags.
func effectiveConfig(_ opts: RunOptions, _ file: TaskFile?) throws(UsageError) -> Config {
    var c = Config()
    if let file, let section = file.config { try c.apply(json: section, source: .taskFile, file: file.path) }
    let configPath = opts.configPath ?? getenv("TASKGATE_CONFIG").map { String(cString: $0) }
    if let p = configPath, !p.isEmpty {
        let bytes = try readWholeFile(p, what: "config file")
        let root: Node
        do { root = try JSONReader.parse(bytes) } catch { throw UsageError("\(p):\(error.line):\(error.column): invalid JSON: \(error.message)") }
        try c.apply(json: root, source: .configFile, file: p)
    }
    try c.applyEnvironment()
    for (k, v) in opts.flags { try c.apply(flag: k, text: v) }
    return c
}

func commandRun(_ args: [String]) -> Int32 {
    if args.contains("--help") || args.contains("-h") { stdoutStream.write(runHelp + "\n"); return 0 }
    var opts = RunOptions(file: "")
    var positional: [String] = []
    do throws(UsageError) {
        var rest: [String] = []
        for a in args {
            if a == "--validate" { opts.validate = "batches" }
            else if a.hasPrefix("--validate=") {
                let mode = String(a.dropFirst("--validate=".count))
                guard mode == "batches" || mode == "sequential" else {
                    throw UsageError("--validate=\(mode): the fallback must be 'batches' or 'sequential'")
                }
                opts.validate = mode
            } else if a == "--progressive" { opts.progressive = true }
            else { rest.append(a) }
        }
        // --timeline and --metrics take a value: pulled out before the common options.
        var k = 0
        var others: [String] = []
        while k < rest.count {
            let a = rest[k]
            var name = a, inline: String? = nil
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq])
                inline = String(a[a.index(after: eq)...])
            }
            if name == "--timeline" || name == "--metrics" {
                var v = inline
                if v == nil {
                    k += 1
                    guard k < rest.count else { throw UsageError("\(name) needs a value (a file path)") }
                    v = rest[k]
                }
                guard let path = v, !path.isEmpty else { throw UsageError("\(name) needs a file path") }
                if name == "--timeline" { opts.timelinePath = path } else { opts.metricsPath = path }
            } else if a == "--" {
                others.append(contentsOf: rest[k...])
                break
            } else {
                others.append(a)
            }
            k += 1
        }
        rest = others
        try parseCommon(rest, allowJSON: true, into: &opts, positional: &positional)
        guard positional.count == 1 else {
            throw UsageError(positional.isEmpty ? "run needs a task file (taskgate run FILE)" : "run takes one task file, got \(positional.count): \(positional.joined(separator: " "))")
        }
        opts.file = positional[0]
        let here = String(decoding: PathNormalizer.currentDirectory(), as: UTF8.self)
        if let r = opts.resultsPath {
            let full = absolute(r, from: here)
            try checkWritable(full, flag: "--results")
            opts.resultsPath = full
        }
        if let r = opts.timelinePath {
            let full = absolute(r, from: here)
            try checkWritable(full, flag: "--timeline")
            opts.timelinePath = full
        }
        if let r = opts.metricsPath {
            let full = absolute(r, from: here)
            try checkWritable(full, flag: "--metrics")
            opts.metricsPath = full
        }
        let file = try TaskFile.load(opts.file)
        let config = try effectiveConfig(opts, file)
        // Signals are taken by a thread of their own; the pool's workers,
        // started after this, inherit the blocked mask.
        startSignalThread()
        let runner = try Runner(options: opts, file: file, config: config)
        guard chdir(file.folder) == 0 else { throw UsageError("\(file.folder): cannot enter the task file's folder: \(errnoText())") }
        let parts = try runner.prepare()
        let phases = try validatedPhases(opts, file: file, config: config, runner: runner)
        return try runner.run(parts, phases: phases)
    } catch {
        fail(error.message)
    }
}

/// Refuses a results path that cannot be written, before anything runs.
func checkWritable(_ path: String, flag: String) throws(UsageError) {
    let probe = "\(path).tmp.\(getpid())"
    let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw UsageError("\(flag) \(path): cannot write there: \(errnoText())") }
    close(fd)
    unlink(probe)
}

func commandConfig(_ args: [String]) -> Int32 {
    if args.contains("--help") || args.contains("-h") { stdoutStream.write(configHelp + "\n"); return 0 }
    var opts = RunOptions(file: "")
    var positional: [String] = []
    do throws(UsageError) {
        try parseCommon(args, allowJSON: true, into: &opts, positional: &positional)
        guard positional.count <= 1 else { throw UsageError("config takes at most one task file") }
        let file = try positional.first.map { (p) throws(UsageError) in try TaskFile.load(p) }
        let c = try effectiveConfig(opts, file)
        if opts.json {
            var parts: [String] = []
            for k in ConfigKeys.all {
                let (v, src, origin) = c.values[k.name]!
                parts.append("\(JSONOut.quote(k.name)):{\"value\":\(v.json),\"source\":\(JSONOut.quote(sourceName(src))),\"from\":\(JSONOut.quote(origin))}")
            }
            stdoutStream.line("{" + parts.joined(separator: ",") + "}")
        } else {
            for k in ConfigKeys.all {
                let (v, _, origin) = c.values[k.name]!
                let name = k.name + String(repeating: " ", count: max(1, 24 - k.name.count))
                let val = v.text + String(repeating: " ", count: max(1, 20 - v.text.count))
                stdoutStream.line("\(name)\(val)\(origin)")
            }
        }
        return 0
    } catch {
        fail(error.message)
    }
}

func sourceName(_ s: ConfigSource) -> String {
    switch s {
    case .defaults: return "default"
    case .taskFile: return "task file"
    case .configFile: return "config file"
    case .environment: return "environment"
    case .flag: return "flag"
    }
}

func commandPlugins(_ args: [String]) -> Int32 {
    if args.contains("--help") || args.contains("-h") { stdoutStream.write(pluginsHelp + "\n"); return 0 }
    let json = args.contains("--json")
    let paths = args.filter { $0 != "--json" }
    if let bad = paths.first(where: { $0.hasPrefix("-") }) { fail("unknown option '\(bad)' (see 'taskgate help plugins')") }
    guard !paths.isEmpty else { fail("plugins needs at least one plugin file") }
    let registry = PluginRegistry()
    var failed = false
    for p in paths {
        do {
            let pl = try registry.load(p)
            if json {
                var o = JSONObject()
                o.add("path", pl.path)
                o.add("name", pl.name)
                o.add("version", pl.version)
                o.add("description", pl.description)
                o.add("abi", "\(pl.abiMajor).\(pl.abiMinor)")
                let procs = pl.processors.map { q -> String in
                    var x = JSONObject()
                    x.add("name", q.name)
                    x.add(raw: "args", "[" + q.argumentTypes.map { JSONOut.quote(pluginTypeName(Int32($0))) }.joined(separator: ",") + "]")
                    x.add("description", q.description)
                    x.add("setup", q.hasSetup)
                    x.add("cleanup", q.hasCleanup)
                    return x.text
                }
                o.add(raw: "processors", "[" + procs.joined(separator: ",") + "]")
                stdoutStream.line(o.text)
            } else {
                stdoutStream.line("\(pl.name) \(pl.version) (plugin ABI \(pl.abiMajor).\(pl.abiMinor)) \(pl.path)")
                if !pl.description.isEmpty { stdoutStream.line("  \(pl.description)") }
                for q in pl.processors {
                    var extra: [String] = []
                    if q.hasSetup { extra.append("setup") }
                    if q.hasCleanup { extra.append("cleanup") }
                    stdoutStream.line("  \(q.name)\(q.signature)" + (extra.isEmpty ? "" : " [\(extra.joined(separator: ", "))]") + (q.description.isEmpty ? "" : "  \(q.description)"))
                }
            }
        } catch {
            stderrStream.line("taskgate: \(error.description)")
            failed = true
        }
    }
    registry.closeAll()
    return failed ? 2 : 0
}

let argv = CommandLine.arguments
let command = argv.count > 1 ? argv[1] : ""
let rest = Array(argv.dropFirst(2))
let status: Int32
switch command {
case "run": status = commandRun(rest)
case "config": status = commandConfig(rest)
case "plugins": status = commandPlugins(rest)
case "locks": status = commandLocks(rest)
case "validate": status = commandValidate(rest, suggest: false)
case "suggest": status = commandValidate(rest, suggest: true)
case "help", "--help", "-h":
    switch rest.first {
    case "run": stdoutStream.write(runHelp + "\n")
    case "config": stdoutStream.write(configHelp + "\n")
    case "plugins": stdoutStream.write(pluginsHelp + "\n")
    case "locks": stdoutStream.write(locksHelp + "\n")
    case "validate", "suggest": stdoutStream.write(validateHelp + "\n")
    case nil: stdoutStream.write(mainHelp + "\n")
    case let other?: fail("no help for '\(other)': commands are run, validate, suggest, locks, config, plugins")
    }
    status = 0
case "--version", "version": stdoutStream.line("taskgate \(version)"); status = 0
case "": stderrStream.write(mainHelp + "\n"); status = 2
default: fail("unknown command '\(command)' (commands: run, validate, suggest, locks, config, plugins; see 'taskgate help')")
}
exit(status)
