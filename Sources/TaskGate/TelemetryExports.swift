import CTaskGateABI
import CTaskGateSupport
import TaskGateCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Events and logging

@_cdecl("tg_pool_set_log")
public func tg_pool_set_log(_ p: UnsafeMutablePointer<tg_pool>?, _ minLevel: Int32, _ fn: tg_log_fn?,
                            _ user: UnsafeMutableRawPointer?) -> Int32 {
    guard let pool = engine(p, "tg_pool_set_log") else { return badHandleCode(p) }
    guard let fn else {
        pool.setLogSink(nil, minLevel: .debug)
        return ok()
    }
    guard let level = LogLevel(rawValue: minLevel) else {
        return fail(TG_EINVAL, "tg_pool_set_log: min_level \(minLevel) is not TG_LOG_DEBUG (10), _INFO (20), _WARNING (30) or _ERROR (40)")
    }
    let userBits = UInt(bitPattern: user)
    pool.setLogSink({ (r: borrowing LogRecord) in
        var c = tg_log_record()
        c.struct_size = UInt32(MemoryLayout<tg_log_record>.size)
        c.level = r.level.rawValue
        c.task_id = r.taskId
        c.seq = r.seq
        c.attempt = r.attempt
        c.worker = r.worker
        c.time_ns = r.timeNs
        r.event.withCString { event in
            r.message.withCString { message in
                r.runId.withCString { run in
                    r.fields.withCString { fields in
                        c.event = event
                        c.message = message
                        c.run_id = run
                        c.fields_json = fields
                        fn(UnsafeMutableRawPointer(bitPattern: userBits), &c)
                    }
                }
            }
        }
    }, minLevel: level)
    return ok()
}

@_cdecl("tg_pool_set_run_id")
public func tg_pool_set_run_id(_ p: UnsafeMutablePointer<tg_pool>?, _ runId: UnsafePointer<CChar>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_set_run_id") else { return badHandleCode(p) }
    guard let runId else { return fail(TG_EINVAL, "tg_pool_set_run_id: run_id is NULL") }
    let n = strlen(runId)
    guard n >= 1, n <= 256 else { return fail(TG_EINVAL, "tg_pool_set_run_id: run_id must be 1 to 256 bytes, not \(n)") }
    for k in 0..<n {
        let b = UInt8(bitPattern: runId[k])
        guard b >= 0x21, b <= 0x7e else {
            return fail(TG_EINVAL, "tg_pool_set_run_id: run_id byte \(k) is 0x\(String(b, radix: 16)); use printable ASCII without spaces")
        }
    }
    pool.runId = String(cString: runId)
    return ok()
}

@_cdecl("tg_pool_get_run_id")
public func tg_pool_get_run_id(_ p: UnsafeMutablePointer<tg_pool>?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    guard let pool = engine(p, "tg_pool_get_run_id") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_get_run_id: out is NULL") }
    guard let copy = strdup(pool.runId) else { return fail(TG_ENOMEM, "tg_pool_get_run_id") }
    out.pointee = copy
    return ok()
}

// MARK: - Health monitor

@_cdecl("tg_pool_set_health")
public func tg_pool_set_health(_ p: UnsafeMutablePointer<tg_pool>?, _ opts: UnsafePointer<tg_health_options>?) -> Int32 {
    guard let pool = engine(p, "tg_pool_set_health") else { return badHandleCode(p) }
    guard let opts else {
        pool.setHealthMonitor(nil)
        return ok()
    }
    let o = opts.pointee
    guard o.struct_size == UInt32(MemoryLayout<tg_health_options>.size) else {
        return fail(TG_EVERSION, "tg_pool_set_health: opts->struct_size is \(o.struct_size), this library knows \(MemoryLayout<tg_health_options>.size) (use TG_HEALTH_OPTIONS_INIT)")
    }
    guard o.flags & ~UInt32(TG_HEALTH_STOP) == 0 else {
        return fail(TG_EINVAL, "tg_pool_set_health: unknown flags 0x\(String(o.flags & ~UInt32(TG_HEALTH_STOP), radix: 16))")
    }
    guard o.reserved == 0 else { return fail(TG_EINVAL, "tg_pool_set_health: opts->reserved must be 0") }
    let thresholds = HealthThresholds(failureRate: o.failure_rate, timeoutRate: o.timeout_rate, avgDurationMs: o.avg_duration_ms,
                                      minTasks: Int(max(1, o.min_tasks)), stopOnAlert: o.flags & UInt32(TG_HEALTH_STOP) != 0)
    let clock = pool.clock
    do {
        let monitor = try HealthMonitor(thresholds, now: { Double(clock.now()) / 1e9 })
        pool.setHealthMonitor(monitor)
    } catch {
        return fail(TG_EINVAL, "tg_pool_set_health: \(error.message)")
    }
    return ok()
}

@_cdecl("tg_pool_health")
public func tg_pool_health(_ p: UnsafeMutablePointer<tg_pool>?, _ out: UnsafeMutablePointer<tg_health_report>?,
                           _ json: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    json?.pointee = nil
    guard let pool = engine(p, "tg_pool_health") else { return badHandleCode(p) }
    if let out, out.pointee.struct_size != UInt32(MemoryLayout<tg_health_report>.size) {
        return fail(TG_EVERSION, "tg_pool_health: out->struct_size is \(out.pointee.struct_size), this library knows \(MemoryLayout<tg_health_report>.size) (use TG_HEALTH_REPORT_INIT)")
    }
    guard let monitor = pool.health else { return fail(TG_ENOTFOUND, "tg_pool_health: no health monitor is set (tg_pool_set_health)") }
    let r = monitor.report
    if let out {
        var c = tg_health_report()
        c.struct_size = UInt32(MemoryLayout<tg_health_report>.size)
        for m in r.active {
            switch m {
            case .failureRate: c.active |= UInt32(TG_HEALTH_FAILURE_RATE)
            case .timeoutRate: c.active |= UInt32(TG_HEALTH_TIMEOUT_RATE)
            case .avgDurationMs: c.active |= UInt32(TG_HEALTH_AVG_DURATION)
            }
        }
        c.counted = UInt64(r.counted)
        c.failures = UInt64(r.failures)
        c.timeouts = UInt64(r.timeouts)
        c.timed = UInt64(r.timed)
        c.alerts_raised = UInt64(r.alertsRaised)
        c.failure_rate = r.failureRate
        c.timeout_rate = r.timeoutRate
        c.avg_duration_ms = r.avgDurationMs
        out.pointee = c
    }
    if let json {
        let text = "{\"report\":" + r.json + ",\"alerts\":[" + monitor.alerts.map(\.json).joined(separator: ",") + "]}"
        guard let copy = strdup(text) else { return fail(TG_ENOMEM, "tg_pool_health") }
        json.pointee = copy
    }
    return ok()
}

// MARK: - Metrics

@_cdecl("tg_pool_metrics")
public func tg_pool_metrics(_ p: UnsafeMutablePointer<tg_pool>?, _ flags: UInt32,
                            _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    guard let pool = engine(p, "tg_pool_metrics") else { return badHandleCode(p) }
    guard let out else { return fail(TG_EINVAL, "tg_pool_metrics: out_text is NULL") }
    guard flags & ~UInt32(TG_METRICS_PER_TASK) == 0 else {
        return fail(TG_EINVAL, "tg_pool_metrics: unknown flags 0x\(String(flags & ~UInt32(TG_METRICS_PER_TASK), radix: 16))")
    }
    let text: String
    do { text = try pool.prometheusMetrics(perTask: flags & UInt32(TG_METRICS_PER_TASK) != 0) } catch {
        return fail(TG_EINVAL, "tg_pool_metrics: \(error.message)")
    }
    guard let copy = strdup(text) else { return fail(TG_ENOMEM, "tg_pool_metrics") }
    out.pointee = copy
    return ok()
}
