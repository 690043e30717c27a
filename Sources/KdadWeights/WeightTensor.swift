import Foundation

/// Element types of tensors in weight files, spelled as safetensors spells them.
public enum WeightDType: String, Sendable, CaseIterable, Codable {
    case float64 = "F64"
    case float32 = "F32"
    case float16 = "F16"
    case bfloat16 = "BF16"
    case int64 = "I64"
    case int32 = "I32"
    case int16 = "I16"
    case int8 = "I8"
    case uint8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float64, .float32, .float16, .bfloat16: return true
        default: return false
        }
    }

    /// The position of this type in the reference safetensors writer's `Dtype` enum. That writer lays
    /// tensors out by this rank, largest first, then by name; we do the same so files round-trip byte-identically.
    var referenceWriterRank: Int {
        switch self {
        case .bool: return 0
        case .uint8: return 1
        case .int8: return 2
        case .int16: return 5
        case .float16: return 7
        case .bfloat16: return 8
        case .int32: return 9
        case .float32: return 11
        case .float64: return 12
        case .int64: return 13
        }
    }
}

/// One named tensor as stored in a weight file: raw little-endian element bytes, row-major (C order).
public struct WeightTensor: Sendable, Equatable {
    public var name: String
    public var dtype: WeightDType
    public var shape: [Int]
    /// Raw little-endian element bytes, `elementCount * dtype.byteSize` long.
    public var data: Data

    public init(name: String, dtype: WeightDType, shape: [Int], data: Data) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        // Re-base so indices always start at 0 whatever slice the caller passed.
        self.data = data.startIndex == 0 ? data : Data(data)
    }

    /// A float32 tensor; `floats.count` must equal the product of `shape`.
    public init(name: String, shape: [Int], floats: [Float]) {
        precondition(WeightTensor.product(shape) == floats.count, "WeightTensor \(name): shape \(shape) does not hold \(floats.count) values")
        var bytes = Data(count: floats.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in floats.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        self.init(name: name, dtype: .float32, shape: shape, data: bytes)
    }

    /// A float64 tensor; `doubles.count` must equal the product of `shape`.
    public init(name: String, shape: [Int], doubles: [Double]) {
        precondition(WeightTensor.product(shape) == doubles.count, "WeightTensor \(name): shape \(shape) does not hold \(doubles.count) values")
        var bytes = Data(count: doubles.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in doubles.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 8, as: UInt64.self)
            }
        }
        self.init(name: name, dtype: .float64, shape: shape, data: bytes)
    }

    /// Number of elements (1 for a scalar with shape `[]`).
    public var elementCount: Int { WeightTensor.product(shape) }

    static func product(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Elements converted to Float (float64 is rounded to nearest; integers convert exactly when representable).
    public func floats() throws -> [Float] {
        try checkByteCount()
        let count = elementCount
        return data.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case .float32:
                return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case .float64:
                return (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            case .float16:
                return (0..<count).map { HalfFloat.toFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
            case .bfloat16:
                return (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }
            default:
                return integerValues(raw, count: count).map { Float($0) }
            }
        }
    }

    /// Elements converted to Double (exact for every float type; integers convert exactly up to 2^53).
    public func doubles() throws -> [Double] {
        try checkByteCount()
        if dtype == .float32 || dtype == .float16 || dtype == .bfloat16 {
            // Every narrower float is exactly representable as Float, and Float as Double.
            return try floats().map { Double($0) }
        }
        let count = elementCount
        return data.withUnsafeBytes { raw -> [Double] in
            switch dtype {
            case .float64:
                return (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
            default:
                return integerValues(raw, count: count).map { Double($0) }
            }
        }
    }

    /// Elements of an integer or bool tensor as Int64; throws for float tensors.
    public func integers() throws -> [Int64] {
        try checkByteCount()
        guard !dtype.isFloatingPoint else {
            throw WeightFileError(kind: .invalidTensor, key: name, reason: "integers() asked of a \(dtype.rawValue) tensor")
        }
        return data.withUnsafeBytes { integerValues($0, count: elementCount) }
    }

    private func integerValues(_ raw: UnsafeRawBufferPointer, count: Int) -> [Int64] {
        switch dtype {
        case .int64: return (0..<count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
        case .int32: return (0..<count).map { Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
        case .int16: return (0..<count).map { Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }
        case .int8: return (0..<count).map { Int64(raw.load(fromByteOffset: $0, as: Int8.self)) }
        case .uint8: return (0..<count).map { Int64(raw[$0]) }
        case .bool: return (0..<count).map { raw[$0] == 0 ? 0 : 1 }
        case .float64, .float32, .float16, .bfloat16: return []
        }
    }

    /// Throws unless the shape is valid and the byte count matches shape × dtype.
    public func checkByteCount() throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw WeightFileError(kind: .invalidTensor, key: name, reason: "negative dimension in shape \(shape)")
        }
        guard let expected = WeightTensor.checkedByteCount(shape: shape, dtype: dtype), expected == data.count else {
            throw WeightFileError(kind: .invalidTensor, key: name,
                                  reason: "\(data.count) bytes do not match shape \(shape) of \(dtype.rawValue)")
        }
    }

    /// shape × dtype size, or nil on overflow or a negative dimension.
    static func checkedByteCount(shape: [Int], dtype: WeightDType) -> Int? {
        var total = dtype.byteSize
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            total = product
        }
        return total
    }
}

/// IEEE 754 binary16 conversion done by hand: Swift's `Float16` is unavailable on macOS x86_64.
enum HalfFloat {
    static func toFloat(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1F)
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { // inf / nan
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            // zero or subnormal: value = mantissa × 2^-24, exact in Float.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | (UInt32(exponent - 15 + 127) << 23) | (mantissa << 13))
    }

    /// Round-to-nearest-even Float → binary16 bits.
    static func fromFloat(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F { return sign | 0x7C00 }
        if halfExponent <= 0 {
            if halfExponent < -10 { return sign }
            let full = mantissa | 0x80_0000
            let shift = UInt32(14 - halfExponent)
            var half = full >> shift
            let remainder = full & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && (half & 1) == 1) { half += 1 }
            return sign | UInt16(half)
        }
        var half = UInt32(halfExponent) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) == 1) { half += 1 } // may carry into exponent: correct
        return sign | UInt16(half)
    }
}
