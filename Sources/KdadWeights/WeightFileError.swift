import Foundation

/// Why a weight file could not be read or written. Names the file and, when known, the tensor or key.
public struct WeightFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, read, written or renamed.
        case io
        /// The file ends before a structure it declares.
        case truncated
        /// The header or container structure is malformed (bad JSON, bad zip directory, bad pickle stream).
        case malformed
        /// One tensor's description is inconsistent (shape × dtype vs bytes, offsets, strides).
        case invalidTensor
        /// A valid construct this reader deliberately does not handle (an opcode, a compression method, a dtype).
        case unsupported
        /// A pickle asked for a global outside the whitelist: never executed.
        case forbiddenGlobal
        /// The file is not of any known weight format.
        case unknownFormat
        /// A required file is missing from the weight cache.
        case missing
    }

    public var kind: Kind
    /// Path of the file concerned, when there is one.
    public var file: String?
    /// Tensor name, header key, archive entry or opcode concerned, when there is one.
    public var key: String?
    public var reason: String

    public init(kind: Kind, file: String? = nil, key: String? = nil, reason: String) {
        self.kind = kind
        self.file = file
        self.key = key
        self.reason = reason
    }

    public var description: String {
        var text = ""
        if let file { text += "\(file): " }
        if let key { text += "\(key): " }
        return text + reason
    }

    /// The same error attributed to `file` if it names none yet.
    func inFile(_ path: String) -> WeightFileError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }
}
