import Foundation
import XCTest
import TaskGateCore

private let ms: Int64 = 1_000_000
private let sec: Int64 = 1_000_000_000

/// A run with every status, bucket edges hit exactly, an idle worker (3),
/// a worker past the pool size (5), an anonymous task and an unfinished one.
private func craftedSamples() -> [TaskMetricSample] {
    [
        TaskMetricSample(id: "a", processor: "text.upper", status: .succeeded, worker: 0, attempts: 1,
                         submitNs: 1 * sec, startNs: 1 * sec + 2 * ms, endNs: 1 * sec + 5 * ms, queueNs: 2 * ms, cache: .miss),
        TaskMetricSample(id: "b", group: "g1", status: .succeeded, worker: 1, attempts: 3,
                         submitNs: 1 * sec, startNs: 1_100 * ms, endNs: 1_600 * ms, queueNs: 100 * ms, cache: .hit),
        TaskMetricSample(id: "c", status: .failed, worker: 0, attempts: 2,
                         submitNs: 1 * sec, startNs: 1 * sec, endNs: 3 * sec, queueNs: 0),
        TaskMetricSample(id: nil, status: .timedOut, worker: 2, attempts: 1,
                         submitNs: 1 * sec, startNs: 8_500 * ms, endNs: 38_500 * ms, queueNs: 7_500 * ms),
        TaskMetricSample(id: "e", status: .cancelled, submitNs: 500 * ms, endNs: 1_500 * ms),
        TaskMetricSample(id: "f", status: .skipped, submitNs: 1 * sec, endNs: 1_500 * ms),
        TaskMetricSample(id: "g", status: .rejected, submitNs: 1 * sec, endNs: 2 * sec),
        TaskMetricSample(id: "h", status: .succeeded, worker: 5, attempts: 1,
                         submitNs: 500 * ms, startNs: 501 * ms, endNs: 400_500 * ms, queueNs: 1 * ms),
        TaskMetricSample(id: "r", status: .running, worker: 3, attempts: 1,
                         submitNs: 1 * sec, startNs: 2 * sec, endNs: 0, queueNs: 1 * sec),
    ]
}

/// Worked out by hand from `craftedSamples()`:
/// durations 0.003, 0.5, 2, 30, 399.999 s; queue waits 0.002, 0.1, 0, 7.5, 0.001 s;
/// run from 0.5 s to 400.5 s with 8 ended tasks.
private let craftedGolden = """
# HELP taskgate_tasks_submitted_total Tasks submitted in the run.
# TYPE taskgate_tasks_submitted_total counter
taskgate_tasks_submitted_total 9
# HELP taskgate_tasks_total Tasks by final status; "unfinished" counts tasks that had not ended.
# TYPE taskgate_tasks_total counter
taskgate_tasks_total{status="succeeded"} 3
taskgate_tasks_total{status="failed"} 1
taskgate_tasks_total{status="timed_out"} 1
taskgate_tasks_total{status="cancelled"} 1
taskgate_tasks_total{status="skipped"} 1
taskgate_tasks_total{status="rejected"} 1
taskgate_tasks_total{status="unfinished"} 1
# HELP taskgate_task_retries_total Processor calls beyond each task's first.
# TYPE taskgate_task_retries_total counter
taskgate_task_retries_total 3
# HELP taskgate_task_duration_seconds Run time of tasks that started and ended.
# TYPE taskgate_task_duration_seconds histogram
taskgate_task_duration_seconds_bucket{le="0.001"} 0
taskgate_task_duration_seconds_bucket{le="0.005"} 1
taskgate_task_duration_seconds_bucket{le="0.01"} 1
taskgate_task_duration_seconds_bucket{le="0.05"} 1
taskgate_task_duration_seconds_bucket{le="0.1"} 1
taskgate_task_duration_seconds_bucket{le="0.5"} 2
taskgate_task_duration_seconds_bucket{le="1"} 2
taskgate_task_duration_seconds_bucket{le="5"} 3
taskgate_task_duration_seconds_bucket{le="10"} 3
taskgate_task_duration_seconds_bucket{le="30"} 4
taskgate_task_duration_seconds_bucket{le="60"} 4
taskgate_task_duration_seconds_bucket{le="300"} 4
taskgate_task_duration_seconds_bucket{le="+Inf"} 5
taskgate_task_duration_seconds_sum 432.502
taskgate_task_duration_seconds_count 5
# HELP taskgate_task_queue_wait_seconds Time queued before starting, for tasks that started and ended.
# TYPE taskgate_task_queue_wait_seconds histogram
taskgate_task_queue_wait_seconds_bucket{le="0.001"} 2
taskgate_task_queue_wait_seconds_bucket{le="0.005"} 3
taskgate_task_queue_wait_seconds_bucket{le="0.01"} 3
taskgate_task_queue_wait_seconds_bucket{le="0.05"} 3
taskgate_task_queue_wait_seconds_bucket{le="0.1"} 4
taskgate_task_queue_wait_seconds_bucket{le="0.5"} 4
taskgate_task_queue_wait_seconds_bucket{le="1"} 4
taskgate_task_queue_wait_seconds_bucket{le="5"} 4
taskgate_task_queue_wait_seconds_bucket{le="10"} 5
taskgate_task_queue_wait_seconds_bucket{le="30"} 5
taskgate_task_queue_wait_seconds_bucket{le="60"} 5
taskgate_task_queue_wait_seconds_bucket{le="300"} 5
taskgate_task_queue_wait_seconds_bucket{le="+Inf"} 5
taskgate_task_queue_wait_seconds_sum 7.603
taskgate_task_queue_wait_seconds_count 5
# HELP taskgate_worker_tasks_total Tasks that ran on each worker.
# TYPE taskgate_worker_tasks_total counter
taskgate_worker_tasks_total{worker="0"} 2
taskgate_worker_tasks_total{worker="1"} 1
taskgate_worker_tasks_total{worker="2"} 1
taskgate_worker_tasks_total{worker="3"} 0
taskgate_worker_tasks_total{worker="5"} 1
# HELP taskgate_worker_busy_seconds_total Summed run time of the tasks on each worker.
# TYPE taskgate_worker_busy_seconds_total counter
taskgate_worker_busy_seconds_total{worker="0"} 2.003
taskgate_worker_busy_seconds_total{worker="1"} 0.5
taskgate_worker_busy_seconds_total{worker="2"} 30
taskgate_worker_busy_seconds_total{worker="3"} 0
taskgate_worker_busy_seconds_total{worker="5"} 399.999
# HELP taskgate_run_duration_seconds From the earliest submission to the latest end.
# TYPE taskgate_run_duration_seconds gauge
taskgate_run_duration_seconds 400
# HELP taskgate_run_throughput_tasks_per_second Ended tasks per second of run duration.
# TYPE taskgate_run_throughput_tasks_per_second gauge
taskgate_run_throughput_tasks_per_second 0.02
# HELP taskgate_cache_lookups_total Result-cache lookups by result.
# TYPE taskgate_cache_lookups_total counter
taskgate_cache_lookups_total{result="hit"} 1
taskgate_cache_lookups_total{result="miss"} 1

"""

private func lines(_ text: String) -> [String] {
    var out = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if out.last == "" { out.removeLast() }
    return out
}

private func find(_ samples: [PrometheusSample], _ name: String, _ labels: [(String, String)] = []) -> [PrometheusSample] {
    samples.filter { s in s.name == name && labels.allSatisfy { s.label($0.0) == $0.1 } }
}

private func value(_ samples: [PrometheusSample], _ name: String, _ labels: [(String, String)] = [],
                   file: StaticString = #filePath, line: UInt = #line) -> Double? {
    let found = find(samples, name, labels)
    XCTAssertEqual(found.count, 1, "\(name) \(labels)", file: file, line: line)
    return found.first?.value
}

final class MetricsTests: XCTestCase {
    func testCraftedRunMatchesHandWorkedTextLineByLine() throws {
        let text = try prometheusText(craftedSamples(), options: MetricsOptions(workers: 4))
        let got = lines(text), want = lines(craftedGolden)
        for (k, (g, w)) in zip(got, want).enumerated() {
            XCTAssertEqual(g, w, "line \(k + 1)")
        }
        XCTAssertEqual(got.count, want.count)
        XCTAssertEqual(text, craftedGolden)
    }

    func testEveryLineEndsInNewlineAndCarriesNoTimestamp() throws {
        let text = try prometheusText(craftedSamples(), options: MetricsOptions(perTask: true, workers: 4))
        XCTAssertTrue(text.hasSuffix("\n"))
        XCTAssertFalse(text.contains("\n\n"))
        let samples = try parsePrometheusText(text)
        XCTAssertFalse(samples.isEmpty)
        for s in samples { XCTAssertNil(s.timestampMs, s.description) }
        // A sample line is exactly "name{labels} value": one space after the labels.
        for line in lines(text) where !line.hasPrefix("#") {
            let afterLabels = line.split(separator: "}").last.map(String.init) ?? line
            XCTAssertEqual(afterLabels.split(separator: " ").count, afterLabels.hasPrefix(" ") ? 1 : 2, line)
        }
    }

    func testHelpAndTypeOncePerFamilyAndFamiliesNotInterleaved() throws {
        let text = try prometheusText(craftedSamples(), options: MetricsOptions(perTask: true, workers: 4))
        var typeNames: [String] = []
        var helpNames: [String] = []
        for line in lines(text) {
            if line.hasPrefix("# TYPE ") { typeNames.append(String(line.split(separator: " ")[2])) }
            if line.hasPrefix("# HELP ") { helpNames.append(String(line.split(separator: " ")[2])) }
        }
        XCTAssertEqual(typeNames, helpNames)
        XCTAssertEqual(Set(typeNames).count, typeNames.count)
        XCTAssertEqual(typeNames.count, 13)
        XCTAssertEqual(typeNames.suffix(3), ["taskgate_per_task_duration_seconds", "taskgate_per_task_queue_wait_seconds",
                                             "taskgate_per_task_attempts"])
        // The strict reader refuses interleaving, repeated HELP/TYPE and bad histograms.
        XCTAssertNoThrow(try parsePrometheusText(text))
    }

    func testParseBackRoundTrip() throws {
        let options = MetricsOptions(labels: [("run_id", "abc")], perTask: true, workers: 4)
        let text = try prometheusText(craftedSamples(), options: options)
        let samples = try parsePrometheusText(text)
        XCTAssertEqual(samples.count, lines(text).filter { !$0.hasPrefix("#") }.count)
        // Printing the samples back gives the same sample lines.
        XCTAssertEqual(samples.map(\.description), lines(text).filter { !$0.hasPrefix("#") })

        XCTAssertEqual(value(samples, "taskgate_tasks_submitted_total"), 9)
        XCTAssertEqual(value(samples, "taskgate_tasks_total", [("status", "timed_out")]), 1)
        XCTAssertEqual(value(samples, "taskgate_task_retries_total"), 3)
        XCTAssertEqual(value(samples, "taskgate_task_duration_seconds_bucket", [("le", "0.5")]), 2)
        XCTAssertEqual(value(samples, "taskgate_task_duration_seconds_bucket", [("le", "+Inf")]), 5)
        XCTAssertEqual(value(samples, "taskgate_task_duration_seconds_sum"), 432.502)
        XCTAssertEqual(value(samples, "taskgate_task_queue_wait_seconds_bucket", [("le", "0.001")]), 2)
        XCTAssertEqual(value(samples, "taskgate_worker_tasks_total", [("worker", "0")]), 2)
        XCTAssertEqual(value(samples, "taskgate_worker_busy_seconds_total", [("worker", "5")]), 399.999)
        XCTAssertEqual(value(samples, "taskgate_run_duration_seconds"), 400)
        XCTAssertEqual(value(samples, "taskgate_run_throughput_tasks_per_second"), 0.02)
        XCTAssertEqual(value(samples, "taskgate_cache_lookups_total", [("result", "hit")]), 1)
        for s in samples { XCTAssertEqual(s.labels.first?.0, "run_id", s.description) }
        for s in samples { XCTAssertEqual(s.label("run_id"), "abc") }
    }

    func testPerTaskSeriesAreOptInAndNamedOnly() throws {
        let off = try parsePrometheusText(try prometheusText(craftedSamples(), options: MetricsOptions(workers: 4)))
        XCTAssertTrue(off.allSatisfy { !$0.name.contains("per_task") && $0.label("task") == nil })

        let on = try parsePrometheusText(try prometheusText(craftedSamples(), options: MetricsOptions(perTask: true, workers: 4)))
        let durations = find(on, "taskgate_per_task_duration_seconds")
        XCTAssertEqual(durations.map { $0.label("task") }, ["a", "b", "c", "h"])
        XCTAssertEqual(durations.map(\.value), [0.003, 0.5, 2, 399.999])
        XCTAssertEqual(durations.map { $0.label("status") }, ["succeeded", "succeeded", "failed", "succeeded"])
        XCTAssertEqual(durations.map { $0.label("worker") }, ["0", "1", "0", "5"])
        let waits = find(on, "taskgate_per_task_queue_wait_seconds")
        XCTAssertEqual(waits.map { $0.label("task") }, ["a", "b", "c", "h"])
        XCTAssertEqual(waits.map(\.value), [0.002, 0.1, 0, 0.001])
        let attempts = find(on, "taskgate_per_task_attempts")
        XCTAssertEqual(attempts.map { $0.label("task") }, ["a", "b", "c", "e", "f", "g", "h", "r"])
        XCTAssertEqual(attempts.map(\.value), [1, 3, 2, 0, 0, 0, 1, 1])
        // The aggregates do not change when per-task series are added.
        XCTAssertEqual(on.filter { !$0.name.contains("per_task") }, off)
    }

    func testRepeatedIdKeepsOnlyItsLastSample() throws {
        let samples = [
            TaskMetricSample(id: "x", status: .failed, worker: 0, attempts: 1, startNs: 1 * sec, endNs: 2 * sec),
            TaskMetricSample(id: "y", status: .succeeded, worker: 0, attempts: 1, startNs: 1 * sec, endNs: 2 * sec),
            TaskMetricSample(id: "x", status: .succeeded, worker: 1, attempts: 4, startNs: 3 * sec, endNs: 6 * sec),
        ]
        let parsed = try parsePrometheusText(try prometheusText(samples, options: MetricsOptions(perTask: true)))
        XCTAssertEqual(find(parsed, "taskgate_per_task_attempts").map { $0.label("task") }, ["y", "x"])
        XCTAssertEqual(value(parsed, "taskgate_per_task_attempts", [("task", "x")]), 4)
        XCTAssertEqual(value(parsed, "taskgate_per_task_duration_seconds", [("task", "x")]), 3)
        XCTAssertEqual(find(parsed, "taskgate_per_task_duration_seconds", [("task", "x")]).map { $0.label("status") }, ["succeeded"])
        // Both still count in the aggregates.
        XCTAssertEqual(value(parsed, "taskgate_tasks_submitted_total"), 3)
    }

    func testPerTaskWithNoNamedTasksWritesNoPerTaskFamilies() throws {
        let samples = [TaskMetricSample(status: .succeeded, worker: 0, attempts: 1, startNs: 1 * sec, endNs: 2 * sec)]
        let text = try prometheusText(samples, options: MetricsOptions(perTask: true, workers: 1))
        XCTAssertFalse(text.contains("per_task"))
        let notRun = [TaskMetricSample(id: "n", status: .skipped)]
        let text2 = try prometheusText(notRun, options: MetricsOptions(perTask: true))
        XCTAssertFalse(text2.contains("per_task_duration"))
        XCTAssertTrue(text2.contains("taskgate_per_task_attempts{task=\"n\"} 0\n"))
        XCTAssertNoThrow(try parsePrometheusText(text2))
    }

    func testWeirdIdsAndLabelValuesAreEscapedAndRoundTrip() throws {
        let weird = "q\"uote \\back\\slash\nnew line \u{00FC}n\u{00EF}code \u{2713} \u{1F680}\ttab {brace}=,"
        let runId = "run \"7\"\\\n"
        let samples = [TaskMetricSample(id: weird, status: .succeeded, worker: 0, attempts: 2,
                                        submitNs: 1 * sec, startNs: 1 * sec, endNs: 2 * sec)]
        let text = try prometheusText(samples, options: MetricsOptions(labels: [("run_id", runId)], perTask: true, workers: 1))
        let escapedId = "q\\\"uote \\\\back\\\\slash\\nnew line \u{00FC}n\u{00EF}code \u{2713} \u{1F680}\ttab {brace}=,"
        let escapedRun = "run \\\"7\\\"\\\\\\n"
        XCTAssertTrue(text.contains("taskgate_per_task_attempts{run_id=\"\(escapedRun)\",task=\"\(escapedId)\"} 2\n"), text)
        XCTAssertTrue(text.contains("taskgate_tasks_submitted_total{run_id=\"\(escapedRun)\"} 1\n"))
        // No raw newline inside any line: every line starts with '#' or the prefix.
        for line in lines(text) { XCTAssertTrue(line.hasPrefix("# ") || line.hasPrefix("taskgate_"), line) }
        let parsed = try parsePrometheusText(text)
        XCTAssertEqual(find(parsed, "taskgate_per_task_attempts").first?.label("task"), weird)
        XCTAssertTrue(parsed.allSatisfy { $0.label("run_id") == runId })
    }

    func testPrefixAndConstantLabelValidation() {
        func message(_ options: MetricsOptions) -> String? {
            do { _ = try prometheusText([], options: options); return nil } catch { return error.message }
        }
        for bad in ["9lives", "task-gate", "t\u{00E5}sk", "a b", "x."] {
            let m = message(MetricsOptions(prefix: bad))
            XCTAssertNotNil(m, bad)
            XCTAssertTrue(m?.contains("\"\(bad)\"") == true && m?.contains("prefix") == true, m ?? bad)
        }
        for good in ["tg", "_x", "ns:sub", "A9_"] { XCTAssertNil(message(MetricsOptions(prefix: good)), good) }
        for bad in ["run-id", "9x", "", "r\u{00E9}", "a:b"] {
            let m = message(MetricsOptions(labels: [("ok", "1"), (bad, "v")]))
            XCTAssertTrue(m?.contains("invalid label name \"\(bad)\"") == true, m ?? "no error for \(bad)")
        }
        XCTAssertTrue(message(MetricsOptions(labels: [("__name__", "v")]))?.contains("\"__name__\"") == true)
        XCTAssertTrue(message(MetricsOptions(labels: [("__x", "v")]))?.contains("reserved") == true)
        for taken in ["status", "worker", "result", "task", "le"] {
            XCTAssertTrue(message(MetricsOptions(labels: [(taken, "v")]))?.contains("\"\(taken)\"") == true, taken)
        }
        XCTAssertTrue(message(MetricsOptions(labels: [("a", "1"), ("b", "2"), ("a", "3")]))?.contains("\"a\" is given twice") == true)
        XCTAssertNil(message(MetricsOptions(labels: [("_a", "1"), ("b2", "")])))
        // Option errors carry no line number.
        do { _ = try prometheusText([], options: MetricsOptions(prefix: "-")); XCTFail("accepted") } catch {
            XCTAssertNil(error.line)
        }
    }

    func testCustomAndEmptyPrefix() throws {
        let sample = [TaskMetricSample(status: .succeeded, worker: 0, attempts: 1, startNs: 1, endNs: 1)]
        let custom = try parsePrometheusText(try prometheusText(sample, options: MetricsOptions(prefix: "ci:tg")))
        XCTAssertTrue(custom.allSatisfy { $0.name.hasPrefix("ci:tg_") })
        XCTAssertEqual(value(custom, "ci:tg_tasks_total", [("status", "succeeded")]), 1)
        let bare = try parsePrometheusText(try prometheusText(sample, options: MetricsOptions(prefix: "")))
        XCTAssertEqual(value(bare, "tasks_submitted_total"), 1)
        XCTAssertTrue(bare.allSatisfy { !$0.name.hasPrefix("_") && !$0.name.hasPrefix("taskgate") })
    }

    func testEmptyRun() throws {
        let text = try prometheusText([], options: MetricsOptions())
        let parsed = try parsePrometheusText(text)
        XCTAssertEqual(value(parsed, "taskgate_tasks_submitted_total"), 0)
        XCTAssertEqual(find(parsed, "taskgate_tasks_total").count, 6)
        XCTAssertTrue(find(parsed, "taskgate_tasks_total").allSatisfy { $0.value == 0 })
        XCTAssertEqual(find(parsed, "taskgate_task_duration_seconds_bucket").count, 13)
        XCTAssertEqual(value(parsed, "taskgate_task_duration_seconds_sum"), 0)
        XCTAssertEqual(value(parsed, "taskgate_run_duration_seconds"), 0)
        XCTAssertEqual(value(parsed, "taskgate_run_throughput_tasks_per_second"), 0)
        XCTAssertEqual(find(parsed, "taskgate_worker_tasks_total").count, 0)
        XCTAssertTrue(text.contains("# TYPE taskgate_worker_tasks_total counter\n"))
        XCTAssertTrue(text.contains("taskgate_task_duration_seconds_bucket{le=\"+Inf\"} 0\n"))
    }

    func testIdleWorkersAndOutOfRangeWorker() throws {
        let samples = [
            TaskMetricSample(status: .succeeded, worker: 1_000_000, attempts: 1, startNs: 1 * sec, endNs: 1 * sec + 250 * ms),
            TaskMetricSample(status: .failed, worker: 1_000_000, attempts: 1, startNs: 2 * sec, endNs: 2 * sec + 1),
            TaskMetricSample(status: .succeeded, worker: 7, attempts: 1, startNs: 2 * sec, endNs: 3 * sec),
            // Never started: no worker credit even though a worker is named.
            TaskMetricSample(status: .cancelled, worker: 0, attempts: 0),
        ]
        let parsed = try parsePrometheusText(try prometheusText(samples, options: MetricsOptions(workers: 2)))
        XCTAssertEqual(find(parsed, "taskgate_worker_tasks_total").map { $0.label("worker") }, ["0", "1", "7", "1000000"])
        XCTAssertEqual(find(parsed, "taskgate_worker_tasks_total").map(\.value), [0, 0, 1, 2])
        XCTAssertEqual(value(parsed, "taskgate_worker_busy_seconds_total", [("worker", "1000000")]), 0.250000001)
        XCTAssertEqual(value(parsed, "taskgate_worker_busy_seconds_total", [("worker", "7")]), 1)
    }

    func testNumberFormatting() throws {
        // 1 ended task over 3 s: throughput 1/3 rounded to six decimals.
        let third = [TaskMetricSample(status: .succeeded, worker: 0, attempts: 1,
                                      submitNs: 1 * sec, startNs: 1 * sec, endNs: 4 * sec, queueNs: 1)]
        let text = try prometheusText(third, options: MetricsOptions(workers: 1))
        XCTAssertTrue(text.contains("taskgate_run_throughput_tasks_per_second 0.333333\n"), text)
        XCTAssertTrue(text.contains("taskgate_task_queue_wait_seconds_sum 0.000000001\n"))
        XCTAssertTrue(text.contains("taskgate_run_duration_seconds 3\n"))
        // Retries: attempts 0 adds nothing (never called), attempts 1 adds none.
        let retries = [TaskMetricSample(status: .skipped, attempts: 0), TaskMetricSample(status: .failed, attempts: 1),
                       TaskMetricSample(status: .failed, attempts: UInt32.max)]
        let r = try parsePrometheusText(try prometheusText(retries, options: MetricsOptions()))
        XCTAssertEqual(value(r, "taskgate_task_retries_total"), Double(UInt32.max - 1))
        // Negative queue time (bad clock data) counts as 0 rather than producing a negative sum.
        let negative = [TaskMetricSample(status: .succeeded, startNs: 5, endNs: 6, queueNs: -10)]
        let n = try parsePrometheusText(try prometheusText(negative, options: MetricsOptions()))
        XCTAssertEqual(value(n, "taskgate_task_queue_wait_seconds_sum"), 0)
        XCTAssertEqual(value(n, "taskgate_task_queue_wait_seconds_bucket", [("le", "0.001")]), 1)
    }

    // MARK: - Reader

    func testReaderAcceptsTheFormat() throws {
        let text = """
        # a plain comment
        # HELP m_total Counts \\\\ things\\nover lines.
        # TYPE m_total counter

        m_total{a="x\\"y\\\\z\\nw",b="",} 3 1700000000000
        \tm_total{a="2"}\t4.5e3
        # TYPE g gauge
        g NaN
        g{s="inf"} +Inf
        g{s="neg"} -Inf
        g{s="exp"} -1.25E-2
        untyped_thing 7

        """
        let s = try parsePrometheusText(text)
        XCTAssertEqual(s.count, 7)
        XCTAssertEqual(s[0], PrometheusSample(name: "m_total", labels: [("a", "x\"y\\z\nw"), ("b", "")], value: 3,
                                              timestampMs: 1_700_000_000_000))
        XCTAssertEqual(s[1], PrometheusSample(name: "m_total", labels: [("a", "2")], value: 4500))
        XCTAssertTrue(s[2].value.isNaN)
        XCTAssertEqual(s[3].value, .infinity)
        XCTAssertEqual(s[4].value, -.infinity)
        XCTAssertEqual(s[5].value, -0.0125)
        XCTAssertEqual(s[6].name, "untyped_thing")
        XCTAssertEqual(try parsePrometheusText(""), [])
    }

    func testReaderRejectsMalformedTextWithLineNumbers() {
        let cases: [(text: String, line: Int, says: String)] = [
            ("a 1\nb 2", 2, "newline"),
            ("# TYPE x counter\n# TYPE x gauge\n", 2, "second TYPE"),
            ("# HELP x one\n# HELP x two\n", 2, "second HELP"),
            ("x 1\n# TYPE x counter\n", 2, "after its samples"),
            ("# TYPE a counter\na 1\n# TYPE b counter\nb 1\na 2\n", 5, "interleaved"),
            ("a 1\nb 1\n# HELP a late\n", 3, "interleaved"),
            ("# TYPE x countr\n", 1, "unknown TYPE"),
            ("# TYPE x counter extra\n", 1, "after the TYPE"),
            ("# TYPE 9x counter\n", 1, "metric name"),
            ("# HELP x bad \\t escape\n", 1, "escape"),
            ("ok 1\n9x 1\n", 2, "metric name"),
            ("x{l=\"a\\tb\"} 1\n", 1, "escape"),
            ("ok 1\nx{l=\"abc} 1\n", 2, "unterminated"),
            ("x{l=abc} 1\n", 1, "'\"'"),
            ("x{l=\"a\" m=\"b\"} 1\n", 1, "',' or '}'"),
            ("x{9l=\"a\"} 1\n", 1, "label name"),
            ("x{a=\"1\",a=\"2\"} 1\n", 1, "repeated"),
            ("x{a=\"1\"} 1\nx{a=\"1\"} 2\n", 2, "duplicate series"),
            ("x 1\ny 2\ny 3\n", 3, "duplicate series"),
            ("x abc\n", 1, "invalid value"),
            ("x 0x10\n", 1, "invalid value"),
            ("x 1e\n", 1, "invalid value"),
            ("x\n", 1, "space before the value"),
            ("x{a=\"1\"}1\n", 1, "space before the value"),
            ("x 1 12.5\n", 1, "timestamp"),
            ("x 1 2 3\n", 1, "after the sample"),
            ("# TYPE c_total counter\nc_total -1\n", 2, "negative"),
            ("# TYPE h histogram\nh 1\n", 2, "_bucket, _sum or _count"),
            ("# TYPE h histogram\nh_bucket 1\n", 2, "no le"),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "invalid le"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"0.5\"} 2\n", 3, "does not increase"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n", 3, "below"),
            ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", 4, "differs"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 2\n", 3, "+Inf bucket"),
            ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n# TYPE z gauge\nz 1\nh_count 2\n", 5, "interleaved"),
            ("# TYPE s summary\ns 1\n", 2, "quantile"),
        ]
        for c in cases {
            do {
                let parsed = try parsePrometheusText(c.text)
                XCTFail("accepted \(c.text.debugDescription) as \(parsed)")
            } catch {
                XCTAssertEqual(error.line, c.line, c.text.debugDescription + " -> " + error.message)
                XCTAssertTrue(error.message.hasPrefix("line \(c.line): "), error.message)
                XCTAssertTrue(error.message.contains(c.says), c.text.debugDescription + " -> " + error.message)
            }
        }
    }

    func testReaderChecksHistogramsPerLabelSet() throws {
        // Buckets of two label sets interleave inside one family; each is checked on its own.
        let ok = """
        # TYPE h histogram
        h_bucket{k="a",le="1"} 1
        h_bucket{k="b",le="1"} 5
        h_bucket{k="a",le="+Inf"} 2
        h_bucket{k="b",le="+Inf"} 6
        h_count{k="a"} 2
        h_count{k="b"} 6
        h_sum{k="a"} 0.5

        """
        XCTAssertEqual(try parsePrometheusText(ok).count, 7)
        let bad = ok.replacingOccurrences(of: "h_count{k=\"b\"} 6", with: "h_count{k=\"b\"} 2")
        XCTAssertThrowsError(try parsePrometheusText(bad)) { error in
            XCTAssertEqual((error as? MetricsError)?.line, 7)
        }
    }
}
