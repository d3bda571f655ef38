import CTaskGateSupport
import Synchronization
import Testing
@testable import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SchedulerTests {
    @Test(arguments: workerCounts)
    func everyTaskRunsOnceAndResultsComeBack(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        let runs = UnsafeMutablePointer<UInt32>.allocate(capacity: 1000)
        runs.initialize(repeating: 0, count: 1000)
        defer { runs.deallocate() }
        let job = Job { t in
            let n = Int(String(cString: t.pointee.id!).dropFirst())!
            tgs_add_u32(runs + n, 1)
            return n % 10 == 0 ? 1 : 0
        }
        try pool.submit((0..<1000).map { Def(id: "t\($0)", job: job) })
        try pool.waitAll(timeout: ten)
        for n in 0..<1000 {
            #expect(runs[n] == 1)
            let r = pool.result(Int32(n))
            #expect(r.status == (n % 10 == 0 ? .failed : .succeeded))
            #expect(String(cString: r.id!) == "t\(n)")
            #expect(r.worker >= 0 && r.worker < workers)
            #expect(r.attempts == 1)
            #expect(r.endNanoseconds >= r.startNanoseconds && r.startNanoseconds >= r.submitNanoseconds)
        }
        let s = pool.stats()
        #expect(s.succeeded == 900 && s.failed == 100 && s.ended == 1000)
        try pool.finish()
    }

    @Test(arguments: workerCounts)
    func dependenciesOrderAndSkipOnFailure(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        // Stamps from one counter, stored atomically per task; the map from id
        // to slot is built before any task runs and only read afterwards.
        let names = ["a", "b", "c", "d", "bad", "x", "y", "late"]
        let slot = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        final class Stamps: @unchecked Sendable {
            let clock = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
            let start = UnsafeMutablePointer<Int64>.allocate(capacity: 8)
            let end = UnsafeMutablePointer<Int64>.allocate(capacity: 8)
            init() { clock.initialize(to: 0); start.initialize(repeating: 0, count: 8); end.initialize(repeating: 0, count: 8) }
            deinit { clock.deallocate(); start.deallocate(); end.deallocate() }
        }
        let times = Stamps()
        let record = Job { t in
            let id = String(cString: t.pointee.id!)
            let k = slot[id]!
            tgs_store_i64(times.start + k, tgs_add_sc_i64(times.clock, 1) + 1)
            usleep(200)
            tgs_store_i64(times.end + k, tgs_add_sc_i64(times.clock, 1) + 1)
            return id.hasPrefix("bad") ? 1 : 0
        }
        // Diamond a -> (b, c) -> d, and a failing branch bad -> x -> y.
        try pool.submit([
            Def(id: "a", job: record),
            Def(id: "b", deps: ["a"], job: record),
            Def(id: "c", deps: ["a"], job: record),
            Def(id: "d", deps: ["b", "c"], job: record),
            Def(id: "bad", job: record),
            Def(id: "x", deps: ["bad", "a"], job: record),
            Def(id: "y", deps: ["x"], job: record),
        ])
        try pool.waitAll(timeout: ten)
        for (p, c) in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")] {
            let ended = tgs_load_i64(times.end + slot[p]!), started = tgs_load_i64(times.start + slot[c]!)
            #expect(ended > 0 && ended < started, "\(p) must end before \(c) starts")
        }
        #expect(try pool.status("d") == .succeeded)
        #expect(try pool.status("x") == .skipped)
        #expect(try pool.status("y") == .skipped)
        #expect(tgs_load_i64(times.start + slot["x"]!) == 0 && tgs_load_i64(times.start + slot["y"]!) == 0)
        #expect(String(cString: try pool.resultView("x").error!).contains("'bad'"))
        #expect(String(cString: try pool.resultView("y").error!).contains("'x'"))
        // A child submitted after its parent already failed is skipped at once.
        try pool.submit(Def(id: "late", deps: ["bad"], job: record))
        try pool.waitFor("late")
        #expect(try pool.status("late") == .skipped)
        try pool.finish()
    }

    /// Regression: a join's recorded start preceded the end of a parent that
    /// finished on another worker (its ready time came from the parent that
    /// released it, not the last to end). Checked on the pool's own timestamps.
    @Test(arguments: [2, 4])
    func recordedStartsNeverPrecedeParentsOrSubmission(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        let spin = Job { _ in
            let until = tgs_monotonic_ns() + 2_000
            while tgs_monotonic_ns() < until {}
            return 0
        }
        var defs: [Def] = []
        for r in 0..<50 {
            let parents = (0..<40).map { "r\(r)p\($0)" }
            defs += parents.map { Def(id: $0, deps: r == 0 ? [] : ["r\(r - 1)join"], job: spin) }
            defs.append(Def(id: "r\(r)join", deps: parents, job: spin))
        }
        try pool.submit(defs)
        try pool.waitAll(timeout: ten)
        var late = 0, early = 0
        for d in defs {
            let child = try pool.resultView(d.id!)
            if child.startNanoseconds < child.submitNanoseconds { early += 1 }
            for p in d.deps where try pool.resultView(p).endNanoseconds > child.startNanoseconds { late += 1 }
        }
        #expect(early == 0)
        #expect(late == 0)
        try pool.finish()
    }

    @Test func cyclesAreRefusedAndNamed() throws {
        let pool = try TaskPool(PoolConfiguration(workers: 2))
        #expect(throws: TaskGateError.cycle(["a", "b", "c", "a"])) {
            try pool.submit([
                Def(id: "a", deps: ["c"], job: ok()),
                Def(id: "b", deps: ["a"], job: ok()),
                Def(id: "c", deps: ["b"], job: ok()),
            ])
        }
        #expect(throws: TaskGateError.cycle(["self", "self"])) {
            try pool.submit(Def(id: "self", deps: ["self"], job: ok()))
        }
        // Nothing of the refused batches exists; the ids are free again.
        #expect(pool.submittedCount == 0)
        try pool.submit([Def(id: "a", job: ok()), Def(id: "b", deps: ["a"], job: ok())])
        try pool.finish()
        #expect(try pool.status("b") == .succeeded)
    }

    @Test func refusedSubmissionsSayWhy() throws {
        let pool = try TaskPool(PoolConfiguration(workers: 1))
        try pool.submit(Def(id: "one", job: ok()))
        #expect(throws: TaskGateError.duplicateId("one")) { try pool.submit(Def(id: "one", job: ok())) }
        #expect(throws: TaskGateError.duplicateId("two")) {
            try pool.submit([Def(id: "two", job: ok()), Def(id: "two", job: ok())])
        }
        #expect(throws: TaskGateError.unknownDependency(task: "three", dependency: "ghost")) {
            try pool.submit(Def(id: "three", deps: ["ghost"], job: ok()))
        }
        #expect(pool.submittedCount == 1)
        try pool.finish()
        #expect(throws: TaskGateError.shutDown) { try pool.submit(Def(id: "after", job: ok())) }
    }

    @Test(arguments: workerCounts)
    func priorityOrderWhenContended(workers: Int) throws {
        // Every worker is held by a gate task, so the queue fills up; then they are released.
        let pool = try TaskPool(PoolConfiguration(workers: workers, maxConcurrency: 1))
        let gate = Gate()
        try pool.submit(Def(id: "gate", lane: 0, job: Job { _ in gate.wait() ? 0 : 1 }))
        // The others must queue while the gate holds the only permit: a worker
        // still searching when they arrive could meet a normal task before a
        // high one that was not submitted yet.
        try pool.waitRunning("gate")
        let order = Locked<[String]>([])
        let rec = Job { t in order.withLock { $0.append(String(cString: t.pointee.id!)) }; return 0 }
        var defs: [Def] = []
        for k in 0..<5 {
            defs.append(Def(id: "low\(k)", lane: 2, job: rec))
            defs.append(Def(id: "normal\(k)", lane: 1, job: rec))
            defs.append(Def(id: "high\(k)", lane: 0, job: rec))
        }
        for d in defs { try pool.submit(d) }
        gate.release()
        try pool.waitAll(timeout: ten)
        let expected = (0..<5).map { "high\($0)" } + (0..<5).map { "normal\($0)" } + (0..<5).map { "low\($0)" }
        #expect(order.withLock { $0 } == expected)
        try pool.finish()
    }

    @Test(arguments: workerCounts)
    func writersOfOnePathNeverOverlap(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        let writers = Atomic<Int>(0), readers = Atomic<Int>(0), violations = Atomic<Int>(0)
        let writer = Job { _ in
            if writers.add(1, ordering: .sequentiallyConsistent).newValue != 1 { violations.add(1, ordering: .relaxed) }
            if readers.load(ordering: .sequentiallyConsistent) != 0 { violations.add(1, ordering: .relaxed) }
            usleep(300)
            writers.subtract(1, ordering: .sequentiallyConsistent)
            return 0
        }
        let reader = Job { _ in
            readers.add(1, ordering: .sequentiallyConsistent)
            if writers.load(ordering: .sequentiallyConsistent) != 0 { violations.add(1, ordering: .relaxed) }
            usleep(300)
            readers.subtract(1, ordering: .sequentiallyConsistent)
            return 0
        }
        let cwd = String(decoding: PathNormalizer.currentDirectory(), as: UTF8.self)
        let spellings = ["out/./f", "out//f", "out/f", cwd + "/out/f", "out/sub/../f"]
        var defs = (0..<40).map { Def(id: "w\($0)", writes: [spellings[$0 % spellings.count]], job: writer) }
        // Readers of the same file never overlap a writer either (the default).
        defs += (0..<10).map { Def(id: "r\($0)", reads: ["out/f"], job: reader) }
        try pool.submit(defs.shuffled())
        try pool.waitAll(timeout: ten)
        #expect(violations.load(ordering: .relaxed) == 0)
        #expect(pool.stats().succeeded == 50)
        try pool.finish()
    }

    /// A writer is not starved by readers that keep arriving after it: a
    /// producer submits overlapping readers of one path until the writer of
    /// that path has ended (or 10 s pass, which fails the test).
    @Test func writerIsNotStarvedByAStreamOfReaders() async throws {
        let pool = try TaskPool(PoolConfiguration(workers: 4))
        let nap = Job { _ in usleep(2_000); return 0 }
        let writerDone = Atomic<Bool>(false)
        let writer = Job { _ in writerDone.store(true, ordering: .sequentiallyConsistent); return 0 }
        try pool.submit((0..<64).map { Def(id: "early\($0)", reads: ["stream/file"], job: nap) })
        try pool.submit(Def(id: "writer", writes: ["stream/file"], job: writer))
        let deadline = tgs_monotonic_ns() + ten
        var k = 0
        // Bursts keep a queue of readers ahead of the writer whenever it is
        // queued again, so without writer preference some reader always holds
        // the path when the writer retries.
        while !writerDone.load(ordering: .sequentiallyConsistent) && tgs_monotonic_ns() < deadline {
            try pool.submit((0..<8).map { Def(id: "late\(k)-\($0)", reads: ["stream/file"], job: nap) })
            k += 1
            usleep(2_000)
        }
        let endedWhileReadersKeptComing = writerDone.load(ordering: .sequentiallyConsistent)
        #expect(endedWhileReadersKeptComing, "the writer starved behind \(k * 8) readers")
        try pool.waitFor("writer")
        #expect(try pool.status("writer") == .succeeded)
        try pool.finish()
    }

    @Test func readersShareAPath() throws {
        let pool = try TaskPool(PoolConfiguration(workers: 4))
        let inFlight = Atomic<Int>(0), worst = Atomic<Int>(0)
        let gate = Gate()
        let job = Job { _ in
            let n = inFlight.add(1, ordering: .sequentiallyConsistent).newValue
            worst.max(n, ordering: .sequentiallyConsistent)
            // Hold until a second reader is in too (or give up after 10 s and fail below).
            if n >= 2 { gate.release() }
            gate.wait()
            inFlight.subtract(1, ordering: .sequentiallyConsistent)
            return 0
        }
        try pool.submit((0..<2).map { Def(id: "r\($0)", reads: ["shared/input"], job: job) })
        try pool.waitAll(timeout: ten)
        #expect(worst.load(ordering: .relaxed) == 2)
        try pool.finish()
    }

    @Test(arguments: [2, 4, 8])
    func concurrencyLimitHolds(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers, maxConcurrency: 2))
        let inFlight = Atomic<Int>(0), worst = Atomic<Int>(0)
        let job = Job { _ in
            let n = inFlight.add(1, ordering: .sequentiallyConsistent).newValue
            worst.max(n, ordering: .sequentiallyConsistent)
            usleep(200)
            inFlight.subtract(1, ordering: .sequentiallyConsistent)
            return 0
        }
        try pool.submit((0..<100).map { Def(id: "c\($0)", job: job) })
        try pool.waitAll(timeout: ten)
        #expect(worst.load(ordering: .relaxed) <= 2)
        #expect(pool.stats().succeeded == 100)
        try pool.finish()
    }

    @Test(arguments: workerCounts)
    func timeoutEndsTheTaskAndDiscardsItsLateResult(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        let sawCancel = Atomic<Bool>(false)
        let slow = Job { t in
            let deadline = tgs_monotonic_ns() + ten
            while !cancelled(t) && tgs_monotonic_ns() < deadline { usleep(100) }
            sawCancel.store(cancelled(t), ordering: .sequentiallyConsistent)
            return 0  // "succeeded", too late
        }
        try pool.submit([
            Def(id: "slow", timeoutNs: 30_000_000, job: slow),
            Def(id: "after", deps: ["slow"], job: ok()),
        ])
        try pool.waitFor("slow")
        #expect(try pool.status("slow") == .timedOut)
        #expect(String(cString: try pool.resultView("slow").error!).contains("timed out"))
        try pool.waitAll(timeout: ten)
        #expect(try pool.status("after") == .skipped)
        try pool.shutdown(.drain, timeout: ten)  // returns once the processor has given up
        let sawIt = sawCancel.load(ordering: .sequentiallyConsistent)
        #expect(sawIt)
        #expect(try pool.status("slow") == .timedOut)
    }

    @Test(arguments: workerCounts)
    func cancellationOfQueuedRunningAndGroups(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers, maxConcurrency: 1))
        let gate = Gate()
        let ran = Locked<Set<String>>([])
        let rec = Job { t in ran.withLock { _ = $0.insert(String(cString: t.pointee.id!)) }; return 0 }
        let blocker = Job { t in
            let deadline = tgs_monotonic_ns() + ten
            while !cancelled(t) && tgs_monotonic_ns() < deadline { usleep(100) }
            gate.release()
            return 0
        }
        try pool.submit(Def(id: "running", lane: 0, job: blocker))
        try pool.waitRunning("running")  // so everything after queues behind it
        try pool.submit([
            Def(id: "q1", job: rec),
            Def(id: "g1", group: "g", job: rec), Def(id: "g2", group: "g", job: rec),
            Def(id: "child", deps: ["q1"], job: rec),
            Def(id: "keep", job: rec),
        ])
        try "q1".withCString { try pool.cancel(task: pool.lookup($0)) }
        #expect(try "g".withCString { try pool.cancel(group: $0) } == 2)
        try "running".withCString { try pool.cancel(task: pool.lookup($0)) }
        #expect(throws: TaskGateError.alreadyFinished("q1")) { try "q1".withCString { try pool.cancel(task: pool.lookup($0)) } }
        try pool.waitAll(timeout: ten)
        #expect(gate.wait())
        #expect(try pool.status("running") == .cancelled)
        #expect(try pool.status("q1") == .cancelled)
        #expect(try pool.status("g1") == .cancelled && pool.status("g2") == .cancelled)
        #expect(try pool.status("child") == .skipped)
        #expect(try pool.status("keep") == .succeeded)
        #expect(ran.withLock { $0 } == ["keep"])
        try pool.finish()
    }

    @Test(arguments: workerCounts)
    func criticalFailureCancelsItsGroup(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        let gate = Gate()
        let waiter = Job { t in
            // Siblings wait to be cancelled (or give up after 10 s and fail the test).
            let deadline = tgs_monotonic_ns() + ten
            while !cancelled(t) && tgs_monotonic_ns() < deadline { usleep(100) }
            return 0
        }
        // One batch, so every sibling exists before "boom" (high priority) can run and fail;
        // siblings are either still queued or running (polling their cancel flag) when it does.
        try pool.submit([Def(id: "boom", group: "crit", lane: 0, critical: true, job: Job { _ in 1 })]
            + (0..<3).map { Def(id: "sib\($0)", group: "crit", job: waiter) }
            + [Def(id: "other", group: "calm", job: Job { _ in gate.wait(); return 0 })])
        try "crit".withCString { try pool.wait(group: $0, timeout: ten) }
        #expect(try pool.status("boom") == .failed)
        for k in 0..<3 {
            #expect(try pool.status("sib\(k)") == .cancelled)
            #expect(String(cString: try pool.resultView("sib\(k)").error!).contains("'boom'"))
        }
        #expect(try pool.status("other") != .cancelled)
        gate.release()
        try pool.finish()
        #expect(try pool.status("other") == .succeeded)
    }

    @Test func waitsTimeOut() throws {
        let pool = try TaskPool(PoolConfiguration(workers: 1))
        let gate = Gate()
        try pool.submit(Def(id: "held", group: "h", job: Job { _ in gate.wait(); return 0 }))
        #expect(throws: TaskGateError.self) { try pool.waitFor("held", timeout: 5_000_000) }
        #expect(throws: TaskGateError.self) { try "h".withCString { try pool.wait(group: $0, timeout: 0) } }
        #expect(throws: TaskGateError.self) { try pool.waitAll(timeout: 1_000_000) }
        let refusal: TaskGateError? = {
            do { try pool.close(); return nil } catch { return error as? TaskGateError }
        }()
        #expect(refusal?.description.contains("1 tasks have not ended") == true, "close must refuse while a task is in flight")
        gate.release()
        try pool.finish()
        try pool.close()
    }

    @Test(arguments: workerCounts)
    func completionOrderCursorSeesEachTaskOnce(workers: Int) throws {
        let pool = try TaskPool(PoolConfiguration(workers: workers))
        try pool.submit((0..<500).map { Def(id: "t\($0)", job: ok()) })
        var cursor: UInt64 = 0
        var seen = Set<Int32>()
        for _ in 0..<500 { seen.insert(try pool.nextCompleted(cursor: &cursor, timeout: ten)) }
        #expect(seen.count == 500)
        #expect(throws: TaskGateError.self) { try pool.nextCompleted(cursor: &cursor, timeout: 0) }
        try pool.finish()
        #expect(throws: TaskGateError.noMore) { try pool.nextCompleted(cursor: &cursor, timeout: ten) }
    }

    @Test func abortCancelsWhatHasNotRun() throws {
        let pool = try TaskPool(PoolConfiguration(workers: 1))
        let gate = Gate()
        try pool.submit(Def(id: "first", job: Job { t in
            let deadline = tgs_monotonic_ns() + ten
            while !cancelled(t) && tgs_monotonic_ns() < deadline { usleep(100) }
            gate.release()
            return 0
        }))
        try pool.waitRunning("first")
        try pool.submit((0..<100).map { Def(id: "t\($0)", job: ok()) })
        try pool.shutdown(.abort, timeout: ten)
        #expect(gate.wait())
        let s = pool.stats()
        #expect(s.ended == 101)
        #expect(s.cancelled == 101)  // nothing starts once an abort began
    }

    @Test(arguments: [2, 4])
    func manyThreadsSubmitting(threads: Int) async throws {
        let pool = try TaskPool(PoolConfiguration(workers: 2))
        let count = Atomic<Int>(0)
        let job = Job { _ in count.add(1, ordering: .relaxed); return 0 }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<threads {
                group.addTask {
                    for k in 0..<500 { try pool.submit(Def(id: "s\(t)-\(k)", job: job)) }
                }
            }
            try await group.waitForAll()
        }
        try pool.waitAll(timeout: ten)
        #expect(count.load(ordering: .relaxed) == threads * 500)
        try pool.finish()
    }
}
