import Foundation

/// One item of a shard: a unique key, a small JSON metadata blob, and named tensors.
public struct ShardRecord: Sendable, Equatable {
    /// Unique within a shard; any UTF-8 string.
    public var key: String
    /// UTF-8 JSON (any JSON value; `{}` by default). Checked to parse when the record is written.
    public var metadata: Data
    /// Tensors in the order given; names must be unique within the record.
    public var tensors: [ShardTensor]

    public static let emptyMetadata = Data("{}".utf8)

    public init(key: String, metadata: Data = ShardRecord.emptyMetadata, tensors: [ShardTensor] = []) {
        self.key = key
        self.metadata = metadata
        self.tensors = tensors
    }

    /// Encodes `metadata` with `JSONEncoder` (sorted keys, so identical inputs give identical shards).
    public init<Metadata: Encodable>(key: String, metadata: Metadata, tensors: [ShardTensor] = []) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json: Data
        do { json = try encoder.encode(metadata) } catch {
            throw ShardError.invalidRecord(key: key, reason: "metadata does not encode as JSON: \(error)")
        }
        self.init(key: key, metadata: json, tensors: tensors)
    }

    /// Decodes `metadata` with `JSONDecoder`.
    public func decodeMetadata<Metadata: Decodable>(_ type: Metadata.Type) throws -> Metadata {
        do { return try JSONDecoder().decode(type, from: metadata) } catch {
            throw ShardError.invalidRecord(key: key, reason: "metadata does not decode as \(type): \(error)")
        }
    }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> ShardTensor? { tensors.first { $0.name == name } }

    /// Bytes of all tensor payloads (what throughput figures count as "payload").
    public var payloadByteCount: Int { tensors.reduce(0) { $0 + $1.bytes.count } }
}

/// The uncompressed record body (see Docs/shard-format.md, "Record body").
enum RecordCodec {
    /// Checks the rules the writer enforces before anything reaches the file.
    static func validate(_ record: ShardRecord) throws {
        let fieldLimit = Int(UInt32.max)
        guard record.key.utf8.count <= fieldLimit else {
            throw ShardError.invalidRecord(key: record.key, reason: "key is longer than 4 GiB")
        }
        guard record.metadata.count <= fieldLimit else {
            throw ShardError.invalidRecord(key: record.key, reason: "metadata is longer than 4 GiB")
        }
        guard (try? JSONSerialization.jsonObject(with: record.metadata, options: [.fragmentsAllowed])) != nil else {
            throw ShardError.invalidRecord(key: record.key, reason: "metadata is not valid JSON")
        }
        guard record.tensors.count <= fieldLimit else {
            throw ShardError.invalidRecord(key: record.key, reason: "too many tensors")
        }
        var names = Set<String>()
        for tensor in record.tensors {
            guard names.insert(tensor.name).inserted else {
                throw ShardError.invalidRecord(key: record.key, reason: "two tensors are named \"\(tensor.name)\"")
            }
            guard tensor.name.utf8.count <= fieldLimit else {
                throw ShardError.invalidRecord(key: record.key, reason: "a tensor name is longer than 4 GiB")
            }
        }
    }

    static func encodedSize(_ record: ShardRecord) -> Int {
        var size = 4 + record.key.utf8.count + 4 + record.metadata.count + 4
        for tensor in record.tensors {
            size += 4 + tensor.name.utf8.count + 4 + 8 * tensor.shape.count + 8 + tensor.bytes.count
        }
        return size
    }

    /// Writes the record body into `writer` (which the caller reuses between records).
    static func encode(_ record: ShardRecord, into writer: inout ByteWriter) {
        writer.appendLengthPrefixed(record.key)
        writer.appendUInt32(UInt32(record.metadata.count))
        writer.append(record.metadata)
        writer.appendUInt32(UInt32(record.tensors.count))
        for tensor in record.tensors {
            writer.appendLengthPrefixed(tensor.name)
            writer.appendUInt8(tensor.dtype.rawValue)
            writer.appendUInt8(UInt8(tensor.shape.count))
            writer.appendUInt16(0)
            for dimension in tensor.shape { writer.appendUInt64(UInt64(dimension)) }
            writer.appendUInt64(UInt64(tensor.bytes.count))
            writer.append(tensor.bytes)
        }
    }

    /// Parses a record body; every length is bounds-checked and the body must be consumed exactly.
    static func decode(_ body: UnsafeRawBufferPointer) throws -> ShardRecord {
        var reader = ByteReader(body)
        let key = try reader.readLengthPrefixedString("key")
        let metadataLength = Int(try reader.readUInt32("metadata length"))
        let metadata = Data(try reader.readBytes(metadataLength, "metadata"))
        let tensorCount = Int(try reader.readUInt32("tensor count"))
        var tensors: [ShardTensor] = []
        var names = Set<String>()
        // Each tensor takes at least 24 bytes, which bounds the reservation by the body size.
        tensors.reserveCapacity(min(tensorCount, reader.remaining / 24))
        for index in 0..<tensorCount {
            let name = try reader.readLengthPrefixedString("tensor \(index) name")
            guard names.insert(name).inserted else { throw ByteReaderError(reason: "two tensors are named \"\(name)\"") }
            let dtypeCode = try reader.readUInt8("tensor \(name) dtype")
            guard let dtype = ShardDType(rawValue: dtypeCode) else {
                throw ByteReaderError(reason: "tensor \"\(name)\" has unknown dtype code \(dtypeCode)")
            }
            let rank = Int(try reader.readUInt8("tensor \(name) rank"))
            guard rank <= ShardFormat.maxRank else {
                throw ByteReaderError(reason: "tensor \"\(name)\" has rank \(rank) > \(ShardFormat.maxRank)")
            }
            let reserved = try reader.readUInt16("tensor \(name) reserved field")
            guard reserved == 0 else { throw ByteReaderError(reason: "tensor \"\(name)\" reserved field is \(reserved), not 0") }
            var shape: [Int] = []
            for axis in 0..<rank { shape.append(try reader.readCount("tensor \(name) dimension \(axis)")) }
            let byteCount = try reader.readCount("tensor \(name) byte count")
            let bytes = Data(try reader.readBytes(byteCount, "tensor \(name) data"))
            do {
                tensors.append(try ShardTensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
            } catch let error as ShardError {
                throw ByteReaderError(reason: error.description)
            }
        }
        guard reader.remaining == 0 else {
            throw ByteReaderError(reason: "\(reader.remaining) unexpected bytes after the last tensor")
        }
        return ShardRecord(key: key, metadata: metadata, tensors: tensors)
    }
}
