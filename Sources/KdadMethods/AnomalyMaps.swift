import Foundation
import KdadTensor

/// How per-layer distance maps become one anomaly map and an image score.
public struct AnomalyMapConfig: Codable, Hashable, Sendable {
    /// "sum" | "product" of the per-layer maps upsampled to the output size.
    public var combine: String = "sum"
    /// Standard deviation in output pixels of the Gaussian smoothing; 0 = off.
    public var gaussianSigma: Double = 4
    /// "max" | "topk_mean"
    public var imageScore: String = "max"
    public var topK: Int = 10
    /// Pixels at each edge excluded from the image score (MEASURED.md: border effects). The map
    /// itself is unchanged.
    public var borderIgnore: Int = 0
    /// One weight per layer map, in the student's layer order: "sum" adds `w_l · map_l`, "product"
    /// multiplies `map_l ^ w_l`; a weight of 0 leaves that layer out. nil = every weight 1.
    /// (Deep layers localise large-area defects better, shallow ones small sharp ones: the mix
    /// is a per-product choice, Docs/methods.md.)
    public var layerWeights: [Float]? = nil

    public init(combine: String = "sum", gaussianSigma: Double = 4, imageScore: String = "max", topK: Int = 10,
                borderIgnore: Int = 0, layerWeights: [Float]? = nil) {
        self.combine = combine; self.gaussianSigma = gaussianSigma; self.imageScore = imageScore
        self.topK = topK; self.borderIgnore = borderIgnore; self.layerWeights = layerWeights
    }

    /// Checks the values; `combine` traps on invalid ones (programmer error), so stages call this
    /// when they read a configuration.
    public func validate() throws {
        func fail(_ reason: String) -> AnomalyMapConfigError { AnomalyMapConfigError(reason: reason) }
        guard ["sum", "product"].contains(combine) else { throw fail("combine must be \"sum\" or \"product\", not \"\(combine)\"") }
        guard ["max", "topk_mean"].contains(imageScore) else {
            throw fail("imageScore must be \"max\" or \"topk_mean\", not \"\(imageScore)\"")
        }
        guard gaussianSigma.isFinite, gaussianSigma >= 0, gaussianSigma <= 256 else { throw fail("gaussianSigma \(gaussianSigma) must be in 0...256") }
        guard topK >= 1 else { throw fail("topK \(topK) must be at least 1") }
        guard borderIgnore >= 0 else { throw fail("borderIgnore \(borderIgnore) must not be negative") }
        if let weights = layerWeights {
            guard weights.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1000 }) else {
                throw fail("layer weights \(weights) must be numbers in 0...1000")
            }
            guard weights.contains(where: { $0 > 0 }) else { throw fail("layer weights \(weights) leave no layer in the map: give at least one a weight above 0") }
        }
    }
}

public struct AnomalyMapConfigError: Error, CustomStringConvertible, Equatable {
    public var reason: String
    public var description: String { "anomaly map configuration: \(reason)" }
}

public enum AnomalyMaps {
    /// Layer maps ([N, 1, h_l, w_l] each) → [N, 1, H, W] anomaly maps at (height, width) and one score
    /// per image.
    ///
    /// Upsampling is bilinear with half-pixel centres (PyTorch `align_corners=False`). Smoothing is a
    /// separable Gaussian with radius ⌊4σ + ½⌋ (SciPy's `truncate=4`), weights normalised to sum 1,
    /// and symmetric edges (SciPy "reflect": d c b a | a b c d | d c b a), which keeps a constant map
    /// constant up to the border instead of darkening it as zero padding would.
    public static func combine(_ layerMaps: [Tensor], height: Int, width: Int,
                               config: AnomalyMapConfig) -> (maps: Tensor, scores: [Float]) {
        precondition(!layerMaps.isEmpty, "AnomalyMaps.combine: no layer maps")
        precondition((try? config.validate()) != nil, "AnomalyMaps.combine: invalid configuration \(config)")
        let n = layerMaps[0].shape[0]
        for m in layerMaps { precondition(m.rank == 4 && m.shape[0] == n && m.shape[1] == 1, "AnomalyMaps.combine: layer map \(m.shape)") }
        let weights = config.layerWeights ?? [Float](repeating: 1, count: layerMaps.count)
        precondition(weights.count == layerMaps.count, "AnomalyMaps.combine: \(weights.count) layer weights for \(layerMaps.count) layer maps")
        let combined: Tensor = Tensor.noGrad {
            var result: Tensor?
            for (m, weight) in zip(layerMaps, weights) where weight != 0 {
                var up = (m.shape[2] == height && m.shape[3] == width) ? m : m.resizeBilinear(height: height, width: width, alignCorners: false)
                // Weight 1 multiplies by nothing, so the unweighted map stays bit-identical to before.
                if weight != 1 { up = config.combine == "product" ? up.pow(weight) : up * weight }
                if let r = result { result = config.combine == "product" ? r * up : r + up } else { result = up }
            }
            // A fresh tensor: the smoothing below writes in place.
            return result!.copy()
        }
        let plane = height * width
        let kernel = gaussianKernel(sigma: config.gaussianSigma)
        var scores = [Float](repeating: 0, count: n)
        combined.withUnsafeMutableBufferPointer { maps in
            scores.withUnsafeMutableBufferPointer { scoreBuffer in
                let mapsBase = UnsafeSendablePointer(maps.baseAddress!), scoreBase = UnsafeSendablePointer(scoreBuffer.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: n) { image in
                    let map = mapsBase.pointer + image * plane
                    if kernel.count > 1 { smooth(map, height: height, width: width, kernel: kernel) }
                    scoreBase.pointer[image] = score(map, height: height, width: width, config: config)
                }
            }
        }
        return (combined, scores)
    }

    /// Normalised Gaussian weights for offsets −r…r, r = ⌊4σ + ½⌋; [1] when σ = 0.
    public static func gaussianKernel(sigma: Double) -> [Float] {
        guard sigma > 0 else { return [1] }
        let radius = Int(4 * sigma + 0.5)
        let raw = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = raw.reduce(0, +)
        return raw.map { Float($0 / total) }
    }

    /// Symmetric ("reflect" in SciPy) index into 0..<n for any integer, also when the kernel is
    /// wider than the map (the mirror repeats with period 2n).
    @inline(__always)
    static func mirror(_ i: Int, _ n: Int) -> Int {
        let period = 2 * n
        var k = i % period
        if k < 0 { k += period }
        return k < n ? k : period - 1 - k
    }

    /// Separable Gaussian in place: rows, then columns. Every output pixel sums its taps in kernel
    /// order starting from 0 (the order of a plain per-pixel loop), but the loops run along x with
    /// the tap outermost, so the compiler vectorises them; the column pass reads whole rows instead
    /// of striding down columns.
    static func smooth(_ map: UnsafeMutablePointer<Float>, height: Int, width: Int, kernel: [Float]) {
        let radius = kernel.count / 2
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: width + 2 * radius)
        let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: width)
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: height * width)
        defer { padded.deallocate(); accumulator.deallocate(); copy.deallocate() }
        kernel.withUnsafeBufferPointer { k in
            for y in 0..<height {
                let row = map + y * width
                for j in 0..<(width + 2 * radius) { padded[j] = row[mirror(j - radius, width)] }
                accumulator.update(repeating: 0, count: width)
                for t in 0..<k.count {
                    let weight = k[t], source = padded + t
                    for x in 0..<width { accumulator[x] += weight * source[x] }
                }
                row.update(from: accumulator, count: width)
            }
            copy.update(from: map, count: height * width)
            for y in 0..<height {
                accumulator.update(repeating: 0, count: width)
                for t in 0..<k.count {
                    let weight = k[t], source = copy + mirror(y + t - radius, height) * width
                    for x in 0..<width { accumulator[x] += weight * source[x] }
                }
                (map + y * width).update(from: accumulator, count: width)
            }
        }
    }

    /// Max or mean of the k largest values inside the border margin. The margin shrinks so that at
    /// least the central pixel(s) remain.
    static func score(_ map: UnsafeMutablePointer<Float>, height: Int, width: Int, config: AnomalyMapConfig) -> Float {
        let borderY = min(config.borderIgnore, (height - 1) / 2), borderX = min(config.borderIgnore, (width - 1) / 2)
        let rows = borderY..<(height - borderY), cols = borderX..<(width - borderX)
        if config.imageScore == "max" {
            var best = -Float.infinity
            for y in rows { for x in cols { best = max(best, map[y * width + x]) } }
            return best
        }
        var values: [Float] = []
        values.reserveCapacity(rows.count * cols.count)
        for y in rows { for x in cols { values.append(map[y * width + x]) } }
        let k = min(config.topK, values.count)
        values.sort(by: >)
        var total: Double = 0
        for v in values[0..<k] { total += Double(v) }
        return Float(total / Double(k))
    }
}

/// A raw pointer handed to `concurrentPerform`; each iteration touches only its own image.
struct UnsafeSendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
