import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a lock file says about its holder: written by an exclusive holder
/// when it takes the lock, emptied when it releases it.
public struct LockMetadata: Sendable, Equatable {
    public var key: String
    public var holderId: String
    public var pid: Int32
    /// The holder process's start time in clock ticks since boot (Linux
    /// `/proc/PID/stat` field 22): with the pid, it names one process even
    /// after the pid is reused.
    public var startTime: Int64
    public var host: String
    /// Wall-clock seconds since the epoch.
    public var acquiredAt: Double
    /// Seconds the holder may keep the lock before it counts as stale; 0: no limit.
    public var timeout: Double

    public init(key: String, holderId: String, pid: Int32, startTime: Int64, host: String, acquiredAt: Double, timeout: Double) {
        self.key = key
        self.holderId = holderId
        self.pid = pid
        self.startTime = startTime
        self.host = host
        self.acquiredAt = acquiredAt
        self.timeout = timeout
    }

    /// Lock files larger than this are not read: they count as unreadable.
    public static let maxBytes = 4096

    /// One line of JSON. `acquired_at` is ISO 8601 UTC for people (the seed's
    /// field), `acquired_at_unix` the same instant for programs.
    public var json: String {
        var s = "{\"key\":" + JSONText.quote(key)
        s += ",\"holder_id\":" + JSONText.quote(holderId)
        s += ",\"pid\":\(pid),\"start_time\":\(startTime),\"host\":" + JSONText.quote(host)
        s += ",\"acquired_at\":" + JSONText.quote(JSONText.iso8601(acquiredAt))
        s += ",\"acquired_at_unix\":" + JSONText.number(acquiredAt)
        s += ",\"timeout\":" + JSONText.number(timeout) + ",\"mode\":\"exclusive\",\"version\":1}\n"
        return s
    }

    /// Parses what `json` wrote; nil for anything else (truncated, foreign,
    /// missing a field, a wrong type).
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> LockMetadata? {
        guard let fields = JSONText.flatObject(bytes) else { return nil }
        guard case .string(let key)? = fields["key"], case .string(let holder)? = fields["holder_id"],
              case .number(let pid)? = fields["pid"], case .number(let start)? = fields["start_time"],
              case .string(let host)? = fields["host"], case .number(let at)? = fields["acquired_at_unix"],
              case .number(let timeout)? = fields["timeout"],
              pid >= 1, pid <= Double(Int32.max), pid == pid.rounded(), start.isFinite, at.isFinite,
              timeout.isFinite, timeout >= 0
        else { return nil }
        return LockMetadata(key: key, holderId: holder, pid: Int32(pid), startTime: Int64(start), host: host,
                            acquiredAt: at, timeout: timeout)
    }
}

/// Facts about this process used in lock metadata and stale checks.
enum ProcessFacts {
    static let host: String = {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, 255) == 0 else { return "unknown" }
        return String(cString: buf)
    }()

    nonisolated(unsafe) private static var cachedPid: Int32 = 0
    nonisolated(unsafe) private static var cachedStart: Int64 = -1
    private static let cacheLock = Lock()

    /// (pid, start time) of this process; looked up again after a fork.
    static func current() -> (Int32, Int64) {
        let pid = getpid()
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if cachedPid != pid {
            cachedPid = pid
            cachedStart = tgs_proc_start_time(pid)
        }
        return (pid, cachedStart)
    }

    static func wallSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Why a held lock may be taken over.
public enum StaleReason: Sendable, Equatable, CustomStringConvertible {
    /// No process has the holder's pid (on this host).
    case holderDead(pid: Int32)
    /// The pid now belongs to another process: its start time differs.
    case pidReused(pid: Int32)
    /// The holder's own timeout has passed.
    case timedOut(seconds: Double)
    /// The metadata cannot be read and the file is older than the timeout.
    case unreadable(ageSeconds: Double)

    public var description: String {
        switch self {
        case .holderDead(let pid): return "holder pid \(pid) is gone"
        case .pidReused(let pid): return "pid \(pid) now belongs to another process"
        case .timedOut(let s): return "held past its timeout (\(JSONText.number(s)) s)"
        case .unreadable(let age): return "metadata unreadable and \(Int(age)) s old"
        }
    }

    public var code: String {
        switch self {
        case .holderDead: return "holder_dead"
        case .pidReused: return "pid_reused"
        case .timedOut: return "timed_out"
        case .unreadable: return "unreadable"
        }
    }

    /// Judges a lock that is held exclusively right now. `meta` nil: the file
    /// could not be read as metadata; `fallbackTimeout` (the asker's own hold
    /// timeout, 0: none) then decides with the file's age. A holder on another
    /// host is judged only by its timeout: its pid means nothing here.
    static func judge(_ meta: LockMetadata?, fileMtimeNs: Int64, fallbackTimeout: Double,
                      now: Double = ProcessFacts.wallSeconds()) -> StaleReason? {
        guard let m = meta else {
            let age = now - Double(fileMtimeNs) / 1e9
            return fallbackTimeout > 0 && age > fallbackTimeout ? .unreadable(ageSeconds: age) : nil
        }
        if m.host == ProcessFacts.host {
            if kill(m.pid, 0) != 0 && errno == ESRCH { return .holderDead(pid: m.pid) }
            // Alive (kill found it, perhaps with EPERM). A start time we cannot
            // read (/proc hidden, or it died just now) proves nothing: only a
            // different one proves the pid was reused.
            let start = tgs_proc_start_time(m.pid)
            if start >= 0 && start != m.startTime { return .pidReused(pid: m.pid) }
        }
        if m.timeout > 0 && now - m.acquiredAt > m.timeout { return .timedOut(seconds: m.timeout) }
        return nil
    }
}
