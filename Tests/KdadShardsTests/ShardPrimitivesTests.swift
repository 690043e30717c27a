import Foundation
import XCTest
@testable import KdadShards

final class ShardPrimitivesTests: XCTestCase {
    /// Bit-at-a-time CRC-32C straight from the definition, to check the slicing-by-8 tables.
    private func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    func testCRC32CMatchesTheStandardCheckValueAndTheBitwiseDefinition() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // RFC 3720 B.4 test vector: 32 bytes of zeros.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        let bytes = ShardSyntheticData.randomBytes(count: 300, seed: 9)
        for length in 0...bytes.count {
            let prefix = Array(bytes[0..<length])
            XCTAssertEqual(CRC32C.checksum(prefix), referenceCRC32C(prefix), "length \(length)")
        }
        // Continuing from a previous value equals checksumming the concatenation, at any split.
        for split in [0, 1, 7, 8, 9, 150, 300] {
            let head = CRC32C.checksum(Array(bytes[0..<split]))
            XCTAssertEqual(CRC32C.checksum(Array(bytes[split...]), continuing: head), CRC32C.checksum(bytes))
        }
    }

    private func halfBits(_ value: Float) throws -> UInt16 {
        let tensor = try ShardTensor(name: "h", float16From: [value], shape: [1])
        return UInt16(tensor.bytes[0]) | UInt16(tensor.bytes[1]) << 8
    }

    func testFloat16ConversionRoundsToNearestEvenAndStoresLittleEndianBits() throws {
        XCTAssertEqual(try halfBits(1.0), 0x3C00)
        XCTAssertEqual(try halfBits(-2.0), 0xC000)
        XCTAssertEqual(try halfBits(65504), 0x7BFF)                        // largest finite half
        XCTAssertEqual(try halfBits(0.000060975552), 0x03FF)               // largest subnormal
        XCTAssertEqual(try halfBits(Float(bitPattern: 0x3380_0000)), 0x0001)  // 2^-24, smallest subnormal
        XCTAssertEqual(try halfBits(-0.0), 0x8000)
        // Ties go to the even neighbour: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
        XCTAssertEqual(try halfBits(1 + 0x1p-11), 0x3C00)
        XCTAssertEqual(try halfBits(1 + 3 * 0x1p-11), 0x3C02)
        XCTAssertEqual(try halfBits(1 + 0x1p-11 + 0x1p-20), 0x3C01)         // just above the tie rounds up
        XCTAssertEqual(try halfBits(2049), 0x6800)                          // 2049 -> 2048 (even)
        XCTAssertEqual(try halfBits(2051), 0x6802)                          // 2051 -> 2052 (even)
        // Overflow: 65519.996 rounds down to 65504, the tie 65520 and beyond round to infinity.
        XCTAssertEqual(try halfBits(65519), 0x7BFF)
        XCTAssertEqual(try halfBits(65520), 0x7C00)
        XCTAssertEqual(try halfBits(-1e6), 0xFC00)
        // Underflow: half of the smallest subnormal ties to zero; a bit more rounds up to it.
        XCTAssertEqual(try halfBits(0x1p-25), 0x0000)
        XCTAssertEqual(try halfBits(0x1p-25 + 0x1p-35), 0x0001)
        let nan = try halfBits(.nan)
        XCTAssertEqual(nan & 0x7C00, 0x7C00)
        XCTAssertNotEqual(nan & 0x03FF, 0)

        let widened = try ShardTensor(name: "w", float16From: [0.1, -3.3, 1e-7], shape: [3]).floatValues()
        XCTAssertEqual(widened, [0.0999755859375, -3.30078125, 1.1920928955078125e-07])
    }
}
