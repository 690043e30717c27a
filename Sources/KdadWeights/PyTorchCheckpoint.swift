import Foundation

/// Reads PyTorch `torch.save` checkpoints without Python: the legacy stream format (torch < 1.6, or
/// `_use_new_zipfile_serialization=False`) and the zip format (torch >= 1.6). Pickles are interpreted by
/// `RestrictedUnpickler`, which executes nothing and accepts only the globals a state dict needs.
public enum PyTorchCheckpoint {
    public enum Format: String, Sendable {
        case legacy = "pytorch-legacy"
        case zip = "pytorch-zip"
    }

    /// Everything read from a checkpoint.
    public struct Contents: Sendable {
        public var format: Format
        /// Tensors in state-dict order. Nested dicts are flattened with dotted names (`"a.b"`), lists with indices.
        public var tensors: [WeightTensor]
        /// Leaves that are not tensors (e.g. `"epoch"`, a config string), as `name → Python-like text`.
        public var otherEntries: [(name: String, value: String)]
    }

    /// The tensors of the checkpoint at `url`, named as in its state dict, in order.
    public static func read(contentsOf url: URL) throws -> [WeightTensor] {
        try load(contentsOf: url).tensors
    }

    public static func load(contentsOf url: URL) throws -> Contents {
        let data = try readWholeFile(url)
        do {
            return try decode(data)
        } catch let error as WeightFileError {
            throw error.inFile(url.path)
        }
    }

    /// Decodes a checkpoint held in memory, telling the two formats apart by their first bytes.
    public static func decode(_ data: Data) throws -> Contents {
        switch WeightFiles.detectFormat(data) {
        case .pytorchZip: return try decodeZip(data)
        case .pytorchLegacy: return try decodeLegacy(data)
        default:
            throw WeightFileError(kind: .unknownFormat, reason: "not a PyTorch checkpoint (neither a zip archive nor a legacy pickle stream)")
        }
    }

    // MARK: Legacy format

    /// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as pickle's LONG1 little-endian bytes.
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Layout: pickle(magic), pickle(protocol version 1001), pickle(sys info), pickle(object),
    /// pickle(list of storage keys), then for each key in that order: int64 element count + raw bytes.
    static func decodeLegacy(_ data: Data) throws -> Contents {
        let bytes = [UInt8](data)
        var unpickler = RestrictedUnpickler(bytes: bytes)
        guard case let .bigInt(magic) = try unpickle(&unpickler, "magic number"), magic == legacyMagic else {
            throw WeightFileError(kind: .unknownFormat, reason: "legacy checkpoint magic number is wrong")
        }
        guard case .int(1001) = try unpickle(&unpickler, "protocol version") else {
            throw WeightFileError(kind: .unsupported, reason: "legacy checkpoint protocol version is not 1001")
        }
        guard case let .dict(systemInfo) = try unpickle(&unpickler, "system info") else {
            throw WeightFileError(kind: .malformed, reason: "legacy checkpoint system info is not a dict")
        }
        if let littleEndian = systemInfo["little_endian"], case .bool(false) = littleEndian {
            throw WeightFileError(kind: .unsupported, reason: "checkpoint was written on a big-endian machine")
        }
        let root = try unpickle(&unpickler, "state dict")
        guard case let .list(keyList) = try unpickle(&unpickler, "storage key list") else {
            throw WeightFileError(kind: .malformed, reason: "legacy checkpoint storage key list is not a list")
        }
        let leaves = try collectLeaves(root)
        let dtypeByKey = try storageTypes(leaves.tensors)

        var cursor = unpickler.position
        var storageBytes: [String: Data] = [:]
        for item in keyList.items {
            guard case let .string(key) = item else {
                throw WeightFileError(kind: .malformed, reason: "legacy checkpoint storage key is a \(item.typeName), not a string")
            }
            guard let (dtype, declaredCount) = dtypeByKey[key] else {
                throw WeightFileError(kind: .malformed, key: key, reason: "storage is listed but no tensor uses it, so its element type is unknown")
            }
            guard cursor <= bytes.count - 8 else {
                throw WeightFileError(kind: .truncated, key: "storage \(key)", reason: "file ends before the storage's element count (byte \(cursor))")
            }
            let count = data.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: cursor, as: Int64.self)) }
            cursor += 8
            guard count >= 0, count == declaredCount else {
                throw WeightFileError(kind: .malformed, key: "storage \(key)", reason: "stored element count \(count) differs from the pickled \(declaredCount)")
            }
            let (length, overflow) = Int(count).multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, length <= bytes.count - cursor else {
                throw WeightFileError(kind: .truncated, key: "storage \(key)",
                                      reason: "\(length) bytes of \(dtype.rawValue) data run past the end of the \(bytes.count)-byte file")
            }
            storageBytes[key] = data.subdata(in: (data.startIndex + cursor)..<(data.startIndex + cursor + length))
            cursor += length
        }
        guard cursor == bytes.count else {
            throw WeightFileError(kind: .malformed, reason: "\(bytes.count - cursor) unexpected bytes after the last storage")
        }
        let tensors = try leaves.tensors.map { name, tensor in
            try materialize(name: name, tensor, storageBytes: storageBytes[tensor.storage.key])
        }
        return Contents(format: .legacy, tensors: tensors, otherEntries: leaves.others)
    }

    // MARK: Zip format

    /// Layout: `<prefix>/data.pkl` (the object, storages as persistent ids), `<prefix>/data/<key>` (raw
    /// storage bytes), `<prefix>/byteorder` ("little"/"big", absent in old files = little), `<prefix>/version`.
    static func decodeZip(_ data: Data) throws -> Contents {
        let archive = try ZipArchive(data)
        let pickles = archive.entries.filter { entry in
            entry.name.hasSuffix("/data.pkl") && entry.name.dropLast("/data.pkl".count).firstIndex(of: "/") == nil
        }
        guard let pickleEntry = pickles.first else {
            throw WeightFileError(kind: .unknownFormat, reason: "zip archive has no <name>/data.pkl: not a PyTorch checkpoint")
        }
        guard pickles.count == 1 else {
            throw WeightFileError(kind: .malformed, reason: "zip archive has \(pickles.count) data.pkl entries")
        }
        let prefix = String(pickleEntry.name.dropLast("data.pkl".count))
        if let byteOrder = archive.entry(named: prefix + "byteorder") {
            let text = String(decoding: try archive.contents(of: byteOrder), as: UTF8.self)
            guard text == "little" else {
                throw WeightFileError(kind: .unsupported, key: byteOrder.name, reason: "byte order \"\(text)\": only little-endian checkpoints are supported")
            }
        }
        var unpickler = RestrictedUnpickler(bytes: [UInt8](try archive.contents(of: pickleEntry)))
        let root = try unpickle(&unpickler, pickleEntry.name)
        let leaves = try collectLeaves(root)
        let dtypeByKey = try storageTypes(leaves.tensors)

        var storageBytes: [String: Data] = [:]
        for (key, (dtype, count)) in dtypeByKey {
            let name = prefix + "data/" + key
            guard let entry = archive.entry(named: name) else {
                throw WeightFileError(kind: .malformed, key: name, reason: "storage \(key) is referenced by the pickle but missing from the archive")
            }
            let bytes = try archive.contents(of: entry)
            let (expectedLength, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, bytes.count == expectedLength else {
                throw WeightFileError(kind: .malformed, key: name,
                                      reason: "storage holds \(bytes.count) bytes but the pickle declares \(count) × \(dtype.rawValue)")
            }
            storageBytes[key] = bytes
        }
        let tensors = try leaves.tensors.map { name, tensor in
            try materialize(name: name, tensor, storageBytes: storageBytes[tensor.storage.key])
        }
        return Contents(format: .zip, tensors: tensors, otherEntries: leaves.others)
    }

    // MARK: Shared steps

    private static func unpickle(_ unpickler: inout RestrictedUnpickler, _ what: String) throws -> PickleValue {
        do {
            return try unpickler.load()
        } catch {
            throw WeightFileError(kind: error.kind, key: error.key ?? what, reason: error.reason)
        }
    }

    /// Each storage key's element type and root element count, checked consistent across the tensors using it.
    private static func storageTypes(_ tensors: [(name: String, tensor: PickleTensor)]) throws -> [String: (WeightDType, Int)] {
        var result: [String: (WeightDType, Int)] = [:]
        for (name, tensor) in tensors {
            let storage = tensor.storage
            if let (dtype, count) = result[storage.key] {
                guard dtype == storage.dtype, count == storage.rootElementCount else {
                    throw WeightFileError(kind: .malformed, key: name, reason: "storage \(storage.key) is declared with two different types or sizes")
                }
            } else {
                result[storage.key] = (storage.dtype, storage.rootElementCount)
            }
        }
        return result
    }

    /// Keys under which training scripts commonly nest the state dict.
    static let wrapperKeys = ["state_dict", "model_state_dict", "model", "module", "net", "network", "params", "weights"]

    /// Finds the tensors in a checkpoint's object. A dict with tensors at its top level is the state dict;
    /// otherwise the first well-known wrapper key (`state_dict`, `model`, …) holding tensors is used;
    /// otherwise every tensor anywhere in the object is taken. Nested containers flatten to dotted names.
    static func collectLeaves(_ root: PickleValue) throws -> (tensors: [(name: String, tensor: PickleTensor)], others: [(name: String, value: String)]) {
        var chosen = root
        var wrapper: (dict: PickleDict, key: String)?
        if case let .dict(dict) = root, !dict.entries.contains(where: { if case .tensor = $0.value { return true } else { return false } }) {
            for key in wrapperKeys {
                if let value = dict[key], containsTensor(value) {
                    chosen = value
                    wrapper = (dict, key)
                    break
                }
            }
        }
        var tensors: [(name: String, tensor: PickleTensor)] = []
        var others: [(name: String, value: String)] = []
        var seen = Set<String>()
        func visit(_ value: PickleValue, _ name: String, depth: Int) throws {
            guard depth < 32 else { throw WeightFileError(kind: .unsupported, key: name, reason: "containers nested deeper than 32") }
            func child(_ key: String) -> String { name.isEmpty ? key : name + "." + key }
            switch value {
            case let .tensor(tensor):
                let tensorName = name.isEmpty ? "tensor" : name
                guard seen.insert(tensorName).inserted else {
                    throw WeightFileError(kind: .malformed, key: tensorName, reason: "two tensors flatten to this name")
                }
                tensors.append((tensorName, tensor))
            case let .dict(dict):
                for (key, item) in dict.entries { try visit(item, child(keyText(key)), depth: depth + 1) }
            case let .list(list):
                for (index, item) in list.items.enumerated() { try visit(item, child(String(index)), depth: depth + 1) }
            case let .tuple(items):
                if items.contains(where: containsTensor) {
                    for (index, item) in items.enumerated() { try visit(item, child(String(index)), depth: depth + 1) }
                } else {
                    others.append((name, describe(value)))
                }
            default:
                others.append((name, describe(value)))
            }
        }
        try visit(chosen, "", depth: 0)
        if let wrapper {
            // The wrapper's own plain leaves (epoch, config, ...) are worth reporting; entries beside the
            // state dict that hold tensors (optimizer state, EMA copies) are not weights and are left out.
            for (key, value) in wrapper.dict.entries where !containsTensor(value) {
                if case .string(wrapper.key) = key { continue }
                try visit(value, keyText(key), depth: 1)
            }
        }
        guard !tensors.isEmpty else {
            throw WeightFileError(kind: .malformed, reason: "checkpoint holds no tensors (top-level object is a \(root.typeName))")
        }
        return (tensors, others)
    }

    private static func containsTensor(_ value: PickleValue) -> Bool {
        switch value {
        case .tensor: return true
        case let .dict(dict): return dict.entries.contains { containsTensor($0.value) }
        case let .list(list): return list.items.contains(where: containsTensor)
        case let .tuple(items): return items.contains(where: containsTensor)
        default: return false
        }
    }

    private static func keyText(_ key: PickleValue) -> String {
        switch key {
        case let .string(text): return text
        case let .int(number): return String(number)
        default: return describe(key)
        }
    }

    /// A short Python-like rendering of a non-tensor value.
    static func describe(_ value: PickleValue) -> String {
        switch value {
        case .none: return "None"
        case let .bool(flag): return flag ? "True" : "False"
        case let .int(number): return String(number)
        case let .bigInt(raw): return "<\(raw.count)-byte int>"
        case let .float(number): return String(number)
        case let .string(text): return "'" + (text.count > 80 ? String(text.prefix(77)) + "..." : text) + "'"
        case let .bytes(raw): return "<\(raw.count) bytes>"
        case let .tuple(items): return "(" + items.map(describe).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case let .list(list): return "[" + list.items.prefix(8).map(describe).joined(separator: ", ") + (list.items.count > 8 ? ", ...]" : "]")
        case let .dict(dict): return "{\(dict.entries.count) entries}"
        case let .global(global): return global.qualifiedName
        case let .storage(storage): return "<storage \(storage.key)>"
        case .tensor: return "<tensor>"
        }
    }

    /// Copies a tensor's elements out of its storage into contiguous row-major bytes, following its
    /// storage offset and strides (a transposed or sliced view is gathered element by element).
    static func materialize(name: String, _ tensor: PickleTensor, storageBytes: Data?) throws -> WeightTensor {
        guard let storageBytes else {
            throw WeightFileError(kind: .malformed, key: name, reason: "storage \(tensor.storage.key) has no data")
        }
        let dtype = tensor.storage.dtype
        let size = dtype.byteSize
        guard let byteCount = WeightTensor.checkedByteCount(shape: tensor.shape, dtype: dtype) else {
            throw WeightFileError(kind: .invalidTensor, key: name, reason: "shape \(tensor.shape) overflows")
        }
        let elementCount = byteCount / size
        if elementCount == 0 {
            return WeightTensor(name: name, dtype: dtype, shape: tensor.shape, data: Data())
        }
        // Highest element index the view touches, checked against the (view of the) storage.
        var last = tensor.storageOffset
        for (dim, stride) in zip(tensor.shape, tensor.strides) {
            let (step, overflow1) = (dim - 1).multipliedReportingOverflow(by: stride)
            let (sum, overflow2) = last.addingReportingOverflow(step)
            guard !overflow1, !overflow2 else { throw WeightFileError(kind: .invalidTensor, key: name, reason: "strides \(tensor.strides) overflow") }
            last = sum
        }
        guard last < tensor.storage.elementCount else {
            throw WeightFileError(kind: .invalidTensor, key: name,
                                  reason: "view (offset \(tensor.storageOffset), shape \(tensor.shape), stride \(tensor.strides)) reaches element \(last) of a \(tensor.storage.elementCount)-element storage")
        }
        let base = (tensor.storage.viewOffset + tensor.storageOffset) * size
        let start = storageBytes.startIndex

        // Contiguous row-major (dimensions of extent 1 may carry any stride): one slice.
        var expected = 1
        var contiguous = true
        for (dim, stride) in zip(tensor.shape, tensor.strides).reversed() where dim != 1 {
            if stride != expected { contiguous = false; break }
            expected *= dim
        }
        if contiguous {
            return WeightTensor(name: name, dtype: dtype, shape: tensor.shape,
                                data: storageBytes.subdata(in: (start + base)..<(start + base + byteCount)))
        }

        var out = Data(count: byteCount)
        out.withUnsafeMutableBytes { destination in
            storageBytes.withUnsafeBytes { source in
                var index = [Int](repeating: 0, count: tensor.shape.count)
                var sourceOffset = base
                for element in 0..<elementCount {
                    (destination.baseAddress! + element * size).copyMemory(from: source.baseAddress! + sourceOffset, byteCount: size)
                    // Odometer increment of the multi-index, keeping the source offset in step.
                    var axis = tensor.shape.count - 1
                    while axis >= 0 {
                        index[axis] += 1
                        sourceOffset += tensor.strides[axis] * size
                        if index[axis] < tensor.shape[axis] { break }
                        sourceOffset -= tensor.strides[axis] * size * index[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return WeightTensor(name: name, dtype: dtype, shape: tensor.shape, data: out)
    }
}
