import TaskGateCore

// A small JSON reader that remembers where every value came from (line and
// column), so that errors in task files can point at the field, and a writer.
// Foundation's JSONSerialization reports only a character offset for syntax
// errors and nothing for values, and would pull full Foundation into the CLI.

/// A JSON value with its position in the source (1-based line and column).
indirect enum JSON {
    case null
    case bool(Bool)
    /// The number's text as written, so that integers keep every digit.
    case number(String)
    case string(String)
    case array([Node])
    /// Keys in source order.
    case object([(String, Node)])
}

struct Node {
    var value: JSON
    var line: Int
    var column: Int

    var position: String { "\(line):\(column)" }

    subscript(key: String) -> Node? {
        if case .object(let members) = value { return members.last { $0.0 == key }?.1 }
        return nil
    }

    var kind: String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    var string: String? { if case .string(let s) = value { return s }; return nil }
    var bool: Bool? { if case .bool(let b) = value { return b }; return nil }
    var array: [Node]? { if case .array(let a) = value { return a }; return nil }
    var members: [(String, Node)]? { if case .object(let m) = value { return m }; return nil }
    var double: Double? { if case .number(let t) = value { return Double(t) }; return nil }
    /// The number as an integer, when it is written as one and fits.
    var int64: Int64? {
        if case .number(let t) = value, !t.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return Int64(t) }
        return nil
    }
    var uint64: UInt64? {
        if case .number(let t) = value, !t.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return UInt64(t) }
        return nil
    }
    var isIntegerText: Bool {
        if case .number(let t) = value { return !t.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) }
        return false
    }
}

struct JSONSyntaxError: Error {
    var message: String
    var line: Int
    var column: Int
}

struct JSONReader {
    private let bytes: [UInt8]
    private var i = 0
    private var line = 1
    private var lineStart = 0
    private var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> Node {
        var r = JSONReader(bytes)
        if r.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { r.i = 3; r.lineStart = 3 }
        r.skipSpace()
        let v = try r.value()
        r.skipSpace()
        if r.i < r.bytes.count { throw r.error("unexpected \(r.describe(r.bytes[r.i])) after the end of the document") }
        return v
    }

    private var column: Int { i - lineStart + 1 }

    private func error(_ m: String) -> JSONSyntaxError { JSONSyntaxError(message: m, line: line, column: column) }

    private func describe(_ b: UInt8) -> String {
        if b >= 0x20 && b < 0x7f { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(String(b, radix: 16))"
    }

    private mutating func skipSpace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0d: i += 1
            case 0x0a: i += 1; line += 1; lineStart = i
            default: return
            }
        }
    }

    private mutating func value() throws(JSONSyntaxError) -> Node {
        guard i < bytes.count else { throw error("unexpected end of the document (a value was expected)") }
        let (l, c) = (line, column)
        func node(_ v: JSON) -> Node { Node(value: v, line: l, column: c) }
        switch bytes[i] {
        case UInt8(ascii: "{"): return node(try object())
        case UInt8(ascii: "["): return node(try array())
        case UInt8(ascii: "\""): return node(.string(try string()))
        case UInt8(ascii: "t"): try literal("true"); return node(.bool(true))
        case UInt8(ascii: "f"): try literal("false"); return node(.bool(false))
        case UInt8(ascii: "n"): try literal("null"); return node(.null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return node(.number(try number()))
        default: throw error("unexpected \(describe(bytes[i])) (a value was expected)")
        }
    }

    private mutating func literal(_ word: String) throws(JSONSyntaxError) {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else {
            throw error("invalid literal (expected '\(word)')")
        }
        i += w.count
    }

    private mutating func number() throws(JSONSyntaxError) -> String {
        let start = i
        func digits() -> Int { let s = i; while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }; return i - s }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw error("invalid number: a digit must follow '-'") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { throw error("invalid number: no leading zeros") }
        } else { _ = digits() }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw error("invalid number: a digit must follow '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw error("invalid number: a digit must follow the exponent") }
        }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("unterminated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b < 0x20 { throw error("a control character (0x\(String(b, radix: 16))) inside a string must be escaped") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw error("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5c)
            case UInt8(ascii: "/"): out.append(0x2f)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var cp = try hex4()
                if cp >= 0xD800 && cp < 0xDC00 {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw error("a high surrogate must be followed by a low one")
                    }
                    i += 2
                    let lo = try hex4()
                    guard lo >= 0xDC00 && lo < 0xE000 else { throw error("invalid low surrogate") }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                } else if cp >= 0xDC00 && cp < 0xE000 {
                    throw error("a lone low surrogate")
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(cp)!)).utf8))
            default: throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("a string is not valid UTF-8") }
        return s
    }

    private mutating func array() throws(JSONSyntaxError) -> JSON {
        depth += 1
        defer { depth -= 1 }
        if depth > 256 { throw error("nested more than 256 deep") }
        i += 1
        var items: [Node] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value())
            skipSpace()
            guard i < bytes.count else { throw error("unterminated array (expected ',' or ']')") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw error("expected ',' or ']' in an array, found \(describe(bytes[i]))")
        }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSON {
        depth += 1
        defer { depth -= 1 }
        if depth > 256 { throw error("nested more than 256 deep") }
        i += 1
        var members: [(String, Node)] = []
        var seen = Set<String>()
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                throw i < bytes.count ? error("expected a key in double quotes, found \(describe(bytes[i]))") : error("unterminated object")
            }
            let (kl, kc) = (line, column)
            let key = try string()
            guard seen.insert(key).inserted else {
                throw JSONSyntaxError(message: "duplicate key \"\(key)\"", line: kl, column: kc)
            }
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after the key \"\(key)\"") }
            i += 1
            skipSpace()
            members.append((key, try value()))
            skipSpace()
            guard i < bytes.count else { throw error("unterminated object (expected ',' or '}')") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw error("expected ',' or '}' in an object, found \(describe(bytes[i]))")
        }
    }
}

// MARK: - Writing

/// Quoting and numbers come from the engine's writer (TaskGateCore's JSONText).
typealias JSONOut = JSONText

/// A JSON object written field by field, in order.
struct JSONObject {
    private var parts: [String] = []
    mutating func add(_ key: String, _ v: String?) { parts.append("\(JSONOut.quote(key)):\(v.map(JSONOut.quote) ?? "null")") }
    mutating func add(_ key: String, _ v: Int) { parts.append("\(JSONOut.quote(key)):\(v)") }
    mutating func add(_ key: String, _ v: Int64) { parts.append("\(JSONOut.quote(key)):\(v)") }
    mutating func add(_ key: String, _ v: Double) { parts.append("\(JSONOut.quote(key)):\(JSONOut.number(v))") }
    mutating func add(_ key: String, _ v: Bool) { parts.append("\(JSONOut.quote(key)):\(v)") }
    mutating func add(raw key: String, _ json: String) { parts.append("\(JSONOut.quote(key)):\(json)") }
    var text: String { "{" + parts.joined(separator: ",") + "}" }
}
