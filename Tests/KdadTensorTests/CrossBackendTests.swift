import Foundation
import KdadTensor
import XCTest

/// oneDNN and the built-in kernels (finite-difference checked) must agree on forward and all
/// gradients for every convolution geometry kdad uses.
final class CrossBackendTests: XCTestCase {
    struct Case {
        var name: String
        var input: [Int], weight: [Int]
        var stride: (Int, Int) = (1, 1), padding = Padding2D.zero, dilation: (Int, Int) = (1, 1), groups = 1
        var transposed = false, outputPadding = 0
    }

    let cases = [
        Case(name: "dense 3x3", input: [3, 8, 12, 10], weight: [16, 8, 3, 3], padding: Padding2D(1)),
        Case(name: "dense stride 2 TF-SAME", input: [2, 6, 11, 12], weight: [10, 6, 3, 3], stride: (2, 2),
             padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)),
        Case(name: "dilated", input: [2, 4, 13, 9], weight: [6, 4, 3, 3], padding: Padding2D(2), dilation: (2, 2)),
        Case(name: "pointwise", input: [4, 24, 8, 8], weight: [36, 24, 1, 1]),
        Case(name: "grouped", input: [2, 8, 9, 9], weight: [16, 2, 3, 3], padding: Padding2D(1), groups: 4),
        Case(name: "depthwise 3x3", input: [2, 12, 10, 10], weight: [12, 1, 3, 3], padding: Padding2D(1), groups: 12),
        Case(name: "depthwise 5x5 s2 TF-SAME", input: [2, 12, 11, 11], weight: [12, 1, 5, 5], stride: (2, 2),
             padding: Padding2D(top: 1, bottom: 2, left: 1, right: 2), groups: 12),
        Case(name: "depthwise multiplier 2", input: [2, 6, 9, 9], weight: [12, 1, 3, 3], padding: Padding2D(1), groups: 6),
        Case(name: "transposed s2", input: [2, 16, 5, 6], weight: [16, 8, 2, 2], stride: (2, 2), transposed: true),
        Case(name: "transposed s2 p1 op1 groups 2", input: [2, 8, 5, 5], weight: [8, 3, 3, 3], stride: (2, 2),
             padding: Padding2D(1), groups: 2, transposed: true, outputPadding: 1),
    ]

    func run(_ c: Case, _ backend: ConvBackend) -> [[Float]] {
        TensorRuntime.withConvBackend(backend) {
            let x = randomTensor(c.input, seed: 80)
            let w = randomTensor(c.weight, seed: 81, scale: 0.2)
            let y = c.transposed
                ? Tensor.convTranspose2d(x, weight: w, stride: c.stride, padding: c.padding,
                                         outputPadding: (c.outputPadding, c.outputPadding), dilation: c.dilation, groups: c.groups)
                : Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
            var rng = SplitMix64(seed: 82)
            y.backward(Tensor.normal(y.shape, rng: &rng))
            return [y.scalars, x.grad!.scalars, w.grad!.scalars]
        }
    }

    func testOneDNNMatchesBuiltinKernels() {
        for c in cases {
            let builtin = run(c, .builtin), oneDNN = run(c, .oneDNN)
            for (index, part) in ["output", "input gradient", "weight gradient"].enumerated() {
                XCTAssertLessThan(relativeError(oneDNN[index], builtin[index]), 1e-5, "\(c.name): \(part)")
            }
        }
    }
}
