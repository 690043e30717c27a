import Foundation
import XCTest
@testable import KdadShards

final class ShardRoundTripTests: XCTestCase {
    private struct ImageMetadata: Codable, Equatable {
        var lot: String
        var label: Int
        var scores: [Double]
    }

    private func mixedRecords() throws -> [ShardRecord] {
        [
            try ShardRecord(
                key: "lot-7/image-0001.jpg",
                metadata: ImageMetadata(lot: "lot-7", label: 0, scores: [0.25, -1.5]),
                tensors: [
                    ShardTensor(name: "image", uint8: (0..<(3 * 4 * 5)).map { UInt8($0 * 4) }, shape: [3, 4, 5]),
                    ShardTensor(name: "features", float16From: [0.5, -2, 1e-3, 65504, -0.0, 3.140625], shape: [1, 2, 3]),
                    ShardTensor(name: "anomaly", float32: [1.5, -.infinity, .greatestFiniteMagnitude, Float.leastNonzeroMagnitude], shape: [2, 2]),
                    ShardTensor(name: "indices", int32: [Int32.min, -1, 0, Int32.max], shape: [4]),
                ]),
            // Unicode in key, metadata and tensor names; scalar (rank 0) tensors of every dtype.
            ShardRecord(
                key: "Prüfteil/画像-🙂 ñ",
                metadata: Data(#"{"Bemerkung":"Kratzer ✓","n":[1,2,3]}"#.utf8),
                tensors: [
                    try ShardTensor(name: "skalar·f32", float32: [42.25], shape: []),
                    try ShardTensor(name: "скаляр-f16", float16: [Float16(-0.75)], shape: []),
                    try ShardTensor(name: "u8", uint8: [255], shape: []),
                    try ShardTensor(name: "i32", int32: [-123456], shape: []),
                ]),
            // Empty tensors (a zero dimension), a key with only spaces, JSON scalar metadata.
            ShardRecord(
                key: "   ",
                metadata: Data("null".utf8),
                tensors: [
                    try ShardTensor(name: "empty-f32", float32: [], shape: [0]),
                    try ShardTensor(name: "empty-i32", int32: [], shape: [0, 5]),
                    try ShardTensor(name: "empty-f16", float16: [], shape: [3, 0, 2]),
                    try ShardTensor(name: "empty-u8", uint8: [], shape: [0]),
                ]),
            // No tensors at all, the empty key.
            ShardRecord(key: ""),
        ]
    }

    func testMixedRecordsRoundTripByKeyAndInStreamingOrder() throws {
        let url = try temporaryDirectory(for: self).appendingPathComponent("mixed.shard")
        let records = try mixedRecords()
        try writeShard(records, to: url)

        let reader = try ShardReader(url: url)
        XCTAssertEqual(reader.count, records.count)
        XCTAssertEqual(reader.keys, records.map(\.key))
        for record in records {
            XCTAssertTrue(reader.contains(key: record.key))
            XCTAssertEqual(try reader.record(forKey: record.key), record)
        }
        // Random access in reverse order still finds each record.
        for record in records.reversed() { XCTAssertEqual(try reader.record(forKey: record.key).key, record.key) }

        var streamed: [ShardRecord] = []
        try reader.forEachRecord { streamed.append($0) }
        XCTAssertEqual(streamed, records)
        XCTAssertEqual(try streamed.map { try reader.record(forKey: $0.key) }, streamed)
        XCTAssertEqual(try reader.verifyAllRecords(), [])

        // Typed accessors give back the values, including float16 rounding and widening.
        let first = try reader.record(forKey: "lot-7/image-0001.jpg")
        XCTAssertEqual(try first.decodeMetadata(ImageMetadata.self), ImageMetadata(lot: "lot-7", label: 0, scores: [0.25, -1.5]))
        XCTAssertEqual(try first.tensor(named: "image")?.uint8Values(), (0..<60).map { UInt8($0 * 4) })
        XCTAssertEqual(try first.tensor(named: "features")?.floatValues(), [0.5, -2, Float(Float16(1e-3)), 65504, -0.0, 3.140625])
        XCTAssertEqual(try first.tensor(named: "anomaly")?.float32Values(), [1.5, -.infinity, .greatestFiniteMagnitude, Float.leastNonzeroMagnitude])
        XCTAssertEqual(try first.tensor(named: "indices")?.int32Values(), [Int32.min, -1, 0, Int32.max])
        XCTAssertEqual(first.tensor(named: "features")?.shape, [1, 2, 3])

        let unicode = try reader.record(forKey: "Prüfteil/画像-🙂 ñ")
        XCTAssertEqual(String(decoding: unicode.metadata, as: UTF8.self), #"{"Bemerkung":"Kratzer ✓","n":[1,2,3]}"#)
        XCTAssertEqual(try unicode.tensor(named: "скаляр-f16")?.float16Values(), [Float16(-0.75)])
        XCTAssertEqual(unicode.tensor(named: "i32")?.shape, [])
        XCTAssertEqual(unicode.tensor(named: "i32")?.elementCount, 1)
        XCTAssertEqual(try reader.record(forKey: "   ").tensor(named: "empty-f16")?.elementCount, 0)
    }

    func testMissingKeyIsATypedErrorNamingShardAndKey() throws {
        let url = try temporaryDirectory(for: self).appendingPathComponent("keys.shard")
        try writeShard(try mixedRecords(), to: url)
        let reader = try ShardReader(url: url)
        let error = expectShardError { try reader.record(forKey: "lot-7/image-0002.jpg") }
        XCTAssertEqual(error, .missingKey(path: url.path, key: "lot-7/image-0002.jpg"))
        XCTAssertFalse(reader.contains(key: "lot-7/image-0002.jpg"))
        // Unicode keys are matched exactly, not after normalisation or case folding.
        XCTAssertEqual(expectShardError { try reader.record(forKey: "prüfteil/画像-🙂 ñ") },
                       .missingKey(path: url.path, key: "prüfteil/画像-🙂 ñ"))
    }

    func testEmptyShardRoundTrips() throws {
        let url = try temporaryDirectory(for: self).appendingPathComponent("empty.shard")
        try writeShard([], to: url)
        let reader = try ShardReader(url: url)
        XCTAssertEqual(reader.count, 0)
        XCTAssertEqual(reader.fileSize, ShardFormat.headerSize + ShardFormat.footerSize)
        var iterator = try reader.makeRecordIterator()
        XCTAssertNil(try iterator.next())
    }

    func testWriterRejectsDuplicateKeysAndInvalidRecordsButKeepsGoing() throws {
        let directory = try temporaryDirectory(for: self)
        let url = directory.appendingPathComponent("rules.shard")
        let writer = try ShardWriter(url: url)
        try writer.append(ShardRecord(key: "a"))
        XCTAssertEqual(expectShardError { try writer.append(ShardRecord(key: "a")) }, .duplicateKey(path: url.path, key: "a"))
        guard case .invalidRecord(key: "b", _)? = expectShardError({ try writer.append(ShardRecord(key: "b", metadata: Data("{not json".utf8))) }) else {
            return XCTFail("invalid JSON metadata must be rejected")
        }
        let tensor = try ShardTensor(name: "t", uint8: [1], shape: [1])
        guard case .invalidRecord(key: "c", _)? = expectShardError({ try writer.append(ShardRecord(key: "c", tensors: [tensor, tensor])) }) else {
            return XCTFail("duplicate tensor names must be rejected")
        }
        try writer.append(ShardRecord(key: "b"))
        try writer.finish()
        XCTAssertEqual(expectShardError { try writer.append(ShardRecord(key: "z")) }, .writerClosed(path: url.path))
        XCTAssertEqual(expectShardError { try writer.finish() }, .writerClosed(path: url.path))
        XCTAssertEqual(try ShardReader(url: url).keys, ["a", "b"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["rules.shard"])
    }

    func testTensorShapeAndDtypeMismatchesAreTypedErrors() throws {
        XCTAssertNotNil(expectShardError { try ShardTensor(name: "x", float32: [1, 2, 3], shape: [2, 2]) })
        XCTAssertNotNil(expectShardError { try ShardTensor(name: "x", dtype: .int32, shape: [3], bytes: Data(count: 11)) })
        XCTAssertNotNil(expectShardError { try ShardTensor(name: "x", uint8: [], shape: [-1]) })
        XCTAssertNotNil(expectShardError { try ShardTensor(name: "x", uint8: [], shape: [Int.max, Int.max]) })
        XCTAssertNotNil(expectShardError { try ShardTensor(name: "x", uint8: [], shape: [Int](repeating: 1, count: 33) + [0]) })
        let tensor = try ShardTensor(name: "x", int32: [7], shape: [1])
        XCTAssertEqual(expectShardError { try tensor.float32Values() }, .invalidTensor(name: "x", reason: "holds int32, not float32"))
        XCTAssertNotNil(expectShardError { try tensor.floatValues() })
        XCTAssertNotNil(expectShardError { try ShardWriter(url: URL(fileURLWithPath: "/tmp/x.shard"), compressionLevel: 1000) })
    }

    func testUnfinishedWriterLeavesNoFiles() throws {
        let directory = try temporaryDirectory(for: self)
        let url = directory.appendingPathComponent("dropped.shard")
        do {
            let writer = try ShardWriter(url: url)
            try writer.append(ShardRecord(key: "a"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: writer.temporaryURL.path))
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])

        let abandoned = try ShardWriter(url: url)
        try abandoned.append(ShardRecord(key: "a"))
        abandoned.abandon()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    func testRewritingAShardReplacesItWhole() throws {
        let url = try temporaryDirectory(for: self).appendingPathComponent("again.shard")
        try writeShard([ShardRecord(key: "old-1"), ShardRecord(key: "old-2")], to: url)
        let writer = try ShardWriter(url: url)
        try writer.append(ShardRecord(key: "new"))
        // Until finish, readers still see the complete old shard.
        XCTAssertEqual(try ShardReader(url: url).keys, ["old-1", "old-2"])
        try writer.finish()
        XCTAssertEqual(try ShardReader(url: url).keys, ["new"])
    }

    func testWriterIsDeterministicAndHonoursTheCompressionLevel() throws {
        let directory = try temporaryDirectory(for: self)
        let values = ShardSyntheticData.featureMap(channels: 8, height: 16, width: 16, seed: 3, reluThreshold: 0.5)
        let record = ShardRecord(key: "f", tensors: [try ShardTensor(name: "f", float16From: values, shape: [8, 16, 16])])
        var sizes: [Int] = []
        for (index, level) in [1, 1, 19].enumerated() {
            let url = directory.appendingPathComponent("level-\(index).shard")
            try writeShard([record], to: url, level: level)
            sizes.append(try ShardReader(url: url).fileSize)
            XCTAssertEqual(try ShardReader(url: url).record(forKey: "f"), record)
        }
        let first = try Data(contentsOf: directory.appendingPathComponent("level-0.shard"))
        XCTAssertEqual(first, try Data(contentsOf: directory.appendingPathComponent("level-1.shard")))
        XCTAssertLessThan(sizes[2], sizes[0], "level 19 should compress ReLU-sparse features better than level 1")
        XCTAssertLessThan(sizes[0], 8 * 16 * 16 * 2, "ReLU-sparse float16 features must compress")
    }

    func testReadingAFileThatIsNotAShard() throws {
        let url = try temporaryDirectory(for: self).appendingPathComponent("notes.txt")
        try Data("just some text, not a shard at all".utf8).write(to: url)
        guard case .badMagic(path: url.path, _)? = expectShardError({ try ShardReader(url: url) }) else {
            return XCTFail("a text file must be reported as bad magic")
        }
        let missing = url.deletingLastPathComponent().appendingPathComponent("absent.shard")
        guard case .io(path: missing.path, operation: "open", _)? = expectShardError({ try ShardReader(url: missing) }) else {
            return XCTFail("a missing file must be an I/O error naming it")
        }
    }
}
