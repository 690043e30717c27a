import Foundation
import Yams

/// The type and range of one stage parameter, checked when the pipeline file is loaded.
public enum ParamType: Sendable {
    case int(ClosedRange<Int>)
    case double(ClosedRange<Double>)
    case string(allowed: [String]?)
    /// A YAML list of strings (non-empty, no repeats), each one of `allowed` when given.
    case stringList(allowed: [String]?)
    /// A YAML mapping of names to numbers (method options); keys are checked by whoever uses them.
    case numberMap
    case bool

    var expectation: String {
        switch self {
        case let .int(range): return "an integer in \(range.lowerBound)...\(range.upperBound)"
        case let .double(range): return "a number in \(range.lowerBound)...\(range.upperBound)"
        case let .string(allowed?): return "one of \(allowed.map { "'\($0)'" }.joined(separator: ", "))"
        case .string(nil): return "a string"
        case let .stringList(allowed?): return "a non-empty list of distinct values from \(allowed.map { "'\($0)'" }.joined(separator: ", "))"
        case .stringList(nil): return "a non-empty list of distinct strings"
        case .numberMap: return "a mapping of names to numbers"
        case .bool: return "true or false"
        }
    }
}

public struct ParamSpec: Sendable {
    public let name: String
    public let type: ParamType
    /// nil = required; `.null` = optional with no value.
    public let defaultValue: JSONValue?
    public let help: String

    public init(_ name: String, _ type: ParamType, default defaultValue: JSONValue?, help: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.help = help
    }
}

/// A kind of stage (ingest, resize, ...): its params, code version and how to build it.
/// Adding a kind = one `StageKind` value in the registry; the pipeline loader does the rest.
public struct StageKind: Sendable {
    public let name: String
    public let params: [ParamSpec]
    /// Kinds an upstream stage may have; empty = a source stage that takes no upstream.
    public let upstreamKinds: [String]
    public let make: @Sendable (StageDefinition) -> any Stage

    public init(name: String, params: [ParamSpec], upstreamKinds: [String], make: @escaping @Sendable (StageDefinition) -> any Stage) {
        self.name = name
        self.params = params
        self.upstreamKinds = upstreamKinds
        self.make = make
    }
}

public struct StageKindRegistry: Sendable {
    public var kinds: [String: StageKind]

    public init(_ kinds: [StageKind]) {
        self.kinds = Dictionary(kinds.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
    }

    /// The stages kdad ships.
    public static let standard = StageKindRegistry([IngestStage.kind, ResizeStage.kind, FeaturesStage.kind, TrainStage.kind, ScoreStage.kind, EvaluateStage.kind,
                                                           ThresholdStage.kind, ReportStage.kind])
}

/// One stage as declared in a pipeline file, with params validated and defaults filled in.
public struct StageDefinition: Sendable {
    public let name: String
    public let kind: String
    public let dependsOn: [String]
    public let params: [String: JSONValue]
    /// Where it was declared (for messages).
    public let file: String
    public let line: Int

    public init(name: String, kind: String, dependsOn: [String], params: [String: JSONValue], file: String = "", line: Int = 0) {
        self.name = name
        self.kind = kind
        self.dependsOn = dependsOn
        self.params = params
        self.file = file
        self.line = line
    }

    public func int(_ key: String) -> Int { params[key]?.intValue ?? 0 }
    public func double(_ key: String) -> Double { params[key]?.doubleValue ?? 0 }
    public func string(_ key: String) -> String? { params[key]?.stringValue }
    public func bool(_ key: String) -> Bool { params[key]?.boolValue ?? false }
    public func strings(_ key: String) -> [String] {
        if case let .array(values)? = params[key] { return values.compactMap(\.stringValue) }
        return []
    }
}

/// The stage graph: stages in a valid execution order (every stage after its dependencies).
public struct PipelineDefinition: Sendable {
    public let url: URL
    public let name: String
    public let stages: [StageDefinition]

    public func stage(named name: String) -> StageDefinition? { stages.first { $0.name == name } }

    /// `name` and every stage that depends on it, directly or not, in execution order.
    public func downstream(of name: String) -> [String] {
        var selected: Set<String> = [name]
        for stage in stages where stage.dependsOn.contains(where: selected.contains) { selected.insert(stage.name) }
        return stages.map(\.name).filter(selected.contains)
    }

    /// `name` and everything it depends on, in execution order.
    public func upstream(of name: String) -> [String] {
        var selected: Set<String> = [name]
        for stage in stages.reversed() where selected.contains(stage.name) { selected.formUnion(stage.dependsOn) }
        return stages.map(\.name).filter(selected.contains)
    }

    public static func load(contentsOf url: URL, displayName: String? = nil,
                            registry: StageKindRegistry = .standard) throws -> PipelineDefinition {
        let display = displayName ?? url.path
        let root = try StrictNode.load(contentsOf: url, displayName: display)
        let top = try root.mapping(allowedKeys: ["pipeline"])
        let pipelineNode = try top.required("pipeline")
        let pipeline = try pipelineNode.mapping(allowedKeys: ["name", "stages"])
        let name = try pipeline.required("name").string()
        let stagesNode = try pipeline.required("stages")
        let stageNodes = try stagesNode.sequence()
        guard !stageNodes.isEmpty else { throw stagesNode.error("'\(stagesNode.keyPath)' must list at least one stage") }

        var parsed: [(StageDefinition, StrictMapping)] = []
        for node in stageNodes {
            let map = try node.mapping(allowedKeys: ["name", "kind", "depends_on", "params"])
            let nameNode = try map.required("name")
            let stageName = try nameNode.string()
            guard stageName.range(of: "^[A-Za-z0-9_-]+$", options: .regularExpression) != nil else {
                throw nameNode.error("stage name '\(stageName)' may use only letters, digits, '_' and '-'")
            }
            if parsed.contains(where: { $0.0.name == stageName }) {
                throw nameNode.error("duplicate stage name '\(stageName)'")
            }
            let kindNode = try map.required("kind")
            let kindName = try kindNode.string()
            guard let kind = registry.kinds[kindName] else {
                var reason = "unknown stage kind '\(kindName)' in '\(kindNode.keyPath)'"
                if let suggestion = closestMatch(to: kindName, among: Array(registry.kinds.keys)) {
                    reason += " (did you mean '\(suggestion)'?)"
                } else {
                    reason += " (known: \(registry.kinds.keys.sorted().joined(separator: ", ")))"
                }
                throw kindNode.error(reason)
            }
            let dependsOn = try map.optional("depends_on")?.stringList() ?? []
            let params = try parseParams(map.optional("params"), owner: node, kind: kind)
            parsed.append((StageDefinition(name: stageName, kind: kindName, dependsOn: dependsOn, params: params,
                                           file: display, line: node.line), map))
        }

        // Dependencies must name declared stages of an accepted kind; declaration order is
        // execution order, so a dependency must come earlier (this also rules out cycles).
        for (index, (stage, map)) in parsed.enumerated() {
            let kind = registry.kinds[stage.kind]!
            let dependsNode = map.optional("depends_on")
            let ownerNode = dependsNode ?? map.owner
            if kind.upstreamKinds.isEmpty, !stage.dependsOn.isEmpty {
                throw ownerNode.error("stage '\(stage.name)' of kind '\(stage.kind)' takes no upstream stage")
            }
            if !kind.upstreamKinds.isEmpty, stage.dependsOn.count != 1 {
                throw ownerNode.error("stage '\(stage.name)' of kind '\(stage.kind)' needs 'depends_on' naming one stage of kind \(kind.upstreamKinds.map { "'\($0)'" }.joined(separator: " or "))")
            }
            for dependency in stage.dependsOn {
                guard let position = parsed.firstIndex(where: { $0.0.name == dependency }) else {
                    var reason = "stage '\(stage.name)' depends on unknown stage '\(dependency)'"
                    if let suggestion = closestMatch(to: dependency, among: parsed.map(\.0.name)) { reason += " (did you mean '\(suggestion)'?)" }
                    throw ownerNode.error(reason)
                }
                guard position < index else {
                    throw ownerNode.error("stage '\(stage.name)' depends on '\(dependency)', which must be declared before it")
                }
                let upstreamKind = parsed[position].0.kind
                guard kind.upstreamKinds.contains(upstreamKind) else {
                    throw ownerNode.error("stage '\(stage.name)' of kind '\(stage.kind)' cannot take input from '\(dependency)' of kind '\(upstreamKind)'")
                }
            }
        }
        return PipelineDefinition(url: url, name: name, stages: parsed.map(\.0))
    }

    static func parseParams(_ node: StrictNode?, owner: StrictNode, kind: StageKind) throws -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        let map = try node?.mapping(allowedKeys: kind.params.map(\.name))
        for spec in kind.params {
            guard let valueNode = map?.optional(spec.name) else {
                guard let defaultValue = spec.defaultValue else {
                    let at = node ?? owner
                    throw ManifestError(file: at.file, line: at.line, column: at.column, keyPath: (node?.keyPath ?? owner.child("params")) + ".\(spec.name)",
                                        reason: "missing required param '\(spec.name)' for stage kind '\(kind.name)' (\(spec.help))")
                }
                values[spec.name] = defaultValue
                continue
            }
            if case .scalar = valueNode.node, valueNode.node.tagName == .null, spec.defaultValue == .null {
                values[spec.name] = .null
                continue
            }
            let bad = { valueNode.error("'\(valueNode.keyPath)' must be \(spec.type.expectation)") }
            switch spec.type {
            case let .int(range):
                let value: Int
                do { value = try valueNode.int() } catch { throw bad() }
                guard range.contains(value) else { throw bad() }
                values[spec.name] = .int(value)
            case let .double(range):
                let value: Double
                do { value = try valueNode.double() } catch { throw bad() }
                guard range.contains(value) else { throw bad() }
                values[spec.name] = .double(value)
            case let .string(allowed):
                let value: String
                do { value = try valueNode.string() } catch { throw bad() }
                if let allowed, !allowed.contains(value) {
                    var reason = "'\(valueNode.keyPath)' must be \(spec.type.expectation), got '\(value)'"
                    if let suggestion = closestMatch(to: value, among: allowed) { reason += " (did you mean '\(suggestion)'?)" }
                    throw valueNode.error(reason)
                }
                values[spec.name] = .string(value)
            case let .stringList(allowed):
                let list: [String]
                do { list = try valueNode.stringList() } catch { throw bad() }
                guard !list.isEmpty, Set(list).count == list.count else { throw bad() }
                if let allowed, let unknown = list.first(where: { !allowed.contains($0) }) {
                    var reason = "'\(valueNode.keyPath)' must be \(spec.type.expectation), got '\(unknown)'"
                    if let suggestion = closestMatch(to: unknown, among: allowed) { reason += " (did you mean '\(suggestion)'?)" }
                    throw valueNode.error(reason)
                }
                values[spec.name] = .array(list.map(JSONValue.string))
            case .numberMap:
                guard case let .mapping(mapping) = valueNode.node else { throw bad() }
                let names = mapping.keys.compactMap { key -> String? in if case let .scalar(scalar) = key { return scalar.string }; return nil }
                let map = try valueNode.mapping(allowedKeys: Array(names))
                var object: [String: JSONValue] = [:]
                for key in map.keys {
                    let entry = map.optional(key)!
                    do { object[key] = .double(try entry.double()) } catch { throw entry.error("'\(entry.keyPath)' must be a number") }
                }
                values[spec.name] = .object(object)
            case .bool:
                do { values[spec.name] = .bool(try valueNode.bool()) } catch { throw bad() }
            }
        }
        return values
    }
}
