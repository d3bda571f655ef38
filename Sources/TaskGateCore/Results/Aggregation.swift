/// How task outputs combine (seed 002 §5). Every kind preserves input
/// order: items come out in the order of the task, then of the item, that
/// first gave them, never in completion order.
public enum AggregationKind: String, Sendable, CaseIterable {
    /// Each task's output in task order; a task without one gives null.
    case collect
    /// Every item of any output, once (the seed's `new Set([...a, ...b])`).
    case union
    /// The items of the first output that every output has.
    case intersection
    /// The output most tasks gave (each output compared whole).
    case majority
    /// Items named by at least `threshold` of the outputs, with counts (the
    /// seed's frequency analysis; 0.4 by default).
    case frequency
}

/// One task's part in an aggregation: its output parsed, or nil when it has
/// none to give (failed, cancelled, unparsable), with the reason.
public struct AggregationInput: Sendable {
    public var id: String?
    public var value: JSONValue?
    public var status: String
    public var error: String?

    public init(id: String?, value: JSONValue?, status: String = "succeeded", error: String? = nil) {
        self.id = id
        self.value = value
        self.status = value == nil && status == "succeeded" ? "no_output" : status
        self.error = error
    }
}

extension AggregationInput {
    /// A task's part as the pool recorded it: its output read as JSON (a
    /// trailing NUL, as C strings are often set, dropped), or why it has none
    /// ("failed", "timed_out", ..., "running", "no_output", "bad_output").
    public init(id: String?, result r: TaskResultView) {
        guard r.status == .succeeded else {
            self.init(id: id, value: nil, status: r.status.key, error: r.status.isFinal ? r.error.map { String(cString: $0) } : nil)
            return
        }
        guard let out = r.output else {
            self.init(id: id, value: nil, status: "no_output", error: "the task set no output")
            return
        }
        var len = r.outputLength
        if len > 0 && out.load(fromByteOffset: len - 1, as: UInt8.self) == 0 { len -= 1 }
        do {
            self.init(id: id, value: try JSONValue.parse(bytes: UnsafeBufferPointer(start: out.assumingMemoryBound(to: UInt8.self), count: len)))
        } catch {
            self.init(id: id, value: nil, status: "bad_output", error: "output is not JSON: \(error)")
        }
    }
}

public struct AggregationOptions: Sendable {
    public var kind: AggregationKind
    /// frequency: the share of outputs an item must appear in (0 < t <= 1).
    public var threshold: Double
    /// Outputs needed for a result at all (seed 002 §6, graceful
    /// degradation); 0: no minimum.
    public var minRequired: Int

    public init(kind: AggregationKind, threshold: Double = 0.4, minRequired: Int = 0) {
        self.kind = kind
        self.threshold = threshold
        self.minRequired = minRequired
    }
}

/// The seed's partial-result answer, with the aggregation.
public struct AggregationReport: Sendable {
    public var kind: AggregationKind
    public var success: Bool
    /// True when some inputs gave nothing and the rest sufficed.
    public var partialResults: Bool
    public var failedCount: Int
    public var inputs: Int
    public var used: Int
    public var minRequired: Int
    /// Why it failed: "insufficient results (k/min_required)".
    public var reason: String?
    /// The aggregation (null when it failed).
    public var result: JSONValue
    /// majority: how many outputs gave the winner, and whether another tied.
    public var votes: Int?
    public var tie: Bool?
    public var failures: [AggregationInput]

    public var json: String {
        var s = "{\"kind\":" + JSONText.quote(kind.rawValue)
        s += ",\"success\":\(success),\"partial_results\":\(partialResults),\"failed_count\":\(failedCount)"
        s += ",\"inputs\":\(inputs),\"used\":\(used),\"min_required\":\(minRequired)"
        s += ",\"reason\":" + (reason.map(JSONText.quote) ?? "null")
        s += ",\"result\":" + result.json
        if let votes { s += ",\"votes\":\(votes)" }
        if let tie { s += ",\"tie\":\(tie)" }
        s += ",\"failures\":["
        for (i, f) in failures.enumerated() {
            if i > 0 { s += "," }
            s += "{\"task\":" + (f.id.map(JSONText.quote) ?? "null") + ",\"status\":" + JSONText.quote(f.status)
            s += ",\"error\":" + (f.error.map(JSONText.quote) ?? "null") + "}"
        }
        return s + "]}"
    }
}

public enum AggregationError: Error, Sendable, CustomStringConvertible {
    case invalid(String)
    public var description: String { if case .invalid(let m) = self { return m }; return "" }
}

/// Aggregates `inputs` (in task order). Inputs without a value count as
/// failed: with `minRequired` the rest must number at least that many.
public func aggregate(_ inputs: [AggregationInput], options: AggregationOptions) throws(AggregationError) -> AggregationReport {
    guard options.threshold.isFinite, options.threshold > 0, options.threshold <= 1 else {
        throw .invalid("threshold must be above 0 and at most 1, got \(options.threshold)")
    }
    guard options.minRequired >= 0 else { throw .invalid("min_required must be 0 or more, got \(options.minRequired)") }
    let valid = inputs.compactMap(\.value)
    let failures = inputs.filter { $0.value == nil }
    var r = AggregationReport(kind: options.kind, success: true, partialResults: !failures.isEmpty, failedCount: failures.count,
                              inputs: inputs.count, used: valid.count, minRequired: options.minRequired, reason: nil,
                              result: .null, votes: nil, tie: nil, failures: failures)
    if options.minRequired > 0 && valid.count < options.minRequired {
        r.success = false
        r.partialResults = false
        r.reason = "insufficient results (\(valid.count)/\(options.minRequired))"
        return r
    }
    switch options.kind {
    case .collect:
        r.result = .array(inputs.map { $0.value ?? .null })
    case .union:
        var seen = Set<String>()
        var out: [JSONValue] = []
        for v in valid {
            for item in v.items where seen.insert(item.canonical).inserted { out.append(item) }
        }
        r.result = .array(out)
    case .intersection:
        guard let first = valid.first else { r.result = .array([]); break }
        let others = valid.dropFirst().map { Set($0.items.map(\.canonical)) }
        var seen = Set<String>()
        var out: [JSONValue] = []
        for item in first.items {
            let c = item.canonical
            if others.allSatisfy({ $0.contains(c) }), seen.insert(c).inserted { out.append(item) }
        }
        r.result = .array(out)
    case .majority:
        var count: [String: Int] = [:]
        var order: [(String, JSONValue)] = []
        for v in valid {
            let c = v.canonical
            if count[c] == nil { order.append((c, v)) }
            count[c, default: 0] += 1
        }
        // The highest count; among ties, the value given first.
        var best: (String, JSONValue)? = nil
        var bestVotes = 0
        for (c, v) in order where count[c]! > bestVotes {
            best = (c, v)
            bestVotes = count[c]!
        }
        r.result = best?.1 ?? .null
        r.votes = bestVotes
        r.tie = order.filter { count[$0.0]! == bestVotes }.count > 1
    case .frequency:
        var count: [String: Int] = [:]
        var order: [(String, JSONValue)] = []
        for v in valid {
            var inThis = Set<String>()
            for item in v.items {
                let c = item.canonical
                guard inThis.insert(c).inserted else { continue }
                if count[c] == nil { order.append((c, item)) }
                count[c, default: 0] += 1
            }
        }
        let need = options.threshold * Double(valid.count)
        var out: [JSONValue] = []
        for (c, item) in order where Double(count[c]!) >= need - 1e-9 {
            let n = count[c]!
            out.append(.object([("pattern", item), ("count", .number(String(n))),
                                ("frequency", .number(JSONText.number(Double(n) / Double(valid.count))))]))
        }
        r.result = .array(out)
    }
    return r
}
