import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// The names of argument types, as listings and errors show them.
public func pluginTypeName(_ t: Int32) -> String { String(cString: tgp_type_name(t)) }

/// A processor of a loaded plugin. `c` is the record the engine's trampoline
/// uses; it stays allocated until the registry goes away, so a stale handle
/// is recognised (its magic is dead) instead of read after free.
public final class PluginProcessor: @unchecked Sendable {
    public let c: UnsafeMutablePointer<tgp_proc>
    /// "plugin.processor"
    public let name: String
    public let description: String
    public let argumentTypes: [UInt8]
    /// "(string, i32, double)"
    public let signature: String
    public let hasSetup: Bool
    public let hasCleanup: Bool
    /// C strings for the C API's info struct, alive as long as this object.
    public let cName: UnsafeMutablePointer<CChar>
    public let cDescription: UnsafeMutablePointer<CChar>
    public let cSignature: UnsafeMutablePointer<CChar>
    public let cTypes: UnsafeMutablePointer<UInt8>
    unowned(unsafe) let registry: PluginRegistry

    init(registry: PluginRegistry, c: UnsafeMutablePointer<tgp_proc>, name: String, description: String, types: [UInt8],
         hasSetup: Bool, hasCleanup: Bool) {
        self.registry = registry
        self.c = c
        self.name = name
        self.description = description
        argumentTypes = types
        signature = "(" + types.map { pluginTypeName(Int32($0)) }.joined(separator: ", ") + ")"
        self.hasSetup = hasSetup
        self.hasCleanup = hasCleanup
        cName = strdup(name)
        cDescription = strdup(description)
        cSignature = strdup(signature)
        cTypes = .allocate(capacity: max(1, types.count))
        for (k, t) in types.enumerated() { cTypes[k] = t }
    }

    deinit {
        free(cName); free(cDescription); free(cSignature)
        cTypes.deallocate()
        c.deallocate()
    }

    public var isLoaded: Bool { tgs_load_u64(&c.pointee.magic) == TGP_PROC_MAGIC }

    /// Checks a task's arguments against the signature; the message names the
    /// task (`who`, built only on failure) and the argument. No allocation and
    /// no reference counting when they match: this runs once per plugin task
    /// at submission.
    @inline(__always)
    public static func check(_ c: UnsafeMutablePointer<tgp_proc>, _ args: UnsafeBufferPointer<tgs_value>,
                             who: @autoclosure () -> String) throws(TaskGateError) {
        let n = Int(c.pointee.n_args)
        var bad = args.count != n ? -1 : n
        if bad == n {
            for k in 0..<n where !fits(declared: tgp_type_at(c, k), args[k]) { bad = k; break }
        }
        if bad == n { return }
        let me = Unmanaged<PluginProcessor>.fromOpaque(c.pointee.owner!).takeUnretainedValue()
        if bad < 0 {
            throw .argumentMismatch("\(who()): \(me.name) takes \(n) argument\(n == 1 ? "" : "s") \(me.signature), got \(args.count)")
        }
        let why = mismatch(declared: me.argumentTypes[bad], args[bad]) ?? "does not match"
        throw .argumentMismatch("\(who()): argument \(bad + 1) of \(me.name) \(me.signature): \(why)")
    }

    public func check(_ args: UnsafeBufferPointer<tgs_value>, who: @autoclosure () -> String) throws(TaskGateError) {
        try PluginProcessor.check(c, args, who: who())
    }

    @inline(__always) public static func isInteger(_ t: Int32) -> Bool {
        switch t { case 1, 2, 3, 4, 10, 11, 12, 13: return true; default: return false }
    }
    @inline(__always) static func isUnsigned(_ t: Int32) -> Bool {
        switch t { case 2, 4, 11, 13: return true; default: return false }
    }

    /// The fast test: true when `v` can be passed as `declared`.
    @inline(__always)
    public static func fits(declared: UInt8, _ v: tgs_value) -> Bool {
        if let (lo, hi) = range(declared) {
            guard isInteger(v.type) else { return false }
            if isUnsigned(v.type) { return v.as.u <= hi }
            return v.as.i >= lo && (v.as.i < 0 || UInt64(v.as.i) <= hi)
        }
        switch declared {
        case 6: return v.type == 6 && (v.as.i == 0 || v.as.i == 1)
        case 5: return v.type == 5 || v.type == 9 || isInteger(v.type)
        case 9:
            if isInteger(v.type) { return true }
            guard v.type == 5 || v.type == 9 else { return false }
            return !v.as.d.isFinite || abs(v.as.d) <= Double(Float.greatestFiniteMagnitude)
        case 7: return v.type == 7 && v.as.s != nil
        case 8: return v.type == 8 && (v.as.bytes.data != nil || v.as.bytes.len == 0) && v.as.bytes.len >= 0
        default: return false
        }
    }

    @inline(__always)
    static func range(_ t: UInt8) -> (Int64, UInt64)? {
        switch t {
        case 1: return (Int64(Int32.min), UInt64(Int32.max))
        case 2: return (0, UInt64(UInt32.max))
        case 3: return (Int64.min, UInt64(Int64.max))
        case 4: return (0, UInt64.max)
        case 10: return (Int64(Int8.min), UInt64(Int8.max))
        case 11: return (0, UInt64(UInt8.max))
        case 12: return (Int64(Int16.min), UInt64(Int16.max))
        case 13: return (0, UInt64(UInt16.max))
        default: return nil
        }
    }

    /// Why `v` cannot be passed as `declared`, or nil when it can.
    public static func mismatch(declared: UInt8, _ v: tgs_value) -> String? {
        let got = pluginTypeName(v.type)
        let want = pluginTypeName(Int32(declared))
        if got == "unknown" { return "the value's type tag \(v.type) is no TG_TYPE_*" }
        if let (lo, hi) = range(declared) {
            guard isInteger(v.type) else { return "expected \(want), got \(got)" }
            if isUnsigned(v.type) {
                if v.as.u > hi { return "\(v.as.u) is out of range for \(want) (\(lo) .. \(hi))" }
            } else {
                let x = v.as.i
                if x < lo || (x >= 0 && UInt64(x) > hi) { return "\(x) is out of range for \(want) (\(lo) .. \(hi))" }
            }
            return nil
        }
        switch Int32(declared) {
        case 6:  // bool
            guard v.type == 6 else { return "expected bool, got \(got)" }
            guard v.as.i == 0 || v.as.i == 1 else { return "a bool must be 0 or 1, got \(v.as.i)" }
        case 5, 9:  // double, float
            guard v.type == 5 || v.type == 9 || isInteger(v.type) else { return "expected \(want), got \(got)" }
            if declared == 9 && (v.type == 5 || v.type == 9) && v.as.d.isFinite && abs(v.as.d) > Double(Float.greatestFiniteMagnitude) {
                return "\(v.as.d) is out of range for float"
            }
        case 7:  // string
            guard v.type == 7 else { return "expected string, got \(got)" }
            guard v.as.s != nil else { return "the string is NULL" }
        case 8:  // bytes
            guard v.type == 8 else { return "expected bytes, got \(got)" }
            guard v.as.bytes.data != nil || v.as.bytes.len == 0 else { return "bytes.data is NULL but bytes.len is \(v.as.bytes.len)" }
            guard v.as.bytes.len >= 0 else { return "bytes.len \(UInt(bitPattern: v.as.bytes.len)) is more than memory holds" }
        default:
            return "the declared type \(declared) is unknown"
        }
        return nil
    }
}

/// A loaded plugin file.
public final class Plugin: @unchecked Sendable {
    public let c: UnsafeMutablePointer<tgp_plugin>
    public let path: String
    public let name: String
    public let version: String
    public let description: String
    public let abiMajor: UInt32
    public let abiMinor: UInt32
    public let processors: [PluginProcessor]
    let handle: UnsafeMutableRawPointer
    let device: UInt64
    let inode: UInt64
    let shutdownHook: UnsafeMutableRawPointer?
    /// Loads not yet undone; guarded by the registry's lock.
    var loads = 1
    public let cName: UnsafeMutablePointer<CChar>
    public let cVersion: UnsafeMutablePointer<CChar>
    public let cDescription: UnsafeMutablePointer<CChar>
    public let cPath: UnsafeMutablePointer<CChar>
    unowned(unsafe) let registry: PluginRegistry

    init(registry: PluginRegistry, c: UnsafeMutablePointer<tgp_plugin>, path: String, name: String, version: String, description: String,
         abiMajor: UInt32, abiMinor: UInt32, processors: [PluginProcessor], handle: UnsafeMutableRawPointer,
         device: UInt64, inode: UInt64, shutdownHook: UnsafeMutableRawPointer?) {
        self.registry = registry
        self.c = c
        self.path = path
        self.name = name
        self.version = version
        self.description = description
        self.abiMajor = abiMajor
        self.abiMinor = abiMinor
        self.processors = processors
        self.handle = handle
        self.device = device
        self.inode = inode
        self.shutdownHook = shutdownHook
        cName = strdup(name)
        cVersion = strdup(version)
        cDescription = strdup(description)
        cPath = strdup(path)
    }

    deinit {
        free(cName); free(cVersion); free(cDescription); free(cPath)
        c.deallocate()
    }

    public var isLoaded: Bool { tgs_load_u64(&c.pointee.magic) == TGP_PLUGIN_MAGIC }
}

/// The plugins loaded into one pool. Loading and unloading are serialised by
/// a lock; submission reads processors without it (their liveness is an atomic
/// magic number plus the plugin's in-flight count, see tgp_acquire).
public final class PluginRegistry: @unchecked Sendable {
    private let lock = Lock()
    private var loaded: [Plugin] = []
    private var byName: [String: PluginProcessor] = [:]
    /// Unloaded plugins, kept so that stale handles stay readable as dead.
    private var retired: [Plugin] = []

    /// Set by the pool that owns the registry: counts the plugin's tasks in
    /// flight under the pool's submission lock and, when there are none, runs
    /// the closure (which marks the plugin dead) before releasing that lock.
    public var inFlight: ((UnsafeMutablePointer<tgp_plugin>, () -> Void) -> Int)? = nil

    public init() {}

    public var plugins: [Plugin] {
        lock.lock(); defer { lock.unlock() }
        return loaded
    }

    public func find(_ name: String) -> PluginProcessor? {
        lock.lock(); defer { lock.unlock() }
        return byName[name]
    }

    /// The live plugin or processor behind a C handle, or nil.
    /// The processor behind a C handle if it is loaded in this registry; no
    /// lock (submission's hot path). A handle from a destroyed pool is
    /// undefined behaviour, as for pools.
    @inline(__always)
    public func liveProcessor(_ p: UnsafeRawPointer) -> UnsafeMutablePointer<tgp_proc>? {
        let c = UnsafeMutablePointer(mutating: p.assumingMemoryBound(to: tgp_proc.self))
        guard tgs_load_u64(&c.pointee.magic) == TGP_PROC_MAGIC,
              c.pointee.plugin.pointee.registry == Unmanaged.passUnretained(self).toOpaque() else { return nil }
        return c
    }

    /// The plugin behind a C handle if it is loaded in this registry.
    public func livePlugin(_ p: UnsafeRawPointer) -> Plugin? {
        guard let q = Self.plugin(handle: p), q.registry === self else { return nil }
        return q
    }

    /// The plugin behind a C handle if it is loaded (in any registry).
    public static func plugin(handle p: UnsafeRawPointer) -> Plugin? {
        let c = UnsafeMutablePointer(mutating: p.assumingMemoryBound(to: tgp_plugin.self))
        guard tgs_load_u64(&c.pointee.magic) == TGP_PLUGIN_MAGIC, let o = c.pointee.owner else { return nil }
        return Unmanaged<Plugin>.fromOpaque(o).takeUnretainedValue()
    }

    /// The processor behind a C handle if its plugin is loaded (in any registry).
    public static func processor(handle p: UnsafeRawPointer) -> PluginProcessor? {
        let c = UnsafeMutablePointer(mutating: p.assumingMemoryBound(to: tgp_proc.self))
        guard tgs_load_u64(&c.pointee.magic) == TGP_PROC_MAGIC, let o = c.pointee.owner else { return nil }
        return Unmanaged<PluginProcessor>.fromOpaque(o).takeUnretainedValue()
    }

    // MARK: loading

    /// 1-64 characters of A-Z a-z 0-9 _ - (plugin and processor names, and
    /// the CLI's plugin aliases).
    public static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x5f || $0 == 0x2d
        }
    }

    /// Loads the plugin at `path`, or counts one more load of the same file.
    public func load(_ path: String) throws(TaskGateError) -> Plugin {
        func refuse(_ why: String) -> TaskGateError { .pluginRefused("plugin '\(path)': \(why)") }
        if path.isEmpty { throw .invalid("the plugin path is empty") }
        guard path.contains("/") else {
            throw refuse("a bare file name is not searched for; give a path (for example './\(path)')")
        }
        var st = stat()
        guard stat(path, &st) == 0 else { throw refuse(String(cString: strerror(errno)).lowercased()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw refuse("not a regular file") }
        lock.lock()
        defer { lock.unlock() }
        if let same = loaded.first(where: { $0.device == UInt64(st.st_dev) && $0.inode == UInt64(st.st_ino) }) {
            same.loads += 1
            return same
        }
        try Self.checkELF(path, refuse)
        guard let resolved = realpath(path, nil) else { throw refuse(String(cString: strerror(errno)).lowercased()) }
        let full = String(cString: resolved)
        free(resolved)
        guard let handle = dlopen(full, RTLD_NOW | RTLD_LOCAL) else {
            throw refuse("not a loadable shared object: \(String(cString: tgp_dlerror()))")
        }
        var keep = false
        defer { if !keep { dlclose(handle) } }

        var kind: Int32 = 0
        guard let raw = tgp_symbol(handle, TG_PLUGIN_DESCRIPTOR_SYMBOL, &kind) else {
            throw refuse("no descriptor: it exports no symbol '\(TG_PLUGIN_DESCRIPTOR_SYMBOL)' (is it a taskgate plugin?)")
        }
        guard kind != 2 else { throw refuse("'\(TG_PLUGIN_DESCRIPTOR_SYMBOL)' is a function; it must be a tg_plugin_descriptor variable") }
        let d = raw.assumingMemoryBound(to: tg_plugin_descriptor.self).pointee
        guard d.magic == TG_PLUGIN_MAGIC else {
            throw refuse("bad descriptor magic 0x\(String(d.magic, radix: 16)) (expected 0x\(String(TG_PLUGIN_MAGIC, radix: 16)))")
        }
        guard UInt32(d.abi_major) == TG_PLUGIN_ABI_MAJOR else {
            throw refuse("built for plugin ABI \(d.abi_major).\(d.abi_minor); this host speaks \(TG_PLUGIN_ABI_MAJOR).\(TG_PLUGIN_ABI_MINOR) (the major must match)")
        }
        guard UInt32(d.abi_minor) <= TG_PLUGIN_ABI_MINOR else {
            throw refuse("built for plugin ABI \(d.abi_major).\(d.abi_minor), newer than this host's \(TG_PLUGIN_ABI_MAJOR).\(TG_PLUGIN_ABI_MINOR); upgrade taskgate")
        }
        guard d.struct_size >= UInt32(MemoryLayout<tg_plugin_descriptor>.size) else {
            throw refuse("descriptor struct_size \(d.struct_size) is smaller than ABI 1.0's \(MemoryLayout<tg_plugin_descriptor>.size)")
        }
        let stride = Int(d.processor_size)
        guard stride >= MemoryLayout<tg_plugin_processor>.size else {
            throw refuse("descriptor processor_size \(d.processor_size) is smaller than ABI 1.0's \(MemoryLayout<tg_plugin_processor>.size)")
        }
        guard let namePtr = d.name else { throw refuse("the descriptor has no name") }
        let name = String(cString: namePtr)
        guard Self.validName(name) else { throw refuse("plugin name '\(name)' is not 1-64 characters of A-Z a-z 0-9 _ -") }
        guard let versionPtr = d.version else { throw refuse("plugin '\(name)' has no version") }
        let version = String(cString: versionPtr)
        guard !version.isEmpty && version.utf8.count <= 64 else { throw refuse("plugin '\(name)': version must be 1-64 characters") }
        guard d.n_processors >= 1 && d.n_processors <= 1024, let table = d.processors else {
            throw refuse("plugin '\(name)' declares \(d.n_processors) processors (1 .. 1024, with a table)")
        }

        func symbol(_ s: UnsafePointer<CChar>?, _ role: String, code: Bool = true) throws(TaskGateError) -> UnsafeMutableRawPointer? {
            guard let s else { return nil }
            let sym = String(cString: s)
            var k: Int32 = 0
            guard let p = tgp_symbol(handle, s, &k) else { throw refuse("\(role): symbol '\(sym)' not found in the plugin") }
            if code && k == 1 { throw refuse("\(role): symbol '\(sym)' is data, not a function") }
            return p
        }

        struct Pending { var name: String; var description: String; var types: [UInt8]; var entry: UnsafeMutableRawPointer
                         var setup: UnsafeMutableRawPointer?; var cleanup: UnsafeMutableRawPointer? }
        var pending: [Pending] = []
        var seen = Set<String>()
        for k in 0..<Int(d.n_processors) {
            let q = (UnsafeRawPointer(table) + k * stride).assumingMemoryBound(to: tg_plugin_processor.self).pointee
            guard let qn = q.name else { throw refuse("processor #\(k + 1) has no name") }
            let pname = String(cString: qn)
            guard Self.validName(pname) else { throw refuse("processor name '\(pname)' is not 1-64 characters of A-Z a-z 0-9 _ -") }
            guard seen.insert(pname).inserted else { throw refuse("processor '\(pname)' is declared twice") }
            let full = "\(name).\(pname)"
            guard q.n_args <= UInt32(TG_PLUGIN_MAX_ARGS) else {
                throw refuse("processor '\(pname)' declares \(q.n_args) arguments; at most \(TG_PLUGIN_MAX_ARGS)")
            }
            guard q.n_args == 0 || q.arg_types != nil else { throw refuse("processor '\(pname)' declares \(q.n_args) arguments but no arg_types") }
            var types: [UInt8] = []
            for a in 0..<Int(q.n_args) {
                let t = q.arg_types![a]
                guard t >= 1 && Int32(t) <= TG_TYPE_LAST_ else {
                    throw refuse("processor '\(pname)': argument \(a + 1) has type \(t), which this host does not know")
                }
                types.append(t)
            }
            guard q.entry != nil else { throw refuse("processor '\(pname)' names no entry symbol") }
            let entry = try symbol(q.entry, "processor '\(pname)' entry")!
            let setup = try symbol(q.setup, "processor '\(pname)' setup")
            let cleanup = try symbol(q.cleanup, "processor '\(pname)' cleanup")
            if let other = byName[full] {
                throw refuse("processor '\(full)' is already registered by \(loaded.first { $0.processors.contains { $0 === other } }?.path ?? "another plugin")")
            }
            pending.append(Pending(name: full, description: q.description.map { String(cString: $0) } ?? "", types: types,
                                   entry: entry, setup: setup, cleanup: cleanup))
        }
        let initHook = try symbol(d.`init`, "init hook")
        let shutdownHook = try symbol(d.shutdown, "shutdown hook")
        let recoverHook = try symbol(d.recover, "recover hook")

        // Checked: build the records, then run the plugin's init.
        let pc = UnsafeMutablePointer<tgp_plugin>.allocate(capacity: 1)
        pc.initialize(to: tgp_plugin(magic: TGP_PLUGIN_MAGIC, state: nil, owner: nil,
                                     registry: Unmanaged.passUnretained(self).toOpaque(), recover: recoverHook,
                                     recovering: 0, pad: 0))
        var procs: [PluginProcessor] = []
        for p in pending {
            let c = UnsafeMutablePointer<tgp_proc>.allocate(capacity: 1)
            memset(c, 0, MemoryLayout<tgp_proc>.size)
            c.pointee.magic = TGP_PROC_MAGIC
            c.pointee.plugin = pc
            c.pointee.entry = p.entry
            c.pointee.setup = unsafeBitCast(p.setup, to: tg_plugin_setup_fn?.self)
            c.pointee.cleanup = unsafeBitCast(p.cleanup, to: tg_plugin_cleanup_fn?.self)
            c.pointee.n_args = UInt32(p.types.count)
            withUnsafeMutableBytes(of: &c.pointee.types) { b in for (k, t) in p.types.enumerated() { b[k] = t } }
            let proc = PluginProcessor(registry: self, c: c, name: p.name, description: p.description, types: p.types,
                                       hasSetup: p.setup != nil, hasCleanup: p.cleanup != nil)
            procs.append(proc)
            let status = tgp_prepare(c)
            if status != 0 {
                pc.deallocate()
                throw refuse("libffi could not prepare the call of '\(p.name)' (status \(status))")
            }
        }
        if let initHook {
            var state: UnsafeMutableRawPointer? = nil
            var buffer = [CChar](repeating: 0, count: 512)
            let rc = buffer.withUnsafeMutableBufferPointer { tgp_call_init(initHook, &state, $0.baseAddress, 512) }
            if rc != 0 {
                pc.deallocate()
                let msg = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                throw refuse("its init hook failed (\(rc))" + (msg.isEmpty ? "" : ": \(msg)"))
            }
            pc.pointee.state = state
        }
        let plugin = Plugin(registry: self, c: pc, path: full, name: name, version: version,
                            description: d.description.map { String(cString: $0) } ?? "",
                            abiMajor: UInt32(d.abi_major), abiMinor: UInt32(d.abi_minor), processors: procs,
                            handle: handle, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), shutdownHook: shutdownHook)
        pc.pointee.owner = Unmanaged.passUnretained(plugin).toOpaque()
        for p in procs {
            p.c.pointee.owner = Unmanaged.passUnretained(p).toOpaque()
            byName[p.name] = p
        }
        loaded.append(plugin)
        keep = true
        return plugin
    }

    /// A quick look at the ELF header, so that a file that is not a shared
    /// object for this machine is refused with a precise reason.
    private static func checkELF(_ path: String, _ refuse: (String) -> TaskGateError) throws(TaskGateError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw refuse(String(cString: strerror(errno)).lowercased()) }
        defer { close(fd) }
        var h = [UInt8](repeating: 0, count: 64)
        let n = h.withUnsafeMutableBytes { read(fd, $0.baseAddress, 64) }
        guard n >= 20, h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46 else {
            throw refuse("not a loadable shared object (no ELF header)")
        }
        guard h[4] == 2 else { throw refuse("not a loadable shared object (a 32-bit ELF file; this host is 64-bit)") }
        let type = UInt16(h[16]) | UInt16(h[17]) << 8
        guard type == 3 else { throw refuse("not a loadable shared object (ELF type \(type), not a shared object)") }
        let machine = UInt16(h[18]) | UInt16(h[19]) << 8
        #if arch(x86_64)
        let mine: UInt16 = 62
        #elseif arch(arm64)
        let mine: UInt16 = 183
        #else
        let mine: UInt16 = machine
        #endif
        guard machine == mine else { throw refuse("not a loadable shared object (built for ELF machine \(machine), this host is \(mine))") }
    }

    /// Undoes one load; the last runs the shutdown hook and closes the file.
    public func unload(_ plugin: Plugin) throws(TaskGateError) {
        lock.lock()
        defer { lock.unlock() }
        guard let at = loaded.firstIndex(where: { $0 === plugin }) else {
            throw .notFound("plugin '\(plugin.name)' (\(plugin.path)) is not loaded")
        }
        if plugin.loads > 1 { plugin.loads -= 1; return }
        let n = inFlight?(plugin.c) { Self.markDead(plugin) } ?? { Self.markDead(plugin); return 0 }()
        if n > 0 {
            throw .busy("plugin '\(plugin.name)' (\(plugin.path)): \(n) of its tasks are in flight (submitted and not ended, or still running after a cancel or timeout)")
        }
        retire(plugin)
        loaded.remove(at: at)
    }

    private static func markDead(_ plugin: Plugin) {
        for p in plugin.processors { tgs_store_sc_u64(&p.c.pointee.magic, TGP_DEAD) }
        tgs_store_sc_u64(&plugin.c.pointee.magic, TGP_DEAD)
    }

    /// Unloads everything (the pool is closing; no task is in flight).
    public func closeAll() {
        lock.lock()
        defer { lock.unlock() }
        for p in loaded.reversed() { retire(p) }
        loaded.removeAll()
    }

    private func retire(_ plugin: Plugin) {
        Self.markDead(plugin)
        for p in plugin.processors { byName[p.name] = nil }
        if let h = plugin.shutdownHook { tgp_call_shutdown(h, plugin.c.pointee.state) }
        dlclose(plugin.handle)
        retired.append(plugin)
    }
}
