import Foundation
import KdadTensor
import XCTest

final class AutogradSemanticsTests: XCTestCase {
    func testGradientsAccumulateAcrossBackwardCallsAndThroughSharedInputs() {
        let x = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        // y = x·x + x uses x three times: dy/dx = 2x + 1.
        (x * x + x).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [3, 5])
        (x * 2).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [5, 7], "a second backward adds to .grad")
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testNoGradAndDetachRecordNothing() {
        let x = Tensor(shape: [2], values: [1, 2], requiresGrad: true)
        let y = Tensor.noGrad { x * 3 }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(Tensor.isGradEnabled)
        let z = x.detach() * 3
        XCTAssertFalse(z.requiresGrad)
        let w = (x.detach() * x).sum()
        w.backward()
        XCTAssertEqual(x.grad?.scalars, [1, 2], "the detached factor is a constant")
    }

    func testDeepChainsDoNotRecurse() {
        var t = Tensor(shape: [1], values: [1], requiresGrad: true)
        let leaf = t
        for _ in 0..<20_000 { t = t * 1.0001 }
        t.backward()
        XCTAssertEqual(Double(leaf.grad!.item), Foundation.pow(1.0001, 20_000), accuracy: 1e-2)
    }

    /// Op results must not keep themselves alive through their own backward node.
    func testGraphsAreFreedWhenTheirResultIsReleased() {
        weak var weakResult: Tensor?
        weak var weakIntermediate: Tensor?
        do {
            let x = randomTensor([2, 3, 4], seed: 70)
            let intermediate = x.sigmoid() / (x.square() + 1)
            let result = intermediate.softmax(axis: 1).tanh().sum()
            weakResult = result
            weakIntermediate = intermediate
            result.backward()
        }
        XCTAssertNil(weakResult)
        XCTAssertNil(weakIntermediate)
    }

    /// Large freed buffers are reused (no fresh page faults) up to the limit, and can be released.
    func testBufferCacheReusesAndReleasesLargeBuffers() {
        TensorRuntime.releaseCachedMemory()
        XCTAssertEqual(TensorRuntime.cachedMemory, 0)
        do { let big = Tensor(shape: [100_000], repeating: 3); XCTAssertEqual(big.scalars[99_999], 3) }
        XCTAssertEqual(TensorRuntime.cachedMemory, 400_000)
        let reused = Tensor.zeros([100_000])
        XCTAssertEqual(TensorRuntime.cachedMemory, 0, "the cached buffer was taken")
        XCTAssertTrue(reused.scalars.allSatisfy { $0 == 0 }, "zeros initialises reused memory")
        do { _ = Tensor.zeros([1000]) }
        XCTAssertEqual(TensorRuntime.cachedMemory, 0, "small buffers go straight back to malloc")
        let limit = TensorRuntime.cachedMemoryLimit
        TensorRuntime.cachedMemoryLimit = 100_000
        do { _ = Tensor.zeros([100_000]) }
        XCTAssertEqual(TensorRuntime.cachedMemory, 0, "buffers beyond the limit are freed")
        TensorRuntime.cachedMemoryLimit = limit
        do { _ = Tensor.zeros([50_000]) }
        XCTAssertEqual(TensorRuntime.releaseCachedMemory(), 200_000)
        XCTAssertEqual(TensorRuntime.cachedMemory, 0)
    }

    func testSeededRandomnessIsReproducible() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 43)
        XCTAssertEqual(Tensor.normal([64], rng: &a).scalars, Tensor.normal([64], rng: &b).scalars)
        XCTAssertNotEqual(Tensor.uniform([64], rng: &a).scalars, Tensor.uniform([64], rng: &c).scalars)
        var m = SplitMix64(seed: 7)
        let mask = Tensor.bernoulliMask([10_000], keepProbability: 0.3, rng: &m)
        XCTAssertEqual(Double(mask.sum().item) / 10_000, 0.3, accuracy: 0.02)
        var r = SplitMix64(seed: 8)
        let boxes = Tensor.rectangleMask(batch: 2, height: 8, width: 8, boxH: 3, boxW: 2, count: 1, rng: &r)
        XCTAssertEqual(boxes.shape, [2, 1, 8, 8])
        XCTAssertEqual(boxes.sum(axes: [1, 2, 3]).scalars, [58, 58])
        var u = SplitMix64(seed: 9)
        let normal = Tensor.normal([20_000], rng: &u).scalars
        let mean = normal.reduce(0, +) / 20_000
        let variance = normal.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 20_000
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }

    /// Same inputs, same thread count → bit-identical conv forward and backward.
    func testConvolutionIsDeterministic() {
        func run() -> [[Float]] {
            let x = randomTensor([4, 16, 20, 20], seed: 60)
            let w = randomTensor([24, 16, 3, 3], seed: 61, scale: 0.1)
            let dw = randomTensor([24, 1, 5, 5], seed: 62, scale: 0.1)
            let y = Tensor.conv2d(Tensor.conv2d(x, weight: w, padding: 1), weight: dw, padding: 2, groups: 24)
            let stats = Tensor.batchNorm(y, weight: nil, bias: nil, runningMean: nil, runningVar: nil, training: true)
            stats.square().mean().backward()
            return [y.scalars, x.grad!.scalars, w.grad!.scalars, dw.grad!.scalars]
        }
        XCTAssertEqual(run(), run())
    }
}
