import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The engine's events, for a host's logger and the health monitor.
//
// The library never prints. A host that wants to know what happens registers
// a sink (the C door: tg_pool_set_log); with none, and no health monitor, the
// only cost on a task's way through is one relaxed load of `observing` when
// it ends. Events are made on the thread where they happen (a worker, a
// canceller, the timer) and handed to the sink there, synchronously.

/// Levels as Python's logging numbers them, so a bridge passes them through.
public enum LogLevel: Int32, Sendable {
    case debug = 10, info = 20, warning = 30, error = 40

    public var name: String {
        switch self {
        case .debug: return "debug"
        case .info: return "info"
        case .warning: return "warning"
        case .error: return "error"
        }
    }
}

/// One event. Strings are valid only during the sink's call.
public struct LogRecord {
    public var level: LogLevel
    /// task_started, task_ended, task_retry, group_failed, health_alert, health_cleared
    public var event: String
    /// One line of English.
    public var message: String
    public var runId: String
    public var taskId: UnsafePointer<CChar>?
    /// The task's submission number; -1 when the event is not about a task.
    public var seq: Int64
    /// The attempt (1 for the first call); 0 when none was made or it is not about a task.
    public var attempt: Int32
    public var worker: Int32
    /// The event's own fields as one JSON object.
    public var fields: String
    /// CLOCK_REALTIME nanoseconds.
    public var timeNs: Int64
}

public typealias LogSink = @Sendable (borrowing LogRecord) -> Void

/// Bits of TaskPool.observing.
enum Observing {
    static let log: UInt32 = 1
    static let health: UInt32 = 2
}

extension TaskPool {
    // MARK: - Set-up

    /// Sends events at `minLevel` and above to `sink` (nil: none). Calls made
    /// before this returns may still reach the previous sink.
    public func setLogSink(_ sink: LogSink?, minLevel: LogLevel) {
        observeLock.withLock {
            logSink = sink
            tgs_store_i32(logLevelWord, sink == nil ? Int32.max : minLevel.rawValue)
            refreshObserving()
        }
    }

    /// Watches the run's health from now on (nil: stop watching). Tasks that
    /// ended before are not counted.
    public func setHealthMonitor(_ monitor: HealthMonitor?) {
        observeLock.withLock {
            healthMonitor = monitor
            refreshObserving()
        }
    }

    public var health: HealthMonitor? { observeLock.withLock { healthMonitor } }

    /// Names the run in every event (a trace id); made at creation, "run-<time>-<pid>-<n>".
    public var runId: String {
        get { observeLock.withLock { runIdentifier } }
        set { observeLock.withLock { runIdentifier = newValue } }
    }

    /// Under observeLock.
    private func refreshObserving() {
        var bits: UInt32 = 0
        if logSink != nil { bits |= Observing.log }
        if healthMonitor != nil { bits |= Observing.health }
        tgs_store_u32(observing, bits)
    }

    @inline(__always) func logs(_ level: LogLevel) -> Bool {
        tgs_load_relaxed_u32(observing) & Observing.log != 0 && level.rawValue >= tgs_load_relaxed_i32(logLevelWord)
    }

    // MARK: - Emitting

    func emit(_ level: LogLevel, _ event: String, _ message: String, task i: Int32 = -1, attempt: UInt32 = 0,
              worker: Int32 = -1, fields: JSONFields = JSONFields()) {
        guard level.rawValue >= tgs_load_relaxed_i32(logLevelWord),
              let (sink, runId) = observeLock.withLock({ logSink.map { ($0, runIdentifier) } }) else { return }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let record = LogRecord(level: level, event: event, message: message, runId: runId,
                               taskId: i >= 0 ? task(i).pointee.id : nil, seq: Int64(i), attempt: Int32(attempt),
                               worker: worker, fields: fields.text, timeNs: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
        sink(record)
    }

    func taskName(_ i: Int32) -> String {
        task(i).pointee.id.map { "'" + String(cString: $0) + "'" } ?? "#\(i)"
    }

    /// A worker is about to call task i's processor.
    func observeStart(_ i: Int32, attempt: UInt32, worker: Int) {
        if logs(.debug) {
            emit(.debug, "task_started", "task \(taskName(i)) started (attempt \(attempt)) on worker \(worker)",
                 task: i, attempt: attempt, worker: Int32(worker))
        }
    }

    /// A retry of task i was scheduled.
    func observeRetry(_ i: Int32, attempt: Int, delayNs: Int64, error: String?, worker: Int) {
        var f = JSONFields()
        f.add("delay_ms", Double(delayNs) / 1e6)
        f.add("error", error)
        emit(.info, "task_retry", "task \(taskName(i)) attempt \(attempt) failed\(error.map { ": " + $0 } ?? ""); retrying in \(Double(delayNs) / 1e6) ms",
             task: i, attempt: UInt32(attempt), worker: Int32(worker), fields: f)
    }

    /// Task j is about to end as `st`: called from finishOne when observing,
    /// before the status is published, so a waiter released by this end
    /// finds its events delivered and the health monitor up to date. The
    /// task's fields are final; its status is still FINALIZING.
    @inline(never)
    func observeEnd(_ j: Int32, _ st: TaskStatus, worker: Int) {
        let bits = tgs_load_relaxed_u32(observing)
        let t = task(j)
        let start = tgs_load_relaxed_i64(&t.pointee.start_ns)
        let ran = start > 0 && t.pointee.end_ns >= start && t.pointee.result_bits & UInt8(TGS_RESULT_CACHE_HIT) == 0
        if bits & Observing.health != 0, let monitor = observeLock.withLock({ healthMonitor }) {
            var seconds: Double? = nil
            if ran {
                let w = Int(tgs_load_relaxed_i32(&t.pointee.worker))
                if clock.isVirtual, w >= 0, w < workers.count, w == worker, workers[w].clockStart != .min {
                    seconds = Double(clock.now() - workers[w].clockStart) / 1e9
                } else {
                    seconds = Double(t.pointee.end_ns - start) / 1e9
                }
            }
            let changes = monitor.record(st, durationSeconds: seconds)
            if !changes.isEmpty { healthChanged(changes, monitor) }
        }
        if bits & Observing.log != 0 {
            let level: LogLevel = switch st {
            case .succeeded: .debug
            case .cancelled, .skipped: .info
            default: .warning
            }
            guard logs(level) else { return }
            var error: String? = nil
            if st == .failed {
                error = t.pointee.error.map { String(cString: $0) } ?? "the processor reported failure"
            } else if st != .succeeded {
                error = t.pointee.note.map { String(cString: $0) }
            }
            let attempts = tgs_load_relaxed_u32(&t.pointee.attempts)
            var f = JSONFields()
            f.add("status", st.key)
            f.add("error", error)
            f.add("attempts", Int(attempts))
            f.add("group", t.pointee.group >= 0 ? groupName(t.pointee.group) : nil)
            f.add("queue_ms", ran ? Double(start - t.pointee.ready_ns) / 1e6 : 0)
            f.add("duration_ms", ran ? Double(t.pointee.end_ns - start) / 1e6 : 0)
            if t.pointee.result_bits & UInt8(TGS_RESULT_CACHE_HIT) != 0 { f.add("cache", "hit") }
            if t.pointee.result_bits & UInt8(TGS_RESULT_CACHE_MISS) != 0 { f.add("cache", "miss") }
            let why = error.map { ": " + $0 } ?? ""
            emit(level, "task_ended", "task \(taskName(j)) \(st.name)\(why)", task: j, attempt: attempts,
                 worker: start > 0 ? tgs_load_relaxed_i32(&t.pointee.worker) : -1, fields: f)
        }
    }

    private func groupName(_ g: Int32) -> String {
        submitLock.lock()
        defer { submitLock.unlock() }
        return String(cString: groupNames[Int(g)])
    }

    private func healthChanged(_ changes: [HealthAlert], _ monitor: HealthMonitor) {
        for a in changes {
            if logs(a.raised ? .warning : .info) {
                var f = JSONFields()
                f.add("metric", a.metric.rawValue)
                f.add("value", a.value)
                f.add("threshold", a.threshold)
                f.add("tasks", a.tasks)
                emit(a.raised ? .warning : .info, a.raised ? "health_alert" : "health_cleared", a.message, fields: f)
            }
        }
        if changes.contains(where: \.raised), monitor.shouldStop {
            let first = changes.first(where: \.raised)!
            _ = cancelAll(note: "cancelled: health alert: " + first.message)
        }
    }

    /// A critical group can no longer succeed.
    func observeGroupFailed(_ name: String, cause i: Int32, cancelAll all: Bool) {
        guard logs(.error) else { return }
        var f = JSONFields()
        f.add("group", name)
        f.add("cancel_all", all)
        emit(.error, "group_failed", "critical group '\(name)' failed (task \(taskName(i))); cancelling \(all ? "every unfinished task" : "its unfinished tasks")",
             task: i, attempt: tgs_load_relaxed_u32(&task(i).pointee.attempts), fields: f)
    }
}

/// A small JSON object writer for event fields.
public struct JSONFields {
    private var body = ""
    public init() {}

    public var text: String { "{" + body + "}" }

    private mutating func key(_ k: String) {
        if !body.isEmpty { body += "," }
        body += JSONText.quote(k) + ":"
    }

    public mutating func add(_ k: String, _ v: String?) {
        key(k)
        body += v.map(JSONText.quote) ?? "null"
    }

    public mutating func add(_ k: String, _ v: Int) {
        key(k)
        body += String(v)
    }

    public mutating func add(_ k: String, _ v: Double) {
        key(k)
        body += v.isFinite ? JSONText.number(v) : "null"
    }

    public mutating func add(_ k: String, _ v: Bool) {
        key(k)
        body += v ? "true" : "false"
    }
}

extension TaskPool {
    /// Every submitted task as the metrics see it, in submission order.
    public func metricSamples() -> [TaskMetricSample] {
        let n = submittedCount
        var out: [TaskMetricSample] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let r = result(Int32(i))
            let cache: CacheUse = r.flags & ResultFlags.cacheHit != 0 ? .hit : r.flags & ResultFlags.cacheMiss != 0 ? .miss : .none
            out.append(TaskMetricSample(id: r.id.map { String(cString: $0) }, group: r.group.map { String(cString: $0) },
                                        status: r.status, worker: r.worker, attempts: r.attempts,
                                        submitNs: r.submitNanoseconds, startNs: r.startNanoseconds, endNs: r.endNanoseconds,
                                        queueNs: r.queueNanoseconds, cache: cache))
        }
        return out
    }

    /// The run so far as Prometheus text (exposition format 0.0.4).
    public func prometheusMetrics(perTask: Bool = false, labels: [(String, String)] = []) throws(MetricsError) -> String {
        try prometheusText(metricSamples(), options: MetricsOptions(labels: labels, perTask: perTask, workers: workerCount))
    }
}
