/// Why an engine call was refused. The C layer maps each case to a TG_E* code
/// and the description to tg_last_error().
public enum TaskGateError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case outOfMemory(String)
    case duplicateId(String)
    case unknownDependency(task: String, dependency: String)
    case cycle([String])
    case shutDown
    case timedOut(String)
    case busy(String)
    case notFound(String)
    case alreadyFinished(String)
    case noMore
    case outOfRange(String)
    /// A plugin file refused at load, or a processor no longer loaded.
    case pluginRefused(String)
    /// A plugin task's arguments do not match its processor's signature.
    case argumentMismatch(String)
    /// A limit or breaker said no to a non-blocking submission.
    case limited(String)
    /// A file lock is held by another holder (try-acquire, or a wait that ran out).
    case locked(String)
    /// File locking does not work on this filesystem.
    case lockUnsupported(String)
    /// A path that must not be used: a symbolic link, FIFO, socket or device
    /// at a lock path, or another user's file in a directory others may write.
    case unsafePath(String)
    /// An operating-system call failed (the message names it and the path).
    case io(String)

    public var description: String {
        switch self {
        case .invalid(let s), .outOfMemory(let s), .outOfRange(let s), .pluginRefused(let s), .argumentMismatch(let s), .limited(let s),
             .locked(let s), .lockUnsupported(let s), .unsafePath(let s), .io(let s):
            return s
        case .duplicateId(let id): return "task '\(id)': a task with this id already exists"
        case .unknownDependency(let task, let dep):
            return "task '\(task)': dependency '\(dep)' names no task submitted before it or in its batch"
        case .cycle(let ids): return "dependency cycle: " + ids.joined(separator: " -> ")
        case .shutDown: return "the pool is shut down and accepts no more tasks"
        case .timedOut(let s): return s
        case .busy(let s): return s
        case .notFound(let s): return s
        case .alreadyFinished(let id): return "task '\(id)' has already ended"
        case .noMore: return "every submitted task has been returned and the pool is shut down"
        }
    }
}

/// Final task statuses; raw values are the public tg_status numbers.
public enum TaskStatus: UInt32, Sendable {
    case pending = 0, queued = 1, running = 2
    case succeeded = 4, failed = 5, timedOut = 6, cancelled = 7, skipped = 8
    /// Refused by an open circuit breaker without running.
    case rejected = 9

    public var isFinal: Bool { rawValue >= 4 }
    /// The name in JSON (events, results files, reports): `name`, with
    /// "timed_out" for "timed out".
    public var key: String { self == .timedOut ? "timed_out" : name }
    public var name: String {
        switch self {
        case .pending: return "pending"
        case .queued: return "queued"
        case .running: return "running"
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .timedOut: return "timed out"
        case .cancelled: return "cancelled"
        case .skipped: return "skipped"
        case .rejected: return "rejected"
        }
    }
}
