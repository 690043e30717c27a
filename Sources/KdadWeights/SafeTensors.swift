import Foundation
import KdadSupport

/// The contents of a safetensors file.
public struct SafeTensorsFile: Sendable {
    /// Tensors in file order (ascending data offset).
    public var tensors: [WeightTensor]
    /// The optional `__metadata__` string map.
    public var metadata: [String: String]

    public init(tensors: [WeightTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> WeightTensor? {
        tensors.first { $0.name == name }
    }

    public var names: [String] { tensors.map(\.name) }
}

/// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON header
/// mapping names to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` string map), then
/// the tensors' bytes back to back.
public enum SafeTensors {
    /// Headers above this size are refused (the reference implementation uses the same bound).
    static let maximumHeaderLength = 100_000_000

    public static func read(contentsOf url: URL) throws -> SafeTensorsFile {
        let bytes = try readWholeFile(url)
        do {
            return try decode(bytes)
        } catch let error as WeightFileError {
            throw error.inFile(url.path)
        }
    }

    /// Decodes a safetensors image held in memory.
    public static func decode(_ bytes: Data) throws -> SafeTensorsFile {
        guard bytes.count >= 8 else {
            throw WeightFileError(kind: .truncated, reason: "\(bytes.count) bytes is too short for a safetensors header length")
        }
        let base = bytes.startIndex
        let headerLength64 = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength64 <= UInt64(maximumHeaderLength) else {
            throw WeightFileError(kind: .malformed, reason: "header length \(headerLength64) exceeds the \(maximumHeaderLength)-byte limit")
        }
        let headerLength = Int(headerLength64)
        guard headerLength >= 2 else {
            throw WeightFileError(kind: .malformed, reason: "header length \(headerLength) is too small for a JSON object")
        }
        guard 8 + headerLength <= bytes.count else {
            throw WeightFileError(kind: .truncated, reason: "header length \(headerLength) runs past the end of the \(bytes.count)-byte file")
        }
        let headerBytes = [UInt8](bytes[(base + 8)..<(base + 8 + headerLength)])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw WeightFileError(kind: .malformed, reason: "header does not start with '{'")
        }
        let header: HeaderJSON
        do {
            header = try HeaderJSON.parse(headerBytes)
        } catch {
            throw WeightFileError(kind: .malformed, reason: "header JSON invalid at byte \(error.offset): \(error.reason)")
        }
        guard case let .object(members) = header else {
            throw WeightFileError(kind: .malformed, reason: "header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        struct Entry { var name: String; var dtype: WeightDType; var shape: [Int]; var begin: Int; var end: Int }
        var entries: [Entry] = []
        for (key, value) in members {
            if key == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw WeightFileError(kind: .malformed, key: key, reason: "__metadata__ is not an object")
                }
                for (metaKey, metaValue) in pairs {
                    guard case let .string(text) = metaValue else {
                        throw WeightFileError(kind: .malformed, key: "__metadata__.\(metaKey)", reason: "metadata value is not a string")
                    }
                    metadata[metaKey] = text
                }
                continue
            }
            guard case let .object(fields) = value else {
                throw WeightFileError(kind: .malformed, key: key, reason: "tensor entry is not an object")
            }
            var dtype: WeightDType?
            var shape: [Int]?
            var offsets: [Int]?
            for (field, fieldValue) in fields {
                switch field {
                case "dtype":
                    guard case let .string(text) = fieldValue else {
                        throw WeightFileError(kind: .malformed, key: key, reason: "dtype is not a string")
                    }
                    guard let parsed = WeightDType(rawValue: text) else {
                        throw WeightFileError(kind: .unsupported, key: key, reason: "dtype \(text) is not supported")
                    }
                    dtype = parsed
                case "shape":
                    guard case let .array(dims) = fieldValue else {
                        throw WeightFileError(kind: .malformed, key: key, reason: "shape is not an array")
                    }
                    shape = try dims.map { dim in
                        guard let value = dim.nonNegativeInteger else {
                            throw WeightFileError(kind: .malformed, key: key, reason: "shape \(fieldValue.serialized()) has a dimension that is not a non-negative integer")
                        }
                        return value
                    }
                case "data_offsets":
                    guard case let .array(pair) = fieldValue, pair.count == 2,
                          let begin = pair[0].nonNegativeInteger, let end = pair[1].nonNegativeInteger else {
                        throw WeightFileError(kind: .malformed, key: key, reason: "data_offsets \(fieldValue.serialized()) is not a pair of non-negative integers")
                    }
                    offsets = [begin, end]
                default:
                    throw WeightFileError(kind: .malformed, key: key, reason: "unexpected field \"\(field)\" in tensor entry")
                }
            }
            guard let dtype else { throw WeightFileError(kind: .malformed, key: key, reason: "tensor entry has no dtype") }
            guard let shape else { throw WeightFileError(kind: .malformed, key: key, reason: "tensor entry has no shape") }
            guard let offsets else { throw WeightFileError(kind: .malformed, key: key, reason: "tensor entry has no data_offsets") }
            guard offsets[0] <= offsets[1] else {
                throw WeightFileError(kind: .invalidTensor, key: key, reason: "data_offsets [\(offsets[0]), \(offsets[1])] end before they begin")
            }
            guard let expected = WeightTensor.checkedByteCount(shape: shape, dtype: dtype) else {
                throw WeightFileError(kind: .invalidTensor, key: key, reason: "shape \(shape) overflows")
            }
            guard expected == offsets[1] - offsets[0] else {
                throw WeightFileError(kind: .invalidTensor, key: key,
                                      reason: "shape \(shape) of \(dtype.rawValue) needs \(expected) bytes but data_offsets [\(offsets[0]), \(offsets[1])] span \(offsets[1] - offsets[0])")
            }
            entries.append(Entry(name: key, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }

        // The byte buffer must be tiled exactly: sorted by offset, each tensor starts where the previous ended.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var cursor = 0
        for entry in entries {
            guard entry.begin == cursor else {
                let reason = entry.begin < cursor
                    ? "data_offsets [\(entry.begin), \(entry.end)] overlap the previous tensor (which ends at \(cursor))"
                    : "data_offsets [\(entry.begin), \(entry.end)] leave a gap after byte \(cursor)"
                throw WeightFileError(kind: .invalidTensor, key: entry.name, reason: reason)
            }
            guard entry.end <= dataLength else {
                throw WeightFileError(kind: .truncated, key: entry.name,
                                      reason: "data_offsets [\(entry.begin), \(entry.end)] run past the \(dataLength)-byte data section")
            }
            cursor = entry.end
        }
        guard cursor == dataLength else {
            throw WeightFileError(kind: .malformed, reason: "data section is \(dataLength) bytes but the tensors cover \(cursor)")
        }

        let tensors = entries.map { entry in
            WeightTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape,
                         data: Data(bytes[(base + dataStart + entry.begin)..<(base + dataStart + entry.end)]))
        }
        return SafeTensorsFile(tensors: tensors, metadata: metadata)
    }

    /// Writes `tensors` as a safetensors file, atomically (temporary name, fsync, rename).
    /// Layout follows the reference writer: tensors ordered by dtype (widest first) then name, a compact
    /// JSON header in that order with `__metadata__` first, padded with spaces to a multiple of 8 bytes.
    public static func write(_ tensors: [WeightTensor], metadata: [String: String] = [:], to url: URL) throws {
        let encoded: Data
        do {
            encoded = try encode(tensors, metadata: metadata)
        } catch let error as WeightFileError {
            throw error.inFile(url.path)
        }
        try writeAtomically(encoded, to: url)
    }

    /// Encodes `tensors` into a safetensors image in memory (see `write`).
    public static func encode(_ tensors: [WeightTensor], metadata: [String: String] = [:]) throws -> Data {
        var seen = Set<String>()
        for tensor in tensors {
            guard !tensor.name.isEmpty else {
                throw WeightFileError(kind: .invalidTensor, key: tensor.name, reason: "tensor name is empty")
            }
            guard tensor.name != "__metadata__" else {
                throw WeightFileError(kind: .invalidTensor, key: tensor.name, reason: "__metadata__ is reserved")
            }
            guard seen.insert(tensor.name).inserted else {
                throw WeightFileError(kind: .invalidTensor, key: tensor.name, reason: "two tensors have this name")
            }
            try tensor.checkByteCount()
        }
        let ordered = tensors.sorted { lhs, rhs in
            if lhs.dtype.referenceWriterRank != rhs.dtype.referenceWriterRank {
                return lhs.dtype.referenceWriterRank > rhs.dtype.referenceWriterRank
            }
            return lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8)
        }
        var members: [(key: String, value: HeaderJSON)] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
                .map { (key: $0.key, value: HeaderJSON.string($0.value)) }
            members.append((key: "__metadata__", value: .object(pairs)))
        }
        var offset = 0
        for tensor in ordered {
            let end = offset + tensor.data.count
            members.append((key: tensor.name, value: .object([
                (key: "dtype", value: .string(tensor.dtype.rawValue)),
                (key: "shape", value: .array(tensor.shape.map { .number(String($0)) })),
                (key: "data_offsets", value: .array([.number(String(offset)), .number(String(end))])),
            ])))
            offset = end
        }
        var header = Array(HeaderJSON.object(members).serialized().utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var out = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        for tensor in ordered { out.append(tensor.data) }
        return out
    }
}

/// Reads a whole file, mapping it where the platform allows (weight files are well under 100 MB).
func readWholeFile(_ url: URL) throws -> Data {
    do {
        return try Data(contentsOf: url, options: .alwaysMapped)
    } catch {
        throw WeightFileError(kind: .io, file: url.path, reason: "cannot read: \(error.localizedDescription)")
    }
}

/// Writes `data` to a temporary file beside `url`, fsyncs it, then renames it over `url`, so a reader
/// never sees a half-written file and a crash leaves either the old file or the new one.
func writeAtomically(_ data: Data, to url: URL) throws(WeightFileError) {
    do {
        try AtomicFile.write(data, to: url)
    } catch {
        let location = error.path == url.path ? "" : "\(error.path): "
        throw WeightFileError(kind: .io, file: url.path, reason: location + error.reason)
    }
}
