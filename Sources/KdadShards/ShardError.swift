import Foundation

/// Everything that can go wrong writing or reading a shard. Every case names the shard file, and
/// record-level problems name the record key, so a pipeline log points at the exact damaged item.
public enum ShardError: Error, Equatable, CustomStringConvertible, Sendable {
    /// An operating-system call failed (open, read, write, fsync, rename…).
    case io(path: String, operation: String, reason: String)
    /// The file does not start with the shard magic: it is not a kdad shard.
    case badMagic(path: String, found: [UInt8])
    /// The header names a format version (or feature flags) this reader does not understand.
    case unsupportedVersion(path: String, version: UInt32, flags: UInt32)
    /// The file ends before a complete, valid footer: it was truncated, or its writer never finished.
    case truncated(path: String, reason: String)
    /// The footer or the index fails its checksum or is inconsistent with the file.
    case indexCorrupt(path: String, reason: String)
    /// One record's bytes fail their checksum, do not decompress, or do not decode.
    case corruptRecord(path: String, key: String, reason: String)
    /// `record(forKey:)` for a key the shard does not hold.
    case missingKey(path: String, key: String)
    /// The writer was given a second record with a key it already wrote.
    case duplicateKey(path: String, key: String)
    /// A record or tensor handed to the writer breaks a rule of the format (reason says which).
    case invalidRecord(key: String, reason: String)
    /// A tensor's shape, dtype and byte count do not agree, or a typed accessor asked for the wrong dtype.
    case invalidTensor(name: String, reason: String)
    /// An argument outside its valid range (e.g. a compression level).
    case invalidArgument(reason: String)
    /// zstd reported an error while compressing.
    case compressionFailed(path: String, key: String, reason: String)
    /// `append`/`finish` after `finish()`, `abandon()` or an earlier write failure.
    case writerClosed(path: String)

    public var description: String {
        switch self {
        case let .io(path, operation, reason):
            return "shard \(path): \(operation) failed: \(reason)"
        case let .badMagic(path, found):
            let hex = found.map { String(format: "%02x", $0) }.joined(separator: " ")
            return "shard \(path): not a kdad shard (magic bytes are [\(hex)], expected \"KDADSHRD\")"
        case let .unsupportedVersion(path, version, flags):
            return "shard \(path): unsupported format version \(version) / flags 0x\(String(flags, radix: 16)) "
                + "(this kdad reads version \(ShardFormat.version) with flags 0)"
        case let .truncated(path, reason):
            return "shard \(path) is truncated or unfinished: \(reason)"
        case let .indexCorrupt(path, reason):
            return "shard \(path): index/footer corrupt: \(reason)"
        case let .corruptRecord(path, key, reason):
            return "shard \(path): record \"\(key)\" is corrupt: \(reason)"
        case let .missingKey(path, key):
            return "shard \(path) has no record \"\(key)\""
        case let .duplicateKey(path, key):
            return "shard \(path): record key \"\(key)\" was already written (keys must be unique)"
        case let .invalidRecord(key, reason):
            return "record \"\(key)\": \(reason)"
        case let .invalidTensor(name, reason):
            return "tensor \"\(name)\": \(reason)"
        case let .invalidArgument(reason):
            return "invalid argument: \(reason)"
        case let .compressionFailed(path, key, reason):
            return "shard \(path): compressing record \"\(key)\" failed: \(reason)"
        case let .writerClosed(path):
            return "shard writer for \(path) is already finished, abandoned or failed"
        }
    }
}
