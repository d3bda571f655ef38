// A run drawn as one self-contained HTML page: a lane per worker, a bar per
// task. The page is meant to be opened from disk, mailed, or attached to a CI
// job, so it carries no external resources and reads fine with scripts off;
// the only script counts what actually rendered, for headless checks.
//
// Plain Swift on purpose (no Foundation): numbers are formatted by hand from
// integers so the same input always gives byte-identical text.

/// One task as the timeline sees it, copied out of the engine's records after a run.
public struct TimelineTask: Sendable {
    public var id: String
    public var processor: String?
    public var group: String?
    /// Worker index; -1 when the task never ran (skipped or cancelled before start).
    public var worker: Int
    /// Monotonic nanoseconds. `startNs == 0` means the task never started.
    public var submitNs: UInt64
    public var startNs: UInt64
    public var endNs: UInt64
    /// "succeeded", "failed", "timed_out", "cancelled", "skipped" or "rejected";
    /// anything else is drawn in a neutral colour rather than refused.
    public var status: String
    public var attempts: Int
    public var error: String?

    public init(id: String, processor: String? = nil, group: String? = nil, worker: Int,
                submitNs: UInt64, startNs: UInt64, endNs: UInt64, status: String,
                attempts: Int = 1, error: String? = nil) {
        self.id = id
        self.processor = processor
        self.group = group
        self.worker = worker
        self.submitNs = submitNs
        self.startNs = startNs
        self.endNs = endNs
        self.status = status
        self.attempts = attempts
        self.error = error
    }
}

public struct TimelineOptions: Sendable {
    public var title: String
    public var runId: String
    /// Lanes drawn even when idle; a task on a higher worker index adds lanes.
    public var workers: Int

    public init(title: String, runId: String, workers: Int) {
        self.title = title
        self.runId = runId
        self.workers = workers
    }
}

/// The whole page as one string. Deterministic: no dictionaries, no clocks,
/// ties broken by input order.
public func timelineHTML(_ tasks: [TimelineTask], options: TimelineOptions) -> String {
    let plan = TimelinePlan(tasks, workers: options.workers)
    var out = ""
    out.reserveCapacity(6_000 + tasks.count * 260)
    tlWriteHead(&out, options)
    out += "<body>\n"
    tlWriteHeader(&out, plan, tasks, options)
    tlWriteChart(&out, plan, tasks)
    tlWriteProblems(&out, plan, tasks)
    out += tlScript
    out += "</body>\n</html>\n"
    return out
}

// MARK: - Geometry

private let tlSvgWidth = 1200.0
/// Room for lane labels on the left and for a last 1px bar on the right.
private let tlGutter = 124.0
private let tlRightPad = 16.0
private let tlPlotWidth = tlSvgWidth - tlGutter - tlRightPad
private let tlAxisHeight = 30.0
private let tlLanePad = 3.0
private let tlRowHeight = 16.0
private let tlBarHeight = 12.0
/// Retries can make one worker look busy twice at once; a few stacked rows show
/// that, but a pathological input must not grow a lane without bound.
private let tlMaxWorkerRows = 6
private let tlMaxNotRunRows = 4
/// Never-run tasks have no duration; they get a thin mark at their end time.
private let tlMarkerWidth = 2.0
/// A long error would swamp the tooltip and bloat a 10k-task page.
private let tlMaxErrorScalars = 300
private let tlMaxProblemRows = 100

private let tlKnownStatuses = ["succeeded", "failed", "timed_out", "cancelled", "skipped", "rejected"]

/// Where each task lands. Computed once so header, chart and problem list agree.
private struct TimelinePlan {
    struct Placed {
        var ran: Bool
        /// Relative to `origin`; for never-run tasks both are the marker time.
        var start: UInt64
        var end: UInt64
        var submit: UInt64
        var wait: UInt64?
        var row = 0
    }
    struct Lane {
        var label: String
        var key: String
        /// Indices into the task array, in drawing order.
        var members: [Int] = []
        var rows = 1
        var busy: UInt64 = 0
    }

    var origin: UInt64 = 0
    var wall: UInt64 = 0
    var placed: [Placed] = []
    var lanes: [Lane] = []
    /// Status strings in display order (known ones first) with their counts.
    var counts: [(status: String, count: Int)] = tlKnownStatuses.map { ($0, 0) }

    init(_ tasks: [TimelineTask], workers: Int) {
        // The earliest thing we know about is time zero; zeros mean "unknown".
        var origin = UInt64.max
        for t in tasks {
            for v in [t.submitNs, t.startNs, t.endNs] where v != 0 { origin = min(origin, v) }
        }
        if origin == .max { origin = 0 }
        self.origin = origin
        func rel(_ v: UInt64) -> UInt64 { v > origin ? v - origin : 0 }

        let workers = max(0, workers)
        // Workers past `workers` get a lane only if they ran something, so one
        // bogus index cannot produce a million empty lanes.
        var extraWorkers: [Int] = []
        var anyNotRun = false
        placed.reserveCapacity(tasks.count)
        for t in tasks {
            let ran = t.worker >= 0 && t.startNs != 0
            var p: Placed
            if ran {
                let s = rel(t.startNs)
                let e = t.endNs > t.startNs ? rel(t.endNs) : s
                let wait: UInt64? = t.submitNs != 0 && t.startNs >= t.submitNs ? t.startNs - t.submitNs : nil
                p = Placed(ran: true, start: s, end: e, submit: rel(t.submitNs), wait: wait)
                if t.worker >= workers { extraWorkers.append(t.worker) }
            } else {
                let at = t.endNs != 0 ? rel(t.endNs) : rel(t.submitNs)
                p = Placed(ran: false, start: at, end: at, submit: rel(t.submitNs), wait: nil)
                anyNotRun = true
            }
            wall = max(wall, max(p.end, p.submit))
            placed.append(p)
            if let k = counts.firstIndex(where: { $0.status == t.status }) {
                counts[k].count += 1
            } else {
                counts.append((t.status, 1))
            }
        }

        extraWorkers.sort()
        var shown = Array(0..<workers)
        for w in extraWorkers where shown.last != w { shown.append(w) }
        let laneCount = shown.count
        func laneOf(_ worker: Int) -> Int {
            if worker < workers { return worker }
            var lo = workers, hi = laneCount - 1
            while lo < hi { let mid = (lo + hi) / 2; if shown[mid] < worker { lo = mid + 1 } else { hi = mid } }
            return lo
        }
        lanes = shown.map { Lane(label: "worker \($0)", key: "worker-\($0)") }
        if anyNotRun { lanes.append(Lane(label: "not run", key: "not-run")) }
        for (i, t) in tasks.enumerated() {
            lanes[placed[i].ran ? laneOf(t.worker) : laneCount].members.append(i)
        }

        // Stack in time for workers (true overlap), in pixels for markers
        // (same-instant cancellations would otherwise hide each other).
        let markerNs = tlMarkerWidth * 1.5 * Double(max(wall, 1)) / tlPlotWidth
        // Rows go to a side array: writing into `placed` while the sort's copy
        // is alive would copy the whole array once per lane.
        let placed = self.placed
        var rowOf = [Int](repeating: 0, count: placed.count)
        for l in lanes.indices {
            let isNotRun = l == laneCount
            lanes[l].members.sort { a, b in
                let pa = placed[a], pb = placed[b]
                if pa.start != pb.start { return pa.start < pb.start }
                if pa.end != pb.end { return pa.end < pb.end }
                return a < b
            }
            var rowEnds: [Double] = []
            var busyFrom: UInt64 = 0, busyTo: UInt64 = 0, busy: UInt64 = 0
            for i in lanes[l].members {
                let p = placed[i]
                let s = Double(p.start)
                let e = isNotRun ? s + markerNs : Double(p.end)
                var row = rowEnds.firstIndex(where: { $0 <= s }) ?? -1
                if row < 0 {
                    if rowEnds.count < (isNotRun ? tlMaxNotRunRows : tlMaxWorkerRows) {
                        row = rowEnds.count
                        rowEnds.append(e)
                    } else {
                        row = rowEnds.indices.min(by: { rowEnds[$0] < rowEnds[$1] }) ?? 0
                    }
                }
                rowEnds[row] = max(rowEnds[row], e)
                rowOf[i] = row
                if !isNotRun {
                    // Union of busy intervals, so stacked retries are not counted twice.
                    if p.start > busyTo { busy += busyTo - busyFrom; busyFrom = p.start; busyTo = p.end }
                    else { busyTo = max(busyTo, p.end) }
                }
            }
            lanes[l].busy = busy + (busyTo - busyFrom)
            lanes[l].rows = max(1, rowEnds.count)
        }
        for i in rowOf.indices { self.placed[i].row = rowOf[i] }
    }

    func x(_ t: UInt64) -> Double { tlGutter + Double(t) / Double(max(wall, 1)) * tlPlotWidth }
    func laneHeight(_ l: Lane) -> Double { 2 * tlLanePad + Double(l.rows) * tlRowHeight }
}

// MARK: - Page parts

private func tlWriteHead(_ out: inout String, _ o: TimelineOptions) {
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>"
    tlEscape(o.title, into: &out)
    out += " \u{00B7} "
    tlEscape(o.runId, into: &out)
    out += "</title>\n<style>\n"
    out += tlCSS
    out += "</style>\n</head>\n"
}

private func tlWriteHeader(_ out: inout String, _ plan: TimelinePlan, _ tasks: [TimelineTask], _ o: TimelineOptions) {
    out += "<header>\n<h1>"
    tlEscape(o.title, into: &out)
    out += "</h1>\n<p class=\"facts\">run <code>"
    tlEscape(o.runId, into: &out)
    out += "</code> \u{00B7} <b>\(tasks.count)</b> task\(tasks.count == 1 ? "" : "s") \u{00B7} wall <b>"
    out += tlDuration(plan.wall)
    let workerLanes = plan.lanes.count - (plan.lanes.last?.key == "not-run" ? 1 : 0)
    out += "</b> \u{00B7} \(workerLanes) worker\(workerLanes == 1 ? "" : "s")</p>\n"
    // The legend doubles as the per-status counts: one glance gives both.
    out += "<ul class=\"legend\">\n"
    for (status, count) in plan.counts {
        out += "<li\(count == 0 ? " class=\"zero\"" : "")><span class=\"chip s-"
        out += tlStatusClass(status)
        out += "\"></span>"
        tlEscape(status, into: &out)
        out += " <b>\(count)</b></li>\n"
    }
    out += "<li class=\"note\"><span class=\"chip tick\"></span>never ran: thin mark at the time it was dropped</li>\n"
    out += "</ul>\n</header>\n"
}

private func tlWriteChart(_ out: inout String, _ plan: TimelinePlan, _ tasks: [TimelineTask]) {
    var laneTops: [Double] = []
    var y = tlAxisHeight
    for l in plan.lanes { laneTops.append(y); y += plan.laneHeight(l) }
    let height = y + 8

    out += "<div class=\"chart\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(tlPx(tlSvgWidth))\" height=\"\(tlPx(height))\" "
    out += "viewBox=\"0 0 \(tlPx(tlSvgWidth)) \(tlPx(height))\" role=\"img\" aria-label=\"task timeline\" data-lanes=\"\(plan.lanes.count)\">\n"

    // Backgrounds first so gridlines stay visible over the shading.
    out += "<g class=\"bgs\">\n"
    for (k, l) in plan.lanes.enumerated() {
        out += "<rect class=\"\(k % 2 == 0 ? "even" : "odd")\" x=\"0\" y=\"\(tlPx(laneTops[k]))\" width=\"\(tlPx(tlSvgWidth))\" height=\"\(tlPx(plan.laneHeight(l)))\"/>\n"
    }
    out += "</g>\n<g class=\"grid\">\n"
    let (step, decimals) = tlAxisStep(plan.wall)
    var tick: UInt64 = 0
    while true {
        let x = tlPx(plan.x(tick))
        out += "<line x1=\"\(x)\" y1=\"\(tlPx(tlAxisHeight - 6))\" x2=\"\(x)\" y2=\"\(tlPx(y))\"/>"
        out += "<text x=\"\(x)\" y=\"\(tlPx(tlAxisHeight - 10))\">\(tick == 0 ? "0" : tlSeconds(tick, decimals: decimals)) s</text>\n"
        if plan.wall - tick < step { break }
        tick += step
    }
    out += "</g>\n"

    for (k, l) in plan.lanes.enumerated() {
        let top = laneTops[k]
        let mid = top + plan.laneHeight(l) / 2
        out += "<g class=\"lane\" data-lane=\"\(l.key)\">\n"
        out += "<text class=\"label\" x=\"10\" y=\"\(tlPx(mid + 4))\">\(l.label)</text>"
        if l.key == "not-run" {
            out += "<text class=\"stat\" x=\"\(tlPx(tlGutter - 8))\" y=\"\(tlPx(mid + 4))\">\(l.members.count)</text>\n"
        } else {
            let pct = plan.wall == 0 ? 0 : Int((Double(l.busy) / Double(plan.wall) * 100).rounded())
            out += "<text class=\"stat\" x=\"\(tlPx(tlGutter - 8))\" y=\"\(tlPx(mid + 4))\">\(pct)%<title>\(l.members.count) task\(l.members.count == 1 ? "" : "s"); busy \(pct)% of wall time</title></text>\n"
        }
        // One group per row carries the y offset, so 10k rects don't each repeat it.
        for row in 0..<(l.members.isEmpty ? 0 : l.rows) {
            let y = top + tlLanePad + Double(row) * tlRowHeight + (tlRowHeight - tlBarHeight) / 2
            out += "<g transform=\"translate(0 \(tlPx(y)))\">\n"
            for i in l.members where plan.placed[i].row == row {
                tlWriteBar(&out, tasks[i], plan.placed[i], plan)
            }
            out += "</g>\n"
        }
        out += "</g>\n"
    }
    out += "</svg>\n</div>\n"
}

private func tlWriteBar(_ out: inout String, _ t: TimelineTask, _ p: TimelinePlan.Placed, _ plan: TimelinePlan) {
    let x = plan.x(p.start)
    // Back-to-back tasks would merge into one block; a sliver of gap keeps them apart.
    let span = plan.x(p.end) - x
    let w = p.ran ? (span > 3 ? span - 0.8 : max(1, span)) : tlMarkerWidth
    out += "<rect class=\"bar s-"
    out += tlStatusClass(t.status)
    out += p.ran ? "\" data-task=\"" : " tick\" data-task=\""
    tlEscape(t.id, into: &out, attribute: true)
    out += "\" x=\"\(tlPx(p.ran ? x : x - tlMarkerWidth / 2))\" width=\"\(tlPx(w))\" height=\"\(tlPx(tlBarHeight))\"><title>"
    // Tooltip: most telling facts first, one per line.
    tlEscape(t.id, into: &out)
    if t.processor != nil || t.group != nil {
        out += "\n"
        if let proc = t.processor { out += "processor "; tlEscape(proc, into: &out) }
        if let g = t.group { out += t.processor == nil ? "group " : " \u{00B7} group "; tlEscape(g, into: &out) }
    }
    out += "\n"
    tlEscape(t.status, into: &out)
    out += " \u{00B7} \(t.attempts) attempt\(t.attempts == 1 ? "" : "s")\n"
    // Kept terse: these lines are repeated for every task, 10k times in a big run.
    if p.ran {
        out += "ran " + tlDuration(p.end - p.start) + " at " + tlSeconds(p.start, decimals: 3) + " s"
        if let w = p.wait { out += "\nqueued " + tlDuration(w) }
    } else {
        out += "never ran \u{00B7} dropped at " + tlSeconds(p.start, decimals: 3) + " s"
        out += "\nqueued " + tlDuration(p.start > p.submit ? p.start - p.submit : 0)
    }
    if let e = t.error {
        out += "\nerror: "
        tlEscape(tlTruncated(e), into: &out)
    }
    out += "</title></rect>\n"
}

/// Failures listed in text too: a tooltip is no help when scanning for what broke.
private func tlWriteProblems(_ out: inout String, _ plan: TimelinePlan, _ tasks: [TimelineTask]) {
    let bad = tasks.indices.filter { tasks[$0].status != "succeeded" && (tasks[$0].error != nil || tasks[$0].status == "failed" || tasks[$0].status == "timed_out") }
    guard !bad.isEmpty else {
        if tasks.isEmpty { out += "<p class=\"empty\">No tasks were recorded for this run.</p>\n" }
        return
    }
    let shown = bad.sorted { a, b in
        plan.placed[a].end != plan.placed[b].end ? plan.placed[a].end < plan.placed[b].end : a < b
    }.prefix(tlMaxProblemRows)
    out += "<details open>\n<summary>\(bad.count) task\(bad.count == 1 ? "" : "s") with errors"
    out += bad.count > shown.count ? " (first \(shown.count) by end time)" : ""
    out += "</summary>\n<table>\n<tr><th>end</th><th>task</th><th>status</th><th>worker</th><th>error</th></tr>\n"
    for i in shown {
        let t = tasks[i]
        out += "<tr><td>" + tlSeconds(plan.placed[i].end, decimals: 3) + " s</td><td><code>"
        tlEscape(t.id, into: &out)
        out += "</code></td><td><span class=\"chip s-" + tlStatusClass(t.status) + "\"></span>"
        tlEscape(t.status, into: &out)
        out += "</td><td>" + (plan.placed[i].ran ? String(t.worker) : "\u{2013}") + "</td><td>"
        tlEscape(tlTruncated(t.error ?? ""), into: &out)
        out += "</td></tr>\n"
    }
    out += "</table>\n</details>\n"
}

// MARK: - Text helpers

/// HTML/XML-safe text. Attributes also keep newlines as character references
/// so an id round-trips exactly; C0 controls other than tab/newline are not
/// allowed in XML and are shown as U+FFFD instead.
private func tlEscape(_ s: String, into out: inout String, attribute: Bool = false) {
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\n": out += attribute ? "&#10;" : "\n"
        case "\r": out += attribute ? "&#13;" : "\n"
        case "\t": out += attribute ? "&#9;" : "\t"
        default:
            if u.value < 0x20 || u.value == 0x7f { out += "\u{FFFD}" } else { out.unicodeScalars.append(u) }
        }
    }
}

/// Statuses come from task data, so they are reduced to a safe class token.
private func tlStatusClass(_ s: String) -> String {
    if tlKnownStatuses.contains(s) { return s }
    var token = ""
    for u in s.unicodeScalars.prefix(32) {
        switch u.value {
        case 0x61...0x7a, 0x30...0x39, 0x5f, 0x2d: token.unicodeScalars.append(u)
        case 0x41...0x5a: token.unicodeScalars.append(Unicode.Scalar(u.value + 0x20)!)
        default: token += "-"
        }
    }
    return token.isEmpty ? "unknown" : token
}

private func tlTruncated(_ s: String) -> String {
    let scalars = s.unicodeScalars
    guard scalars.count > tlMaxErrorScalars else { return s }
    var cut = String.UnicodeScalarView()
    cut.append(contentsOf: scalars.prefix(tlMaxErrorScalars))
    return String(cut) + "\u{2026}"
}

/// One decimal is below what a screen shows; whole numbers drop the ".0".
private func tlPx(_ v: Double) -> String {
    let t = v.isFinite ? max(0, Int((v * 10).rounded())) : 0
    return t % 10 == 0 ? String(t / 10) : "\(t / 10).\(t % 10)"
}

/// `ns` as seconds with exactly `decimals` places (rounded half up).
private func tlSeconds(_ ns: UInt64, decimals: Int) -> String {
    tlFixed(ns, divisor: 1_000_000_000, decimals: decimals)
}

private func tlFixed(_ v: UInt64, divisor: UInt64, decimals: Int) -> String {
    var scale: UInt64 = 1
    for _ in 0..<max(0, min(decimals, 9)) { scale *= 10 }
    var whole = v / divisor
    // The remainder is below `divisor` (at most 1e9), so this cannot overflow.
    var frac = ((v % divisor) * scale + divisor / 2) / divisor
    if frac == scale { whole += 1; frac = 0 }
    guard scale > 1 else { return String(whole) }
    let digits = String(frac)
    return String(whole) + "." + String(repeating: "0", count: decimals - digits.count) + digits
}

/// Durations span nanoseconds to hours; pick the unit a person would.
private func tlDuration(_ ns: UInt64) -> String {
    if ns < 1_000 { return "\(ns) ns" }
    if ns < 1_000_000 { return tlFixed(ns, divisor: 1_000, decimals: 1) + " \u{00B5}s" }
    if ns < 1_000_000_000 { return tlFixed(ns, divisor: 1_000_000, decimals: 1) + " ms" }
    return tlFixed(ns, divisor: 1_000_000_000, decimals: 3) + " s"
}

/// Gridline spacing from 1-2-5 steps, at most about ten intervals, with the
/// number of decimals that step needs. Integer arithmetic keeps it exact.
private func tlAxisStep(_ wall: UInt64) -> (step: UInt64, decimals: Int) {
    var power: UInt64 = 1
    var exponent = 0
    while true {
        for m: UInt64 in [1, 2, 5] where wall / (m * power) <= 10 {
            return (m * power, max(0, 9 - exponent))
        }
        power *= 10
        exponent += 1
    }
}

// MARK: - Static assets

private let tlCSS = """
:root{--ok:#2f9e44;--bad:#e03131;--late:#f08c00;--gone:#8c96a1;--skip:#b8c0c9;--no:#7b3fbf}
*{box-sizing:border-box}
body{margin:0;padding:20px 24px 40px;background:#f7f8fa;color:#1f2933;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{margin:0 0 4px;font-size:20px;font-weight:600}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eceff3;padding:1px 4px;border-radius:3px;word-break:break-all}
.facts{margin:0 0 10px;color:#52606d}
.legend{list-style:none;margin:0 0 14px;padding:0;display:flex;flex-wrap:wrap;gap:6px 18px}
.legend li{display:flex;align-items:center;gap:6px}
.legend li.zero{opacity:.45}
.legend li.note{color:#52606d}
.chip{display:inline-block;width:12px;height:12px;border-radius:3px;background:var(--c,#5b7a99)}
.chip.tick{width:3px;border-radius:1px;background:#52606d}
.s-succeeded{--c:var(--ok)}.s-failed{--c:var(--bad)}.s-timed_out{--c:var(--late)}
.s-cancelled{--c:var(--gone)}.s-skipped{--c:var(--skip)}.s-rejected{--c:var(--no)}
.chart{width:max-content;max-width:100%;overflow-x:auto;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:6px 0}
svg{display:block}
.bgs .even{fill:#ffffff}.bgs .odd{fill:#f1f4f7}
.grid line{stroke:#d5dbe2;stroke-width:1}
.grid text{fill:#7b8794;font-size:11px;text-anchor:middle}
.lane .label{fill:#323f4b;font-size:12px}
.lane .stat{fill:#9aa5b1;font-size:11px;text-anchor:end}
rect.bar{fill:var(--c,#5b7a99)}
rect.bar:hover{stroke:#111;stroke-width:1.5}
rect.tick{opacity:.85}
details{margin-top:18px}
summary{cursor:pointer;font-weight:600}
table{border-collapse:collapse;margin-top:8px;font-size:13px}
td .chip{margin-right:6px;vertical-align:-1px}
td code{white-space:pre-wrap}
th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #e4e7eb;vertical-align:top}
td:last-child{white-space:pre-wrap;color:#7a1c1c;max-width:700px}
.empty{color:#52606d}

"""

/// Counts bars that actually have a box on screen, so a headless browser can
/// prove the SVG rendered (a parse error would drop or collapse them).
private let tlScript = """
<script>
addEventListener("load",function(){var n=0,b=document.querySelectorAll("rect.bar");for(var i=0;i<b.length;i++){var r=b[i].getBoundingClientRect();if(r.width>0&&r.height>0)n++}var d=document.body.dataset;d.rendered=n;d.lanes=document.querySelectorAll("g.lane").length});
</script>

"""
