// KdadMethods: knowledge-distillation students (forward STFPM-style, reverse RD4AD-style), their
// losses and anomaly maps, and the training loop. The interface is the one agreed with the pipeline
// stages in /work/briefs/distill-api.md.
import Foundation
import KdadTensor

/// Per-pixel distance between teacher and student feature vectors (METHODS.md).
public enum FeatureDistance: String, Codable, Sendable {
    /// `d_cos = 1 − ⟨t,s⟩ / (|t||s|)`
    case cosine
    /// `d_l2 = ½ |t/|t| − s/|s||²`
    case normalizedL2
}

/// What a method is: its kind, the teacher layers it distils, the distance and its knobs.
public struct MethodConfig: Codable, Hashable, Sendable {
    /// "forward" (STFPM-style) | "reverse" (RD4AD-style)
    public var kind: String
    /// Teacher features, shallow to deep, e.g. ["block07", "block10", "block14"].
    public var layers: [String]
    public var distance: FeatureDistance
    /// Method-specific knobs, documented per method in Docs/methods.md.
    public var options: [String: Double]

    public init(kind: String, layers: [String], distance: FeatureDistance = .cosine, options: [String: Double] = [:]) {
        self.kind = kind; self.layers = layers; self.distance = distance; self.options = options
    }
}

/// What a method sees for N images.
public struct DistillationBatch {
    /// [N, 3, H, W] teacher-normalised input; forward students read it.
    public var images: Tensor?
    /// Per configured layer, [N, C_l, h_l, w_l] (from the feature cache).
    public var teacherFeatures: [Tensor]

    public init(images: Tensor?, teacherFeatures: [Tensor]) {
        self.images = images; self.teacherFeatures = teacherFeatures
    }
}

/// A trainable student with its loss and per-layer distance maps.
public protocol DistillationMethod: AnyObject {
    var config: MethodConfig { get }
    /// Trainable tensors under stable names (checkpoints).
    var parameters: [(name: String, tensor: Tensor)] { get }
    /// Non-trainable state, e.g. BatchNorm running statistics.
    var buffers: [(name: String, tensor: Tensor)] { get }
    func setTraining(_ training: Bool)
    /// Scalar, differentiable with respect to `parameters`.
    func loss(_ batch: DistillationBatch) -> Tensor
    /// Per layer [N, 1, h_l, w_l]; call under `Tensor.noGrad`.
    func layerDistanceMaps(_ batch: DistillationBatch) -> [Tensor]
}

/// A configuration the methods cannot build.
public struct MethodError: Error, CustomStringConvertible, Equatable {
    public var kind: String
    public var reason: String
    public init(kind: String, reason: String) { self.kind = kind; self.reason = reason }
    public var description: String { "method '\(kind)': \(reason)" }
}

public enum Methods {
    /// The method kinds `make` builds.
    public static let kinds = ["forward", "reverse"]

    /// `teacherChannels[i]` is the channel count of `layers[i]`, `teacherStrides[i]` its stride
    /// relative to the input image; `seed` drives every random initialisation.
    public static func make(_ config: MethodConfig, teacherChannels: [Int], teacherStrides: [Int],
                            seed: UInt64) throws -> any DistillationMethod {
        let layout = try TeacherLayout(config: config, channels: teacherChannels, strides: teacherStrides)
        switch config.kind {
        case "forward": return try ForwardDistillation(config: config, teacher: layout, seed: seed)
        case "reverse": return try ReverseDistillation(config: config, teacher: layout, seed: seed)
        default:
            throw MethodError(kind: config.kind, reason: "unknown method kind; known: \(kinds.joined(separator: ", "))")
        }
    }
}

/// The teacher layers a student must reproduce, validated once.
struct TeacherLayout: Sendable {
    var names: [String]
    var channels: [Int]
    var strides: [Int]
    var count: Int { names.count }

    init(config: MethodConfig, channels: [Int], strides: [Int]) throws {
        let fail = { (reason: String) in MethodError(kind: config.kind, reason: reason) }
        guard !config.layers.isEmpty else { throw fail("no teacher layers configured") }
        guard channels.count == config.layers.count, strides.count == config.layers.count else {
            throw fail("\(config.layers.count) layers but \(channels.count) channel counts and \(strides.count) strides")
        }
        guard Set(config.layers).count == config.layers.count else { throw fail("duplicate layers in \(config.layers)") }
        for (i, name) in config.layers.enumerated() {
            guard channels[i] > 0 else { throw fail("layer \(name) has \(channels[i]) channels") }
            guard strides[i] >= 2, strides[i] & (strides[i] - 1) == 0 else {
                throw fail("layer \(name) has stride \(strides[i]); strides must be powers of two ≥ 2")
            }
            if i > 0, strides[i] < strides[i - 1] {
                throw fail("layers must go from shallow to deep (non-decreasing strides), got \(zip(config.layers, strides).map { "\($0):\($1)" })")
            }
        }
        names = config.layers; self.channels = channels; self.strides = strides
    }
}

/// Reads method options with defaults and range checks.
struct MethodOptions {
    let config: MethodConfig
    let known: Set<String>

    init(_ config: MethodConfig, known: [String]) throws {
        self.config = config
        self.known = Set(known)
        let unknown = config.options.keys.filter { !self.known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw MethodError(kind: config.kind, reason: "unknown option(s) \(unknown.joined(separator: ", ")); known: \(known.sorted().joined(separator: ", "))")
        }
    }

    func integer(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = config.options[key] else { return value }
        guard raw.rounded() == raw, raw >= Double(range.lowerBound), raw <= Double(range.upperBound) else {
            throw MethodError(kind: config.kind, reason: "option \(key) = \(raw) must be an integer in \(range)")
        }
        return Int(raw)
    }

    func real(_ key: String, default value: Double, range: ClosedRange<Double>) throws -> Double {
        guard let raw = config.options[key] else { return value }
        guard raw.isFinite, range.contains(raw) else {
            throw MethodError(kind: config.kind, reason: "option \(key) = \(raw) must be in \(range)")
        }
        return raw
    }
}
