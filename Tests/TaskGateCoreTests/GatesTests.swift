import Testing
@testable import TaskGateCore

// Parallel execution gates: validate, cycles, batches, JSON text.
// Cycle convention throughout: each id depends on the next, the first repeated at the end.

/// splitmix64: a small seeded generator for reproducible random task sets.
struct GateTestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

/// A random acyclic group: dependencies only on earlier tasks (plus some external ones),
/// paths from a small pool so that conflicts are common.
func gateRandomTasks(_ rng: inout GateTestRandom, count: Int, paths: Int, keys: Int) -> [GateTask] {
    var tasks: [GateTask] = []
    for i in 0..<count {
        var t = GateTask(id: "t\(i)", difficulty: rng.below(12))
        for _ in 0..<rng.below(4) {
            let p = "/w/p\(rng.below(paths))"
            if rng.chance(35) { t.writes.append(p) } else { t.reads.append(p) }
        }
        if i > 0 && rng.chance(30) { t.dependsOn.append("t\(rng.below(i))") }
        if rng.chance(5) { t.dependsOn.append("outside\(rng.below(3))") }
        if keys > 0 && rng.chance(15) { t.shared.append("k\(rng.below(keys))") }
        tasks.append(t)
    }
    // Shuffle so that input order is not the dependency order.
    var i = tasks.count - 1
    while i > 0 {
        tasks.swapAt(i, rng.below(i + 1))
        i -= 1
    }
    return tasks
}

func gateCheck(_ tasks: [GateTask], _ options: GateOptions = GateOptions(maxParallelTasks: 100, maxComplexity: 1000),
               probe: (String) -> GateLockHolder? = { _ in nil }) throws -> GateReport {
    try gateValidate(tasks, options: options, lockProbe: probe)
}

@Suite struct GateConflictTests {
    @Test func writeWriteIsBlocking() throws {
        let r = try gateCheck([GateTask(id: "a", writes: ["/f"]), GateTask(id: "b", writes: ["/f"])])
        #expect(r.fileConflicts == [GateFileConflict(task1: "a", task2: "b", file: "/f", kind: .blocking, serialized: true)])
        #expect(!r.canParallel)
        #expect(r.recommendations == ["Execute conflicting tasks sequentially"])
        #expect(r.conflictCounts.blocking == 1 && r.conflictCounts.serialized == 1)
    }

    @Test func readWriteIsAWarningSerializedUnlessOverlapIsAllowed() throws {
        let tasks = [GateTask(id: "w", writes: ["/g"]), GateTask(id: "r", reads: ["/g"])]
        let strict = try gateCheck(tasks)
        #expect(strict.fileConflicts == [GateFileConflict(task1: "w", task2: "r", file: "/g", kind: .warning, serialized: true)])
        #expect(!strict.canParallel)
        #expect(strict.recommendations == ["Execute conflicting tasks sequentially"])

        let loose = try gateCheck(tasks, GateOptions(maxParallelTasks: 100, maxComplexity: 1000, allowReadWriteOverlap: true))
        #expect(loose.fileConflicts == [GateFileConflict(task1: "w", task2: "r", file: "/g", kind: .warning, serialized: false)])
        #expect(loose.canParallel)
        #expect(loose.conflictCounts.serialized == 0)
        #expect(loose.recommendations.count == 1)
        #expect(loose.recommendations[0].hasPrefix("Readers may see partial writes: 1 read-write pair(s)"))
    }

    @Test func readReadIsInfoOnly() throws {
        let r = try gateCheck([GateTask(id: "x", reads: ["/h"]), GateTask(id: "y", reads: ["/h"])])
        #expect(r.fileConflicts == [GateFileConflict(task1: "x", task2: "y", file: "/h", kind: .info, serialized: false)])
        #expect(r.canParallel)
        #expect(r.recommendations.isEmpty)
        #expect(r.fileConflictsTotal == 1)
    }

    @Test func aPathReadAndWrittenByOneTaskIsWrittenAndCountsOnce() throws {
        let r = try gateCheck([
            GateTask(id: "a", reads: ["/p", "/p"], writes: ["/p", "/p"]),
            GateTask(id: "b", reads: ["/p", "/p"]),
        ])
        #expect(r.fileConflicts == [GateFileConflict(task1: "a", task2: "b", file: "/p", kind: .warning, serialized: true)])
        #expect(r.fileConflictsTotal == 1)
    }

    @Test func conflictsAreOrderedByFileThenInputOrder() throws {
        let r = try gateCheck([
            GateTask(id: "c", reads: ["/b"], writes: ["/z"]),
            GateTask(id: "a", writes: ["/b", "/z"]),
            GateTask(id: "b", reads: ["/z", "/b"]),
        ])
        let listed = r.fileConflicts.map { "\($0.file) \($0.task1) \($0.task2) \($0.kind.rawValue)" }
        #expect(listed == ["/b c a warning", "/b c b info", "/b a b warning",
                           "/z c a blocking", "/z c b warning", "/z a b warning"])
        #expect(r.conflictCounts.blocking == 1 && r.conflictCounts.warning == 4 && r.conflictCounts.info == 1)
    }

    @Test func listingIsCappedAndTheTotalCounted() throws {
        let tasks = (0..<5).map { GateTask(id: "t\($0)", writes: ["/same"]) }
        var options = GateOptions(maxParallelTasks: 100, maxComplexity: 1000)
        options.maxListed = 3
        let r = try gateCheck(tasks, options)
        #expect(r.fileConflicts.map { "\($0.task1)-\($0.task2)" } == ["t0-t1", "t0-t2", "t0-t3"])
        #expect(r.fileConflictsTotal == 10)
        #expect(r.json.contains("\"file_conflicts_total\":10"))
        options.maxListed = 0
        let none = try gateCheck(tasks, options)
        #expect(none.fileConflicts.isEmpty && none.fileConflictsTotal == 10 && !none.canParallel)
    }

    /// Counts and the listed prefix agree with a plain all-pairs computation.
    @Test func matchesAllPairsOnARandomGroup() throws {
        var rng = GateTestRandom(seed: 7)
        var tasks: [GateTask] = []
        for i in 0..<300 {
            var t = GateTask(id: "t\(i)")
            for _ in 0..<6 {
                let p = "/src/file\(rng.below(400)).swift"
                if rng.chance(25) { t.writes.append(p) } else { t.reads.append(p) }
            }
            tasks.append(t)
        }
        var options = GateOptions(maxParallelTasks: 1000, maxComplexity: 1000)
        options.maxListed = 500
        let r = try gateCheck(tasks, options)

        var all: [(String, Int, Int, GateConflictKind)] = []
        let writes = tasks.map { Set($0.writes) }
        let touches = tasks.map { Set($0.writes).union($0.reads) }
        for i in 0..<tasks.count {
            for j in (i + 1)..<tasks.count {
                for f in touches[i].intersection(touches[j]) {
                    let writers = (writes[i].contains(f) ? 1 : 0) + (writes[j].contains(f) ? 1 : 0)
                    all.append((f, i, j, writers == 2 ? .blocking : writers == 1 ? .warning : .info))
                }
            }
        }
        all.sort { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
        #expect(r.fileConflictsTotal == all.count)
        #expect(r.conflictCounts.blocking == all.filter { $0.3 == .blocking }.count)
        #expect(r.conflictCounts.warning == all.filter { $0.3 == .warning }.count)
        #expect(r.conflictCounts.info == all.filter { $0.3 == .info }.count)
        let expected = all.prefix(500).map { GateFileConflict(task1: "t\($0.1)", task2: "t\($0.2)", file: $0.0, kind: $0.3,
                                                              serialized: $0.3 != .info) }
        #expect(r.fileConflicts == Array(expected))
    }
}

@Suite struct GateDependencyTests {
    @Test func selfDependency() throws {
        let r = try gateCheck([GateTask(id: "a", dependsOn: ["a"]), GateTask(id: "b")])
        #expect(r.circularDependencies == [["a", "a"]])
        #expect(r.orderedPairs.isEmpty)
        #expect(!r.canParallel)
        #expect(r.recommendations == ["Break the dependency cycle a -> a"])
    }

    @Test func twoCycle() throws {
        let r = try gateCheck([GateTask(id: "a", dependsOn: ["b"]), GateTask(id: "b", dependsOn: ["a"])])
        #expect(r.circularDependencies == [["a", "b", "a"]])
        #expect(r.orderedPairs.isEmpty)
    }

    @Test func longCycleStartsAtTheEarliestTask() throws {
        // c is first in input order: c depends on a, a on b, b on c.
        let r = try gateCheck([
            GateTask(id: "c", dependsOn: ["a"]),
            GateTask(id: "a", dependsOn: ["b"]),
            GateTask(id: "b", dependsOn: ["c"]),
            GateTask(id: "d", dependsOn: ["e"]),
            GateTask(id: "e", dependsOn: ["f"]),
            GateTask(id: "f", dependsOn: ["g"]),
            GateTask(id: "g", dependsOn: ["d"]),
        ])
        #expect(r.circularDependencies == [["c", "a", "b", "c"], ["d", "e", "f", "g", "d"]])
        #expect(r.recommendations == ["Break the dependency cycle c -> a -> b -> c", "Break the dependency cycle d -> e -> f -> g -> d"])
    }

    @Test func separateCyclesInOrderOfTheirEarliestTask() throws {
        let r = try gateCheck([
            GateTask(id: "x", dependsOn: ["y"]),
            GateTask(id: "p", dependsOn: ["q"]),
            GateTask(id: "q", dependsOn: ["p"]),
            GateTask(id: "y", dependsOn: ["x"]),
            GateTask(id: "hangs", dependsOn: ["p", "zzz"]),
        ])
        #expect(r.circularDependencies == [["x", "y", "x"], ["p", "q", "p"]])
        // An edge into a cycle from outside it is an ordered pair, not part of the cycle.
        #expect(r.orderedPairs == [GateDependency(task: "hangs", dependsOn: "p")])
        #expect(r.externalDependencies == [GateDependency(task: "hangs", dependsOn: "zzz")])
    }

    @Test func theShortestCycleThroughTheEarliestTaskIsNamed() throws {
        let r = try gateCheck([
            GateTask(id: "a", dependsOn: ["b"]),
            GateTask(id: "b", dependsOn: ["c", "a"]),
            GateTask(id: "c", dependsOn: ["a"]),
        ])
        #expect(r.circularDependencies == [["a", "b", "a"]])
    }

    @Test func orderedPairsInsideTheGroup() throws {
        let r = try gateCheck([GateTask(id: "a"), GateTask(id: "b", dependsOn: ["a", "a"]), GateTask(id: "c", dependsOn: ["b"])])
        #expect(r.orderedPairs == [GateDependency(task: "b", dependsOn: "a"), GateDependency(task: "c", dependsOn: "b")])
        #expect(r.circularDependencies.isEmpty)
        #expect(!r.canParallel)
        #expect(r.recommendations == ["Run dependent tasks in order: see the suggested batches"])
        #expect(r.json.contains("\"ordered_pairs\":[{\"task\":\"b\",\"after\":\"a\"},{\"task\":\"c\",\"after\":\"b\"}]"))
    }

    @Test func externalDependenciesAreListedButDoNotBlock() throws {
        let r = try gateCheck([GateTask(id: "a", dependsOn: ["elsewhere", "elsewhere", "other"]), GateTask(id: "b")])
        #expect(r.externalDependencies == [GateDependency(task: "a", dependsOn: "elsewhere"),
                                           GateDependency(task: "a", dependsOn: "other")])
        #expect(r.canParallel)
        #expect(r.json.contains("\"external_dependencies\":[{\"task\":\"a\",\"depends_on\":\"elsewhere\"},{\"task\":\"a\",\"depends_on\":\"other\"}]"))
    }
}

@Suite struct GateLimitTests {
    @Test func budgetAtTheLimitIsWithinAndOneOverIsNot() throws {
        let at = try gateValidate([GateTask(id: "a", difficulty: 10), GateTask(id: "b", difficulty: 20)], options: GateOptions())
        #expect(at.contextBudget == GateContextBudget(totalComplexity: 30, maxComplexity: 30, withinBudget: true))
        #expect(at.canParallel)
        let over = try gateValidate([GateTask(id: "a", difficulty: 10), GateTask(id: "b", difficulty: 21)], options: GateOptions())
        #expect(over.contextBudget == GateContextBudget(totalComplexity: 31, maxComplexity: 30, withinBudget: false))
        #expect(!over.canParallel)
        #expect(over.recommendations == ["Split high-complexity task groups (total 31 over 30)"])
    }

    @Test func capacityCountsActiveTasks() throws {
        let tasks = (0..<3).map { GateTask(id: "t\($0)") }
        let free = try gateValidate(tasks, options: GateOptions(activeTasks: 2))
        #expect(free.resourceCapacity.available == 3 && free.resourceCapacity.withinCapacity && free.canParallel)
        let busy = try gateValidate(tasks, options: GateOptions(activeTasks: 3))
        #expect(busy.resourceCapacity.maxParallelTasks == 5)
        #expect(busy.resourceCapacity.requested == 3)
        #expect(busy.resourceCapacity.available == 2)
        #expect(!busy.resourceCapacity.withinCapacity && !busy.canParallel)
        #expect(busy.recommendations == ["Batch tasks into smaller groups (requested 3, available 2)"])
        let full = try gateValidate(tasks, options: GateOptions(activeTasks: 9))
        #expect(full.resourceCapacity.available == 0)
    }

    @Test func systemSampleIsCheckedOnlyWhenGiven() throws {
        let tasks = (0..<2).map { GateTask(id: "t\($0)") }
        let none = try gateValidate(tasks, options: GateOptions())
        #expect(none.resourceCapacity.systemOK == nil)
        #expect(!none.json.contains("cpu_load"))

        let calm = GateSystemSample(cpuLoad: 0.8, memoryUsed: 0.7, openFileLimit: 108, openFiles: 100)
        let ok = try gateValidate(tasks, options: GateOptions(system: calm))
        #expect(ok.resourceCapacity.systemOK == true && ok.canParallel)
        #expect(ok.json.contains("\"resource_capacity\":{\"max_parallel_tasks\":5,\"requested\":2,\"available\":5,\"within_capacity\":true,\"cpu_load\":0.8,\"cpu_threshold\":0.8,\"memory_used\":0.7,\"memory_threshold\":0.7,\"open_files\":100,\"open_file_limit\":108,\"system_ok\":true}"))

        for sample in [GateSystemSample(cpuLoad: 0.81, memoryUsed: 0.1, openFileLimit: 0, openFiles: 3),
                       GateSystemSample(cpuLoad: 0.1, memoryUsed: 0.71, openFileLimit: 0, openFiles: 3),
                       GateSystemSample(cpuLoad: 0.1, memoryUsed: 0.1, openFileLimit: 107, openFiles: 100),
                       GateSystemSample(cpuLoad: .nan, memoryUsed: 0.1, openFileLimit: 0, openFiles: 3)] {
            let r = try gateValidate(tasks, options: GateOptions(system: sample))
            #expect(r.resourceCapacity.systemOK == false && !r.canParallel)
            #expect(r.recommendations.count == 1 && r.recommendations[0].hasPrefix("Wait for system load to drop ("))
        }
        // An unknown open-file limit (0) skips that check; a NaN reading is written as null.
        let unknown = try gateValidate(tasks, options: GateOptions(system: GateSystemSample(cpuLoad: .nan, memoryUsed: 0, openFileLimit: 0, openFiles: 9)))
        #expect(unknown.json.contains("\"cpu_load\":null"))
        let noLimit = try gateValidate(tasks, options: GateOptions(system: GateSystemSample(cpuLoad: 0, memoryUsed: 0, openFileLimit: 0, openFiles: 9)))
        #expect(noLimit.resourceCapacity.systemOK == true)
    }

    @Test func currentSampleReadsThisMachine() {
        let s = GateSystemSample.current()
        #expect(s.cpuLoad >= 0)
        #expect(s.memoryUsed >= 0 && s.memoryUsed <= 1)
        #expect(s.openFileLimit > 0)
        #expect(s.openFiles > 0)  // stdin, stdout, stderr at least
    }

    @Test func locksByMode() throws {
        let holders: [String: GateLockHolder] = [
            "/ex": GateLockHolder(holderId: "other", pid: 11, host: "h1", shared: false),
            "/sh": GateLockHolder(holderId: "reader", pid: 12, host: "h2", shared: true),
        ]
        var asked: [String] = []
        let r = try gateCheck([
            GateTask(id: "a", reads: ["/sh", "/free"]),
            GateTask(id: "b", writes: ["/sh"]),
            GateTask(id: "c", reads: ["/ex"]),
            GateTask(id: "d", reads: ["/sh"], writes: ["/ex"]),
        ], probe: { path in
            asked.append(path)
            return holders[path]
        })
        #expect(asked == ["/sh", "/free", "/ex"])  // once per distinct path, first-appearance order
        #expect(r.lockIssues.map { "\($0.task) \($0.file) \($0.mode) \($0.write ? "write" : "read")" }
                == ["b /sh shared write", "c /ex exclusive read", "d /ex exclusive write"])
        #expect(!r.canParallel)
        #expect(r.recommendations.contains("Wait for file locks to be released"))

        let readersOnly = try gateCheck([GateTask(id: "a", reads: ["/sh"]), GateTask(id: "b", reads: ["/sh"])], probe: { holders[$0] })
        #expect(readersOnly.lockIssues.isEmpty && readersOnly.canParallel)
    }

    @Test func sharedStateBlocks() throws {
        let r = try gateCheck([
            GateTask(id: "a", shared: ["db"]),
            GateTask(id: "b", shared: ["db", "cache", "db"]),
            GateTask(id: "c", shared: ["cache"]),
            GateTask(id: "d", shared: ["alone"]),
        ])
        #expect(r.sharedState == [GateSharedState(resource: "cache", tasks: ["b", "c"]),
                                  GateSharedState(resource: "db", tasks: ["a", "b"])])
        #expect(!r.canParallel)
        #expect(r.recommendations == ["Protect shared state: run tasks sharing cache, db one at a time"])
        #expect(r.json.contains("\"shared_state\":[{\"resource\":\"cache\",\"tasks\":[\"b\",\"c\"]},{\"resource\":\"db\",\"tasks\":[\"a\",\"b\"]}]"))
    }

    @Test func badInputIsRefusedWithWhereItIs() {
        #expect(throws: GateError.emptyId(index: 1)) { try gateCheck([GateTask(id: "a"), GateTask(id: "")]) }
        #expect(throws: GateError.duplicateId("a", first: 0, second: 2)) {
            try gateCheck([GateTask(id: "a"), GateTask(id: "b"), GateTask(id: "a")])
        }
        #expect(throws: GateError.negativeDifficulty(task: "n", index: 0, difficulty: -1)) {
            try gateCheck([GateTask(id: "n", difficulty: -1)])
        }
        #expect(GateError.emptyId(index: 1).message == "task at index 1: empty id")
        #expect(GateError.duplicateId("a", first: 0, second: 2).message == "task 'a' at index 2: duplicate id (first used at index 0)")
        #expect(GateError.negativeDifficulty(task: "n", index: 0, difficulty: -1).message == "task 'n' at index 0: negative difficulty -1")
        #expect(GateError.cycle(["a", "b", "a"]).message == "dependency cycle (each task depends on the next): a -> b -> a")
        #expect(throws: GateError.emptyId(index: 0)) { try gateSuggestBatches([GateTask(id: "")]) }
    }

    @Test func emptyGroupCanRun() throws {
        let r = try gateValidate([], options: GateOptions(activeTasks: 5))
        #expect(r.canParallel && r.taskCount == 0 && r.fileConflictsTotal == 0)
    }
}

@Suite struct GateJSONTests {
    @Test func seedExampleExactly() throws {
        let tasks = [
            GateTask(id: "110_1", writes: ["/path/to/file.py"], difficulty: 6),
            GateTask(id: "110_2", writes: ["/path/to/file.py"], difficulty: 6),
            GateTask(id: "110_3", reads: ["/path/to/locked.json"], difficulty: 6),
        ]
        let r = try gateValidate(tasks, options: GateOptions(activeTasks: 3)) { path in
            path == "/path/to/locked.json" ? GateLockHolder(holderId: "agent-7", pid: 4242, host: "build-1", shared: false) : nil
        }
        let expected = """
            {"can_parallel":false,"task_count":3,\
            "file_conflicts":[{"task1":"110_1","task2":"110_2","file":"/path/to/file.py","type":"blocking","serialized":true}],\
            "circular_dependencies":[],\
            "lock_issues":[{"task":"110_3","file":"/path/to/locked.json","holder":"agent-7","pid":4242,"host":"build-1","mode":"exclusive","access":"read"}],\
            "resource_capacity":{"max_parallel_tasks":5,"requested":3,"available":2,"within_capacity":false},\
            "context_budget":{"total_complexity":18,"max_complexity":30,"within_budget":true},\
            "recommendations":["Execute conflicting tasks sequentially","Wait for file locks to be released",\
            "Batch tasks into smaller groups (requested 3, available 2)"],\
            "file_conflicts_total":1,"conflict_counts":{"blocking":1,"warning":0,"info":0,"serialized":1},\
            "ordered_pairs":[],"external_dependencies":[],"shared_state":[]}
            """
        #expect(r.json == expected)
    }

    @Test func cyclesInJSON() throws {
        let r = try gateCheck([GateTask(id: "a", dependsOn: ["b"]), GateTask(id: "b", dependsOn: ["a"]), GateTask(id: "s", dependsOn: ["s"])])
        #expect(r.json.contains("\"circular_dependencies\":[[\"a\",\"b\",\"a\"],[\"s\",\"s\"]]"))
    }

    @Test func stringsAreEscaped() {
        var w = GateJSONWriter()
        w.beginArray()
        w.string("q\"b\\s/\n\r\t\u{8}\u{C}\u{1}\u{1F}é→😀")
        w.double(.infinity)
        w.double(-.nan)
        w.double(0.1)
        w.int(-3)
        w.bool(false)
        w.null()
        w.beginObject()
        w.endObject()
        w.endArray()
        #expect(w.text == #"["q\"b\\s/\n\r\t\b\f\u0001\u001fé→😀",null,null,0.1,-3,false,null,{}]"#)
    }

    @Test func idsWithOddCharactersStayValid() throws {
        let r = try gateCheck([GateTask(id: "a\"1", writes: ["/x\ny"]), GateTask(id: "b\\2", writes: ["/x\ny"])])
        #expect(r.json.contains("{\"task1\":\"a\\\"1\",\"task2\":\"b\\\\2\",\"file\":\"/x\\ny\",\"type\":\"blocking\",\"serialized\":true}"))
    }

    @Test func sameInputSameBytes() throws {
        var rng = GateTestRandom(seed: 99)
        let tasks = gateRandomTasks(&rng, count: 200, paths: 60, keys: 5)
        let a = try gateCheck(tasks).json
        let b = try gateCheck(tasks).json
        #expect(a == b)
        #expect(try gateSuggestBatches(tasks).json == gateSuggestBatches(tasks).json)
    }
}

@Suite struct GateGraphTests {
    func randomDAG(_ rng: inout GateTestRandom, nodes: Int, edges: Int) -> ([Int32], [Int32]) {
        var rank = Array(0..<nodes)
        var i = nodes - 1
        while i > 0 {
            rank.swapAt(i, rng.below(i + 1))
            i -= 1
        }
        var from: [Int32] = [], to: [Int32] = []
        for _ in 0..<edges {
            var u = rng.below(nodes), v = rng.below(nodes)
            while u == v { v = rng.below(nodes) }
            if rank[u] > rank[v] { swap(&u, &v) }
            from.append(Int32(u))
            to.append(Int32(v))
        }
        return (from, to)
    }

    func isRealCycle(_ c: [Int32], _ edges: Set<[Int32]>) -> Bool {
        guard c.count >= 2, c.first == c.last else { return false }
        return (0..<(c.count - 1)).allSatisfy { edges.contains([c[$0], c[$0 + 1]]) }
            && Set(c.dropLast()).count == c.count - 1
    }

    @Test func randomDAGHasNoCycleAndABackEdgeMakesOne() throws {
        var rng = GateTestRandom(seed: 2024)
        var (from, to) = randomDAG(&rng, nodes: 3000, edges: 12000)
        #expect(try gateFindCycles(nodeCount: 3000, from: from, to: to).isEmpty)
        from.append(to[5])
        to.append(from[5])
        let cycles = try gateFindCycles(nodeCount: 3000, from: from, to: to)
        #expect(cycles.count == 1)
        let edges = Set(zip(from, to).map { [$0, $1] })
        #expect(cycles.allSatisfy { isRealCycle($0, edges) })
    }

    @Test func manyBackEdgesGiveRealCyclesOnePerComponent() throws {
        var rng = GateTestRandom(seed: 5)
        var (from, to) = randomDAG(&rng, nodes: 500, edges: 800)
        for _ in 0..<6 {
            let e = rng.below(800)
            from.append(to[e])
            to.append(from[e])
        }
        from.append(7)
        to.append(7)
        let cycles = try gateFindCycles(nodeCount: 500, from: from, to: to)
        let edges = Set(zip(from, to).map { [$0, $1] })
        #expect(!cycles.isEmpty)
        #expect(cycles.allSatisfy { isRealCycle($0, edges) })
        // One per component: no node on two named cycles; ordered by their first (smallest) node.
        let firsts = cycles.map { $0[0] }
        #expect(firsts == firsts.sorted())
        #expect(cycles.allSatisfy { $0[0] == $0.dropLast().min() })
        var seen = Set<Int32>()
        for c in cycles { for v in c.dropLast() { #expect(seen.insert(v).inserted) } }
    }

    @Test func smallCyclesExactly() throws {
        #expect(try gateFindCycles(nodeCount: 3, from: [2], to: [2]) == [[2, 2]])
        #expect(try gateFindCycles(nodeCount: 4, from: [3, 1, 2, 0], to: [1, 3, 0, 2]) == [[0, 2, 0], [1, 3, 1]])
        #expect(try gateFindCycles(nodeCount: 4, from: [0, 1, 2, 3], to: [1, 2, 3, 1]) == [[1, 2, 3, 1]])
        #expect(try gateFindCycles(nodeCount: 0, from: [], to: []) == [])
        #expect(try gateFindCycles(nodeCount: 2, from: [0, 0], to: [1, 1]) == [])
    }

    @Test func badEdgesAreRefused() {
        #expect(throws: GateError.edgeOutOfRange(edge: 1, node: 3, nodeCount: 3)) {
            try gateFindCycles(nodeCount: 3, from: [0, 1], to: [1, 3])
        }
        #expect(throws: GateError.edgeOutOfRange(edge: 0, node: -1, nodeCount: 3)) {
            try gateFindCycles(nodeCount: 3, from: [-1], to: [0])
        }
        #expect(throws: GateError.edgeOutOfRange(edge: 0, node: 0, nodeCount: 0)) {
            try gateFindCycles(nodeCount: 0, from: [0], to: [0])
        }
        #expect(throws: GateError.self) { try gateFindCycles(nodeCount: 3, from: [0, 1], to: [1]) }
        #expect(throws: GateError.self) { try gateFindCycles(nodeCount: -1, from: [], to: []) }
    }
}

@Suite struct GateBatchTests {
    @Test func dependenciesComeFirst() throws {
        let b = try gateSuggestBatches([
            GateTask(id: "c", dependsOn: ["b"]),
            GateTask(id: "b", dependsOn: ["a", "gone"]),
            GateTask(id: "a"),
            GateTask(id: "x"),
        ])
        #expect(b.batches == [["a", "x"], ["b"], ["c"]])
        #expect(b.externalDependencies == [GateDependency(task: "b", dependsOn: "gone")])
        #expect(b.json == """
            {"batches":[["a","x"],["b"],["c"]],"batch_count":3,"task_count":4,\
            "external_dependencies":[{"task":"b","depends_on":"gone"}],"notes":[],"max_batch_size":5,"max_complexity":30}
            """)
    }

    @Test func sizeCapAndNeverZero() throws {
        let tasks = (0..<7).map { GateTask(id: "t\($0)") }
        #expect(try gateSuggestBatches(tasks, options: GateOptions(maxParallelTasks: 3)).batches
                == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]])
        let ones = try gateSuggestBatches(tasks, options: GateOptions(maxParallelTasks: 0))
        #expect(ones.batches.count == 7 && ones.maxBatchSize == 1)
    }

    @Test func budgetAndTheLoneOverBudgetTask() throws {
        let b = try gateSuggestBatches([
            GateTask(id: "x", difficulty: 5),
            GateTask(id: "big", difficulty: 50),
            GateTask(id: "y", difficulty: 25),
            GateTask(id: "z", difficulty: 1),
        ])
        #expect(b.batches == [["x", "y"], ["big"], ["z"]])
        #expect(b.notes == [GateBatchNote(task: "big", reason: "over budget alone")])
        #expect(b.json.contains("\"notes\":[{\"task\":\"big\",\"reason\":\"over budget alone\"}]"))
    }

    @Test func conflictsSplitBatchesAndOverlapJoinsReaders() throws {
        let tasks = [
            GateTask(id: "w", writes: ["/f"]),
            GateTask(id: "r", reads: ["/f"]),
            GateTask(id: "w2", writes: ["/f"]),
            GateTask(id: "s1", shared: ["db"]),
            GateTask(id: "s2", shared: ["db"]),
        ]
        #expect(try gateSuggestBatches(tasks).batches == [["w", "s1"], ["r", "s2"], ["w2"]])
        #expect(try gateSuggestBatches(tasks, options: GateOptions(allowReadWriteOverlap: true)).batches
                == [["w", "r", "s1"], ["w2", "s2"]])
    }

    @Test func cyclesAreRefused() {
        #expect(throws: GateError.cycle(["a", "b", "a"])) {
            try gateSuggestBatches([GateTask(id: "z"), GateTask(id: "a", dependsOn: ["b"]), GateTask(id: "b", dependsOn: ["a"])])
        }
    }

    /// Every batch of random groups passes validation alone, and batches respect all the rules.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func everyBatchValidates(seed: UInt64) throws {
        var rng = GateTestRandom(seed: seed)
        let tasks = gateRandomTasks(&rng, count: 150, paths: 40, keys: 4)
        let options = GateOptions(maxParallelTasks: rng.below(6), maxComplexity: 6 + rng.below(20),
                                  allowReadWriteOverlap: rng.chance(50))
        let result = try gateSuggestBatches(tasks, options: options)
        let byId = Dictionary(uniqueKeysWithValues: tasks.map { ($0.id, $0) })
        var batchOf: [String: Int] = [:]
        for (k, batch) in result.batches.enumerated() {
            for id in batch {
                #expect(batchOf[id] == nil)
                batchOf[id] = k
            }
        }
        #expect(batchOf.count == tasks.count)
        #expect(result.batches.reduce(0) { $0 + $1.count } == tasks.count)
        for t in tasks {
            for d in t.dependsOn where byId[d] != nil { #expect(batchOf[d]! < batchOf[t.id]!) }
        }
        var check = options
        check.activeTasks = 0
        var lone = 0
        for batch in result.batches {
            let group = batch.map { byId[$0]! }
            let total = group.reduce(0) { $0 + $1.difficulty }
            #expect(batch.count <= max(1, options.maxParallelTasks))
            #expect(batch.count == 1 || total <= options.maxComplexity)
            let report = try gateValidate(group, options: check, lockProbe: { _ in nil })
            if batch.count == 1 && (total > options.maxComplexity || options.maxParallelTasks < 1) {
                lone += 1
                continue
            }
            #expect(report.canParallel, "batch \(batch): \(report.json)")
        }
        #expect(result.notes.count == tasks.filter { $0.difficulty > options.maxComplexity }.count)
        #expect(lone >= result.notes.count)
        #expect(try gateSuggestBatches(tasks, options: options).json == result.json)
    }
}
