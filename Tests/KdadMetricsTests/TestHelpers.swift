import Foundation
import XCTest
@testable import KdadMetrics

/// SplitMix64: a tiny seeded generator so every random test is reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1), never exactly 0 (safe for logarithms).
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())
    }
    /// Gamma(shape, scale) by Marsaglia & Tsang (2000); shape < 1 via the boost Gamma(k+1) * U^(1/k).
    mutating func gamma(shape: Double, scale: Double) -> Double {
        if shape < 1 {
            return gamma(shape: shape + 1, scale: scale) * pow(uniform(), 1 / shape)
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            let x = normal()
            let v0 = 1 + c * x
            if v0 <= 0 { continue }
            let v = v0 * v0 * v0
            if log(uniform()) < 0.5 * x * x + d - d * v + d * log(v) { return d * v * scale }
        }
    }
}

/// Brute force: the fraction of (defect, good) pairs ranked correctly, ties 1/2. O(n²).
func bruteForceAUROC(scores: [Float], labels: [Bool]) -> Double {
    var wins = 0.0, pairs = 0.0
    for i in scores.indices where labels[i] {
        for j in scores.indices where !labels[j] {
            pairs += 1
            if scores[i] > scores[j] { wins += 1 } else if scores[i] == scores[j] { wins += 0.5 }
        }
    }
    return wins / pairs
}

/// Brute force F1-max: try every distinct score as threshold, recount from scratch each time.
func bruteForceF1Max(scores: [Float], labels: [Bool]) -> (f1: Double, threshold: Float) {
    var best = (f1: -1.0, threshold: Float.nan)
    for threshold in Set(scores).sorted(by: >) {
        var tp = 0.0, fp = 0.0, fn = 0.0
        for (score, label) in zip(scores, labels) {
            if score >= threshold { if label { tp += 1 } else { fp += 1 } } else if label { fn += 1 }
        }
        let precision = tp + fp == 0 ? 1 : tp / (tp + fp)
        let recall = tp / (tp + fn)
        let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)
        if f1 > best.f1 { best = (f1, threshold) }
    }
    return best
}

/// Brute force 8-connected labelling by repeated min-label propagation until nothing changes.
/// Returns, per pixel, a region id (-1 background); ids are arbitrary but equal within a region.
func bruteForceRegions(mask: [Bool], width: Int, height: Int) -> [Int] {
    var label = mask.indices.map { mask[$0] ? $0 : -1 }
    var changed = true
    while changed {
        changed = false
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] {
                var smallest = label[y * width + x]
                for ny in max(0, y - 1)...min(height - 1, y + 1) {
                    for nx in max(0, x - 1)...min(width - 1, x + 1) where mask[ny * width + nx] {
                        smallest = min(smallest, label[ny * width + nx])
                    }
                }
                if smallest < label[y * width + x] { label[y * width + x] = smallest; changed = true }
            }
        }
    }
    return label
}

struct TestImage {
    var map: [Float]
    var mask: [Bool]
    var width: Int
    var height: Int
}

/// Brute-force PRO: for every distinct score t (descending) compute every region's overlap and the
/// FPR from scratch, prepend (0, 0), then integrate the trapezoids up to `limit` (interpolating the
/// crossing segment) and divide by `limit`.
func bruteForcePRO(_ images: [TestImage], limit: Double) -> Double {
    var regions: [(image: Int, pixels: [Int])] = []
    for (index, image) in images.enumerated() {
        let labels = bruteForceRegions(mask: image.mask, width: image.width, height: image.height)
        var byLabel: [Int: [Int]] = [:]
        for (pixel, label) in labels.enumerated() where label >= 0 { byLabel[label, default: []].append(pixel) }
        for key in byLabel.keys.sorted() { regions.append((index, byLabel[key]!)) }
    }
    let negativeCount = images.reduce(0) { $0 + $1.mask.filter { !$0 }.count }
    let thresholds = Set(images.flatMap(\.map)).sorted(by: >)
    var curve: [(fpr: Double, pro: Double)] = [(0, 0)]
    for t in thresholds {
        var overlapSum = 0.0
        for region in regions {
            let map = images[region.image].map
            overlapSum += Double(region.pixels.filter { map[$0] >= t }.count) / Double(region.pixels.count)
        }
        var falsePositives = 0
        for image in images {
            for (score, isDefect) in zip(image.map, image.mask) where !isDefect && score >= t { falsePositives += 1 }
        }
        curve.append((Double(falsePositives) / Double(negativeCount), overlapSum / Double(regions.count)))
    }
    var area = 0.0
    for i in 1..<curve.count {
        let (x0, y0) = curve[i - 1], (x1, y1) = curve[i]
        if x1 <= limit {
            area += (x1 - x0) * (y0 + y1) / 2
        } else {
            let yAtLimit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + yAtLimit) / 2
            break
        }
    }
    return area / limit
}

/// Random images with blob-ish masks and quantised scores (so ties between good and defect pixels
/// are frequent). Defect pixels score higher on average so metrics are far from 0.5.
func randomImages(count: Int, generator: inout SeededGenerator, levels: Int = 20) -> [TestImage] {
    (0..<count).map { _ in
        let width = 6 + Int(generator.next() % 8), height = 5 + Int(generator.next() % 8)
        var mask = [Bool](repeating: false, count: width * height)
        // A few seeds, each grown into a small random blob.
        for _ in 0..<Int(generator.next() % 4) {
            var x = Int(generator.next() % UInt64(width)), y = Int(generator.next() % UInt64(height))
            for _ in 0..<Int(1 + generator.next() % 6) {
                mask[y * width + x] = true
                x = min(width - 1, max(0, x + Int(generator.next() % 3) - 1))
                y = min(height - 1, max(0, y + Int(generator.next() % 3) - 1))
            }
        }
        let map = mask.map { isDefect -> Float in
            let base = generator.uniform() + (isDefect ? 0.4 : 0)
            return Float((base * Double(levels)).rounded(.down)) / Float(levels)
        }
        return TestImage(map: map, mask: mask, width: width, height: height)
    }
}

func XCTAssertThrowsMetricsError<T>(_ expression: @autoclosure () throws -> T, _ expected: MetricsError,
                                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try expression(), file: file, line: line) { error in
        XCTAssertEqual(error as? MetricsError, expected, file: file, line: line)
    }
}
