// Conflict-free batches (see README.md, "Batches").
//
// Greedy, level by level: a batch is filled from the tasks whose in-group
// dependencies all sit in earlier batches, taken in input order, each added when
// it fits (size, budget, no serialized path conflict, no shared key). What does
// not fit stays ready for the next batch. Tasks made ready by a batch join only
// after it closes.

/// Why a task was placed the way it was.
public struct GateBatchNote: Sendable, Equatable {
    public var task: String
    public var reason: String
    public init(task: String, reason: String) {
        self.task = task
        self.reason = reason
    }
}

public struct GateBatches: Sendable, Equatable {
    /// Task ids; every task exactly once, batches in run order, ids in input order within a batch.
    public var batches: [[String]]
    public var taskCount: Int
    /// Dependencies on ids outside the list, treated as already satisfied.
    public var externalDependencies: [GateDependency]
    public var notes: [GateBatchNote]
    /// max(1, maxParallelTasks): the size cap used.
    public var maxBatchSize: Int
    public var maxComplexity: Int
}

/// Splits `tasks` into batches that may each run in parallel, in order.
///
/// Throws what `gateValidate` throws, and `.cycle` (naming the first cycle) when the
/// in-group dependencies are cyclic.
public func gateSuggestBatches(_ tasks: [GateTask], options: GateOptions = GateOptions()) throws(GateError) -> GateBatches {
    let g = try GateIndex(tasks)
    let n = tasks.count
    let cap = max(1, options.maxParallelTasks)
    let budget = options.maxComplexity
    let overlap = options.allowReadWriteOverlap

    // Dependents in CSR form (j -> tasks that depend on j), and what each task waits for.
    var waiting = [Int32](repeating: 0, count: n)
    var dependentStart = [Int32](repeating: 0, count: n + 1)
    var dependents = [Int32](repeating: 0, count: g.depFrom.count)
    if !g.depFrom.isEmpty {
        let scan = try g.depFrom.withUnsafeBufferPointer { (f) throws(GateError) in
            try g.depTo.withUnsafeBufferPointer { (t) throws(GateError) in
                try gateScanCycles(nodeCount: n, from: f, to: t, wantComponents: false)
            }
        }
        if let first = scan.cycles.first { throw .cycle(first.map { tasks[Int($0)].id }) }
        for e in 0..<g.depFrom.count {
            waiting[Int(g.depFrom[e])] += 1
            dependentStart[Int(g.depTo[e]) + 1] += 1
        }
        for j in 0..<n { dependentStart[j + 1] += dependentStart[j] }
        var fill = dependentStart
        for e in 0..<g.depFrom.count {
            let j = Int(g.depTo[e])
            dependents[Int(fill[j])] = g.depFrom[e]
            fill[j] += 1
        }
    }

    // Ready tasks as a bitset: scanning in input order and removing are both cheap.
    let words = (n + 63) / 64
    var ready = [UInt64](repeating: 0, count: words)
    var firstWord = words
    for t in 0..<n where waiting[t] == 0 {
        ready[t >> 6] |= 1 << UInt64(t & 63)
        firstWord = min(firstWord, t >> 6)
    }

    // Per-batch marks: a path or key is in the current batch when its mark equals the round.
    var writerMark = [Int32](repeating: 0, count: g.pathNames.count)
    var readerMark = [Int32](repeating: 0, count: g.pathNames.count)
    var keyMark = [Int32](repeating: 0, count: g.keys.count)

    var batches: [[String]] = []
    var notes: [GateBatchNote] = []
    var members: [Int] = []
    members.reserveCapacity(cap)
    var placed = 0
    var round: Int32 = 0

    while placed < n {
        round += 1
        members.removeAll(keepingCapacity: true)
        var total = 0
        var closed = false
        while firstWord < words && ready[firstWord] == 0 { firstWord += 1 }
        var w = firstWord
        scan: while w < words {
            var bits = ready[w]
            while bits != 0 {
                let b = bits.trailingZeroBitCount
                bits &= bits &- 1
                let t = w << 6 | b
                let d = tasks[t].difficulty
                if !members.isEmpty && d > budget - total { continue }
                let a0 = Int(g.accStart[t]), a1 = Int(g.accStart[t + 1])
                var fits = true
                var a = a0
                while a < a1 {
                    let code = g.accCode[a]
                    let p = Int(code >> 1)
                    if code & 1 == 1 {
                        if writerMark[p] == round || (!overlap && readerMark[p] == round) { fits = false; break }
                    } else if !overlap && writerMark[p] == round {
                        fits = false
                        break
                    }
                    a += 1
                }
                if !fits { continue }
                let k0 = Int(g.keyStart[t]), k1 = Int(g.keyStart[t + 1])
                for k in k0..<k1 where keyMark[Int(g.keyCode[k])] == round { fits = false; break }
                if !fits { continue }

                for a in a0..<a1 {
                    let code = g.accCode[a]
                    if code & 1 == 1 { writerMark[Int(code >> 1)] = round } else { readerMark[Int(code >> 1)] = round }
                }
                for k in k0..<k1 { keyMark[Int(g.keyCode[k])] = round }
                ready[w] &= ~(1 << UInt64(b))
                members.append(t)
                total += d
                if d > budget {
                    // Alone over budget (an empty batch takes any task): nothing else joins it.
                    notes.append(GateBatchNote(task: tasks[t].id, reason: "over budget alone"))
                    closed = true
                }
                if closed || members.count == cap { break scan }
            }
            w += 1
        }
        // The earliest ready task always fits an empty batch, and an acyclic group always
        // has a ready task, so every round places at least one.
        precondition(!members.isEmpty, "gateSuggestBatches: no ready task (dependency bookkeeping broken)")
        placed += members.count
        batches.append(members.map { tasks[$0].id })
        for t in members {
            for e in Int(dependentStart[t])..<Int(dependentStart[t + 1]) {
                let c = Int(dependents[e])
                waiting[c] -= 1
                if waiting[c] == 0 {
                    ready[c >> 6] |= 1 << UInt64(c & 63)
                    if c >> 6 < firstWord { firstWord = c >> 6 }
                }
            }
        }
    }

    return GateBatches(batches: batches, taskCount: n, externalDependencies: g.external, notes: notes,
                       maxBatchSize: cap, maxComplexity: budget)
}
