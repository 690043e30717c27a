import Foundation
import KdadTensor
import XCTest

/// Finite-difference gradient checks, one per op (small shapes keep the run short).
final class GradCheckTests: XCTestCase {
    func testBroadcastingArithmetic() {
        let a = randomTensor([2, 3, 4, 5], seed: 1)
        let channel = randomTensor([1, 3, 1, 1], seed: 2)
        let row = randomTensor([5], seed: 3)
        let positive = Tensor(shape: [3, 1, 1], values: [1.5, 2.0, 2.5], requiresGrad: true)
        assertGradientsMatch("add", [a, channel]) { $0[0] + $0[1] }
        assertGradientsMatch("sub", [a, row]) { $0[0] - $0[1] }
        assertGradientsMatch("mul", [a, channel]) { $0[0] * $0[1] }
        assertGradientsMatch("div", [a, positive]) { $0[0] / $0[1] }
        assertGradientsMatch("scalar ops", [a]) { (2 - $0[0] * 3 + 1) / 2 }
        assertGradientsMatch("scalar over tensor", [positive]) { 1 / $0[0] }
    }

    func testUnaryOps() {
        let x = awayFromKinks([2, 3, 4, 4], seed: 4)
        let six = awayFromKinks([2, 3, 4, 4], seed: 5, kinks: [0, 6], scale: 4)
        let positive = Tensor(shape: [3, 8], values: (0..<24).map { 0.3 + Float($0) * 0.1 }, requiresGrad: true)
        assertGradientsMatch("relu", [x]) { $0[0].relu() }
        assertGradientsMatch("relu6", [six]) { $0[0].relu6() }
        assertGradientsMatch("leakyRelu", [x]) { $0[0].leakyRelu(0.1) }
        assertGradientsMatch("sigmoid", [x]) { $0[0].sigmoid() }
        assertGradientsMatch("silu", [x]) { $0[0].silu() }
        assertGradientsMatch("tanh", [x]) { $0[0].tanh() }
        assertGradientsMatch("exp", [x]) { $0[0].exp() }
        assertGradientsMatch("log", [positive]) { $0[0].log() }
        assertGradientsMatch("sqrt", [positive]) { $0[0].sqrt() }
        assertGradientsMatch("abs", [x]) { $0[0].abs() }
        assertGradientsMatch("square", [x]) { $0[0].square() }
        assertGradientsMatch("pow 3", [x]) { $0[0].pow(3) }
        assertGradientsMatch("pow 1.5", [positive]) { $0[0].pow(1.5) }
        let clampInput = awayFromKinks([2, 3, 4, 4], seed: 6, kinks: [-0.5, 0.7])
        assertGradientsMatch("clamp", [clampInput]) { $0[0].clamp(min: -0.5, max: 0.7) }
    }

    func testShapeOps() {
        let x = randomTensor([2, 3, 4, 5], seed: 7)
        let y = randomTensor([2, 2, 4, 5], seed: 8)
        assertGradientsMatch("reshape", [x]) { $0[0].reshaped([6, -1]).square() }
        assertGradientsMatch("permute", [x]) { $0[0].permuted([0, 2, 3, 1]) * Tensor(shape: [3], values: [1, 2, 3]) }
        assertGradientsMatch("transposed", [x]) { $0[0].transposed() }
        assertGradientsMatch("expanded", [randomTensor([3, 1], seed: 9)]) { $0[0].expanded(to: [2, 3, 4]) }
        assertGradientsMatch("slice", [x]) { $0[0].slice(axis: 2, 1..<3) }
        assertGradientsMatch("split", [x]) { inputs in
            let parts = inputs[0].split(axis: 1, sizes: [1, 2])
            return parts[0] * 2 + parts[1].sum(axis: 1, keepDim: true)
        }
        assertGradientsMatch("concat", [x, y]) { Tensor.concat([$0[0], $0[1], $0[0]], axis: 1) }
        assertGradientsMatch("pad constant", [x]) { $0[0].padded(Padding2D(top: 1, bottom: 0, left: 2, right: 1), mode: .constant(0.5)) }
        assertGradientsMatch("pad reflect", [x]) { $0[0].padded(Padding2D(top: 2, bottom: 1, left: 1, right: 3), mode: .reflect) }
        assertGradientsMatch("pad replicate", [x]) { $0[0].padded(Padding2D(top: 0, bottom: 2, left: 3, right: 1), mode: .replicate) }
    }

    func testReductions() {
        let x = randomTensor([2, 3, 4, 5], seed: 10)
        assertGradientsMatch("sum all", [x]) { $0[0].sum() * $0[0].sum() }
        assertGradientsMatch("sum axes keepdim", [x]) { $0[0].sum(axes: [1, 3], keepDim: true) }
        assertGradientsMatch("mean axes", [x]) { $0[0].mean(axes: [0, 2]) }
        assertGradientsMatch("max axis", [distinctValues([2, 3, 4, 5], seed: 11)]) { $0[0].max(axis: 2) }
        assertGradientsMatch("max axes keepdim", [distinctValues([2, 3, 4, 5], seed: 12)]) { $0[0].max(axes: [1, 3], keepDim: true) }
        assertGradientsMatch("softmax", [x]) { $0[0].softmax(axis: 1) }
        assertGradientsMatch("softmax last", [x]) { $0[0].softmax(axis: -1) }
    }

    /// Finite differences verify the built-in kernels; CrossBackendTests then holds oneDNN to them.
    func testConvolutions() {
        TensorRuntime.withConvBackend(.builtin) { checkConvolutions() }
    }

    func checkConvolutions() {
        let x = randomTensor([2, 4, 7, 6], seed: 13)
        let w = randomTensor([6, 4, 3, 3], seed: 14, scale: 0.3)
        let bias = randomTensor([6], seed: 15)
        assertGradientsMatch("conv2d dense", [x, w, bias]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], padding: 1) }
        assertGradientsMatch("conv2d stride 2, TF-SAME padding", [x, w]) {
            Tensor.conv2d($0[0], weight: $0[1], stride: (2, 2), padding: Padding2D(top: 0, bottom: 1, left: 1, right: 1))
        }
        assertGradientsMatch("conv2d dilation 2", [x, w]) {
            Tensor.conv2d($0[0], weight: $0[1], stride: (1, 1), padding: Padding2D(2), dilation: (2, 2))
        }
        let grouped = randomTensor([6, 2, 3, 3], seed: 16, scale: 0.3)
        assertGradientsMatch("conv2d groups 2", [x, grouped, bias]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], padding: 1, groups: 2) }
        let pointwise = randomTensor([5, 4, 1, 1], seed: 17)
        assertGradientsMatch("conv2d 1x1", [x, pointwise]) { Tensor.conv2d($0[0], weight: $0[1]) }
        let depthwise = randomTensor([4, 1, 3, 3], seed: 18)
        assertGradientsMatch("depthwise 3x3", [x, depthwise]) { Tensor.conv2d($0[0], weight: $0[1], padding: 1, groups: 4) }
        assertGradientsMatch("depthwise stride 2 asymmetric", [x, depthwise]) {
            Tensor.conv2d($0[0], weight: $0[1], stride: (2, 2), padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1), groups: 4)
        }
        let multiplier = randomTensor([8, 1, 5, 5], seed: 19, scale: 0.3)
        assertGradientsMatch("depthwise 5x5 multiplier 2 dilation", [x, multiplier, randomTensor([8], seed: 20)]) {
            Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: (1, 2), padding: Padding2D(3), dilation: (2, 1), groups: 4)
        }
    }

    func testTransposedConvolutions() {
        TensorRuntime.withConvBackend(.builtin) { checkTransposedConvolutions() }
    }

    func checkTransposedConvolutions() {
        let x = randomTensor([2, 4, 4, 3], seed: 21)
        let w = randomTensor([4, 3, 3, 3], seed: 22, scale: 0.3)
        let bias = randomTensor([3], seed: 23)
        assertGradientsMatch("convTranspose2d stride 2", [x, w, bias]) {
            Tensor.convTranspose2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1, outputPadding: 1)
        }
        let grouped = randomTensor([4, 2, 2, 2], seed: 24, scale: 0.3)
        assertGradientsMatch("convTranspose2d groups 2", [x, grouped]) {
            Tensor.convTranspose2d($0[0], weight: $0[1], stride: 2, groups: 2)
        }
        let depthwise = randomTensor([4, 1, 3, 3], seed: 25, scale: 0.3)
        assertGradientsMatch("convTranspose2d depthwise", [x, depthwise]) {
            Tensor.convTranspose2d($0[0], weight: $0[1], stride: 1, padding: 1, groups: 4)
        }
    }

    func testNormalisation() {
        let x = randomTensor([3, 4, 3, 3], seed: 26, scale: 2)
        let gamma = randomTensor([4], seed: 27), beta = randomTensor([4], seed: 28)
        assertGradientsMatch("batchNorm train", [x, gamma, beta]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        let mean = Tensor(shape: [4], values: [0.1, -0.2, 0.3, 0]), variance = Tensor(shape: [4], values: [1, 2, 0.5, 1.5])
        assertGradientsMatch("batchNorm eval", [x, gamma, beta]) {
            Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: mean, runningVar: variance, training: false)
        }
        assertGradientsMatch("groupNorm", [x, gamma, beta]) { Tensor.groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2]) }
    }

    func testPoolingAndResize() {
        let x = distinctValues([2, 2, 6, 5], seed: 29)
        assertGradientsMatch("maxPool2d padded", [x]) { Tensor.maxPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: Padding2D(1)) }
        assertGradientsMatch("avgPool2d include pad", [x]) { Tensor.avgPool2d($0[0], kernel: (3, 3), stride: (2, 1), padding: Padding2D(1)) }
        assertGradientsMatch("avgPool2d exclude pad", [x]) {
            Tensor.avgPool2d($0[0], kernel: (2, 3), stride: (2, 2), padding: Padding2D(height: 1, width: 1), countIncludePad: false)
        }
        assertGradientsMatch("adaptiveAvgPool2d", [x]) { Tensor.adaptiveAvgPool2d($0[0], outputSize: (4, 3)) }
        let y = randomTensor([1, 2, 4, 5], seed: 30)
        assertGradientsMatch("bilinear up, align false", [y]) { $0[0].resizeBilinear(height: 7, width: 9, alignCorners: false) }
        assertGradientsMatch("bilinear down, align true", [y]) { $0[0].resizeBilinear(height: 3, width: 3, alignCorners: true) }
        assertGradientsMatch("upsample x2", [y]) { $0[0].upsampleBilinear(scale: 2) }
        assertGradientsMatch("nearest", [y]) { $0[0].resizeNearest(height: 6, width: 7) }
    }

    func testLinearAlgebra() {
        let a = randomTensor([3, 4], seed: 31), b = randomTensor([4, 5], seed: 32)
        assertGradientsMatch("matmul", [a, b]) { Tensor.matmul($0[0], $0[1]) }
        let ba = randomTensor([2, 3, 4], seed: 33), bb = randomTensor([2, 4, 2], seed: 34)
        assertGradientsMatch("bmm", [ba, bb]) { Tensor.bmm($0[0], $0[1]) }
        let w = randomTensor([5, 4], seed: 35), bias = randomTensor([5], seed: 36)
        assertGradientsMatch("linear", [a, w, bias]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
    }

    func testCompositeOpsAndLosses() {
        let x = randomTensor([2, 4, 3, 3], seed: 37), y = randomTensor([2, 4, 3, 3], seed: 38)
        assertGradientsMatch("l2Normalized", [x]) { $0[0].l2Normalized(axis: 1) }
        assertGradientsMatch("cosineSimilarity", [x, y]) { Tensor.cosineSimilarity($0[0], $0[1], axis: 1) }
        assertGradientsMatch("simAM", [x]) { $0[0].simAM() }
        assertGradientsMatch("mse", [x, y]) { Tensor.mseLoss($0[0], $0[1]) }
        // Differences kept away from ±delta, where the Huber loss's second derivative jumps.
        let offsets = awayFromKinks([2, 4, 3, 3], seed: 39, kinks: [-0.5, 0.5])
        let base = Tensor(shape: [2, 4, 3, 3], values: y.scalars)
        assertGradientsMatch("huber", [offsets]) { Tensor.huberLoss(base + $0[0], base, delta: 0.5) }
        let p = Tensor(shape: [2, 1, 3, 3], values: (0..<18).map { 0.1 + Float($0) * 0.04 }, requiresGrad: true)
        let t = Tensor(shape: [2, 1, 3, 3], values: (0..<18).map { $0 % 3 == 0 ? 1 : 0 })
        assertGradientsMatch("dice", [p]) { Tensor.diceLoss($0[0], t) }
    }
}
