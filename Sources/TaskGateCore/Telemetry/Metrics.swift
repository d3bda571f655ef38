// Run metrics in the Prometheus text exposition format (version 0.0.4).
//
// Plain Swift on purpose (no Foundation): numbers are formatted by hand from
// integers so the same input always gives byte-identical text.
//
// # Run metrics
//
// `prometheusText` turns the records of one run into the text a Prometheus
// scrape would return. Drop it into the node-exporter textfile collector's
// directory (write to a temporary name, then rename), push it to a
// Pushgateway, or keep it as a CI artifact. `parsePrometheusText` is a small,
// strict reader for the same format, used by the tests to check the output.
//
// Families, shown with the default prefix `taskgate` (the prefix and the
// underscore after it are replaced by `MetricsOptions.prefix`; an empty
// prefix gives the bare names):
//
//   taskgate_tasks_submitted_total            counter    every task passed in
//   taskgate_tasks_total{status}              counter    tasks by final status; all six statuses
//                                                        (succeeded, failed, timed_out, cancelled,
//                                                        skipped, rejected) are always written, and
//                                                        status="unfinished" is added when a task
//                                                        had not ended
//   taskgate_task_retries_total               counter    processor calls beyond the first
//   taskgate_task_duration_seconds            histogram  run time of tasks that started and ended
//   taskgate_task_queue_wait_seconds          histogram  queue wait of the same tasks
//   taskgate_worker_tasks_total{worker}       counter    tasks that ran on each worker
//   taskgate_worker_busy_seconds_total{worker} counter   their summed run time
//   taskgate_run_duration_seconds             gauge      earliest submission to latest end
//   taskgate_run_throughput_tasks_per_second  gauge      ended tasks / run duration
//   taskgate_cache_lookups_total{result}      counter    result-cache hits and misses
//
// Histogram buckets (seconds): 0.001 0.005 0.01 0.05 0.1 0.5 1 5 10 30 60
// 300 +Inf. Bucket edges are compared in integer nanoseconds, so a task of
// exactly 500 ms lands in the 0.5 bucket (Prometheus buckets are "less than
// or equal").
//
// Workers: every worker below `MetricsOptions.workers` gets a series even
// when idle; a worker index at or above it gets one only if a task ran on
// it, so one bogus index cannot produce millions of empty series.
//
// Per-task series (opt-in, `MetricsOptions.perTask`), named tasks only:
//
//   taskgate_per_task_duration_seconds{task,status,worker}  gauge  run time (tasks that started and ended)
//   taskgate_per_task_queue_wait_seconds{task}              gauge  queue wait (same tasks)
//   taskgate_per_task_attempts{task}                        gauge  processor calls
//
// They share a `per_task` name segment rather than a `_by_task` suffix:
// Prometheus names should say what is measured and leave dimensions to
// labels, the shared segment keeps them together and marks them as the
// high-cardinality set, and the names cannot be mistaken for (or collide
// with) the `_bucket`/`_sum`/`_count` series of the aggregate histograms.
// When an id occurs more than once, only its last sample gets per-task
// series (two series with the same labels would make the text invalid).
//
// Why per-task series are opt-in: every distinct label value is a separate
// time series. A 10,000-task run adds about 30,000 series, and with a
// `run_id` constant label every run adds new ones that never come back.
// Prometheus keeps an index and memory per series it has seen, so this
// "cardinality explosion" slows queries and can exhaust the server. The
// aggregate families are bounded by statuses x buckets x workers, whatever
// the run size. Turn per-task series on for one-off investigations or for
// a pipeline that reads the text itself, not for a long-lived Prometheus.
//
// Why no timestamps: samples carry no timestamp. The node-exporter textfile
// collector refuses a whole file when any sample has one ("contains
// unsupported client-side timestamps, skipping entire file"), and a scraper
// stamps samples with the scrape time anyway. When the run happened is in the
// file's modification time (node_textfile_mtime_seconds) and in the values
// themselves (run duration).

/// How a task used the result cache.
public enum CacheUse: String, Sendable {
    /// The cache was not consulted (caching off, or the task is not cacheable).
    case none
    case hit
    case miss
}

/// One task as the metrics see it, copied out of the engine's records after a run.
public struct TaskMetricSample: Sendable {
    /// The task's id; nil for anonymous tasks (which never get per-task series).
    public var id: String?
    public var group: String?
    /// Plugin processor name such as "text.upper"; nil for tasks running a C function.
    public var processor: String?
    /// Normally a final status; anything else is counted as "unfinished".
    public var status: TaskStatus
    /// Worker index; -1 when the task never ran.
    public var worker: Int32
    /// Processor calls; retries are the calls beyond the first.
    public var attempts: UInt32
    /// CLOCK_MONOTONIC nanoseconds; 0 where the task never got that far.
    public var submitNs: Int64
    public var startNs: Int64
    public var endNs: Int64
    /// Time spent queued, in nanoseconds (negative values count as 0).
    public var queueNs: Int64
    public var cache: CacheUse

    public init(id: String? = nil, group: String? = nil, processor: String? = nil,
                status: TaskStatus, worker: Int32 = -1, attempts: UInt32 = 0,
                submitNs: Int64 = 0, startNs: Int64 = 0, endNs: Int64 = 0, queueNs: Int64 = 0,
                cache: CacheUse = .none) {
        self.id = id
        self.group = group
        self.processor = processor
        self.status = status
        self.worker = worker
        self.attempts = attempts
        self.submitNs = submitNs
        self.startNs = startNs
        self.endNs = endNs
        self.queueNs = queueNs
        self.cache = cache
    }
}

public struct MetricsOptions: Sendable {
    /// Metric name prefix, joined to each name with "_". Must match
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`; the empty string means no prefix at all.
    public var prefix: String
    /// Constant labels written on every series, such as ("run_id", "abc").
    /// Names must match `[a-zA-Z_][a-zA-Z0-9_]*`, must not start with "__",
    /// must not repeat, and must not be one this file uses itself (status,
    /// worker, result, task, le). Values may be any text.
    public var labels: [(String, String)]
    /// Adds the per-task families (named tasks only). Off by default because
    /// every task becomes its own time series.
    public var perTask: Bool
    /// Pool size, so that idle workers still get series.
    public var workers: Int

    public init(prefix: String = "taskgate", labels: [(String, String)] = [],
                perTask: Bool = false, workers: Int = 0) {
        self.prefix = prefix
        self.labels = labels
        self.perTask = perTask
        self.workers = workers
    }
}

/// A bad prefix or label name (from `prometheusText`), or malformed text
/// (from `parsePrometheusText`, with the 1-based line number).
public struct MetricsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The offending line for parse errors; nil for option errors.
    public var line: Int?

    public init(_ message: String, line: Int? = nil) {
        self.message = line.map { "line \($0): " + message } ?? message
        self.line = line
    }

    public var description: String { message }
}

/// The run as Prometheus text exposition format 0.0.4: each family's HELP
/// and TYPE lines followed by its samples, families never interleaved, every
/// line ending in "\n". Deterministic: no dictionaries are iterated, no
/// clocks are read, and ties keep input order.
public func prometheusText(_ samples: [TaskMetricSample], options: MetricsOptions) throws(MetricsError) -> String {
    try pmValidate(options)
    var w = PmWriter(prefix: options.prefix.isEmpty ? "" : options.prefix + "_", labels: options.labels)
    let workers = max(0, options.workers)
    w.out.reserveCapacity(4_000 + 150 * workers + (options.perTask ? 250 * samples.count : 0))

    // One pass gathers everything the aggregate families need.
    var statusCounts = [Int](repeating: 0, count: pmStatuses.count)
    var unfinished = 0
    var ended = 0
    var retries = 0
    var duration = PmHistogram()
    var queueWait = PmHistogram()
    var workerTasks = [Int](repeating: 0, count: workers)
    var workerBusy = [Int64](repeating: 0, count: workers)
    var extraWorkers: [(worker: Int, ns: Int64)] = []
    var firstSubmit = Int64.max
    var lastEnd: Int64 = 0
    var hits = 0, misses = 0
    for s in samples {
        if let k = pmStatuses.firstIndex(of: s.status) { statusCounts[k] += 1 } else { unfinished += 1 }
        if s.status.isFinal { ended += 1 }
        if s.attempts > 0 { retries += Int(s.attempts) - 1 }
        if pmRan(s) {
            let ns = s.endNs - s.startNs
            duration.add(ns)
            queueWait.add(s.queueNs)
            let worker = Int(s.worker)
            if worker >= 0 && worker < workers {
                workerTasks[worker] += 1
                workerBusy[worker] = pmAdd(workerBusy[worker], ns)
            } else if worker >= workers {
                extraWorkers.append((worker, ns))
            }
        }
        if s.submitNs > 0 { firstSubmit = min(firstSubmit, s.submitNs) }
        if s.endNs > 0 { lastEnd = max(lastEnd, s.endNs) }
        switch s.cache {
        case .hit: hits += 1
        case .miss: misses += 1
        case .none: break
        }
    }
    let runNs = firstSubmit != .max && lastEnd > firstSubmit ? lastEnd - firstSubmit : 0

    w.family("tasks_submitted_total", "counter", "Tasks submitted in the run.")
    w.series("tasks_submitted_total", String(samples.count))

    w.family("tasks_total", "counter", "Tasks by final status; \"unfinished\" counts tasks that had not ended.")
    for (k, status) in pmStatuses.enumerated() {
        w.series("tasks_total", "status", status.key, String(statusCounts[k]))
    }
    if unfinished > 0 { w.series("tasks_total", "status", "unfinished", String(unfinished)) }

    w.family("task_retries_total", "counter", "Processor calls beyond each task's first.")
    w.series("task_retries_total", String(retries))

    w.histogram("task_duration_seconds", duration, help: "Run time of tasks that started and ended.")
    w.histogram("task_queue_wait_seconds", queueWait, help: "Time queued before starting, for tasks that started and ended.")

    // Workers past the pool size get series only if something ran on them.
    extraWorkers.sort { $0.worker < $1.worker }
    var extra: [(worker: Int, tasks: Int, ns: Int64)] = []
    for e in extraWorkers {
        if extra.last?.worker == e.worker {
            extra[extra.count - 1].tasks += 1
            extra[extra.count - 1].ns = pmAdd(extra[extra.count - 1].ns, e.ns)
        } else {
            extra.append((e.worker, 1, e.ns))
        }
    }
    w.family("worker_tasks_total", "counter", "Tasks that ran on each worker.")
    for k in 0..<workers { w.series("worker_tasks_total", "worker", String(k), String(workerTasks[k])) }
    for e in extra { w.series("worker_tasks_total", "worker", String(e.worker), String(e.tasks)) }
    w.family("worker_busy_seconds_total", "counter", "Summed run time of the tasks on each worker.")
    for k in 0..<workers { w.series("worker_busy_seconds_total", "worker", String(k), pmSeconds(workerBusy[k])) }
    for e in extra { w.series("worker_busy_seconds_total", "worker", String(e.worker), pmSeconds(e.ns)) }

    w.family("run_duration_seconds", "gauge", "From the earliest submission to the latest end.")
    w.series("run_duration_seconds", pmSeconds(runNs))
    w.family("run_throughput_tasks_per_second", "gauge", "Ended tasks per second of run duration.")
    w.series("run_throughput_tasks_per_second", runNs == 0 ? "0" : pmDouble(Double(ended) / (Double(runNs) / 1e9)))

    w.family("cache_lookups_total", "counter", "Result-cache lookups by result.")
    w.series("cache_lookups_total", "result", "hit", String(hits))
    w.series("cache_lookups_total", "result", "miss", String(misses))

    if options.perTask { pmWritePerTask(&w, samples) }
    return w.out
}

// MARK: - Per-task families

private func pmWritePerTask(_ w: inout PmWriter, _ samples: [TaskMetricSample]) {
    // A repeated id keeps only its last sample: equal label sets are invalid.
    var lastIndex: [String: Int] = [:]
    for (i, s) in samples.enumerated() { if let id = s.id { lastIndex[id] = i } }
    if lastIndex.isEmpty { return }
    func kept(_ i: Int) -> String? {
        guard let id = samples[i].id, lastIndex[id] == i else { return nil }
        return id
    }
    let anyRan = samples.indices.contains { kept($0) != nil && pmRan(samples[$0]) }
    if anyRan {
        let name = "per_task_duration_seconds"
        w.family(name, "gauge", "Run time of each named task that started and ended.")
        for i in samples.indices {
            guard let id = kept(i), pmRan(samples[i]) else { continue }
            let s = samples[i]
            w.begin(name)
            w.label("task", id)
            w.label("status", s.status.isFinal ? s.status.key : "unfinished")
            w.label("worker", String(s.worker))
            w.end(pmSeconds(s.endNs - s.startNs))
        }
        let wait = "per_task_queue_wait_seconds"
        w.family(wait, "gauge", "Queue wait of each named task that started and ended.")
        for i in samples.indices {
            guard let id = kept(i), pmRan(samples[i]) else { continue }
            w.series(wait, "task", id, pmSeconds(samples[i].queueNs))
        }
    }
    let attempts = "per_task_attempts"
    w.family(attempts, "gauge", "Processor calls made for each named task.")
    for i in samples.indices {
        guard let id = kept(i) else { continue }
        w.series(attempts, "task", id, String(samples[i].attempts))
    }
}

// MARK: - Writing

/// Final statuses in output order.
private let pmStatuses: [TaskStatus] = [.succeeded, .failed, .timedOut, .cancelled, .skipped, .rejected]
/// Label names this file writes itself; constant labels may not reuse them.
private let pmReservedLabels = ["status", "worker", "result", "task", "le"]
/// Histogram upper bounds in nanoseconds (0.001 s ... 300 s; +Inf is implicit).
private let pmBucketsNs: [Int64] = [
    1_000_000, 5_000_000, 10_000_000, 50_000_000, 100_000_000, 500_000_000,
    1_000_000_000, 5_000_000_000, 10_000_000_000, 30_000_000_000, 60_000_000_000, 300_000_000_000,
]
private let pmBucketLabels: [String] = pmBucketsNs.map(pmSeconds)

/// A task counts as having run when it started and its end is not before its start.
private func pmRan(_ s: TaskMetricSample) -> Bool { s.startNs > 0 && s.endNs >= s.startNs }

private struct PmHistogram {
    /// Non-cumulative counts per bound; the +Inf bucket is `count`.
    var buckets = [Int](repeating: 0, count: pmBucketsNs.count)
    var sumNs: Int64 = 0
    var count = 0

    mutating func add(_ ns: Int64) {
        let v = max(0, ns)
        if let k = pmBucketsNs.firstIndex(where: { v <= $0 }) { buckets[k] += 1 }
        sumNs = pmAdd(sumNs, v)
        count += 1
    }
}

private struct PmWriter {
    var out = ""
    let prefix: String
    /// `name="value",...` for the constant labels, already escaped; "" if none.
    let constant: String
    var braceOpen = false

    init(prefix: String, labels: [(String, String)]) {
        self.prefix = prefix
        var c = ""
        for (name, value) in labels {
            if !c.isEmpty { c += "," }
            c += name
            c += "=\""
            pmEscapeLabelValue(value, into: &c)
            c += "\""
        }
        constant = c
    }

    mutating func family(_ name: String, _ type: String, _ help: String) {
        out += "# HELP "
        out += prefix
        out += name
        out += " "
        pmEscapeHelp(help, into: &out)
        out += "\n# TYPE "
        out += prefix
        out += name
        out += " "
        out += type
        out += "\n"
    }

    mutating func begin(_ name: String, _ suffix: String = "") {
        out += prefix
        out += name
        out += suffix
        braceOpen = !constant.isEmpty
        if braceOpen { out += "{"; out += constant }
    }

    mutating func label(_ name: String, _ value: String) {
        out += braceOpen ? "," : "{"
        braceOpen = true
        out += name
        out += "=\""
        pmEscapeLabelValue(value, into: &out)
        out += "\""
    }

    mutating func end(_ value: String) {
        out += braceOpen ? "} " : " "
        out += value
        out += "\n"
    }

    mutating func series(_ name: String, _ value: String) {
        begin(name)
        end(value)
    }

    mutating func series(_ name: String, _ label: String, _ labelValue: String, _ value: String) {
        begin(name)
        self.label(label, labelValue)
        end(value)
    }

    mutating func histogram(_ name: String, _ h: PmHistogram, help: String) {
        family(name, "histogram", help)
        var cumulative = 0
        for k in pmBucketsNs.indices {
            cumulative += h.buckets[k]
            begin(name, "_bucket")
            label("le", pmBucketLabels[k])
            end(String(cumulative))
        }
        begin(name, "_bucket")
        label("le", "+Inf")
        end(String(h.count))
        begin(name, "_sum")
        end(pmSeconds(h.sumNs))
        begin(name, "_count")
        end(String(h.count))
    }
}

/// Label values escape backslash, double quote and newline; everything else,
/// any Unicode included, is written as it is.
private func pmEscapeLabelValue(_ s: String, into out: inout String) {
    if !s.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) { out += s; return }
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(u)
        }
    }
}

/// HELP text escapes only backslash and newline.
private func pmEscapeHelp(_ s: String, into out: inout String) {
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(u)
        }
    }
}

/// Nanoseconds as seconds: the integer part, then up to nine decimals with
/// trailing zeros trimmed ("0.5", "12", "0.000000001"). Negative counts as 0.
private func pmSeconds(_ ns: Int64) -> String {
    let v = max(0, ns)
    let whole = v / 1_000_000_000
    var frac = v % 1_000_000_000
    if frac == 0 { return String(whole) }
    var digits = 9
    while frac % 10 == 0 { frac /= 10; digits -= 1 }
    let f = String(frac)
    return String(whole) + "." + String(repeating: "0", count: digits - f.count) + f
}

/// A computed gauge value: whole numbers without a fraction, values from
/// 0.001 to 1e9 rounded to six decimals (no 17-digit noise), anything else
/// in Swift's shortest round-trip form, which Prometheus also reads.
private func pmDouble(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    var r = v
    if abs(v) >= 1e-3 && abs(v) < 1e9 { r = (v * 1e6).rounded() / 1e6 }
    if r == r.rounded() && abs(r) < 9.0e15 { return String(Int64(r)) }
    return r.description
}

private func pmAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}

// MARK: - Names

private func pmIsMetricName(_ s: String) -> Bool {
    var first = true
    for c in s.utf8 {
        let ok = pmIsLetter(c) || c == 0x5F || c == 0x3A || (!first && pmIsDigit(c))
        if !ok { return false }
        first = false
    }
    return !first
}

private func pmIsLabelName(_ s: String) -> Bool {
    var first = true
    for c in s.utf8 {
        let ok = pmIsLetter(c) || c == 0x5F || (!first && pmIsDigit(c))
        if !ok { return false }
        first = false
    }
    return !first
}

@inline(__always) private func pmIsLetter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
@inline(__always) private func pmIsDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

private func pmValidate(_ o: MetricsOptions) throws(MetricsError) {
    if !o.prefix.isEmpty && !pmIsMetricName(o.prefix) {
        throw MetricsError("invalid metric prefix \"\(o.prefix)\": it must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    }
    for (k, (name, _)) in o.labels.enumerated() {
        if !pmIsLabelName(name) {
            throw MetricsError("invalid label name \"\(name)\": it must match [a-zA-Z_][a-zA-Z0-9_]*")
        }
        if name.hasPrefix("__") {
            throw MetricsError("invalid label name \"\(name)\": names starting with \"__\" are reserved by Prometheus")
        }
        if pmReservedLabels.contains(name) {
            throw MetricsError("label name \"\(name)\" is used by the taskgate metrics themselves")
        }
        if o.labels[..<k].contains(where: { $0.0 == name }) {
            throw MetricsError("label name \"\(name)\" is given twice")
        }
    }
}

// MARK: - Reading

/// One sample line read back by `parsePrometheusText`.
public struct PrometheusSample: Sendable, Equatable, CustomStringConvertible {
    /// The full sample name, such as "taskgate_task_duration_seconds_bucket".
    public var name: String
    /// Labels in the order they were written, values unescaped.
    public var labels: [(String, String)]
    public var value: Double
    /// Milliseconds since the epoch when the line carried one (ours never do).
    public var timestampMs: Int64?

    public init(name: String, labels: [(String, String)] = [], value: Double, timestampMs: Int64? = nil) {
        self.name = name
        self.labels = labels
        self.value = value
        self.timestampMs = timestampMs
    }

    /// The value of the label called `name`, if present.
    public func label(_ name: String) -> String? {
        labels.first { $0.0 == name }?.1
    }

    /// NaN equals NaN here, so a sample read twice compares equal.
    public static func == (a: PrometheusSample, b: PrometheusSample) -> Bool {
        a.name == b.name && a.timestampMs == b.timestampMs
            && (a.value == b.value || (a.value.isNaN && b.value.isNaN))
            && a.labels.count == b.labels.count
            && zip(a.labels, b.labels).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    public var description: String {
        var s = name
        if !labels.isEmpty {
            s += "{"
            for (k, (n, v)) in labels.enumerated() {
                if k > 0 { s += "," }
                s += n + "=\""
                pmEscapeLabelValue(v, into: &s)
                s += "\""
            }
            s += "}"
        }
        let exact = value == value.rounded() && abs(value) < 9.0e15
        return s + " " + (value.isNaN ? "NaN" : value.isInfinite ? (value > 0 ? "+Inf" : "-Inf") : exact ? String(Int64(value)) : value.description)
    }
}

/// Reads text exposition format 0.0.4 strictly and returns its samples in
/// order. Rejected, with the 1-based line number: text not ending in "\n";
/// bad metric or label names; label values with escapes other than \\, \"
/// and \n, or unterminated; repeated labels or repeated series; values that
/// are not numbers, NaN or ±Inf; a second HELP or TYPE for a family, or one
/// after the family's samples; an unknown TYPE; a family that reappears
/// after another one started (interleaving); negative counters; histogram
/// samples without the _bucket/_sum/_count suffix, buckets without `le`,
/// with decreasing `le` or counts, or a `_count` that differs from the +Inf
/// bucket written before it; summary samples without `quantile`. Blank
/// lines and other comments are skipped.
public func parsePrometheusText(_ text: String) throws(MetricsError) -> [PrometheusSample] {
    var reader = PmReader()
    let bytes = Array(text.utf8)
    var start = 0
    var line = 0
    while start < bytes.count {
        line += 1
        guard let end = bytes[start...].firstIndex(of: 0x0A) else {
            throw MetricsError("the last line does not end in a newline", line: line)
        }
        reader.line = line
        try reader.read(bytes[start..<end])
        start = end + 1
    }
    return reader.samples
}

private enum PmType: String {
    case counter, gauge, histogram, summary, untyped
}

private struct PmReader {
    struct Family {
        var type: PmType?
        var help = false
        var hasSamples = false
    }

    var line = 0
    var samples: [PrometheusSample] = []
    var families: [String: Family] = [:]
    var current: String?
    var finished: Set<String> = []
    var seriesSeen: Set<String> = []
    /// Last bucket per histogram series (family + labels without `le`).
    var lastBucket: [String: (le: Double, count: Double)] = [:]

    func fail(_ message: String) -> MetricsError { MetricsError(message, line: line) }

    mutating func read(_ text: ArraySlice<UInt8>) throws(MetricsError) {
        var c = PmCursor(text)
        c.skipBlanks()
        if c.atEnd { return }
        if c.peek == 0x23 {  // '#'
            c.advance()
            c.skipBlanks()
            let keyword = c.word()
            guard keyword == "HELP" || keyword == "TYPE" else { return }  // a plain comment
            guard c.skipBlanks(), let name = c.metricName() else {
                throw fail("\(keyword) needs a valid metric name")
            }
            try enter(name)
            var f = families[name] ?? Family()
            if f.hasSamples { throw fail("\(keyword) for \(name) comes after its samples") }
            if keyword == "HELP" {
                if f.help { throw fail("second HELP for \(name)") }
                if !c.atEnd && !c.skipBlanks() { throw fail("expected a space after the metric name") }
                guard c.helpText() != nil else { throw fail("HELP for \(name) has an invalid escape (only \\\\ and \\n are allowed)") }
                f.help = true
            } else {
                if f.type != nil { throw fail("second TYPE for \(name)") }
                c.skipBlanks()
                let word = c.word()
                guard let type = PmType(rawValue: String(word)) else { throw fail("unknown TYPE \"\(word)\" for \(name)") }
                c.skipBlanks()
                if !c.atEnd { throw fail("unexpected text after the TYPE") }
                f.type = type
            }
            families[name] = f
            return
        }
        try sample(&c)
    }

    /// Moves to `family`, refusing to come back to one that already ended.
    mutating func enter(_ family: String) throws(MetricsError) {
        if current == family { return }
        if let current { finished.insert(current) }
        if finished.contains(family) {
            throw fail("\(family) appears again after other families (families must not be interleaved)")
        }
        current = family
    }

    mutating func sample(_ c: inout PmCursor) throws(MetricsError) {
        guard let name = c.metricName() else { throw fail("expected a metric name") }
        var labels: [(String, String)] = []
        if c.peek == 0x7B {  // '{'
            c.advance()
            while true {
                c.skipBlanks()
                if c.peek == 0x7D { c.advance(); break }
                guard let label = c.labelName() else { throw fail("expected a label name") }
                c.skipBlanks()
                guard c.peek == 0x3D else { throw fail("expected '=' after label \(label)") }
                c.advance()
                c.skipBlanks()
                guard c.peek == 0x22 else { throw fail("expected '\"' to open the value of label \(label)") }
                c.advance()
                let value: String
                switch c.labelValue() {
                case .success(let v): value = v
                case .failure(let e): throw fail("label \(label): " + e.message)
                }
                if labels.contains(where: { $0.0 == label }) { throw fail("label \(label) is repeated") }
                labels.append((label, value))
                c.skipBlanks()
                if c.peek == 0x2C { c.advance(); continue }
                guard c.peek == 0x7D else { throw fail("expected ',' or '}' after the value of label \(label)") }
                c.advance()
                break
            }
        }
        guard c.skipBlanks() else { throw fail("expected a space before the value") }
        let valueText = c.word()
        guard let value = pmParseValue(valueText) else { throw fail("invalid value \"\(valueText)\"") }
        var timestamp: Int64?
        if c.skipBlanks() && !c.atEnd {
            let t = c.word()
            guard let ts = pmParseTimestamp(t) else { throw fail("invalid timestamp \"\(t)\"") }
            timestamp = ts
            c.skipBlanks()
        }
        if !c.atEnd { throw fail("unexpected text after the sample") }

        let family = familyOf(name)
        try enter(family)
        families[family, default: Family()].hasSamples = true
        let key = pmSeriesKey(name, labels)
        if !seriesSeen.insert(key).inserted { throw fail("duplicate series \(name) with the same labels") }
        switch families[family]?.type {
        case .counter?:
            if value < 0 { throw fail("counter \(name) is negative") }
        case .histogram?:
            try checkHistogram(family, name, labels, value)
        case .summary?:
            if name == family && !labels.contains(where: { $0.0 == "quantile" }) {
                throw fail("summary sample \(name) has no quantile label")
            }
        default:
            break
        }
        samples.append(PrometheusSample(name: name, labels: labels, value: value, timestampMs: timestamp))
    }

    /// Histogram and summary samples belong to the family named without their suffix.
    func familyOf(_ name: String) -> String {
        if families[name]?.type != nil { return name }
        for (suffix, summaryToo) in [("_bucket", false), ("_sum", true), ("_count", true)] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            switch families[base]?.type {
            case .histogram?: return base
            case .summary? where summaryToo: return base
            default: continue
            }
        }
        return name
    }

    mutating func checkHistogram(_ family: String, _ name: String, _ labels: [(String, String)], _ value: Double) throws(MetricsError) {
        let suffix = name.dropFirst(family.count)
        let key = pmSeriesKey(family, labels.filter { $0.0 != "le" })
        switch suffix {
        case "_bucket":
            guard let leText = labels.first(where: { $0.0 == "le" })?.1 else {
                throw fail("histogram bucket \(name) has no le label")
            }
            guard let le = pmParseValue(Substring(leText)), !le.isNaN else {
                throw fail("histogram bucket \(name) has an invalid le \"\(leText)\"")
            }
            if let prev = lastBucket[key] {
                if le <= prev.le { throw fail("histogram \(family): le \(leText) does not increase") }
                if value < prev.count { throw fail("histogram \(family): bucket le=\(leText) is below the bucket before it") }
            }
            lastBucket[key] = (le, value)
        case "_count":
            guard let last = lastBucket[key], last.le == .infinity else {
                throw fail("histogram \(family): _count without a +Inf bucket before it")
            }
            if last.count != value { throw fail("histogram \(family): _count differs from the +Inf bucket") }
        case "_sum":
            break
        default:
            throw fail("histogram sample \(name) must end in _bucket, _sum or _count")
        }
    }
}

private func pmSeriesKey(_ name: String, _ labels: [(String, String)]) -> String {
    var key = name
    for (n, v) in labels.sorted(by: { $0.0 < $1.0 }) {
        key += "\u{0}" + n + "\u{1}" + v
    }
    return key
}

/// Numbers as Go's ParseFloat reads them in this format, minus hex forms:
/// [+-]digits[.digits][e[+-]digits], plus NaN, +Inf, -Inf and Inf.
private func pmParseValue(_ s: Substring) -> Double? {
    switch s {
    case "NaN": return .nan
    case "+Inf", "Inf": return .infinity
    case "-Inf": return -.infinity
    default: break
    }
    let u = Array(s.utf8)
    var i = 0
    if i < u.count && (u[i] == 0x2B || u[i] == 0x2D) { i += 1 }
    var mantissa = 0
    while i < u.count && pmIsDigit(u[i]) { i += 1; mantissa += 1 }
    if i < u.count && u[i] == 0x2E {
        i += 1
        while i < u.count && pmIsDigit(u[i]) { i += 1; mantissa += 1 }
    }
    if mantissa == 0 { return nil }
    if i < u.count && (u[i] == 0x65 || u[i] == 0x45) {
        i += 1
        if i < u.count && (u[i] == 0x2B || u[i] == 0x2D) { i += 1 }
        var exponent = 0
        while i < u.count && pmIsDigit(u[i]) { i += 1; exponent += 1 }
        if exponent == 0 { return nil }
    }
    return i == u.count ? Double(s) : nil
}

private func pmParseTimestamp(_ s: Substring) -> Int64? {
    let u = s.utf8
    guard let first = u.first else { return nil }
    let digits = first == 0x2D || first == 0x2B ? u.dropFirst() : u[...]
    guard !digits.isEmpty, digits.allSatisfy(pmIsDigit) else { return nil }
    return Int64(s)
}

/// A position in one line's bytes.
private struct PmCursor {
    let bytes: ArraySlice<UInt8>
    var i: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        i = bytes.startIndex
    }

    var atEnd: Bool { i >= bytes.endIndex }
    var peek: UInt8? { atEnd ? nil : bytes[i] }
    mutating func advance() { i += 1 }

    /// Skips spaces and tabs; says whether there were any.
    @discardableResult
    mutating func skipBlanks() -> Bool {
        let from = i
        while let c = peek, c == 0x20 || c == 0x09 { i += 1 }
        return i > from
    }

    /// Everything up to the next blank or the end of the line.
    mutating func word() -> Substring {
        let from = i
        while let c = peek, c != 0x20 && c != 0x09 { i += 1 }
        return Substring(String(decoding: bytes[from..<i], as: UTF8.self))
    }

    mutating func metricName() -> String? {
        name { c, first in pmIsLetter(c) || c == 0x5F || c == 0x3A || (!first && pmIsDigit(c)) }
    }

    mutating func labelName() -> String? {
        name { c, first in pmIsLetter(c) || c == 0x5F || (!first && pmIsDigit(c)) }
    }

    private mutating func name(_ allowed: (UInt8, Bool) -> Bool) -> String? {
        let from = i
        while let c = peek, allowed(c, i == from) { i += 1 }
        return i > from ? String(decoding: bytes[from..<i], as: UTF8.self) : nil
    }

    /// A label value after its opening quote, through the closing quote.
    mutating func labelValue() -> Result<String, MetricsError> {
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            switch c {
            case 0x22:
                return .success(String(decoding: out, as: UTF8.self))
            case 0x5C:
                switch peek {
                case 0x5C?: out.append(0x5C)
                case 0x22?: out.append(0x22)
                case 0x6E?: out.append(0x0A)
                default: return .failure(MetricsError("invalid escape in value (only \\\\, \\\" and \\n are allowed)"))
                }
                i += 1
            default:
                out.append(c)
            }
        }
        return .failure(MetricsError("unterminated value"))
    }

    /// The rest of the line as HELP text, unescaped; nil on a bad escape.
    mutating func helpText() -> String? {
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            if c != 0x5C { out.append(c); continue }
            switch peek {
            case 0x5C?: out.append(0x5C)
            case 0x6E?: out.append(0x0A)
            default: return nil
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
