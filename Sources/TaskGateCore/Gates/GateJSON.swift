// Reports and batches as one line of JSON text. Keys come in the seed's order,
// then the extras. Strings are escaped per RFC 8259 (quote, backslash, control
// characters); other UTF-8 passes through. Non-finite doubles become null.

/// A minimal JSON text writer; commas are placed automatically.
struct GateJSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needComma = false

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() {
        if needComma { bytes.append(0x2C) }
        needComma = true
    }

    mutating func beginObject() {
        separate()
        bytes.append(0x7B)
        needComma = false
    }

    mutating func endObject() {
        bytes.append(0x7D)
        needComma = true
    }

    mutating func beginArray() {
        separate()
        bytes.append(0x5B)
        needComma = false
    }

    mutating func endArray() {
        bytes.append(0x5D)
        needComma = true
    }

    mutating func key(_ k: String) {
        separate()
        quote(k)
        bytes.append(0x3A)
        needComma = false
    }

    mutating func string(_ s: String) {
        separate()
        quote(s)
    }

    mutating func int(_ v: Int) {
        separate()
        bytes.append(contentsOf: String(v).utf8)
    }

    mutating func double(_ v: Double) {
        separate()
        if v.isFinite {
            bytes.append(contentsOf: "\(v)".utf8)
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
    }

    mutating func bool(_ v: Bool) {
        separate()
        bytes.append(contentsOf: (v ? "true" : "false").utf8)
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    mutating func field(_ k: String, _ v: String) { key(k); string(v) }
    mutating func field(_ k: String, _ v: Int) { key(k); int(v) }
    mutating func field(_ k: String, _ v: Double) { key(k); double(v) }
    mutating func field(_ k: String, _ v: Bool) { key(k); bool(v) }

    mutating func stringArray(_ values: [String]) {
        beginArray()
        for v in values { string(v) }
        endArray()
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func quote(_ s: String) {
        bytes.append(0x22)
        for b in s.utf8 {
            switch b {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(0x6E)  // \n
            case 0x0D: bytes.append(0x5C); bytes.append(0x72)  // \r
            case 0x09: bytes.append(0x5C); bytes.append(0x74)  // \t
            case 0x08: bytes.append(0x5C); bytes.append(0x62)  // \b
            case 0x0C: bytes.append(0x5C); bytes.append(0x66)  // \f
            case 0..<0x20:
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30])  // \u00
                bytes.append(GateJSONWriter.hex[Int(b >> 4)])
                bytes.append(GateJSONWriter.hex[Int(b & 15)])
            default: bytes.append(b)
            }
        }
        bytes.append(0x22)
    }
}

extension GateJSONWriter {
    mutating func dependencies(_ list: [GateDependency], second: String) {
        beginArray()
        for d in list {
            beginObject()
            field("task", d.task)
            field(second, d.dependsOn)
            endObject()
        }
        endArray()
    }
}

extension GateReport {
    /// The report as one line of JSON: the seed's fields in the seed's order, then extras.
    public var json: String {
        var w = GateJSONWriter(capacity: 512 + fileConflicts.count * 96)
        w.beginObject()
        w.field("can_parallel", canParallel)
        w.field("task_count", taskCount)

        w.key("file_conflicts")
        w.beginArray()
        for c in fileConflicts {
            w.beginObject()
            w.field("task1", c.task1)
            w.field("task2", c.task2)
            w.field("file", c.file)
            w.field("type", c.kind.rawValue)
            w.field("serialized", c.serialized)
            w.endObject()
        }
        w.endArray()

        w.key("circular_dependencies")
        w.beginArray()
        for c in circularDependencies { w.stringArray(c) }
        w.endArray()

        w.key("lock_issues")
        w.beginArray()
        for l in lockIssues {
            w.beginObject()
            w.field("task", l.task)
            w.field("file", l.file)
            w.field("holder", l.holder.holderId)
            w.field("pid", Int(l.holder.pid))
            w.field("host", l.holder.host)
            w.field("mode", l.mode)
            w.field("access", l.write ? "write" : "read")
            w.endObject()
        }
        w.endArray()

        let r = resourceCapacity
        w.key("resource_capacity")
        w.beginObject()
        w.field("max_parallel_tasks", r.maxParallelTasks)
        w.field("requested", r.requested)
        w.field("available", r.available)
        w.field("within_capacity", r.withinCapacity)
        if let s = r.system {
            w.field("cpu_load", s.cpuLoad)
            w.field("cpu_threshold", r.cpuThreshold)
            w.field("memory_used", s.memoryUsed)
            w.field("memory_threshold", r.memoryThreshold)
            w.field("open_files", s.openFiles)
            w.field("open_file_limit", s.openFileLimit)
            w.field("system_ok", r.systemOK ?? false)
        }
        w.endObject()

        w.key("context_budget")
        w.beginObject()
        w.field("total_complexity", contextBudget.totalComplexity)
        w.field("max_complexity", contextBudget.maxComplexity)
        w.field("within_budget", contextBudget.withinBudget)
        w.endObject()

        w.key("recommendations")
        w.stringArray(recommendations)

        // Extras.
        w.field("file_conflicts_total", fileConflictsTotal)
        w.key("conflict_counts")
        w.beginObject()
        w.field("blocking", conflictCounts.blocking)
        w.field("warning", conflictCounts.warning)
        w.field("info", conflictCounts.info)
        w.field("serialized", conflictCounts.serialized)
        w.endObject()
        w.key("ordered_pairs")
        w.dependencies(orderedPairs, second: "after")
        w.key("external_dependencies")
        w.dependencies(externalDependencies, second: "depends_on")
        w.key("shared_state")
        w.beginArray()
        for s in sharedState {
            w.beginObject()
            w.field("resource", s.resource)
            w.key("tasks")
            w.stringArray(s.tasks)
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.text
    }
}

extension GateBatches {
    /// `{"batches": [[ids]], "batch_count", "task_count", "external_dependencies", "notes", ...}` on one line.
    public var json: String {
        var w = GateJSONWriter(capacity: 256 + taskCount * 16)
        w.beginObject()
        w.key("batches")
        w.beginArray()
        for b in batches { w.stringArray(b) }
        w.endArray()
        w.field("batch_count", batches.count)
        w.field("task_count", taskCount)
        w.key("external_dependencies")
        w.dependencies(externalDependencies, second: "depends_on")
        w.key("notes")
        w.beginArray()
        for n in notes {
            w.beginObject()
            w.field("task", n.task)
            w.field("reason", n.reason)
            w.endObject()
        }
        w.endArray()
        w.field("max_batch_size", maxBatchSize)
        w.field("max_complexity", maxComplexity)
        w.endObject()
        return w.text
    }
}
