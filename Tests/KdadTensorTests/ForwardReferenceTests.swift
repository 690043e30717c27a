import Foundation
import KdadTensor
import XCTest

/// Forward values against direct (loop-by-definition) references and hand-computed cases.
final class ForwardReferenceTests: XCTestCase {
    /// Direct convolution by definition, in Double.
    func naiveConv(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride: (Int, Int), padding: Padding2D,
                   dilation: (Int, Int), groups: Int) -> [Double] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + padding.top + padding.bottom - dilation.0 * (kh - 1) - 1) / stride.0 + 1
        let wo = (wd + padding.left + padding.right - dilation.1 * (kw - 1) - 1) / stride.1 + 1
        let xs = x.scalars, ws = w.scalars, bs = bias?.scalars
        let ig = c / groups, og = o / groups
        var out = [Double](repeating: 0, count: n * o * ho * wo)
        for b in 0..<n { for oc in 0..<o { for oy in 0..<ho { for ox in 0..<wo {
            var s = bs.map { Double($0[oc]) } ?? 0
            let g = oc / og
            for ic in 0..<ig { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * stride.0 - padding.top + ky * dilation.0, ix = ox * stride.1 - padding.left + kx * dilation.1
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                s += Double(xs[((b * c + g * ig + ic) * h + iy) * wd + ix]) * Double(ws[((oc * ig + ic) * kh + ky) * kw + kx])
            } } }
            out[((b * o + oc) * ho + oy) * wo + ox] = s
        } } } }
        return out
    }

    func testConv2dMatchesDirectDefinition() {
        struct Case { var inC, outC, k: Int; var stride: (Int, Int); var padding: Padding2D; var dilation: (Int, Int); var groups: Int }
        let cases = [
            Case(inC: 5, outC: 7, k: 3, stride: (1, 1), padding: Padding2D(1), dilation: (1, 1), groups: 1),
            Case(inC: 4, outC: 6, k: 3, stride: (2, 2), padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1), dilation: (1, 1), groups: 1),
            Case(inC: 4, outC: 4, k: 3, stride: (1, 1), padding: Padding2D(2), dilation: (2, 2), groups: 2),
            Case(inC: 6, outC: 6, k: 3, stride: (2, 2), padding: Padding2D(1), dilation: (1, 1), groups: 6),
            Case(inC: 3, outC: 6, k: 5, stride: (1, 2), padding: Padding2D(top: 2, bottom: 2, left: 1, right: 3), dilation: (1, 1), groups: 3),
            Case(inC: 8, outC: 12, k: 1, stride: (1, 1), padding: .zero, dilation: (1, 1), groups: 1),
            Case(inC: 8, outC: 4, k: 1, stride: (2, 2), padding: .zero, dilation: (1, 1), groups: 2),
        ]
        for (index, cs) in cases.enumerated() {
            let x = randomTensor([2, cs.inC, 9, 11], seed: UInt64(100 + index), requiresGrad: false)
            let w = randomTensor([cs.outC, cs.inC / cs.groups, cs.k, cs.k], seed: UInt64(200 + index), requiresGrad: false)
            let bias = randomTensor([cs.outC], seed: UInt64(300 + index), requiresGrad: false)
            let reference = naiveConv(x, w, bias, stride: cs.stride, padding: cs.padding, dilation: cs.dilation, groups: cs.groups)
            for backend in [ConvBackend.builtin, .oneDNN] {
                let ours = TensorRuntime.withConvBackend(backend) {
                    Tensor.conv2d(x, weight: w, bias: bias, stride: cs.stride, padding: cs.padding, dilation: cs.dilation, groups: cs.groups)
                }
                XCTAssertEqual(ours.count, reference.count, "case \(index), \(backend)")
                XCTAssertLessThan(relativeError(ours.scalars, reference), 1e-6, "case \(index), \(backend)")
            }
        }
    }

    func testConvTransposeMatchesScatterDefinition() {
        let x = randomTensor([2, 4, 3, 5], seed: 400, requiresGrad: false)
        let w = randomTensor([4, 3, 3, 3], seed: 401, requiresGrad: false)  // groups 2: out 6
        let (s, p, op) = (2, 1, 1)
        let ours = Tensor.convTranspose2d(x, weight: w, stride: s, padding: p, outputPadding: op, groups: 2)
        let viaOneDNN = TensorRuntime.withConvBackend(.oneDNN) {
            Tensor.convTranspose2d(x, weight: w, stride: s, padding: p, outputPadding: op, groups: 2)
        }
        let ho = (3 - 1) * s - 2 * p + 3 + op, wo = (5 - 1) * s - 2 * p + 3 + op
        XCTAssertEqual(ours.shape, [2, 6, ho, wo])
        var reference = [Double](repeating: 0, count: 2 * 6 * ho * wo)
        let xs = x.scalars, ws = w.scalars
        for b in 0..<2 { for ic in 0..<4 { for iy in 0..<3 { for ix in 0..<5 {
            let g = ic / 2
            for oc in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
                let oy = iy * s - p + ky, ox = ix * s - p + kx
                if oy < 0 || oy >= ho || ox < 0 || ox >= wo { continue }
                reference[((b * 6 + g * 3 + oc) * ho + oy) * wo + ox] +=
                    Double(xs[((b * 4 + ic) * 3 + iy) * 5 + ix]) * Double(ws[((ic * 3 + oc) * 3 + ky) * 3 + kx])
            } } }
        } } } }
        XCTAssertLessThan(relativeError(ours.scalars, reference), 1e-6)
        XCTAssertLessThan(relativeError(viaOneDNN.scalars, reference), 1e-6)
    }

    func testResizeAndPoolingValues() {
        // Input 2·r + c on a 2×2 grid: separable, so each output is 2·R(y) + C(x).
        let grid = Tensor(shape: [1, 1, 2, 2], values: [0, 1, 2, 3])
        let halfPixel: [Float] = [0, 0.25, 0.75, 1]
        XCTAssertEqual(grid.resizeBilinear(height: 4, width: 4, alignCorners: false).scalars,
                       halfPixel.flatMap { r in halfPixel.map { 2 * r + $0 } })
        XCTAssertEqual(grid.upsampleBilinear(scale: 2).scalars, halfPixel.flatMap { r in halfPixel.map { 2 * r + $0 } })
        let corners: [Float] = [0, 0.5, 1]
        XCTAssertEqual(grid.resizeBilinear(height: 3, width: 3, alignCorners: true).scalars,
                       corners.flatMap { r in corners.map { 2 * r + $0 } })
        XCTAssertEqual(grid.resizeNearest(height: 4, width: 4).scalars, [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])

        let row = Tensor(shape: [1, 1, 1, 5], values: [1, 2, 3, 4, 5])
        // PyTorch bins for 5 → 3: [0,2), [1,4), [3,5).
        XCTAssertEqual(Tensor.adaptiveAvgPool2d(row, outputSize: (1, 3)).scalars, [1.5, 3, 4.5])
        XCTAssertEqual(Tensor.maxPool2d(row, kernel: (1, 3), stride: (1, 2), padding: Padding2D(top: 0, bottom: 0, left: 1, right: 1)).scalars,
                       [2, 4, 5])
        XCTAssertEqual(Tensor.avgPool2d(row, kernel: (1, 3), stride: (1, 2), padding: Padding2D(top: 0, bottom: 0, left: 1, right: 1)).scalars,
                       [1, 3, 3])
        XCTAssertEqual(Tensor.avgPool2d(row, kernel: (1, 3), stride: (1, 2), padding: Padding2D(top: 0, bottom: 0, left: 1, right: 1),
                                        countIncludePad: false).scalars, [1.5, 3, 4.5])
        let padded = row.padded(Padding2D(top: 0, bottom: 0, left: 2, right: 1), mode: .reflect)
        XCTAssertEqual(padded.scalars, [3, 2, 1, 2, 3, 4, 5, 4])
        XCTAssertEqual(row.padded(Padding2D(top: 1, bottom: 0, left: 0, right: 1), mode: .constant(-1)).scalars,
                       [-1, -1, -1, -1, -1, -1, 1, 2, 3, 4, 5, -1])
    }

    func testBatchNormRunningStatisticsAndEvalMode() {
        let x = Tensor(shape: [2, 1, 1, 2], values: [1, 2, 3, 6])
        let bn = BatchNorm2d(channels: 1)
        let y = bn(x, training: true)
        // mean 3, biased var 3.5, unbiased var 14/3.
        XCTAssertEqual(bn.runningMean.item, 0.3, accuracy: 1e-6)
        XCTAssertEqual(bn.runningVar.item, 0.9 + 0.1 * 14 / 3, accuracy: 1e-6)
        XCTAssertEqual(bn.numBatchesTracked, 1)
        XCTAssertEqual(y.scalars[3], 3 / (3.5 + 1e-5).squareRoot(), accuracy: 1e-5)
        let z = bn(x, training: false)
        XCTAssertEqual(z.scalars[0], (1 - 0.3) / (bn.runningVar.item + 1e-5).squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(bn.numBatchesTracked, 1)
    }

    func testReductionsAndSoftmaxValues() {
        let x = Tensor(shape: [2, 3], values: [1, 5, 3, -2, 0, 4])
        XCTAssertEqual(x.sum(axis: 1).scalars, [9, 2])
        XCTAssertEqual(x.sum(axis: 0, keepDim: true).shape, [1, 3])
        XCTAssertEqual(x.mean().item, 11.0 / 6, accuracy: 1e-6)
        XCTAssertEqual(x.max(axis: 1).scalars, [5, 4])
        XCTAssertEqual(x.max(axis: 0).scalars, [1, 5, 4])
        let s = x.softmax(axis: 1).scalars
        let e = [Foundation.exp(1.0), Foundation.exp(5.0), Foundation.exp(3.0)]
        XCTAssertEqual(Double(s[1]), e[1] / e.reduce(0, +), accuracy: 1e-6)
        XCTAssertEqual(Tensor.concat([x, x], axis: 0).shape, [4, 3])
        XCTAssertEqual(x.permuted([1, 0]).scalars, [1, -2, 5, 0, 3, 4])
        XCTAssertEqual((x + Tensor(shape: [3], values: [10, 20, 30])).scalars, [11, 25, 33, 8, 20, 34])
    }
}
