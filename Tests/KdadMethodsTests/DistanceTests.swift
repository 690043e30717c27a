import XCTest
import KdadTensor
@testable import KdadMethods

final class DistanceTests: XCTestCase {
    func testCosineAndNormalizedL2AgainstHandValues() {
        // Layout [N=1, C=2, h=1, w=3]; positions: t=(1,0) s=(0,2) → cos 0; t=(3,4) s=(6,8) → cos 1;
        // t=(1,1) s=(1,0) → cos 1/√2.
        let t = Tensor(shape: [1, 2, 1, 3], values: [1, 3, 1, 0, 4, 1])
        let s = Tensor(shape: [1, 2, 1, 3], values: [0, 6, 1, 2, 8, 0])
        let expected: [Float] = [1, 0, 1 - 1 / Float(2).squareRoot()]
        for distance in [FeatureDistance.cosine, .normalizedL2] {
            let map = distance.map(teacher: t, student: s)
            XCTAssertEqual(map.shape, [1, 1, 1, 3])
            for (a, b) in zip(map.scalars, expected) { XCTAssertEqual(a, b, accuracy: 1e-6, "\(distance)") }
            XCTAssertEqual(distance.loss(teacher: t, student: s).item, expected.reduce(0, +) / 3, accuracy: 1e-6)
        }
        // Opposite vectors: both distances are 2.
        let opposite = FeatureDistance.normalizedL2.map(teacher: Tensor(shape: [1, 2, 1, 1], values: [1, 2]),
                                                        student: Tensor(shape: [1, 2, 1, 1], values: [-2, -4]))
        XCTAssertEqual(opposite.item, 2, accuracy: 1e-6)
    }

    func testNormalizedL2EqualsCosineOnRandomVectors() {
        // ½|a/|a| − b/|b||² = 1 − cos(a, b) for any non-zero vectors.
        var rng = SplitMix64(seed: 3)
        let t = Tensor.normal([2, 5, 3, 4], rng: &rng), s = Tensor.normal([2, 5, 3, 4], rng: &rng)
        let a = FeatureDistance.cosine.map(teacher: t, student: s).scalars
        let b = FeatureDistance.normalizedL2.map(teacher: t, student: s).scalars
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        XCTAssertGreaterThan(a.max()!, 0.5)
    }

    func testZeroVectorsGiveFiniteDistanceAndGradient() {
        let t = Tensor(shape: [1, 2, 1, 1], values: [1, 0])
        let s = Tensor(shape: [1, 2, 1, 1], values: [0, 0], requiresGrad: true)
        for distance in [FeatureDistance.cosine, .normalizedL2] {
            s.zeroGrad()
            let loss = distance.loss(teacher: t, student: s)
            XCTAssertTrue(loss.item.isFinite)
            loss.backward()
            XCTAssertTrue(s.grad!.scalars.allSatisfy(\.isFinite), "\(distance)")
        }
    }
}
