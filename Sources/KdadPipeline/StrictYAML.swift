import Foundation
import Yams

/// A YAML node together with where it came from (file, key path), so every accessor can fail with a
/// `ManifestError` pointing at the exact line. Plain `Decodable` loses marks; the node tree keeps them.
struct StrictNode {
    let node: Node
    let file: String
    let keyPath: String

    /// Parses `url`; `displayName` is how the file is named in messages.
    static func load(contentsOf url: URL, displayName: String) throws -> StrictNode {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ManifestError(file: displayName, line: 0, column: 0, keyPath: "",
                                reason: "cannot read file: \(error.localizedDescription)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.manifestError(from: error, file: displayName)
        }
        guard let root else {
            throw ManifestError(file: displayName, line: 1, column: 1, keyPath: "", reason: "file is empty")
        }
        return StrictNode(node: root, file: displayName, keyPath: "")
    }

    private static func manifestError(from error: YamlError, file: String) -> ManifestError {
        switch error {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _), let .composer(_, problem, mark, _):
            return ManifestError(file: file, line: mark.line, column: mark.column, keyPath: "", reason: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return ManifestError(file: file, line: context.mark.line, column: context.mark.column, keyPath: "",
                                 reason: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in mapping")
        default:
            return ManifestError(file: file, line: 0, column: 0, keyPath: "", reason: "invalid YAML: \(error)")
        }
    }

    var line: Int { node.mark?.line ?? 0 }
    var column: Int { node.mark?.column ?? 0 }

    func error(_ reason: String) -> ManifestError {
        ManifestError(file: file, line: line, column: column, keyPath: keyPath, reason: reason)
    }

    /// How the key path reads in messages: the root is "the top level".
    var displayPath: String { keyPath.isEmpty ? "the top level" : "'\(keyPath)'" }

    private var kindName: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar:
            switch node.tagName {
            case .int: return "an integer"
            case .float: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            default: return "a string"
            }
        }
    }

    private func wrongType(_ expected: String) -> ManifestError {
        error("\(displayPath) must be \(expected), got \(kindName)")
    }

    // MARK: Typed accessors

    func mapping(allowedKeys: [String]) throws -> StrictMapping {
        guard case let .mapping(mapping) = node else { throw wrongType("a mapping") }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case let .scalar(scalar) = keyNode else {
                throw StrictNode(node: keyNode, file: file, keyPath: keyPath).error("keys in \(displayPath) must be plain words")
            }
            let key = scalar.string
            if !allowedKeys.contains(key) {
                var reason = "unknown key '\(key)' in \(displayPath)"
                if let suggestion = closestMatch(to: key, among: allowedKeys) {
                    reason += " (did you mean '\(suggestion)'?)"
                } else {
                    reason += " (allowed: \(allowedKeys.joined(separator: ", ")))"
                }
                throw ManifestError(file: file, line: keyNode.mark?.line ?? line, column: keyNode.mark?.column ?? column,
                                    keyPath: child(key), reason: reason)
            }
            entries.append((key, keyNode, value))
        }
        return StrictMapping(owner: self, entries: entries)
    }

    func child(_ key: String) -> String { keyPath.isEmpty ? key : "\(keyPath).\(key)" }

    func string() throws -> String {
        guard case let .scalar(scalar) = node else { throw wrongType("a string") }
        switch node.tagName {
        case .str: return scalar.string
        case .int, .float, .bool:
            throw error("\(displayPath) must be a string, got \(kindName) (quote it: '\(scalar.string)')")
        default: throw wrongType("a string")
        }
    }

    func int() throws -> Int {
        guard case .scalar = node, node.tagName == .int, let value = node.int else { throw wrongType("an integer") }
        return value
    }

    func double() throws -> Double {
        guard case .scalar = node, node.tagName == .int || node.tagName == .float, let value = node.float else {
            throw wrongType("a number")
        }
        return value
    }

    func bool() throws -> Bool {
        guard case .scalar = node, node.tagName == .bool, let value = node.bool else { throw wrongType("true or false") }
        return value
    }

    func sequence() throws -> [StrictNode] {
        guard case let .sequence(sequence) = node else { throw wrongType("a list") }
        return sequence.enumerated().map { StrictNode(node: $0.element, file: file, keyPath: "\(keyPath)[\($0.offset)]") }
    }

    /// A single string or a list of strings (e.g. `include: "*.png"` or `include: ["*.png", "*.jpg"]`).
    func stringList() throws -> [String] {
        if case .sequence = node { return try sequence().map { try $0.string() } }
        if case .scalar = node, node.tagName == .str { return [try string()] }
        throw wrongType("a string or a list of strings")
    }

    /// Any scalar/list/mapping as a JSON value (used for stage params, whose schema is checked per kind).
    func jsonValue() throws -> JSONValue {
        switch node {
        case .scalar:
            switch node.tagName {
            case .int: return .int(try int())
            case .float: return .double(try double())
            case .bool: return .bool(try bool())
            case .null: return .null
            default: return .string(try string())
            }
        case .sequence:
            return .array(try sequence().map { try $0.jsonValue() })
        case .mapping:
            guard case let .mapping(mapping) = node else { return .null }
            var object: [String: JSONValue] = [:]
            for (keyNode, value) in mapping {
                let key = keyNode.scalar?.string ?? "\(keyNode)"
                object[key] = try StrictNode(node: value, file: file, keyPath: child(key)).jsonValue()
            }
            return .object(object)
        case .alias:
            throw error("YAML aliases are not supported in \(displayPath)")
        }
    }
}

/// A mapping whose keys were all checked against the allowed set.
struct StrictMapping {
    let owner: StrictNode
    let entries: [(key: String, keyNode: Node, value: Node)]

    func optional(_ key: String) -> StrictNode? {
        guard let entry = entries.first(where: { $0.key == key }) else { return nil }
        return StrictNode(node: entry.value, file: owner.file, keyPath: owner.child(key))
    }

    func required(_ key: String) throws -> StrictNode {
        guard let value = optional(key) else {
            throw ManifestError(file: owner.file, line: owner.line, column: owner.column, keyPath: owner.child(key),
                                reason: "missing required key '\(key)' in \(owner.displayPath)")
        }
        return value
    }

    var keys: [String] { entries.map(\.key) }

    /// The node of `key` itself (for errors about the key rather than its value).
    func keyNode(_ key: String) -> StrictNode? {
        guard let entry = entries.first(where: { $0.key == key }) else { return nil }
        return StrictNode(node: entry.keyNode, file: owner.file, keyPath: owner.child(key))
    }
}

extension Node {
    /// The resolved tag name (`Tag.name` itself is internal to Yams; its raw value is public).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
