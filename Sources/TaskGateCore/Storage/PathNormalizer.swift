#if canImport(Glibc)
import Glibc
#endif

/// Lexical path normalisation, so that two spellings of one path are one
/// scheduling resource: relative paths are taken from `base` (the current
/// directory at submission), "." segments and repeated slashes are dropped,
/// ".." removes the segment before it (never above the root). Symbolic links
/// are not resolved: the file may not exist yet, and resolving would make
/// the answer depend on the moment of the check.
enum PathNormalizer {
    static func normalize(_ path: String, base: String) -> String {
        var segments: [Substring] = []
        let full = path.hasPrefix("/") ? path : base + "/" + path
        for seg in full.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." {
                if !segments.isEmpty { segments.removeLast() }
                continue
            }
            segments.append(seg)
        }
        return "/" + segments.joined(separator: "/")
    }

    static func currentDirectory() -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return "/" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
