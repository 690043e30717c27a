import Foundation

/// Values a restricted unpickler can produce. Lists and dicts are reference types because pickle's memo
/// shares them: an APPEND or SETITEM after a BINGET must be seen through every reference.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too wide for Int, kept as its little-endian two's-complement bytes (pickle's LONG1 form).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A whitelisted global (a class or function), usable only as REDUCE's callable or a storage type.
    case global(PickleGlobal)
    /// A PyTorch storage, named by its persistent id.
    case storage(PickleStorage)
    /// A tensor view of a storage, from `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`.
    case tensor(PickleTensor)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(global): return "global \(global.qualifiedName)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// An (ordered) dict. Keys are kept in insertion order; a repeated key replaces the earlier value in place,
/// as Python's dict does.
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var indexByStringKey: [String: Int] = [:]
    /// Attributes set by BUILD (e.g. the `_metadata` PyTorch attaches to a state dict); kept, not interpreted.
    var attributes: PickleValue?

    func set(_ key: PickleValue, _ value: PickleValue) {
        if case let .string(name) = key {
            if let index = indexByStringKey[name] {
                entries[index].value = value
                return
            }
            indexByStringKey[name] = entries.count
        }
        entries.append((key, value))
    }

    subscript(name: String) -> PickleValue? {
        indexByStringKey[name].map { entries[$0].value }
    }
}

enum PickleGlobal: String, CaseIterable {
    case orderedDict = "collections.OrderedDict"
    case rebuildTensorV2 = "torch._utils._rebuild_tensor_v2"
    case rebuildTensor = "torch._utils._rebuild_tensor"
    case rebuildParameter = "torch._utils._rebuild_parameter"
    case rebuildParameterWithState = "torch._utils._rebuild_parameter_with_state"
    case size = "torch.Size"
    case floatStorage = "torch.FloatStorage"
    case doubleStorage = "torch.DoubleStorage"
    case halfStorage = "torch.HalfStorage"
    case bfloat16Storage = "torch.BFloat16Storage"
    case longStorage = "torch.LongStorage"
    case intStorage = "torch.IntStorage"
    case shortStorage = "torch.ShortStorage"
    case charStorage = "torch.CharStorage"
    case byteStorage = "torch.ByteStorage"
    case boolStorage = "torch.BoolStorage"

    var qualifiedName: String { rawValue }

    /// The element type of a storage class, nil for the callables.
    var storageDType: WeightDType? {
        switch self {
        case .floatStorage: return .float32
        case .doubleStorage: return .float64
        case .halfStorage: return .float16
        case .bfloat16Storage: return .bfloat16
        case .longStorage: return .int64
        case .intStorage: return .int32
        case .shortStorage: return .int16
        case .charStorage: return .int8
        case .byteStorage: return .uint8
        case .boolStorage: return .bool
        default: return nil
        }
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, numel[, view])`.
struct PickleStorage {
    var key: String
    var dtype: WeightDType
    /// Elements in the root storage `key`, as the pickle declares it.
    var rootElementCount: Int
    /// For legacy storage views `(view_key, offset, size)`: this storage is elements
    /// `viewOffset ..< viewOffset + elementCount` of the root storage. Otherwise 0 and the root's count.
    var viewOffset: Int = 0
    var elementCount: Int
}

struct PickleTensor {
    var storage: PickleStorage
    /// In elements of the storage.
    var storageOffset: Int
    var shape: [Int]
    var strides: [Int]
}

/// A pickle virtual machine that understands only what PyTorch state dicts need. It never imports or
/// calls anything: globals outside a fixed whitelist are an error, and whitelisted ones are interpreted
/// by this code, not executed.
struct RestrictedUnpickler {
    struct Failure: Error {
        var kind: WeightFileError.Kind
        var key: String?
        var reason: String
    }

    private let bytes: [UInt8]
    private(set) var position: Int
    private var stack: [PickleValue] = []
    private var markStack: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    /// Runs from `position` to STOP and returns the value left; `position` ends just past STOP.
    mutating func load() throws(Failure) -> PickleValue {
        stack.removeAll()
        markStack.removeAll()
        memo.removeAll()
        while true {
            let opcodeOffset = position
            let opcode = try readByte()
            switch opcode {
            case 0x80: // PROTO
                let version = try readByte()
                guard version <= 5 else { throw failure(.unsupported, "pickle protocol \(version)", at: opcodeOffset) }
            case 0x95: // FRAME (protocol 4): a length hint only
                _ = try readBytes(8)
            case 0x2E: // STOP
                guard let value = stack.popLast(), stack.isEmpty else {
                    throw failure(.malformed, "STOP with \(stack.count) values on the stack", at: opcodeOffset)
                }
                return value
            case 0x28: // MARK
                markStack.append(stack.count)
            case 0x4E: push(.none) // NONE
            case 0x88: push(.bool(true)) // NEWTRUE
            case 0x89: push(.bool(false)) // NEWFALSE
            case 0x4B: push(.int(Int(try readByte()))) // BININT1
            case 0x4D: push(.int(Int(try readUInt(2)))) // BININT2
            case 0x4A: push(.int(Int(Int32(bitPattern: UInt32(try readUInt(4)))))) // BININT
            case 0x8A: // LONG1
                let count = Int(try readByte())
                push(Self.integer(fromLittleEndian: try readBytes(count)))
            case 0x8B: // LONG4
                let count = Int(try readUInt(4))
                guard count <= 1 << 16 else { throw failure(.unsupported, "LONG4 of \(count) bytes", at: opcodeOffset) }
                push(Self.integer(fromLittleEndian: try readBytes(count)))
            case 0x47: // BINFLOAT (big-endian)
                let raw = try readBytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                push(.float(Double(bitPattern: raw)))
            case 0x58: push(.string(try readString(length: Int(try readUInt(4)), at: opcodeOffset))) // BINUNICODE
            case 0x8C: push(.string(try readString(length: Int(try readByte()), at: opcodeOffset))) // SHORT_BINUNICODE
            case 0x8D: push(.string(try readString(length: try readLength8(at: opcodeOffset), at: opcodeOffset))) // BINUNICODE8
            case 0x55: push(.string(String(decoding: try readBytes(Int(try readByte())), as: UTF8.self))) // SHORT_BINSTRING
            case 0x54: push(.string(String(decoding: try readBytes(Int(try readUInt(4))), as: UTF8.self))) // BINSTRING
            case 0x43: push(.bytes(try readBytes(Int(try readByte())))) // SHORT_BINBYTES
            case 0x42: push(.bytes(try readBytes(Int(try readUInt(4))))) // BINBYTES
            case 0x8E: push(.bytes(try readBytes(try readLength8(at: opcodeOffset)))) // BINBYTES8
            case 0x29: push(.tuple([])) // EMPTY_TUPLE
            case 0x74: push(.tuple(try popToMark(at: opcodeOffset))) // TUPLE
            case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
                let count = Int(opcode - 0x84)
                guard stack.count - (markStack.last ?? 0) >= count else {
                    throw failure(.malformed, "TUPLE\(count) on a stack of \(stack.count)", at: opcodeOffset)
                }
                let items = Array(stack.suffix(count))
                stack.removeLast(count)
                push(.tuple(items))
            case 0x5D: push(.list(PickleList())) // EMPTY_LIST
            case 0x6C: push(.list(PickleList(try popToMark(at: opcodeOffset)))) // LIST
            case 0x61: // APPEND
                let value = try pop(at: opcodeOffset)
                guard case let .list(list) = try top(at: opcodeOffset) else {
                    throw failure(.malformed, "APPEND to a non-list", at: opcodeOffset)
                }
                list.items.append(value)
            case 0x65: // APPENDS
                let values = try popToMark(at: opcodeOffset)
                guard case let .list(list) = try top(at: opcodeOffset) else {
                    throw failure(.malformed, "APPENDS to a non-list", at: opcodeOffset)
                }
                list.items.append(contentsOf: values)
            case 0x7D: push(.dict(PickleDict())) // EMPTY_DICT
            case 0x64: // DICT
                let items = try popToMark(at: opcodeOffset)
                let dict = PickleDict()
                try setItems(items, on: dict, at: opcodeOffset)
                push(.dict(dict))
            case 0x73: // SETITEM
                let value = try pop(at: opcodeOffset)
                let key = try pop(at: opcodeOffset)
                guard case let .dict(dict) = try top(at: opcodeOffset) else {
                    throw failure(.malformed, "SETITEM on a non-dict", at: opcodeOffset)
                }
                dict.set(key, value)
            case 0x75: // SETITEMS
                let items = try popToMark(at: opcodeOffset)
                guard case let .dict(dict) = try top(at: opcodeOffset) else {
                    throw failure(.malformed, "SETITEMS on a non-dict", at: opcodeOffset)
                }
                try setItems(items, on: dict, at: opcodeOffset)
            case 0x30: _ = try pop(at: opcodeOffset) // POP
            case 0x31: _ = try popToMark(at: opcodeOffset) // POP_MARK
            case 0x32: push(try top(at: opcodeOffset)) // DUP
            case 0x71: memo[Int(try readByte())] = try top(at: opcodeOffset) // BINPUT
            case 0x72: memo[Int(try readUInt(4))] = try top(at: opcodeOffset) // LONG_BINPUT
            case 0x94: memo[memo.count] = try top(at: opcodeOffset) // MEMOIZE
            case 0x68: push(try memoValue(Int(try readByte()), at: opcodeOffset)) // BINGET
            case 0x6A: push(try memoValue(Int(try readUInt(4)), at: opcodeOffset)) // LONG_BINGET
            case 0x63: // GLOBAL: "module\nname\n"
                let module = try readLine(at: opcodeOffset)
                let name = try readLine(at: opcodeOffset)
                push(.global(try whitelisted(module: module, name: name, at: opcodeOffset)))
            case 0x93: // STACK_GLOBAL
                let nameValue = try pop(at: opcodeOffset)
                let moduleValue = try pop(at: opcodeOffset)
                guard case let .string(module) = moduleValue, case let .string(name) = nameValue else {
                    throw failure(.malformed, "STACK_GLOBAL needs two strings", at: opcodeOffset)
                }
                push(.global(try whitelisted(module: module, name: name, at: opcodeOffset)))
            case 0x52: // REDUCE
                let arguments = try pop(at: opcodeOffset)
                let callable = try pop(at: opcodeOffset)
                guard case let .global(global) = callable, case let .tuple(args) = arguments else {
                    throw failure(.malformed, "REDUCE needs a global and an argument tuple, got \(callable.typeName) and \(arguments.typeName)", at: opcodeOffset)
                }
                push(try call(global, args, at: opcodeOffset))
            case 0x62: // BUILD
                let state = try pop(at: opcodeOffset)
                switch try top(at: opcodeOffset) {
                case let .dict(dict):
                    dict.attributes = state // PyTorch's state-dict `_metadata`: kept, not interpreted
                case .tensor:
                    break // parameter state (e.g. attributes of a subclass): irrelevant to the values
                default:
                    throw failure(.unsupported, "BUILD on a \(try top(at: opcodeOffset).typeName)", at: opcodeOffset)
                }
            case 0x51: // BINPERSID
                push(try persistentLoad(try pop(at: opcodeOffset), at: opcodeOffset))
            default:
                throw failure(.unsupported, "pickle opcode \(Self.opcodeName(opcode)) (0x\(String(opcode, radix: 16))) is not supported by this restricted reader", at: opcodeOffset)
            }
        }
    }

    // MARK: Interpreting globals

    private func whitelisted(module: String, name: String, at offset: Int) throws(Failure) -> PickleGlobal {
        guard let global = PickleGlobal(rawValue: "\(module).\(name)") else {
            throw Failure(kind: .forbiddenGlobal, key: "\(module).\(name)",
                          reason: "pickle global \(module).\(name) at byte \(offset) is not on the whitelist of state-dict types; refusing to load it")
        }
        return global
    }

    private func call(_ global: PickleGlobal, _ args: [PickleValue], at offset: Int) throws(Failure) -> PickleValue {
        switch global {
        case .orderedDict:
            let dict = PickleDict()
            if let first = args.first {
                // OrderedDict(iterable of pairs)
                guard case let .list(pairs) = first else {
                    throw failure(.unsupported, "OrderedDict from a \(first.typeName)", at: offset)
                }
                for pair in pairs.items {
                    guard case let .tuple(kv) = pair, kv.count == 2 else { throw failure(.malformed, "OrderedDict item is not a pair", at: offset) }
                    dict.set(kv[0], kv[1])
                }
            }
            return .dict(dict)
        case .size:
            guard args.count <= 1 else { throw failure(.malformed, "torch.Size with \(args.count) arguments", at: offset) }
            return args.first ?? .tuple([])
        case .rebuildTensorV2, .rebuildTensor:
            // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
            guard args.count >= 4, case let .storage(storage) = args[0] else {
                throw failure(.malformed, "\(global.rawValue) needs (storage, offset, size, stride, ...)", at: offset)
            }
            guard case let .int(storageOffset) = args[1], storageOffset >= 0 else {
                throw failure(.malformed, "tensor storage offset is not a non-negative integer", at: offset)
            }
            let shape = try intTuple(args[2], what: "tensor size", at: offset)
            let strides = try intTuple(args[3], what: "tensor stride", at: offset)
            guard shape.count == strides.count else {
                throw failure(.invalidTensor, "tensor size \(shape) and stride \(strides) differ in rank", at: offset)
            }
            return .tensor(PickleTensor(storage: storage, storageOffset: storageOffset, shape: shape, strides: strides))
        case .rebuildParameter, .rebuildParameterWithState:
            // (data, requires_grad, backward_hooks[, state])
            guard let data = args.first, case .tensor = data else {
                throw failure(.malformed, "\(global.rawValue) needs a tensor as its first argument", at: offset)
            }
            return data
        default:
            throw failure(.unsupported, "\(global.rawValue) cannot be called", at: offset)
        }
    }

    private func intTuple(_ value: PickleValue, what: String, at offset: Int) throws(Failure) -> [Int] {
        guard case let .tuple(items) = value else { throw failure(.malformed, "\(what) is a \(value.typeName), not a tuple", at: offset) }
        var result: [Int] = []
        for item in items {
            guard case let .int(number) = item, number >= 0 else {
                throw failure(.invalidTensor, "\(what) has an entry that is not a non-negative integer", at: offset)
            }
            result.append(number)
        }
        return result
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`
    private func persistentLoad(_ pid: PickleValue, at offset: Int) throws(Failure) -> PickleValue {
        guard case let .tuple(fields) = pid, fields.count >= 5, case .string("storage") = fields[0] else {
            throw failure(.unsupported, "persistent id is not a ('storage', ...) tuple", at: offset)
        }
        guard case let .global(type) = fields[1], let dtype = type.storageDType else {
            throw failure(.unsupported, "persistent storage type \(fields[1].typeName) is not a known storage class", at: offset)
        }
        guard case let .string(key) = fields[2] else { throw failure(.malformed, "storage key is not a string", at: offset) }
        guard case let .int(count) = fields[4], count >= 0 else {
            throw failure(.malformed, "storage \(key) element count is not a non-negative integer", at: offset)
        }
        var storage = PickleStorage(key: key, dtype: dtype, rootElementCount: count, elementCount: count)
        if fields.count >= 6, case let .tuple(view) = fields[5] {
            // Legacy storage view: (view_key, offset, size) of the root storage `key`.
            guard view.count == 3, case let .int(viewOffset) = view[1], case let .int(viewSize) = view[2], viewOffset >= 0, viewSize >= 0 else {
                throw failure(.malformed, "storage view metadata of \(key) is malformed", at: offset)
            }
            guard viewOffset <= count, viewSize <= count - viewOffset else {
                throw failure(.invalidTensor, "storage view [\(viewOffset), \(viewOffset + viewSize)) exceeds storage \(key) of \(count) elements", at: offset)
            }
            storage.viewOffset = viewOffset
            storage.elementCount = viewSize
        }
        return .storage(storage)
    }

    // MARK: Stack and stream

    private mutating func push(_ value: PickleValue) { stack.append(value) }

    private mutating func pop(at offset: Int) throws(Failure) -> PickleValue {
        // As in CPython, a MARK starts a fresh stack: nothing below it can be popped until the mark is.
        guard stack.count > (markStack.last ?? 0), let value = stack.popLast() else {
            throw failure(.malformed, "stack underflow", at: offset)
        }
        return value
    }

    private func top(at offset: Int) throws(Failure) -> PickleValue {
        guard stack.count > (markStack.last ?? 0), let value = stack.last else { throw failure(.malformed, "stack underflow", at: offset) }
        return value
    }

    private mutating func popToMark(at offset: Int) throws(Failure) -> [PickleValue] {
        guard let mark = markStack.popLast() else { throw failure(.malformed, "no MARK on the stack", at: offset) }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private func setItems(_ items: [PickleValue], on dict: PickleDict, at offset: Int) throws(Failure) {
        guard items.count % 2 == 0 else { throw failure(.malformed, "odd number of items for a dict", at: offset) }
        for index in stride(from: 0, to: items.count, by: 2) { dict.set(items[index], items[index + 1]) }
    }

    private func memoValue(_ index: Int, at offset: Int) throws(Failure) -> PickleValue {
        guard let value = memo[index] else { throw failure(.malformed, "memo slot \(index) is empty", at: offset) }
        return value
    }

    private mutating func readByte() throws(Failure) -> UInt8 {
        guard position < bytes.count else { throw Failure(kind: .truncated, reason: "pickle stream ends at byte \(position) before STOP") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readBytes(_ count: Int) throws(Failure) -> [UInt8] {
        guard count >= 0, count <= bytes.count - position else {
            throw Failure(kind: .truncated, reason: "pickle stream ends inside a \(count)-byte argument at byte \(position)")
        }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    private mutating func readUInt(_ width: Int) throws(Failure) -> UInt64 {
        try readBytes(width).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    private mutating func readLength8(at offset: Int) throws(Failure) -> Int {
        let length = try readUInt(8)
        guard length <= UInt64(bytes.count) else { throw failure(.truncated, "length \(length) exceeds the stream", at: offset) }
        return Int(length)
    }

    private mutating func readString(length: Int, at offset: Int) throws(Failure) -> String {
        let raw = try readBytes(length)
        guard let text = String(validating: raw, as: UTF8.self) else { throw failure(.malformed, "string is not valid UTF-8", at: offset) }
        return text
    }

    private mutating func readLine(at offset: Int) throws(Failure) -> String {
        guard let end = bytes[position...].firstIndex(of: 0x0A), end - position <= 256 else {
            throw failure(.malformed, "GLOBAL name is not newline-terminated", at: offset)
        }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    private func failure(_ kind: WeightFileError.Kind, _ reason: String, at offset: Int) -> Failure {
        Failure(kind: kind, reason: "\(reason) (pickle byte \(offset))")
    }

    static func integer(fromLittleEndian raw: [UInt8]) -> PickleValue {
        if raw.isEmpty { return .int(0) }
        if raw.count > 8 { return .bigInt(raw) }
        // Sign-extend two's complement.
        var value: UInt64 = raw.last! & 0x80 != 0 ? UInt64.max : 0
        for byte in raw.reversed() { value = value << 8 | UInt64(byte) }
        if raw.count < 8 && raw.last! & 0x80 == 0 { value &= (UInt64(1) << (8 * raw.count)) - 1 }
        return .int(Int(Int64(bitPattern: value)))
    }

    static func opcodeName(_ opcode: UInt8) -> String {
        let names: [UInt8: String] = [
            0x28: "MARK", 0x2E: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT",
            0x4A: "BININT", 0x4B: "BININT1", 0x4C: "LONG", 0x4D: "BININT2", 0x4E: "NONE", 0x50: "PERSID",
            0x51: "BINPERSID", 0x52: "REDUCE", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING",
            0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND", 0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT",
            0x7D: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET", 0x69: "INST", 0x6A: "LONG_BINGET",
            0x6C: "LIST", 0x5D: "EMPTY_LIST", 0x6F: "OBJ", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
            0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
            0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1",
            0x86: "TUPLE2", 0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8A: "LONG1", 0x8B: "LONG4",
            0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8",
            0x8E: "BINBYTES8", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX",
            0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
            0x98: "READONLY_BUFFER",
        ]
        return names[opcode] ?? "unknown"
    }
}
