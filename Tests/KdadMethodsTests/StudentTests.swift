import XCTest
import KdadTensor
@testable import KdadMethods

final class StudentTests: XCTestCase {
    private let layerChoices: [[FakeLayer]] = [
        liteDeepLayers,
        liteShallowLayers,
        [FakeLayer(name: "block04", channels: 40, stride: 8)],
        [FakeLayer(name: "stem", channels: 32, stride: 2), FakeLayer(name: "block14", channels: 192, stride: 32)],
    ]

    func testStudentOutputsMatchTeacherShapesForSeveralLayerChoices() throws {
        for kind in Methods.kinds {
            for (choice, layers) in layerChoices.enumerated() {
                // An odd, non-square size checks the ceil-division bookkeeping; the default
                // (wide, slow in debug builds) students are built once per kind.
                for (height, width, defaults) in [(64, 64, true), (50, 70, false)] {
                    let method = try makeMethod(kind: kind, layers: layers, options: defaults && choice == 0 ? [:] : smallOptions(kind))
                    let batch = makeBatch(layers: layers, batch: 2, height: height, width: width, seed: 1)
                    let student = (method as! StudentBase).studentFeatures(batch)
                    XCTAssertEqual(student.map(\.shape), batch.teacherFeatures.map(\.shape), "\(kind) \(layers.map(\.name)) \(height)×\(width)")
                    method.setTraining(false)
                    let maps = Tensor.noGrad { method.layerDistanceMaps(batch) }
                    XCTAssertEqual(maps.map(\.shape), batch.teacherFeatures.map { [2, 1, $0.shape[2], $0.shape[3]] })
                    for m in maps { XCTAssertTrue(m.scalars.allSatisfy { $0.isFinite && $0 >= -1e-5 && $0 <= 2 + 1e-5 }) }
                }
            }
        }
    }

    func testEveryParameterGetsAGradientAndLossIsFinite() throws {
        for kind in Methods.kinds {
            for distance in [FeatureDistance.cosine, .normalizedL2] {
                let method = try makeMethod(kind: kind, layers: liteShallowLayers, distance: distance, options: smallOptions(kind))
                let batch = makeBatch(layers: liteShallowLayers, batch: 2, height: 32, width: 32, seed: 2)
                method.setTraining(true)
                let loss = method.loss(batch)
                XCTAssertEqual(loss.shape, [])
                XCTAssertTrue(loss.item.isFinite)
                // Random student vs random teacher: each layer's cosine distance is about 1.
                XCTAssertEqual(loss.item, Float(liteShallowLayers.count), accuracy: 0.6)
                loss.backward()
                for p in method.parameters {
                    let g = try XCTUnwrap(p.tensor.grad, "\(kind): \(p.name) has no gradient")
                    XCTAssertEqual(g.shape, p.tensor.shape)
                    XCTAssertTrue(g.scalars.contains { $0 != 0 }, "\(kind): \(p.name) gradient is all zero")
                    XCTAssertTrue(g.scalars.allSatisfy(\.isFinite), "\(kind): \(p.name)")
                }
                XCTAssertEqual(Set(method.parameters.map(\.name)).count, method.parameters.count, "names are unique")
            }
        }
    }

    func testLossDecreasesWhenOverfittingATinyBatch() throws {
        for kind in Methods.kinds {
            let layers = liteDeepLayers
            let method = try makeMethod(kind: kind, layers: layers, options: smallOptions(kind))
            let batch = makeBatch(layers: layers, batch: 2, height: 64, width: 64, seed: 4)
            let optimizer = Adam(parameters: method.parameters.map { NamedParameter($0.name, $0.tensor) }, learningRate: 3e-3)
            method.setTraining(true)
            var losses: [Float] = []
            for _ in 0..<40 {
                optimizer.zeroGrad()
                let loss = method.loss(batch)
                losses.append(loss.item)
                loss.backward()
                optimizer.step()
            }
            XCTAssertTrue(losses.allSatisfy(\.isFinite))
            XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "\(kind): \(losses.first!) → \(losses.last!)")
        }
    }

    func testSameSeedGivesBitIdenticalMapsAndDifferentSeedDoesNot() throws {
        for kind in Methods.kinds {
            let batch = makeBatch(layers: liteDeepLayers, batch: 2, height: 64, width: 64, seed: 5)
            func maps(seed: UInt64) throws -> [[UInt32]] {
                let method = try makeMethod(kind: kind, layers: liteDeepLayers, options: smallOptions(kind), seed: seed)
                method.setTraining(false)
                return Tensor.noGrad { method.layerDistanceMaps(batch) }.map(bits)
            }
            XCTAssertEqual(try maps(seed: 11), try maps(seed: 11))
            XCTAssertNotEqual(try maps(seed: 11), try maps(seed: 12))
        }
    }

    func testReverseStudentIgnoresImages() throws {
        let method = try makeMethod(kind: "reverse", layers: liteDeepLayers, options: smallOptions("reverse"))
        method.setTraining(false)
        var batch = makeBatch(layers: liteDeepLayers, batch: 1, height: 64, width: 64, seed: 6)
        let withImages = Tensor.noGrad { method.layerDistanceMaps(batch) }.map(bits)
        batch.images = nil
        XCTAssertEqual(Tensor.noGrad { method.layerDistanceMaps(batch) }.map(bits), withImages)
    }

    func testConfigurationErrorsAreReported() {
        func error(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error { try makeMethod(kind: "sideways", layers: liteDeepLayers) }.contains("unknown method kind"))
        XCTAssertTrue(error { try makeMethod(kind: "forward", layers: liteDeepLayers, options: ["widht": 8]) }.contains("unknown option(s) widht"))
        XCTAssertTrue(error { try makeMethod(kind: "forward", layers: liteDeepLayers, options: ["width": 8.5]) }.contains("width"))
        XCTAssertTrue(error { try makeMethod(kind: "reverse", layers: liteDeepLayers.reversed()) }.contains("shallow to deep"))
        XCTAssertTrue(error { try makeMethod(kind: "reverse", layers: [FakeLayer(name: "x", channels: 8, stride: 12)]) }.contains("powers of two"))
        XCTAssertTrue(error {
            try Methods.make(MethodConfig(kind: "forward", layers: ["a", "b"]), teacherChannels: [8], teacherStrides: [4, 8], seed: 0)
        }.contains("2 layers but 1 channel counts"))
    }
}
