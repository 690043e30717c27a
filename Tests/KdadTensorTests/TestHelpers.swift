import Foundation
import KdadTensor
import KdadWeights
import XCTest

/// ‖a − b‖ / ‖b‖ in Double.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) { diff += (Double(x) - y) * (Double(x) - y); norm += y * y }
    return (diff / norm).squareRoot()
}

func relativeError(_ a: [Float], _ b: [Float]) -> Double { relativeError(a, b.map(Double.init)) }

/// A tensor of seeded normal values.
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, requiresGrad: Bool = true) -> Tensor {
    var rng = SplitMix64(seed: seed)
    return Tensor.normal(shape, std: scale, rng: &rng, requiresGrad: requiresGrad)
}
