import Foundation
import XCTest
@testable import KdadShards

final class ShardCorruptionTests: XCTestCase {
    private let keys = ["alpha", "βeta/中", "gamma"]

    private func records() throws -> [ShardRecord] {
        try keys.enumerated().map { index, key in
            ShardRecord(key: key, metadata: Data("{\"i\":\(index)}".utf8), tensors: [
                try ShardTensor(name: "x", float16From: (0..<32).map { Float($0 * (index + 1)) / 7 }, shape: [2, 16]),
                try ShardTensor(name: "raw", uint8: ShardSyntheticData.randomBytes(count: 40, seed: UInt64(index)), shape: [40]),
            ])
        }
    }

    /// A finished three-record shard: its URL, bytes and index entries.
    private func makeShard() throws -> (url: URL, bytes: [UInt8], entries: [ShardIndexEntry], records: [ShardRecord]) {
        let url = try temporaryDirectory(for: self).appendingPathComponent("intact.shard")
        let records = try records()
        let entries = try writeShard(records, to: url)
        return (url, Array(try Data(contentsOf: url)), entries, records)
    }

    /// Writes `bytes` to a sibling file with plain POSIX calls (the tests write hundreds of variants;
    /// no temp-file-and-rename dance needed).
    private func writeVariant(_ bytes: [UInt8], named name: String, beside url: URL) throws -> URL {
        let variant = url.deletingLastPathComponent().appendingPathComponent(name)
        let descriptor = open(variant.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(descriptor, 0, "open \(variant.path)")
        defer { close(descriptor) }
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        XCTAssertEqual(written, bytes.count, "write \(variant.path)")
        return variant
    }

    func testEveryFlippedByteInARecordIsReportedAsCorruptionOfThatRecordOnly() throws {
        let shard = try makeShard()
        let damaged = shard.entries[1]
        XCTAssertEqual(damaged.key, "βeta/中")
        for offset in damaged.offset..<(damaged.offset + damaged.compressedLength) {
            var bytes = shard.bytes
            bytes[offset] ^= 0xFF
            let url = try writeVariant(bytes, named: "flip-record.shard", beside: shard.url)
            let reader = try ShardReader(url: url)  // header, index and footer are intact

            guard case let .corruptRecord(path, key, _)? = expectShardError({ try reader.record(forKey: damaged.key) }, "offset \(offset)") else {
                return XCTFail("flipping byte \(offset) must be reported as a corrupt record")
            }
            XCTAssertEqual(path, url.path)
            XCTAssertEqual(key, damaged.key)
            XCTAssertEqual(try reader.record(forKey: "alpha"), shard.records[0])
            XCTAssertEqual(try reader.record(forKey: "gamma"), shard.records[2])

            // Streaming: the bad record throws, and the iterator carries on past it.
            var iterator = try reader.makeRecordIterator()
            XCTAssertEqual(try iterator.next(), shard.records[0])
            XCTAssertEqual(expectShardError { try iterator.next() }.map(\.description)?.contains("βeta/中"), true)
            XCTAssertEqual(try iterator.next(), shard.records[2])
            XCTAssertNil(try iterator.next())
            XCTAssertEqual(try reader.verifyAllRecords().count, 1)
        }
    }

    func testFlippedHeaderBytesAreTypedErrors() throws {
        let shard = try makeShard()
        for offset in 0..<ShardFormat.headerSize {
            var bytes = shard.bytes
            bytes[offset] ^= 0x01
            let url = try writeVariant(bytes, named: "flip-header.shard", beside: shard.url)
            let error = expectShardError({ try ShardReader(url: url) }, "header offset \(offset)")
            switch (offset, error) {
            case (0..<8, .badMagic(path: url.path, _)?): break
            case (8..<12, .unsupportedVersion(path: url.path, version: ShardFormat.version ^ (1 << (8 * UInt32(offset - 8))), flags: 0)?): break
            case (12..<16, .unsupportedVersion(path: url.path, version: ShardFormat.version, flags: 1 << (8 * UInt32(offset - 12)))?): break
            default: XCTFail("header offset \(offset): unexpected \(String(describing: error))")
            }
        }
    }

    func testFlippedIndexAndFooterBytesAreTypedErrors() throws {
        let shard = try makeShard()
        let footerStart = shard.bytes.count - ShardFormat.footerSize
        let indexStart = shard.entries.last!.offset + shard.entries.last!.compressedLength
        XCTAssertEqual(Int(littleEndianUInt64(shard.bytes, at: footerStart)), indexStart)
        for offset in indexStart..<shard.bytes.count {
            for mask: UInt8 in [0x01, 0x80] {
                var bytes = shard.bytes
                bytes[offset] ^= mask
                let url = try writeVariant(bytes, named: "flip-tail.shard", beside: shard.url)
                let error = expectShardError({ try ShardReader(url: url) }, "offset \(offset)")
                switch error {
                case .indexCorrupt(path: url.path, _)? where offset < footerStart + 32: break
                case .truncated(path: url.path, _)? where offset >= footerStart + 32: break  // footer magic gone
                default: XCTFail("offset \(offset) mask \(mask): unexpected \(String(describing: error))")
                }
            }
        }
    }

    /// Damage that slips past the stored CRC (the index is rewritten to match it) is still caught
    /// by the zstd frame checksum or the record decoder — and still names the record.
    func testDamageBehindARecomputedChecksumIsStillCaught() throws {
        let shard = try makeShard()
        let damaged = shard.entries[2]
        let footerStart = shard.bytes.count - ShardFormat.footerSize
        let indexStart = Int(littleEndianUInt64(shard.bytes, at: footerStart))
        // Layout per Docs/shard-format.md: the third index entry's CRC is the last 4 bytes of the index.
        let entryChecksumOffset = footerStart - 4
        XCTAssertEqual(littleEndianUInt32(shard.bytes, at: entryChecksumOffset), damaged.checksum)
        var caught = 0
        // Damage the last 4 bytes of the frame: the zstd content checksum (XXH64, low 32 bits).
        for offset in (damaged.offset + damaged.compressedLength - 4)..<(damaged.offset + damaged.compressedLength) {
            var bytes = shard.bytes
            bytes[offset] ^= 0x10
            let frame = Array(bytes[damaged.offset..<(damaged.offset + damaged.compressedLength)])
            storeLittleEndianUInt32(CRC32C.checksum(frame), into: &bytes, at: entryChecksumOffset)
            storeLittleEndianUInt32(CRC32C.checksum(Array(bytes[indexStart..<footerStart])), into: &bytes, at: footerStart + 24)
            storeLittleEndianUInt32(CRC32C.checksum(Array(bytes[footerStart..<(footerStart + 28)])), into: &bytes, at: footerStart + 28)
            let url = try writeVariant(bytes, named: "recomputed.shard", beside: shard.url)
            let reader = try ShardReader(url: url)
            if case .corruptRecord(path: url.path, key: "gamma", _)? = expectShardError({ try reader.record(forKey: "gamma") }) { caught += 1 }
            XCTAssertEqual(try reader.record(forKey: "alpha"), shard.records[0])
        }
        XCTAssertEqual(caught, 4)
    }

    func testATruncatedShardNeverReadsAsValid() throws {
        let shard = try makeShard()
        // Every possible length short of the whole file, cutting one copy shorter and shorter.
        let url = try writeVariant(shard.bytes, named: "cut.shard", beside: shard.url)
        for length in (0..<shard.bytes.count).reversed() {
            XCTAssertEqual(truncate(url.path, off_t(length)), 0)
            guard case .truncated(path: url.path, _)? = expectShardError({ try ShardReader(url: url) }, "length \(length)") else {
                return XCTFail("a shard cut to \(length) of \(shard.bytes.count) bytes must read as truncated")
            }
        }
        // Extra bytes after the footer are not a valid shard either.
        let padded = try writeVariant(shard.bytes + [0], named: "padded.shard", beside: shard.url)
        XCTAssertNotNil(expectShardError { try ShardReader(url: padded) })
        // And the intact bytes still read (the variants above were not vacuous).
        let intact = try writeVariant(shard.bytes, named: "copy.shard", beside: shard.url)
        XCTAssertEqual(try ShardReader(url: intact).keys, keys)
    }
}
