import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - File locks

private let lockMagic: UInt64 = TG_LOCK_MAGIC

/// The FileLock behind a live handle, or nil for NULL (an error set) or a dead handle.
@inline(__always) private func lockObject(_ p: UnsafePointer<tg_lock>?, _ function: StaticString) -> FileLock? {
    guard let p else {
        _ = fail(TG_EINVAL, "\(function): lock is NULL")
        return nil
    }
    guard p.pointee.magic == lockMagic, let e = p.pointee.engine else {
        _ = fail(TG_EBADHANDLE, "\(function): \(p) is not a live tg_lock (closed, or never opened)")
        return nil
    }
    return Unmanaged<FileLock>.fromOpaque(e).takeUnretainedValue()
}

private func liveLock(_ p: UnsafePointer<tg_lock>?) -> FileLock? {
    guard let p, p.pointee.magic == lockMagic, let e = p.pointee.engine else { return nil }
    return Unmanaged<FileLock>.fromOpaque(e).takeUnretainedValue()
}

/// Makes the FileLock the C arguments describe; refused arguments set the
/// error and give its code.
private func makeLock(_ dir: UnsafePointer<CChar>?, _ key: UnsafePointer<CChar>?, _ opts: UnsafePointer<tg_lock_options>?,
                      _ function: String) -> Result<FileLock, Refusal> {
    guard let dir, dir.pointee != 0 else { return .failure(Refusal(fail(TG_EINVAL, "\(function): dir is NULL or empty"))) }
    guard let key, key.pointee != 0 else { return .failure(Refusal(fail(TG_EINVAL, "\(function): key is NULL or empty"))) }
    var holder: String? = nil, hold = 300.0, shared = false
    if let o = opts?.pointee {
        guard o.struct_size == UInt32(MemoryLayout<tg_lock_options>.size) else {
            return .failure(Refusal(fail(TG_EVERSION, "\(function): opts->struct_size is \(o.struct_size), this library knows \(MemoryLayout<tg_lock_options>.size) (use TG_LOCK_OPTIONS_INIT)")))
        }
        guard o.flags & ~TG_LOCK_SHARED == 0 else {
            return .failure(Refusal(fail(TG_EINVAL, "\(function): unknown flags 0x\(String(o.flags & ~TG_LOCK_SHARED, radix: 16))")))
        }
        holder = o.holder_id.map { String(cString: $0) }
        hold = o.hold_timeout_ms == 0 ? 300 : o.hold_timeout_ms < 0 ? 0 : Double(o.hold_timeout_ms) / 1000
        shared = o.flags & TG_LOCK_SHARED != 0
    }
    do {
        let d = try LockDirectory(String(cString: dir))
        return .success(try FileLock(directory: d, key: String(cString: key), holderId: holder, holdTimeout: hold, shared: shared))
    } catch {
        return .failure(Refusal(fail(error)))
    }
}

@_cdecl("tg_lock_open")
public func tg_lock_open(_ dir: UnsafePointer<CChar>?, _ key: UnsafePointer<CChar>?, _ opts: UnsafePointer<tg_lock_options>?,
                         _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_lock>?>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_lock_open: out is NULL") }
    out.pointee = nil
    switch makeLock(dir, key, opts, "tg_lock_open") {
    case .failure(let r): return r.code
    case .success(let l):
        let h = UnsafeMutablePointer<tg_lock>.allocate(capacity: 1)
        h.initialize(to: tg_lock(magic: lockMagic, engine: Unmanaged.passRetained(l).toOpaque()))
        out.pointee = h
        return ok()
    }
}

private func acquire(_ l: FileLock, _ timeoutMs: Int64) throws(TaskGateError) {
    if timeoutMs == 0 {
        guard try l.tryAcquire() else {
            throw .locked("lock '\(l.key)' (\(l.directory.path)/\(l.file)) is held\(holderText(l))")
        }
    } else {
        try l.acquire(timeout: timeoutMs < 0 ? -1 : Double(timeoutMs) / 1000)
    }
}

private func holderText(_ l: FileLock) -> String {
    guard let h = l.lastHolder else { return l.shared ? "" : " (by shared holders or a holder whose metadata is not written yet)" }
    return " by \(h.holderId) (pid \(h.pid) on \(h.host), since \(JSONText.iso8601(h.acquiredAt)))"
}

@_cdecl("tg_lock_acquire")
public func tg_lock_acquire(_ p: UnsafeMutablePointer<tg_lock>?, _ timeoutMs: Int64) -> Int32 {
    guard let l = lockObject(p, "tg_lock_acquire") else { return p == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue }
    do { try acquire(l, timeoutMs) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_lock_release")
public func tg_lock_release(_ p: UnsafeMutablePointer<tg_lock>?) -> Int32 {
    guard let l = lockObject(p, "tg_lock_release") else { return p == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue }
    do { try l.release() } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_lock_held")
public func tg_lock_held(_ p: UnsafePointer<tg_lock>?) -> Int32 {
    liveLock(p)?.verify() == true ? 1 : 0
}

@_cdecl("tg_lock_took_over")
public func tg_lock_took_over(_ p: UnsafePointer<tg_lock>?, _ meta: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    meta?.pointee = nil
    guard let l = liveLock(p), l.tookOver else { return 0 }
    if let meta, let m = l.tookOverFrom {
        var text = m.json
        if text.hasSuffix("\n") { text.removeLast() }
        meta.pointee = strdup(text)
    }
    return 1
}

@_cdecl("tg_lock_close")
public func tg_lock_close(_ h: UnsafeMutablePointer<tg_lock>?) -> Int32 {
    guard let h else { return ok() }
    guard h.pointee.magic == lockMagic, let e = h.pointee.engine else {
        return fail(TG_EBADHANDLE, "tg_lock_close: \(h) is not a live tg_lock (closed, or never opened)")
    }
    h.pointee.magic = 0
    h.pointee.engine = nil
    let l = Unmanaged<FileLock>.fromOpaque(e).takeRetainedValue()
    if l.isHeld { try? l.release() }
    h.deallocate()
    return ok()
}

@_cdecl("tg_lock_with")
public func tg_lock_with(_ dir: UnsafePointer<CChar>?, _ key: UnsafePointer<CChar>?, _ opts: UnsafePointer<tg_lock_options>?,
                         _ timeoutMs: Int64, _ fn: (@convention(c) (UnsafeMutableRawPointer?) -> Int32)?,
                         _ user: UnsafeMutableRawPointer?, _ result: UnsafeMutablePointer<Int32>?) -> Int32 {
    guard let fn else { return fail(TG_EINVAL, "tg_lock_with: fn is NULL") }
    let l: FileLock
    switch makeLock(dir, key, opts, "tg_lock_with") {
    case .failure(let r): return r.code
    case .success(let x): l = x
    }
    do { try acquire(l, timeoutMs) } catch { return fail(error) }
    let rc = fn(user)
    try? l.release()
    result?.pointee = rc
    return ok()
}

private func directory(_ dir: UnsafePointer<CChar>?, _ function: String) throws(TaskGateError) -> LockDirectory {
    guard let dir, dir.pointee != 0 else { throw .invalid("\(function): dir is NULL or empty") }
    return try LockDirectory(String(cString: dir), create: false)
}

@_cdecl("tg_locks_list")
public func tg_locks_list(_ dir: UnsafePointer<CChar>?, _ staleAfterMs: Int64,
                          _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_locks_list: out_json is NULL") }
    out.pointee = nil
    do {
        let d = try directory(dir, "tg_locks_list")
        let entries = d.list(staleAfter: staleAfterMs > 0 ? Double(staleAfterMs) / 1000 : 0)
        out.pointee = strdup("[" + entries.map(\.json).joined(separator: ",") + "]")
    } catch {
        return fail(error)
    }
    return ok()
}

@_cdecl("tg_locks_clean")
public func tg_locks_clean(_ dir: UnsafePointer<CChar>?, _ staleAfterMs: Int64, _ cleaned: UnsafeMutablePointer<UInt>?,
                           _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    cleaned?.pointee = 0
    do {
        let d = try directory(dir, "tg_locks_clean")
        let r = d.cleanStale(staleAfter: staleAfterMs > 0 ? Double(staleAfterMs) / 1000 : 0)
        cleaned?.pointee = UInt(r.cleaned.count)
        if let out {
            out.pointee = strdup("{\"cleaned\":[" + r.cleaned.map(\.json).joined(separator: ",") + "],\"removed_idle\":\(r.removedIdle),\"kept\":["
                + r.kept.map(\.json).joined(separator: ",") + "]}")
        }
    } catch {
        return fail(error)
    }
    return ok()
}

@_cdecl("tg_free")
public func tg_free(_ p: UnsafeMutableRawPointer?) { free(p) }
