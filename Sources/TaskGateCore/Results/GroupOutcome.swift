/// What a group asks of its tasks (seed 002 §6): how many must succeed for
/// the group to succeed (graceful degradation), and whether its failure
/// stops its siblings or the whole run.
public struct GroupPolicy: Sendable, Equatable {
    /// Once the group can no longer succeed, its unfinished tasks are cancelled.
    public var critical: Bool
    /// With `critical`: cancel every unfinished task of the pool instead (the
    /// run fails, as the seed's critical group throws).
    public var cancelAll: Bool
    /// Successes needed; 0: `minFraction` of the members, or all of them.
    public var minRequired: Int
    /// 0 < f <= 1, used when `minRequired` is 0 (the seed's "minRequired:
    /// 50%"): ceil(f x members).
    public var minFraction: Double

    public init(critical: Bool = false, cancelAll: Bool = false, minRequired: Int = 0, minFraction: Double = 0) {
        self.critical = critical
        self.cancelAll = cancelAll
        self.minRequired = minRequired
        self.minFraction = minFraction
    }
}

/// A group's result so far: counts, the verdict, and the failures named.
public struct GroupOutcome: Sendable {
    public enum State: String, Sendable {
        /// Not decided: tasks still to end could still change the verdict.
        case running
        /// At least `required` succeeded and every task has ended.
        case succeeded
        /// Fewer than `required` can still succeed.
        case failed
    }

    public struct Failure: Sendable {
        public var id: String?
        public var status: String
        public var error: String?
    }

    public var name: String
    public var policy: GroupPolicy
    public var total = 0
    public var succeeded = 0
    public var failed = 0
    public var timedOut = 0
    public var rejected = 0
    public var cancelled = 0
    public var skipped = 0
    public var unfinished = 0
    public var required = 0
    public var state: State = .running
    public var failures: [Failure] = []

    /// Ended without succeeding.
    public var failedCount: Int { total - succeeded - unfinished }
    /// Succeeded with some of its tasks failed (the seed's partialResults).
    public var partialResults: Bool { state == .succeeded && failedCount > 0 }
    public var reason: String? {
        guard state == .failed else { return nil }
        return "insufficient results (\(succeeded)/\(required)): \(succeeded) of \(total) tasks succeeded, \(required) required"
    }

    /// Judges the members (in submission order) against `required`
    /// successes (the engine's count: the one its critical cascade uses).
    public static func evaluate(name: String, policy: GroupPolicy, required: Int,
                                members: [(id: String?, status: TaskStatus, error: String?)]) -> GroupOutcome {
        var o = GroupOutcome(name: name, policy: policy)
        o.total = members.count
        for m in members {
            switch m.status {
            case .succeeded: o.succeeded += 1
            case .failed: o.failed += 1
            case .timedOut: o.timedOut += 1
            case .rejected: o.rejected += 1
            case .cancelled: o.cancelled += 1
            case .skipped: o.skipped += 1
            case .pending, .queued, .running: o.unfinished += 1
            }
            if m.status.isFinal && m.status != .succeeded {
                o.failures.append(Failure(id: m.id, status: m.status.key, error: m.error))
            }
        }
        o.required = required
        if o.succeeded + o.unfinished < o.required {
            o.state = .failed
        } else if o.unfinished == 0 {
            o.state = .succeeded
        }
        return o
    }

    public var json: String {
        var s = "{\"group\":" + JSONText.quote(name) + ",\"state\":" + JSONText.quote(state.rawValue)
        s += ",\"success\":" + (state == .running ? "null" : String(state == .succeeded))
        s += ",\"partial_results\":\(partialResults),\"failed_count\":\(failedCount)"
        s += ",\"min_required\":\(required),\"critical\":\(policy.critical)"
        s += ",\"total\":\(total),\"succeeded\":\(succeeded),\"failed\":\(failed),\"timed_out\":\(timedOut)"
        s += ",\"rejected\":\(rejected),\"cancelled\":\(cancelled),\"skipped\":\(skipped),\"unfinished\":\(unfinished)"
        s += ",\"reason\":" + (reason.map(JSONText.quote) ?? "null") + ",\"failures\":["
        for (i, f) in failures.enumerated() {
            if i > 0 { s += "," }
            s += "{\"task\":" + (f.id.map(JSONText.quote) ?? "null") + ",\"status\":" + JSONText.quote(f.status)
            s += ",\"error\":" + (f.error.map(JSONText.quote) ?? "null") + "}"
        }
        return s + "]}"
    }
}
