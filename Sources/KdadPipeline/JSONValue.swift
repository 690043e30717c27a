import Foundation

/// A JSON value with a canonical encoding (sorted keys, no whitespace) so hashes of params and
/// records are stable across runs and machines.
public enum JSONValue: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .int(value): try container.encode(value)
        case let .double(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }

    /// Canonical compact JSON text.
    public var canonicalText: String {
        switch self {
        case .null: return "null"
        case let .bool(value): return value ? "true" : "false"
        case let .int(value): return String(value)
        case let .double(value):
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(format: "%.1f", value) }
            return value.isFinite ? "\(value)" : "null"
        case let .string(value): return Self.quoted(value)
        case let .array(values): return "[" + values.map(\.canonicalText).joined(separator: ",") + "]"
        case let .object(object):
            return "{" + object.keys.sorted().map { Self.quoted($0) + ":" + object[$0]!.canonicalText }.joined(separator: ",") + "}"
        }
    }

    public var description: String { canonicalText }

    static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    public var intValue: Int? { if case let .int(v) = self { return v }; return nil }
    public var doubleValue: Double? {
        switch self { case let .double(v): return v; case let .int(v): return Double(v); default: return nil }
    }
    public var stringValue: String? { if case let .string(v) = self { return v }; return nil }
    public var boolValue: Bool? { if case let .bool(v) = self { return v }; return nil }
    public subscript(key: String) -> JSONValue? { if case let .object(o) = self { return o[key] }; return nil }
}
