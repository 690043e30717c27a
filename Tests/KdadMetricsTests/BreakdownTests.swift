import Foundation
import XCTest
@testable import KdadMetrics

final class BreakdownTests: XCTestCase {
    /// Six images over two lots and two defect types, each with a 2x2 map.
    func makeEvaluator(withMaps: Bool = true) throws -> MetricsEvaluator {
        let rows: [(String, Float, Bool, String?, String)] = [
            ("g1", 0.2, false, nil, "exp1"), ("g2", 0.4, false, nil, "exp1"), ("g3", 0.3, false, nil, "exp2"),
            ("b1", 0.9, true, "blowhole", "exp1"), ("c1", 0.35, true, "crack", "exp2"), ("c2", 0.5, true, "crack", "exp2"),
        ]
        var evaluator = try MetricsEvaluator()
        for (index, row) in rows.enumerated() {
            let image = EvaluatedImage(id: row.0, score: row.1, isDefect: row.2, defectType: row.3, lot: row.4)
            if withMaps {
                // Defect images: one defect pixel (pixel 0) scored at the image score; good pixels
                // spread below, offset per image so pixel AUROC is not trivially 1.
                let map: [Float] = [row.1, 0.1 + 0.05 * Float(index), 0.05, 0.3]
                try evaluator.add(image, map: map, mask: row.2 ? [true, false, false, false] : nil, width: 2, height: 2)
            } else {
                try evaluator.add(image)
            }
        }
        return evaluator
    }

    func testGroupsFollowTheProtocol() throws {
        let evaluator = try makeEvaluator()
        let report = try evaluator.report()
        let scores = evaluator.images.map(\.score), labels = evaluator.images.map(\.isDefect)
        XCTAssertEqual(report.overall.imageAUROC, try imageAUROC(scores: scores, labels: labels))
        // Overall by hand: defects {0.9, 0.35, 0.5} vs good {0.2, 0.4, 0.3}: 3 + 1 + 3... 0.35 beats
        // 0.2 and 0.3 (2), 0.5 beats all 3, 0.9 beats all 3 -> 8 / 9.
        XCTAssertEqual(report.overall.imageAUROC!, 8.0 / 9, accuracy: 1e-15)
        // Crack: its 2 defective images vs ALL 3 good images (not only lot exp2's good one).
        let crack = try XCTUnwrap(report.perDefectType["crack"])
        XCTAssertEqual(crack.goodImageCount, 3)
        XCTAssertEqual(crack.defectImageCount, 2)
        XCTAssertEqual(crack.imageAUROC!, (2.0 + 3) / 6, accuracy: 1e-15)  // 0.35 beats 2, 0.5 beats 3
        XCTAssertEqual(report.perDefectType["blowhole"]?.imageAUROC, 1)
        // Lot exp2: good {0.3} vs defects {0.35, 0.5} -> 1.
        let exp2 = try XCTUnwrap(report.perLot["exp2"])
        XCTAssertEqual(exp2.imageAUROC, 1)
        XCTAssertEqual([exp2.goodImageCount, exp2.defectImageCount], [1, 2])
        // Pixel metrics of a group equal those of an accumulator fed the same images.
        var accumulator = try PixelMetricsAccumulator()
        for index in [2, 4, 5] {  // exp2: g3, c1, c2
            let image = evaluator.images[index]
            let map: [Float] = [image.score, 0.1 + 0.05 * Float(index), 0.05, 0.3]
            try accumulator.add(map: map, mask: [image.isDefect, false, false, false], width: 2, height: 2)
        }
        let expected = try accumulator.compute()
        XCTAssertEqual(exp2.pixelAUROC, expected.auroc)
        XCTAssertEqual(exp2.pro, expected.pro)
        XCTAssertEqual(Set(report.perLot.keys), ["exp1", "exp2"])
        XCTAssertEqual(Set(report.perDefectType.keys), ["blowhole", "crack"])
    }

    func testUndefinedMetricsAreNullInJSON() throws {
        var evaluator = try MetricsEvaluator()
        // A lot with only good images: AUROC and F1 undefined there.
        try evaluator.add(EvaluatedImage(id: "g", score: 0.1, isDefect: false, lot: "onlyGood"))
        try evaluator.add(EvaluatedImage(id: "d", score: 0.9, isDefect: true, defectType: "fray", lot: "mixed"))
        try evaluator.add(EvaluatedImage(id: "g2", score: 0.2, isDefect: false, lot: "mixed"))
        let report = try evaluator.report()
        XCTAssertNil(report.perLot["onlyGood"]?.imageAUROC)
        XCTAssertNil(report.perLot["onlyGood"]?.imageF1Max)
        XCTAssertNil(report.overall.pixelAUROC)  // no maps at all
        XCTAssertEqual(report.overall.imageF1Max, 1)

        let data = try JSONEncoder().encode(report)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["image_auroc", "pixel_auroc", "pro", "image_f1_max", "per_lot", "per_defect_type"] {
            XCTAssertNotNil(object[key], "missing key \(key)")
        }
        XCTAssertTrue(object["pixel_auroc"] is NSNull)
        let lots = try XCTUnwrap(object["per_lot"] as? [String: [String: Any]])
        XCTAssertTrue(lots["onlyGood"]?["image_auroc"] is NSNull)
        XCTAssertEqual(try JSONDecoder().decode(MetricsReport.self, from: data), report)
    }

    func testInconsistentInputsAreRejected() throws {
        var evaluator = try MetricsEvaluator()
        try evaluator.add(EvaluatedImage(id: "a", score: 0.1, isDefect: false), map: [0, 0], width: 2, height: 1)
        XCTAssertThrowsMetricsError(try evaluator.add(EvaluatedImage(id: "b", score: 0.2, isDefect: false)),
                                    .inconsistentPixelData(what: "image b", detail: "earlier images have anomaly maps but this one has none"))
        XCTAssertThrowsMetricsError(
            try evaluator.add(EvaluatedImage(id: "c", score: 0.2, isDefect: true), map: [0, 1], width: 2, height: 1),
            .inconsistentPixelData(what: "image c", detail: "a defective image with a map needs a ground-truth mask"))
        XCTAssertThrowsMetricsError(try evaluator.add(EvaluatedImage(id: "d", score: .nan, isDefect: true)),
                                    .nanScore(what: "image d", index: 1))
        XCTAssertThrowsMetricsError(try MetricsEvaluator().report(), .emptyInput(what: "metrics report"))
    }
}
