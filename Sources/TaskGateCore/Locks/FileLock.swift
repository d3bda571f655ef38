import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// A cross-process lock on one key, held through a lock file in a
/// `LockDirectory` (see Locks/README.md for the protocol and why).
///
/// One holder: use one `FileLock` from one thread at a time. Two `FileLock`s
/// on the same key exclude each other even inside one process (open file
/// description locks), so threads may each own one.
public final class FileLock: @unchecked Sendable {
    public let directory: LockDirectory
    public let key: String
    public let file: String
    public let holderId: String
    /// Seconds this holder may keep the lock before others may take it; 0: no limit.
    public let holdTimeout: Double
    public let shared: Bool

    private var fd: Int32 = -1
    private var inode: (UInt64, UInt64) = (0, 0)
    /// Bytes of metadata (padding included) this holder wrote: release blanks them.
    private var written = 0
    /// The last acquisition took the lock from a stale holder (dead, pid
    /// reused, past its timeout, or unreadable and old).
    public private(set) var tookOver = false
    /// That holder's metadata, when it could be read.
    public private(set) var tookOverFrom: LockMetadata?
    public private(set) var staleReason: StaleReason?
    /// The holder seen by the last acquisition that found the lock busy.
    public private(set) var lastHolder: LockMetadata?

    /// Byte 0 is the lock itself; byte 1 guards acquisition against takeover
    /// (acquirers hold it shared while they lock and check, a takeover or a
    /// clean holds it exclusively while it replaces or removes the file).
    static let lockByte: Int64 = 0
    static let guardByte: Int64 = 1

    private nonisolated(unsafe) static var takeoverCounter: UInt64 = 0

    public convenience init(directory: LockDirectory, key: String, holderId: String? = nil,
                            holdTimeout: Double = 300, shared: Bool = false) throws(TaskGateError) {
        guard !key.isEmpty else { throw .invalid("lock key is empty") }
        guard !key.utf8.contains(0) else { throw .invalid("lock key contains a NUL byte") }
        guard holdTimeout.isFinite, holdTimeout >= 0 else { throw .invalid("lock hold timeout must be >= 0 seconds, got \(holdTimeout)") }
        self.init(directory: directory, file: LockDirectory.fileName(forKey: key), key: key,
                  holderId: holderId ?? "pid-\(getpid())", holdTimeout: holdTimeout, shared: shared)
    }

    init(directory: LockDirectory, file: String, key: String, holderId: String, holdTimeout: Double, shared: Bool) {
        self.directory = directory
        self.key = key
        self.file = file
        self.holderId = holderId
        self.holdTimeout = holdTimeout
        self.shared = shared
    }

    deinit { if fd >= 0 { try? release() } }

    public var isHeld: Bool { fd >= 0 }

    /// Still ours? False once a takeover (after our timeout) replaced the file.
    public func verify() -> Bool {
        guard fd >= 0 else { return false }
        var now = tgs_file_info()
        return tgs_lstat_at(directory.fd, file, &now) == 0 && now.dev == inode.0 && now.ino == inode.1
    }

    // MARK: - Acquire

    /// Takes the lock if it is free or stale; false if a live holder has it.
    public func tryAcquire() throws(TaskGateError) -> Bool {
        guard fd < 0 else { throw .invalid("lock '\(key)' is already held by this FileLock") }
        return try attempt()
    }

    /// Waits up to `timeout` seconds (negative: forever) for the lock,
    /// polling with a delay that grows from 50 µs to 20 ms. Throws `.locked`
    /// (naming the holder) when the time runs out. `cancelled` is asked
    /// between polls; returning true stops the wait with `.timedOut`.
    public func acquire(timeout: Double, cancelled: (() -> Bool)? = nil) throws(TaskGateError) {
        if try tryAcquire() { return }
        let start = monotonicSeconds()
        var delay = 50e-6
        while true {
            if let c = cancelled, c() { throw .timedOut("lock '\(key)': the wait was cancelled") }
            let waited = monotonicSeconds() - start
            if timeout >= 0 && waited >= timeout {
                throw .locked("lock '\(key)' (\(directory.path)/\(file)): still held after \(JSONText.number((timeout * 1000).rounded()) ) ms\(holderText)")
            }
            var d = delay
            if timeout >= 0 { d = min(d, max(0, timeout - waited)) }
            var ts = timespec(tv_sec: Int(d), tv_nsec: Int((d - Double(Int(d))) * 1e9))
            nanosleep(&ts, nil)
            delay = min(delay * 2, 0.02)
            if try attempt() { return }
        }
    }

    var holderText: String {
        guard let h = lastHolder else { return "" }
        return " by \(h.holderId) (pid \(h.pid) on \(h.host))"
    }

    private enum Outcome { case acquired, busy, retry }

    private func attempt() throws(TaskGateError) -> Bool {
        // A few retries cover files replaced or removed between open and lock.
        for _ in 0..<64 {
            switch try attemptOnce() {
            case .acquired: return true
            case .busy: return false
            case .retry: continue
            }
        }
        return false
    }

    private func attemptOnce() throws(TaskGateError) -> Outcome {
        var info = tgs_file_info()
        let f = tgs_lock_open(directory.fd, file, Int32(TGS_OPEN_CREATE), &info)
        if f < 0 {
            if f == -ENOENT { return .retry }  // removed between create and fstat? try again
            throw FileLock.openError(f, info: info, file: file, dir: directory.path)
        }
        if directory.othersWritable && info.uid != geteuid() {
            close(f)
            throw .unsafePath("lock file '\(directory.path)/\(file)' belongs to uid \(info.uid), not to this user, in a directory others may write: refused")
        }
        var g = tgs_ofd_lock(f, Int32(TGS_LOCK_READ), FileLock.guardByte, 0)
        if g != 0 {
            close(f)
            if tgs_errno_busy(g) != 0 { return .busy }  // a takeover or clean is working on it
            throw lockError(g)
        }
        let l = tgs_ofd_lock(f, Int32(shared ? TGS_LOCK_READ : TGS_LOCK_WRITE), FileLock.lockByte, 0)
        if l == 0 {
            // Ours, if the file is still the one at the path (a takeover or a
            // clean may have replaced or removed it before we locked it).
            var now = tgs_file_info()
            guard tgs_lstat_at(directory.fd, file, &now) == 0, now.dev == info.dev, now.ino == info.ino else {
                close(f)
                return .retry
            }
            let (previous, recorded) = FileLock.recordedHolder(f, size: info.size)
            if !shared {
                try writeMetadata(f, oldSize: info.size)
            } else if recorded {
                _ = ftruncate(f, 0)  // a dead exclusive holder's metadata
            }
            g = tgs_ofd_lock(f, Int32(TGS_LOCK_NONE), FileLock.guardByte, 0)
            fd = f
            inode = (info.dev, info.ino)
            tookOverFrom = previous
            tookOver = recorded
            staleReason = previous.map { StaleReason.judge($0, fileMtimeNs: 0, fallbackTimeout: 0) ?? .holderDead(pid: $0.pid) }
            return .acquired
        }
        _ = tgs_ofd_lock(f, Int32(TGS_LOCK_NONE), FileLock.guardByte, 0)
        if tgs_errno_busy(l) == 0 {
            close(f)
            throw lockError(l)
        }
        // Busy. Shared holders are never judged (they write no metadata, and
        // the kernel frees a dead one's lock); an exclusive holder is judged
        // by its metadata.
        if tgs_ofd_query(f, Int32(TGS_LOCK_WRITE), FileLock.lockByte) != Int32(TGS_LOCK_WRITE) {
            lastHolder = nil
            close(f)
            return .busy
        }
        let meta = FileLock.readMetadata(f, size: info.size)
        lastHolder = meta
        guard StaleReason.judge(meta, fileMtimeNs: info.mtime_ns, fallbackTimeout: holdTimeout) != nil else {
            close(f)
            return .busy
        }
        return try takeOver(f, info: info, judged: meta)
    }

    /// Replaces a stale holder's file with a fresh one already locked by us.
    /// Under the old file's guard byte held exclusively, no acquirer is
    /// between its lock and its check, and no other takeover or clean runs on
    /// it; the path is checked to still name the old file, the holder judged
    /// again, then a new file (locked, metadata written) is renamed over it.
    private func takeOver(_ f: Int32, info: tgs_file_info, judged: LockMetadata?) throws(TaskGateError) -> Outcome {
        defer { close(f) }
        let g = tgs_ofd_lock(f, Int32(TGS_LOCK_WRITE), FileLock.guardByte, 0)
        if g != 0 {
            if tgs_errno_busy(g) != 0 { return .busy }  // another taker, or an acquirer mid-check
            throw lockError(g)
        }
        var now = tgs_file_info()
        guard tgs_lstat_at(directory.fd, file, &now) == 0, now.dev == info.dev, now.ino == info.ino else { return .retry }
        if tgs_ofd_lock(f, Int32(TGS_LOCK_WRITE), FileLock.lockByte, 0) == 0 {
            // Released meanwhile: an ordinary acquisition, under the guard.
            _ = tgs_ofd_lock(f, Int32(TGS_LOCK_NONE), FileLock.lockByte, 0)
            return .retry
        }
        var fresh = tgs_file_info()
        _ = tgs_fstat_info(f, &fresh)
        let meta = FileLock.readMetadata(f, size: fresh.size)
        guard meta == judged, let again = StaleReason.judge(meta, fileMtimeNs: fresh.mtime_ns, fallbackTimeout: holdTimeout) else { return .busy }
        FileLock.counterLock.lock()
        FileLock.takeoverCounter &+= 1
        let n = FileLock.takeoverCounter
        FileLock.counterLock.unlock()
        let temp = file + ".tk\(getpid()).\(n)"
        var tinfo = tgs_file_info()
        let t = tgs_lock_open(directory.fd, temp, Int32(TGS_OPEN_EXCL), &tinfo)
        guard t >= 0 else { throw FileLock.openError(t, info: tinfo, file: temp, dir: directory.path) }
        let tl = tgs_ofd_lock(t, Int32(TGS_LOCK_WRITE), FileLock.lockByte, 0)
        guard tl == 0 else {
            unlinkat(directory.fd, temp, 0)
            close(t)
            throw lockError(tl)
        }
        if !shared {
            do { try writeMetadata(t, oldSize: 0) } catch { unlinkat(directory.fd, temp, 0); close(t); throw error }
        } else {
            _ = tgs_ofd_lock(t, Int32(TGS_LOCK_READ), FileLock.lockByte, 0)
        }
        guard renameat(directory.fd, temp, directory.fd, file) == 0 else {
            let e = errno
            unlinkat(directory.fd, temp, 0)
            close(t)
            throw .io("lock '\(key)': rename over the stale lock file failed: \(String(cString: strerror(e)))")
        }
        fd = t
        inode = (tinfo.dev, tinfo.ino)
        tookOverFrom = meta
        tookOver = true
        staleReason = again
        return .acquired
    }

    private static let counterLock = Lock()

    /// Metadata is padded with spaces to a multiple of this, and release
    /// blanks it instead of truncating: the file keeps its size and its
    /// block, so a lock cycle costs no block allocation or freeing (on ext4
    /// that is a journalled extent change each way).
    static let slotBytes = 256
    private static let blanks = [UInt8](repeating: 0x20, count: LockMetadata.maxBytes)

    private func writeMetadata(_ f: Int32, oldSize: Int64) throws(TaskGateError) {
        let (pid, start) = ProcessFacts.current()
        let m = LockMetadata(key: key, holderId: holderId, pid: pid, startTime: start, host: ProcessFacts.host,
                             acquiredAt: ProcessFacts.wallSeconds(), timeout: holdTimeout)
        // The JSON line, then spaces to the slot's end, then the newline.
        var bytes = Array(m.json.utf8)
        let len = bytes.count
        var padded = (len + FileLock.slotBytes - 1) / FileLock.slotBytes * FileLock.slotBytes
        // Keep a larger file's size when it still fits what is read back.
        if oldSize > Int64(padded), oldSize <= Int64(LockMetadata.maxBytes) { padded = Int(oldSize) }
        if padded > len {
            bytes[len - 1] = 0x20
            bytes.append(contentsOf: repeatElement(0x20, count: padded - len))
            bytes[padded - 1] = 0x0a
        }
        let n = bytes.withUnsafeBufferPointer { pwrite(f, $0.baseAddress, $0.count, 0) }
        if n != padded {
            let e = errno
            _ = tgs_ofd_lock(f, Int32(TGS_LOCK_NONE), FileLock.lockByte, 0)
            close(f)
            throw .io("lock '\(key)': writing metadata to \(directory.path)/\(file) failed: \(n < 0 ? String(cString: strerror(e)) : "short write")")
        }
        if oldSize > Int64(padded) { _ = ftruncate(f, off_t(padded)) }
        written = padded
    }

    // MARK: - Release

    /// Releases the lock (blanks the metadata while still holding it, then
    /// unlocks). The file stays: removing it on release is what lets two
    /// holders in (see README). Releasing a lock not held is `.invalid`.
    public func release() throws(TaskGateError) {
        guard fd >= 0 else { throw .invalid("lock '\(key)' is not held by this FileLock") }
        let f = fd
        fd = -1
        // Only empty the file if it is still ours: after a takeover the path
        // names another holder's file, and ours is an orphan anyway.
        if !shared, written > 0 {
            let n = FileLock.blanks.withUnsafeBufferPointer { pwrite(f, $0.baseAddress, written, 0) }
            if n != written { _ = ftruncate(f, 0) }  // could not blank it: empty it
        }
        written = 0
        _ = tgs_ofd_lock(f, Int32(TGS_LOCK_NONE), FileLock.lockByte, 0)
        close(f)
    }

    /// Removes the lock file while holding the lock and the guard byte (clean).
    /// False when the path no longer names our file.
    func removeWhileHeld() throws(TaskGateError) -> Bool {
        guard fd >= 0 else { return false }
        let g = tgs_ofd_lock(fd, Int32(TGS_LOCK_WRITE), FileLock.guardByte, 0)
        guard g == 0 else { return false }
        defer { _ = tgs_ofd_lock(fd, Int32(TGS_LOCK_NONE), FileLock.guardByte, 0) }
        guard verify() else { return false }
        return unlinkat(directory.fd, file, 0) == 0
    }

    // MARK: - Helpers

    /// What the file records about a previous exclusive holder: its metadata
    /// (nil when unreadable), and whether anything is recorded at all. An
    /// empty file, or one of blanks (a released lock), records nobody.
    /// What the file records about a previous exclusive holder: its metadata
    /// (nil when unreadable), and whether anything is recorded at all. An
    /// empty file, or one of blanks (a released lock), records nobody.
    static func recordedHolder(_ f: Int32, size: Int64) -> (LockMetadata?, Bool) {
        guard size > 0 else { return (nil, false) }
        guard size <= Int64(LockMetadata.maxBytes) else { return (nil, true) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: LockMetadata.maxBytes + 1) { buf in
            let n = pread(f, buf.baseAddress, LockMetadata.maxBytes + 1, 0)
            guard n > 0, n <= LockMetadata.maxBytes else { return (nil, n != 0) }
            let bytes = UnsafeBufferPointer(rebasing: buf[0..<n])
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0 || $0 == 0x0a }) { return (nil, false) }
            return (LockMetadata.parse(bytes), true)
        }
    }

    static func readMetadata(_ f: Int32, size: Int64) -> LockMetadata? {
        recordedHolder(f, size: size).0
    }

    private func lockError(_ e: Int32) -> TaskGateError {
        if tgs_errno_unsupported(e) != 0 {
            return .lockUnsupported("lock '\(key)': file locking does not work in \(directory.path) (\(String(cString: tgs_strerror_neg(e)))): refusing to run without it")
        }
        return .io("lock '\(key)': fcntl on \(directory.path)/\(file): \(String(cString: tgs_strerror_neg(e)))")
    }

    static func describeOpenFailure(_ f: Int32, info: tgs_file_info, file: String, dir: String) -> String {
        if f == Int32(TGS_ENOTREG) {
            let what: String
            switch info.kind {
            case Int32(TGS_FILE_FIFO): what = "a FIFO"
            case Int32(TGS_FILE_SOCKET): what = "a socket"
            case Int32(TGS_FILE_DIRECTORY): what = "a directory"
            default: what = "not a regular file"
            }
            return "'\(dir)/\(file)' is \(what), not a lock file"
        }
        if f == -ELOOP { return "'\(dir)/\(file)' is a symbolic link; lock files are never followed through links" }
        if f == -ENXIO { return "'\(dir)/\(file)' is a socket or device, not a lock file" }
        return "'\(dir)/\(file)': \(String(cString: tgs_strerror_neg(f)))"
    }

    static func openError(_ f: Int32, info: tgs_file_info, file: String, dir: String) -> TaskGateError {
        let text = "lock file " + describeOpenFailure(f, info: info, file: file, dir: dir)
        if f == Int32(TGS_ENOTREG) || f == -ELOOP || f == -ENXIO { return .unsafePath(text) }
        return .io(text)
    }
}

@inline(__always) func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
