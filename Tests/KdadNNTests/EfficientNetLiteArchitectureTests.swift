import Foundation
import XCTest
import KdadTensor
import KdadWeights
import KdadTestSupport
@testable import KdadNN

final class EfficientNetLiteArchitectureTests: XCTestCase {
    /// TF "SAME": output ceil(in/stride); the odd padding row/column goes bottom/right.
    func testTFSamePaddingFromActualInputSize() {
        let same = ConvPadding.tfSame
        // 3×3 stride 2 on 224: out 112, total (112-1)*2+3-224 = 1 → 0 top, 1 bottom.
        XCTAssertEqual(same.resolved(height: 224, width: 224, kernel: (3, 3), stride: 2, dilation: 1),
                       Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        // 5×5 stride 2 on 28: out 14, total 13*2+5-28 = 3 → 1 / 2.
        XCTAssertEqual(same.resolved(height: 28, width: 28, kernel: (5, 5), stride: 2, dilation: 1),
                       Padding2D(top: 1, bottom: 2, left: 1, right: 2))
        // Odd input 15, 3×3 stride 2: out 8, total 7*2+3-15 = 2 → 1 / 1; stride 1 5×5: 2 / 2.
        XCTAssertEqual(same.resolved(height: 15, width: 15, kernel: (3, 3), stride: 2, dilation: 1), Padding2D(1))
        XCTAssertEqual(same.resolved(height: 15, width: 9, kernel: (5, 5), stride: 1, dilation: 1), Padding2D(2))
        // 1×1 never pads.
        XCTAssertEqual(same.resolved(height: 7, width: 7, kernel: (1, 1), stride: 1, dilation: 1), .zero)
        // Output size agrees with ceil(in / stride) for every input size.
        let conv = Conv2dLayer(inChannels: 1, outChannels: 1, kernel: 5, stride: 2, padding: .tfSame)
        for size in 5...40 { XCTAssertEqual(conv.outputSize(height: size, width: size).0, (size + 1) / 2, "size \(size)") }
    }

    func testLite0Architecture() {
        let a = EfficientNetLiteArchitecture(variant: .lite0)
        XCTAssertEqual(a.blocks.count, 16)
        XCTAssertEqual(a.blocks.map(\.outChannels), [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320])
        XCTAssertEqual(a.blockStrides[7], 16)
        XCTAssertEqual(a.blockStrides.last, 32)
        XCTAssertEqual(a.blocks[0].expandRatio, 1)
        XCTAssertFalse(a.blocks[0].hasResidual)
        XCTAssertTrue(a.blocks[2].hasResidual)
    }

    /// Lite1/2 scale width and depth but keep the stem, head and the first/last stages' repeats; the
    /// published weights load into exactly this architecture (every key and shape checked).
    func testLite1And2LoadPublishedWeights() throws {
        let expected: [(EfficientNetLiteVariant, blocks: Int, lastChannels: Int, parameters: Int)] = [
            (.lite1, 21, 320, 5_470_408 - 64), (.lite2, 21, 352, 6_150_232 - 64),
        ]
        for (variant, blocks, lastChannels, parameters) in expected {
            let url = try cachedTeacherWeights(variant)
            let model = try EfficientNetLite(variant: variant, weightsAt: url)
            XCTAssertEqual(model.blocks.count, blocks, variant.rawValue)
            XCTAssertEqual(model.blocks.first?.spec.inChannels, 32)
            XCTAssertEqual(model.blocks.last?.spec.outChannels, lastChannels)
            XCTAssertEqual(model.head.conv.outChannels, 1280)
            // Learned parameters + BN running statistics = the file's float tensors.
            let buffers = model.stateEntries.filter { $0.kind == .buffer }.reduce(0) { $0 + $1.tensor.count }
            XCTAssertEqual(model.parameterCount + buffers, parameters, variant.rawValue)
        }
    }

    /// Learned parameters as PyTorch counts them on the port (`model.parameters()`: conv, BN affine, fc;
    /// not the running statistics), from `torch.load` of the published files.
    func testParameterCounts() throws {
        let expected: [EfficientNetLiteVariant: Int] = [.lite0: 4_652_008, .lite1: 5_416_680, .lite2: 6_092_072]
        for (variant, count) in expected {
            XCTAssertEqual(EfficientNetLite(variant: variant).parameterCount, count, variant.rawValue)
        }
    }

    /// Lite1 and Lite2 recognise the test image, the fused and reference paths agreeing. The expected
    /// top-4 (each ≥ 7× the 5th probability) come from the independent PyTorch port
    /// (`EfficientNet.from_pretrained('efficientnet-liteN', weights_path=…, image_size=None)` on the
    /// golden-224 `input`): lite1 285 281 282 287 (0.891 0.048 0.038 0.0048; 5th 0.00067),
    /// lite2 285 282 281 287 (0.951 0.032 0.013 0.0020; 5th 0.000055).
    func testLite1And2ClassifyTheTestImage() throws {
        let dir = try SharedData.require("reference/efficientnet-lite0")
        let golden = try SafeTensors.read(contentsOf: dir.appendingPathComponent("golden-224.safetensors"))
        let record = try XCTUnwrap(golden["input"])
        let input = Tensor(shape: record.shape, values: try record.floats())
        for (variant, top4) in [(EfficientNetLiteVariant.lite1, [285, 281, 282, 287]), (.lite2, [285, 282, 281, 287])] {
            let model = try EfficientNetLite(variant: variant, weightsAt: cachedTeacherWeights(variant))
            model.fuseForInference()
            let fused = Tensor.noGrad { model.logits(input) }.scalars
            XCTAssertEqual(topK(fused, 4), top4, variant.rawValue)
            // The reference path is the same code for every variant (Lite0's goldens check it against
            // PyTorch): comparing it once, on Lite1, keeps this test short in debug builds.
            if variant == .lite1 {
                let reference = Tensor.noGrad { model.logits(input, fused: false) }.scalars
                XCTAssertLessThanOrEqual(relativeError(fused, reference), 1e-5, variant.rawValue)
                XCTAssertEqual(topK(reference, 4), top4, variant.rawValue)
            }
        }
    }

    /// BN folding equals conv → BN → activation on random data with non-trivial statistics, for
    /// dense, grouped and depthwise convolutions with TF-SAME padding.
    func testBatchNormFoldingMatchesUnfused() {
        for (groups, kernel, stride, act) in [(1, 3, 2, Activation.relu6), (4, 3, 1, .relu), (8, 5, 2, .identity), (8, 3, 1, .relu6), (8, 5, 1, .relu)] {
            let unit = ConvBNActivation(conv: Conv2dLayer(inChannels: 8, outChannels: 8, kernel: kernel, stride: stride,
                                                          padding: .tfSame, groups: groups),
                                        norm: BatchNormLayer(channels: 8, eps: 1e-3), activation: act)
            unit.conv.weight.assign(seededTensor(unit.conv.weight.shape, seed: 1).scalars)
            unit.norm.weight.assign(seededTensor([8], seed: 2, lo: 0.5, hi: 2).scalars)
            unit.norm.bias.assign(seededTensor([8], seed: 3).scalars)
            unit.norm.runningMean.assign(seededTensor([8], seed: 4, lo: -0.5, hi: 0.5).scalars)
            unit.norm.runningVar.assign(seededTensor([8], seed: 5, lo: 0.1, hi: 3).scalars)
            unit.fuse()
            let x = seededTensor([2, 8, 11, 13], seed: 6, lo: -3, hi: 3)
            let a = unit.reference(x), b = Tensor.noGrad { unit.fused(x) }
            XCTAssertEqual(a.shape, b.shape)
            XCTAssertLessThanOrEqual(relativeError(b.scalars, a.scalars), 1e-6, "groups \(groups) k \(kernel)")
        }
    }

    func testFeatureNames() {
        XCTAssertEqual(LiteFeature.block(7).description, "block07")
        XCTAssertEqual(LiteFeature(name: "block07"), .block(7))
        XCTAssertEqual(LiteFeature(name: "head"), .head)
        XCTAssertNil(LiteFeature(name: "blockx"))
        XCTAssertEqual([LiteFeature.logits, .block(3), .stem, .head].sorted(), [.stem, .block(3), .head, .logits])
    }

    /// Loading the Lite0 file into Lite1 fails with the keys Lite1 lacks named.
    func testWrongVariantNamesMissingKeys() throws {
        let url = try cachedTeacherWeights(.lite0)
        XCTAssertThrowsError(try EfficientNetLite(variant: .lite1, weightsAt: url)) { error in
            guard case .missingKeys(let keys)? = (error as? ModelWeightsError)?.reason else { return XCTFail("\(error)") }
            XCTAssertTrue(keys.contains("_blocks.20._project_conv.weight"), "\(keys.prefix(5))")
        }
    }
}
