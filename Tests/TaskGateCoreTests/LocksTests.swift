import CTaskGateSupport
import Testing
@testable import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct LocksTests {
    func tempDir() -> String {
        var t = Array("/tmp/tg-swift-locks-XXXXXX".utf8CString)
        return t.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    @Test func unsupportedFilesystemIsAnErrorNotANoOp() throws {
        let dir = try LockDirectory(tempDir() + "/locks")
        let lock = try FileLock(directory: dir, key: "k")
        tgs_lock_inject_fault(ENOLCK)
        defer { tgs_lock_inject_fault(0) }
        #expect(throws: TaskGateError.self) { _ = try lock.tryAcquire() }
        do {
            _ = try lock.tryAcquire()
        } catch .lockUnsupported(let m) {
            #expect(m.contains("does not work"))
            #expect(m.contains(dir.path))
        } catch {
            Issue.record("expected lockUnsupported, got \(error)")
        }
        #expect(!lock.isHeld)
    }

    @Test func metadataRoundTripsAndRefusesForeignText() throws {
        let m = LockMetadata(key: "a \"quoted\" key\n", holderId: "w-1", pid: 42, startTime: 123456, host: "h",
                             acquiredAt: 1_795_000_000.25, timeout: 30)
        var text = m.json
        let parsed = text.withUTF8 { LockMetadata.parse($0) }
        #expect(parsed == m)
        for bad in ["", "{", "{\"key\":1}", "[1]", "{\"key\":\"k\",\"pid\":-1}", String(repeating: "x", count: 10)] {
            var b = bad
            #expect(b.withUTF8 { LockMetadata.parse($0) } == nil, "\(bad)")
        }
    }

    @Test func fileNamesAreSafeAndDistinct() {
        #expect(LockDirectory.fileName(forKey: "task-1") == "k_task-1.lock")
        let a = LockDirectory.fileName(forKey: "/a/b c"), b = LockDirectory.fileName(forKey: "/a/b_c")
        #expect(a != b)
        #expect(a.hasPrefix("h_") && !a.contains("/") && !a.contains(" "))
        #expect(LockDirectory.fileName(forKey: "..").hasPrefix("h_"))
        #expect(LockDirectory.fileName(forKey: String(repeating: "x", count: 500)).utf8.count < 100)
    }
}
