import CZstd
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens a finished shard and reads its records by key or in file order.
///
/// Opening reads only the header, footer and index (and checks their magic, version and
/// checksums); record bytes are read with positioned reads (`pread`) when asked for, so memory is
/// one record at a time whatever the file size. Safe to share between threads: it holds no
/// mutable state, and every read brings its own buffers and zstd context.
public final class ShardReader: Sendable {
    public let url: URL
    public var path: String { url.path }
    /// Index entries in file order (the order the records were appended).
    public let entries: [ShardIndexEntry]
    /// Record keys in file order.
    public let keys: [String]
    public var count: Int { entries.count }
    /// Size of the file in bytes.
    public let fileSize: Int

    private let descriptor: Int32
    private let positionByKey: [String: Int]

    public init(url: URL) throws {
        self.url = url.standardizedFileURL
        let path = self.url.path
        let descriptor = try PosixFile.openForReading(path)
        do {
            let fileSize = try PosixFile.size(of: descriptor, path: path)
            let entries = try ShardReader.readIndex(descriptor: descriptor, fileSize: fileSize, path: path)
            var positionByKey: [String: Int] = [:]
            positionByKey.reserveCapacity(entries.count)
            for (position, entry) in entries.enumerated() {
                guard positionByKey.updateValue(position, forKey: entry.key) == nil else {
                    throw ShardError.indexCorrupt(path: path, reason: "key \"\(entry.key)\" appears twice")
                }
            }
            self.descriptor = descriptor
            self.fileSize = fileSize
            self.entries = entries
            self.keys = entries.map(\.key)
            self.positionByKey = positionByKey
        } catch {
            close(descriptor)
            throw error
        }
    }

    deinit { close(descriptor) }

    public func contains(key: String) -> Bool { positionByKey[key] != nil }

    /// The index entry for `key`, or `ShardError.missingKey`.
    public func entry(forKey key: String) throws -> ShardIndexEntry {
        guard let position = positionByKey[key] else { throw ShardError.missingKey(path: path, key: key) }
        return entries[position]
    }

    /// Reads, verifies and decodes the record stored under `key`.
    public func record(forKey key: String) throws -> ShardRecord {
        let entry = try entry(forKey: key)
        let decoder = try FrameDecoder(path: path)
        return try decoder.readRecord(entry, descriptor: descriptor)
    }

    /// An iterator over all records in file order, reading one record per `next()`.
    public func makeRecordIterator() throws -> ShardRecordIterator {
        ShardRecordIterator(reader: self, decoder: try FrameDecoder(path: path))
    }

    /// Calls `body` with each record in file order, one record in memory at a time.
    public func forEachRecord(_ body: (ShardRecord) throws -> Void) throws {
        var iterator = try makeRecordIterator()
        while let record = try iterator.next() { try body(record) }
    }

    /// Reads every record and returns the errors of those that fail (empty: the shard is intact).
    public func verifyAllRecords() throws -> [ShardError] {
        let decoder = try FrameDecoder(path: path)
        var failures: [ShardError] = []
        for entry in entries {
            do { _ = try decoder.readRecord(entry, descriptor: descriptor) } catch let error as ShardError {
                failures.append(error)
            }
        }
        return failures
    }

    fileprivate func readRecord(at position: Int, with decoder: FrameDecoder) throws -> ShardRecord {
        try decoder.readRecord(entries[position], descriptor: descriptor)
    }

    // MARK: Header, footer, index

    private static func readIndex(descriptor: Int32, fileSize: Int, path: String) throws -> [ShardIndexEntry] {
        // The header first: a file that is not a shard at all should say so, not "truncated".
        var header = [UInt8](repeating: 0, count: ShardFormat.headerSize)
        let headerComplete = try header.withUnsafeMutableBytes {
            try PosixFile.readExactly(descriptor, into: $0, at: 0, path: path)
        }
        let magicAvailable = min(fileSize, ShardFormat.headerMagic.count)
        guard Array(header[0..<magicAvailable]) == Array(ShardFormat.headerMagic[0..<magicAvailable]) else {
            throw ShardError.badMagic(path: path, found: Array(header[0..<magicAvailable]))
        }
        guard headerComplete else {
            throw ShardError.truncated(path: path, reason: "the file is \(fileSize) bytes, shorter than the \(ShardFormat.headerSize)-byte header")
        }
        let (version, flags) = header.withUnsafeBytes { raw -> (UInt32, UInt32) in
            var reader = ByteReader(raw)
            _ = try? reader.readBytes(8, "magic")
            return ((try? reader.readUInt32("version")) ?? 0, (try? reader.readUInt32("flags")) ?? 0)
        }
        guard version == ShardFormat.version, flags == 0 else {
            throw ShardError.unsupportedVersion(path: path, version: version, flags: flags)
        }

        let minimumSize = ShardFormat.headerSize + ShardFormat.footerSize
        guard fileSize >= minimumSize else {
            throw ShardError.truncated(path: path, reason: "the file is \(fileSize) bytes; a finished shard has at least \(minimumSize)")
        }
        var footer = [UInt8](repeating: 0, count: ShardFormat.footerSize)
        let footerStart = fileSize - ShardFormat.footerSize
        guard try footer.withUnsafeMutableBytes({ try PosixFile.readExactly(descriptor, into: $0, at: footerStart, path: path) }) else {
            throw ShardError.truncated(path: path, reason: "the file shrank while being opened")
        }
        guard Array(footer[(ShardFormat.footerSize - 8)...]) == ShardFormat.footerMagic else {
            throw ShardError.truncated(
                path: path,
                reason: "no footer magic at the end of the file (the write was interrupted, the file was cut short, or its last bytes are damaged)")
        }
        let storedFooterChecksum = footer.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 28, as: UInt32.self)) }
        let actualFooterChecksum = CRC32C.checksum(footer[0..<ShardFormat.footerChecksummedSize].withUnsafeBytes { Array($0) })
        guard storedFooterChecksum == actualFooterChecksum else {
            throw ShardError.indexCorrupt(path: path, reason: "footer checksum mismatch (stored 0x\(String(storedFooterChecksum, radix: 16)), computed 0x\(String(actualFooterChecksum, radix: 16)))")
        }
        let (indexOffset64, indexLength64, recordCount64, indexChecksum) = footer.withUnsafeBytes { raw in
            (UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
             UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
             UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt32.self)))
        }
        // The index must sit exactly between the last record and the footer.
        guard indexOffset64 >= UInt64(ShardFormat.headerSize), indexLength64 <= UInt64(footerStart),
              indexOffset64 == UInt64(footerStart) - indexLength64 else {
            throw ShardError.indexCorrupt(path: path, reason: "index at offset \(indexOffset64) length \(indexLength64) does not end at the footer (offset \(footerStart))")
        }
        let indexOffset = Int(indexOffset64), indexLength = Int(indexLength64)
        var index = [UInt8](repeating: 0, count: indexLength)
        guard try index.withUnsafeMutableBytes({ try PosixFile.readExactly(descriptor, into: $0, at: indexOffset, path: path) }) else {
            throw ShardError.truncated(path: path, reason: "the file shrank while being opened")
        }
        let actualIndexChecksum = CRC32C.checksum(index)
        guard actualIndexChecksum == indexChecksum else {
            throw ShardError.indexCorrupt(path: path, reason: "index checksum mismatch (stored 0x\(String(indexChecksum, radix: 16)), computed 0x\(String(actualIndexChecksum, radix: 16)))")
        }

        do {
            return try index.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                var entries: [ShardIndexEntry] = []
                // Each entry takes at least 32 bytes, which bounds the reservation by the index size.
                guard recordCount64 <= UInt64(indexLength / 32) else {
                    throw ByteReaderError(reason: "\(recordCount64) records cannot fit in a \(indexLength)-byte index")
                }
                entries.reserveCapacity(Int(recordCount64))
                var expectedOffset = ShardFormat.headerSize
                for position in 0..<Int(recordCount64) {
                    let key = try reader.readLengthPrefixedString("entry \(position) key")
                    let offset = try reader.readCount("entry \(position) offset")
                    let compressedLength = try reader.readCount("entry \(position) compressed length")
                    let uncompressedLength = try reader.readCount("entry \(position) uncompressed length")
                    let checksum = try reader.readUInt32("entry \(position) checksum")
                    // Frames are contiguous from the header to the index, in index order.
                    guard offset == expectedOffset, compressedLength <= indexOffset - offset else {
                        throw ByteReaderError(reason: "record \"\(key)\" at \(offset)+\(compressedLength) is not where the previous record ended (\(expectedOffset)) or overruns the index")
                    }
                    expectedOffset = offset + compressedLength
                    entries.append(ShardIndexEntry(key: key, offset: offset, compressedLength: compressedLength,
                                                   uncompressedLength: uncompressedLength, checksum: checksum))
                }
                guard reader.remaining == 0 else {
                    throw ByteReaderError(reason: "\(reader.remaining) unexpected bytes after the last index entry")
                }
                guard expectedOffset == indexOffset else {
                    throw ByteReaderError(reason: "records end at \(expectedOffset) but the index starts at \(indexOffset)")
                }
                return entries
            }
        } catch let error as ByteReaderError {
            throw ShardError.indexCorrupt(path: path, reason: error.reason)
        }
    }
}

/// Reads one record at a time in file order. `next()` throws for a record that fails to read;
/// the iterator has already moved past it, so calling `next()` again continues with the next record.
public struct ShardRecordIterator {
    private let reader: ShardReader
    private let decoder: FrameDecoder
    private var position = 0

    fileprivate init(reader: ShardReader, decoder: FrameDecoder) {
        self.reader = reader
        self.decoder = decoder
    }

    /// The next record, or nil after the last one.
    public mutating func next() throws -> ShardRecord? {
        guard position < reader.count else { return nil }
        defer { position += 1 }
        return try reader.readRecord(at: position, with: decoder)
    }
}

/// A zstd decompression context plus the code that turns one index entry into a verified record.
/// A class so the context is freed exactly once; not shared between threads.
final class FrameDecoder {
    private let path: String
    private let context: OpaquePointer

    init(path: String) throws {
        self.path = path
        guard let context = ZSTD_createDCtx() else {
            throw ShardError.io(path: path, operation: "ZSTD_createDCtx", reason: "out of memory")
        }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    func readRecord(_ entry: ShardIndexEntry, descriptor: Int32) throws -> ShardRecord {
        func corrupt(_ reason: String) -> ShardError { .corruptRecord(path: path, key: entry.key, reason: reason) }

        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: entry.compressedLength, alignment: 16)
        defer { frame.deallocate() }
        guard try PosixFile.readExactly(descriptor, into: frame, at: entry.offset, path: path) else {
            throw corrupt("the file ends inside the record")
        }
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(frame))
        guard checksum == entry.checksum else {
            throw corrupt("CRC-32C of the stored frame is 0x\(String(checksum, radix: 16)), the index says 0x\(String(entry.checksum, radix: 16))")
        }
        let contentSize = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        guard contentSize == UInt64(entry.uncompressedLength) else {
            throw corrupt("zstd frame content size \(Int64(bitPattern: contentSize)) differs from the index's \(entry.uncompressedLength)")
        }
        let body = UnsafeMutableRawBufferPointer.allocate(byteCount: max(entry.uncompressedLength, 1), alignment: 16)
        defer { body.deallocate() }
        let produced = ZSTD_decompressDCtx(context, body.baseAddress, entry.uncompressedLength, frame.baseAddress, frame.count)
        guard ZSTD_isError(produced) == 0 else {
            throw corrupt("zstd: \(String(cString: ZSTD_getErrorName(produced)))")
        }
        guard produced == entry.uncompressedLength else {
            throw corrupt("decompressed to \(produced) bytes, the index says \(entry.uncompressedLength)")
        }
        let record: ShardRecord
        do {
            record = try RecordCodec.decode(UnsafeRawBufferPointer(rebasing: body[0..<produced]))
        } catch let error as ByteReaderError {
            throw corrupt(error.reason)
        }
        guard record.key == entry.key else {
            throw corrupt("the record body holds key \"\(record.key)\"")
        }
        return record
    }
}
