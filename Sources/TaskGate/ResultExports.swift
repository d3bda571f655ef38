import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Partial failure and aggregation

@_cdecl("tg_pool_set_group")
public func tg_pool_set_group(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?,
                              _ opts: UnsafePointer<tg_group_options>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_set_group") else { return badHandleCode(p) }
    guard let group else { return fail(TG_EINVAL, "tg_pool_set_group: group is NULL") }
    guard let opts else { return fail(TG_EINVAL, "tg_pool_set_group: opts is NULL (use TG_GROUP_OPTIONS_INIT)") }
    let o = opts.pointee
    guard o.struct_size == UInt32(MemoryLayout<tg_group_options>.size) else {
        return fail(TG_EVERSION, "tg_pool_set_group: opts->struct_size is \(o.struct_size), this library knows \(MemoryLayout<tg_group_options>.size) (use TG_GROUP_OPTIONS_INIT)")
    }
    let known = UInt32(TG_GROUP_CRITICAL | TG_GROUP_CANCEL_ALL)
    guard o.flags & ~known == 0 else { return fail(TG_EINVAL, "tg_pool_set_group: unknown flags 0x\(String(o.flags & ~known, radix: 16))") }
    guard o.reserved == 0 else { return fail(TG_EINVAL, "tg_pool_set_group: opts->reserved must be 0") }
    let policy = GroupPolicy(critical: o.flags & UInt32(TG_GROUP_CRITICAL) != 0, cancelAll: o.flags & UInt32(TG_GROUP_CANCEL_ALL) != 0,
                             minRequired: Int(o.min_required), minFraction: o.min_fraction)
    do { try pool.setGroup(group, policy) } catch { return fail(prefix("tg_pool_set_group: group '\(String(cString: group))'", error)) }
    return ok()
}

/// The error with the call (and group) named in front of its message.
private func prefix(_ what: String, _ e: TaskGateError) -> TaskGateError {
    switch e {
    case .invalid(let m): return .invalid("\(what): \(m)")
    case .notFound(let m): return .notFound("\(what): \(m)")
    default: return e
    }
}

@_cdecl("tg_pool_group_outcome")
public func tg_pool_group_outcome(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?,
                                  _ out: UnsafeMutablePointer<tg_group_outcome>?,
                                  _ json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    json?.pointee = nil
    guard let pool = engine(p, "tg_pool_group_outcome") else { return badHandleCode(p) }
    guard let group else { return fail(TG_EINVAL, "tg_pool_group_outcome: group is NULL") }
    if let out, out.pointee.struct_size != UInt32(MemoryLayout<tg_group_outcome>.size) {
        return fail(TG_EVERSION, "tg_pool_group_outcome: out->struct_size is \(out.pointee.struct_size), this library knows \(MemoryLayout<tg_group_outcome>.size) (use TG_GROUP_OUTCOME_INIT)")
    }
    let o: GroupOutcome
    do { o = try pool.groupOutcome(group) } catch { return fail(prefix("tg_pool_group_outcome", error)) }
    if let out {
        var r = tg_group_outcome()
        r.struct_size = UInt32(MemoryLayout<tg_group_outcome>.size)
        r.state = Int32(bitPattern: o.state == .running ? TG_GROUP_RUNNING.rawValue : (o.state == .succeeded ? TG_GROUP_SUCCEEDED.rawValue : TG_GROUP_FAILED.rawValue))
        r.total = UInt32(clamping: o.total)
        r.required = UInt32(clamping: o.required)
        r.succeeded = UInt32(clamping: o.succeeded)
        r.failed = UInt32(clamping: o.failed)
        r.timed_out = UInt32(clamping: o.timedOut)
        r.rejected = UInt32(clamping: o.rejected)
        r.cancelled = UInt32(clamping: o.cancelled)
        r.skipped = UInt32(clamping: o.skipped)
        r.unfinished = UInt32(clamping: o.unfinished)
        r.partial_results = o.partialResults ? 1 : 0
        out.pointee = r
    }
    if let json {
        guard let text = strdup(o.json) else { return fail(TG_ENOMEM, "tg_pool_group_outcome: no memory for the JSON") }
        json.pointee = text
    }
    return ok()
}

/// Reads tg_aggregate_options; a refusal carries the code (error set).
private func aggregateOptions(_ opts: UnsafePointer<tg_aggregate_options>?, _ function: String) -> Result<AggregationOptions, Refusal> {
    func refuse(_ code: tg_error, _ m: String) -> Result<AggregationOptions, Refusal> { .failure(Refusal(fail(code, "\(function): \(m)"))) }
    guard let opts else { return refuse(TG_EINVAL, "opts is NULL (use TG_AGGREGATE_OPTIONS_INIT)") }
    let o = opts.pointee
    guard o.struct_size == UInt32(MemoryLayout<tg_aggregate_options>.size) else {
        return refuse(TG_EVERSION, "opts->struct_size is \(o.struct_size), this library knows \(MemoryLayout<tg_aggregate_options>.size) (use TG_AGGREGATE_OPTIONS_INIT)")
    }
    let kinds: [AggregationKind] = [.collect, .union, .intersection, .majority, .frequency]
    guard Int(o.kind) < kinds.count else { return refuse(TG_EINVAL, "kind \(o.kind) is not a tg_aggregate_kind (0 .. \(kinds.count - 1))") }
    guard o.reserved == 0 else { return refuse(TG_EINVAL, "opts->reserved must be 0") }
    guard o.threshold.isFinite, o.threshold >= 0, o.threshold <= 1 else {
        return refuse(TG_EINVAL, "threshold must be above 0 and at most 1 (0: 0.4), got \(o.threshold)")
    }
    return .success(AggregationOptions(kind: kinds[Int(o.kind)], threshold: o.threshold == 0 ? 0.4 : o.threshold, minRequired: Int(o.min_required)))
}

private func finishAggregate(_ inputs: [AggregationInput], _ options: AggregationOptions, _ function: String,
                             _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    let report: AggregationReport
    do { report = try aggregate(inputs, options: options) } catch { return fail(TG_EINVAL, "\(function): \(error)") }
    guard let text = strdup(report.json) else { return fail(TG_ENOMEM, "\(function): no memory for the JSON") }
    out.pointee = text
    return ok()
}

@_cdecl("tg_aggregate")
public func tg_aggregate(_ outputs: UnsafePointer<UnsafePointer<CChar>?>?, _ nIn: UInt,
                         _ opts: UnsafePointer<tg_aggregate_options>?,
                         _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    guard let out else { return fail(TG_EINVAL, "tg_aggregate: out_json is NULL") }
    let n = Int(clamping: nIn)
    guard n == 0 || outputs != nil else { return fail(TG_EINVAL, "tg_aggregate: outputs is NULL with n = \(n)") }
    let options: AggregationOptions
    switch aggregateOptions(opts, "tg_aggregate") {
    case .failure(let r): return r.code
    case .success(let o): options = o
    }
    var inputs: [AggregationInput] = []
    inputs.reserveCapacity(n)
    for i in 0..<n {
        guard let text = outputs![i] else {
            inputs.append(AggregationInput(id: nil, value: nil, status: "failed", error: nil))
            continue
        }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self), count: strlen(text))
        do {
            inputs.append(AggregationInput(id: nil, value: try JSONValue.parse(bytes: bytes)))
        } catch {
            return fail(TG_EINVAL, "tg_aggregate: outputs[\(i)] is not JSON: \(error)")
        }
    }
    return finishAggregate(inputs, options, "tg_aggregate", out)
}

@_cdecl("tg_pool_aggregate")
public func tg_pool_aggregate(_ p: UnsafeMutablePointer<tg_pool>?, _ group: UnsafePointer<CChar>?,
                              _ opts: UnsafePointer<tg_aggregate_options>?,
                              _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    guard let pool = engine(p, "tg_pool_aggregate") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_aggregate: out_json is NULL") }
    let options: AggregationOptions
    switch aggregateOptions(opts, "tg_pool_aggregate") {
    case .failure(let r): return r.code
    case .success(let o): options = o
    }
    let members: [Int32]
    if let group {
        do { members = try pool.groupMemberIndices(group) } catch { return fail(prefix("tg_pool_aggregate", error)) }
    } else {
        members = (0..<pool.submittedCount).map { Int32($0) }
    }
    let inputs = members.map { i -> AggregationInput in
        let r = pool.result(i)
        return AggregationInput(id: r.id.map { String(cString: $0) }, result: r)
    }
    return finishAggregate(inputs, options, "tg_pool_aggregate", out)
}
