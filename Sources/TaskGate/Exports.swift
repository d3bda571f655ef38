// The C ABI of libtaskgate: @_cdecl thunks over TaskGateCore.
//
// Each thunk checks its arguments, unboxes the handle, converts C structs and
// strings, calls the engine, and maps a thrown TaskGateError to a TG_E* code
// plus the thread-local detail string. No scheduling logic lives here, and no
// Swift error crosses the boundary. include/taskgate.h is the contract;
// Tests/c/header_drift.sh fails the build when these signatures and the header
// disagree.

import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

// MARK: - Errors

@inline(__always) func fail(_ code: tg_error, _ message: String) -> Int32 {
    tgs_set_last_error(message)
    return code.rawValue
}

@inline(__always) func ok() -> Int32 {
    tgs_clear_last_error()
    return TG_OK.rawValue
}

func fail(_ e: TaskGateError) -> Int32 {
    let code: tg_error
    switch e {
    case .invalid: code = TG_EINVAL
    case .outOfMemory: code = TG_ENOMEM
    case .duplicateId: code = TG_EDUPLICATE
    case .unknownDependency: code = TG_EUNKNOWNDEP
    case .cycle: code = TG_ECYCLE
    case .shutDown: code = TG_ESHUTDOWN
    case .timedOut: code = TG_ETIMEDOUT
    case .busy: code = TG_EBUSY
    case .notFound: code = TG_ENOTFOUND
    case .alreadyFinished: code = TG_EFINISHED
    case .noMore: code = TG_ENOMORE
    case .outOfRange: code = TG_ERANGE
    case .pluginRefused: code = TG_EPLUGIN
    case .argumentMismatch: code = TG_ETYPE
    case .limited: code = TG_ELIMITED
    case .locked: code = TG_ELOCKED
    case .lockUnsupported: code = TG_ENOLCK
    case .unsafePath: code = TG_EUNSAFE
    case .io: code = TG_EIO
    }
    return fail(code, e.description)
}

// MARK: - Handles

/// The engine behind a handle, or nil (with the error set) for NULL, a
/// destroyed pool or a pointer that is no pool.
@inline(__always) func engine(_ p: UnsafeMutablePointer<tg_pool>?, _ function: StaticString) -> TaskPool? {
    guard let p else {
        _ = fail(TG_EINVAL, "\(function): pool is NULL")
        return nil
    }
    guard p.pointee.magic == TG_POOL_MAGIC, let e = p.pointee.engine else {
        _ = fail(TG_EBADHANDLE, "\(function): \(p) is not a live tg_pool (destroyed, or never created)")
        return nil
    }
    return Unmanaged<TaskPool>.fromOpaque(e).takeUnretainedValue()
}

@inline(__always) func badHandleCode(_ p: UnsafeMutablePointer<tg_pool>?) -> Int32 {
    p == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue
}

/// Milliseconds (negative: forever) to engine nanoseconds (negative: forever).
@inline(__always) func nanos(_ ms: Int64) -> Int64 {
    if ms < 0 { return -1 }
    return ms > Int64.max / 1_000_000 ? Int64.max / 2 : ms * 1_000_000
}

// MARK: - Versions and errors

@_cdecl("tg_version")
public func tg_version() -> Int32 { Int32(TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH) }

private let versionString: StaticString = "0.7.0"

@_cdecl("tg_version_string")
public func tg_version_string() -> UnsafePointer<CChar> {
    UnsafeRawPointer(versionString.utf8Start).assumingMemoryBound(to: CChar.self)
}

@inline(__always) private func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("tg_strerror")
public func tg_strerror(_ code: Int32) -> UnsafePointer<CChar> { tgabi_error_message(code) }

@_cdecl("tg_error_name")
public func tg_error_name(_ code: Int32) -> UnsafePointer<CChar> { tgabi_error_name(code) }

@_cdecl("tg_last_error")
public func tg_last_error() -> UnsafePointer<CChar> { tgs_last_error() }

@_cdecl("tg_status_name")
public func tg_status_name(_ status: Int32) -> UnsafePointer<CChar> {
    switch status {
    case 0: return cString("pending")
    case 1: return cString("queued")
    case 2: return cString("running")
    case 4: return cString("succeeded")
    case 5: return cString("failed")
    case 6: return cString("timed out")
    case 7: return cString("cancelled")
    case 8: return cString("skipped")
    case 9: return cString("rejected")
    default: return cString("unknown")
    }
}

/// Arguments refused by a thunk's helper: the error is already set (fail()),
/// `code` is what the thunk returns.
struct Refusal: Error {
    let code: Int32
    init(_ code: Int32) { self.code = code }
}
