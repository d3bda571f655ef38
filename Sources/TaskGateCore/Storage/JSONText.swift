#if canImport(Glibc)
import Glibc
#endif

/// The engine's small JSON needs (lock metadata, reports), without Foundation:
/// quoting, numbers, ISO 8601 times, and reading back a flat object.
public enum JSONText {
    /// `s` as a JSON string literal; UTF-8 kept as is, control characters escaped.
    public static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// A finite double as JSON (integers without a fraction); null otherwise.
    public static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// Unix seconds as "2026-11-23T10:00:00.123456Z".
    public static func iso8601(_ t: Double) -> String {
        guard t.isFinite, abs(t) < 1e12 else { return "" }
        var secs = time_t(t.rounded(.down))
        let micros = Int((t - Double(secs)) * 1e6)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        let us = String(micros)
        return pad(tm.tm_year + 1900, 4) + "-" + pad(tm.tm_mon + 1, 2) + "-" + pad(tm.tm_mday, 2) + "T" + pad(tm.tm_hour, 2) + ":"
            + pad(tm.tm_min, 2) + ":" + pad(tm.tm_sec, 2) + "." + String(repeating: "0", count: 6 - us.count) + us + "Z"
    }

    public enum Scalar: Equatable { case string(String), number(Double), bool(Bool), null }

    /// Reads one JSON object whose values are strings, numbers, booleans or
    /// null (anything nested refuses it), with surrounding whitespace allowed.
    /// nil for anything malformed. Duplicate keys: the last wins.
    public static func flatObject(_ b: UnsafeBufferPointer<UInt8>) -> [String: Scalar]? {
        var i = 0
        let n = b.count
        func ws() { while i < n, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 } }
        func string() -> String? {
            guard i < n, b[i] == 0x22 else { return nil }
            i += 1
            var bytes: [UInt8] = []
            while i < n {
                let c = b[i]
                if c == 0x22 { i += 1; return String(validating: bytes, as: UTF8.self) }
                if c < 0x20 { return nil }
                if c != 0x5c { bytes.append(c); i += 1; continue }
                i += 1
                guard i < n else { return nil }
                let e = b[i]; i += 1
                switch e {
                case 0x22, 0x5c, 0x2f: bytes.append(e)
                case 0x62: bytes.append(8)
                case 0x66: bytes.append(12)
                case 0x6e: bytes.append(10)
                case 0x72: bytes.append(13)
                case 0x74: bytes.append(9)
                case 0x75:
                    func hex4() -> UInt32? {
                        guard i + 4 <= n else { return nil }
                        var v: UInt32 = 0
                        for _ in 0..<4 {
                            let h = b[i]; i += 1
                            switch h {
                            case 0x30...0x39: v = v * 16 + UInt32(h - 0x30)
                            case 0x61...0x66: v = v * 16 + UInt32(h - 0x61 + 10)
                            case 0x41...0x46: v = v * 16 + UInt32(h - 0x41 + 10)
                            default: return nil
                            }
                        }
                        return v
                    }
                    guard var v = hex4() else { return nil }
                    if v >= 0xD800 && v < 0xDC00 {
                        guard i + 2 <= n, b[i] == 0x5c, b[i + 1] == 0x75 else { return nil }
                        i += 2
                        guard let lo = hex4(), lo >= 0xDC00, lo < 0xE000 else { return nil }
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(v) else { return nil }
                    bytes.append(contentsOf: Array(String(Character(u)).utf8))
                default: return nil
                }
            }
            return nil
        }
        func number() -> Double? {
            let start = i
            while i < n, (b[i] >= 0x30 && b[i] <= 0x39) || b[i] == 0x2d || b[i] == 0x2b || b[i] == 0x2e || b[i] == 0x65 || b[i] == 0x45 { i += 1 }
            guard i > start, i - start < 64 else { return nil }
            var text = Array(b[start..<i]).map { CChar(bitPattern: $0) }
            text.append(0)
            var end: UnsafeMutablePointer<CChar>?
            let v = text.withUnsafeBufferPointer { p -> Double in
                let r = strtod(p.baseAddress!, &end)
                return end == UnsafeMutablePointer(mutating: p.baseAddress! + (i - start)) ? r : .nan
            }
            return v.isNaN ? nil : v
        }
        func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard i + w.count <= n else { return false }
            for k in 0..<w.count where b[i + k] != w[k] { return false }
            i += w.count
            return true
        }
        ws()
        guard i < n, b[i] == 0x7b else { return nil }
        i += 1
        var out: [String: Scalar] = [:]
        ws()
        if i < n, b[i] == 0x7d { i += 1; ws(); return i == n ? out : nil }
        while true {
            ws()
            guard let k = string() else { return nil }
            ws()
            guard i < n, b[i] == 0x3a else { return nil }
            i += 1
            ws()
            guard i < n else { return nil }
            switch b[i] {
            case 0x22: guard let s = string() else { return nil }; out[k] = .string(s)
            case 0x74: guard literal("true") else { return nil }; out[k] = .bool(true)
            case 0x66: guard literal("false") else { return nil }; out[k] = .bool(false)
            case 0x6e: guard literal("null") else { return nil }; out[k] = .null
            default: guard let d = number() else { return nil }; out[k] = .number(d)
            }
            ws()
            guard i < n else { return nil }
            if b[i] == 0x2c { i += 1; continue }
            if b[i] == 0x7d { i += 1; break }
            return nil
        }
        ws()
        return i == n ? out : nil
    }
}
