import Foundation
import XCTest
import KdadShards

/// Writing and streaming a 200 MB shard must use memory near one record, not the file size.
final class ShardMemoryTests: XCTestCase {
    func testA200MegabyteShardStreamsWithBoundedMemory() throws {
        let recordBytes = 4 << 20, recordCount = 50     // 4 MiB x 50 = 210 MB of payload
        let allowedGrowth = 64 << 20
        let url = try temporaryDirectory(for: self).appendingPathComponent("large.shard")
        // Random bytes do not compress, so the file is as large as the payload; level 1 keeps it fast.
        let pattern = ShardSyntheticData.randomBytes(count: recordBytes, seed: 5)
        func payload(_ index: Int) -> Data {
            var bytes = Data(pattern)
            withUnsafeBytes(of: UInt64(index).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            return bytes
        }

        let writeBaseline = try residentMemoryBytes()
        var writePeak = writeBaseline
        let writer = try ShardWriter(url: url, compressionLevel: 1)
        for index in 0..<recordCount {
            let tensor = try ShardTensor(name: "bytes", dtype: .uint8, shape: [recordBytes], bytes: payload(index))
            try writer.append(ShardRecord(key: "r\(index)", tensors: [tensor]))
            writePeak = max(writePeak, try residentMemoryBytes())
        }
        try writer.finish()
        let reader = try ShardReader(url: url)
        XCTAssertGreaterThan(reader.fileSize, recordCount * recordBytes)

        let readBaseline = try residentMemoryBytes()
        var readPeak = readBaseline
        var index = 0
        try reader.forEachRecord { record in
            XCTAssertEqual(record.key, "r\(index)")
            XCTAssertEqual(record.tensors.first?.bytes, payload(index))
            readPeak = max(readPeak, try residentMemoryBytes())
            index += 1
        }
        XCTAssertEqual(index, recordCount)
        print("200 MB shard: RSS growth while writing \((writePeak - writeBaseline) >> 20) MiB, while reading \((readPeak - readBaseline) >> 20) MiB")
        XCTAssertLessThan(writePeak - writeBaseline, allowedGrowth, "writer memory grows with the shard")
        XCTAssertLessThan(readPeak - readBaseline, allowedGrowth, "streaming read memory grows with the shard")
    }
}
