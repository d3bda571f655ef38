import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Parallel execution gates

private func gateFail(_ e: GateError) -> Int32 {
    if case .cycle = e { return fail(TG_ECYCLE, e.message) }
    if case .edgeOutOfRange = e { return fail(TG_ERANGE, e.message) }
    return fail(TG_EINVAL, e.message)
}

/// Reads tg_gate_options and the task array; refused input sets the error.
private func gateInput(_ tasks: UnsafePointer<tg_gate_task>?, _ n: Int, _ opts: UnsafePointer<tg_gate_options>?,
                       _ function: String) -> Result<([GateTask], GateOptions, String?), Refusal> {
    func refuse(_ code: tg_error, _ message: String) -> Result<([GateTask], GateOptions, String?), Refusal> {
        .failure(Refusal(fail(code, "\(function): \(message)")))
    }
    var o = GateOptions()
    var base = String(decoding: PathNormalizer.currentDirectory(), as: UTF8.self)
    var lockDir: String? = nil
    if let p = opts?.pointee {
        guard p.struct_size == UInt32(MemoryLayout<tg_gate_options>.size) else {
            return refuse(TG_EVERSION, "opts->struct_size is \(p.struct_size), this library knows \(MemoryLayout<tg_gate_options>.size) (use TG_GATE_OPTIONS_INIT)")
        }
        let known = TG_GATE_ALLOW_READ_WRITE_OVERLAP | TG_GATE_CHECK_SYSTEM
        guard p.flags & ~known == 0 else { return refuse(TG_EINVAL, "unknown flags 0x\(String(p.flags & ~known, radix: 16))") }
        guard p.max_complexity >= 0, p.cpu_threshold.isFinite, p.cpu_threshold >= 0, p.memory_threshold.isFinite,
              p.memory_threshold >= 0, p.memory_threshold <= 1 else {
            return refuse(TG_EINVAL, "max_complexity must be >= 0, cpu_threshold >= 0 and memory_threshold 0 .. 1")
        }
        if p.max_parallel_tasks > 0 { o.maxParallelTasks = Int(p.max_parallel_tasks) }
        o.activeTasks = Int(p.active_tasks)
        if p.max_complexity > 0 { o.maxComplexity = Int(clamping: p.max_complexity) }
        if p.cpu_threshold > 0 { o.cpuThreshold = p.cpu_threshold }
        if p.memory_threshold > 0 { o.memoryThreshold = p.memory_threshold }
        o.allowReadWriteOverlap = p.flags & TG_GATE_ALLOW_READ_WRITE_OVERLAP != 0
        if p.flags & TG_GATE_CHECK_SYSTEM != 0 { o.system = GateSystemSample.current() }
        if let b = p.base_dir {
            let s = String(cString: b)
            guard s.hasPrefix("/") else { return refuse(TG_EINVAL, "base_dir '\(s)' must be an absolute path") }
            base = s
        }
        lockDir = p.lock_dir.map { String(cString: $0) }
    }
    guard n == 0 || tasks != nil else { return refuse(TG_EINVAL, "tasks is NULL with n = \(n)") }
    var out: [GateTask] = []
    out.reserveCapacity(n)
    guard let tasks else { return .success((out, o, lockDir)) }
    let stride = Int(tasks.pointee.struct_size)
    guard stride == MemoryLayout<tg_gate_task>.size else {
        return refuse(TG_EVERSION, "tasks[0].struct_size is \(stride), this library knows \(MemoryLayout<tg_gate_task>.size) (use TG_GATE_TASK_INIT)")
    }
    var normalizer = PathNormalizer.Batch(base: base)
    /// The strings of one list field (paths normalised), or nil with the error set.
    func list(_ p: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ what: String, _ i: Int,
              paths: Bool = false) -> [String]? {
        guard count > 0 else { return [] }
        guard let p else {
            _ = fail(TG_EINVAL, "\(function): tasks[\(i)].\(what) is NULL with n_\(what) = \(count)")
            return nil
        }
        var r: [String] = []
        r.reserveCapacity(count)
        for k in 0..<count {
            guard let s = p[k] else {
                _ = fail(TG_EINVAL, "\(function): tasks[\(i)].\(what)[\(k)] is NULL")
                return nil
            }
            r.append(paths ? normalizer.normalize(s) : String(cString: s))
        }
        return r
    }
    for i in 0..<n {
        let t = (UnsafeRawPointer(tasks) + i * stride).assumingMemoryBound(to: tg_gate_task.self).pointee
        guard t.struct_size == UInt32(stride) else {
            return refuse(TG_EVERSION, "tasks[\(i)].struct_size is \(t.struct_size), tasks[0]'s is \(stride)")
        }
        guard let id = t.id else { return refuse(TG_EINVAL, "tasks[\(i)].id is NULL") }
        guard let deps = list(t.deps, t.n_deps, "deps", i), let reads = list(t.reads, t.n_reads, "reads", i, paths: true),
              let writes = list(t.writes, t.n_writes, "writes", i, paths: true),
              let shared = list(t.shared, t.n_shared, "shared", i)
        else { return .failure(Refusal(TG_EINVAL.rawValue)) }
        out.append(GateTask(id: String(cString: id), dependsOn: deps, reads: reads, writes: writes,
                            difficulty: Int(t.difficulty), shared: shared))
    }
    return .success((out, o, lockDir))
}

@_cdecl("tg_gate_validate")
public func tg_gate_validate(_ tasks: UnsafePointer<tg_gate_task>?, _ nIn: UInt, _ opts: UnsafePointer<tg_gate_options>?,
                             _ can: UnsafeMutablePointer<Int32>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let n = Int(clamping: nIn)
    out?.pointee = nil
    can?.pointee = 0
    let input: ([GateTask], GateOptions, String?)
    switch gateInput(tasks, n, opts, "tg_gate_validate") {
    case .failure(let r): return r.code
    case .success(let x): input = x
    }
    var dir: LockDirectory? = nil
    if let d = input.2 {
        do { dir = try LockDirectory(d, create: false) } catch .notFound { dir = nil } catch { return fail(error) }
    }
    do {
        let r = try gateValidate(input.0, options: input.1) { dir?.holder(of: $0, staleAfter: 0) }
        can?.pointee = r.canParallel ? 1 : 0
        if let out { out.pointee = strdup(r.json) }
    } catch {
        return gateFail(error)
    }
    return ok()
}

@_cdecl("tg_gate_suggest")
public func tg_gate_suggest(_ tasks: UnsafePointer<tg_gate_task>?, _ nIn: UInt, _ opts: UnsafePointer<tg_gate_options>?,
                            _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let n = Int(clamping: nIn)
    guard let out else { return fail(TG_EINVAL, "tg_gate_suggest: out_json is NULL") }
    out.pointee = nil
    let input: ([GateTask], GateOptions, String?)
    switch gateInput(tasks, n, opts, "tg_gate_suggest") {
    case .failure(let r): return r.code
    case .success(let x): input = x
    }
    do {
        out.pointee = strdup(try gateSuggestBatches(input.0, options: input.1).json)
    } catch {
        return gateFail(error)
    }
    return ok()
}

@_cdecl("tg_gate_find_cycles")
public func tg_gate_find_cycles(_ nNodesIn: UInt, _ from: UnsafePointer<UInt32>?, _ to: UnsafePointer<UInt32>?, _ nEdgesIn: UInt,
                                _ count: UnsafeMutablePointer<UInt>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    let nNodes = Int(clamping: nNodesIn), nEdges = Int(clamping: nEdgesIn)
    out?.pointee = nil
    count?.pointee = 0
    guard nNodes >= 0, nNodes < Int(Int32.max), nEdges >= 0, nEdges < Int(Int32.max) else {
        return fail(TG_ERANGE, "tg_gate_find_cycles: at most \(Int32.max - 1) nodes and edges")
    }
    guard nEdges == 0 || (from != nil && to != nil) else { return fail(TG_EINVAL, "tg_gate_find_cycles: from or to is NULL with n_edges = \(nEdges)") }
    let f = UnsafeBufferPointer(start: from.map { UnsafeRawPointer($0).assumingMemoryBound(to: Int32.self) }, count: nEdges)
    let t = UnsafeBufferPointer(start: to.map { UnsafeRawPointer($0).assumingMemoryBound(to: Int32.self) }, count: nEdges)
    do {
        // Values above Int32.max read as negative and are refused as out of range.
        let cycles = try gateFindCycles(nodeCount: nNodes, from: f, to: t)
        count?.pointee = UInt(cycles.count)
        if let out {
            out.pointee = strdup("[" + cycles.map { "[" + $0.map { String(UInt32(bitPattern: $0)) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]")
        }
    } catch {
        return gateFail(error)
    }
    return ok()
}
