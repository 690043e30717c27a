import Foundation
import KdadTensor

/// How a convolution pads its input.
public enum ConvPadding: Sendable, Equatable {
    /// The same number of zero rows/columns on every side (PyTorch `padding=`).
    case symmetric(Int)
    /// TensorFlow "SAME", computed from the actual input size: output = ceil(in / stride), total padding
    /// max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0), the odd extra row/column at the bottom/right.
    case tfSame

    /// The four-sided padding for an input of `height × width`.
    public func resolved(height: Int, width: Int, kernel: (Int, Int), stride: Int, dilation: Int) -> Padding2D {
        switch self {
        case .symmetric(let p):
            return Padding2D(p)
        case .tfSame:
            func total(_ size: Int, _ k: Int) -> Int {
                let out = (size + stride - 1) / stride
                return Swift.max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
            }
            let ph = total(height, kernel.0), pw = total(width, kernel.1)
            return Padding2D(top: ph / 2, bottom: ph - ph / 2, left: pw / 2, right: pw - pw / 2)
        }
    }
}

/// Pointwise nonlinearity after a convolution.
public enum Activation: Sendable, Equatable {
    case identity, relu, relu6

    func apply(_ x: Tensor) -> Tensor {
        switch self {
        case .identity: return x
        case .relu: return x.relu()
        case .relu6: return x.relu6()
        }
    }
}

/// A 2-D convolution whose weight is `[out, in/groups, kh, kw]` (PyTorch layout).
public final class Conv2dLayer: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public let padding: ConvPadding
    public let dilation: Int
    public let groups: Int

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: ConvPadding,
                dilation: Int = 1, groups: Int = 1, bias: Bool = false) {
        precondition(inChannels % groups == 0 && outChannels % groups == 0,
                     "conv: \(inChannels)→\(outChannels) channels do not divide into \(groups) groups")
        weight = Tensor.zeros([outChannels, inChannels / groups, kernel, kernel])
        self.bias = bias ? Tensor.zeros([outChannels]) : nil
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
    }

    public var inChannels: Int { weight.shape[1] * groups }
    public var outChannels: Int { weight.shape[0] }
    public var kernel: (Int, Int) { (weight.shape[2], weight.shape[3]) }

    func resolvedPadding(for x: Tensor) -> Padding2D {
        padding.resolved(height: x.shape[2], width: x.shape[3], kernel: kernel, stride: stride, dilation: dilation)
    }

    /// Output spatial size for an input of `height × width`.
    public func outputSize(height: Int, width: Int) -> (Int, Int) {
        let p = padding.resolved(height: height, width: width, kernel: kernel, stride: stride, dilation: dilation)
        let (kh, kw) = kernel
        return ((height + p.top + p.bottom - dilation * (kh - 1) - 1) / stride + 1,
                (width + p.left + p.right - dilation * (kw - 1) - 1) / stride + 1)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: resolvedPadding(for: x),
                      dilation: (dilation, dilation), groups: groups)
    }

    func entries(_ prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", weight, .parameter)] + (bias.map { [StateEntry(prefix + "bias", $0, .parameter)] } ?? [])
    }
}

/// Evaluation-mode batch normalisation: y = (x - mean) / sqrt(var + eps) * weight + bias.
public final class BatchNormLayer: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVar: Tensor
    public let eps: Float

    public init(channels: Int, eps: Float) {
        weight = Tensor.ones([channels])
        bias = Tensor.zeros([channels])
        runningMean = Tensor.zeros([channels])
        runningVar = Tensor.ones([channels])
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.batchNorm(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                         training: false, eps: eps)
    }

    /// Per-channel (scale, shift) with y = x * scale + shift, computed in double precision.
    func affine() -> (scale: [Double], shift: [Double]) {
        let g = weight.scalars, b = bias.scalars, m = runningMean.scalars, v = runningVar.scalars
        var scale = [Double](repeating: 0, count: g.count), shift = scale
        for c in 0..<g.count {
            let s = Double(g[c]) / (Double(v[c]) + Double(eps)).squareRoot()
            scale[c] = s
            shift[c] = Double(b[c]) - Double(m[c]) * s
        }
        return (scale, shift)
    }

    func entries(_ prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", weight, .parameter), StateEntry(prefix + "bias", bias, .parameter),
         StateEntry(prefix + "running_mean", runningMean, .buffer), StateEntry(prefix + "running_var", runningVar, .buffer)]
    }
}

/// Convolution, batch normalisation and activation, with an optional inference form in which the
/// normalisation is folded into the convolution: w' = w * γ/√(σ²+ε) per output channel,
/// b' = β - μ * γ/√(σ²+ε) (+ the convolution's own bias scaled the same way).
public final class ConvBNActivation: @unchecked Sendable {
    public let conv: Conv2dLayer
    public let norm: BatchNormLayer
    public let activation: Activation
    /// Folded weight and bias once `fuse()` ran; nil after new weights were loaded.
    public private(set) var folded: (weight: Tensor, bias: Tensor)?

    public init(conv: Conv2dLayer, norm: BatchNormLayer, activation: Activation) {
        precondition(conv.outChannels == norm.weight.count, "conv/bn channel mismatch")
        self.conv = conv
        self.norm = norm
        self.activation = activation
    }

    /// The reference path: the three operations as written, through the tensor engine's differentiable ops.
    public func reference(_ x: Tensor) -> Tensor {
        activation.apply(norm(conv(x)))
    }

    public func fuse() {
        let (scale, shift) = norm.affine()
        let w = conv.weight.scalars
        let perOut = w.count / scale.count
        var fw = [Float](repeating: 0, count: w.count)
        for o in 0..<scale.count {
            for i in 0..<perOut { fw[o * perOut + i] = Float(Double(w[o * perOut + i]) * scale[o]) }
        }
        let convBias = conv.bias?.scalars
        let fb = (0..<scale.count).map { o in Float(shift[o] + (convBias.map { Double($0[o]) * scale[o] } ?? 0)) }
        folded = (Tensor(shape: conv.weight.shape, values: fw), Tensor(shape: [scale.count], values: fb))
    }

    func dropFolded() { folded = nil }

    /// The inference path: one convolution with the folded weight, then bias and activation in one pass
    /// over the fresh output (and an optional residual added before the activation-free output).
    func fused(_ x: Tensor, residual: Tensor? = nil, profiler: OpProfiler? = nil) -> Tensor {
        guard let folded else { preconditionFailure("ConvBNActivation.fused before fuse()") }
        return InferenceKernels.conv(x, weight: folded.weight, bias: folded.bias, stride: conv.stride,
                                     padding: conv.resolvedPadding(for: x), groups: conv.groups,
                                     dilation: conv.dilation, activation: activation, residual: residual,
                                     profiler: profiler)
    }

    func forward(_ x: Tensor, fused useFused: Bool, profiler: OpProfiler? = nil) -> Tensor {
        useFused ? fused(x, profiler: profiler) : reference(x)
    }

    func entries(conv convPrefix: String, norm normPrefix: String) -> [StateEntry] {
        conv.entries(convPrefix) + norm.entries(normPrefix)
    }
}

/// A fully connected layer, weight `[out, in]`.
public final class LinearLayer: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor

    public init(inFeatures: Int, outFeatures: Int) {
        weight = Tensor.zeros([outFeatures, inFeatures])
        bias = Tensor.zeros([outFeatures])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight, bias: bias) }

    func entries(_ prefix: String) -> [StateEntry] {
        [StateEntry(prefix + "weight", weight, .parameter), StateEntry(prefix + "bias", bias, .parameter)]
    }
}
