import Foundation

/// Element type of a stored tensor. Raw values are the on-disk dtype codes.
public enum ShardDType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    /// IEEE 754 binary16 ("half"): how kdad stores feature maps, halving their size.
    case float16 = 2
    case uint8 = 3
    case int32 = 4

    /// Bytes per element.
    public var byteWidth: Int {
        switch self {
        case .float32, .int32: return 4
        case .float16: return 2
        case .uint8: return 1
        }
    }

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .uint8: return "uint8"
        case .int32: return "int32"
        }
    }
}

/// A named, typed, shaped block of little-endian elements in row-major (C) order.
/// The initialisers check that `bytes.count == product(shape) * dtype.byteWidth`, so every value
/// of this type is self-consistent. A rank-0 shape `[]` is a scalar (one element); a shape with a
/// zero dimension is an empty tensor (no bytes).
public struct ShardTensor: Sendable, Equatable {
    public let name: String
    public let dtype: ShardDType
    public let shape: [Int]
    /// Element bytes, little-endian, row-major.
    public let bytes: Data

    /// Number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// Wraps raw element bytes; throws if the byte count does not match shape and dtype.
    public init(name: String, dtype: ShardDType, shape: [Int], bytes: Data) throws {
        let count = try ShardTensor.checkedElementCount(name: name, shape: shape)
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !overflow else { throw ShardError.invalidTensor(name: name, reason: "shape \(shape) is too large") }
        guard bytes.count == expected else {
            throw ShardError.invalidTensor(
                name: name,
                reason: "\(bytes.count) bytes given but shape \(shape) of \(dtype) needs \(expected)")
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// The element count of `shape`, rejecting negative dimensions, too many dimensions and overflow.
    static func checkedElementCount(name: String, shape: [Int]) throws -> Int {
        guard shape.count <= ShardFormat.maxRank else {
            throw ShardError.invalidTensor(name: name, reason: "rank \(shape.count) exceeds the maximum \(ShardFormat.maxRank)")
        }
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else {
                throw ShardError.invalidTensor(name: name, reason: "shape \(shape) has a negative dimension")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw ShardError.invalidTensor(name: name, reason: "shape \(shape) is too large") }
            count = product
        }
        return count
    }

    private init<Element>(name: String, dtype: ShardDType, values: [Element], shape: [Int]) throws {
        let count = try ShardTensor.checkedElementCount(name: name, shape: shape)
        guard values.count == count else {
            throw ShardError.invalidTensor(name: name, reason: "\(values.count) values given but shape \(shape) holds \(count)")
        }
        // Host is little-endian (checked at compile time in ShardFormat.swift), so memory is the file order.
        let bytes = values.withUnsafeBytes { Data($0) }
        try self.init(name: name, dtype: dtype, shape: shape, bytes: bytes)
    }

    public init(name: String, float32 values: [Float], shape: [Int]) throws {
        try self.init(name: name, dtype: .float32, values: values, shape: shape)
    }

    public init(name: String, float16 values: [Float16], shape: [Int]) throws {
        try self.init(name: name, dtype: .float16, values: values, shape: shape)
    }

    /// Stores `values` as float16, each rounded to the nearest half (ties to even; beyond ±65504
    /// rounds to ±infinity; NaN stays NaN).
    public init(name: String, float16From values: [Float], shape: [Int]) throws {
        try self.init(name: name, dtype: .float16, values: values.map { Float16($0) }, shape: shape)
    }

    public init(name: String, uint8 values: [UInt8], shape: [Int]) throws {
        try self.init(name: name, dtype: .uint8, values: values, shape: shape)
    }

    public init(name: String, int32 values: [Int32], shape: [Int]) throws {
        try self.init(name: name, dtype: .int32, values: values, shape: shape)
    }

    private func values<Element>(as type: Element.Type, dtype expected: ShardDType) throws -> [Element] {
        guard dtype == expected else {
            throw ShardError.invalidTensor(name: name, reason: "holds \(dtype), not \(expected)")
        }
        let count = elementCount
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            initialized = count
        }
    }

    public func float32Values() throws -> [Float] { try values(as: Float.self, dtype: .float32) }
    public func float16Values() throws -> [Float16] { try values(as: Float16.self, dtype: .float16) }
    public func uint8Values() throws -> [UInt8] { try values(as: UInt8.self, dtype: .uint8) }
    public func int32Values() throws -> [Int32] { try values(as: Int32.self, dtype: .int32) }

    /// The elements as `Float`: float32 as stored, float16 widened exactly. Other dtypes throw.
    public func floatValues() throws -> [Float] {
        switch dtype {
        case .float32: return try float32Values()
        case .float16: return try float16Values().map { Float($0) }
        case .uint8, .int32:
            throw ShardError.invalidTensor(name: name, reason: "holds \(dtype), not a floating-point dtype")
        }
    }
}
