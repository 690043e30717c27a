import XCTest
@testable import KdadMetrics

final class PixelMetricsTests: XCTestCase {
    /// Two images, two regions, a good and a defect pixel tied at 0.3.
    ///   image A (3x2)  mask  X X .   map  0.9 0.3 0.6      region R1 = {0.9, 0.3}
    ///                        . . .        0.1 0.2 0.3
    ///   image B (2x2)  mask  . .     map  0.5 0.05         region R2 = {0.7}
    ///                        . X          0.0 0.7
    /// 7 good pixels {0.6, 0.1, 0.2, 0.3, 0.5, 0.05, 0.0}, 2 regions.
    let handImages = [
        TestImage(map: [0.9, 0.3, 0.6, 0.1, 0.2, 0.3], mask: [true, true, false, false, false, false], width: 3, height: 2),
        TestImage(map: [0.5, 0.05, 0.0, 0.7], mask: [false, false, false, true], width: 2, height: 2),
    ]

    func testPROHandCase() throws {
        // Curve (FPR, PRO) by descending threshold, starting at (0, 0):
        //   0.9 -> (0, 1/4)   half of R1           0.7 -> (0, 3/4)   + all of R2
        //   0.6 -> (1/7, 3/4)                      0.5 -> (2/7, 3/4)
        //   0.3 -> (3/7, 1)   a good pixel and the rest of R1 tie: a diagonal segment crossing 0.3.
        // At FPR 0.3 the diagonal is (0.3 - 2/7) / (1/7) = 1/10 of the way: PRO = 3/4 + 1/40 = 0.775.
        // Area = 3/4 * 2/7 + (0.3 - 2/7) * (0.75 + 0.775) / 2 = 3/14 + 61/5600 = 1261/5600;
        // normalised by 0.3: 1261/1680.
        var accumulator = try PixelMetricsAccumulator()
        for image in handImages {
            try accumulator.add(map: image.map, mask: image.mask, width: image.width, height: image.height)
        }
        XCTAssertEqual(accumulator.regionCount, 2)
        let metrics = try accumulator.compute()
        XCTAssertEqual(metrics.pro, 1261.0 / 1680, accuracy: 1e-14)
        XCTAssertEqual(metrics.pro, bruteForcePRO(handImages, limit: 0.3), accuracy: 1e-14)
        // Pixel AUROC: 0.9 and 0.7 beat all 7 good pixels; 0.3 beats 4 and ties 1 -> 18.5 / 21.
        XCTAssertEqual(metrics.auroc, 18.5 / 21, accuracy: 1e-15)
        XCTAssertEqual(metrics.defectPixelCount, 3)
        XCTAssertEqual(metrics.goodPixelCount, 7)
        // The mask-only accumulator sees the same pixels.
        var roc = PixelROCAccumulator()
        for image in handImages { try roc.add(map: image.map, mask: image.mask) }
        XCTAssertEqual(try roc.auroc(), 18.5 / 21, accuracy: 1e-15)
    }

    func testPROIsPerRegionNotPerPixel() throws {
        // One big region (8 pixels, all found at the top score) and one single-pixel region (missed):
        // per-pixel recall would be 8/9, the per-region mean is (1 + 0) / 2 = 1/2 until the miss is
        // reached at FPR 1 (its score is below every good pixel) -> PRO = 0.5 over [0, 0.3].
        var map = [Float](repeating: 0.5, count: 20), mask = [Bool](repeating: false, count: 20)
        for i in 0..<8 { mask[i] = true; map[i] = 1 }  // first row (width 10) minus two pixels
        mask[19] = true; map[19] = 0  // isolated corner pixel, not touching row 0
        var accumulator = try PixelMetricsAccumulator()
        try accumulator.add(map: map, mask: mask, width: 10, height: 2)
        XCTAssertEqual(try accumulator.compute().pro, 0.5, accuracy: 1e-15)
    }

    func testFastMatchesBruteForceOnRandomImages() throws {
        var generator = SeededGenerator(seed: 3)
        for trial in 0..<12 {
            let images = randomImages(count: 3 + trial % 5, generator: &generator, levels: trial % 2 == 0 ? 12 : 400)
            guard images.contains(where: { $0.mask.contains(true) }) else { continue }
            let limit = [0.3, 0.05, 1.0][trial % 3]
            var accumulator = try PixelMetricsAccumulator(fprLimit: limit)
            var roc = PixelROCAccumulator()
            for image in images {
                try accumulator.add(map: image.map, mask: image.mask, width: image.width, height: image.height)
                try roc.add(map: image.map, mask: image.mask)
            }
            let metrics = try accumulator.compute()
            XCTAssertEqual(metrics.pro, bruteForcePRO(images, limit: limit), accuracy: 1e-12, "trial \(trial)")
            let allScores = images.flatMap(\.map), allLabels = images.flatMap(\.mask)
            let expectedAUROC = bruteForceAUROC(scores: allScores, labels: allLabels)
            XCTAssertEqual(metrics.auroc, expectedAUROC, accuracy: 1e-12, "trial \(trial)")
            XCTAssertEqual(try roc.auroc(), expectedAUROC, accuracy: 1e-12, "trial \(trial)")
        }
    }

    func testLargeStreamAgreesWithImageLevelSortAUROC() throws {
        // 300k pixels in 30 maps with continuous scores (negative values and zeros of both signs too):
        // the radix-sorted sweep must equal the comparison-sorted Mann–Whitney exactly.
        var generator = SeededGenerator(seed: 5)
        var roc = PixelROCAccumulator()
        var allScores: [Float] = [], allLabels: [Bool] = []
        for _ in 0..<30 {
            let labels = (0..<10_000).map { _ in generator.next() % 10 == 0 }
            var map = labels.map { Float(generator.normal() + ($0 ? 1.5 : 0)) }
            map[0] = 0; map[1] = -0.0
            try roc.add(map: map, mask: labels)
            allScores += map; allLabels += labels
        }
        XCTAssertEqual(try roc.auroc(), try imageAUROC(scores: allScores, labels: allLabels), accuracy: 1e-12)
        XCTAssertEqual(roc.defectPixelCount + roc.goodPixelCount, 300_000)
    }

    func testOrderedKeysAndRadixSort() {
        let values: [Float] = [-.infinity, -3.5, -1, -.leastNonzeroMagnitude, 0, .leastNonzeroMagnitude, 1e-20, 1, 2.5, .infinity]
        let keys = values.map(orderedKey)
        XCTAssertEqual(keys, keys.sorted())
        XCTAssertEqual(Set(keys).count, values.count)
        XCTAssertEqual(orderedKey(-0.0), orderedKey(0))
        for value in values { XCTAssertEqual(scoreOfKey(orderedKey(value)), value) }

        var generator = SeededGenerator(seed: 9)
        for count in [0, 1, 2, 1000, 70_000] {
            // Narrow-range keys exercise the skipped passes; full-range keys every pass.
            var narrow = (0..<count).map { _ in 0x4000_0000 | UInt32(truncatingIfNeeded: generator.next() % 5000) }
            var wide = (0..<count).map { _ in UInt32(truncatingIfNeeded: generator.next()) }
            let expectedNarrow = narrow.sorted(), expectedWide = wide.sorted()
            radixSort(&narrow)
            radixSort(&wide)
            XCTAssertEqual(narrow, expectedNarrow)
            XCTAssertEqual(wide, expectedWide)
            // 64-bit entries sort by the high word only and keep insertion order among equal keys.
            var entries = (0..<count).map { UInt64(generator.next() % 300) << 32 | UInt64($0) }
            let expectedEntries = entries.enumerated().sorted { ($0.element >> 32, $0.offset) < ($1.element >> 32, $1.offset) }.map(\.element)
            radixSortByHighWord(&entries)
            XCTAssertEqual(entries, expectedEntries)
        }
    }

    func testErrors() throws {
        var roc = PixelROCAccumulator()
        XCTAssertThrowsMetricsError(try roc.auroc(), .emptyInput(what: "pixel AUROC"))
        try roc.add(map: [0.1, 0.2], mask: [false, false])
        XCTAssertThrowsMetricsError(try roc.auroc(), .missingClass(what: "pixel AUROC", missing: "defect-pixel"))
        XCTAssertThrowsMetricsError(try roc.add(map: [0.1], mask: [true, false]),
                                    .lengthMismatch(what: "pixel AUROC image 1", expected: 1, actual: 2))
        XCTAssertThrowsMetricsError(try roc.add(map: [.nan, 1], mask: [true, false]),
                                    .nanScore(what: "pixel AUROC image 1", index: 0))
        XCTAssertThrowsMetricsError(try PixelMetricsAccumulator(fprLimit: 0),
                                    .invalidArgument(name: "fprLimit", value: 0, reason: "must be in (0, 1]"))
        var pixel = try PixelMetricsAccumulator()
        XCTAssertThrowsMetricsError(try pixel.add(map: [1, 2, 3], mask: [true, false, false], width: 2, height: 2),
                                    .invalidGeometry(what: "ground-truth mask", width: 2, height: 2, pixelCount: 3))
        try pixel.add(map: [1, 2], mask: [true, true], width: 2, height: 1)
        XCTAssertThrowsMetricsError(try pixel.compute(), .missingClass(what: "pixel metrics", missing: "good-pixel"))
    }
}
