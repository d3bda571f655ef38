import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

// MARK: - Plugins
//
// A tg_plugin * is the plugin's C record (tgp_plugin), a tg_processor * a
// processor's (tgp_proc): both carry a magic number that turns dead on unload.

@_cdecl("tg_type_name")
public func tg_type_name(_ type: Int32) -> UnsafePointer<CChar> { tgp_type_name(type) }

@_cdecl("tg_plugin_load")
public func tg_plugin_load(_ p: UnsafeMutablePointer<tg_pool>?, _ path: UnsafePointer<CChar>?,
                           _ out: UnsafeMutablePointer<UnsafeMutablePointer<tg_plugin>?>?) -> Int32 {
    guard let pool = engine(p, "tg_plugin_load") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_plugin_load: out is NULL") }
    out.pointee = nil
    guard let path else { return fail(TG_EINVAL, "tg_plugin_load: path is NULL") }
    guard pool.isAccepting else { return fail(.shutDown) }
    do {
        let plugin = try pool.plugins.load(String(cString: path))
        out.pointee = UnsafeMutableRawPointer(plugin.c).assumingMemoryBound(to: tg_plugin.self)
    } catch { return fail(error) }
    return ok()
}

private func plugin(_ pool: TaskPool, _ h: UnsafeMutablePointer<tg_plugin>?, _ function: StaticString) -> Plugin? {
    guard let h else { _ = fail(TG_EINVAL, "\(function): plugin is NULL"); return nil }
    guard let pl = pool.plugins.livePlugin(UnsafeRawPointer(h)) else {
        _ = fail(TG_EBADHANDLE, "\(function): \(h) is not a plugin loaded in this pool (unloaded, or never loaded)")
        return nil
    }
    return pl
}

/// A live plugin handle without its pool (for the info calls).
private func anyPlugin(_ h: UnsafePointer<tg_plugin>?, _ function: StaticString) -> Plugin? {
    guard let h else { _ = fail(TG_EINVAL, "\(function): plugin is NULL"); return nil }
    guard let pl = PluginRegistry.plugin(handle: UnsafeRawPointer(h)) else {
        _ = fail(TG_EBADHANDLE, "\(function): \(h) is not a loaded plugin (unloaded?)")
        return nil
    }
    return pl
}

@_cdecl("tg_plugin_unload")
public func tg_plugin_unload(_ p: UnsafeMutablePointer<tg_pool>?, _ h: UnsafeMutablePointer<tg_plugin>?) -> Int32 {
    guard let pool = engine(p, "tg_plugin_unload") else { return badHandleCode(p) }
    guard let pl = plugin(pool, h, "tg_plugin_unload") else { return h == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue }
    do { try pool.plugins.unload(pl) } catch { return fail(error) }
    return ok()
}

@_cdecl("tg_plugin_get_info")
public func tg_plugin_get_info(_ h: UnsafePointer<tg_plugin>?, _ out: UnsafeMutablePointer<tg_plugin_info>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_plugin_get_info: out is NULL") }
    guard out.pointee.struct_size == UInt32(MemoryLayout<tg_plugin_info>.size) else {
        return fail(TG_EVERSION, "tg_plugin_get_info: out->struct_size is \(out.pointee.struct_size), this library knows \(MemoryLayout<tg_plugin_info>.size) (use TG_PLUGIN_INFO_INIT)")
    }
    guard let pl = anyPlugin(h, "tg_plugin_get_info") else { return h == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue }
    out.pointee.n_processors = UInt32(pl.processors.count)
    out.pointee.name = UnsafePointer(pl.cName)
    out.pointee.version = UnsafePointer(pl.cVersion)
    out.pointee.description = UnsafePointer(pl.cDescription)
    out.pointee.path = UnsafePointer(pl.cPath)
    out.pointee.abi_major = pl.abiMajor
    out.pointee.abi_minor = pl.abiMinor
    return ok()
}

@_cdecl("tg_plugin_processor_at")
public func tg_plugin_processor_at(_ h: UnsafePointer<tg_plugin>?, _ index: UInt32,
                                   _ out: UnsafeMutablePointer<UnsafePointer<tg_processor>?>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_plugin_processor_at: out is NULL") }
    out.pointee = nil
    guard let pl = anyPlugin(h, "tg_plugin_processor_at") else { return h == nil ? TG_EINVAL.rawValue : TG_EBADHANDLE.rawValue }
    guard Int(index) < pl.processors.count else {
        return fail(TG_ERANGE, "tg_plugin_processor_at: index \(index), but plugin '\(pl.name)' has \(pl.processors.count) processors")
    }
    out.pointee = UnsafeRawPointer(pl.processors[Int(index)].c).assumingMemoryBound(to: tg_processor.self)
    return ok()
}

@_cdecl("tg_pool_find_processor")
public func tg_pool_find_processor(_ p: UnsafeMutablePointer<tg_pool>?, _ name: UnsafePointer<CChar>?,
                                   _ out: UnsafeMutablePointer<UnsafePointer<tg_processor>?>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_find_processor") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_find_processor: out is NULL") }
    out.pointee = nil
    guard let name else { return fail(TG_EINVAL, "tg_pool_find_processor: name is NULL") }
    let n = String(cString: name)
    guard let q = pool.plugins.find(n) else {
        let known = pool.plugins.plugins.flatMap { $0.processors.map(\.name) }.sorted()
        return fail(TG_ENOTFOUND, "no processor '\(n)' is loaded" + (known.isEmpty ? " (no plugin is loaded)" : "; loaded: " + known.joined(separator: ", ")))
    }
    out.pointee = UnsafeRawPointer(q.c).assumingMemoryBound(to: tg_processor.self)
    return ok()
}

@_cdecl("tg_processor_get_info")
public func tg_processor_get_info(_ h: UnsafePointer<tg_processor>?, _ out: UnsafeMutablePointer<tg_processor_info>?) -> Int32 {
    guard let out else { return fail(TG_EINVAL, "tg_processor_get_info: out is NULL") }
    guard out.pointee.struct_size == UInt32(MemoryLayout<tg_processor_info>.size) else {
        return fail(TG_EVERSION, "tg_processor_get_info: out->struct_size is \(out.pointee.struct_size), this library knows \(MemoryLayout<tg_processor_info>.size) (use TG_PROCESSOR_INFO_INIT)")
    }
    guard let h else { return fail(TG_EINVAL, "tg_processor_get_info: processor is NULL") }
    guard let q = PluginRegistry.processor(handle: UnsafeRawPointer(h)) else {
        return fail(TG_EBADHANDLE, "tg_processor_get_info: \(h) is not a loaded processor (its plugin was unloaded?)")
    }
    out.pointee.n_args = UInt32(q.argumentTypes.count)
    out.pointee.name = UnsafePointer(q.cName)
    out.pointee.description = UnsafePointer(q.cDescription)
    out.pointee.arg_types = UnsafePointer(q.cTypes)
    out.pointee.signature = UnsafePointer(q.cSignature)
    out.pointee.flags = (q.hasSetup ? TG_PROCESSOR_HAS_SETUP : 0) | (q.hasCleanup ? TG_PROCESSOR_HAS_CLEANUP : 0)
    return ok()
}

// MARK: - Values

@inline(__always) private func value(_ type: Int32) -> tg_value {
    var v = tg_value()
    v.type = type
    return v
}

@_cdecl("tg_value_i64")
public func tg_value_i64(_ type: tg_type, _ x: Int64) -> tg_value {
    var v = value(Int32(bitPattern: type.rawValue))
    v.as.i = x
    return v
}

@_cdecl("tg_value_u64")
public func tg_value_u64(_ x: UInt64) -> tg_value {
    var v = value(Int32(bitPattern: TG_TYPE_U64.rawValue))
    v.as.u = x
    return v
}

@_cdecl("tg_value_double")
public func tg_value_double(_ x: Double) -> tg_value {
    var v = value(Int32(bitPattern: TG_TYPE_DOUBLE.rawValue))
    v.as.d = x
    return v
}

@_cdecl("tg_value_bool")
public func tg_value_bool(_ x: Int32) -> tg_value {
    var v = value(Int32(bitPattern: TG_TYPE_BOOL.rawValue))
    v.as.i = x != 0 ? 1 : 0
    return v
}

@_cdecl("tg_value_string")
public func tg_value_string(_ s: UnsafePointer<CChar>?) -> tg_value {
    var v = value(Int32(bitPattern: TG_TYPE_STRING.rawValue))
    v.as.s = s
    return v
}

@_cdecl("tg_value_bytes")
public func tg_value_bytes(_ data: UnsafeRawPointer?, _ len: UInt) -> tg_value {
    var v = value(Int32(bitPattern: TG_TYPE_BYTES.rawValue))
    v.as.bytes.data = data
    v.as.bytes.len = Int(bitPattern: len)
    return v
}
