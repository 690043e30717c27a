import Foundation
import KdadTensor
import KdadWeights

/// A torchvision ResNet-family configuration.
public struct ResNetConfiguration: Sendable, Equatable {
    public enum BlockKind: String, Sendable { case basic, bottleneck }
    public var name: String
    public var block: BlockKind
    /// Blocks per stage (layer1…layer4).
    public var layers: [Int]
    public var groups: Int
    public var widthPerGroup: Int
    public var numClasses: Int

    public init(name: String, block: BlockKind, layers: [Int], groups: Int = 1, widthPerGroup: Int = 64, numClasses: Int = 1000) {
        precondition(layers.count == 4, "ResNet needs four stages")
        precondition(block == .bottleneck || (groups == 1 && widthPerGroup == 64),
                     "BasicBlock only supports groups=1 and width_per_group=64 (as torchvision)")
        self.name = name
        self.block = block
        self.layers = layers
        self.groups = groups
        self.widthPerGroup = widthPerGroup
        self.numClasses = numClasses
    }

    public var expansion: Int { block == .basic ? 1 : 4 }

    public static let resnet10 = ResNetConfiguration(name: "resnet10", block: .basic, layers: [1, 1, 1, 1])
    public static let resnet18 = ResNetConfiguration(name: "resnet18", block: .basic, layers: [2, 2, 2, 2])
    public static let resnet34 = ResNetConfiguration(name: "resnet34", block: .basic, layers: [3, 4, 6, 3])
    public static let resnet50 = ResNetConfiguration(name: "resnet50", block: .bottleneck, layers: [3, 4, 6, 3])
    public static let wideResNet50_2 = ResNetConfiguration(name: "wide_resnet50_2", block: .bottleneck, layers: [3, 4, 6, 3],
                                                           widthPerGroup: 128)
    public static let resNeXt50_32x4d = ResNetConfiguration(name: "resnext50_32x4d", block: .bottleneck, layers: [3, 4, 6, 3],
                                                            groups: 32, widthPerGroup: 4)

    /// The named configurations kdad knows.
    public static let known: [ResNetConfiguration] = [.resnet10, .resnet18, .resnet34, .resnet50, .wideResNet50_2, .resNeXt50_32x4d]
    public static func named(_ name: String) -> ResNetConfiguration? { known.first { $0.name == name } }
}

/// BasicBlock (two 3×3) or Bottleneck (1×1, 3×3 grouped with the stride, 1×1), torchvision v1.5,
/// with an optional 1×1-conv+BN downsample shortcut.
public final class ResNetBlock: @unchecked Sendable {
    public let units: [ConvBNActivation]
    public let downsample: ConvBNActivation?

    init(kind: ResNetConfiguration.BlockKind, inPlanes: Int, planes: Int, stride: Int, groups: Int, baseWidth: Int, expansion: Int) {
        let eps: Float = 1e-5
        func unit(_ i: Int, _ o: Int, k: Int, s: Int = 1, g: Int = 1, act: Activation) -> ConvBNActivation {
            ConvBNActivation(conv: Conv2dLayer(inChannels: i, outChannels: o, kernel: k, stride: s, padding: .symmetric(k / 2), groups: g),
                             norm: BatchNormLayer(channels: o, eps: eps), activation: act)
        }
        switch kind {
        case .basic:
            units = [unit(inPlanes, planes, k: 3, s: stride, act: .relu), unit(planes, planes, k: 3, act: .relu)]
        case .bottleneck:
            let width = (planes * baseWidth / 64) * groups
            units = [unit(inPlanes, width, k: 1, act: .relu), unit(width, width, k: 3, s: stride, g: groups, act: .relu),
                     unit(width, planes * expansion, k: 1, act: .relu)]
        }
        downsample = stride != 1 || inPlanes != planes * expansion
            ? unit(inPlanes, planes * expansion, k: 1, s: stride, act: .identity) : nil
    }

    func forward(_ x: Tensor, fused: Bool) -> Tensor {
        let identity = downsample.map { $0.forward(x, fused: fused) } ?? x
        var h = x
        for u in units.dropLast() { h = u.forward(h, fused: fused) }
        let last = units.last!
        if fused { return last.fused(h, residual: identity) }  // relu(bn(conv) + identity)
        return (last.norm(last.conv(h)) + identity).relu()
    }

    func entries(_ prefix: String) -> [StateEntry] {
        var e: [StateEntry] = []
        for (i, u) in units.enumerated() { e += u.entries(conv: prefix + "conv\(i + 1).", norm: prefix + "bn\(i + 1).") }
        if let downsample { e += downsample.entries(conv: prefix + "downsample.0.", norm: prefix + "downsample.1.") }
        return e
    }
}

/// Features of a ResNet forward pass.
public enum ResNetFeature: Int, Hashable, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case layer1 = 1, layer2, layer3, layer4, logits
    public static func < (a: ResNetFeature, b: ResNetFeature) -> Bool { a.rawValue < b.rawValue }
    public var description: String { self == .logits ? "logits" : "layer\(rawValue)" }
}

/// torchvision's ResNet / Wide ResNet / ResNeXt with its state-dict names (`conv1`, `bn1`,
/// `layerL.B.convK`, `layerL.B.downsample.0/1`, `fc`).
public final class ResNet: StateDictModel, @unchecked Sendable {
    public let configuration: ResNetConfiguration
    public let stem: ConvBNActivation
    /// layer1…layer4.
    public let stages: [[ResNetBlock]]
    public let classifier: LinearLayer
    public private(set) var isFused = false

    public init(_ configuration: ResNetConfiguration) {
        self.configuration = configuration
        stem = ConvBNActivation(conv: Conv2dLayer(inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: .symmetric(3)),
                                norm: BatchNormLayer(channels: 64, eps: 1e-5), activation: .relu)
        var inPlanes = 64
        var stages: [[ResNetBlock]] = []
        for (i, count) in configuration.layers.enumerated() {
            let planes = 64 << i
            var stage: [ResNetBlock] = []
            for b in 0..<count {
                stage.append(ResNetBlock(kind: configuration.block, inPlanes: inPlanes, planes: planes,
                                         stride: b == 0 && i > 0 ? 2 : 1, groups: configuration.groups,
                                         baseWidth: configuration.widthPerGroup, expansion: configuration.expansion))
                inPlanes = planes * configuration.expansion
            }
            stages.append(stage)
        }
        self.stages = stages
        classifier = LinearLayer(inFeatures: 512 * configuration.expansion, outFeatures: configuration.numClasses)
    }

    public var modelName: String { configuration.name }

    public var stateEntries: [StateEntry] {
        var e = stem.entries(conv: "conv1.", norm: "bn1.")
        for (i, stage) in stages.enumerated() {
            for (b, block) in stage.enumerated() { e += block.entries("layer\(i + 1).\(b).") }
        }
        return e + classifier.entries("fc.")
    }

    var allUnits: [ConvBNActivation] {
        [stem] + stages.flatMap { $0.flatMap { $0.units + ($0.downsample.map { [$0] } ?? []) } }
    }

    public func stateDidChange() {
        allUnits.forEach { $0.dropFolded() }
        isFused = false
    }

    public func fuseForInference() {
        allUnits.forEach { $0.fuse() }
        isFused = true
    }

    /// Channels after each stage: 64·e, 128·e, 256·e, 512·e (e = 1 basic, 4 bottleneck).
    public var stageChannels: [Int] { (0..<4).map { (64 << $0) * configuration.expansion } }

    /// Runs conv1/bn1/relu/maxpool and the stages up to the deepest requested feature.
    public func forward(_ input: Tensor, features: Set<ResNetFeature>, fused: Bool? = nil) -> [ResNetFeature: Tensor] {
        precondition(input.rank == 4 && input.shape[1] == 3, "ResNet.forward: input \(input.shape) is not N×3×H×W")
        let useFused = fused ?? isFused
        precondition(!useFused || isFused, "ResNet.forward(fused: true) before fuseForInference()")
        // The fused path is inference-only: record no graph even if the caller forgot `Tensor.noGrad`.
        if useFused && Tensor.isGradEnabled {
            return Tensor.noGrad { forward(input, features: features, fused: true) }
        }
        guard let deepest = features.max() else { return [:] }
        var out: [ResNetFeature: Tensor] = [:]
        var x = stem.forward(input, fused: useFused)
        x = Tensor.maxPool2d(x, kernel: (3, 3), stride: (2, 2), padding: Padding2D(1))
        for (i, stage) in stages.enumerated() {
            for block in stage { x = block.forward(x, fused: useFused) }
            let f = ResNetFeature(rawValue: i + 1)!
            if features.contains(f) { out[f] = x }
            if deepest == f { return out }
        }
        out[.logits] = classifier(x.mean(axes: [2, 3]))
        return out
    }
}
