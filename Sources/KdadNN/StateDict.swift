import Foundation
import KdadTensor
import KdadWeights

/// One named tensor of a model's state dict, under the checkpoint's own key.
public struct StateEntry: @unchecked Sendable {
    public enum Kind: Sendable, Equatable {
        /// Learned (counted by `parameterCount`, as PyTorch's `model.parameters()`).
        case parameter
        /// Float buffer such as BatchNorm running statistics (in the state dict, not counted).
        case buffer
    }
    public var name: String
    public var tensor: Tensor
    public var kind: Kind
    public init(_ name: String, _ tensor: Tensor, _ kind: Kind) {
        self.name = name
        self.tensor = tensor
        self.kind = kind
    }
}

/// Why a state dict could not be loaded into a model, naming the file and the keys involved.
public struct ModelWeightsError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Reason: Sendable, Equatable {
        /// The model needs these keys and the file does not have them.
        case missingKeys([String])
        /// The file has these keys and the model has no place for them.
        case unexpectedKeys([String])
        case shapeMismatch(key: String, expected: [Int], found: [Int])
        /// The tensor is present but its values cannot be read as floats (dtype, truncated data).
        case unreadable(key: String, reason: String)
        /// The file could not be read at all.
        case file(String)
    }
    public var source: String
    public var model: String
    public var reason: Reason

    public init(source: String, model: String, reason: Reason) {
        self.source = source
        self.model = model
        self.reason = reason
    }

    public var description: String {
        func list(_ keys: [String]) -> String {
            let shown = keys.prefix(8).joined(separator: ", ")
            return keys.count > 8 ? "\(shown), … (\(keys.count) in all)" : shown
        }
        switch reason {
        case .missingKeys(let keys):
            return "\(source): \(model) needs \(keys.count) key(s) the file lacks: \(list(keys))"
        case .unexpectedKeys(let keys):
            return "\(source): \(keys.count) key(s) in the file do not belong to \(model): \(list(keys))"
        case .shapeMismatch(let key, let expected, let found):
            return "\(source): \(key) has shape \(found), \(model) expects \(expected)"
        case .unreadable(let key, let why):
            return "\(source): \(key) cannot be read: \(why)"
        case .file(let why):
            return "\(source): \(why)"
        }
    }
}

/// Loading, saving and counting for a model described by its ordered state entries.
public protocol StateDictModel: AnyObject {
    /// A short name for messages ("efficientnet-lite0", "resnet18").
    var modelName: String { get }
    /// Every parameter and float buffer under its checkpoint key, in state-dict order.
    var stateEntries: [StateEntry] { get }
    /// Called after new values were loaded (drops derived data such as folded weights).
    func stateDidChange()
}

extension StateDictModel {
    /// Learned parameters (BatchNorm running statistics and counters excluded), as `sum(p.numel() for p in model.parameters())`.
    public var parameterCount: Int {
        stateEntries.reduce(0) { $0 + ($1.kind == .parameter ? $1.tensor.count : 0) }
    }

    /// Loads every entry from `tensors` (keys after removing `prefix`; tensors without the prefix are
    /// ignored). BatchNorm `num_batches_tracked` counters are accepted and ignored (they do not affect
    /// evaluation). Any missing key, unexpected key or shape mismatch is an error and leaves the model unchanged.
    public func load(_ tensors: [WeightTensor], prefix: String = "", source: String) throws(ModelWeightsError) {
        var byName: [String: WeightTensor] = [:]
        for t in tensors where t.name.hasPrefix(prefix) {
            byName[String(t.name.dropFirst(prefix.count))] = t
        }
        let entries = stateEntries
        let expected = Set(entries.map(\.name))
        let missing = entries.map(\.name).filter { byName[$0] == nil }
        if !missing.isEmpty { throw ModelWeightsError(source: source, model: modelName, reason: .missingKeys(missing)) }
        let unexpected = byName.keys.filter { !expected.contains($0) && !$0.hasSuffix("num_batches_tracked") }.sorted()
        if !unexpected.isEmpty { throw ModelWeightsError(source: source, model: modelName, reason: .unexpectedKeys(unexpected)) }
        // Validate and convert everything before writing anything.
        var values: [[Float]] = []
        values.reserveCapacity(entries.count)
        for entry in entries {
            let stored = byName[entry.name]!
            // A 0-d/1-element tensor and [1] are not interchangeable in PyTorch either: compare shapes exactly.
            guard stored.shape == entry.tensor.shape else {
                throw ModelWeightsError(source: source, model: modelName,
                                        reason: .shapeMismatch(key: entry.name, expected: entry.tensor.shape, found: stored.shape))
            }
            do { values.append(try stored.floats()) } catch {
                throw ModelWeightsError(source: source, model: modelName, reason: .unreadable(key: entry.name, reason: "\(error)"))
            }
        }
        for (entry, v) in zip(entries, values) { entry.tensor.assign(v) }
        stateDidChange()
    }

    /// Reads a safetensors or PyTorch file (format detected from its bytes) and loads it.
    public func load(contentsOf url: URL, prefix: String = "") throws(ModelWeightsError) {
        let loaded: LoadedWeights
        do { loaded = try WeightFiles.read(contentsOf: url) } catch {
            throw ModelWeightsError(source: url.path, model: modelName, reason: .file("\(error)"))
        }
        try load(loaded.tensors, prefix: prefix, source: url.path)
    }

    /// The state dict as float32 weight tensors, in state-dict order, with a zero int64
    /// `num_batches_tracked` after each BatchNorm's running variance so PyTorch's strict
    /// `load_state_dict` accepts the file.
    public func stateDict() -> [WeightTensor] {
        var out: [WeightTensor] = []
        for entry in stateEntries {
            out.append(WeightTensor(name: entry.name, shape: entry.tensor.shape, floats: entry.tensor.scalars))
            if entry.kind == .buffer, entry.name.hasSuffix(".running_var") || entry.name == "running_var" {
                let base = String(entry.name.dropLast("running_var".count))
                out.append(WeightTensor(name: base + "num_batches_tracked", dtype: .int64, shape: [],
                                        data: Data(count: 8)))
            }
        }
        return out
    }

    /// Writes the state dict as safetensors.
    public func writeSafeTensors(to url: URL, metadata: [String: String] = [:]) throws {
        try SafeTensors.write(stateDict(), metadata: metadata, to: url)
    }
}
