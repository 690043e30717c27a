import Foundation

/// Why a zip archive or one of its entries could not be read. `entry` names the entry when the
/// problem is one entry's; the archive's path is the caller's to add (it may hold only bytes).
public struct ZipError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable {
        /// The archive ends before a structure it declares.
        case truncated
        /// A directory record, header or the compressed data is malformed.
        case malformed
        /// The entry's bytes do not match the CRC-32 the directory records.
        case checksumMismatch
        /// A valid construct this reader deliberately does not handle (encryption, a compression method).
        case unsupported
    }

    public var kind: Kind
    public var entry: String?
    public var reason: String

    public init(kind: Kind, entry: String? = nil, reason: String) {
        self.kind = kind
        self.entry = entry
        self.reason = reason
    }

    public var description: String { (entry.map { "\($0): " } ?? "") + reason }
}

/// One file of a zip archive, as its central directory describes it.
public struct ZipEntry: Sendable, Equatable, Hashable {
    public let name: String
    /// 0 stored, 8 deflate; anything else is refused when read.
    public let method: Int
    public let compressedSize: Int
    public let uncompressedSize: Int
    public let crc32: UInt32
    public let localHeaderOffset: Int
    /// General-purpose flag bit 0.
    public let isEncrypted: Bool
    /// The MS-DOS modification stamp as stored: date in the high 16 bits, time in the low 16.
    public let dosModified: UInt32

    /// A directory, by the zip convention of a trailing slash.
    public var isDirectory: Bool { name.hasSuffix("/") }
}

/// A read-only zip archive over bytes in memory (usually a mapped file): the central directory
/// (zip64 sizes, offsets and counts included), and each entry's bytes on demand, stored or deflated,
/// always checked against the entry's CRC-32. Encrypted entries and other methods are refused, never
/// guessed at. Entry names are returned as written: whether a name is safe to use as a path is the
/// caller's decision.
public struct ZipArchive: Sendable {
    public let bytes: Data
    /// In central-directory order.
    public private(set) var entries: [ZipEntry] = []
    private var indexByName: [String: Int] = [:]

    public init(_ bytes: Data) throws(ZipError) {
        self.bytes = bytes.startIndex == 0 ? bytes : Data(bytes)
        try readCentralDirectory()
    }

    public func entry(named name: String) -> ZipEntry? { indexByName[name].map { entries[$0] } }

    /// The uncompressed, CRC-checked bytes of `entry`.
    public func contents(of entry: ZipEntry) throws(ZipError) -> Data {
        try Self.contents(of: entry, in: bytes)
    }

    /// The bytes of `entry` read straight from the archive bytes, without parsing the central directory
    /// again (for callers that listed the entries once and read them later, one at a time).
    public static func contents(of entry: ZipEntry, in archive: Data) throws(ZipError) -> Data {
        let bytes = archive.startIndex == 0 ? archive : Data(archive)
        func failure(_ kind: ZipError.Kind, _ reason: String) -> ZipError { ZipError(kind: kind, entry: entry.name, reason: reason) }
        guard !entry.isEncrypted else { throw failure(.unsupported, "encrypted zip entries are not supported") }
        guard entry.method == 0 || entry.method == 8 else {
            throw failure(.unsupported, "zip compression method \(entry.method) is not supported (only stored and deflate)")
        }
        if entry.method == 0, entry.compressedSize != entry.uncompressedSize {
            throw failure(.malformed, "stored zip entry has different compressed and uncompressed sizes")
        }
        let header = entry.localHeaderOffset
        guard header >= 0, header <= bytes.count - 30, readUInt32(bytes, at: header) == 0x0403_4B50 else {
            throw failure(.malformed, "zip local header at \(header) is missing")
        }
        let nameLength = Int(readUInt16(bytes, at: header + 26))
        let extraLength = Int(readUInt16(bytes, at: header + 28))
        let start = header + 30 + nameLength + extraLength
        guard start <= bytes.count, entry.compressedSize <= bytes.count - start else {
            throw failure(.truncated, "entry data [\(start), \(start + entry.compressedSize)) runs past the \(bytes.count)-byte archive")
        }
        let raw = bytes[start..<(start + entry.compressedSize)]
        let data: Data
        if entry.method == 8 {
            do {
                data = Data(try Inflate.decompress([UInt8](raw), expectedSize: entry.uncompressedSize, limit: entry.uncompressedSize))
            } catch {
                throw failure(.malformed, error.description)
            }
            guard data.count == entry.uncompressedSize else {
                throw failure(.malformed, "deflated entry inflates to \(data.count) bytes, its directory says \(entry.uncompressedSize)")
            }
        } else {
            data = Data(raw)
        }
        let actual = CRC32.checksum(data)
        guard actual == entry.crc32 else {
            throw failure(.checksumMismatch,
                          "CRC-32 mismatch (stored \(String(entry.crc32, radix: 16)), computed \(String(actual, radix: 16)))")
        }
        return data
    }

    private mutating func readCentralDirectory() throws(ZipError) {
        // The end-of-central-directory record is in the last 22 + 65535 bytes (it ends with a comment
        // of up to 65535 bytes); search backwards for its signature.
        guard bytes.count >= 22 else { throw ZipError(kind: .truncated, reason: "\(bytes.count) bytes is too short for a zip archive") }
        var eocd = -1
        var candidate = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 65535)
        while candidate >= lowest {
            if Self.readUInt32(bytes, at: candidate) == 0x0605_4B50 { eocd = candidate; break }
            candidate -= 1
        }
        guard eocd >= 0 else {
            throw ZipError(kind: .truncated, reason: "zip end-of-central-directory record not found (file truncated?)")
        }
        var entryCount = Int(Self.readUInt16(bytes, at: eocd + 10))
        var directorySize = Int(Self.readUInt32(bytes, at: eocd + 12))
        var directoryOffset = Int(Self.readUInt32(bytes, at: eocd + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // Zip64: a locator just before the EOCD points at the zip64 EOCD record.
            let locator = eocd - 20
            guard locator >= 0, Self.readUInt32(bytes, at: locator) == 0x0706_4B50 else {
                throw ZipError(kind: .malformed, reason: "zip64 end-of-central-directory locator missing")
            }
            let record = Int(clamping: Self.readUInt64(bytes, at: locator + 8))
            guard record >= 0, record <= bytes.count - 56, Self.readUInt32(bytes, at: record) == 0x0606_4B50 else {
                throw ZipError(kind: .malformed, reason: "zip64 end-of-central-directory record missing")
            }
            entryCount = Int(clamping: Self.readUInt64(bytes, at: record + 32))
            directorySize = Int(clamping: Self.readUInt64(bytes, at: record + 40))
            directoryOffset = Int(clamping: Self.readUInt64(bytes, at: record + 48))
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= bytes.count - directorySize else {
            throw ZipError(kind: .truncated, reason: "zip central directory [\(directoryOffset), +\(directorySize)) is outside the file")
        }
        // Every directory record is at least 46 bytes: a count beyond that is a lie, not a reason to loop.
        guard entryCount <= directorySize / 46 else {
            throw ZipError(kind: .malformed, reason: "zip directory claims \(entryCount) entries in \(directorySize) bytes")
        }
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        entries.reserveCapacity(entryCount)
        for _ in 0..<entryCount {
            guard cursor <= directoryEnd - 46, Self.readUInt32(bytes, at: cursor) == 0x0201_4B50 else {
                throw ZipError(kind: .malformed, reason: "zip central directory entry at \(cursor) is malformed")
            }
            let flags = Self.readUInt16(bytes, at: cursor + 8)
            let method = Self.readUInt16(bytes, at: cursor + 10)
            let dosTime = UInt32(Self.readUInt16(bytes, at: cursor + 12))
            let dosDate = UInt32(Self.readUInt16(bytes, at: cursor + 14))
            let crc = Self.readUInt32(bytes, at: cursor + 16)
            var compressed = UInt64(Self.readUInt32(bytes, at: cursor + 20))
            var uncompressed = UInt64(Self.readUInt32(bytes, at: cursor + 24))
            let nameLength = Int(Self.readUInt16(bytes, at: cursor + 28))
            let extraLength = Int(Self.readUInt16(bytes, at: cursor + 30))
            let commentLength = Int(Self.readUInt16(bytes, at: cursor + 32))
            var localOffset = UInt64(Self.readUInt32(bytes, at: cursor + 42))
            let nameStart = cursor + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= directoryEnd else {
                throw ZipError(kind: .malformed, reason: "zip central directory entry at \(cursor) overruns the directory")
            }
            let name = String(decoding: bytes[nameStart..<extraStart], as: UTF8.self)
            // Zip64 extended information (tag 1) holds, in order, only the fields saturated above.
            var extra = extraStart
            while extra + 4 <= extraStart + extraLength {
                let tag = Self.readUInt16(bytes, at: extra)
                let size = Int(Self.readUInt16(bytes, at: extra + 2))
                if tag == 1 {
                    var field = extra + 4
                    let fieldEnd = min(field + size, extraStart + extraLength)
                    func take(_ value: inout UInt64) {
                        if value == 0xFFFF_FFFF, field + 8 <= fieldEnd { value = Self.readUInt64(bytes, at: field); field += 8 }
                    }
                    take(&uncompressed)
                    take(&compressed)
                    take(&localOffset)
                }
                extra += 4 + size
            }
            guard compressed <= UInt64(bytes.count), uncompressed <= UInt64(Int.max), localOffset <= UInt64(bytes.count) else {
                throw ZipError(kind: .malformed, entry: name, reason: "zip entry sizes or offset exceed the archive")
            }
            indexByName[name] = entries.count
            entries.append(ZipEntry(name: name, method: Int(method), compressedSize: Int(compressed), uncompressedSize: Int(uncompressed),
                                    crc32: crc, localHeaderOffset: Int(localOffset), isEncrypted: flags & 1 != 0,
                                    dosModified: dosDate << 16 | dosTime))
            cursor = next
        }
    }

    private static func readUInt16(_ bytes: Data, at offset: Int) -> UInt16 {
        bytes.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    }

    private static func readUInt32(_ bytes: Data, at offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private static func readUInt64(_ bytes: Data, at offset: Int) -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }
}
