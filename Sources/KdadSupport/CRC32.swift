import Foundation

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zip, gzip and PNG use). Table-driven,
/// eight bytes per step ("slicing-by-8"), so checking tens of megabytes of weights stays cheap even in
/// a debug build. Check value: CRC32("123456789") = 0xCBF43926.
public enum CRC32 {
    /// Eight 256-entry tables, flattened: table k at k * 256. Table 0 is the classic byte table;
    /// table k advances a byte's contribution by k further zero bytes.
    static let table: [UInt32] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            tables[0][n] = c
        }
        for n in 0..<256 {
            for k in 1..<8 { tables[k][n] = (tables[k - 1][n] >> 8) ^ tables[0][Int(tables[k - 1][n] & 0xFF)] }
        }
        return tables.flatMap { $0 }
    }()

    /// The CRC of `bytes`; pass an earlier result as `continuing` to checksum data in pieces.
    public static func checksum(_ bytes: some ContiguousBytes, continuing previous: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum(UnsafeRawBufferPointer($0), continuing: previous) }
    }

    public static func checksum(_ raw: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            var crc = previous ^ 0xFFFF_FFFF
            var index = 0
            let count = raw.count
            while index + 8 <= count {
                let low = crc ^ UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt32.self))
                let high = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt32(raw[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
            return crc ^ 0xFFFF_FFFF
        }
    }
}
