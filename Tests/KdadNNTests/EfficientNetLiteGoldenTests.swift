import Foundation
import XCTest
import KdadTensor
import KdadWeights
import KdadImage
import KdadTestSupport
@testable import KdadNN

/// EfficientNet-Lite0 with the ImageNet weights against the golden outputs of the independent
/// PyTorch port (shared/reference/efficientnet-lite0, made by make_lite0_golden.py).
final class EfficientNetLiteGoldenTests: XCTestCase {
    static let tolerance = 1e-4

    struct GoldenMeta: Decodable { let top5_class: [Int] }

    func loadGolden(_ size: Int) throws -> (SafeTensorsFile, [Int]) {
        let dir = try SharedData.require("reference/efficientnet-lite0")
        let file = try SafeTensors.read(contentsOf: dir.appendingPathComponent("golden-\(size).safetensors"))
        let meta = try JSONDecoder().decode([String: GoldenMeta].self,
                                            from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
        return (file, try XCTUnwrap(meta[String(size)]).top5_class)
    }

    func checkAgainstGolden(size: Int, fused: Bool) throws {
        let (golden, top5) = try loadGolden(size)
        let model = try EfficientNetLite(variant: .lite0, weightsAt: cachedTeacherWeights(.lite0))
        if fused { model.fuseForInference() }
        let inputRecord = try XCTUnwrap(golden["input"])
        let input = Tensor(shape: inputRecord.shape, values: try inputRecord.floats())
        let all: Set<LiteFeature> = Set([.stem, .head, .logits] + (0..<model.blocks.count).map { LiteFeature.block($0) })
        let out = Tensor.noGrad { model.forward(input, features: all, fused: fused) }
        XCTAssertEqual(out.count, 19)
        var compared = 0, worst = (0.0, "")
        for feature in all.sorted() {
            let expected = try XCTUnwrap(golden[feature.description], "golden lacks \(feature)")
            let got = try XCTUnwrap(out[feature])
            XCTAssertEqual(got.shape, expected.shape, "\(feature) shape at \(size)")
            let err = relativeError(got.scalars, try expected.floats())
            XCTAssertLessThanOrEqual(err, Self.tolerance, "\(feature) at \(size)² (\(fused ? "fused" : "reference")): rel. error \(err)")
            if err > worst.0 { worst = (err, feature.description) }
            compared += 1
        }
        print("lite0 \(size)² \(fused ? "fused" : "reference"): largest relative error \(worst.0) (\(worst.1))")
        XCTAssertEqual(compared, 19)
        let logits = try XCTUnwrap(out[.logits]).scalars
        XCTAssertEqual(topK(logits, 5), top5, "top-5 at \(size)² (\(fused ? "fused" : "reference"))")
        XCTAssertEqual(top5.first, 285)
    }

    func testReferencePathMatchesGolden224() throws { try checkAgainstGolden(size: 224, fused: false) }
    func testReferencePathMatchesGolden256() throws { try checkAgainstGolden(size: 256, fused: false) }
    func testFusedPathMatchesGolden224() throws { try checkAgainstGolden(size: 224, fused: true) }
    func testFusedPathMatchesGolden256() throws { try checkAgainstGolden(size: 256, fused: true) }

    /// Early stop: asking for blocks 3 and 7 returns exactly those, equal to the golden's.
    func testEarlyStopReturnsOnlyRequestedBlocks() throws {
        let (golden, _) = try loadGolden(224)
        let model = try EfficientNetLite(variant: .lite0, weightsAt: cachedTeacherWeights(.lite0))
        model.fuseForInference()
        let inputRecord = try XCTUnwrap(golden["input"])
        let input = Tensor(shape: inputRecord.shape, values: try inputRecord.floats())
        let out = Tensor.noGrad { model.forward(input, features: [.block(3), .block(7)]) }
        XCTAssertEqual(Set(out.keys), [.block(3), .block(7)])
        XCTAssertEqual(out[.block(7)]?.shape, [1, 80, 14, 14])
        let err = relativeError(try XCTUnwrap(out[.block(7)]).scalars, try XCTUnwrap(golden["block07"]).floats())
        XCTAssertLessThanOrEqual(err, Self.tolerance)
    }

    /// The full image path: decode chelsea.png with KdadImage, PIL-style bilinear resize, normalise, classify.
    func testDecodedImageClassifiesAsEgyptianCat() throws {
        let dir = try SharedData.require("reference/efficientnet-lite0")
        let (golden, _) = try loadGolden(224)
        let image = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent("chelsea.png"))
        let resized = ImagePreprocessing.resizeBilinearPIL(ImagePreprocessing.rgb8(image), width: 224, height: 224)
        // The resize reproduces PIL's bytes (the golden's input_uint8_hwc is HWC).
        let hwc = try XCTUnwrap(golden["input_uint8_hwc"]).floats()
        var mismatches = 0
        for y in 0..<224 {
            for x in 0..<224 {
                for c in 0..<3 where Float(resized.planes[c][y * 224 + x]) != hwc[(y * 224 + x) * 3 + c] { mismatches += 1 }
            }
        }
        XCTAssertEqual(mismatches, 0, "bytes differing from PIL's resize")
        let model = try EfficientNetLite(variant: .lite0, weightsAt: cachedTeacherWeights(.lite0))
        model.fuseForInference()
        let input = ImagePreprocessing.efficientNetInput(image, size: 224)
        let logits = Tensor.noGrad { model.logits(input) }.scalars
        XCTAssertEqual(topK(logits, 1), [285])
    }
}

final class EfficientNetLiteBatchTests: XCTestCase {
    /// A batch gives each image the result it gets alone, on the image-parallel, sub-batched and
    /// layer-parallel fused paths and the reference path. Image-parallel workers run OpenBLAS on one
    /// thread, so they match single images computed with one thread bit for bit; multi-threaded
    /// OpenBLAS partitions a GEMM differently and rounds differently (≈1e-6 relative).
    func testBatchedExecutionModesAgreeWithSingleImages() throws {
        let model = try EfficientNetLite(variant: .lite0, weightsAt: cachedTeacherWeights(.lite0))
        model.fuseForInference()
        let batch = seededTensor([3, 3, 48, 64], seed: 11)
        let features: Set<LiteFeature> = [.block(4), .head, .logits]
        let threads = TensorRuntime.threadCount
        TensorRuntime.setThreadCount(1)
        let singles = (0..<3).map { i in Tensor.noGrad { model.forwardWhole(batch.slice(axis: 0, i..<(i + 1)), features: features, fused: true, profiler: nil) } }
        TensorRuntime.setThreadCount(threads)
        guard threads > 1 else { throw XCTSkip("needs at least two cores to exercise image-parallel execution") }
        func check(_ out: [LiteFeature: Tensor], _ label: String, tolerance: Double) {
            for f in features {
                let expected = Tensor.concat(singles.map { $0[f]! }, axis: 0)
                XCTAssertEqual(out[f]?.shape, expected.shape, "\(label) \(f)")
                XCTAssertLessThanOrEqual(relativeError(out[f]!.scalars, expected.scalars), tolerance, "\(label) \(f)")
            }
        }
        model.imageParallel = true
        check(Tensor.noGrad { model.forward(batch, features: features) }, "image-parallel", tolerance: 0)
        model.imageParallel = false
        model.microBatch = 2
        check(Tensor.noGrad { model.forward(batch, features: features) }, "sub-batches of 2", tolerance: 1e-5)
        model.microBatch = 3
        check(Tensor.noGrad { model.forward(batch, features: features) }, "whole batch", tolerance: 1e-5)
        check(model.forward(batch, features: features, fused: false), "reference", tolerance: 1e-5)
    }
}
