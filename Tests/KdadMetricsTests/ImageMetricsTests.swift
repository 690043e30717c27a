import XCTest
@testable import KdadMetrics

final class ImageMetricsTests: XCTestCase {
    func testAUROCHandCase() throws {
        // Defects {0.35, 0.8} vs good {0.1, 0.4}: 0.35 beats 0.1 only, 0.8 beats both -> 3 of 4 pairs.
        XCTAssertEqual(try imageAUROC(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, false, true, true]), 0.75)
    }

    func testAUROCCountsTiesAsHalf() throws {
        // Defects {0.5, 0.9} vs good {0.5, 0.2}: 0.5~0.5 ties (1/2), 0.5>0.2, 0.9 beats both -> 3.5 / 4.
        let scores: [Float] = [0.5, 0.5, 0.2, 0.9], labels = [true, false, false, true]
        XCTAssertEqual(try imageAUROC(scores: scores, labels: labels), 0.875)
        // All tied: every pair is a tie -> 0.5.
        XCTAssertEqual(try imageAUROC(scores: [1, 1, 1], labels: [true, false, false]), 0.5)
    }

    func testROCCurvePointsAndTrapezoidEqualAUROC() throws {
        let scores: [Float] = [0.5, 0.5, 0.2, 0.9], labels = [true, false, false, true]
        let curve = try rocCurve(scores: scores, labels: labels)
        // thresholds +inf, 0.9 (one defect), 0.5 (a defect and a good one), 0.2 (the last good one).
        XCTAssertEqual(curve, [
            ROCPoint(threshold: .infinity, falsePositiveRate: 0, truePositiveRate: 0),
            ROCPoint(threshold: 0.9, falsePositiveRate: 0, truePositiveRate: 0.5),
            ROCPoint(threshold: 0.5, falsePositiveRate: 0.5, truePositiveRate: 1),
            ROCPoint(threshold: 0.2, falsePositiveRate: 1, truePositiveRate: 1),
        ])
        var area = 0.0
        for (a, b) in zip(curve, curve.dropFirst()) {
            area += (b.falsePositiveRate - a.falsePositiveRate) * (a.truePositiveRate + b.truePositiveRate) / 2
        }
        XCTAssertEqual(area, 0.875, accuracy: 1e-15)
    }

    func testF1MaxHandCases() throws {
        // Perfect separation at 0.5: F1 = 1 with threshold 0.5.
        let perfect = try f1Max(scores: [0.1, 0.5, 0.9, 1.0], labels: [false, true, true, true])
        XCTAssertEqual(perfect.f1, 1)
        XCTAssertEqual(perfect.threshold, 0.5)
        // Scores [0.1, 0.5, 0.9, 0.1], labels [good, defect, defect, defect]:
        //   t = 0.9: TP 1, FP 0, FN 2 -> F1 = 2/4 = 0.5
        //   t = 0.5: TP 2, FP 0, FN 1 -> F1 = 4/5 = 0.8
        //   t = 0.1: TP 3, FP 1, FN 0 -> F1 = 6/7 ≈ 0.857 (best; precision 3/4, recall 1)
        let best = try f1Max(scores: [0.1, 0.5, 0.9, 0.1], labels: [false, true, true, true])
        XCTAssertEqual(best.f1, 6.0 / 7, accuracy: 1e-15)
        XCTAssertEqual(best.threshold, 0.1)
        XCTAssertEqual(best.precision, 0.75)
        XCTAssertEqual(best.recall, 1)
    }

    func testPrecisionRecallAtThreshold() throws {
        // Threshold 0.5 on the case above: predicted {0.5, 0.9} both defective -> TP 2, FP 0; the
        // defect at 0.1 is missed (FN 1); the good 0.1 is a TN. P = 1, R = 2/3, F1 = 0.8.
        let result = try precisionRecall(scores: [0.1, 0.5, 0.9, 0.1], labels: [false, true, true, true], threshold: 0.5)
        XCTAssertEqual([result.truePositives, result.falsePositives, result.falseNegatives, result.trueNegatives], [2, 0, 1, 1])
        XCTAssertEqual(result.precision, 1)
        XCTAssertEqual(result.recall, 2.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(result.f1, 0.8, accuracy: 1e-15)
        // Above every score nothing is predicted: precision is 1 by convention, recall 0.
        let none = try precisionRecall(scores: [0.1, 0.5], labels: [false, true], threshold: 2)
        XCTAssertEqual(none.precision, 1)
        XCTAssertEqual(none.recall, 0)
        XCTAssertEqual(none.f1, 0)
    }

    func testFastMatchesBruteForceOnRandomDataWithTies() throws {
        var generator = SeededGenerator(seed: 7)
        for trial in 0..<40 {
            let count = 2 + Int(generator.next() % 200)
            // Few levels on odd trials: heavy ties.
            let levels = trial % 2 == 0 ? 1000.0 : 7.0
            var labels = (0..<count).map { _ in generator.next() % 3 == 0 }
            labels[0] = true; labels[1] = false
            let scores = labels.map { label in
                Float(((generator.uniform() + (label ? 0.3 : 0)) * levels).rounded(.down) / levels)
            }
            XCTAssertEqual(try imageAUROC(scores: scores, labels: labels),
                           bruteForceAUROC(scores: scores, labels: labels), accuracy: 1e-12, "trial \(trial)")
            let fast = try f1Max(scores: scores, labels: labels)
            let slow = bruteForceF1Max(scores: scores, labels: labels)
            XCTAssertEqual(fast.f1, slow.f1, accuracy: 1e-12, "trial \(trial)")
            XCTAssertEqual(fast.threshold, slow.threshold, "trial \(trial)")
            // The reported threshold reproduces the reported F1.
            XCTAssertEqual(try precisionRecall(scores: scores, labels: labels, threshold: fast.threshold).f1,
                           fast.f1, accuracy: 1e-12)
        }
    }

    func testErrors() {
        XCTAssertThrowsMetricsError(try imageAUROC(scores: [1, 2], labels: [true, true]),
                                    .missingClass(what: "image AUROC", missing: "good"))
        XCTAssertThrowsMetricsError(try imageAUROC(scores: [1, 2], labels: [false, false]),
                                    .missingClass(what: "image AUROC", missing: "defective"))
        XCTAssertThrowsMetricsError(try imageAUROC(scores: [], labels: []), .emptyInput(what: "image AUROC"))
        XCTAssertThrowsMetricsError(try imageAUROC(scores: [1, 2], labels: [true]),
                                    .lengthMismatch(what: "image AUROC", expected: 2, actual: 1))
        XCTAssertThrowsMetricsError(try imageAUROC(scores: [1, .nan], labels: [true, false]),
                                    .nanScore(what: "image AUROC", index: 1))
        XCTAssertThrowsMetricsError(try f1Max(scores: [1, 2], labels: [false, false]),
                                    .missingClass(what: "F1-max", missing: "defective"))
        XCTAssertThrowsMetricsError(try rocCurve(scores: [1], labels: [true]),
                                    .missingClass(what: "ROC curve", missing: "good"))
        let description = MetricsError.missingClass(what: "image AUROC", missing: "good").description
        XCTAssertTrue(description.contains("image AUROC") && description.contains("good"), description)
    }
}
