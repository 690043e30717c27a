import Foundation

#if _endian(big)
#error("KdadShards writes little-endian data by copying host memory; big-endian hosts are not supported")
#endif

/// Constants of the on-disk layout; Docs/shard-format.md is the authoritative description.
public enum ShardFormat {
    /// First 8 bytes of every shard file.
    public static let headerMagic: [UInt8] = Array("KDADSHRD".utf8)
    /// Last 8 bytes of every finished shard file.
    public static let footerMagic: [UInt8] = Array("KDADFOOT".utf8)
    public static let version: UInt32 = 1
    /// magic(8) version(u32) flags(u32)
    public static let headerSize = 16
    /// indexOffset(u64) indexLength(u64) recordCount(u64) indexCRC(u32) footerCRC(u32) magic(8)
    public static let footerSize = 40
    /// Bytes of the footer covered by its own CRC (everything before the footer CRC field).
    static let footerChecksummedSize = 28
    /// A tensor has at most this many dimensions (the rank is one byte; real feature maps need 4).
    public static let maxRank = 32
}

/// Appends little-endian fields to a growable byte buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func appendUInt8(_ value: UInt8) { bytes.append(value) }
    mutating func appendUInt16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func appendUInt32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func appendUInt64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func append<Bytes: Sequence>(contentsOf other: Bytes) where Bytes.Element == UInt8 { bytes.append(contentsOf: other) }
    mutating func append(_ data: Data) { data.withUnsafeBytes { bytes.append(contentsOf: $0) } }

    /// A u32 length followed by the UTF-8 bytes of `string`.
    mutating func appendLengthPrefixed(_ string: String) {
        let utf8 = Array(string.utf8)
        appendUInt32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

/// Why a bounds-checked read failed; callers turn it into the right `ShardError` with context.
struct ByteReaderError: Error { let reason: String }

/// Reads little-endian fields from a byte buffer, checking every length against what is left.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var position = 0

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var remaining: Int { buffer.count - position }

    private mutating func take(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw ByteReaderError(reason: "\(what) needs \(count) bytes at offset \(position) but only \(remaining) remain")
        }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[position..<(position + count)])
        position += count
        return slice
    }

    mutating func readUInt8(_ what: String) throws -> UInt8 { try take(1, what).load(as: UInt8.self) }
    mutating func readUInt16(_ what: String) throws -> UInt16 { UInt16(littleEndian: try take(2, what).loadUnaligned(as: UInt16.self)) }
    mutating func readUInt32(_ what: String) throws -> UInt32 { UInt32(littleEndian: try take(4, what).loadUnaligned(as: UInt32.self)) }
    mutating func readUInt64(_ what: String) throws -> UInt64 { UInt64(littleEndian: try take(8, what).loadUnaligned(as: UInt64.self)) }

    /// A u64 that must fit in a non-negative `Int`.
    mutating func readCount(_ what: String) throws -> Int {
        let value = try readUInt64(what)
        guard value <= UInt64(Int.max) else { throw ByteReaderError(reason: "\(what) \(value) is out of range") }
        return Int(value)
    }

    mutating func readBytes(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer { try take(count, what) }

    /// A u32 length followed by that many bytes of valid UTF-8.
    mutating func readLengthPrefixedString(_ what: String) throws -> String {
        let length = Int(try readUInt32("\(what) length"))
        let raw = try take(length, what)
        guard let string = String(validating: raw, as: UTF8.self) else {
            throw ByteReaderError(reason: "\(what) is not valid UTF-8")
        }
        return string
    }
}
