import Foundation
import KdadTestSupport
import XCTest
@testable import KdadWeights

final class SafeTensorsTests: XCTestCase {
    // MARK: Real files from ../shared

    func testReadsAutogradGoldenAndRoundTripsByteIdentically() throws {
        let url = try SharedData.require("reference/autograd/golden.safetensors")
        let file = try SafeTensors.read(contentsOf: url)
        XCTAssertEqual(file.tensors.count, 64)
        XCTAssertTrue(file.tensors.allSatisfy { $0.dtype == .float64 })
        let x = try XCTUnwrap(file["x"])
        XCTAssertEqual(x.shape, [4, 3, 16, 16])
        XCTAssertEqual(try x.doubles().count, 4 * 3 * 16 * 16)
        XCTAssertEqual(file["buffer1.b1.running_mean"]?.shape, [8])
        // File order is by offset.
        XCTAssertEqual(file.tensors.first?.name, "buffer1.b1.num_batches_tracked")

        // The reference writer's layout is reproduced exactly, so writing back gives the same bytes.
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("copy.safetensors")
        try SafeTensors.write(file.tensors, metadata: file.metadata, to: copy)
        XCTAssertEqual(try Data(contentsOf: copy), try Data(contentsOf: url))
        let reread = try SafeTensors.read(contentsOf: copy)
        XCTAssertEqual(reread.tensors, file.tensors)
    }

    func testReadsLite0GoldenWithMixedDTypesAndRoundTrips() throws {
        let url = try SharedData.require("reference/efficientnet-lite0/golden-224.safetensors")
        let file = try SafeTensors.read(contentsOf: url)
        XCTAssertEqual(file.tensors.count, 21)
        XCTAssertEqual(file["input"]?.shape, [1, 3, 224, 224])
        XCTAssertEqual(file["logits"]?.shape, [1, 1000])
        XCTAssertEqual(file["stem"]?.shape, [1, 32, 112, 112])
        let image = try XCTUnwrap(file["input_uint8_hwc"])
        XCTAssertEqual(image.dtype, .uint8)
        XCTAssertEqual(image.shape, [224, 224, 3])
        // U8 converts exactly to float in 0...255.
        let pixels = try image.floats()
        XCTAssertEqual(pixels.count, 224 * 224 * 3)
        XCTAssertTrue(pixels.allSatisfy { $0 >= 0 && $0 <= 255 && $0 == $0.rounded() })

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("copy.safetensors")
        // Shuffled input order must not matter: the writer orders by dtype then name like the reference.
        try SafeTensors.write(file.tensors.reversed(), to: copy)
        XCTAssertEqual(try Data(contentsOf: copy), try Data(contentsOf: url))
    }

    func testReadsFloat16ResNetGolden() throws {
        let url = try SharedData.require("reference/resnet/resnet10.safetensors")
        let file = try SafeTensors.read(contentsOf: url)
        let conv1 = try XCTUnwrap(file["weight.conv1.weight"])
        XCTAssertEqual(conv1.dtype, .float16)
        XCTAssertEqual(conv1.shape, [64, 3, 7, 7])
        let values = try conv1.floats()
        XCTAssertTrue(values.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(values.map(abs).max() ?? 0, 0)
        // float16 → Float is exact, so Float → float16 gives the stored bits back.
        let bits = conv1.data.withUnsafeBytes { raw in
            (0..<values.count).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        }
        XCTAssertEqual(values.map(HalfFloat.fromFloat), bits)
    }

    // MARK: Conversions

    func testConversionsForEveryDType() throws {
        func tensor(_ dtype: WeightDType, _ bytes: [UInt8], _ shape: [Int]) -> WeightTensor {
            WeightTensor(name: "t", dtype: dtype, shape: shape, data: Data(bytes))
        }
        XCTAssertEqual(try tensor(.float16, [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00], [3]).floats(),
                       [1, -2, Float(sign: .plus, exponent: -24, significand: 1)])
        XCTAssertEqual(try tensor(.bfloat16, [0x80, 0x3F, 0x40, 0xC0], [2]).floats(), [1, -3])
        XCTAssertEqual(try tensor(.int64, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [1]).floats(), [-1])
        XCTAssertEqual(try tensor(.int32, [0x02, 0x01, 0x00, 0x00], []).floats(), [258])
        XCTAssertEqual(try tensor(.int16, [0xFE, 0xFF], [1]).doubles(), [-2])
        XCTAssertEqual(try tensor(.int8, [0x80], [1]).floats(), [-128])
        XCTAssertEqual(try tensor(.uint8, [0x80], [1]).floats(), [128])
        XCTAssertEqual(try tensor(.bool, [0, 1], [2]).integers(), [0, 1])
        XCTAssertEqual(try tensor(.float16, [0x00, 0x7C], [1]).floats(), [.infinity])
        XCTAssertTrue(try tensor(.float16, [0x01, 0x7E], [1]).floats()[0].isNaN)

        // F64 → F32 rounds to nearest.
        let third = WeightTensor(name: "d", shape: [1], doubles: [1.0 / 3.0])
        XCTAssertEqual(try third.floats(), [Float(1.0 / 3.0)])
        XCTAssertEqual(try third.doubles(), [1.0 / 3.0])
        let floats = WeightTensor(name: "f", shape: [2, 2], floats: [1.5, -2, 0, 3e-8])
        XCTAssertEqual(try floats.floats(), [1.5, -2, 0, 3e-8])
        XCTAssertEqual(try floats.doubles(), [1.5, -2, 0, Double(Float(3e-8))])

        XCTAssertThrowsError(try tensor(.float32, [0, 0, 0], [1]).floats()) { error in
            XCTAssertEqual((error as? WeightFileError)?.kind, .invalidTensor)
        }
        XCTAssertThrowsError(try floats.integers())
    }

    func testHalfRoundingIsNearestEven() {
        XCTAssertEqual(HalfFloat.fromFloat(1), 0x3C00)
        XCTAssertEqual(HalfFloat.fromFloat(65504), 0x7BFF)
        XCTAssertEqual(HalfFloat.fromFloat(65520), 0x7C00) // ties to even: rounds up to infinity
        XCTAssertEqual(HalfFloat.fromFloat(1 + 1.0 / 2048), 0x3C00) // tie → even (down)
        XCTAssertEqual(HalfFloat.fromFloat(1 + 3.0 / 2048), 0x3C02) // tie → even (up)
        XCTAssertEqual(HalfFloat.fromFloat(Float(sign: .plus, exponent: -25, significand: 1)), 0x0000) // tie → 0
        XCTAssertEqual(HalfFloat.fromFloat(Float(sign: .plus, exponent: -24, significand: 1.5)), 0x0002) // tie → even
        XCTAssertEqual(HalfFloat.fromFloat(-0.0), 0x8000)
    }

    // MARK: Writing

    func testWriteReadRoundTripWithMetadataAndEdgeCases() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("w.safetensors")
        let tensors = [
            WeightTensor(name: "z.weight", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
            WeightTensor(name: "a \"quoted\"\nname", shape: [], floats: [7]),
            WeightTensor(name: "empty", shape: [0, 4], floats: []),
            WeightTensor(name: "h", dtype: .float16, shape: [1], data: Data([0x00, 0x3C])),
            WeightTensor(name: "i", dtype: .int64, shape: [1], data: Data([5, 0, 0, 0, 0, 0, 0, 0])),
        ]
        try SafeTensors.write(tensors, metadata: ["format": "pt", "note": "ünïcode \\ \"x\""], to: url)
        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual(headerLength % 8, 0)
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"format\":\"pt\","), header)

        let file = try SafeTensors.read(contentsOf: url)
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "ünïcode \\ \"x\""])
        XCTAssertEqual(Set(file.names), Set(tensors.map(\.name)))
        for tensor in tensors { XCTAssertEqual(file[tensor.name], tensor) }
        // Widest dtype first (reference writer's dtype rank), then name.
        XCTAssertEqual(file.names, ["i", "a \"quoted\"\nname", "empty", "z.weight", "h"])
        // No temporary file left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["w.safetensors"])
    }

    func testWriteRejectsInconsistentTensors() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.safetensors")
        let good = WeightTensor(name: "a", shape: [1], floats: [1])
        let cases: [([WeightTensor], String)] = [
            ([good, good], "two tensors"),
            ([WeightTensor(name: "b", dtype: .float32, shape: [2], data: Data(count: 4))], "do not match"),
            ([WeightTensor(name: "__metadata__", shape: [1], floats: [1])], "reserved"),
            ([WeightTensor(name: "", shape: [1], floats: [1])], "empty"),
        ]
        for (tensors, expected) in cases {
            XCTAssertThrowsError(try SafeTensors.write(tensors, to: url)) { error in
                XCTAssertEqual((error as? WeightFileError)?.file, url.path)
                XCTAssertTrue(String(describing: error).contains(expected), String(describing: error))
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: Validation of bad files

    /// Builds a safetensors image from a raw header string and data bytes.
    private func image(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
        var out = Data()
        let headerBytes = Array(header.utf8)
        withUnsafeBytes(of: (declaredLength ?? UInt64(headerBytes.count)).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        out.append(contentsOf: data)
        return out
    }

    private func assertRejects(_ bytes: Data, _ kind: WeightFileError.Kind, mentioning text: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.decode(bytes), file: file, line: line) { error in
            guard let weightError = error as? WeightFileError else {
                return XCTFail("untyped error \(error)", file: file, line: line)
            }
            XCTAssertEqual(weightError.kind, kind, weightError.description, file: file, line: line)
            XCTAssertTrue(weightError.description.contains(text), weightError.description, file: file, line: line)
        }
    }

    func testRejectsMalformedFiles() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertEqual(try SafeTensors.decode(image(header: ok, data: Array(repeating: 0, count: 8))).tensors.count, 1)
        let eight = [UInt8](repeating: 0, count: 8)

        assertRejects(Data([1, 2, 3]), .truncated, mentioning: "too short")
        assertRejects(image(header: ok, data: [], declaredLength: 500), .truncated, mentioning: "runs past")
        assertRejects(image(header: ok, data: [0, 0, 0, 0]), .truncated, mentioning: "a: data_offsets [0, 8] run past")
        assertRejects(image(header: ok, data: eight + [0, 0, 0, 0]), .malformed, mentioning: "tensors cover 8")
        assertRejects(image(header: ok, data: [], declaredLength: UInt64(1) << 40), .malformed, mentioning: "exceeds")
        assertRejects(image(header: "[1]", data: []), .malformed, mentioning: "start with '{'")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: []), .malformed, mentioning: "JSON invalid")
        assertRejects(image(header: #"{"a":1,"a":2}"#, data: []), .malformed, mentioning: "duplicate key")
        assertRejects(image(header: #"{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), .unsupported, mentioning: "a: dtype F8")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight), .invalidTensor, mentioning: "needs 12 bytes")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: eight), .malformed, mentioning: "non-negative")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: eight), .malformed, mentioning: "non-negative")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}}"#, data: eight), .malformed, mentioning: "non-negative")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[2]}}"#, data: []), .malformed, mentioning: "no data_offsets")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: []), .invalidTensor, mentioning: "end before")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: []), .invalidTensor, mentioning: "overflows")
        assertRejects(image(header: #"{"__metadata__":{"k":1}}"#, data: []), .malformed, mentioning: "not a string")
        assertRejects(image(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#, data: [0, 0, 0, 0]), .malformed, mentioning: "unexpected field")
        // Overlaps and gaps between tensors.
        let overlapping = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        assertRejects(image(header: overlapping, data: eight), .invalidTensor, mentioning: "overlap")
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        assertRejects(image(header: gap, data: eight + [0, 0, 0, 0]), .invalidTensor, mentioning: "gap")
    }

    func testReadNamesTheFileOnError() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("broken.safetensors")
        try image(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)).write(to: url)
        XCTAssertThrowsError(try SafeTensors.read(contentsOf: url)) { error in
            XCTAssertEqual((error as? WeightFileError)?.file, url.path)
            XCTAssertTrue(String(describing: error).hasPrefix("\(url.path): a: "), String(describing: error))
        }
        XCTAssertThrowsError(try SafeTensors.read(contentsOf: directory.appendingPathComponent("absent.safetensors"))) { error in
            XCTAssertEqual((error as? WeightFileError)?.kind, .io)
        }
    }
}
