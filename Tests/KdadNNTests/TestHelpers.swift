import Foundation
import XCTest
import KdadTensor
import KdadWeights
import KdadTestSupport
@testable import KdadNN

/// ‖a − b‖ / ‖b‖ in double precision.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "relativeError: \(a.count) vs \(b.count) values")
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return (num / max(den, .leastNormalMagnitude)).squareRoot()
}

/// The cached ImageNet weights of `variant`, or a skip naming the command that fetches them.
func cachedTeacherWeights(_ variant: EfficientNetLiteVariant) throws -> URL {
    do { return try WeightCache.url(for: variant.cacheName) } catch {
        let reason = "skipped: \(error)"
        print(reason)
        throw XCTSkip(reason)
    }
}

/// Indices of the `k` largest values, largest first.
func topK(_ values: [Float], _ k: Int) -> [Int] {
    Array(values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(k))
}

/// A tensor with seeded uniform values in [lo, hi).
func seededTensor(_ shape: [Int], seed: UInt64, lo: Float = -1, hi: Float = 1) -> Tensor {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    let count = shape.reduce(1, *)
    var values = [Float](repeating: 0, count: count)
    for i in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let u = Float(state >> 40) / Float(1 << 24)
        values[i] = lo + (hi - lo) * u
    }
    return Tensor(shape: shape, values: values)
}
