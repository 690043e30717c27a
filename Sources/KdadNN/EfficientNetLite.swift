import Foundation
import KdadTensor
import KdadWeights

/// The EfficientNet-Lite variants with published ImageNet weights kdad uses as teachers.
public enum EfficientNetLiteVariant: String, Sendable, CaseIterable {
    case lite0, lite1, lite2

    /// (width, depth) multipliers of the TF Lite builder.
    public var coefficients: (width: Double, depth: Double) {
        switch self {
        case .lite0: return (1.0, 1.0)
        case .lite1: return (1.0, 1.1)
        case .lite2: return (1.1, 1.2)
        }
    }

    /// The weight-cache identifier (`WeightCache.url(for:)`).
    public var cacheName: String { "efficientnet-\(rawValue)" }
}

/// One MBConv block's shape: the architecture, derived from the variant.
public struct MBConvSpec: Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var expandRatio: Int
    public var kernel: Int
    public var stride: Int
    /// Index of the stage (0...6) the block belongs to.
    public var stage: Int

    public var expandedChannels: Int { inChannels * expandRatio }
    /// Identity shortcut: stride 1 and equal channels (every Lite block has id_skip).
    public var hasResidual: Bool { stride == 1 && inChannels == outChannels }
}

/// The EfficientNet-Lite architecture (TF `efficientnet_lite_builder`): ReLU6, no squeeze-excitation,
/// BN ε 1e-3, TF-SAME padding, stem (32) and head (1280) channels fixed, and the first and last
/// stages' repeat counts fixed while the others scale with the depth multiplier.
public struct EfficientNetLiteArchitecture: Sendable, Equatable {
    public static let stemChannels = 32
    public static let headChannels = 1280
    public static let batchNormEps: Float = 1e-3
    /// (repeats, kernel, stride, expand, in, out) of the seven Lite0 stages.
    static let baseStages: [(repeats: Int, kernel: Int, stride: Int, expand: Int, inC: Int, outC: Int)] = [
        (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320),
    ]

    public var variant: EfficientNetLiteVariant
    public var blocks: [MBConvSpec]
    public var numClasses: Int

    public init(variant: EfficientNetLiteVariant, numClasses: Int = 1000) {
        self.variant = variant
        self.numClasses = numClasses
        let (width, depth) = variant.coefficients
        // TF round_filters: nearest multiple of 8, never more than 10 % below the scaled value.
        func roundFilters(_ f: Int) -> Int {
            let scaled = Double(f) * width
            var rounded = max(8, Int(scaled + 4) / 8 * 8)
            if Double(rounded) < 0.9 * scaled { rounded += 8 }
            return rounded
        }
        var blocks: [MBConvSpec] = []
        let last = Self.baseStages.count - 1
        for (i, stage) in Self.baseStages.enumerated() {
            let fixed = i == 0 || i == last
            let repeats = fixed ? stage.repeats : Int((depth * Double(stage.repeats)).rounded(.up))
            // The first stage's input is the (unscaled) stem.
            var inC = i == 0 ? Self.stemChannels : roundFilters(stage.inC)
            let outC = roundFilters(stage.outC)
            for r in 0..<repeats {
                blocks.append(MBConvSpec(inChannels: inC, outChannels: outC, expandRatio: stage.expand,
                                         kernel: stage.kernel, stride: r == 0 ? stage.stride : 1, stage: i))
                inC = outC
            }
        }
        self.blocks = blocks
    }

    /// Cumulative stride after each block (2 after the stem).
    public var blockStrides: [Int] {
        var s = 2
        return blocks.map { s *= $0.stride; return s }
    }
}

/// A feature a forward pass can return.
public enum LiteFeature: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// ReLU6(BN(stem conv)), stride 2.
    case stem
    /// The output of MBConv block `i` (0-based, `block00`…).
    case block(Int)
    /// ReLU6(BN(1×1 head conv)), 1280 channels.
    case head
    /// Classifier output.
    case logits

    /// Order in the network.
    var depth: Int {
        switch self {
        case .stem: return -1
        case .block(let i): return i
        case .head: return 1_000_000
        case .logits: return 1_000_001
        }
    }
    public static func < (a: LiteFeature, b: LiteFeature) -> Bool { a.depth < b.depth }

    /// The golden files' names: `stem`, `block07`, `head`, `logits`.
    public var description: String {
        switch self {
        case .stem: return "stem"
        case .block(let i): return String(format: "block%02d", i)
        case .head: return "head"
        case .logits: return "logits"
        }
    }

    /// Parses `stem`, `blockNN` (or `block7`), `head`, `logits`.
    public init?(name: String) {
        switch name {
        case "stem": self = .stem
        case "head": self = .head
        case "logits": self = .logits
        default:
            guard name.hasPrefix("block"), let i = Int(name.dropFirst(5)), i >= 0 else { return nil }
            self = .block(i)
        }
    }
}

/// An inverted-residual block: optional 1×1 expansion, k×k depthwise (stride s), 1×1 projection
/// without activation, and the identity shortcut when shapes allow.
public final class MBConvBlock: @unchecked Sendable {
    public let spec: MBConvSpec
    public let expand: ConvBNActivation?
    public let depthwise: ConvBNActivation
    public let project: ConvBNActivation

    init(spec: MBConvSpec) {
        self.spec = spec
        let eps = EfficientNetLiteArchitecture.batchNormEps
        let mid = spec.expandedChannels
        expand = spec.expandRatio == 1 ? nil : ConvBNActivation(
            conv: Conv2dLayer(inChannels: spec.inChannels, outChannels: mid, kernel: 1, padding: .tfSame),
            norm: BatchNormLayer(channels: mid, eps: eps), activation: .relu6)
        depthwise = ConvBNActivation(
            conv: Conv2dLayer(inChannels: mid, outChannels: mid, kernel: spec.kernel, stride: spec.stride,
                              padding: .tfSame, groups: mid),
            norm: BatchNormLayer(channels: mid, eps: eps), activation: .relu6)
        project = ConvBNActivation(
            conv: Conv2dLayer(inChannels: mid, outChannels: spec.outChannels, kernel: 1, padding: .tfSame),
            norm: BatchNormLayer(channels: spec.outChannels, eps: eps), activation: .identity)
    }

    var units: [ConvBNActivation] { (expand.map { [$0] } ?? []) + [depthwise, project] }

    func forward(_ x: Tensor, fused: Bool, profiler: OpProfiler? = nil) -> Tensor {
        var h = x
        if let expand { h = expand.forward(h, fused: fused, profiler: profiler) }
        h = depthwise.forward(h, fused: fused, profiler: profiler)
        if fused { return project.fused(h, residual: spec.hasResidual ? x : nil, profiler: profiler) }
        let y = project.reference(h)
        return spec.hasResidual ? y + x : y
    }

    func entries(_ prefix: String) -> [StateEntry] {
        (expand.map { $0.entries(conv: prefix + "_expand_conv.", norm: prefix + "_bn0.") } ?? [])
            + depthwise.entries(conv: prefix + "_depthwise_conv.", norm: prefix + "_bn1.")
            + project.entries(conv: prefix + "_project_conv.", norm: prefix + "_bn2.")
    }
}

/// EfficientNet-Lite0/1/2 with the parameter names of the PyTorch port (`_conv_stem`, `_bn0`,
/// `_blocks.N._expand_conv`, …, `_conv_head`, `_bn1`, `_fc`), so the published `.pth` files load as they are.
///
/// A class: the weights are large and shared by reference; `fuseForInference()` mutates derived state.
/// Not safe to load or fuse while another thread runs a forward pass.
public final class EfficientNetLite: StateDictModel, @unchecked Sendable {
    public let architecture: EfficientNetLiteArchitecture
    public let stem: ConvBNActivation
    public let blocks: [MBConvBlock]
    public let head: ConvBNActivation
    public let classifier: LinearLayer
    public private(set) var isFused = false

    /// A network with placeholder weights (zeros, BN identity); load real ones with `load`.
    public init(variant: EfficientNetLiteVariant, numClasses: Int = 1000) {
        architecture = EfficientNetLiteArchitecture(variant: variant, numClasses: numClasses)
        let eps = EfficientNetLiteArchitecture.batchNormEps
        let stemC = EfficientNetLiteArchitecture.stemChannels, headC = EfficientNetLiteArchitecture.headChannels
        stem = ConvBNActivation(conv: Conv2dLayer(inChannels: 3, outChannels: stemC, kernel: 3, stride: 2, padding: .tfSame),
                                norm: BatchNormLayer(channels: stemC, eps: eps), activation: .relu6)
        blocks = architecture.blocks.map(MBConvBlock.init(spec:))
        head = ConvBNActivation(conv: Conv2dLayer(inChannels: architecture.blocks.last!.outChannels, outChannels: headC,
                                                  kernel: 1, padding: .tfSame),
                                norm: BatchNormLayer(channels: headC, eps: eps), activation: .relu6)
        classifier = LinearLayer(inFeatures: headC, outFeatures: numClasses)
    }

    /// The network with weights read from `url` (safetensors or the published `.pth`).
    public convenience init(variant: EfficientNetLiteVariant, weightsAt url: URL) throws(ModelWeightsError) {
        self.init(variant: variant)
        try load(contentsOf: url)
    }

    /// The ImageNet network from kdad's weight cache (`scripts/fetch-weights.sh liteN` fills it).
    public static func pretrained(_ variant: EfficientNetLiteVariant) throws -> EfficientNetLite {
        try EfficientNetLite(variant: variant, weightsAt: WeightCache.url(for: variant.cacheName))
    }

    public var modelName: String { architecture.variant.cacheName }

    public var stateEntries: [StateEntry] {
        var e = stem.entries(conv: "_conv_stem.", norm: "_bn0.")
        for (i, b) in blocks.enumerated() { e += b.entries("_blocks.\(i).") }
        return e + head.entries(conv: "_conv_head.", norm: "_bn1.") + classifier.entries("_fc.")
    }

    public func stateDidChange() {
        allUnits.forEach { $0.dropFolded() }
        isFused = false
    }

    var allUnits: [ConvBNActivation] { [stem] + blocks.flatMap(\.units) + [head] }

    /// Precomputes BN-folded convolution weights; forward passes then use them unless told otherwise.
    public func fuseForInference() {
        allUnits.forEach { $0.fuse() }
        isFused = true
    }

    /// Maps 8-bit RGB values to the network's input range: (x/255 - 0.5)/0.5.
    public static func normalize(_ rgb0to1: Tensor) -> Tensor { rgb0to1.affine(scale: 2, shift: -1) }

    /// Runs the network on a normalised NCHW batch and returns the requested features. Stops after
    /// the deepest requested feature (asking only for `.block(7)` runs the stem and blocks 0…7).
    /// `fused` selects the BN-folded path (default: whenever `fuseForInference()` ran), which always runs
    /// without recording a graph; the reference path records one when gradients are enabled.
    /// `profiler` (fused path only) accumulates the time of every operation by kind.
    public func forward(_ input: Tensor, features: Set<LiteFeature>, fused: Bool? = nil,
                        profiler: OpProfiler? = nil) -> [LiteFeature: Tensor] {
        precondition(input.rank == 4 && input.shape[1] == 3, "EfficientNetLite.forward: input \(input.shape) is not N×3×H×W")
        let useFused = fused ?? isFused
        precondition(!useFused || isFused, "EfficientNetLite.forward(fused: true) before fuseForInference()")
        // The fused path is inference-only: record no graph even if the caller forgot `Tensor.noGrad`.
        if useFused && Tensor.isGradEnabled {
            return Tensor.noGrad { forward(input, features: features, fused: true, profiler: profiler) }
        }
        for f in features {
            if case .block(let i) = f { precondition(i < blocks.count, "\(modelName) has \(blocks.count) blocks, asked for \(f)") }
        }
        guard features.max() != nil else { return [:] }
        let n = input.shape[0]
        // The fused path runs a few images at a time so a block's activations stay in the last-level
        // cache between its convolutions instead of streaming the whole batch through memory.
        let workers = min(TensorRuntime.threadCount, n)
        if useFused && imageParallel && workers > 1 && profiler == nil {
            // One image per worker at a time, each worker single-threaded: no fork/join per layer, and
            // each image's activations stay in cache.
            let results = UnsafeMutablePointer<[LiteFeature: Tensor]>.allocate(capacity: n)
            results.initialize(repeating: [:], count: n)
            defer { results.deinitialize(count: n); results.deallocate() }
            let box = UncheckedBox(value: results)
            InferenceThreading.imageParallel(workers: workers) { worker in
                for image in stride(from: worker, to: n, by: workers) {
                    let slice = input.slice(axis: 0, image..<(image + 1))
                    box.value[image] = Tensor.noGrad {
                        self.forwardWhole(slice, features: features, fused: true, profiler: nil, poolOnly: true)
                    }
                }
            }
            var out: [LiteFeature: Tensor] = [:]
            for f in features { out[f] = Tensor.concat((0..<n).map { results[$0][f]! }, axis: 0) }
            if let pooled = out[.logits] { out[.logits] = classifier(pooled) }
            return out
        }
        if useFused && n > microBatch {
            var parts: [[LiteFeature: Tensor]] = []
            for start in stride(from: 0, to: n, by: microBatch) {
                let slice = input.slice(axis: 0, start..<min(start + microBatch, n))
                parts.append(forwardWhole(slice, features: features, fused: true, profiler: profiler, poolOnly: true))
            }
            var out: [LiteFeature: Tensor] = [:]
            for f in features { out[f] = Tensor.concat(parts.map { $0[f]! }, axis: 0) }
            if let pooled = out[.logits] { out[.logits] = profiler?.measure("fc") { classifier(pooled) } ?? classifier(pooled) }
            return out
        }
        return forwardWhole(input, features: features, fused: useFused, profiler: profiler)
    }

    /// Images per fused-path sub-batch when not image-parallel (see `forward`).
    public var microBatch = 1
    /// Fused path with several threads: run whole images concurrently, one per thread (see
    /// `InferenceThreading.imageParallel` for the effect on OpenBLAS) instead of splitting each layer.
    public var imageParallel = true

    /// With `poolOnly`, `.logits` holds the pooled head features [N, 1280] instead: the caller applies the
    /// classifier once to the whole batch (its 5 MB weight then streams from memory once, not per image).
    func forwardWhole(_ input: Tensor, features: Set<LiteFeature>, fused useFused: Bool, profiler: OpProfiler?,
                      poolOnly: Bool = false) -> [LiteFeature: Tensor] {
        guard let deepest = features.max() else { return [:] }
        var out: [LiteFeature: Tensor] = [:]
        var x = stem.forward(input, fused: useFused, profiler: profiler)
        if features.contains(.stem) { out[.stem] = x }
        if deepest == .stem { return out }
        for (i, block) in blocks.enumerated() {
            x = block.forward(x, fused: useFused, profiler: profiler)
            if features.contains(.block(i)) { out[.block(i)] = x }
            if deepest == .block(i) { return out }
        }
        x = head.forward(x, fused: useFused, profiler: profiler)
        if features.contains(.head) { out[.head] = x }
        if deepest == .head { return out }
        let head = x
        let pooled = profiler?.measure("pool") { head.mean(axes: [2, 3]) } ?? head.mean(axes: [2, 3])
        if poolOnly { out[.logits] = pooled; return out }
        out[.logits] = profiler?.measure("fc") { classifier(pooled) } ?? classifier(pooled)
        return out
    }

    /// Logits for a normalised NCHW batch.
    public func logits(_ input: Tensor, fused: Bool? = nil) -> Tensor {
        forward(input, features: [.logits], fused: fused)[.logits]!
    }
}
