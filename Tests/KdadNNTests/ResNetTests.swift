import Foundation
import XCTest
import KdadTensor
import KdadWeights
import KdadTestSupport
@testable import KdadNN

/// torchvision ResNet-family goldens (shared/reference/resnet, make_resnet_golden.py): seeded weights
/// stored as float16 under `weight.<torchvision key>`, a 128² input, outputs after layer1…4 and logits.
final class ResNetTests: XCTestCase {
    static let tolerance = 1e-4
    static let tinyResNeXtWide = ResNetConfiguration(name: "tiny_resnext_wide", block: .bottleneck, layers: [1, 1, 1, 1],
                                                     groups: 4, widthPerGroup: 32)

    func golden(_ name: String) throws -> SafeTensorsFile {
        try SafeTensors.read(contentsOf: SharedData.require("reference/resnet/\(name).safetensors"))
    }

    func checkGolden(_ name: String, _ config: ResNetConfiguration) throws {
        let file = try golden(name)
        let model = ResNet(config)
        try model.load(file.tensors, prefix: "weight.", source: name)
        let inputRecord = try XCTUnwrap(file["input"])
        let input = Tensor(shape: inputRecord.shape, values: try inputRecord.floats())
        for fused in [false, true] {
            if fused { model.fuseForInference() }
            let out = Tensor.noGrad { model.forward(input, features: Set(ResNetFeature.allCases), fused: fused) }
            for feature in ResNetFeature.allCases {
                let expected = try XCTUnwrap(file[feature.description])
                let got = try XCTUnwrap(out[feature])
                XCTAssertEqual(got.shape, expected.shape, "\(name) \(feature)")
                let err = relativeError(got.scalars, try expected.floats())
                XCTAssertLessThanOrEqual(err, Self.tolerance, "\(name) \(feature) (\(fused ? "fused" : "reference")): rel. error \(err)")
            }
        }
    }

    func testResNet18MatchesTorchvision() throws { try checkGolden("resnet18", .resnet18) }
    func testResNet10MatchesTorchvision() throws { try checkGolden("resnet10", .resnet10) }
    func testGroupedWideBottleneckMatchesTorchvision() throws { try checkGolden("tiny_resnext_wide", Self.tinyResNeXtWide) }

    /// torchvision's `sum(p.numel() for p in model.parameters())`.
    func testParameterCountsEqualTorchvision() {
        let expected: [(ResNetConfiguration, Int)] = [
            (.resnet18, 11_689_512), (.resnet34, 21_797_672), (.resnet50, 25_557_032),
            (.wideResNet50_2, 68_883_240), (.resNeXt50_32x4d, 25_028_904),
        ]
        for (config, count) in expected {
            XCTAssertEqual(ResNet(config).parameterCount, count, config.name)
        }
    }

    /// A state dict written by kdad as safetensors and read back into a fresh model gives identical outputs.
    func testSafeTensorsRoundTripGivesIdenticalOutputs() throws {
        let file = try golden("resnet10")
        let model = ResNet(.resnet10)
        try model.load(file.tensors, prefix: "weight.", source: "resnet10")
        let dir = try makeTemporaryDirectory("kdad-nn")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("resnet10.safetensors")
        try model.writeSafeTensors(to: url)
        let written = try SafeTensors.read(contentsOf: url)
        // Every parameter and buffer plus one num_batches_tracked per BatchNorm, as torchvision's state_dict.
        let bnCount = model.stateEntries.filter { $0.name.hasSuffix("running_var") }.count
        XCTAssertEqual(written.tensors.count, model.stateEntries.count + bnCount)
        XCTAssertEqual(written["layer2.0.downsample.1.num_batches_tracked"]?.dtype, .int64)
        XCTAssertEqual(written["fc.weight"]?.dtype, .float32)
        let reloaded = ResNet(.resnet10)
        try reloaded.load(contentsOf: url)
        for entry in reloaded.stateEntries {
            XCTAssertEqual(entry.tensor.scalars, try XCTUnwrap(file["weight." + entry.name]).floats(), entry.name)
        }
        let input = seededTensor([1, 3, 40, 40], seed: 7)
        let a = Tensor.noGrad { model.forward(input, features: [.layer2, .logits]) }
        let b = Tensor.noGrad { reloaded.forward(input, features: [.layer2, .logits]) }
        XCTAssertEqual(a[.layer2]?.scalars, b[.layer2]?.scalars)
        XCTAssertEqual(a[.logits]?.scalars, b[.logits]?.scalars)
        XCTAssertTrue(a[.logits]!.scalars.contains { $0 != 0 })
    }

    /// torchvision's stage output shapes at 256²: strides 4, 8, 16, 32 and 64·e … 512·e channels.
    func testStageShapesAt256() {
        for config in [ResNetConfiguration.resnet10, Self.tinyResNeXtWide] {
            let model = ResNet(config)
            let out = Tensor.noGrad { model.forward(Tensor.zeros([1, 3, 256, 256]), features: Set(ResNetFeature.allCases)) }
            let e = config.expansion
            XCTAssertEqual(out[.layer1]?.shape, [1, 64 * e, 64, 64], config.name)
            XCTAssertEqual(out[.layer2]?.shape, [1, 128 * e, 32, 32], config.name)
            XCTAssertEqual(out[.layer3]?.shape, [1, 256 * e, 16, 16], config.name)
            XCTAssertEqual(out[.layer4]?.shape, [1, 512 * e, 8, 8], config.name)
            XCTAssertEqual(out[.logits]?.shape, [1, 1000], config.name)
        }
    }

    func testLoadErrorsNameTheKey() throws {
        let file = try golden("resnet10")
        let model = ResNet(.resnet10)
        let stripped = file.tensors.filter { $0.name.hasPrefix("weight.") }
        // Missing key.
        let missing = stripped.filter { $0.name != "weight.layer3.0.bn2.running_var" }
        XCTAssertThrowsError(try model.load(missing, prefix: "weight.", source: "f")) { error in
            XCTAssertEqual((error as? ModelWeightsError)?.reason, .missingKeys(["layer3.0.bn2.running_var"]))
            XCTAssertTrue("\(error)".contains("layer3.0.bn2.running_var"))
        }
        // Unexpected key.
        let extra = stripped + [WeightTensor(name: "weight.layer5.0.conv1.weight", shape: [1], floats: [0])]
        XCTAssertThrowsError(try model.load(extra, prefix: "weight.", source: "f")) { error in
            XCTAssertEqual((error as? ModelWeightsError)?.reason, .unexpectedKeys(["layer5.0.conv1.weight"]))
        }
        // Shape mismatch: resnet10 weights into resnet18 fail on the first missing block instead, so
        // feed a wrong-shaped fc.
        let wrongShape = stripped.map { $0.name == "weight.fc.weight" ? WeightTensor(name: $0.name, shape: [10, 512], floats: [Float](repeating: 0, count: 5120)) : $0 }
        XCTAssertThrowsError(try model.load(wrongShape, prefix: "weight.", source: "f")) { error in
            XCTAssertEqual((error as? ModelWeightsError)?.reason, .shapeMismatch(key: "fc.weight", expected: [1000, 512], found: [10, 512]))
            XCTAssertTrue("\(error)".contains("fc.weight"))
        }
        // A failed load leaves the model's weights untouched (still zero).
        XCTAssertEqual(model.classifier.weight.scalars.allSatisfy { $0 == 0 }, true)
        // Loading a resnet10 file into resnet18 names the missing second blocks.
        XCTAssertThrowsError(try ResNet(.resnet18).load(stripped, prefix: "weight.", source: "f")) { error in
            guard case .missingKeys(let keys)? = (error as? ModelWeightsError)?.reason else { return XCTFail("\(error)") }
            XCTAssertTrue(keys.contains("layer1.1.conv1.weight"))
        }
    }
}
