import CTaskGateSupport
import Testing
@testable import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PathNormalizerTests {
    @Test func spellingsOfOnePathAreOne() {
        let base = "/work/proj"
        let forms = ["x/./f", "x//f", "x/f", "./x/f", "x/y/../f", "/work/proj/x/f", "x/f/"]
        let normal = Set(forms.map { PathNormalizer.normalize($0, base: base) })
        #expect(normal == ["/work/proj/x/f"])
    }

    @Test func dotDotNeverClimbsAboveRoot() {
        #expect(PathNormalizer.normalize("/../../a", base: "/") == "/a")
        #expect(PathNormalizer.normalize("../b", base: "/w") == "/b")
        #expect(PathNormalizer.normalize("..", base: "/") == "/")
    }

    @Test func rootsAndTrailingSegments() {
        #expect(PathNormalizer.normalize("/", base: "/x") == "/")
        #expect(PathNormalizer.normalize("///", base: "/x") == "/")
        #expect(PathNormalizer.normalize("a/b/..", base: "/") == "/a")
        #expect(PathNormalizer.normalize("./", base: "/w") == "/w")
        #expect(PathNormalizer.normalize("a/./b/./", base: "/w/") == "/w/a/b")
        #expect(PathNormalizer.normalize(".hidden/..x", base: "/w") == "/w/.hidden/..x")
    }

    @Test func differentPathsStayDifferent() {
        #expect(PathNormalizer.normalize("a/b", base: "/") != PathNormalizer.normalize("a/c", base: "/"))
        #expect(PathNormalizer.normalize("a/b", base: "/x") != PathNormalizer.normalize("a/b", base: "/y"))
    }
}

@Suite struct IdIndexTests {
    /// Builds records with ids so the index can compare keys against them.
    final class Records {
        var slab = Slab<tgs_task>(chunkShift: TaskPool.taskShift)
        var strings: [UnsafeMutablePointer<CChar>] = []
        func add(_ id: String) -> Int {
            _ = slab.reserve(1)
            let i = slab.append()
            slab.pointer(i).initialize(to: tgs_task())
            let p = strdup(id)!
            strings.append(p)
            slab.pointer(i).pointee.id = UnsafePointer(p)
            return i
        }
        deinit {
            strings.forEach { free($0) }
            slab.release()
        }
    }

    @Test func insertFindGrowAndRollback() {
        let r = Records()
        var index = IdIndex()
        defer { index.release() }
        // Enough to force several rehashes, with keys of every tail length.
        let n = 5000
        index.beginBatch(reserving: n, tasks: r.slab)
        for k in 0..<n {
            let id = "task-\(k)-" + String(repeating: "x", count: k % 11)
            let i = r.add(id)
            let dup = id.withCString { index.insert($0, strlen($0), index: i, tasks: r.slab) }
            #expect(dup == -1)
        }
        for k in stride(from: 0, to: n, by: 7) {
            let id = "task-\(k)-" + String(repeating: "x", count: k % 11)
            #expect(id.withCString { index.find($0, strlen($0), tasks: r.slab) } == k)
        }
        #expect("nope".withCString { index.find($0, 4, tasks: r.slab) } == -1)
        // A duplicate is reported with the index already holding the id.
        #expect("task-3-xxx".withCString { index.insert($0, strlen($0), index: 99999, tasks: r.slab) } == 3)

        // A refused batch leaves the table exactly as it was.
        index.beginBatch(reserving: 3, tasks: r.slab)
        for id in ["new-a", "new-b", "new-c"] {
            let i = r.add(id)
            _ = id.withCString { index.insert($0, strlen($0), index: i, tasks: r.slab) }
        }
        #expect("new-b".withCString { index.find($0, 5, tasks: r.slab) } >= 0)
        index.rollbackBatch()
        #expect(index.count == n)
        #expect("new-b".withCString { index.find($0, 5, tasks: r.slab) } == -1)
        for k in [0, 1, 2, 4999] {
            let id = "task-\(k)-" + String(repeating: "x", count: k % 11)
            #expect(id.withCString { index.find($0, strlen($0), tasks: r.slab) } == k)
        }
    }
}

@Suite struct WorkDequeTests {
    /// The owner pushes and takes while thieves steal: every item comes out exactly once,
    /// and what the owner takes comes out oldest first.
    @Test(arguments: [1, 3])
    func everyItemExactlyOnce(thieves: Int) async throws {
        let deque = WorkDeque()
        let total = 200_000
        let seen = UnsafeMutablePointer<UInt32>.allocate(capacity: total)
        seen.initialize(repeating: 0, count: total)
        defer { seen.deallocate() }
        let done = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        done.initialize(to: 0)
        defer { done.deallocate() }
        final class Box: @unchecked Sendable {
            let d: WorkDeque; let seen: UnsafeMutablePointer<UInt32>; let done: UnsafeMutablePointer<UInt32>
            init(_ d: WorkDeque, _ s: UnsafeMutablePointer<UInt32>, _ f: UnsafeMutablePointer<UInt32>) { self.d = d; seen = s; done = f }
        }
        let box = Box(deque, seen, done)
        var threads: [pthread_t] = []
        for _ in 0..<thieves {
            var t = pthread_t()
            pthread_create(&t, nil, { arg in
                let b = Unmanaged<Box>.fromOpaque(arg!).takeUnretainedValue()
                while tgs_load_u32(b.done) == 0 || !b.d.isEmpty {
                    let x = b.d.steal()
                    if x >= 0 { tgs_add_u32(b.seen + Int(x), 1) }
                }
                return nil
            }, Unmanaged.passUnretained(box).toOpaque())
            threads.append(t)
        }
        var next = 0
        while next < total {
            // Push a burst, pop part of it back.
            var pushed = 0
            while pushed < 64 && next < total {
                if deque.push(Int32(next)) { next += 1; pushed += 1 } else { break }
            }
            for _ in 0..<(pushed / 2) {
                let x = deque.take()
                if x >= 0 { tgs_add_u32(seen + Int(x), 1) }
            }
        }
        while true {
            let x = deque.take()
            if x < 0 { break }
            tgs_add_u32(seen + Int(x), 1)
        }
        tgs_store_u32(done, 1)
        for t in threads { pthread_join(t, nil) }
        var wrong = 0
        for i in 0..<total where seen[i] != 1 { wrong += 1 }
        #expect(wrong == 0)
    }
}
