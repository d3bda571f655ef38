import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// A directory of lock files, one per key, with a `.gitignore` that keeps
/// them out of version control. Holds the directory open, so lock files are
/// always opened relative to the same directory even if its path is renamed.
public final class LockDirectory: @unchecked Sendable {
    public let path: String
    let fd: Int32
    /// Others may write here (a sticky /tmp-like directory): a lock file
    /// owned by another user there may be a trap and is refused.
    let othersWritable: Bool

    /// Opens (and with `create`, makes, parents included) the directory.
    public init(_ path: String, create: Bool = true) throws(TaskGateError) {
        guard !path.isEmpty else { throw .invalid("lock directory: the path is empty") }
        guard !path.utf8.contains(0) else { throw .invalid("lock directory: the path contains a NUL byte") }
        let (fd, othersWritable) = try StateDirectory.open(path, what: "lock directory", create: create, refuseLink: false)
        self.path = path
        self.fd = fd
        self.othersWritable = othersWritable
    }

    deinit { close(fd) }

    /// The lock file's name for `key`: `k_KEY.lock` when the key is short and
    /// made of `[A-Za-z0-9._-]` (not starting with '.'); otherwise
    /// `h_TAIL_HASH.lock` with the key's last 60 bytes made safe and a 64-bit
    /// FNV-1a hash of the whole key. The two forms cannot collide; two keys
    /// sharing a hash share a lock (more exclusion, never less).
    public static func fileName(forKey key: String) -> String {
        if let plain = StateDirectory.plainName(key, suffix: ".lock") { return plain }
        var h: UInt64 = 0xcbf29ce484222325
        for c in key.utf8 { h = (h ^ UInt64(c)) &* 0x100000001b3 }
        let hex = String(h, radix: 16)
        return "h_" + StateDirectory.safeTail(key, 60) + "_" + String(repeating: "0", count: 16 - hex.count) + hex + ".lock"
    }

    /// Names of the lock files here (and takeover leftovers when `leftovers`).
    func lockFileNames(leftovers: Bool = false) -> [String] {
        StateDirectory.names(in: fd).filter { $0.hasSuffix(".lock") || (leftovers && $0.contains(".lock.tk")) }.sorted()
    }

    // MARK: - Inspection

    public enum State: String, Sendable { case free, held, shared, stale, unsafe }

    /// One lock file as `list` sees it.
    public struct Entry: Sendable {
        public var file: String
        public var state: State
        /// The exclusive holder's metadata, when the file holds readable metadata.
        public var metadata: LockMetadata?
        public var staleReason: StaleReason?
        /// What is wrong with an unsafe entry, or why metadata is unreadable.
        public var note: String?

        public var json: String {
            var s = "{\"file\":" + JSONText.quote(file) + ",\"state\":\"\(state.rawValue)\""
            if let m = metadata {
                s += ",\"key\":" + JSONText.quote(m.key) + ",\"holder_id\":" + JSONText.quote(m.holderId)
                s += ",\"pid\":\(m.pid),\"host\":" + JSONText.quote(m.host)
                s += ",\"acquired_at\":" + JSONText.quote(JSONText.iso8601(m.acquiredAt)) + ",\"timeout\":" + JSONText.number(m.timeout)
            }
            if let r = staleReason { s += ",\"stale_reason\":\"\(r.code)\",\"stale_detail\":" + JSONText.quote(r.description) }
            if let n = note { s += ",\"note\":" + JSONText.quote(n) }
            return s + "}"
        }
    }

    /// The state of every lock file, by file name. `staleAfter` judges
    /// exclusive locks whose metadata cannot be read (seconds; 0: never stale).
    public func list(staleAfter: Double) -> [Entry] {
        lockFileNames().map { inspect(file: $0, staleAfter: staleAfter) }
    }

    /// The state of `key`'s lock right now (free when no file exists).
    public func inspect(key: String, staleAfter: Double) -> Entry {
        inspect(file: LockDirectory.fileName(forKey: key), staleAfter: staleAfter)
    }

    func inspect(file: String, staleAfter: Double) -> Entry {
        var info = tgs_file_info()
        let f = tgs_lock_open(fd, file, 0, &info)
        if f == -ENOENT { return Entry(file: file, state: .free) }
        if f < 0 {
            return Entry(file: file, state: .unsafe, note: FileLock.describeOpenFailure(f, info: info, file: file, dir: path))
        }
        defer { close(f) }
        let q = tgs_ofd_query(f, Int32(TGS_LOCK_WRITE), 0)
        if q == Int32(TGS_LOCK_NONE) {
            // Free. Metadata left behind means its holder ended without
            // releasing it (died): stale, for whoever takes it next.
            let (m, recorded) = FileLock.recordedHolder(f, size: info.size)
            guard recorded else { return Entry(file: file, state: .free) }
            let reason = m.flatMap { StaleReason.judge($0, fileMtimeNs: info.mtime_ns, fallbackTimeout: 0) } ?? .holderDead(pid: m?.pid ?? 0)
            return Entry(file: file, state: .stale, metadata: m, staleReason: reason,
                         note: m == nil ? "metadata unreadable (\(info.size) bytes); nobody holds the lock" : "nobody holds the lock; its holder ended without releasing it")
        }
        if q == Int32(TGS_LOCK_READ) { return Entry(file: file, state: .shared) }
        if q < 0 { return Entry(file: file, state: .unsafe, note: "cannot query the lock: \(String(cString: tgs_strerror_neg(q)))") }
        let m = FileLock.readMetadata(f, size: info.size)
        let reason = StaleReason.judge(m, fileMtimeNs: info.mtime_ns, fallbackTimeout: staleAfter)
        return Entry(file: file, state: reason == nil ? .held : .stale, metadata: m, staleReason: reason,
                     note: m == nil ? "metadata unreadable (\(info.size) bytes)" : nil)
    }

    /// Who holds `path`'s lock right now, as the gates report it (lock
    /// issues); nil when it is free, stale or unusable.
    public func holder(of path: String, staleAfter: Double) -> GateLockHolder? {
        let e = inspect(key: path, staleAfter: staleAfter)
        switch e.state {
        case .held:
            return GateLockHolder(holderId: e.metadata?.holderId ?? "unknown", pid: e.metadata?.pid ?? 0,
                                  host: e.metadata?.host ?? "", shared: false)
        case .shared:
            return GateLockHolder(holderId: "shared holders", pid: 0, host: "", shared: true)
        case .free, .stale, .unsafe:
            return nil
        }
    }

    // MARK: - Cleaning

    public struct CleanReport: Sendable {
        /// Stale locks taken from dead or timed-out holders and removed.
        public var cleaned: [Entry] = []
        /// Lock files nobody held, removed.
        public var removedIdle: Int = 0
        /// Held by live holders, or unsafe: left alone.
        public var kept: [Entry] = []
    }

    /// Removes every lock file that is free or stale (seed: clean_all_stale_locks),
    /// and leftovers of interrupted takeovers. Never removes a lock a live
    /// holder has: each file is removed while this process holds its lock
    /// and its guard byte, so no acquirer can slip in between.
    public func cleanStale(staleAfter: Double) -> CleanReport {
        var report = CleanReport()
        for name in lockFileNames(leftovers: true) {
            if !name.hasSuffix(".lock") {
                // A takeover that died before its rename: remove it if nobody holds it.
                var info = tgs_file_info()
                let f = tgs_lock_open(fd, name, 0, &info)
                guard f >= 0 else { continue }
                if tgs_ofd_lock(f, Int32(TGS_LOCK_WRITE), 0, 0) == 0 { unlinkat(fd, name, 0) }
                close(f)
                continue
            }
            let before = inspect(file: name, staleAfter: staleAfter)
            switch before.state {
            case .held, .shared, .unsafe:
                report.kept.append(before)
                continue
            case .free, .stale:
                break
            }
            let lock = FileLock(directory: self, file: name, key: before.metadata?.key ?? name, holderId: "taskgate-clean",
                                holdTimeout: staleAfter, shared: false)
            do {
                guard try lock.tryAcquire() else { report.kept.append(inspect(file: name, staleAfter: staleAfter)); continue }
                if try lock.removeWhileHeld() {
                    if before.state == .stale || lock.tookOver {
                        report.cleaned.append(before)
                    } else {
                        report.removedIdle += 1
                    }
                }
                try lock.release()
            } catch {
                report.kept.append(Entry(file: name, state: .unsafe, note: "\(error)"))
            }
        }
        return report
    }
}
