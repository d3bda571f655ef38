// Run health: the failure rate, the timeout rate and the average run time of
// the tasks that have ended so far, checked against thresholds as each task
// ends. Ported from the seed's ParallelExecutionMonitor (same metric names,
// same defaults, same strict "above the threshold" rule), with two changes:
// alerts are edge-triggered (raised once when a metric goes above its
// threshold, cleared once when it falls back), and the monitor only reports;
// whether to stop the pool is the pool's decision (`shouldStop`).
//
// Plain Swift on purpose (no Foundation): numbers in messages and JSON are
// formatted by hand so the same history always gives the same text.
//
// Rounding in messages: percentages are the rate times 100 rounded half away
// from zero to one decimal (1/8 prints "12.5%", 1/6 prints "16.7%"); average
// durations use milliseconds with one decimal when the threshold is under one
// second, otherwise seconds with three decimals, so raised and cleared
// messages of one monitor always share a unit. When one decimal would print
// a value and its threshold identically although they differ (20.04% against
// 20%), up to three more decimals are shown until they differ. The exact
// values are always in `value`, `threshold` and the JSON.

/// An invalid threshold; `field` names it as in `HealthThresholds`.
public struct HealthError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

public struct HealthThresholds: Sendable, Equatable {
    /// Alert when failures / counted tasks is above this (strictly). A value
    /// of 1 or more (or +infinity) never alerts. NaN and negatives are invalid.
    public var failureRate: Double
    /// Alert when timeouts / counted tasks is above this (strictly).
    public var timeoutRate: Double
    /// Alert when the average run time of timed tasks, in milliseconds, is above this.
    public var avgDurationMs: Double
    /// No alert before this many tasks are counted (for the rates) or timed
    /// (for the average). 0 behaves like 1.
    public var minTasks: Int
    /// Ask the pool to stop once any alert has been raised; see `HealthMonitor.shouldStop`.
    public var stopOnAlert: Bool

    public init(failureRate: Double = 0.2, timeoutRate: Double = 0.1, avgDurationMs: Double = 300_000,
                minTasks: Int = 1, stopOnAlert: Bool = false) {
        self.failureRate = failureRate
        self.timeoutRate = timeoutRate
        self.avgDurationMs = avgDurationMs
        self.minTasks = minTasks
        self.stopOnAlert = stopOnAlert
    }

    /// Throws for a NaN or negative limit or a negative `minTasks`, naming the field.
    public func validate() throws(HealthError) {
        for (field, v) in [("failureRate", failureRate), ("timeoutRate", timeoutRate), ("avgDurationMs", avgDurationMs)] {
            if v.isNaN || v < 0 {
                throw HealthError(field: field, message: "\(field) must be a number at or above 0 (got \(v))")
            }
        }
        if minTasks < 0 {
            throw HealthError(field: "minTasks", message: "minTasks must be 0 or more (got \(minTasks))")
        }
    }
}

/// A metric crossing its threshold, one way or the other.
public struct HealthAlert: Sendable, Equatable {
    public enum Metric: String, Sendable, CaseIterable {
        case failureRate = "failure_rate"
        case timeoutRate = "timeout_rate"
        case avgDurationMs = "avg_duration_ms"
    }

    public var metric: Metric
    /// true: the metric went above its threshold; false: it came back to it or below (cleared).
    public var raised: Bool
    /// The metric's value at that moment (a rate from 0 to 1, or milliseconds).
    public var value: Double
    public var threshold: Double
    /// The tasks behind `value`: counted tasks for the rates, timed tasks for the average.
    public var tasks: Int
    /// The monitor's clock reading, in seconds.
    public var at: Double

    public init(metric: Metric, raised: Bool, value: Double, threshold: Double, tasks: Int, at: Double) {
        self.metric = metric
        self.raised = raised
        self.value = value
        self.threshold = threshold
        self.tasks = tasks
        self.at = at
    }

    /// For people, e.g. "High failure rate detected: 25.0% (threshold 20.0%, 4 tasks)"
    /// or "Failure rate back to 20.0% (threshold 20.0%, 5 tasks)". Built from
    /// the fields, so it can never disagree with them.
    public var message: String {
        let shown: (value: String, threshold: String)
        let unit: String
        let head: String
        let counted: String
        switch metric {
        case .failureRate, .timeoutRate:
            shown = hmPair(value * 100, threshold * 100, differ: value != threshold, decimals: 1)
            unit = "%"
            let what = metric == .failureRate ? "failure rate" : "timeout rate"
            head = raised ? "High " + what + " detected: " : (metric == .failureRate ? "Failure" : "Timeout") + " rate back to "
            counted = tasks == 1 ? "1 task" : "\(tasks) tasks"
        case .avgDurationMs:
            let seconds = threshold >= 1000
            shown = seconds ? hmPair(value / 1000, threshold / 1000, differ: value != threshold, decimals: 3)
                            : hmPair(value, threshold, differ: value != threshold, decimals: 1)
            unit = seconds ? " s" : " ms"
            head = raised ? "High average task duration detected: " : "Average task duration back to "
            counted = tasks == 1 ? "1 timed task" : "\(tasks) timed tasks"
        }
        return head + shown.value + unit + " (threshold " + shown.threshold + unit + ", " + counted + ")"
    }

    /// One flat JSON object:
    /// {"metric":"failure_rate","raised":true,"value":0.25,"threshold":0.2,"tasks":4,"at":1.5,"message":"..."}.
    /// Non-finite numbers (an infinite threshold) are written as null.
    public var json: String {
        var out = "{\"metric\":\""
        out += metric.rawValue
        out += "\",\"raised\":"
        out += raised ? "true" : "false"
        out += ",\"value\":" + hmJSONNumber(value)
        out += ",\"threshold\":" + hmJSONNumber(threshold)
        out += ",\"tasks\":" + String(tasks)
        out += ",\"at\":" + hmJSONNumber(at)
        out += ",\"message\":"
        hmJSONString(message, into: &out)
        out += "}"
        return out
    }
}

/// The monitor's counts at one moment.
public struct HealthReport: Sendable, Equatable {
    /// Tasks counted: succeeded, failed, timed out and rejected (not cancelled or skipped).
    public var counted: Int
    /// Failed, timed-out and rejected tasks.
    public var failures: Int
    public var timeouts: Int
    /// Counted tasks that came with a run time.
    public var timed: Int
    /// Average run time of the timed tasks; 0 when none.
    public var avgDurationMs: Double
    /// failures / counted; 0 when nothing was counted.
    public var failureRate: Double
    public var timeoutRate: Double
    /// Metrics whose alert is raised now, in declaration order.
    public var active: [HealthAlert.Metric]
    /// How many times any alert was raised (clearings not included).
    public var alertsRaised: Int

    /// One JSON object with the fields above under snake_case keys.
    public var json: String {
        var out = "{\"counted\":" + String(counted)
        out += ",\"failures\":" + String(failures)
        out += ",\"timeouts\":" + String(timeouts)
        out += ",\"timed\":" + String(timed)
        out += ",\"failure_rate\":" + hmJSONNumber(failureRate)
        out += ",\"timeout_rate\":" + hmJSONNumber(timeoutRate)
        out += ",\"avg_duration_ms\":" + hmJSONNumber(avgDurationMs)
        out += ",\"active\":["
        for (k, m) in active.enumerated() {
            out += k == 0 ? "\"" : ",\""
            out += m.rawValue
            out += "\""
        }
        out += "],\"alerts_raised\":" + String(alertsRaised) + "}"
        return out
    }
}

/// Watches ended tasks and reports edge-triggered alerts. Thread-safe: any
/// number of workers may call `record` at once.
public final class HealthMonitor: @unchecked Sendable {
    public let thresholds: HealthThresholds
    private let now: @Sendable () -> Double
    private let lock = Lock()

    // Guarded by `lock`.
    private var counted = 0
    private var failures = 0
    private var timeouts = 0
    private var timed = 0
    private var totalNs: Int64 = 0
    /// One bit per `HealthAlert.Metric`, set while its alert is raised.
    private var activeBits: UInt8 = 0
    private var raisedCount = 0
    private var history: [HealthAlert] = []

    /// `now` gives the clock reading stamped on alerts, in seconds (a
    /// monotonic clock in the pool, a virtual one in tests). It is called
    /// with the monitor's lock held, only when an alert changes state, and
    /// must not call back into the monitor.
    public init(_ thresholds: HealthThresholds, now: @escaping @Sendable () -> Double) throws(HealthError) {
        try thresholds.validate()
        self.thresholds = thresholds
        self.now = now
    }

    /// Counts one ended task. Cancelled and skipped tasks are not counted
    /// (they say nothing about health), nor are statuses that are not final;
    /// failed, timed-out and rejected tasks count as failures, timed-out ones
    /// also as timeouts. `durationSeconds` is the task's run time, nil for a
    /// task that never ran; NaN and infinities count as nil, negatives as 0.
    ///
    /// Returns the alerts that changed state because of this task, in
    /// `HealthAlert.Metric` order. Usually empty, and then nothing is allocated.
    public func record(_ status: TaskStatus, durationSeconds: Double?) -> [HealthAlert] {
        let failed: Bool
        let timedOut: Bool
        switch status {
        case .succeeded: failed = false; timedOut = false
        case .failed, .rejected: failed = true; timedOut = false
        case .timedOut: failed = true; timedOut = true
        case .cancelled, .skipped, .pending, .queued, .running: return []
        }
        let ns = hmNanoseconds(durationSeconds)

        lock.lock()
        defer { lock.unlock() }
        counted += 1
        if failed { failures += 1 }
        if timedOut { timeouts += 1 }
        if let ns {
            timed += 1
            let (sum, overflow) = totalNs.addingReportingOverflow(ns)
            totalNs = overflow ? .max : sum
        }

        var changed: [HealthAlert] = []
        let minimum = max(1, thresholds.minTasks)
        if counted >= minimum {
            update(.failureRate, Double(failures) / Double(counted), thresholds.failureRate, counted, &changed)
            update(.timeoutRate, Double(timeouts) / Double(counted), thresholds.timeoutRate, counted, &changed)
        }
        // The average only moves when a timed task arrives.
        if ns != nil && timed >= minimum {
            update(.avgDurationMs, averageMs, thresholds.avgDurationMs, timed, &changed)
        }
        return changed
    }

    /// The counts and rates now.
    public var report: HealthReport {
        lock.lock()
        defer { lock.unlock() }
        return HealthReport(
            counted: counted, failures: failures, timeouts: timeouts, timed: timed,
            avgDurationMs: averageMs,
            failureRate: counted == 0 ? 0 : Double(failures) / Double(counted),
            timeoutRate: counted == 0 ? 0 : Double(timeouts) / Double(counted),
            active: HealthAlert.Metric.allCases.filter { activeBits & hmBit($0) != 0 },
            alertsRaised: raisedCount)
    }

    /// Every alert raised or cleared so far, in order.
    public var alerts: [HealthAlert] {
        lock.lock()
        defer { lock.unlock() }
        return history
    }

    /// True once any alert has been raised while `stopOnAlert` is set; stays
    /// true after the alert clears (the run already went bad once).
    public var shouldStop: Bool {
        guard thresholds.stopOnAlert else { return false }
        lock.lock()
        defer { lock.unlock() }
        return raisedCount > 0
    }

    /// Caller holds the lock.
    private var averageMs: Double {
        timed == 0 ? 0 : Double(totalNs) / Double(timed) / 1_000_000
    }

    /// Caller holds the lock. Records a state change, if there is one.
    private func update(_ metric: HealthAlert.Metric, _ value: Double, _ threshold: Double, _ tasks: Int,
                        _ changed: inout [HealthAlert]) {
        let above = value > threshold
        let bit = hmBit(metric)
        guard above != (activeBits & bit != 0) else { return }
        activeBits ^= bit
        if above { raisedCount += 1 }
        let alert = HealthAlert(metric: metric, raised: above, value: value, threshold: threshold, tasks: tasks, at: now())
        history.append(alert)
        changed.append(alert)
    }
}

// MARK: - Helpers

private func hmBit(_ m: HealthAlert.Metric) -> UInt8 {
    switch m {
    case .failureRate: return 1
    case .timeoutRate: return 2
    case .avgDurationMs: return 4
    }
}

/// Seconds to whole nanoseconds, so sums do not depend on the order threads
/// arrive in; nil for nil and non-finite input, saturating at Int64.max.
private func hmNanoseconds(_ seconds: Double?) -> Int64? {
    guard let seconds, seconds.isFinite else { return nil }
    let ns = (max(0, seconds) * 1e9).rounded()
    return ns >= 9.2e18 ? .max : Int64(ns)
}

/// `value` and `threshold` with `decimals` places, or up to three more when
/// that is what it takes to show that they differ.
private func hmPair(_ value: Double, _ threshold: Double, differ: Bool, decimals: Int) -> (String, String) {
    var d = decimals
    while true {
        let v = hmFixed(value, d), t = hmFixed(threshold, d)
        if v != t || !differ || d >= decimals + 3 { return (v, t) }
        d += 1
    }
}

/// `v` with exactly `decimals` places, rounded half away from zero.
private func hmFixed(_ v: Double, _ decimals: Int) -> String {
    if v.isNaN { return "nan" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    var scale: Int64 = 1
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(v) * Double(scale)).rounded(.toNearestOrAwayFromZero)
    guard scaled < 9.0e15 else { return v.description }
    let n = Int64(scaled)
    var out = v < 0 && n != 0 ? "-" : ""
    out += String(n / scale)
    if decimals > 0 {
        let frac = String(n % scale)
        out += "." + String(repeating: "0", count: decimals - frac.count) + frac
    }
    return out
}

/// Whole numbers without a fraction, others in Swift's shortest round-trip
/// form (valid JSON, e.g. 0.25 or 1e-07); NaN and infinities as null.
private func hmJSONNumber(_ v: Double) -> String {
    guard v.isFinite else { return "null" }
    if v == v.rounded() && abs(v) < 9.0e15 { return String(Int64(v)) }
    return v.description
}

private func hmJSONString(_ s: String, into out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
}
