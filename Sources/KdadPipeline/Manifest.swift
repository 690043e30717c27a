import Foundation

/// One source of images: a folder or an archive, possibly several matched by a glob in `path`.
public struct InputRoot: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable { case folder, tar, tarZstd, zip }

    public struct Location: Sendable, Equatable {
        public let url: URL
        public let kind: Kind
        /// Prefix for the image keys of this location (`name/` or, for a globbed path, the matched name).
        public let keyPrefix: String
    }

    /// As written in the manifest (for messages).
    public let path: String
    public let locations: [Location]
    public let include: [GlobPattern]
    public let exclude: [GlobPattern]

    static func kind(of url: URL) -> Kind? {
        let name = url.lastPathComponent.lowercased()
        if name.hasSuffix(".tar") { return .tar }
        if name.hasSuffix(".tar.zst") || name.hasSuffix(".tzst") { return .tarZstd }
        if name.hasSuffix(".zip") { return .zip }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue { return .folder }
        return nil
    }

    /// Name without archive extension, used as a key prefix when a glob picks several roots.
    static func stem(of url: URL) -> String {
        var name = url.lastPathComponent
        for ext in [".tar.zst", ".tzst", ".tar", ".zip"] where name.lowercased().hasSuffix(ext) {
            name.removeLast(ext.count)
            break
        }
        return name
    }
}

/// How an image's production lot is derived from its key (relative path).
public enum LotRule: Sendable, Equatable {
    /// The path component at this index (negative counts from the end: -1 is the file name).
    case component(Int)
    /// The first capture group of this regex, searched in the key.
    case regex(CompiledRegexBox)

    public func lot(forKey key: String) -> String? {
        switch self {
        case let .component(index):
            let parts = key.split(separator: "/").map(String.init)
            let resolved = index >= 0 ? index : parts.count + index
            guard resolved >= 0, resolved < parts.count else { return nil }
            return parts[resolved]
        case let .regex(box):
            guard let groups = box.regex.firstMatch(in: key), groups.count > 1, let lot = groups[1], !lot.isEmpty else { return nil }
            return lot
        }
    }

    var canonical: JSONValue {
        switch self {
        case let .component(index): return .object(["component": .int(index)])
        case let .regex(box): return .object(["regex": .string(box.regex.pattern)])
        }
    }
}

/// Equatable wrapper for a compiled regex (compared by pattern).
public struct CompiledRegexBox: Sendable, Equatable {
    public let regex: CompiledRegex
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.regex.pattern == rhs.regex.pattern }
}

/// Where labels (good/defect), splits and masks come from.
public enum LabelSource: Sendable, Equatable {
    /// A CSV with header `image,split,label,defect_type,mask,lot` (columns beyond `image` optional);
    /// `image` and `mask` are keys, i.e. paths relative to the input root.
    case csv(URL)
    /// Folder conventions: keys matching `good` globs are defect-free, those matching `defect` are
    /// defective (defect type = the parent folder name); anything else is unlabeled.
    case folders(good: [GlobPattern], defect: [GlobPattern])
}

/// Which images play a role (train, val, score): by split name from the labels, or by glob on keys.
public enum ImageSelection: Sendable, Equatable {
    case splits([String])
    case globs([GlobPattern])

    public func contains(key: String, split: String?) -> Bool {
        switch self {
        case let .splits(names): return split.map(names.contains) ?? false
        case let .globs(patterns): return patterns.contains { $0.matches(key) }
        }
    }

    var canonical: JSONValue {
        switch self {
        case let .splits(names): return .object(["split": .array(names.map(JSONValue.string))])
        case let .globs(patterns): return .object(["glob": .array(patterns.map { .string($0.pattern) })])
        }
    }
}

/// A job: which images, how they are labeled and split, where the work goes, which pipeline runs.
public struct JobManifest: Sendable {
    public let url: URL
    /// How the manifest file is named in messages.
    public let displayName: String
    public let name: String
    public let pipelineURL: URL
    public let workDirectory: URL
    public let seed: UInt64
    public let inputs: [InputRoot]
    public let lotRule: LotRule
    public let labels: LabelSource?
    public let train: ImageSelection
    public let val: ImageSelection?
    public let score: ImageSelection

    static let jobKeys = ["name", "pipeline", "work_dir", "seed", "inputs", "lots", "labels", "train", "val", "score"]

    /// Loads and validates a manifest; every problem is a `ManifestError` with file, line and key path.
    public static func load(contentsOf url: URL, displayName: String? = nil) throws -> JobManifest {
        let display = displayName ?? url.path
        let root = try StrictNode.load(contentsOf: url, displayName: display)
        let top = try root.mapping(allowedKeys: ["job"])
        let jobNode = try top.required("job")
        let job = try jobNode.mapping(allowedKeys: jobKeys)
        let base = url.deletingLastPathComponent()

        let name = try job.required("name").string()
        let pipelineNode = try job.required("pipeline")
        let pipelineURL = try existingFile(pipelineNode, base: base)
        let workDirectory = resolve(try job.required("work_dir").string(), base: base)
        var seed: UInt64 = 0
        if let seedNode = job.optional("seed") {
            let value = try seedNode.int()
            guard value >= 0 else { throw seedNode.error("'\(seedNode.keyPath)' must be a non-negative integer") }
            seed = UInt64(value)
        }

        let inputsNode = try job.required("inputs")
        let inputNodes = try inputsNode.sequence()
        guard !inputNodes.isEmpty else { throw inputsNode.error("'\(inputsNode.keyPath)' must list at least one input") }
        let inputs = try inputNodes.map { try parseInput($0, base: base) }

        let lotRule = try parseLotRule(try job.required("lots"))
        let labels = try job.optional("labels").map { try parseLabels($0, base: base) }
        let train = try parseSelection(try job.required("train"), labels: labels)
        let val = try job.optional("val").map { try parseSelection($0, labels: labels) }
        let score = try parseSelection(try job.required("score"), labels: labels)

        return JobManifest(url: url, displayName: display, name: name, pipelineURL: pipelineURL,
                           workDirectory: workDirectory, seed: seed, inputs: inputs, lotRule: lotRule,
                           labels: labels, train: train, val: val, score: score)
    }

    static func resolve(_ path: String, base: URL) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        let url = expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded) : base.appendingPathComponent(expanded)
        return url.standardizedFileURL
    }

    static func existingFile(_ node: StrictNode, base: URL) throws -> URL {
        let path = try node.string()
        let url = resolve(path, base: base)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw node.error("file not found for '\(node.keyPath)': \(path) (resolved to \(url.path))")
        }
        return url
    }

    static func parseInput(_ node: StrictNode, base: URL) throws -> InputRoot {
        let map = try node.mapping(allowedKeys: ["path", "name", "include", "exclude"])
        let pathNode = try map.required("path")
        let path = try pathNode.string()
        let name = try map.optional("name")?.string()
        let include = try globs(map.optional("include")) ?? [try GlobPattern("**")]
        let exclude = try globs(map.optional("exclude")) ?? []

        var locations: [InputRoot.Location] = []
        let resolved = resolve(path, base: base)
        if GlobPattern.containsMagic(resolved.lastPathComponent) {
            // A glob in the last component: every matching folder/archive is a root, keyed by its name.
            let directory = resolved.deletingLastPathComponent()
            let pattern = try glob(resolved.lastPathComponent, node: pathNode)
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
            for entry in names where pattern.matches(entry) {
                let url = directory.appendingPathComponent(entry)
                guard let kind = InputRoot.kind(of: url) else { continue }
                let prefix = [name, InputRoot.stem(of: url)].compactMap { $0 }.joined(separator: "/")
                locations.append(.init(url: url, kind: kind, keyPrefix: prefix))
            }
            guard !locations.isEmpty else {
                throw pathNode.error("no folder or archive matches '\(pathNode.keyPath)': \(path) (in \(directory.path))")
            }
        } else {
            guard FileManager.default.fileExists(atPath: resolved.path) else {
                throw pathNode.error("file not found for '\(pathNode.keyPath)': \(path) (resolved to \(resolved.path))")
            }
            guard let kind = InputRoot.kind(of: resolved) else {
                throw pathNode.error("'\(pathNode.keyPath)' must be a folder or a .tar, .tar.zst or .zip archive: \(path)")
            }
            locations.append(.init(url: resolved, kind: kind, keyPrefix: name ?? ""))
        }
        return InputRoot(path: path, locations: locations, include: include, exclude: exclude)
    }

    static func glob(_ text: String, node: StrictNode) throws -> GlobPattern {
        do { return try GlobPattern(text) } catch {
            throw node.error("invalid glob pattern in '\(node.keyPath)': \(text)")
        }
    }

    static func globs(_ node: StrictNode?) throws -> [GlobPattern]? {
        guard let node else { return nil }
        return try node.stringList().map { try glob($0, node: node) }
    }

    static func parseLotRule(_ node: StrictNode) throws -> LotRule {
        let map = try node.mapping(allowedKeys: ["component", "regex"])
        switch (map.optional("component"), map.optional("regex")) {
        case let (component?, nil):
            return .component(try component.int())
        case let (nil, regexNode?):
            let pattern = try regexNode.string()
            let regex: CompiledRegex
            do { regex = try CompiledRegex(pattern) } catch {
                throw regexNode.error("invalid regular expression in '\(regexNode.keyPath)': \(pattern)")
            }
            guard regex.regex.numberOfCaptureGroups >= 1 else {
                throw regexNode.error("'\(regexNode.keyPath)' needs a capture group, e.g. '(exp[0-9]+)_'")
            }
            return .regex(CompiledRegexBox(regex: regex))
        case (nil, nil):
            throw node.error("'\(node.keyPath)' needs one of 'component' or 'regex'")
        case (_?, _?):
            throw node.error("'\(node.keyPath)' takes only one of 'component' or 'regex'")
        }
    }

    static func parseLabels(_ node: StrictNode, base: URL) throws -> LabelSource {
        let map = try node.mapping(allowedKeys: ["csv", "good", "defect"])
        if let csv = map.optional("csv") {
            if map.optional("good") != nil || map.optional("defect") != nil {
                throw node.error("'\(node.keyPath)' takes either 'csv' or folder globs ('good', 'defect'), not both")
            }
            return .csv(try existingFile(csv, base: base))
        }
        guard let good = try globs(map.optional("good")) else {
            throw node.error("'\(node.keyPath)' needs 'csv' or a 'good' glob list")
        }
        return .folders(good: good, defect: try globs(map.optional("defect")) ?? [])
    }

    static func parseSelection(_ node: StrictNode, labels: LabelSource?) throws -> ImageSelection {
        let map = try node.mapping(allowedKeys: ["split", "glob"])
        switch (map.optional("split"), map.optional("glob")) {
        case let (split?, nil):
            guard case .csv = labels else {
                throw split.error("'\(split.keyPath)' selects by split, which needs 'labels.csv' in the job")
            }
            return .splits(try split.stringList())
        case let (nil, globNode?):
            return .globs(try globs(globNode) ?? [])
        case (nil, nil):
            throw node.error("'\(node.keyPath)' needs one of 'split' or 'glob'")
        case (_?, _?):
            throw node.error("'\(node.keyPath)' takes only one of 'split' or 'glob'")
        }
    }

    /// The manifest settings that determine what ingest produces (part of its cache key). The seed
    /// is not among them: ingest draws no random numbers, so a new seed must not redo it.
    public var ingestSettings: JSONValue {
        var labelsValue: JSONValue = .null
        switch labels {
        case .csv: labelsValue = .string("csv")
        case let .folders(good, defect):
            labelsValue = .object(["good": .array(good.map { .string($0.pattern) }), "defect": .array(defect.map { .string($0.pattern) })])
        case nil: break
        }
        return .object([
            "inputs": .array(inputs.map { input in
                .object(["include": .array(input.include.map { .string($0.pattern) }),
                         "exclude": .array(input.exclude.map { .string($0.pattern) }),
                         "prefixes": .array(input.locations.map { .string($0.keyPrefix) }),
                         "paths": .array(input.locations.map { .string($0.url.path) })])
            }),
            "lots": lotRule.canonical,
            "labels": labelsValue,
            "train": train.canonical,
            "val": val?.canonical ?? .null,
            "score": score.canonical,
        ])
    }
}

extension InputRoot {
    /// Whether a location-relative path passes this input's include and exclude globs.
    func selects(_ relativePath: String) -> Bool {
        include.contains { $0.matches(relativePath) } && !exclude.contains { $0.matches(relativePath) }
    }
}
