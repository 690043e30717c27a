import Foundation

/// Weight file formats kdad reads.
public enum WeightFileFormat: String, Sendable, CaseIterable {
    case safetensors
    case pytorchLegacy = "pytorch-legacy"
    case pytorchZip = "pytorch-zip"
}

/// A weight file's tensors, whatever format it came in.
public struct LoadedWeights: Sendable {
    public var format: WeightFileFormat
    /// Tensors in file order (safetensors: by offset; PyTorch: state-dict order).
    public var tensors: [WeightTensor]
    /// safetensors `__metadata__`; for PyTorch checkpoints, the non-tensor leaves (e.g. `epoch`) rendered as text.
    public var metadata: [String: String]

    public subscript(name: String) -> WeightTensor? { tensors.first { $0.name == name } }

    /// Total number of elements over all tensors.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.elementCount } }
}

public enum WeightFiles {
    /// Identifies a format from a file's first bytes, or nil.
    public static func detectFormat(_ data: Data) -> WeightFileFormat? {
        let head = [UInt8](data.prefix(16))
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return .pytorchZip }
        // Legacy: PROTO 2, LONG1 of 10 bytes, then torch's magic number.
        if head.starts(with: [0x80, 0x02, 0x8A, 0x0A] + PyTorchCheckpoint.legacyMagic) { return .pytorchLegacy }
        if head.count >= 9, head[8] == UInt8(ascii: "{") {
            let length = head.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if length <= UInt64(data.count - 8) { return .safetensors }
        }
        return nil
    }

    /// Reads safetensors, legacy `.pth` or zip `.pth`, detected from the magic bytes (not the extension).
    public static func read(contentsOf url: URL) throws -> LoadedWeights {
        let data = try readWholeFile(url)
        do {
            switch detectFormat(data) {
            case .safetensors:
                let file = try SafeTensors.decode(data)
                return LoadedWeights(format: .safetensors, tensors: file.tensors, metadata: file.metadata)
            case .pytorchLegacy, .pytorchZip:
                let contents = try PyTorchCheckpoint.decode(data)
                var metadata: [String: String] = [:]
                for entry in contents.otherEntries { metadata[entry.name] = entry.value }
                return LoadedWeights(format: contents.format == .legacy ? .pytorchLegacy : .pytorchZip,
                                     tensors: contents.tensors, metadata: metadata)
            case nil:
                throw WeightFileError(kind: .unknownFormat, reason: "not a safetensors file or a PyTorch checkpoint (unrecognised first bytes)")
            }
        } catch let error as WeightFileError {
            throw error.inFile(url.path)
        }
    }
}
