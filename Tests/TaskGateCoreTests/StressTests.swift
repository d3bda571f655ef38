import CTaskGateSupport
import Synchronization
import Testing
@testable import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

/// 100,000 tasks with random priorities, dependencies and declared writes on 2
/// workers. Checks: each ran exactly once, each parent ended before each of
/// its children started, no two writers of a path overlapped. Also run under
/// ThreadSanitizer (`make test-tsan`, filter "Stress").
@Suite struct StressTests {
    @Test func randomGraphOn2Workers() throws {
        let n = 100_000
        let paths = 50
        var rng = SplitMix(seed: 0x7461_736B_6761_7465)
        let pool = try TaskPool(PoolConfiguration(workers: 2))

        // Per task: run count, start and end stamps from one global counter.
        let runs = UnsafeMutablePointer<UInt32>.allocate(capacity: n)
        let starts = UnsafeMutablePointer<Int64>.allocate(capacity: n)
        let ends = UnsafeMutablePointer<Int64>.allocate(capacity: n)
        runs.initialize(repeating: 0, count: n)
        starts.initialize(repeating: 0, count: n)
        ends.initialize(repeating: 0, count: n)
        defer { runs.deallocate(); starts.deallocate(); ends.deallocate() }
        let clock = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        clock.initialize(to: 0)
        defer { clock.deallocate() }

        final class Shared: @unchecked Sendable {
            let runs: UnsafeMutablePointer<UInt32>, starts: UnsafeMutablePointer<Int64>
            let ends: UnsafeMutablePointer<Int64>, clock: UnsafeMutablePointer<Int64>
            init(_ r: UnsafeMutablePointer<UInt32>, _ s: UnsafeMutablePointer<Int64>, _ e: UnsafeMutablePointer<Int64>, _ c: UnsafeMutablePointer<Int64>) {
                runs = r; starts = s; ends = e; clock = c
            }
        }
        let shared = Shared(runs, starts, ends, clock)
        let job = Job { t in
            let i = Int(String(cString: t.pointee.id!).dropFirst())!
            tgs_add_u32(shared.runs + i, 1)
            tgs_store_i64(shared.starts + i, tgs_add_sc_i64(shared.clock, 1) + 1)
            if i % 97 == 0 { sched_yield() }
            tgs_store_i64(shared.ends + i, tgs_add_sc_i64(shared.clock, 1) + 1)
            return 0
        }

        var parents = [[Int]](repeating: [], count: n)
        var writes = [[Int]](repeating: [], count: n)
        var defs: [Def] = []
        defs.reserveCapacity(1000)
        for i in 0..<n {
            let np = i == 0 ? 0 : Int(rng.next() % 4)
            for _ in 0..<np {
                let back = 1 + Int(rng.next() % UInt64(min(i, 2000)))
                if !parents[i].contains(i - back) { parents[i].append(i - back) }
            }
            if rng.next() % 3 == 0 { writes[i] = [Int(rng.next() % UInt64(paths))] }
            defs.append(Def(id: "t\(i)", deps: parents[i].map { "t\($0)" },
                            writes: writes[i].map { "stress/p\($0)" }, lane: Int(rng.next() % 3), job: job))
            if defs.count == 1000 {
                try pool.submit(defs)
                defs.removeAll(keepingCapacity: true)
            }
        }
        try pool.waitAll(timeout: 120 * 1_000_000_000)

        var ranTwice = 0, neverRan = 0, orderBroken = 0, overlaps = 0
        for i in 0..<n {
            if runs[i] == 0 { neverRan += 1 }
            if runs[i] > 1 { ranTwice += 1 }
            for p in parents[i] where ends[p] >= starts[i] { orderBroken += 1 }
        }
        var byPath = [[(Int64, Int64)]](repeating: [], count: paths)
        for i in 0..<n { for p in writes[i] { byPath[p].append((starts[i], ends[i])) } }
        for var intervals in byPath {
            intervals.sort { $0.0 < $1.0 }
            for k in 1..<max(intervals.count, 1) where intervals[k].0 < intervals[k - 1].1 { overlaps += 1 }
        }
        #expect(neverRan == 0)
        #expect(ranTwice == 0)
        #expect(orderBroken == 0)
        #expect(overlaps == 0)
        #expect(pool.stats().succeeded == n)
        try pool.shutdown(.drain, timeout: ten)
    }
}

/// A small seeded generator, so a failing run can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
