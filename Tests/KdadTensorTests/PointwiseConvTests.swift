import Foundation
@testable import KdadTensor
import XCTest

/// The pointwise-convolution kernels (Sources/CKernels, `PointwiseConv`) against convolution by
/// definition, on shapes that exercise every tail: rows not a multiple of the 6-row tile,
/// columns not a multiple of 16, images wider than one 256-column panel, several column chunks
/// per image, groups.
final class PointwiseConvTests: XCTestCase {
    struct Case { var batch, inC, outC, height, width, groups: Int }
    let cases = [
        Case(batch: 3, inC: 5, outC: 7, height: 5, width: 7, groups: 1),      // 35 columns: 2 strips + tail of 3
        Case(batch: 1, inC: 37, outC: 13, height: 50, width: 50, groups: 1),  // 2500 columns: 2 chunks, panels + tail
        Case(batch: 2, inC: 24, outC: 25, height: 17, width: 19, groups: 1),  // 323 columns: 2 panels, tail 3
        Case(batch: 2, inC: 12, outC: 18, height: 9, width: 11, groups: 3),   // groups
        Case(batch: 2, inC: 30, outC: 12, height: 16, width: 20, groups: 1),  // more in than out: dW reads X in place (320 = 256 + 64)
        Case(batch: 1, inC: 1, outC: 1, height: 1, width: 1, groups: 1),      // single element
    ]

    /// Forward by definition in Double: y[n, o, p] = Σ_i w[o, i] x[n, g·ig + i, p].
    func referenceForward(_ x: [Float], _ w: [Float], _ c: Case) -> [Double] {
        let hw = c.height * c.width, ig = c.inC / c.groups, og = c.outC / c.groups
        var out = [Double](repeating: 0, count: c.batch * c.outC * hw)
        for n in 0..<c.batch { for o in 0..<c.outC { for p in 0..<hw {
            let g = o / og
            var s = 0.0
            for i in 0..<ig { s += Double(w[o * ig + i]) * Double(x[(n * c.inC + g * ig + i) * hw + p]) }
            out[(n * c.outC + o) * hw + p] = s
        } } }
        return out
    }

    /// Both gradients by definition in Double.
    func referenceBackward(_ x: [Float], _ w: [Float], _ dy: [Float], _ c: Case) -> (dx: [Double], dw: [Double]) {
        let hw = c.height * c.width, ig = c.inC / c.groups, og = c.outC / c.groups
        var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
        for n in 0..<c.batch { for o in 0..<c.outC {
            let g = o / og
            for i in 0..<ig { for p in 0..<hw {
                let d = Double(dy[(n * c.outC + o) * hw + p]), xi = (n * c.inC + g * ig + i) * hw + p
                dx[xi] += Double(w[o * ig + i]) * d
                dw[o * ig + i] += Double(x[xi]) * d
            } }
        } }
        return (dx, dw)
    }

    func tensors(_ c: Case, seed: UInt64) -> (x: Tensor, w: Tensor, dy: Tensor) {
        (randomTensor([c.batch, c.inC, c.height, c.width], seed: seed),
         randomTensor([c.outC, c.inC / c.groups, 1, 1], seed: seed + 1, scale: 0.3),
         randomTensor([c.batch, c.outC, c.height, c.width], seed: seed + 2, requiresGrad: false))
    }

    /// Forward, dX and dW (fused and separate) through the public conv2d against the definitions.
    func checkAgainstDefinition(label: String) {
        for (index, c) in cases.enumerated() {
            let (x, w, dy) = tensors(c, seed: UInt64(500 + 10 * index))
            let geometry = ConvGeometry(batch: c.batch, inChannels: c.inC, height: c.height, width: c.width,
                                        outChannels: c.outC, kernelH: 1, kernelW: 1, strideH: 1, strideW: 1,
                                        padding: .zero, dilationH: 1, dilationW: 1, groups: c.groups)
            XCTAssertTrue(PointwiseConv.applies(geometry), "\(label) case \(index) must take the pointwise path")
            let forward = referenceForward(x.scalars, w.scalars, c)
            let (dxRef, dwRef) = referenceBackward(x.scalars, w.scalars, dy.scalars, c)
            TensorRuntime.withConvBackend(.builtin) {
                let y = Tensor.conv2d(x, weight: w, groups: c.groups)
                XCTAssertLessThan(relativeError(y.scalars, forward), 1e-6, "\(label) case \(index) forward")
                // Both gradients: the fused single pass over dY.
                y.backward(dy)
                XCTAssertLessThan(relativeError(x.grad!.scalars, dxRef), 1e-6, "\(label) case \(index) dX (fused)")
                XCTAssertLessThan(relativeError(w.grad!.scalars, dwRef), 1e-6, "\(label) case \(index) dW (fused)")
                // Each gradient alone: the separate backward-data / backward-weight entry points.
                let dataOnly = ConvKernels.backwardData(geometry, gradOutput: dy, weight: w)
                let weightOnly = ConvKernels.backwardWeight(geometry, input: x, gradOutput: dy)
                XCTAssertEqual(dataOnly.scalars, x.grad!.scalars, "\(label) case \(index): dX alone equals dX fused")
                XCTAssertEqual(weightOnly.scalars, w.grad!.scalars, "\(label) case \(index): dW alone equals dW fused")
            }
        }
    }

    func testKernelsMatchDefinitionOnOddShapes() {
        checkAgainstDefinition(label: PointwiseConv.usesAVX2 ? "avx2" : "portable")
    }

    func testPortableKernelsMatchDefinitionOnOddShapes() {
        PointwiseConv.withPortableKernels { checkAgainstDefinition(label: "portable") }
    }

    /// A pointwise layer inside a small graph: central finite differences through the kernels.
    func testGradientsMatchFiniteDifferences() {
        let c = Case(batch: 2, inC: 6, outC: 9, height: 5, width: 7, groups: 1)
        let (x, w, _) = tensors(c, seed: 900)
        let projection = randomTensor([c.batch, c.outC, c.height, c.width], seed: 903, requiresGrad: false)
        func loss() -> Tensor { (Tensor.conv2d(x, weight: w).tanh() * projection).sum() }
        TensorRuntime.withConvBackend(.builtin) {
            loss().backward()
            for (name, t) in [("x", x), ("w", w)] {
                let analytic = t.grad!.scalars
                for index in stride(from: 0, to: t.count, by: max(1, t.count / 23)) {
                    let original = t.scalars[index], eps: Float = 1e-2
                    t.withUnsafeMutableBufferPointer { $0[index] = original + eps }
                    let plus = Double(Tensor.noGrad { loss() }.item)
                    t.withUnsafeMutableBufferPointer { $0[index] = original - eps }
                    let minus = Double(Tensor.noGrad { loss() }.item)
                    t.withUnsafeMutableBufferPointer { $0[index] = original }
                    let numeric = (plus - minus) / (2 * Double(eps))
                    XCTAssertEqual(Double(analytic[index]), numeric, accuracy: 2e-3 * max(1, abs(numeric)), "d\(name)[\(index)]")
                }
            }
        }
    }

    /// The unit split depends on the geometry only, so one and two threads give identical bits.
    /// Both dW paths: X packed (fewer input than output channels) and X read in place (more).
    func testResultsAreBitIdenticalAcrossThreadCounts() {
        let saved = TensorRuntime.threadCount
        defer { TensorRuntime.setThreadCount(saved) }
        for c in [Case(batch: 3, inC: 24, outC: 40, height: 23, width: 29, groups: 1),
                  Case(batch: 3, inC: 40, outC: 24, height: 23, width: 29, groups: 1)] {
            let (x, w, dy) = tensors(c, seed: 950)
            var runs: [[[Float]]] = []
            for threads in [1, 2, 3] {
                TensorRuntime.setThreadCount(threads)
                x.grad = nil; w.grad = nil
                let y = TensorRuntime.withConvBackend(.builtin) { Tensor.conv2d(x, weight: w) }
                y.backward(dy)
                runs.append([y.scalars, x.grad!.scalars, w.grad!.scalars])
            }
            XCTAssertEqual(runs[0], runs[1], "\(c.inC)->\(c.outC): 1 vs 2 threads")
            XCTAssertEqual(runs[0], runs[2], "\(c.inC)->\(c.outC): 1 vs 3 threads")
        }
    }
}
