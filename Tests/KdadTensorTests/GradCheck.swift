import Foundation
import KdadTensor
import XCTest

/// Central finite differences of L = Σ f(inputs) · r (r a fixed random projection, sums in Double)
/// against the autograd gradients, for every input that requires a gradient.
/// Float32 forward passes: eps 1e-2 keeps both the rounding error (~1e-6/eps) and the truncation
/// error (~eps²) near 1e-4 relative; the tolerance is 2e-3 on ‖numeric − analytic‖/‖numeric‖.
func assertGradientsMatch(_ name: String, _ inputs: [Tensor], eps: Float = 1e-2, tolerance: Double = 2e-3,
                          file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
    for input in inputs { input.grad = nil }
    let out = f(inputs)
    var rng = SplitMix64(seed: 99)
    let projection = Tensor.normal(out.shape, rng: &rng)
    let r = projection.scalars
    (out * projection).sum().backward()

    func objective() -> Double {
        let values = Tensor.noGrad { f(inputs) }.scalars
        return zip(values, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    for (index, input) in inputs.enumerated() where input.requiresGrad {
        guard let analytic = input.grad?.scalars else {
            XCTFail("\(name): input \(index) got no gradient", file: file, line: line); continue
        }
        var numeric = [Double](repeating: 0, count: input.count)
        for i in 0..<input.count {
            let original = input.scalars[i]
            input.withUnsafeMutableBufferPointer { $0[i] = original + eps }
            let plus = objective()
            input.withUnsafeMutableBufferPointer { $0[i] = original - eps }
            let minus = objective()
            input.withUnsafeMutableBufferPointer { $0[i] = original }
            numeric[i] = (plus - minus) / (2 * Double(eps))
        }
        let norm = numeric.reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertGreaterThan(norm, 1e-6, "\(name): input \(index) has a vanishing numeric gradient (test is uninformative)",
                             file: file, line: line)
        let error = relativeError(analytic, numeric)
        XCTAssertLessThanOrEqual(error, tolerance, "\(name): input \(index) relative gradient error \(error)", file: file, line: line)
    }
}

/// Seeded values pushed at least `margin` away from each kink in `kinks` (for ReLU-like ops).
func awayFromKinks(_ shape: [Int], seed: UInt64, kinks: [Float] = [0], margin: Float = 0.1, scale: Float = 1) -> Tensor {
    var rng = SplitMix64(seed: seed)
    let values = (0..<shape.reduce(1, *)).map { _ -> Float in
        var v = rng.nextNormal() * scale
        for k in kinks where Swift.abs(v - k) < margin { v = v < k ? k - margin : k + margin }
        return v
    }
    return Tensor(shape: shape, values: values, requiresGrad: true)
}

/// Distinct values spaced 0.05 apart in seeded random order (no near-ties for max-like ops).
func distinctValues(_ shape: [Int], seed: UInt64) -> Tensor {
    var rng = SplitMix64(seed: seed)
    let count = shape.reduce(1, *)
    var values = (0..<count).map { Float($0) * 0.05 - Float(count) * 0.025 }
    values.shuffle(using: &rng)
    return Tensor(shape: shape, values: values, requiresGrad: true)
}
