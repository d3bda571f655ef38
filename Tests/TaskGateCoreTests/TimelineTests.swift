import Testing
import TaskGateCore

/// Non-overlapping count of `needle` in `text`, by bytes (no Foundation here).
private func occurrences(of needle: String, in text: String) -> Int {
    let h = Array(text.utf8), n = Array(needle.utf8)
    guard !n.isEmpty, h.count >= n.count else { return 0 }
    var count = 0, i = 0
    while i <= h.count - n.count {
        if h[i] == n[0] && Array(h[i..<(i + n.count)]) == n { count += 1; i += n.count } else { i += 1 }
    }
    return count
}

/// The text from `open` up to the next `close` after it; "" when absent.
private func section(_ text: String, from open: String, to close: String) -> String {
    let h = Array(text.utf8), o = Array(open.utf8), c = Array(close.utf8)
    var i = 0
    while i + o.count <= h.count, Array(h[i..<(i + o.count)]) != o { i += 1 }
    guard i + o.count <= h.count else { return "" }
    var j = i + o.count
    while j + c.count <= h.count, Array(h[j..<(j + c.count)]) != c { j += 1 }
    return String(decoding: h[i..<min(j, h.count)], as: UTF8.self)
}

private let ms: UInt64 = 1_000_000
private let t0: UInt64 = 9_000_000_000

private func sampleTasks() -> [TimelineTask] {
    let statuses = ["succeeded", "failed", "timed_out", "cancelled"]
    var tasks = (0..<40).map { i in
        TimelineTask(id: "t\(i)", processor: "proc", worker: i % 4, submitNs: t0 + UInt64(i) * ms,
                     startNs: t0 + UInt64(i) * 10 * ms, endNs: t0 + UInt64(i) * 10 * ms + 8 * ms,
                     status: statuses[i % statuses.count], attempts: 1 + i % 2,
                     error: i % 4 == 1 ? "boom \(i)" : nil)
    }
    tasks.append(TimelineTask(id: "never-a", worker: -1, submitNs: t0, startNs: 0, endNs: t0 + 50 * ms, status: "skipped", attempts: 0))
    tasks.append(TimelineTask(id: "never-b", worker: 2, submitNs: t0, startNs: 0, endNs: 0, status: "cancelled", attempts: 0))
    return tasks
}

private let options = TimelineOptions(title: "test run", runId: "r-1", workers: 4)

@Suite struct TimelineTests {
    @Test func oneBarPerTask() {
        let tasks = sampleTasks()
        let html = timelineHTML(tasks, options: options)
        #expect(occurrences(of: "class=\"bar", in: html) == tasks.count)
        #expect(occurrences(of: "data-task=\"", in: html) == tasks.count)
        #expect(occurrences(of: "<g class=\"lane\"", in: html) == 5)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.hasSuffix("</html>\n"))
        for w in 0..<4 { #expect(html.contains(">worker \(w)<")) }
        // Nothing loaded from elsewhere.
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("@import"))
    }

    @Test func escapesTaskData() {
        let evil = "<script>alert(1)</script>&\"'"
        let tasks = [
            TimelineTask(id: evil, processor: "</script><b>", group: "]]>", worker: 0, submitNs: t0, startNs: t0 + ms,
                         endNs: t0 + 2 * ms, status: "failed", error: "line1\nline2 </title> ]]> \u{0}"),
            TimelineTask(id: "задача-✓-🚀\nnext", worker: 1, submitNs: t0, startNs: t0 + ms, endNs: t0 + 3 * ms,
                         status: "weird \"status\" <x>"),
        ]
        let html = timelineHTML(tasks, options: TimelineOptions(title: "<t>&", runId: "\"r'", workers: 2))
        #expect(!html.contains(evil))
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"))
        // Only the page's own script element, opened and closed once.
        #expect(occurrences(of: "<script", in: html) == 1)
        #expect(occurrences(of: "</script", in: html) == 1)
        #expect(html.contains("line1\nline2 &lt;/title&gt; ]]&gt; \u{FFFD}"))
        #expect(!html.contains("]]>"))
        #expect(!html.contains("</script><b>"))
        #expect(html.contains("processor &lt;/script&gt;&lt;b&gt; \u{00B7} group ]]&gt;"))
        #expect(!html.contains("\u{0}"))
        // UTF-8 kept as is; the newline in an attribute survives as a reference.
        #expect(html.contains("data-task=\"задача-✓-🚀&#10;next\""))
        #expect(html.contains("<title>&lt;t&gt;&amp; \u{00B7} &quot;r&#39;</title>"))
        // An unknown status becomes a harmless class token but is shown escaped.
        #expect(html.contains("class=\"bar s-weird--status---x-\""))
        #expect(html.contains("weird &quot;status&quot; &lt;x&gt;"))
    }

    @Test func zeroTasks() {
        let html = timelineHTML([], options: options)
        #expect(occurrences(of: "class=\"bar", in: html) == 0)
        #expect(occurrences(of: "<g class=\"lane\"", in: html) == 4)
        #expect(!html.contains("not run<"))
        #expect(html.contains("<b>0</b> tasks"))
        #expect(html.contains("No tasks were recorded"))
        #expect(html.hasSuffix("</html>\n"))
        let bare = timelineHTML([], options: TimelineOptions(title: "", runId: "", workers: 0))
        #expect(occurrences(of: "<g class=\"lane\"", in: bare) == 0)
        #expect(bare.contains("data-lanes=\"0\""))
    }

    @Test func neverRanTasksGoToNotRunLane() {
        let html = timelineHTML(sampleTasks(), options: options)
        let notRun = section(html, from: "<g class=\"lane\" data-lane=\"not-run\">", to: "</svg>")
        #expect(notRun.contains(">not run<"))
        #expect(occurrences(of: "class=\"bar", in: notRun) == 2)
        #expect(notRun.contains("data-task=\"never-a\""))
        #expect(notRun.contains("data-task=\"never-b\""))  // had a worker but never started
        let worker2 = section(html, from: "<g class=\"lane\" data-lane=\"worker-2\">", to: "<g class=\"lane\"")
        #expect(occurrences(of: "class=\"bar", in: worker2) == 10)
        #expect(!worker2.contains("never-"))
    }

    @Test func deterministic() {
        let a = timelineHTML(sampleTasks(), options: options)
        let b = timelineHTML(sampleTasks(), options: options)
        #expect(a == b)
    }

    @Test func oneTaskAndZeroDuration() {
        let one = [TimelineTask(id: "only", worker: 0, submitNs: t0, startNs: t0, endNs: t0, status: "succeeded")]
        let html = timelineHTML(one, options: TimelineOptions(title: "x", runId: "y", workers: 1))
        #expect(occurrences(of: "class=\"bar", in: html) == 1)
        // A zero-length bar still gets the 1px minimum.
        #expect(html.contains("width=\"1\" height=\"12\"><title>only"))
        #expect(html.contains(">0 s</text>"))
    }

    @Test func overlappingBarsStack() {
        let tasks = [
            TimelineTask(id: "a", worker: 0, submitNs: t0, startNs: t0, endNs: t0 + 10 * ms, status: "failed"),
            TimelineTask(id: "b", worker: 0, submitNs: t0, startNs: t0 + 5 * ms, endNs: t0 + 12 * ms, status: "succeeded", attempts: 2),
            TimelineTask(id: "c", worker: 0, submitNs: t0, startNs: t0 + 12 * ms, endNs: t0 + 20 * ms, status: "succeeded"),
        ]
        let html = timelineHTML(tasks, options: TimelineOptions(title: "x", runId: "y", workers: 1))
        // Lane is two rows tall; b sits in the second row, c fits back in the first.
        let first = section(html, from: "<g transform=\"translate(0 35)\">", to: "</g>")
        let second = section(html, from: "<g transform=\"translate(0 51)\">", to: "</g>")
        #expect(first.contains("data-task=\"a\" x=\"124\""))
        #expect(first.contains("data-task=\"c\" x=\"760\""))
        #expect(second.contains("data-task=\"b\" x=\"389\""))
        #expect(!second.contains("data-task=\"a\"") && !second.contains("data-task=\"c\""))
        #expect(html.contains("height=\"38\"/>"))
        #expect(html.contains("<title>b\nsucceeded \u{00B7} 2 attempts\nran 7.0 ms at 0.005 s\nqueued 5.0 ms</title>"))
    }

    @Test func workerBeyondOptionsAddsOnlyUsedLanes() {
        let tasks = [
            TimelineTask(id: "far", worker: 6, submitNs: t0, startNs: t0 + ms, endNs: t0 + 2 * ms, status: "succeeded"),
            TimelineTask(id: "bogus", worker: 1_000_000, submitNs: t0, startNs: t0 + ms, endNs: t0 + 3 * ms, status: "failed"),
            TimelineTask(id: "far-again", worker: 6, submitNs: t0, startNs: t0 + 2 * ms, endNs: t0 + 3 * ms, status: "succeeded"),
        ]
        let html = timelineHTML(tasks, options: TimelineOptions(title: "x", runId: "y", workers: 2))
        #expect(occurrences(of: "<g class=\"lane\"", in: html) == 4)
        #expect(html.contains("data-lanes=\"4\""))
        let six = section(html, from: "data-lane=\"worker-6\">", to: "<g class=\"lane\"")
        #expect(six.contains(">worker 6<") && six.contains("data-task=\"far\"") && six.contains("data-task=\"far-again\""))
        #expect(html.contains("data-lane=\"worker-1000000\">"))
    }

    @Test func oddTimestampsDoNotBreakLayout() {
        let tasks = [
            // End before start (clock trouble): drawn as zero length at its start.
            TimelineTask(id: "backwards", worker: 0, submitNs: t0, startNs: t0 + 5 * ms, endNs: t0 + ms, status: "succeeded"),
            // Started but no end recorded.
            TimelineTask(id: "no-end", worker: 0, submitNs: t0, startNs: t0 + 6 * ms, endNs: 0, status: "cancelled"),
            // Nothing known at all.
            TimelineTask(id: "blank", worker: -1, submitNs: 0, startNs: 0, endNs: 0, status: "", attempts: 0),
        ]
        let html = timelineHTML(tasks, options: TimelineOptions(title: "x", runId: "y", workers: 1))
        #expect(occurrences(of: "class=\"bar", in: html) == 3)
        #expect(html.contains("class=\"bar s-unknown tick\" data-task=\"blank\""))
        #expect(!html.contains("nan") && !html.contains("inf"))
    }

    @Test func tenThousandTasksStaySmall() {
        let tasks = (0..<10_000).map { i in
            TimelineTask(id: "task-\(i)", processor: "resize", worker: i % 8, submitNs: t0 + UInt64(i) * 100_000,
                         startNs: t0 + UInt64(i) * 200_000, endNs: t0 + UInt64(i) * 200_000 + 1_500_000,
                         status: i % 50 == 0 ? "failed" : "succeeded", error: i % 50 == 0 ? "exit 1" : nil)
        }
        let html = timelineHTML(tasks, options: TimelineOptions(title: "big", runId: "r", workers: 8))
        #expect(occurrences(of: "class=\"bar", in: html) == 10_000)
        #expect(html.utf8.count < 3_000_000)
    }
}
