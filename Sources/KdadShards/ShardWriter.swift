import CZstd
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where one record's frame sits in the file; kept for the index (key + four numbers per record,
/// so the writer's memory grows with the record count, never with the shard's byte size).
public struct ShardIndexEntry: Sendable, Equatable {
    public let key: String
    /// Absolute file offset of the record's zstd frame.
    public let offset: Int
    /// Bytes of the zstd frame on disk.
    public let compressedLength: Int
    /// Bytes of the decompressed record body.
    public let uncompressedLength: Int
    /// CRC-32C of the frame's bytes as stored.
    public let checksum: UInt32
}

/// Streams records into a new shard.
///
/// Records go to `.<name>.tmp-<pid>` beside the final path as they are appended, each compressed
/// on its own as one zstd frame. `finish()` appends the index and footer, fsyncs the file, renames
/// it to the final name and fsyncs the directory: a shard at its final name is always complete.
/// A process killed mid-write leaves only the temporary file (which never reads as a valid shard);
/// a writer released without `finish()` deletes its temporary file.
///
/// A class because it owns a file descriptor and a zstd context; use it from one thread at a time.
public final class ShardWriter {
    public let url: URL
    public let temporaryURL: URL
    public let compressionLevel: Int

    private var descriptor: Int32
    private var compressionContext: OpaquePointer?
    private var entries: [ShardIndexEntry] = []
    private var writtenKeys = Set<String>()
    private var nextOffset = ShardFormat.headerSize
    private var isOpen = true
    /// Reused between records so steady-state appends do not allocate.
    private var bodyWriter = ByteWriter()
    private var frameBuffer: [UInt8] = []

    public var count: Int { entries.count }
    /// Bytes written so far (header plus record frames).
    public var bytesWritten: Int { nextOffset }

    public init(url: URL, compressionLevel: Int = 3) throws {
        let minimum = Int(ZSTD_minCLevel()), maximum = Int(ZSTD_maxCLevel())
        guard compressionLevel >= minimum, compressionLevel <= maximum else {
            throw ShardError.invalidArgument(reason: "zstd compression level \(compressionLevel) is outside \(minimum)...\(maximum)")
        }
        self.url = url.standardizedFileURL
        self.compressionLevel = compressionLevel
        self.temporaryURL = self.url.deletingLastPathComponent()
            .appendingPathComponent(".\(self.url.lastPathComponent).tmp-\(getpid())")

        guard let context = ZSTD_createCCtx() else {
            throw ShardError.compressionFailed(path: self.url.path, key: "", reason: "ZSTD_createCCtx returned NULL")
        }
        compressionContext = context
        // The frame checksum (XXH64 of the content) and content size make each frame self-describing.
        for (parameter, value) in [(ZSTD_c_compressionLevel, Int32(compressionLevel)),
                                   (ZSTD_c_checksumFlag, 1), (ZSTD_c_contentSizeFlag, 1)] {
            let result = ZSTD_CCtx_setParameter(context, parameter, value)
            if ZSTD_isError(result) != 0 {
                ZSTD_freeCCtx(context)
                throw ShardError.compressionFailed(path: self.url.path, key: "", reason: String(cString: ZSTD_getErrorName(result)))
            }
        }

        do {
            descriptor = try PosixFile.createForWriting(temporaryURL.path)
        } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
        var header = ByteWriter(reservingCapacity: ShardFormat.headerSize)
        header.append(contentsOf: ShardFormat.headerMagic)
        header.appendUInt32(ShardFormat.version)
        header.appendUInt32(0)  // flags
        do {
            try header.bytes.withUnsafeBytes { try PosixFile.writeAll(descriptor, $0, path: temporaryURL.path) }
        } catch {
            closeAndRemoveTemporaryFile()
            throw error
        }
    }

    deinit {
        if isOpen { closeAndRemoveTemporaryFile() }
    }

    /// Compresses `record` and writes it out. Throws for a duplicate key, an invalid record (the
    /// shard stays usable) or an I/O/compression failure (the writer is then closed and its temp file removed).
    public func append(_ record: ShardRecord) throws {
        guard isOpen else { throw ShardError.writerClosed(path: url.path) }
        guard !writtenKeys.contains(record.key) else { throw ShardError.duplicateKey(path: url.path, key: record.key) }
        try RecordCodec.validate(record)

        bodyWriter.bytes.removeAll(keepingCapacity: true)
        bodyWriter.bytes.reserveCapacity(RecordCodec.encodedSize(record))
        RecordCodec.encode(record, into: &bodyWriter)

        let bound = ZSTD_compressBound(bodyWriter.bytes.count)
        if frameBuffer.count < bound { frameBuffer = [UInt8](repeating: 0, count: bound) }
        let context = compressionContext
        let frameLength = bodyWriter.bytes.withUnsafeBytes { body in
            frameBuffer.withUnsafeMutableBytes { frame in
                ZSTD_compress2(context, frame.baseAddress, frame.count, body.baseAddress, body.count)
            }
        }
        guard ZSTD_isError(frameLength) == 0 else {
            let reason = String(cString: ZSTD_getErrorName(frameLength))
            closeAndRemoveTemporaryFile()
            throw ShardError.compressionFailed(path: url.path, key: record.key, reason: reason)
        }
        let checksum = frameBuffer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<frameLength])) }
        do {
            try frameBuffer.withUnsafeBytes {
                try PosixFile.writeAll(descriptor, UnsafeRawBufferPointer(rebasing: $0[0..<frameLength]), path: temporaryURL.path)
            }
        } catch {
            closeAndRemoveTemporaryFile()
            throw error
        }
        entries.append(ShardIndexEntry(key: record.key, offset: nextOffset, compressedLength: frameLength,
                                       uncompressedLength: bodyWriter.bytes.count, checksum: checksum))
        writtenKeys.insert(record.key)
        nextOffset += frameLength
        // A huge record should not pin its buffers for the rest of the shard.
        if bodyWriter.bytes.capacity > 64 << 20 { bodyWriter = ByteWriter(); frameBuffer = [] }
    }

    /// Writes index and footer, makes the file durable and moves it to its final name.
    /// Returns the index entries (in file order).
    @discardableResult
    public func finish() throws -> [ShardIndexEntry] {
        guard isOpen else { throw ShardError.writerClosed(path: url.path) }
        let temporaryPath = temporaryURL.path
        do {
            var index = ByteWriter()
            for entry in entries {
                index.appendLengthPrefixed(entry.key)
                index.appendUInt64(UInt64(entry.offset))
                index.appendUInt64(UInt64(entry.compressedLength))
                index.appendUInt64(UInt64(entry.uncompressedLength))
                index.appendUInt32(entry.checksum)
            }
            var footer = ByteWriter(reservingCapacity: ShardFormat.footerSize)
            footer.appendUInt64(UInt64(nextOffset))
            footer.appendUInt64(UInt64(index.bytes.count))
            footer.appendUInt64(UInt64(entries.count))
            footer.appendUInt32(CRC32C.checksum(index.bytes))
            footer.appendUInt32(CRC32C.checksum(footer.bytes))
            footer.append(contentsOf: ShardFormat.footerMagic)
            index.append(contentsOf: footer.bytes)
            try index.bytes.withUnsafeBytes { try PosixFile.writeAll(descriptor, $0, path: temporaryPath) }
            try PosixFile.sync(descriptor, path: temporaryPath)
            guard close(descriptor) == 0 else {
                throw ShardError.io(path: temporaryPath, operation: "close", reason: PosixFile.errorText())
            }
            descriptor = -1
            try PosixFile.moveItem(temporaryPath, to: url.path)
            isOpen = false
            releaseCompressionContext()
            try PosixFile.syncDirectory(url.deletingLastPathComponent().path)
        } catch {
            if isOpen { closeAndRemoveTemporaryFile() }
            throw error
        }
        return entries
    }

    /// Stops writing and deletes the temporary file; nothing appears at the final path.
    public func abandon() {
        if isOpen { closeAndRemoveTemporaryFile() }
    }

    private func closeAndRemoveTemporaryFile() {
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
        unlink(temporaryURL.path)
        isOpen = false
        releaseCompressionContext()
    }

    private func releaseCompressionContext() {
        if let context = compressionContext { ZSTD_freeCCtx(context) }
        compressionContext = nil
    }
}
