import Foundation
import KdadTensor

/// Creates the layers of a student in a fixed order, names their tensors and initialises them
/// from one seeded generator, so the same seed always gives the same network.
final class ParameterBuilder {
    private(set) var parameters: [(name: String, tensor: Tensor)] = []
    private(set) var batchNorms: [(name: String, module: BatchNorm2d)] = []
    private var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    var buffers: [(name: String, tensor: Tensor)] {
        batchNorms.flatMap { [("\($0.name).running_mean", $0.module.runningMean), ("\($0.name).running_var", $0.module.runningVar)] }
    }

    private func register(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!parameters.contains { $0.name == name }, "duplicate parameter name \(name)")
        tensor.requiresGrad = true
        parameters.append((name, tensor))
        return tensor
    }

    /// He (Kaiming) normal initialisation with fan-out, as torchvision's ResNets: keeps activation
    /// variance through ReLU stacks of a randomly initialised student.
    func conv(_ name: String, in inChannels: Int, out outChannels: Int, kernel: Int, stride: Int = 1,
              groups: Int = 1, bias: Bool = false) -> Conv {
        let std = Float((2.0 / Double(outChannels * kernel * kernel / groups)).squareRoot())
        let weight = register("\(name).weight", .normal([outChannels, inChannels / groups, kernel, kernel], std: std, rng: &rng))
        let b = bias ? register("\(name).bias", .zeros([outChannels])) : nil
        return Conv(weight: weight, bias: b, stride: stride, groups: groups)
    }

    /// A linear output head (no activation follows): PyTorch's default uniform ±1/√fan_in.
    func head(_ name: String, in inChannels: Int, out outChannels: Int) -> Conv {
        let bound = 1 / Float(inChannels).squareRoot()
        let weight = register("\(name).weight", .uniform([outChannels, inChannels, 1, 1], low: -bound, high: bound, rng: &rng))
        let bias = register("\(name).bias", .uniform([outChannels], low: -bound, high: bound, rng: &rng))
        return Conv(weight: weight, bias: bias, stride: 1, groups: 1)
    }

    /// A 2×2 stride-2 transposed convolution: each output pixel sees one input pixel, so fan-in is
    /// the input channel count.
    func upsample(_ name: String, in inChannels: Int, out outChannels: Int) -> UpConv {
        let std = Float((2.0 / Double(inChannels)).squareRoot())
        return UpConv(weight: register("\(name).weight", .normal([inChannels, outChannels, 2, 2], std: std, rng: &rng)))
    }

    func batchNorm(_ name: String, channels: Int) -> BatchNorm2d {
        let bn = BatchNorm2d(channels: channels)
        _ = register("\(name).weight", bn.weight)
        _ = register("\(name).bias", bn.bias)
        batchNorms.append((name, bn))
        return bn
    }
}

/// A k×k convolution with "same"-style padding k/2 on every side: for stride 2 and odd k the
/// output is ceil(in/2), the size TF-"SAME" teacher layers have, so student and teacher maps agree.
struct Conv {
    let weight: Tensor
    let bias: Tensor?
    let stride: Int
    let groups: Int
    func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: weight.shape[2] / 2, groups: groups)
    }
}

/// 2×2 stride-2 transposed convolution (exact ×2 upsampling).
struct UpConv {
    let weight: Tensor
    func callAsFunction(_ x: Tensor) -> Tensor { Tensor.convTranspose2d(x, weight: weight, stride: 2) }
}

/// The only mutable state of a layer stack: train/eval mode of its BatchNorms.
final class TrainingFlag: @unchecked Sendable {
    var isTraining = true
}

/// conv → BN → optional ReLU.
struct ConvBN {
    let conv: Conv
    let norm: BatchNorm2d
    let relu: Bool
    let mode: TrainingFlag

    init(_ builder: ParameterBuilder, _ name: String, in inChannels: Int, out outChannels: Int, kernel: Int,
         stride: Int = 1, relu: Bool = true, mode: TrainingFlag) {
        conv = builder.conv("\(name).conv", in: inChannels, out: outChannels, kernel: kernel, stride: stride)
        norm = builder.batchNorm("\(name).bn", channels: outChannels)
        self.relu = relu
        self.mode = mode
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let y = norm(conv(x), training: mode.isTraining)
        return relu ? y.relu() : y
    }
}

/// ResNet basic block: 3×3 (stride s) → BN → ReLU → 3×3 → BN, plus the input (through a 1×1
/// stride-s conv + BN when the shape changes), then ReLU.
struct ResidualBlock {
    let first: ConvBN
    let second: ConvBN
    let shortcut: ConvBN?

    init(_ builder: ParameterBuilder, _ name: String, in inChannels: Int, out outChannels: Int, stride: Int, mode: TrainingFlag) {
        first = ConvBN(builder, "\(name).conv1", in: inChannels, out: outChannels, kernel: 3, stride: stride, mode: mode)
        second = ConvBN(builder, "\(name).conv2", in: outChannels, out: outChannels, kernel: 3, relu: false, mode: mode)
        shortcut = (stride != 1 || inChannels != outChannels)
            ? ConvBN(builder, "\(name).down", in: inChannels, out: outChannels, kernel: 1, stride: stride, relu: false, mode: mode)
            : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let identity = shortcut.map { $0(x) } ?? x
        return (second(first(x)) + identity).relu()
    }
}

/// Brings a student map to the teacher map's spatial size. Student and teacher sizes agree by
/// construction (ceil division at every stride 2); odd sizes through a ×2 upsampling can exceed
/// the teacher's by one, which is cropped, and anything else is resized bilinearly.
func matchSpatialSize(_ x: Tensor, height: Int, width: Int) -> Tensor {
    let h = x.shape[2], w = x.shape[3]
    if h == height && w == width { return x }
    if h >= height && w >= width && h - height <= 1 && w - width <= 1 {
        return x.slice(axis: 2, 0..<height).slice(axis: 3, 0..<width)
    }
    return x.resizeBilinear(height: height, width: width, alignCorners: false)
}

/// log2 of a power of two.
func log2Exact(_ value: Int) -> Int { value.trailingZeroBitCount }
