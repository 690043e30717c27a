import Foundation
import KdadWeights

/// Saves and restores training state in one safetensors file: parameters as `param.<name>`,
/// non-trainable buffers (BatchNorm running statistics) as `buffer.<name>`, optimiser moments
/// as `optim.<kind>.<name>` and the optimiser step in the metadata.
public enum Checkpoint {
    public static func save(parameters: [NamedParameter], buffers: [NamedParameter] = [], optimizer: (any Optimizer)? = nil,
                            metadata: [String: String] = [:], to url: URL) throws {
        var tensors = parameters.map { WeightTensor(name: "param.\($0.name)", shape: $0.tensor.shape, floats: $0.tensor.scalars) }
        tensors += buffers.map { WeightTensor(name: "buffer.\($0.name)", shape: $0.tensor.shape, floats: $0.tensor.scalars) }
        var allMetadata = metadata
        if let optimizer {
            tensors += optimizer.stateTensors(prefix: "optim.")
            allMetadata.merge(optimizer.stateMetadata) { _, new in new }
        }
        try SafeTensors.write(tensors, metadata: allMetadata, to: url)
    }

    /// Overwrites the given parameters, buffers and optimiser state in place from `url`; returns
    /// the file's metadata. Every parameter and buffer must be present with its shape.
    @discardableResult
    public static func load(from url: URL, parameters: [NamedParameter], buffers: [NamedParameter] = [],
                            optimizer: (any Optimizer)? = nil) throws -> [String: String] {
        let file = try SafeTensors.read(contentsOf: url)
        func restore(_ p: NamedParameter, key: String) throws {
            guard let stored = file[key] else { throw TensorError(url.path, "checkpoint has no tensor \(key)") }
            guard stored.shape == p.tensor.shape else {
                throw TensorError(url.path, "\(key) has shape \(stored.shape), expected \(p.tensor.shape)")
            }
            p.tensor.assign(try stored.floats())
        }
        for p in parameters { try restore(p, key: "param.\(p.name)") }
        for b in buffers { try restore(b, key: "buffer.\(b.name)") }
        if let optimizer {
            if let kind = file.metadata["optim.kind"], kind != optimizer.stateMetadata["optim.kind"] {
                throw TensorError(url.path, "checkpoint holds \(kind) optimiser state, not \(optimizer.stateMetadata["optim.kind"] ?? "?")")
            }
            do { try optimizer.loadState(file, prefix: "optim.") } catch let error as TensorError {
                throw TensorError(url.path, error.description)
            }
        }
        return file.metadata
    }
}
