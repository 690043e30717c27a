import Foundation

/// A read-only view of a zip archive held in memory, enough for PyTorch checkpoints: the central
/// directory (with zip64 sizes and offsets) and stored (uncompressed) entries. PyTorch writes every entry
/// stored; a deflated entry is reported as unsupported rather than silently mis-read.
struct ZipArchive {
    struct Entry {
        var name: String
        var method: UInt16
        var compressedSize: Int
        var uncompressedSize: Int
        var crc32: UInt32
        var localHeaderOffset: Int
    }

    let bytes: Data
    private(set) var entries: [Entry] = []
    private var indexByName: [String: Int] = [:]

    init(_ bytes: Data) throws(WeightFileError) {
        self.bytes = bytes.startIndex == 0 ? bytes : Data(bytes)
        try readCentralDirectory()
    }

    func entry(named name: String) -> Entry? { indexByName[name].map { entries[$0] } }

    /// The bytes of a stored entry, checked against its CRC-32.
    func contents(of entry: Entry) throws(WeightFileError) -> Data {
        guard entry.method == 0 else {
            let method = entry.method == 8 ? "deflate" : "method \(entry.method)"
            throw WeightFileError(kind: .unsupported, key: entry.name,
                                  reason: "zip entry is compressed (\(method)); only stored entries are supported (PyTorch writes stored entries)")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw WeightFileError(kind: .malformed, key: entry.name, reason: "stored zip entry has different compressed and uncompressed sizes")
        }
        let header = entry.localHeaderOffset
        guard header >= 0, header <= bytes.count - 30, readUInt32(at: header) == 0x0403_4B50 else {
            throw WeightFileError(kind: .malformed, key: entry.name, reason: "local header at \(header) is missing")
        }
        let nameLength = Int(readUInt16(at: header + 26))
        let extraLength = Int(readUInt16(at: header + 28))
        let start = header + 30 + nameLength + extraLength
        guard start <= bytes.count, entry.compressedSize <= bytes.count - start else {
            throw WeightFileError(kind: .truncated, key: entry.name,
                                  reason: "entry data [\(start), \(start + entry.compressedSize)) runs past the \(bytes.count)-byte archive")
        }
        let data = bytes[start..<(start + entry.compressedSize)]
        let actual = CRC32.checksum(data)
        guard actual == entry.crc32 else {
            throw WeightFileError(kind: .malformed, key: entry.name,
                                  reason: "CRC-32 mismatch (stored \(String(entry.crc32, radix: 16)), computed \(String(actual, radix: 16)))")
        }
        return Data(data)
    }

    private mutating func readCentralDirectory() throws(WeightFileError) {
        // The end-of-central-directory record is in the last 22 + 65535 bytes.
        guard bytes.count >= 22 else { throw WeightFileError(kind: .truncated, reason: "\(bytes.count) bytes is too short for a zip archive") }
        var eocd = -1
        var candidate = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while candidate >= lowest {
            if readUInt32(at: candidate) == 0x0605_4B50 { eocd = candidate; break }
            candidate -= 1
        }
        guard eocd >= 0 else {
            throw WeightFileError(kind: .truncated, reason: "zip end-of-central-directory record not found (file truncated?)")
        }
        var entryCount = Int(readUInt16(at: eocd + 10))
        var directorySize = Int(readUInt32(at: eocd + 12))
        var directoryOffset = Int(readUInt32(at: eocd + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // Zip64: a locator just before the EOCD points at the zip64 EOCD record.
            let locator = eocd - 20
            guard locator >= 0, readUInt32(at: locator) == 0x0706_4B50 else {
                throw WeightFileError(kind: .malformed, reason: "zip64 end-of-central-directory locator missing")
            }
            let record = Int(clamping: readUInt64(at: locator + 8))
            guard record >= 0, record <= bytes.count - 56, readUInt32(at: record) == 0x0606_4B50 else {
                throw WeightFileError(kind: .malformed, reason: "zip64 end-of-central-directory record missing")
            }
            entryCount = Int(clamping: readUInt64(at: record + 32))
            directorySize = Int(clamping: readUInt64(at: record + 40))
            directoryOffset = Int(clamping: readUInt64(at: record + 48))
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= bytes.count - directorySize else {
            throw WeightFileError(kind: .truncated, reason: "zip central directory [\(directoryOffset), +\(directorySize)) is outside the file")
        }
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for _ in 0..<entryCount {
            guard cursor <= directoryEnd - 46, readUInt32(at: cursor) == 0x0201_4B50 else {
                throw WeightFileError(kind: .malformed, reason: "zip central directory entry at \(cursor) is malformed")
            }
            let method = readUInt16(at: cursor + 10)
            let crc = readUInt32(at: cursor + 16)
            var compressed = UInt64(readUInt32(at: cursor + 20))
            var uncompressed = UInt64(readUInt32(at: cursor + 24))
            let nameLength = Int(readUInt16(at: cursor + 28))
            let extraLength = Int(readUInt16(at: cursor + 30))
            let commentLength = Int(readUInt16(at: cursor + 32))
            var localOffset = UInt64(readUInt32(at: cursor + 42))
            let nameStart = cursor + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= directoryEnd else {
                throw WeightFileError(kind: .malformed, reason: "zip central directory entry at \(cursor) overruns the directory")
            }
            let name = String(decoding: bytes[nameStart..<extraStart], as: UTF8.self)
            // Zip64 extended information (tag 1) holds, in order, only the fields that are saturated above.
            var extra = extraStart
            while extra + 4 <= extraStart + extraLength {
                let tag = readUInt16(at: extra)
                let size = Int(readUInt16(at: extra + 2))
                if tag == 1 {
                    var field = extra + 4
                    let fieldEnd = min(field + size, extraStart + extraLength)
                    func take(_ value: inout UInt64) {
                        if value == 0xFFFF_FFFF, field + 8 <= fieldEnd { value = readUInt64(at: field); field += 8 }
                    }
                    take(&uncompressed)
                    take(&compressed)
                    take(&localOffset)
                }
                extra += 4 + size
            }
            guard compressed <= UInt64(bytes.count), uncompressed <= UInt64(Int.max), localOffset <= UInt64(bytes.count) else {
                throw WeightFileError(kind: .malformed, key: name, reason: "zip entry sizes or offset exceed the archive")
            }
            indexByName[name] = entries.count
            entries.append(Entry(name: name, method: method, compressedSize: Int(compressed), uncompressedSize: Int(uncompressed),
                                 crc32: crc, localHeaderOffset: Int(localOffset)))
            cursor = next
        }
    }

    private func readUInt16(at offset: Int) -> UInt16 {
        bytes.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    }

    private func readUInt32(at offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private func readUInt64(at offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }
}

/// CRC-32 (IEEE 802.3, as zip uses), table-driven, eight bytes per step ("slicing-by-8") so that checking
/// tens of megabytes of weights stays cheap even in a debug build.
enum CRC32 {
    /// Eight 256-entry tables, flattened: table k at k * 256.
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

    static func checksum(_ data: Data) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            data.withUnsafeBytes { raw -> UInt32 in
                var crc: UInt32 = 0xFFFF_FFFF
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
}
