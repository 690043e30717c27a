import XCTest
import KdadMetrics
import KdadTestSupport
@testable import KdadPipeline

/// The threshold comes from the `val` rows only, with the pipeline's method and params.
final class ThresholdStageTests: XCTestCase {
    func row(_ key: String, role: String, score: Float, label: String? = nil) -> ScoreRow {
        ScoreRow(key: key, lot: "lot-A", source: key, split: nil, label: label, defectType: label == "defect" ? "crack" : nil, role: role, score: score)
    }

    /// Val scores 1...11 (type-7 quantiles are exact there) and score images far above them: a
    /// threshold that looked at the score images would move.
    var rows: [ScoreRow] {
        (1...11).map { row("val-\($0)", role: "val", score: Float($0)) }
            + [row("s-good", role: "score", score: 5, label: "good"), row("s-good2", role: "score", score: 10, label: "good"),
               row("s-bad", role: "score", score: 50, label: "defect"), row("s-bad2", role: "score", score: 9, label: "defect"),
               row("s-unlabelled", role: "score", score: 1000)]
    }

    func testQuantileUsesValScoresOnlyAndItsParameter() throws {
        let q90 = try ThresholdResult.compute(settings: ThresholdSettings(method: "quantile", quantile: 0.9), rows: rows)
        XCTAssertEqual(q90.value, 10, accuracy: 1e-12)  // h = 10 * 0.9 = 9 -> x[9] = 10
        let q95 = try ThresholdResult.compute(settings: ThresholdSettings(method: "quantile", quantile: 0.95), rows: rows)
        XCTAssertEqual(q95.value, 10.5, accuracy: 1e-12)  // h = 9.5 -> halfway between 10 and 11
        XCTAssertEqual(q90.reference.count, 11)
        XCTAssertEqual(q90.reference.min, 1); XCTAssertEqual(q90.reference.max, 11); XCTAssertEqual(q90.reference.median, 6)
        XCTAssertNil(q90.gammaFit)
    }

    func testGammaFitsValScoresWithTheGivenTailAndLocation() throws {
        let val = rows.filter { $0.role == "val" }.map(\.score)
        for (tail, location) in [(0.01, "mle"), (0.001, "mle"), (0.01, "zero")] {
            let result = try ThresholdResult.compute(settings: ThresholdSettings(method: "gamma", tailProbability: tail, gammaLocation: location), rows: rows)
            let expected = try gammaThreshold(scores: val, tailProbability: tail, location: location == "zero" ? .zero : .maximumLikelihood)
            XCTAssertEqual(result.value, expected, accuracy: 1e-9 * expected, "tail \(tail), location \(location)")
            let fit = try XCTUnwrap(result.gammaFit)
            XCTAssertEqual(fit.survival(result.value), tail, accuracy: tail * 1e-6)
            if location == "zero" { XCTAssertEqual(fit.location, 0) }
        }
        let loose = try ThresholdResult.compute(settings: ThresholdSettings(method: "gamma", tailProbability: 0.01), rows: rows)
        let strict = try ThresholdResult.compute(settings: ThresholdSettings(method: "gamma", tailProbability: 0.001), rows: rows)
        XCTAssertGreaterThan(strict.value, loose.value)
    }

    func testLabelledOutcomeCountsScoresAboveTheThresholdAndReportsF1Max() throws {
        // Threshold 10 exactly: the good image scored 10 is not above it, so it is no false alarm.
        let result = try ThresholdResult.compute(settings: ThresholdSettings(method: "quantile", quantile: 0.9), rows: rows)
        let labelled = try XCTUnwrap(result.labelled)
        XCTAssertEqual(labelled.good, 2); XCTAssertEqual(labelled.defective, 2)
        XCTAssertEqual(labelled.falsePositives, 0); XCTAssertEqual(labelled.truePositives, 1)
        XCTAssertEqual(labelled.falsePositiveRate, 0); XCTAssertEqual(labelled.recall, 0.5)
        XCTAssertEqual(labelled.precision, 1)
        XCTAssertEqual(try XCTUnwrap(labelled.f1), 2.0 / 3.0, accuracy: 1e-12)
        // Labelled scores: good 5, 10; defective 9, 50. F1 at >= 50: 2/3; at >= 10: 2*1/(2+1+1)=0.5; at >= 9: 0.8.
        let f1 = try XCTUnwrap(result.f1Max)
        XCTAssertEqual(f1.threshold, 9); XCTAssertEqual(f1.f1, 0.8, accuracy: 1e-12)
        XCTAssertTrue(result.headline.contains("from 11 val images"), result.headline)
    }

    func testNoValRowsIsAnError() {
        XCTAssertThrowsError(try ThresholdResult.compute(settings: ThresholdSettings(method: "quantile"), rows: rows.filter { $0.role == "score" }))
    }
}
