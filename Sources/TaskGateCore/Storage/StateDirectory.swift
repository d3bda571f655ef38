import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

/// The directories taskgate keeps state in (lock files, the result cache):
/// made on demand with their parents, held open as directories, given the
/// seed's `.gitignore`, and the names of the files inside made safe.
enum StateDirectory {
    /// Opens `path`, named `what` in errors ("lock directory"). `create`
    /// makes it (parents included, 0755) and its `.gitignore`; `refuseLink`
    /// refuses a symbolic link as its last component. Returns the descriptor
    /// and whether others may write there (a sticky /tmp-like directory).
    static func open(_ path: String, what: String, create: Bool, refuseLink: Bool) throws(TaskGateError) -> (fd: Int32, othersWritable: Bool) {
        if create { try makeDirectories(path, what: what) }
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (refuseLink ? O_NOFOLLOW : 0))
        guard fd >= 0 else {
            let e = errno
            var st = stat()
            if refuseLink, lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFLNK {
                throw .unsafePath("\(what) '\(path)' is a symbolic link; give the directory itself")
            }
            if e == ENOENT { throw .notFound("\(what) '\(path)' does not exist") }
            if e == ENOTDIR { throw .invalid("\(what) '\(path)': it, or a folder on its path, is not a directory") }
            throw .io("\(what) '\(path)': open: \(String(cString: strerror(e)))")
        }
        var info = tgs_file_info()
        _ = tgs_fstat_info(fd, &info)
        if create {
            let g = openat(fd, ".gitignore", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if g >= 0 {
                let text = "*\n!.gitignore\n"
                _ = text.withCString { write(g, $0, strlen($0)) }
                close(g)
            }
        }
        return (fd, info.mode & UInt32(S_IWOTH) != 0)
    }

    private static func makeDirectories(_ path: String, what: String) throws(TaskGateError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += part
            if mkdir(prefix, 0o755) != 0 {
                let e = errno
                if e != EEXIST {
                    throw .io("\(what) '\(path)': cannot create '\(prefix)': \(String(cString: strerror(e)))")
                }
            }
            prefix += "/"
        }
    }

    /// The names in the directory open as `fd`, "." and ".." left out. Opens
    /// "." afresh (not dup: a dup shares the directory offset, so two
    /// listings at once would skip each other's entries).
    static func names(in fd: Int32) -> [String] {
        let listing = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listing >= 0 else { return [] }
        guard let d = fdopendir(listing) else {
            close(listing)
            return []
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `[A-Za-z0-9._-]`: bytes a key may keep in a file name.
    static func isSafe(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2e || c == 0x5f || c == 0x2d
    }

    /// `k_KEY` + suffix when the key can be a file name as it is (1 to 100
    /// safe bytes, not starting with '.'); nil otherwise.
    static func plainName(_ key: String, suffix: String) -> String? {
        let u = key.utf8
        guard !u.isEmpty, u.count <= 100, u.first != 0x2e, u.allSatisfy(isSafe) else { return nil }
        return "k_" + key + suffix
    }

    /// The key's last `n` bytes, unsafe ones as '_' (the readable part of a
    /// hashed name).
    static func safeTail(_ key: String, _ n: Int) -> String {
        String(decoding: key.utf8.suffix(n).map { isSafe($0) ? $0 : 0x5f }, as: UTF8.self)
    }
}
