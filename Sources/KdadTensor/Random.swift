import Foundation

/// SplitMix64: a small, fast, seedable generator (Steele, Lea & Flood 2014). Every random tensor
/// in kdad takes one of these (or a seed) explicitly, so runs are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal (Box–Muller, computed in Double).
    public mutating func nextNormal() -> Float {
        let u1 = Double((next() >> 11) + 1) * (1.0 / 9_007_199_254_740_993.0)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

extension Tensor {
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, rng: inout SplitMix64,
                               requiresGrad: Bool = false) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ in low + (high - low) * rng.nextUniform() }
        return Tensor(shape: shape, values: values, requiresGrad: requiresGrad)
    }

    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, rng: inout SplitMix64,
                              requiresGrad: Bool = false) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ in mean + std * rng.nextNormal() }
        return Tensor(shape: shape, values: values, requiresGrad: requiresGrad)
    }

    /// 1 with probability `keepProbability`, else 0 (dropout / random masking).
    public static func bernoulliMask(_ shape: [Int], keepProbability: Float, rng: inout SplitMix64) -> Tensor {
        let values = (0..<shape.reduce(1, *)).map { _ in rng.nextUniform() < keepProbability ? Float(1) : 0 }
        return Tensor(shape: shape, values: values)
    }

    /// Per-sample masks [N, 1, H, W] that zero `count` random rectangles of size `boxH`×`boxW`
    /// (cutout-style masking of the input or of feature maps).
    public static func rectangleMask(batch: Int, height: Int, width: Int, boxH: Int, boxW: Int, count: Int,
                                     rng: inout SplitMix64) -> Tensor {
        precondition(boxH <= height && boxW <= width, "rectangleMask: box larger than the map")
        var values = [Float](repeating: 1, count: batch * height * width)
        for b in 0..<batch {
            for _ in 0..<count {
                let top = Int(rng.next() % UInt64(height - boxH + 1)), left = Int(rng.next() % UInt64(width - boxW + 1))
                for y in top..<(top + boxH) { for x in left..<(left + boxW) { values[(b * height + y) * width + x] = 0 } }
            }
        }
        return Tensor(shape: [batch, 1, height, width], values: values)
    }

    /// Kaiming-uniform style initialisation for a weight with `fanIn` inputs: U(-1/√fanIn, 1/√fanIn)·gain.
    public static func kaimingUniform(_ shape: [Int], fanIn: Int, gain: Float = 1, rng: inout SplitMix64) -> Tensor {
        let bound = gain / Float(fanIn).squareRoot()
        return uniform(shape, low: -bound, high: bound, rng: &rng, requiresGrad: true)
    }
}
