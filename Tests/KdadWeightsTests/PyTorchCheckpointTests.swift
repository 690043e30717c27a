import Foundation
import KdadTestSupport
import XCTest
@testable import KdadWeights

/// Fixtures made once by Fixtures/make_fixtures.py with real torch (see that script).
private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

final class PyTorchCheckpointTests: XCTestCase {
    // MARK: The real EfficientNet-Lite0 ImageNet checkpoint (legacy format)

    /// Expected numbers were taken from the file with torch.load and pickletools in a development session.
    func testReadsRealLite0LegacyCheckpoint() throws {
        // No skip: CI runs scripts/setup.sh first, which fetches it; the error says which command to run.
        let url = try WeightCache.url(for: "efficientnet-lite0")
        let weights = try WeightFiles.read(contentsOf: url)
        XCTAssertEqual(weights.format, .pytorchLegacy)
        XCTAssertEqual(weights.tensors.count, 296)
        XCTAssertEqual(weights.parameterCount, 4_694_073)
        let floatCount = weights.tensors.filter { $0.dtype == .float32 }.reduce(0) { $0 + $1.elementCount }
        XCTAssertEqual(floatCount, 4_694_024)
        let counters = weights.tensors.filter { $0.name.hasSuffix("num_batches_tracked") }
        XCTAssertEqual(counters.count, 49)
        XCTAssertTrue(counters.allSatisfy { $0.dtype == .int64 && $0.shape == [] })

        XCTAssertEqual(weights.tensors.prefix(3).map(\.name), ["_conv_stem.weight", "_bn0.weight", "_bn0.bias"])
        XCTAssertEqual(weights.tensors.suffix(2).map(\.name), ["_fc.weight", "_fc.bias"])
        XCTAssertEqual(weights["_conv_stem.weight"]?.shape, [32, 3, 3, 3])
        XCTAssertEqual(weights["_fc.weight"]?.shape, [1000, 1280])
        XCTAssertEqual(weights["_fc.bias"]?.shape, [1000])
        XCTAssertEqual(weights["_blocks.15._project_conv.weight"]?.shape, [320, 1152, 1, 1])

        // The stem is stored with strides (1, 32, 288, 96): these values check the gather into row-major order.
        let stem = try XCTUnwrap(weights["_conv_stem.weight"]).floats()
        XCTAssertEqual(Array(stem[0..<4]), [-1.1103360652923584, -1.3087704181671143, -0.010156914591789246, 0.9208119511604309])
        XCTAssertEqual(Array(stem[100..<103]), [0.6494858860969543, 0.6494858860969543, 0.3393593430519104])
        XCTAssertEqual(stem[((7 * 3 + 1) * 3 + 0) * 3 + 2], -0.8141154646873474) // [7, 1, 0, 2]
        XCTAssertEqual(stem.reduce(0.0) { $0 + Double($1) }, -26.811376610887237, accuracy: 1e-9)
        let classifier = try XCTUnwrap(weights["_fc.weight"]).doubles()
        XCTAssertEqual(classifier.reduce(0, +), -470.63256730128705, accuracy: 1e-7)
        var absoluteSum = 0.0
        for tensor in weights.tensors {
            for value in try tensor.floats() { absoluteSum += Double(abs(value)) }
        }
        XCTAssertEqual(absoluteSum, 742006.912026712, accuracy: 1e-5)
    }

    // MARK: Fixtures made with torch 2.x

    private func expectedTensors() throws -> [WeightTensor] {
        let expected = try SafeTensors.read(contentsOf: fixtures.appendingPathComponent("expected.safetensors"))
        let orderJSON = try XCTUnwrap(expected.metadata["order"])
        let order = try JSONDecoder().decode([String].self, from: Data(orderJSON.utf8))
        return try order.map { try XCTUnwrap(expected[$0], $0) }
    }

    func testZipAndLegacyFixturesMatchTorchsOwnValues() throws {
        let expected = try expectedTensors()
        XCTAssertEqual(expected.count, 21)
        for (file, format) in [("checkpoint-zip.pth", WeightFileFormat.pytorchZip), ("checkpoint-legacy.pth", .pytorchLegacy),
                               ("checkpoint-deflated.pth", .pytorchZip)] {
            let weights = try WeightFiles.read(contentsOf: fixtures.appendingPathComponent(file))
            XCTAssertEqual(weights.format, format, file)
            // Same names in state-dict order (nested dicts and lists flattened), same dtypes, shapes and bytes.
            XCTAssertEqual(weights.tensors.map(\.name), expected.map(\.name), file)
            for (got, want) in zip(weights.tensors, expected) {
                XCTAssertEqual(got.dtype, want.dtype, "\(file) \(want.name)")
                XCTAssertEqual(got.shape, want.shape, "\(file) \(want.name)")
                XCTAssertEqual(got.data, want.data, "\(file) \(want.name)")
            }
            XCTAssertEqual(try weights["transposed"]?.floats(), try expected.first { $0.name == "transposed" }?.floats())
            XCTAssertEqual(weights["transposed"]?.shape, [6, 4])
            XCTAssertEqual(weights["every_other_column"]?.shape, [4, 3])
            XCTAssertEqual(try weights["rows_1_to_3"]?.floats(), (6..<18).map { Float($0) / 8 - 1 })
            XCTAssertEqual(weights["bn.num_batches_tracked"]?.shape, [])
            XCTAssertEqual(try weights["bn.num_batches_tracked"]?.integers(), [17])
            XCTAssertEqual(try weights["i64"]?.integers(), [-(1 << 40), (1 << 40) + 3])
            XCTAssertEqual(try weights["half"]?.floats(), [1, -2.5, 65504, 1023 * 0x1p-24, 0]) // 6.1e-5 rounds to a subnormal
            XCTAssertEqual(try weights["bf16"]?.floats(), [1, -3, 0.15625])
            XCTAssertEqual(try weights["mask"]?.integers(), [1, 0, 1])
            XCTAssertEqual(weights["empty"]?.shape, [0, 3])
            XCTAssertEqual(weights["nested.deeper.x"]?.dtype, .int64)
            XCTAssertEqual(try weights["heads.1"]?.floats(), [3, 3])
        }
    }

    func testPyTorchCheckpointReadGivesTensorsAndOtherLeaves() throws {
        let contents = try PyTorchCheckpoint.load(contentsOf: fixtures.appendingPathComponent("checkpoint-zip.pth"))
        XCTAssertEqual(contents.format, .zip)
        // The wrapper {"state_dict": ..., "epoch": 7, "config": {...}}: tensors from state_dict, the rest reported.
        XCTAssertEqual(contents.otherEntries.map(\.name), ["epoch", "config.lr", "config.name"])
        XCTAssertEqual(contents.otherEntries.map(\.value), ["7", "0.1", "'fixture'"])
        XCTAssertEqual(try PyTorchCheckpoint.read(contentsOf: fixtures.appendingPathComponent("checkpoint-legacy.pth")).map(\.name),
                       contents.tensors.map(\.name))
    }

    func testNonTensorLeavesOfAPlainStateDictAreReportedNotFatal() throws {
        // {"w": tensor, "epoch": 3, "note": "x"} built by hand as a zip-free legacy stream is awkward, so
        // exercise the leaf walk directly on unpickled values.
        let storage = PickleStorage(key: "0", dtype: .float32, rootElementCount: 2, elementCount: 2)
        let dict = PickleDict()
        dict.set(.string("w"), .tensor(PickleTensor(storage: storage, storageOffset: 0, shape: [2], strides: [1])))
        dict.set(.string("epoch"), .int(3))
        dict.set(.string("note"), .string("x"))
        dict.set(.string("lr"), .float(0.5))
        let leaves = try PyTorchCheckpoint.collectLeaves(.dict(dict))
        XCTAssertEqual(leaves.tensors.map(\.name), ["w"])
        XCTAssertEqual(leaves.others.map(\.name), ["epoch", "note", "lr"])
        XCTAssertEqual(leaves.others.map(\.value), ["3", "'x'", "0.5"])

        let wrapper = PickleDict()
        wrapper.set(.string("epoch"), .int(3))
        wrapper.set(.string("model"), .dict(dict))
        XCTAssertEqual(try PyTorchCheckpoint.collectLeaves(.dict(wrapper)).tensors.map(\.name), ["w"])

        XCTAssertThrowsError(try PyTorchCheckpoint.collectLeaves(.dict(PickleDict()))) { error in
            XCTAssertTrue(String(describing: error).contains("no tensors"))
        }
    }

    // MARK: Bad inputs

    private func assertFails(_ body: @autoclosure () throws -> Any, _ kind: WeightFileError.Kind, mentioning text: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let weightError = error as? WeightFileError else {
                return XCTFail("untyped error \(error)", file: file, line: line)
            }
            XCTAssertEqual(weightError.kind, kind, weightError.description, file: file, line: line)
            XCTAssertTrue(weightError.description.contains(text), weightError.description, file: file, line: line)
        }
    }

    /// A legacy-format stream whose object pickle is `body` (protocol 2, must end with STOP).
    private func legacyStream(objectPickle body: [UInt8]) -> Data {
        var bytes: [UInt8] = [0x80, 0x02, 0x8A, 0x0A] + PyTorchCheckpoint.legacyMagic + [0x2E]
        bytes += [0x80, 0x02, 0x4D, 0xE9, 0x03, 0x2E] // 1001
        bytes += [0x80, 0x02, 0x7D, 0x2E] // {}
        bytes += body
        return Data(bytes)
    }

    func testForbiddenGlobalsAreRefusedNotExecuted() throws {
        // os.system('touch …') via GLOBAL + REDUCE.
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("kdad-pickle-\(UUID().uuidString)")
        let command = Array("touch \(marker.path)".utf8)
        let evil: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x58] + withUnsafeBytes(of: UInt32(command.count).littleEndian, Array.init)
            + command + [0x85, 0x52, 0x2E]
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: evil)), .forbiddenGlobal, mentioning: "os.system")
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path))

        // builtins.eval via STACK_GLOBAL (protocol 4).
        let stackGlobal: [UInt8] = [0x80, 0x04, 0x8C, 0x08] + Array("builtins".utf8) + [0x8C, 0x04] + Array("eval".utf8) + [0x93, 0x2E]
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: stackGlobal)), .forbiddenGlobal, mentioning: "builtins.eval")

        // A whitelisted module with a name outside the list.
        let torchLoad: [UInt8] = [0x80, 0x02] + Array("ctorch\nload\n".utf8) + [0x2E]
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: torchLoad)), .forbiddenGlobal, mentioning: "torch.load")
    }

    func testUnsupportedOpcodesAreNamed() throws {
        // NEWOBJ (0x81) and INST ('i') build arbitrary objects; 0xFF is no opcode at all.
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: [0x80, 0x02, 0x29, 0x29, 0x81, 0x2E])), .unsupported, mentioning: "NEWOBJ")
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: [0x80, 0x02, 0x28, 0x69, 0x2E])), .unsupported, mentioning: "INST")
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: [0x80, 0x02, 0xFF])), .unsupported, mentioning: "unknown (0xff)")
        // Malformed streams: stack underflow, a memo slot never filled.
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: [0x80, 0x02, 0x73, 0x2E])), .malformed, mentioning: "underflow")
        assertFails(try PyTorchCheckpoint.decode(legacyStream(objectPickle: [0x80, 0x02, 0x68, 0x05, 0x2E])), .malformed, mentioning: "memo slot 5")
    }

    func testTruncatedCheckpointsFailWithTypedErrors() throws {
        let legacy = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-legacy.pth"))
        assertFails(try PyTorchCheckpoint.decode(legacy.prefix(legacy.count - 10)), .truncated, mentioning: "file ends before the storage's element count")
        assertFails(try PyTorchCheckpoint.decode(legacy.prefix(legacy.count - 1)), .truncated, mentioning: "run past the end")
        assertFails(try PyTorchCheckpoint.decode(legacy.prefix(300)), .truncated, mentioning: "pickle stream ends")
        assertFails(try PyTorchCheckpoint.decode(legacy + Data([0])), .malformed, mentioning: "unexpected bytes after")

        let zip = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-zip.pth"))
        assertFails(try PyTorchCheckpoint.decode(zip.prefix(zip.count - 30)), .truncated, mentioning: "end-of-central-directory")

        // A file on disk names itself in the error.
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cut = directory.appendingPathComponent("cut.pth")
        try legacy.prefix(legacy.count - 10).write(to: cut)
        XCTAssertThrowsError(try WeightFiles.read(contentsOf: cut)) { error in
            XCTAssertTrue(String(describing: error).hasPrefix(cut.path + ": "), String(describing: error))
        }
    }

    func testCorruptedOrCompressedZipEntriesAreRefused() throws {
        var zip = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-zip.pth"))
        let archive = try ZipArchive(zip)
        let storageEntry = try XCTUnwrap(archive.entries.first { $0.name.hasSuffix("/data/0") })
        XCTAssertEqual(try archive.contents(of: storageEntry).count, 4 * 3 * 2 * 2 * 4)
        // Flip a byte inside that entry's data: the CRC check catches it.
        let nameLength = Int(zip[storageEntry.localHeaderOffset + 26]) | Int(zip[storageEntry.localHeaderOffset + 27]) << 8
        let extraLength = Int(zip[storageEntry.localHeaderOffset + 28]) | Int(zip[storageEntry.localHeaderOffset + 29]) << 8
        zip[storageEntry.localHeaderOffset + 30 + nameLength + extraLength + 5] ^= 0xFF
        assertFails(try PyTorchCheckpoint.decode(zip), .malformed, mentioning: "CRC-32 mismatch")

        // Deflated entries are read (see testZipAndLegacyFixturesMatchTorchsOwnValues); damaged deflate data
        // is caught, and a compression method the reader does not know is refused as unsupported.
        var deflated = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-deflated.pth"))
        let deflatedArchive = try ZipArchive(deflated)
        let deflatedEntry = try XCTUnwrap(deflatedArchive.entries.first { $0.name.hasSuffix("/data/0") })
        XCTAssertEqual(deflatedEntry.method, 8)
        XCTAssertEqual(try deflatedArchive.contents(of: deflatedEntry), try archive.contents(of: storageEntry))
        var damaged = deflated
        let deflatedNameLength = Int(deflated[deflatedEntry.localHeaderOffset + 26]) | Int(deflated[deflatedEntry.localHeaderOffset + 27]) << 8
        damaged[deflatedEntry.localHeaderOffset + 30 + deflatedNameLength + 3] ^= 0x55
        assertFails(try PyTorchCheckpoint.decode(damaged), .malformed, mentioning: "data/0")
        // Method 12 (bzip2) in the local header and central directory record of the first entry.
        let centralDirectory = try XCTUnwrap(deflated.range(of: Data([0x50, 0x4B, 0x01, 0x02])))
        deflated[8] = 12
        deflated[centralDirectory.lowerBound + 10] = 12
        assertFails(try PyTorchCheckpoint.decode(deflated), .unsupported, mentioning: "method 12")
    }

    func testViewsOutsideTheirStorageAreRefused() throws {
        let storage = PickleStorage(key: "0", dtype: .float32, rootElementCount: 6, elementCount: 6)
        let bytes = WeightTensor(name: "s", shape: [6], floats: [0, 1, 2, 3, 4, 5]).data
        // A transposed 2×3 view gathers correctly...
        let transposed = PickleTensor(storage: storage, storageOffset: 0, shape: [3, 2], strides: [1, 3])
        XCTAssertEqual(try PyTorchCheckpoint.materialize(name: "t", transposed, storageBytes: bytes).floats(), [0, 3, 1, 4, 2, 5])
        // ...an offset strided view too...
        let strided = PickleTensor(storage: storage, storageOffset: 1, shape: [2], strides: [2])
        XCTAssertEqual(try PyTorchCheckpoint.materialize(name: "s", strided, storageBytes: bytes).floats(), [1, 3])
        // ...but one reaching past the storage is an error, not a read out of bounds.
        let tooFar = PickleTensor(storage: storage, storageOffset: 2, shape: [2, 3], strides: [3, 1])
        assertFails(try PyTorchCheckpoint.materialize(name: "far", tooFar, storageBytes: bytes), .invalidTensor, mentioning: "reaches element 7")
    }

    // MARK: Format detection and the cache

    func testFormatDetectionUsesMagicBytes() throws {
        XCTAssertEqual(WeightFiles.detectFormat(try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-zip.pth"))), .pytorchZip)
        XCTAssertEqual(WeightFiles.detectFormat(try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-legacy.pth"))), .pytorchLegacy)
        XCTAssertEqual(WeightFiles.detectFormat(try Data(contentsOf: fixtures.appendingPathComponent("expected.safetensors"))), .safetensors)
        XCTAssertNil(WeightFiles.detectFormat(Data("hello world, not weights".utf8)))
        XCTAssertNil(WeightFiles.detectFormat(Data()))

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("notes.pth")
        try Data("just text".utf8).write(to: text)
        assertFails(try WeightFiles.read(contentsOf: text), .unknownFormat, mentioning: "notes.pth")
    }

    func testWeightCacheNamesTheFetchCommandWhenMissing() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let environment = ["KDAD_WEIGHTS": directory.path, "HOME": "/nonexistent"]
        XCTAssertEqual(WeightCache.directory(environment: environment).path, directory.path)
        XCTAssertEqual(WeightCache.directory(environment: ["HOME": "/home/x"]).path, "/home/x/.cache/kdad/weights")

        assertFails(try WeightCache.url(for: "efficientnet-lite1", environment: environment), .missing,
                    mentioning: "scripts/fetch-weights.sh lite1")
        assertFails(try WeightCache.url(for: "resnet-9000", environment: environment), .missing, mentioning: "unknown model")

        let file = directory.appendingPathComponent("efficientnet-lite1.pth")
        try Data([1]).write(to: file)
        XCTAssertEqual(try WeightCache.url(for: "efficientnet-lite1", environment: environment).path, file.path)
    }
}
