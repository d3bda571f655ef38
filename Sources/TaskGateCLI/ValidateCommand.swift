// `taskgate validate` and `taskgate suggest`: seed 003's parallel execution
// gates on a task file, with the same conflict model the scheduler runs by.
import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

let validateHelp = """
usage: taskgate validate FILE [ID...] [options]
       taskgate suggest  FILE [ID...] [options]

validate checks whether the tasks (all of FILE's, or the IDs given) can run in
parallel, the seed's gates: file conflicts (write-write blocking, read-write
warning, read-read info), circular dependencies, dependencies inside the group,
locks held right now in the lock directory, capacity (max_parallel_tasks; CPU
load under 80%, memory under 70%, open files), the complexity budget
(max_context_complexity against the sum of difficulties) and shared state
(tasks naming one "shared" key).

suggest prints conflict-free batches: every batch can run in parallel, every
task comes after its dependencies, batches respect max_parallel_tasks and the
budget (a task over the budget alone runs alone), as few as the greedy plan finds.
The output is deterministic.

options:
  --json            the report (validate: the seed's JSON, field for field, with
                    extra fields) or {"batches": [[ids]], ...} on stdout
  --active N        tasks already running elsewhere (capacity available = max - N)
  --no-system       skip the CPU, memory and open-file checks (deterministic output)
  --config PATH and the config flags of 'taskgate help run' (--max-parallel-tasks,
  --max-context-complexity, --lock-dir, ...)

Exit status: validate 0 can run in parallel, 1 cannot; suggest 0; 2 bad input.
"""

/// The task file's tasks as the gates see them: paths normalised exactly as
/// the scheduler normalises them (from the task file's folder).
func gateTasks(_ file: TaskFile, ids: [String]) throws(UsageError) -> [GateTask] {
    var byId: [String: Int] = [:]
    for (k, t) in file.tasks.enumerated() { byId[t.id] = k }
    var chosen: [Int] = []
    var seen = Set<String>()
    for id in ids {
        guard let k = byId[id] else { throw UsageError("\(file.path): no task has the id '\(id)'") }
        guard seen.insert(id).inserted else { throw UsageError("task id '\(id)' is given twice") }
        chosen.append(k)
    }
    if ids.isEmpty { chosen = Array(file.tasks.indices) }
    return chosen.map { k in
        let d = file.tasks[k]
        return GateTask(id: d.id, dependsOn: d.dependsOn,
                        reads: d.reads.map { PathNormalizer.normalize($0, base: file.folder) },
                        writes: d.writes.map { PathNormalizer.normalize($0, base: file.folder) },
                        difficulty: Int(d.difficulty), shared: d.shared)
    }
}

func gateOptions(_ config: Config, active: Int, system: Bool) -> GateOptions {
    var o = GateOptions()
    o.maxParallelTasks = config.maxParallel
    o.maxComplexity = config.maxComplexity
    o.activeTasks = active
    o.allowReadWriteOverlap = false  // the CLI's pool serialises readers and writers
    o.system = system ? GateSystemSample.current() : nil
    return o
}

/// Who holds each path's lock right now, from the lock directory (if any).
func lockProbe(_ config: Config, folder: String) -> (String) -> GateLockHolder? {
    guard config.lockDir != "off", let dir = try? LockDirectory(absolute(config.lockDir, from: folder), create: false) else {
        return { _ in nil }
    }
    let stale = config.lockTimeout
    return { dir.holder(of: $0, staleAfter: stale) }
}

func commandValidate(_ args: [String], suggest: Bool) -> Int32 {
    let name = suggest ? "suggest" : "validate"
    if args.contains("--help") || args.contains("-h") { stdoutStream.write(validateHelp + "\n"); return 0 }
    var rest: [String] = []
    var active = 0
    var system = true
    var k = 0
    while k < args.count {
        var a = args[k]
        var inline: String? = nil
        if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") { inline = String(a[a.index(after: eq)...]); a = String(a[..<eq]) }
        switch a {
        case "--no-system": system = false
        case "--active":
            var v = inline
            if v == nil { k += 1; v = k < args.count ? args[k] : nil }
            guard let t = v, let n = Int(t), n >= 0, n <= 1_000_000 else { fail("--active needs a count 0 .. 1000000, got \(v.map { "'\($0)'" } ?? "nothing")") }
            active = n
        default: rest.append(args[k])
        }
        k += 1
    }
    var opts = RunOptions(file: "")
    var positional: [String] = []
    do throws(UsageError) {
        try parseCommon(rest, allowJSON: true, into: &opts, positional: &positional)
        guard let path = positional.first else { throw UsageError("\(name) needs a task file (taskgate \(name) FILE [ID...])") }
        let file = try TaskFile.load(path, cycles: false)
        let config = try effectiveConfig(opts, file)
        let tasks = try gateTasks(file, ids: Array(positional.dropFirst()))
        let options = gateOptions(config, active: active, system: system)
        if suggest {
            let b: GateBatches
            do { b = try gateSuggestBatches(tasks, options: options) } catch { throw UsageError("\(file.path): \(error.message)") }
            if opts.json {
                stdoutStream.line(b.json)
            } else {
                for (i, batch) in b.batches.enumerated() {
                    stdoutStream.line("batch \(i + 1): " + batch.joined(separator: " "))
                }
                for n in b.notes { stdoutStream.line("note: task '\(n.task)': \(n.reason)") }
            }
            return 0
        }
        let report: GateReport
        do { report = try gateValidate(tasks, options: options, lockProbe: lockProbe(config, folder: file.folder)) } catch {
            throw UsageError("\(file.path): \(error.message)")
        }
        if opts.json {
            stdoutStream.line(report.json)
        } else {
            printReport(report)
        }
        return report.canParallel ? 0 : 1
    } catch {
        fail(error.message)
    }
}

private func printReport(_ r: GateReport) {
    stdoutStream.line("can run in parallel: \(r.canParallel ? "yes" : "no") (\(r.taskCount) task\(r.taskCount == 1 ? "" : "s"))")
    if !r.fileConflicts.isEmpty {
        stdoutStream.line("file conflicts (\(r.fileConflictsTotal)):")
        for c in r.fileConflicts {
            stdoutStream.line("  \(c.kind.rawValue): \(c.task1) and \(c.task2) on \(c.file)" + (c.serialized ? " (run one at a time)" : ""))
        }
        if r.fileConflictsTotal > r.fileConflicts.count { stdoutStream.line("  ... and \(r.fileConflictsTotal - r.fileConflicts.count) more") }
    }
    for c in r.circularDependencies { stdoutStream.line("circular dependency: " + c.joined(separator: " -> ")) }
    for d in r.orderedPairs { stdoutStream.line("ordered: \(d.task) runs after \(d.dependsOn)") }
    for l in r.lockIssues {
        stdoutStream.line("locked: \(l.task) needs \(l.file), held \(l.mode) by \(l.holder.holderId)" + (l.holder.pid > 0 ? " (pid \(l.holder.pid) on \(l.holder.host))" : ""))
    }
    let c = r.resourceCapacity
    stdoutStream.line("capacity: \(c.requested) requested, \(c.available) available of \(c.maxParallelTasks)" + (c.withinCapacity ? "" : "  OVER"))
    if let s = c.system {
        stdoutStream.line("system: cpu load \(Int((s.cpuLoad * 100).rounded()))% (max \(Int((c.cpuThreshold * 100).rounded()))%), memory \(Int((s.memoryUsed * 100).rounded()))% (max \(Int((c.memoryThreshold * 100).rounded()))%), open files \(s.openFiles) of \(s.openFileLimit)" + (c.systemOK == false ? "  OVER" : ""))
    }
    let b = r.contextBudget
    stdoutStream.line("complexity: \(b.totalComplexity) of \(b.maxComplexity)" + (b.withinBudget ? "" : "  OVER"))
    for s in r.sharedState { stdoutStream.line("shared state '\(s.resource)': " + s.tasks.joined(separator: ", ")) }
    for rec in r.recommendations { stdoutStream.line("- \(rec)") }
}

/// run --validate / --progressive: the phases to run, or nil to submit
/// everything at once. Reports the validation as an event and on stderr.
func validatedPhases(_ opts: RunOptions, file: TaskFile, config: Config, runner: Runner) throws(UsageError) -> [[Int]]? {
    guard opts.validate != nil || opts.progressive else { return nil }
    let tasks = try gateTasks(file, ids: [])
    var index: [String: Int] = [:]
    for (k, t) in tasks.enumerated() { index[t.id] = k }
    // The pool's max_parallel_tasks bounds the load: CPU and memory are not
    // sampled here, so a run's plan does not depend on the moment.
    let options = gateOptions(config, active: 0, system: false)
    let report: GateReport
    let batches: GateBatches
    do {
        report = try gateValidate(tasks, options: options, lockProbe: lockProbe(config, folder: file.folder))
        batches = try gateSuggestBatches(tasks, options: options)
    } catch {
        throw UsageError("\(file.path): \(error.message)")
    }
    let ordered = batches.batches.map { $0.map { index[$0]! } }
    var phases: [[Int]]
    var mode: String
    if opts.progressive {
        mode = "progressive"
        phases = []
        let flat = ordered.flatMap { $0 }
        var at = 0
        var sizeIndex = 0
        let sizes = [2, 3, 5]
        while at < flat.count {
            let n = min(sizes[min(sizeIndex, sizes.count - 1)], flat.count - at)
            sizeIndex += 1
            let chunk = Array(flat[at..<(at + n)])
            at += n
            let chunkReport = try? gateValidate(chunk.map { tasks[$0] }, options: options, lockProbe: { _ in nil })
            if chunkReport?.canParallel == true { phases.append(chunk) } else { phases.append(contentsOf: chunk.map { [$0] }) }
        }
    } else if report.canParallel {
        mode = "parallel"
        phases = [Array(tasks.indices)]
    } else if opts.validate == "sequential" {
        mode = "sequential"
        phases = ordered.flatMap { $0 }.map { [$0] }
    } else {
        mode = "batches"
        phases = ordered
    }
    var o = runner.eventBase("validated")
    o.add("can_parallel", report.canParallel)
    o.add("mode", mode)
    o.add(raw: "phases", "[" + phases.map { "[" + $0.map { JSONOut.quote(tasks[$0].id) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]")
    o.add(raw: "report", report.json)
    runner.event(o)
    if !opts.quiet && !opts.json && config.logLevel != "ERROR" {
        let why = report.recommendations.first.map { ": \($0)" } ?? ""
        stderrStream.line(report.canParallel && mode == "parallel"
            ? "taskgate: validated: \(tasks.count) tasks can run in parallel"
            : "taskgate: validated: running \(phases.count) \(mode == "sequential" ? "tasks one at a time" : "phase\(phases.count == 1 ? "" : "s") (\(mode))")\(report.canParallel ? "" : why)")
    }
    return phases
}
