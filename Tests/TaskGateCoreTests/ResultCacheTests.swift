import Synchronization
import Testing
@testable import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

// Each test works in its own mkdtemp directory; tests run in parallel.

fileprivate func cacheTempDir() -> String {
    var t = Array("/tmp/tg-swift-cache-XXXXXX".utf8CString)
    return t.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}

/// rm -rf, never following symbolic links.
fileprivate func removeTree(_ path: String) {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if st.st_mode & S_IFMT == S_IFDIR {
        for n in dirNames(path) { removeTree(path + "/" + n) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// Virtual wall time for the cache; moves only when told.
fileprivate final class VirtualWallClock: Sendable {
    let t: Mutex<Double>
    init(_ start: Double) { t = Mutex(start) }
    var now: Double { t.withLock { $0 } }
    func set(_ v: Double) { t.withLock { $0 = v } }
    func advance(_ d: Double) { t.withLock { $0 += d } }
    var read: @Sendable () -> Double { { [self] in now } }
}

fileprivate func writeFile(_ path: String, _ bytes: [UInt8]) {
    let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(f >= 0, "open \(path)")
    bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count { done += write(f, b.baseAddress! + done, b.count - done) }
    }
    close(f)
}

fileprivate func writeFile(_ path: String, _ text: String) { writeFile(path, Array(text.utf8)) }

fileprivate func readFile(_ path: String) -> [UInt8] {
    let f = open(path, O_RDONLY | O_CLOEXEC)
    precondition(f >= 0, "open \(path)")
    defer { close(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { read(f, $0.baseAddress!, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

fileprivate func mtimeNs(_ path: String) -> Int64 {
    var st = stat()
    precondition(stat(path, &st) == 0)
    return Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
}

fileprivate func setMtime(_ path: String, ns: Int64) {
    var times = [timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000)),
                 timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))]
    precondition(utimensat(AT_FDCWD, path, &times, 0) == 0)
}

fileprivate func dirNames(_ dir: String) -> [String] {
    guard let d = opendir(dir) else { return [] }
    defer { closedir(d) }
    var out: [String] = []
    while let e = readdir(d) {
        let n = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if n != "." && n != ".." { out.append(n) }
    }
    return out.sorted()
}

/// Runs `body(i)` on `n` real threads at once and waits for them all.
fileprivate func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box { let run: () -> Void; init(_ r: @escaping () -> Void) { run = r } }
    var threads: [pthread_t] = []
    for i in 0..<n {
        let arg = Unmanaged.passRetained(Box { body(i) }).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { p in
            Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().run()
            return nil
        }, arg)
        precondition(rc == 0)
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

fileprivate let cacheEpoch = 1_800_000_000.0
fileprivate let workerVariable = "TG_RESULT_CACHE_TEST_WORKER"

/// One process's part in the cross-process test: stores and lookups of a
/// shared id and its own, on the real clock; returns what went wrong.
fileprivate func workerRounds(dir: String, worker: Int, rounds: Int, input: String) -> [String] {
    var problems: [String] = []
    do {
        let c = try ResultCache(dir)
        for i in 0..<rounds {
            let out = [UInt8](repeating: UInt8(worker + 1), count: 1 + (i * 7919 + worker * 104729) % 20000)
            try c.store(taskId: "shared", definition: cacheDef, reads: [input], output: out, ttl: 3600)
            try c.store(taskId: "own-\(worker)", definition: cacheDef, reads: [input], output: out, ttl: 3600)
            let r = try c.lookup(taskId: "shared", definition: cacheDef, reads: [input], ttl: 3600)
            if let o = r.entry?.output, let first = o.first, o.allSatisfy({ $0 == first }) {} else { problems.append("round \(i): \(r)") }
            if try c.lookup(taskId: "own-\(worker)", definition: cacheDef, reads: [input], ttl: 3600).entry?.output != out {
                problems.append("round \(i): own entry differs")
            }
            if i % 15 == 0 {
                _ = c.purge()
                problems += c.list().compactMap { $0.problem.map { p in "round \(i): list: \(p)" } }
            }
        }
    } catch {
        problems.append("\(error)")
    }
    return problems
}

/// posix_spawn with the current environment plus `extraEnvironment`,
/// stdout and stderr to `output`.
fileprivate func spawn(_ args: [String], extraEnvironment: [String], output: String) -> pid_t? {
    var env: [String] = []
    var e = environ
    while let p = e.pointee {
        env.append(String(cString: p))
        e += 1
    }
    env += extraEnvironment
    let argv = args.map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, args[0], &actions, nil, argv, envp)
    if rc != 0 { errno = rc; return nil }
    return pid
}
fileprivate let cacheDef = "processor=compile args=[-O2] reads=[in.txt] writes=[out.o]"

@Suite struct ResultCacheTests {
    /// A cache dir and an input file in a fresh temp directory, on virtual
    /// time; the directory is removed with the fixture.
    final class Fixture: Sendable {
        let root: String
        let dir: String
        let input: String
        fileprivate let clock = VirtualWallClock(cacheEpoch)
        init(input text: String = "hello") {
            root = cacheTempDir()
            dir = root + "/.taskgate/cache"
            input = root + "/in.txt"
            writeFile(input, text)
        }
        deinit { removeTree(root) }
        func cache(_ options: ResultCacheOptions = ResultCacheOptions()) throws -> ResultCache {
            try ResultCache(dir, options: options, now: clock.read)
        }
    }

    @Test func missesWhenAbsentThenHitsAfterStore() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let before = try c.lookup(taskId: "build", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(before == .miss(.absent))
        #expect(before.code == "absent")
        #expect(before.description == "cache miss: no cached result")

        let stamps = try c.snapshot(reads: [fx.input])
        let info = try c.store(taskId: "build", definition: cacheDef, stamps: stamps, output: Array("result".utf8), ttl: 60)
        #expect(info.createdAt == cacheEpoch)
        #expect(info.reads.count == 1 && info.reads[0].kind == .file && info.reads[0].size == 5)

        let after = try c.lookup(taskId: "build", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(after.isHit)
        #expect(after.code == "hit")
        #expect(after.entry?.output == Array("result".utf8))
        #expect(after.entry?.info == info)
        #expect(after.json.hasPrefix("{\"cache\":\"hit\""))
        // Another id is still absent; the directory holds one entry and the .gitignore.
        #expect(try c.lookup(taskId: "other", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.absent))
        #expect(dirNames(fx.dir) == [".gitignore", "k_build.entry"])
    }

    @Test func ttlBoundaryAgeEqualToTtlHitsOneTickLaterMisses() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [1], ttl: 60)
        fx.clock.set(cacheEpoch + 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).isHit)  // age == ttl: hit
        fx.clock.set((cacheEpoch + 60).nextUp)
        let late = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(late == .miss(.expired(ageSeconds: (cacheEpoch + 60).nextUp - cacheEpoch, ttl: 60)))
        #expect(late.code == "expired")
        #expect(late.missReason!.description.hasPrefix("cached result expired: age 60 s > ttl 60 s"))
        fx.clock.set(cacheEpoch + 61)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.expired(ageSeconds: 61, ttl: 60)))
        // The lookup's TTL is the one that counts (the task's current declaration).
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 61).isHit)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: .infinity).isHit)
        // ttl 0 hits only at the very instant of the store.
        fx.clock.set(cacheEpoch)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 0).isHit)
        fx.clock.set(cacheEpoch.nextUp)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 0).code == "expired")
        // A clock moved back before the entry's creation: not trusted.
        fx.clock.set(cacheEpoch - 5)
        let back = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(back == .miss(.expired(ageSeconds: -5, ttl: 60)))
        #expect(back.missReason!.description.contains("in the future"))
    }

    @Test func touchedReadFileInvalidates() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [1], ttl: 60)
        setMtime(fx.input, ns: mtimeNs(fx.input) + 1_000)  // 1 µs later, same bytes
        let r = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(r == .miss(.readChanged(path: fx.input, what: "mtime")))
        #expect(r.code == "read_changed")
        #expect(r.missReason!.description == "read file \(fx.input) changed (mtime)")
        #expect(r.json.contains("\"what\":\"mtime\""))
    }

    @Test func changedSizeInvalidatesEvenWithTheSameMtime() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [1], ttl: 60)
        let m = mtimeNs(fx.input)
        writeFile(fx.input, "hello, world")
        setMtime(fx.input, ns: m)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.readChanged(path: fx.input, what: "size")))
    }

    @Test func deletedReadFileInvalidates() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [1], ttl: 60)
        unlink(fx.input)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.readChanged(path: fx.input, what: "missing")))
    }

    @Test func readFileAppearingThatWasMissingInvalidates() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let later = fx.root + "/generated.h"
        let stamps = try c.snapshot(reads: [fx.input, later])
        #expect(stamps.map(\.kind) == [.missing, .file])  // sorted by path: generated.h < in.txt
        try c.store(taskId: "t", definition: cacheDef, stamps: stamps, output: [1], ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input, later], ttl: 60).isHit)  // still missing: hit
        writeFile(later, "")
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input, later], ttl: 60) == .miss(.readChanged(path: later, what: "appeared")))
        // A file replaced by a directory is a change of type.
        unlink(later)
        mkdir(later, 0o755)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input, later], ttl: 60) == .miss(.readChanged(path: later, what: "appeared")))
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input, later], output: [1], ttl: 60)
        rmdir(later)
        writeFile(later, "x")
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input, later], ttl: 60) == .miss(.readChanged(path: later, what: "type")))
    }

    @Test func changedDefinitionInvalidatesAndItsStoreReplacesTheEntry() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: Array("old".utf8), ttl: 60)
        let def2 = cacheDef.replacingOccurrences("-O2", "-O3")
        let r = try c.lookup(taskId: "t", definition: def2, reads: [fx.input], ttl: 60)
        #expect(r == .miss(.definitionChanged))
        #expect(r.code == "definition_changed")
        try c.store(taskId: "t", definition: def2, reads: [fx.input], output: Array("new".utf8), ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: def2, reads: [fx.input], ttl: 60).entry?.output == Array("new".utf8))
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.definitionChanged))
        #expect(dirNames(fx.dir).filter { $0.hasSuffix(".entry") } == ["k_t.entry"])
        // The verify mode is part of the fingerprint: a content-hash cache on the same
        // directory does not take a stat entry for its own.
        let content = try fx.cache(ResultCacheOptions(verify: .contentHash))
        #expect(try content.lookup(taskId: "t", definition: def2, reads: [fx.input], ttl: 60) == .miss(.definitionChanged))
        #expect(ResultCache.definitionHash(cacheDef, verify: .stat).utf8.count == 32)
        #expect(ResultCache.definitionHash(cacheDef, verify: .stat) != ResultCache.definitionHash(cacheDef, verify: .contentHash))
    }

    @Test func declaredReadListChangeMissesButOrderAndDuplicatesDoNot() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let b = fx.root + "/b.txt"
        writeFile(b, "b")
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input, b], output: [1], ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [b, fx.input, b], ttl: 60).isHit)
        let r = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input, "/nonexistent/c"], ttl: 60)
        #expect(r == .miss(.readsChanged(added: ["/nonexistent/c"], removed: [b])))
        #expect(r.code == "reads_list_changed")
        #expect(r.missReason!.description == "declared reads changed (added /nonexistent/c; removed \(b))")
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [], ttl: 60).code == "reads_list_changed")
    }

    @Test func entriesSurviveANewInstanceOnTheSameDirectory() throws {
        let fx = Fixture()
        do {
            let c = try fx.cache()
            try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: Array("kept".utf8), ttl: 3600)
        }
        fx.clock.advance(1800)
        let again = try ResultCache(fx.dir, options: ResultCacheOptions(create: false), now: fx.clock.read)
        let r = try again.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 3600)
        #expect(r.entry?.output == Array("kept".utf8))
        #expect(r.entry?.info.createdAt == cacheEpoch)
        #expect(r.entry?.info.age(at: fx.clock.now) == 1800)
    }

    @Test func corruptEntriesMissAndNeverCrash() throws {
        let fx = Fixture()
        let c = try fx.cache(ResultCacheOptions(maxOutputBytes: 1 << 20))
        let file = fx.dir + "/k_t.entry"
        let info = try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: Array("0123456789".utf8), ttl: 60)
        let good = readFile(file)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).isHit)
        let header = ResultCache.headerLine(info)
        let body = String(header.dropLast(28))

        func expectMiss(_ bytes: [UInt8], _ code: String, _ fragment: String, listed: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
            writeFile(file, bytes)
            let r = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60)
            #expect(r.code == code, "\(r)", sourceLocation: sourceLocation)
            #expect(r.description.contains(fragment), "\(r)", sourceLocation: sourceLocation)
            // list reads headers only: an output checksum shows up in lookups.
            #expect(c.list().first?.problem?.code == (listed ? code : nil), sourceLocation: sourceLocation)
        }
        func forged(_ body: String, output: String = "0123456789") -> [UInt8] {
            Array((ResultCache.seal(body) + "\n" + output).utf8)
        }
        try expectMiss([], "corrupt", "is empty")
        try expectMiss(Array(good.dropLast(3)), "corrupt", "truncated: 7 of 10 output bytes")
        try expectMiss(Array(good.prefix(40)), "corrupt", "no header line")
        try expectMiss(good + [0x0a], "corrupt", "1 bytes after the output")
        try expectMiss((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }, "corrupt", "t.entry")
        try expectMiss(Array("\n\n\n".utf8), "corrupt", "not an entry header")
        try expectMiss(Array("{}\n".utf8), "corrupt", "not an entry header")
        // A header edited without resealing.
        try expectMiss(Array(header.replacingOccurrences("\"ttl\":60", "\"ttl\":99").utf8) + [0x0a] + Array("0123456789".utf8),
                       "corrupt", "header checksum mismatch")
        // Sealed, but wrong: unknown version, huge lengths, nested JSON.
        try expectMiss(forged(body.replacingOccurrences("\"version\":1", "\"version\":2")), "corrupt", "unknown format version 2")
        try expectMiss(forged(body.replacingOccurrences("\"output_length\":10", "\"output_length\":1152921504606846976")),
                       "corrupt", "over the cap")
        try expectMiss(forged(body.replacingOccurrences("\"output_length\":10", "\"output_length\":-1")), "corrupt", "bad output_length")
        try expectMiss(forged(body.replacingOccurrences("\"reads\":1", "\"reads\":4000000000")), "corrupt", "bad read count")
        try expectMiss(forged(body.replacingOccurrences("\"reads\":1", "\"reads\":2")), "corrupt", "read 1: no absolute path")
        try expectMiss(forged(body.replacingOccurrences("\"format\":\"taskgate-cache\"", "\"format\":{}")), "corrupt", "not a flat JSON object")
        // An output bit flip: the header is fine, the checksum of the output is not.
        var flipped = good
        flipped[flipped.count - 1] ^= 0x01
        try expectMiss(flipped, "corrupt", "output checksum mismatch", listed: false)
        // A file over the size cap (sparse): refused before reading it.
        writeFile(file, [])
        truncate(file, 3 << 20 + (16 << 20))
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).description.contains("over the cap"))
        // A symbolic link or a directory in the entry's place.
        unlink(file)
        symlink(fx.input, file)
        let viaLink = try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60)
        #expect(viaLink.code == "unreadable" && viaLink.description.contains("symbolic link"))
        // Store replaces any of these (the link itself, never its target).
        try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [7], ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).entry?.output == [7])
        #expect(readFile(fx.input) == Array("hello".utf8))
        unlink(file)
        mkdir(file, 0o755)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).code == "unreadable")
        #expect(throws: TaskGateError.self) { try c.store(taskId: "t", definition: cacheDef, reads: [fx.input], output: [7], ttl: 60) }
        #expect(dirNames(fx.dir).allSatisfy { !$0.hasPrefix(".tmp.") })  // the failed store cleaned its temp file
    }

    @Test func binaryAndEmptyOutputsRoundTripAndOversizeIsRefused() throws {
        let fx = Fixture()
        let c = try fx.cache(ResultCacheOptions(maxOutputBytes: 1 << 20))
        let all = (0..<1024).map { UInt8(truncatingIfNeeded: $0) } + [0x0a, 0x00, 0x0d, 0xff]
        try c.store(taskId: "bin", definition: cacheDef, reads: [], output: all, ttl: 60)
        #expect(try c.lookup(taskId: "bin", definition: cacheDef, reads: [], ttl: 60).entry?.output == all)
        try c.store(taskId: "empty", definition: cacheDef, reads: [], output: [], ttl: 60)
        let e = try c.lookup(taskId: "empty", definition: cacheDef, reads: [], ttl: 60)
        #expect(e.isHit && e.entry?.output == [])
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }
        try c.store(taskId: "big", definition: cacheDef, reads: [], output: big, ttl: 60)
        #expect(try c.lookup(taskId: "big", definition: cacheDef, reads: [], ttl: 60).entry?.output == big)
        #expect(throws: TaskGateError.self) { try c.store(taskId: "big", definition: cacheDef, reads: [], output: big + [0], ttl: 60) }
        #expect(try c.lookup(taskId: "big", definition: cacheDef, reads: [], ttl: 60).entry?.output == big)  // the refused store left it
        // A cache with a smaller cap reads the bigger entry as corrupt, not as a crash.
        let small = try fx.cache(ResultCacheOptions(maxOutputBytes: 1000))
        #expect(try small.lookup(taskId: "big", definition: cacheDef, reads: [], ttl: 60).code == "corrupt")
    }

    @Test func concurrentStoresAndLookupsFromThreadsLeaveReadableEntries() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let failures = Mutex<[String]>([])
        let threads = 4, rounds = 40
        onThreads(threads) { t in
            for i in 0..<rounds {
                let out = [UInt8](repeating: UInt8(t + 1), count: 1 + (i * 997 + t * 131) % 9000)
                do {
                    try c.store(taskId: "same", definition: cacheDef, reads: [fx.input], output: out, ttl: 60)
                    try c.store(taskId: "own-\(t)", definition: cacheDef, reads: [fx.input], output: out, ttl: 60)
                    let r = try c.lookup(taskId: "same", definition: cacheDef, reads: [fx.input], ttl: 60)
                    guard let o = r.entry?.output, let first = o.first, first >= 1, first <= UInt8(threads), o.allSatisfy({ $0 == first })
                    else { failures.withLock { $0.append("thread \(t) round \(i): \(r)") }; continue }
                    let own = try c.lookup(taskId: "own-\(t)", definition: cacheDef, reads: [fx.input], ttl: 60)
                    if own.entry?.output != out { failures.withLock { $0.append("thread \(t) round \(i) own: \(own)") } }
                    if i % 10 == 0 { _ = c.list() }
                } catch {
                    failures.withLock { $0.append("thread \(t) round \(i): \(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let listing = c.list()
        #expect(listing.count == threads + 1)
        #expect(listing.allSatisfy { $0.problem == nil && $0.info != nil })
        #expect(dirNames(fx.dir).allSatisfy { !$0.hasPrefix(".tmp.") })
    }

    @Test func aSymlinkedOrNonDirectoryCachePathIsRefused() throws {
        let root = cacheTempDir()
        defer { removeTree(root) }
        mkdir(root + "/real", 0o755)
        symlink(root + "/real", root + "/link")
        let linkError = #expect(throws: TaskGateError.self) { _ = try ResultCache(root + "/link") }
        guard case .unsafePath(let m)? = linkError else { Issue.record("expected unsafePath, got \(String(describing: linkError))"); return }
        #expect(m.contains("symbolic link"))
        writeFile(root + "/file", "x")
        let fileError = #expect(throws: TaskGateError.self) { _ = try ResultCache(root + "/file") }
        guard case .invalid(let m2)? = fileError else { Issue.record("expected invalid, got \(String(describing: fileError))"); return }
        #expect(m2.contains("not a directory"))
        #expect(throws: TaskGateError.notFound("result cache directory '\(root)/absent' does not exist")) {
            _ = try ResultCache(root + "/absent", options: ResultCacheOptions(create: false))
        }
        #expect(throws: TaskGateError.self) { _ = try ResultCache(root + "/file/sub") }
        #expect(throws: TaskGateError.self) { _ = try ResultCache("") }
        // A link higher up the path is the user's business (a symlinked home): allowed.
        let viaParent = try ResultCache(root + "/link/cache")
        #expect(viaParent.list().isEmpty)
        var st = stat()
        #expect(lstat(root + "/real/cache", &st) == 0 && st.st_mode & S_IFMT == S_IFDIR && st.st_mode & 0o700 == 0o700 && st.st_mode & 0o022 == 0)
        #expect(ResultCache.defaultPath(besideLockDirectory: ".taskgate/locks") == ".taskgate/cache")
        #expect(ResultCache.defaultPath(besideLockDirectory: "/p/.taskgate/locks/") == "/p/.taskgate/cache")
        #expect(ResultCache.defaultPath(besideLockDirectory: "locks") == "cache")
    }

    @Test func purgeRemovesExpiredAndCorruptEntriesAndStaleTempFiles() throws {
        let fx = Fixture()
        let c = try fx.cache()
        try c.store(taskId: "short", definition: cacheDef, reads: [], output: [1], ttl: 10)
        try c.store(taskId: "long", definition: cacheDef, reads: [], output: [2], ttl: 1000)
        try c.store(taskId: "forever", definition: cacheDef, reads: [], output: [3], ttl: .infinity)
        writeFile(fx.dir + "/k_bad.entry", "garbage")
        writeFile(fx.dir + "/.tmp.99.1.deadbeef", "half an entry")
        setMtime(fx.dir + "/.tmp.99.1.deadbeef", ns: mtimeNs(fx.dir + "/.tmp.99.1.deadbeef") - 3_600_000_000_000)
        writeFile(fx.dir + "/.tmp.99.2.cafecafe", "a store in progress")
        writeFile(fx.dir + "/notes.txt", "not ours")
        fx.clock.advance(100)
        #expect(c.purge() == 3)  // short (expired), bad (corrupt), the hour-old temp file
        #expect(c.list().map(\.file) == ["k_forever.entry", "k_long.entry"])
        #expect(dirNames(fx.dir) == [".gitignore", ".tmp.99.2.cafecafe", "k_forever.entry", "k_long.entry", "notes.txt"])
        #expect(c.purge() == 0)
        #expect(c.purge(olderThan: 100) == 0)  // age == 100 is not older
        #expect(c.purge(olderThan: 99) == 2)
        #expect(c.purge(tempGrace: 0) == 1)
        #expect(dirNames(fx.dir) == [".gitignore", "notes.txt"])
    }

    @Test func statModeHasTheSameTickHoleThatContentHashCloses() throws {
        // The hole: same size, mtime put back (or a rewrite within one mtime tick).
        func rewriteKeepingMtime(_ path: String) {
            let m = mtimeNs(path)
            writeFile(path, "HELLO")
            setMtime(path, ns: m)
        }
        let fx = Fixture()
        let stat = try fx.cache(ResultCacheOptions(verify: .stat, racyWindowSeconds: 0))
        try stat.store(taskId: "s", definition: cacheDef, reads: [fx.input], output: [1], ttl: 60)
        #expect(try stat.snapshot(reads: [fx.input])[0].contentHash == nil)
        rewriteKeepingMtime(fx.input)
        #expect(try stat.lookup(taskId: "s", definition: cacheDef, reads: [fx.input], ttl: 60).isHit)  // not detected (documented)

        let fy = Fixture()
        let content = try fy.cache(ResultCacheOptions(verify: .contentHash))
        let stamps = try content.snapshot(reads: [fy.input])
        #expect(stamps[0].contentHash != nil)
        try content.store(taskId: "c", definition: cacheDef, stamps: stamps, output: [1], ttl: 60)
        setMtime(fy.input, ns: mtimeNs(fy.input) + 5_000_000_000)  // touched, same bytes
        #expect(try content.lookup(taskId: "c", definition: cacheDef, reads: [fy.input], ttl: 60).isHit)
        rewriteKeepingMtime(fy.input)
        #expect(try content.lookup(taskId: "c", definition: cacheDef, reads: [fy.input], ttl: 60) == .miss(.readChanged(path: fy.input, what: "content")))
        // Stamps without hashes are refused by a content-hash cache.
        #expect(throws: TaskGateError.self) {
            try content.store(taskId: "c", definition: cacheDef, stamps: [CacheFileStamp(path: fy.input, kind: .file, mtimeNs: 1, size: 5)], output: [], ttl: 1)
        }
    }

    @Test func racyReadFilesAreHashedUnderStatSoTheHoleClosesForThem() throws {
        let fx = Fixture()
        let c = try fx.cache(ResultCacheOptions(verify: .stat, racyWindowSeconds: 3600))
        let fresh = try c.snapshot(reads: [fx.input])
        #expect(fresh[0].contentHash != nil)  // written just now: racy
        try c.store(taskId: "t", definition: cacheDef, stamps: fresh, output: [1], ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).isHit)
        let m = mtimeNs(fx.input)
        writeFile(fx.input, "HELLO")
        setMtime(fx.input, ns: m)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.readChanged(path: fx.input, what: "content")))
        // With the default 2 s window, an hour-old file is not racy and is not hashed.
        let d = try fx.cache()
        setMtime(fx.input, ns: m - 3_600_000_000_000)
        #expect(try d.snapshot(reads: [fx.input])[0].contentHash == nil)
        setMtime(fx.input, ns: ResultCache.realNowNs())
        #expect(try d.snapshot(reads: [fx.input])[0].contentHash != nil)
    }

    @Test func aReadChangedWhileTheTaskRanIsCaughtByStampsTakenBefore() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let stamps = try c.snapshot(reads: [fx.input])
        writeFile(fx.input, "edited during the run")  // the task may have read either version
        try c.store(taskId: "t", definition: cacheDef, stamps: stamps, output: [1], ttl: 60)
        #expect(try c.lookup(taskId: "t", definition: cacheDef, reads: [fx.input], ttl: 60).code == "read_changed")
    }

    @Test func removeListAndHashedNamesForLongOrUnsafeIds() throws {
        let fx = Fixture()
        let c = try fx.cache()
        let ids = ["plain-id_1.x", "with space/and slash", "quote\"and\nnewline\u{1}", String(repeating: "é", count: 80), String(repeating: "a", count: 101), ".hidden"]
        for (i, id) in ids.enumerated() {
            try c.store(taskId: id, definition: cacheDef, reads: [fx.input], output: [UInt8(i)], ttl: 60)
        }
        for (i, id) in ids.enumerated() {
            #expect(try c.lookup(taskId: id, definition: cacheDef, reads: [fx.input], ttl: 60).entry?.output == [UInt8(i)], "\(id)")
            let name = ResultCache.fileName(forTaskId: id)
            #expect(name.utf8.count <= 120 && !name.contains("/") && name.hasSuffix(".entry"))
        }
        #expect(ResultCache.fileName(forTaskId: "plain-id_1.x") == "k_plain-id_1.x.entry")
        #expect(ResultCache.fileName(forTaskId: ".hidden").hasPrefix("h_"))
        let listed = c.list()
        #expect(Set(listed.compactMap { $0.info?.taskId }) == Set(ids))
        #expect(listed.allSatisfy { $0.json.hasPrefix("{\"file\":") && $0.json.contains("\"task_id\":") })
        #expect(try c.remove(taskId: ids[1]))
        #expect(try !c.remove(taskId: ids[1]))
        #expect(try c.lookup(taskId: ids[1], definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.absent))
        #expect(c.list().count == ids.count - 1)

        // Two ids sharing a file name: the entry records its id, so the other reads it as absent.
        let victim = "other id"
        let entry = readFile(fx.dir + "/" + ResultCache.fileName(forTaskId: ids[2]))
        writeFile(fx.dir + "/" + ResultCache.fileName(forTaskId: victim), entry)
        #expect(try c.lookup(taskId: victim, definition: cacheDef, reads: [fx.input], ttl: 60) == .miss(.absent))
    }

    /// Several real processes (this test binary, re-run with a filter that picks
    /// `crossProcessWorker`) store and look up the same ids in one directory.
    @Test func severalProcessesShareOneDirectory() throws {
        let fx = Fixture()
        var link = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &link, link.count - 1)
        guard n > 0 else { Issue.record("cannot find this test binary: readlink /proc/self/exe failed"); return }
        let exe = String(decoding: link[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let workers = 3, rounds = 60
        var pids: [pid_t] = []
        for w in 0..<workers {
            let args = [exe, "--testing-library", "swift-testing", "--filter", "crossProcessWorker"]
            let env = ["\(workerVariable)=\(fx.dir)|\(w + 1)|\(rounds)|\(fx.input)"]
            guard let pid = spawn(args, extraEnvironment: env, output: fx.root + "/worker-\(w).log") else {
                Issue.record("posix_spawn failed: \(String(cString: strerror(errno)))")
                return
            }
            pids.append(pid)
        }
        // This process takes part too, with its own instance.
        let problems = workerRounds(dir: fx.dir, worker: 0, rounds: rounds, input: fx.input)
        #expect(problems == [])
        for (w, pid) in pids.enumerated() {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let log = String(decoding: readFile(fx.root + "/worker-\(w).log").suffix(3000), as: UTF8.self)
            #expect(status == 0, "worker \(w) exited with status \(status):\n\(log)")
            #expect(log.contains("passed"), "worker \(w) log:\n\(log)")
        }
        let c = try fx.cache()
        let listing = c.list()
        #expect(listing.count == workers + 2)  // "shared" and one per process
        #expect(listing.allSatisfy { $0.problem == nil })
        #expect(dirNames(fx.dir).allSatisfy { !$0.hasPrefix(".tmp.") })
        let shared = try ResultCache(fx.dir).lookup(taskId: "shared", definition: cacheDef, reads: [fx.input], ttl: 3600)
        #expect(shared.isHit)
    }

    /// The other processes' half of `severalProcessesShareOneDirectory`; a
    /// no-op unless that test started this process.
    @Test func crossProcessWorker() throws {
        guard let spec = getenv(workerVariable) else { return }
        let parts = String(cString: spec).split(separator: "|").map(String.init)
        guard parts.count == 4, let w = Int(parts[1]), let rounds = Int(parts[2]) else {
            Issue.record("bad \(workerVariable): \(String(cString: spec))")
            return
        }
        #expect(workerRounds(dir: parts[0], worker: w, rounds: rounds, input: parts[3]) == [])
    }

    @Test func badArgumentsThrow() throws {
        let fx = Fixture()
        let c = try fx.cache()
        #expect(throws: TaskGateError.self) { _ = try c.lookup(taskId: "", definition: cacheDef, reads: [], ttl: 1) }
        #expect(throws: TaskGateError.self) { _ = try c.lookup(taskId: "t", definition: cacheDef, reads: ["relative/path"], ttl: 1) }
        #expect(throws: TaskGateError.self) { _ = try c.lookup(taskId: "t", definition: cacheDef, reads: [], ttl: .nan) }
        #expect(throws: TaskGateError.self) { _ = try c.lookup(taskId: "t", definition: cacheDef, reads: [], ttl: -1) }
        #expect(throws: TaskGateError.self) { try c.store(taskId: "t", definition: cacheDef, reads: ["x"], output: [], ttl: 1) }
        #expect(throws: TaskGateError.self) { _ = try c.snapshot(reads: ["/a\u{0}b"]) }
        let few = try fx.cache(ResultCacheOptions(maxReads: 1))
        #expect(throws: TaskGateError.self) { _ = try few.snapshot(reads: ["/a", "/b"]) }
    }

    @Test func hashIsStreamingConsistentAndLengthSensitive() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let whole = bytes.withUnsafeBytes { CacheHash.of($0, seed: 1) }
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            var h = CacheHasher(seed: 1)
            bytes[0..<split].withUnsafeBytes { h.update($0) }
            bytes[split...].withUnsafeBytes { h.update($0) }
            #expect(h.finish64() == whole, "split \(split)")
        }
        var seen = Set<UInt64>()
        for n in 0..<64 { seen.insert([UInt8](repeating: 0, count: n).withUnsafeBytes { CacheHash.of($0, seed: 1) }) }
        #expect(seen.count == 64)
        #expect(CacheHash.of("a", seed: 1) != CacheHash.of("a", seed: 2))
        #expect(CacheHash.parseHex(Array(CacheHash.hex(0xdead_beef).utf8)) == 0xdead_beef)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound]
            out += b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
