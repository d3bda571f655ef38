#if canImport(Glibc)
import Glibc
#endif

/// A JSON value, as task outputs declare them (seed 002 §5: the lists and
/// values that results are aggregated over). Numbers keep their text, so an
/// integer beyond 2^53 is written back as it came; object keys keep their
/// order for output, and compare without it.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.canonical == b.canonical }

    /// Compact JSON text (key order and number text as parsed).
    public var json: String {
        var s = ""
        write(&s, canonical: false)
        return s
    }

    /// The text two equal values share: keys sorted, numbers by value (an
    /// integer of up to 15 digits as written, others through Double), so
    /// `{"a":1,"b":2.0}` and `{"b":2,"a":1}` are one item.
    public var canonical: String {
        var s = ""
        write(&s, canonical: true)
        return s
    }

    private func write(_ s: inout String, canonical: Bool) {
        switch self {
        case .null: s += "null"
        case .bool(let b): s += b ? "true" : "false"
        case .number(let t): s += canonical ? JSONValue.canonicalNumber(t) : t
        case .string(let t): s += JSONText.quote(t)
        case .array(let a):
            s += "["
            for (i, v) in a.enumerated() {
                if i > 0 { s += "," }
                v.write(&s, canonical: canonical)
            }
            s += "]"
        case .object(let members):
            s += "{"
            let list = canonical ? JSONValue.sortedMembers(members) : members
            for (i, (k, v)) in list.enumerated() {
                if i > 0 { s += "," }
                s += JSONText.quote(k) + ":"
                v.write(&s, canonical: canonical)
            }
            s += "}"
        }
    }

    private static func sortedMembers(_ m: [(String, JSONValue)]) -> [(String, JSONValue)] {
        // A duplicate key keeps its last value, as most readers do.
        var last: [String: Int] = [:]
        for (i, (k, _)) in m.enumerated() { last[k] = i }
        return m.enumerated().filter { last[$0.element.0] == $0.offset }.map(\.element)
            .sorted { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
    }

    private static func canonicalNumber(_ t: String) -> String {
        let u = Array(t.utf8)
        let digits = u.first == 0x2d ? u.dropFirst() : u[...]
        if !digits.isEmpty, digits.count <= 15, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return t == "-0" ? "0" : t
        }
        let d = t.withCString { strtod($0, nil) }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return JSONText.number(d)
    }

    /// The elements of a list; a value that is not a list is a list of one.
    public var items: [JSONValue] {
        if case .array(let a) = self { return a }
        return [self]
    }
}

/// Why some text is not JSON: what was expected and at which byte (0-based)
/// and line:column (1-based).
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var line: Int
    public var column: Int
    public var description: String { "\(message) at line \(line), column \(column)" }
}

extension JSONValue {
    /// Parses one JSON text (RFC 8259; whitespace around it allowed, nothing
    /// else). Nesting deeper than 512 is refused rather than recursed into.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { (b) throws(JSONParseError) -> JSONValue in try parse(bytes: b) }
    }

    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> JSONValue {
        var p = JSONValueParser(b: b)
        p.ws()
        let v = try p.value(depth: 0)
        p.ws()
        guard p.i == b.count else { throw p.error("unexpected text after the JSON value") }
        return v
    }
}

private struct JSONValueParser {
    let b: UnsafeBufferPointer<UInt8>
    var i = 0

    func error(_ m: String) -> JSONParseError {
        var line = 1, col = 1
        for k in 0..<min(i, b.count) {
            if b[k] == 0x0a { line += 1; col = 1 } else if b[k] & 0xc0 != 0x80 { col += 1 }
        }
        return JSONParseError(message: m, offset: i, line: line, column: col)
    }

    mutating func ws() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
    }

    mutating func literal(_ w: StaticString, _ v: JSONValue) throws(JSONParseError) -> JSONValue {
        let n = w.utf8CodeUnitCount
        guard i + n <= b.count else { throw error("unexpected end of input") }
        for k in 0..<n where b[i + k] != w.utf8Start[k] { throw error("unexpected character") }
        i += n
        return v
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested deeper than 512 levels") }
        guard i < b.count else { throw error("unexpected end of input, expected a value") }
        switch b[i] {
        case 0x7b:  // {
            i += 1
            var members: [(String, JSONValue)] = []
            ws()
            if i < b.count, b[i] == 0x7d { i += 1; return .object(members) }
            while true {
                ws()
                guard i < b.count, b[i] == 0x22 else { throw error("expected a string key") }
                let k = try string()
                ws()
                guard i < b.count, b[i] == 0x3a else { throw error("expected ':' after a key") }
                i += 1
                ws()
                members.append((k, try value(depth: depth + 1)))
                ws()
                guard i < b.count else { throw error("unexpected end of input, expected ',' or '}'") }
                if b[i] == 0x2c { i += 1; continue }
                guard b[i] == 0x7d else { throw error("expected ',' or '}'") }
                i += 1
                return .object(members)
            }
        case 0x5b:  // [
            i += 1
            var items: [JSONValue] = []
            ws()
            if i < b.count, b[i] == 0x5d { i += 1; return .array(items) }
            while true {
                ws()
                items.append(try value(depth: depth + 1))
                ws()
                guard i < b.count else { throw error("unexpected end of input, expected ',' or ']'") }
                if b[i] == 0x2c { i += 1; continue }
                guard b[i] == 0x5d else { throw error("expected ',' or ']'") }
                i += 1
                return .array(items)
            }
        case 0x22: return .string(try string())
        case 0x74: return try literal("true", .bool(true))
        case 0x66: return try literal("false", .bool(false))
        case 0x6e: return try literal("null", .null)
        case 0x2d, 0x30...0x39: return try number()
        default: throw error("unexpected character, expected a value")
        }
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = i
        func digits() -> Int {
            let s = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            return i - s
        }
        if b[i] == 0x2d { i += 1 }
        guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { throw error("a number needs digits") }
        if b[i] == 0x30 { i += 1 } else { _ = digits() }
        if i < b.count, b[i] == 0x2e {
            i += 1
            guard digits() > 0 else { throw error("a number needs digits after '.'") }
        }
        if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
            i += 1
            if i < b.count, b[i] == 0x2b || b[i] == 0x2d { i += 1 }
            guard digits() > 0 else { throw error("a number needs digits in its exponent") }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("unexpected end of input in a \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: throw error("bad hex digit in a \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONParseError) -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        var runStart = i
        while true {
            guard i < b.count else { throw error("unterminated string") }
            let c = b[i]
            if c == 0x22 {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[runStart..<i]))
                i += 1
                break
            }
            if c < 0x20 { throw error("control character in a string (escape it)") }
            if c != 0x5c { i += 1; continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[runStart..<i]))
            i += 1
            guard i < b.count else { throw error("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case 0x22: out.append(0x22)
            case 0x5c: out.append(0x5c)
            case 0x2f: out.append(0x2f)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0c)
            case 0x6e: out.append(0x0a)
            case 0x72: out.append(0x0d)
            case 0x74: out.append(0x09)
            case 0x75:
                var u = try hex4()
                if u >= 0xd800 && u < 0xdc00 {
                    guard i + 6 <= b.count, b[i] == 0x5c, b[i + 1] == 0x75 else { throw error("lone high surrogate in a \\u escape") }
                    i += 2
                    let lo = try hex4()
                    guard lo >= 0xdc00 && lo < 0xe000 else { throw error("bad low surrogate in a \\u escape") }
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00)
                } else if u >= 0xdc00 && u < 0xe000 {
                    throw error("lone low surrogate in a \\u escape")
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(u)!).utf8))
            default: throw error("unknown escape '\\\(String(UnicodeScalar(e)))'")
            }
            runStart = i
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return s
    }
}
