// Pixel-level metrics over a whole test set: pixel AUROC and PRO (MVTec AD protocol).
//
// Both are computed EXACTLY (no score binning). Every pixel is stored once as an order-preserving
// 32-bit key of its score (good pixels: 4 bytes; defect pixels: 8 bytes, the key plus the size of the
// ground-truth region it belongs to). At the end the keys are radix-sorted and one sweep from the
// highest score down visits every distinct score value: a tie group adds
//   - to twice the Mann–Whitney U:  2 * positives * (negatives strictly below) + positives * negatives
//   - to the PRO curve: FPR(t) = negatives >= t / all negatives,
//                       PRO(t) = (1 / regions) * sum over defect pixels >= t of 1 / |own region|
//     (= the mean over regions of |region ∩ {map >= t}| / |region|),
// and the trapezoidal area under (FPR, PRO) from FPR 0 up to the limit (interpolated linearly at the
// limit) is accumulated and finally divided by the limit. This is the computation of the MVTec AD
// reference script (sort all scores, cumulative sums, merge equal scores, trapezoid with x_max).
// Memory for the 256x256 MTD test set (583 maps, 38M pixels): about 160 MB of keys plus the same
// again as radix scratch while sorting.

/// Pixel AUROC, PRO and the counts they came from.
public struct PixelMetrics: Sendable, Equatable, Codable {
    /// Exact area under the pixel ROC curve (ties count 1/2).
    public var auroc: Double
    /// Normalised area under the PRO curve up to `fprLimit` (1 is perfect).
    public var pro: Double
    public var fprLimit: Double
    public var regionCount: Int
    public var defectPixelCount: Int
    public var goodPixelCount: Int
}

/// The stored pixels of many images; per-image ranges let callers regroup images (breakdowns).
struct PixelPool: Sendable {
    /// Ordered keys of ground-truth-negative pixels.
    var negativeKeys: [UInt32] = []
    /// Defect pixels: ordered key in the high 32 bits, size of the pixel's region in the low 32 bits.
    var positiveEntries: [UInt64] = []
    /// Per image: the ranges of its pixels in the two arrays and its number of regions.
    var imageNegativeRanges: [Range<Int>] = []
    var imagePositiveRanges: [Range<Int>] = []
    var imageRegionCounts: [Int] = []
    var regionCount = 0

    var imageCount: Int { imageRegionCounts.count }

    /// Adds one image. `regionLabels`/`regionSizes` come from connected components; when nil every
    /// defect pixel is recorded with region size 1 (pixel AUROC only, no PRO).
    mutating func append(map: [Float], mask: [Bool], components: ConnectedComponents?,
                         what: String) throws(MetricsError) {
        guard map.count == mask.count else {
            throw .lengthMismatch(what: what, expected: map.count, actual: mask.count)
        }
        try validateScores(map, what: what)
        let negativeStart = negativeKeys.count, positiveStart = positiveEntries.count
        if let components {
            for index in map.indices {
                let key = orderedKey(map[index])
                let label = Int(components.labels[index])
                if label == 0 {
                    negativeKeys.append(key)
                } else {
                    positiveEntries.append(UInt64(key) << 32 | UInt64(components.regionSizes[label - 1]))
                }
            }
        } else {
            for index in map.indices {
                let key = orderedKey(map[index])
                if mask[index] { positiveEntries.append(UInt64(key) << 32 | 1) } else { negativeKeys.append(key) }
            }
        }
        let regions = components?.regionCount ?? 0
        imageNegativeRanges.append(negativeStart..<negativeKeys.count)
        imagePositiveRanges.append(positiveStart..<positiveEntries.count)
        imageRegionCounts.append(regions)
        regionCount += regions
    }

    /// A pool holding only the listed images (in that order).
    func subset(images: [Int]) -> PixelPool {
        var result = PixelPool()
        result.negativeKeys.reserveCapacity(images.reduce(0) { $0 + imageNegativeRanges[$1].count })
        result.positiveEntries.reserveCapacity(images.reduce(0) { $0 + imagePositiveRanges[$1].count })
        for image in images {
            let negativeStart = result.negativeKeys.count, positiveStart = result.positiveEntries.count
            result.negativeKeys.append(contentsOf: negativeKeys[imageNegativeRanges[image]])
            result.positiveEntries.append(contentsOf: positiveEntries[imagePositiveRanges[image]])
            result.imageNegativeRanges.append(negativeStart..<result.negativeKeys.count)
            result.imagePositiveRanges.append(positiveStart..<result.positiveEntries.count)
            result.imageRegionCounts.append(imageRegionCounts[image])
            result.regionCount += imageRegionCounts[image]
        }
        return result
    }

    /// Sorts the pool's keys (destroying the per-image layout) and sweeps them once.
    /// `fprLimit == nil` skips PRO (the result's `pro` is then NaN).
    consuming func sweep(fprLimit: Double?, what: String) throws(MetricsError) -> PixelMetrics {
        let negatives = negativeKeys.count, positives = positiveEntries.count
        guard negatives + positives > 0 else { throw .emptyInput(what: what) }
        guard positives > 0 else { throw .missingClass(what: what, missing: "defect-pixel") }
        guard negatives > 0 else { throw .missingClass(what: what, missing: "good-pixel") }
        // Release the per-image bookkeeping before the large sort.
        imageNegativeRanges = []; imagePositiveRanges = []; imageRegionCounts = []
        radixSort(&negativeKeys)
        radixSortByHighWord(&positiveEntries)

        let limit = fprLimit ?? 0
        let regions = Double(regionCount)
        var twiceU = 0
        var negativesAbove = 0
        var overlapSum = 0.0  // sum over defect pixels >= t of 1 / |region|
        var previousFPR = 0.0, previousPRO = 0.0, area = 0.0
        var integrating = fprLimit != nil
        var n = negatives - 1, p = positives - 1
        negativeKeys.withUnsafeBufferPointer { negativeKey in
            positiveEntries.withUnsafeBufferPointer { positiveEntry in
                while n >= 0 || p >= 0 {
                    let topNegative = n >= 0 ? negativeKey[n] : 0
                    let topPositive = p >= 0 ? UInt32(truncatingIfNeeded: positiveEntry[p] >> 32) : 0
                    // Keys of non-NaN floats are never 0, so 0 safely means "exhausted".
                    let key = max(topNegative, topPositive)
                    var groupNegatives = 0, groupPositives = 0
                    while n >= 0 && negativeKey[n] == key { groupNegatives += 1; n -= 1 }
                    while p >= 0 && UInt32(truncatingIfNeeded: positiveEntry[p] >> 32) == key {
                        overlapSum += 1 / Double(positiveEntry[p] & 0xFFFF_FFFF)
                        groupPositives += 1
                        p -= 1
                    }
                    negativesAbove += groupNegatives
                    twiceU += 2 * groupPositives * (negatives - negativesAbove) + groupPositives * groupNegatives
                    if integrating {
                        let fpr = Double(negativesAbove) / Double(negatives)
                        let pro = overlapSum / regions
                        if fpr >= limit {
                            // Cut the last segment at the limit (the segment may be a diagonal when
                            // good and defect pixels tie).
                            let proAtLimit = fpr == previousFPR ? pro
                                : previousPRO + (pro - previousPRO) * (limit - previousFPR) / (fpr - previousFPR)
                            area += (limit - previousFPR) * (previousPRO + proAtLimit) / 2
                            integrating = false
                        } else {
                            area += (fpr - previousFPR) * (previousPRO + pro) / 2
                            previousFPR = fpr
                            previousPRO = pro
                        }
                    }
                }
            }
        }
        let auroc = Double(twiceU) / (2 * Double(positives) * Double(negatives))
        return PixelMetrics(auroc: auroc, pro: fprLimit == nil ? .nan : area / limit,
                            fprLimit: fprLimit ?? .nan, regionCount: regionCount,
                            defectPixelCount: positives, goodPixelCount: negatives)
    }
}

func validateFPRLimit(_ limit: Double) throws(MetricsError) {
    guard limit > 0, limit <= 1 else {
        throw .invalidArgument(name: "fprLimit", value: limit, reason: "must be in (0, 1]")
    }
}

/// Exact pixel AUROC over many (anomaly map, ground-truth mask) pairs added one image at a time.
/// Maps may have different sizes; only the pixel pairing within an image matters.
public struct PixelROCAccumulator: Sendable {
    var pool = PixelPool()

    public init() {}

    public var defectPixelCount: Int { pool.positiveEntries.count }
    public var goodPixelCount: Int { pool.negativeKeys.count }

    /// Adds one image: `map[i]` is the anomaly score of pixel i, `mask[i]` whether it is a defect pixel.
    public mutating func add(map: [Float], mask: [Bool]) throws(MetricsError) {
        try pool.append(map: map, mask: mask, components: nil, what: "pixel AUROC image \(pool.imageCount)")
    }

    /// The exact pixel AUROC of everything added so far. Sorts a copy of the stored keys.
    public func auroc() throws(MetricsError) -> Double {
        try pool.sweep(fprLimit: nil, what: "pixel AUROC").auroc
    }
}

/// PRO (MVTec AD per-region overlap, normalised area up to `fprLimit`) and pixel AUROC over many
/// images added one at a time. Regions are the 8-connected components of each image's mask; the
/// mean overlap is over ALL regions of all images; the FPR counts good pixels of all images (defect-
/// free images included).
public struct PixelMetricsAccumulator: Sendable {
    var pool = PixelPool()
    public let fprLimit: Double

    public init(fprLimit: Double = 0.3) throws(MetricsError) {
        try validateFPRLimit(fprLimit)
        self.fprLimit = fprLimit
    }

    public var regionCount: Int { pool.regionCount }
    public var defectPixelCount: Int { pool.positiveEntries.count }
    public var goodPixelCount: Int { pool.negativeKeys.count }

    /// Adds one row-major `width` x `height` image.
    public mutating func add(map: [Float], mask: [Bool], width: Int, height: Int) throws(MetricsError) {
        let what = "pixel metrics image \(pool.imageCount)"
        guard map.count == mask.count else {
            throw .lengthMismatch(what: what, expected: map.count, actual: mask.count)
        }
        let components = try connectedComponents(mask: mask, width: width, height: height)
        try pool.append(map: map, mask: mask, components: components, what: what)
    }

    /// Pixel AUROC and PRO of everything added so far. Sorts a copy of the stored keys.
    public func compute() throws(MetricsError) -> PixelMetrics {
        try pool.sweep(fprLimit: fprLimit, what: "pixel metrics")
    }
}
