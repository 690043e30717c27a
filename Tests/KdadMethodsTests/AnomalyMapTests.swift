import XCTest
import KdadTensor
@testable import KdadMethods

final class AnomalyMapTests: XCTestCase {
    /// PyTorch bilinear (align_corners=False) written out directly for one output pixel.
    private func bilinearReference(_ values: [Float], h: Int, w: Int, outH: Int, outW: Int, y: Int, x: Int) -> Float {
        func source(_ o: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Float) {
            let s = max(0, (Float(o) + 0.5) * Float(inSize) / Float(outSize) - 0.5)
            let i0 = min(Int(s), inSize - 1), i1 = min(i0 + 1, inSize - 1)
            return (i0, i1, s - Float(i0))
        }
        let (y0, y1, fy) = source(y, h, outH), (x0, x1, fx) = source(x, w, outW)
        let top = values[y0 * w + x0] * (1 - fx) + values[y0 * w + x1] * fx
        let bottom = values[y1 * w + x0] * (1 - fx) + values[y1 * w + x1] * fx
        return top * (1 - fy) + bottom * fy
    }

    func testUpsampleSumAndProductMatchDirectReference() {
        let a: [Float] = [0, 1, 2, 3, 4, 5], b: [Float] = [2, -1, 0.5, 1]   // 2×3 and 2×2 maps
        let mapA = Tensor(shape: [1, 1, 2, 3], values: a), mapB = Tensor(shape: [1, 1, 2, 2], values: b)
        let (H, W) = (5, 7)
        for mode in ["sum", "product"] {
            let config = AnomalyMapConfig(combine: mode, gaussianSigma: 0)
            let (maps, scores) = AnomalyMaps.combine([mapA, mapB], height: H, width: W, config: config)
            XCTAssertEqual(maps.shape, [1, 1, H, W])
            var expected: [Float] = []
            for y in 0..<H {
                for x in 0..<W {
                    let u = bilinearReference(a, h: 2, w: 3, outH: H, outW: W, y: y, x: x)
                    let v = bilinearReference(b, h: 2, w: 2, outH: H, outW: W, y: y, x: x)
                    expected.append(mode == "sum" ? u + v : u * v)
                }
            }
            for (got, want) in zip(maps.scalars, expected) { XCTAssertEqual(got, want, accuracy: 1e-5, mode) }
            XCTAssertEqual(scores[0], expected.max()!, accuracy: 1e-5)
        }
    }

    func testLayerWeightsScaleSumsAndExponentiateProducts() {
        let a: [Float] = [0.5, 1, 2, 3, 4, 5], b: [Float] = [2, 0.25, 0.5, 1]   // positive: powers are defined
        let mapA = Tensor(shape: [1, 1, 2, 3], values: a), mapB = Tensor(shape: [1, 1, 2, 2], values: b)
        let (H, W) = (5, 7)
        for mode in ["sum", "product"] {
            for weights: [Float] in [[0.25, 3], [0, 2], [1, 0]] {
                let config = AnomalyMapConfig(combine: mode, gaussianSigma: 0, layerWeights: weights)
                let (maps, scores) = AnomalyMaps.combine([mapA, mapB], height: H, width: W, config: config)
                var expected: [Float] = []
                for y in 0..<H {
                    for x in 0..<W {
                        let u = bilinearReference(a, h: 2, w: 3, outH: H, outW: W, y: y, x: x)
                        let v = bilinearReference(b, h: 2, w: 2, outH: H, outW: W, y: y, x: x)
                        // A zero weight leaves the layer out (also in a product, where u^0 = 1 would be the same).
                        expected.append(mode == "sum" ? weights[0] * u + weights[1] * v
                                                      : Foundation.pow(u, weights[0]) * Foundation.pow(v, weights[1]))
                    }
                }
                for (got, want) in zip(maps.scalars, expected) { XCTAssertEqual(got, want, accuracy: 1e-5 * max(1, abs(want)), "\(mode) \(weights)") }
                XCTAssertEqual(scores[0], expected.max()!, accuracy: 1e-5 * max(1, expected.max()!))
            }
        }
        // Unit weights are the unweighted map, bit for bit.
        let unweighted = AnomalyMaps.combine([mapA, mapB], height: H, width: W, config: AnomalyMapConfig(gaussianSigma: 2)).maps
        let ones = AnomalyMaps.combine([mapA, mapB], height: H, width: W, config: AnomalyMapConfig(gaussianSigma: 2, layerWeights: [1, 1])).maps
        XCTAssertEqual(unweighted.scalars, ones.scalars)
        // Validation: negative, non-finite and all-zero weights are refused with a reason.
        for bad: [Float] in [[-1, 1], [.nan, 1], [0, 0]] {
            XCTAssertThrowsError(try AnomalyMapConfig(layerWeights: bad).validate()) { error in
                XCTAssertTrue("\(error)".contains("layer weights"), "\(error)")
            }
        }
    }

    func testGaussianOfADeltaIsTheSampledNormalisedKernel() {
        let (H, W, sigma) = (41, 39, 2.5)
        var values = [Float](repeating: 0, count: H * W)
        values[20 * W + 19] = 1
        let (maps, _) = AnomalyMaps.combine([Tensor(shape: [1, 1, H, W], values: values)], height: H, width: W,
                                            config: AnomalyMapConfig(gaussianSigma: sigma))
        let radius = Int(4 * sigma + 0.5)   // 10: the delta's support stays inside the map
        let g = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = g.reduce(0, +)
        let out = maps.scalars
        for y in 0..<H {
            for x in 0..<W {
                let dy = y - 20, dx = x - 19
                let want = abs(dy) <= radius && abs(dx) <= radius ? g[dy + radius] * g[dx + radius] / (total * total) : 0
                XCTAssertEqual(Double(out[y * W + x]), want, accuracy: 1e-7, "(\(y), \(x))")
            }
        }
        XCTAssertEqual(out.reduce(0, +), 1, accuracy: 1e-5)
    }

    func testGaussianEdgesAreSymmetricReflections() {
        // A constant map stays constant (no darkening at the border), also when the kernel is wider
        // than the map; a ramp near an edge sees mirrored values (d c b a | a b c d).
        let (maps, _) = AnomalyMaps.combine([Tensor(shape: [1, 1, 6, 5], repeating: 3)], height: 6, width: 5,
                                            config: AnomalyMapConfig(gaussianSigma: 4))
        for v in maps.scalars { XCTAssertEqual(v, 3, accuracy: 1e-5) }
        XCTAssertEqual((-4...8).map { AnomalyMaps.mirror($0, 4) }, [3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0])
        // 1-D check along a row: a 1×4 ramp smoothed with σ = 0.5 (radius 2) by hand.
        let ramp: [Float] = [0, 1, 2, 3]
        let k = AnomalyMaps.gaussianKernel(sigma: 0.5)
        XCTAssertEqual(k.count, 5)
        let (row, _) = AnomalyMaps.combine([Tensor(shape: [1, 1, 1, 4], values: ramp)], height: 1, width: 4,
                                           config: AnomalyMapConfig(gaussianSigma: 0.5))
        let padded: [Float] = [1, 0, 0, 1, 2, 3, 3, 2]
        for x in 0..<4 {
            let want = (0..<5).reduce(Float(0)) { $0 + k[$1] * padded[x + $1] }
            XCTAssertEqual(row.scalars[x], want, accuracy: 1e-6)
        }
    }

    func testBorderExclusionAndTopKMean() {
        // 8×8 map: a large value on the border, smaller distinct values inside.
        var values = [Float](repeating: 0, count: 64)
        values[0] = 100                         // corner (border)
        values[3 * 8 + 3] = 5; values[4 * 8 + 4] = 4; values[2 * 8 + 5] = 3; values[5 * 8 + 2] = 2
        let map = Tensor(shape: [1, 1, 8, 8], values: values)
        func score(_ config: AnomalyMapConfig) -> Float { AnomalyMaps.combine([map], height: 8, width: 8, config: config).scores[0] }
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0)), 100)
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, borderIgnore: 1)), 5)
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, imageScore: "topk_mean", topK: 3, borderIgnore: 1)), 4)
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, imageScore: "topk_mean", topK: 2)), 52.5)
        // A 3-px margin leaves rows/cols 3...4: (2,5) and (5,2) drop out.
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, imageScore: "topk_mean", topK: 2, borderIgnore: 3)), 4.5)
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, imageScore: "topk_mean", topK: 3, borderIgnore: 2)), 4)
        // A margin larger than the map keeps the central pixels instead of scoring nothing.
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, borderIgnore: 50)), 5)
        // k larger than the region averages the whole region.
        XCTAssertEqual(score(AnomalyMapConfig(gaussianSigma: 0, imageScore: "topk_mean", topK: 1000, borderIgnore: 3)), 9.0 / 4, accuracy: 1e-6)
    }

    func testBatchOfImagesIsScoredIndependently() {
        var rng = SplitMix64(seed: 9)
        let layer1 = Tensor.uniform([3, 1, 4, 4], rng: &rng), layer2 = Tensor.uniform([3, 1, 2, 2], rng: &rng)
        let config = AnomalyMapConfig(gaussianSigma: 1.5, imageScore: "topk_mean", topK: 5, borderIgnore: 2)
        let (maps, scores) = AnomalyMaps.combine([layer1, layer2], height: 16, width: 16, config: config)
        for i in 0..<3 {
            let single = AnomalyMaps.combine([layer1.slice(axis: 0, i..<(i + 1)), layer2.slice(axis: 0, i..<(i + 1))],
                                             height: 16, width: 16, config: config)
            XCTAssertEqual(bits(single.maps), bits(maps.slice(axis: 0, i..<(i + 1))))
            XCTAssertEqual(single.scores[0].bitPattern, scores[i].bitPattern)
        }
    }

    func testConfigValidation() {
        XCTAssertNoThrow(try AnomalyMapConfig().validate())
        XCTAssertThrowsError(try AnomalyMapConfig(combine: "mean").validate())
        XCTAssertThrowsError(try AnomalyMapConfig(imageScore: "median").validate())
        XCTAssertThrowsError(try AnomalyMapConfig(gaussianSigma: -1).validate())
        XCTAssertThrowsError(try AnomalyMapConfig(topK: 0).validate())
    }
}
