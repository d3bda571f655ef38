// `taskgate locks list|clean`: the cross-process lock directory from the terminal.
import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

let locksHelp = """
usage: taskgate locks list  [--dir DIR] [--json] [--stale-after S]
       taskgate locks clean [--dir DIR] [--json] [--stale-after S]

list   shows every lock file in DIR: free, held (by whom: holder, pid, host,
       since when, its timeout), shared, stale (and why: holder gone, pid
       reused, past its timeout, unreadable and old) or unsafe (a link, FIFO,
       socket or another user's file at a lock path).
clean  removes the lock files that are free or stale (and leftovers of
       interrupted takeovers); a lock a live holder has is never touched.

options:
  --dir DIR          the lock directory (default: lock_dir, .taskgate/locks from
                     the current folder; also TASKGATE_LOCK_DIR)
  --stale-after S    seconds after which a held lock whose metadata cannot be
                     read counts as stale (default: lock_timeout_seconds)
  --json             JSON on stdout

Exit status: 0 done (also when the directory does not exist: no locks), 2 bad usage
or a directory that cannot be read.
"""

func commandLocks(_ args: [String]) -> Int32 {
    if args.contains("--help") || args.contains("-h") || args.first == "help" { stdoutStream.write(locksHelp + "\n"); return 0 }
    guard let action = args.first, action == "list" || action == "clean" else {
        fail(args.isEmpty ? "locks needs an action: list or clean (see 'taskgate help locks')"
             : "unknown locks action '\(args[0])': use list or clean")
    }
    var rest = Array(args.dropFirst())
    var staleAfter: Double? = nil
    var k = 0
    while k < rest.count {
        var a = rest[k]
        var inline: String? = nil
        if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") { inline = String(a[a.index(after: eq)...]); a = String(a[..<eq]) }
        if a == "--dir" { rest[k] = "--lock-dir" + (inline.map { "=" + $0 } ?? ""); k += 1; continue }
        if a == "--stale-after" {
            let v: String
            if let inline { v = inline; rest.remove(at: k) } else {
                guard k + 1 < rest.count else { fail("--stale-after needs a value") }
                v = rest[k + 1]
                rest.removeSubrange(k...(k + 1))
            }
            guard let d = Double(v), d.isFinite, d >= 0 else { fail("--stale-after '\(v)' is not a number of seconds >= 0") }
            staleAfter = d
            continue
        }
        k += 1
    }
    var opts = RunOptions(file: "")
    var positional: [String] = []
    let config: Config
    do throws(UsageError) {
        try parseCommon(rest, allowJSON: true, into: &opts, positional: &positional)
        guard positional.isEmpty else { throw UsageError("locks \(action) takes no file, got '\(positional[0])' (use --dir)") }
        config = try effectiveConfig(opts, nil)
    } catch {
        fail(error.message)
    }
    let cwd = String(decoding: PathNormalizer.currentDirectory(), as: UTF8.self)
    guard config.lockDir != "off" else { fail("lock_dir is 'off': no lock directory to \(action)") }
    let path = absolute(config.lockDir, from: cwd)
    let dir: LockDirectory
    do {
        dir = try LockDirectory(path, create: false)
    } catch .notFound {
        if opts.json { stdoutStream.line(action == "list" ? "[]" : "{\"cleaned\":[],\"removed_idle\":0,\"kept\":[]}") }
        else if !opts.quiet { stderrStream.line("taskgate: no locks: \(path) does not exist") }
        return 0
    } catch {
        fail(error.description)
    }
    let stale = staleAfter ?? config.lockTimeout
    if action == "list" {
        let entries = dir.list(staleAfter: stale)
        if opts.json {
            stdoutStream.line("[" + entries.map(\.json).joined(separator: ",") + "]")
        } else if entries.isEmpty {
            if !opts.quiet { stderrStream.line("taskgate: no lock files in \(path)") }
        } else {
            for e in entries { stdoutStream.line(describe(e)) }
        }
        return 0
    }
    let r = dir.cleanStale(staleAfter: stale)
    if opts.json {
        stdoutStream.line("{\"cleaned\":[" + r.cleaned.map(\.json).joined(separator: ",") + "],\"removed_idle\":\(r.removedIdle),\"kept\":["
            + r.kept.map(\.json).joined(separator: ",") + "]}")
    } else {
        for e in r.cleaned { stdoutStream.line("cleaned  " + describe(e)) }
        for e in r.kept { stdoutStream.line("kept     " + describe(e)) }
        stdoutStream.line("\(r.cleaned.count) stale lock\(r.cleaned.count == 1 ? "" : "s") cleaned, \(r.removedIdle) idle file\(r.removedIdle == 1 ? "" : "s") removed, \(r.kept.count) kept (\(path))")
    }
    return 0
}

private func describe(_ e: LockDirectory.Entry) -> String {
    var s = e.state.rawValue + String(repeating: " ", count: max(1, 7 - e.state.rawValue.count)) + e.file
    if let m = e.metadata {
        s += "  key=\(m.key) holder=\(m.holderId) pid=\(m.pid) host=\(m.host) since=\(JSONText.iso8601(m.acquiredAt))"
        s += m.timeout > 0 ? " timeout=\(JSONText.number(m.timeout))s" : " timeout=none"
    }
    if let r = e.staleReason { s += "  (\(r.description))" }
    if let n = e.note, e.state == .unsafe || e.metadata == nil { s += "  [\(n)]" }
    return s
}
