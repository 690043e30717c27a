import Foundation

/// The container formats kdad reads. Detected from the first bytes of the data, never from a name.
public enum ImageFormat: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case png
    case jpeg
    case tiff

    public var description: String { rawValue.uppercased() }

    /// The signatures that identify each format (TIFF has classic and BigTIFF, each in two byte orders).
    static let signatures: [(ImageFormat, [UInt8])] = [
        (.png, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
        (.jpeg, [0xFF, 0xD8, 0xFF]),
        (.tiff, [0x49, 0x49, 0x2A, 0x00]),
        (.tiff, [0x4D, 0x4D, 0x00, 0x2A]),
        (.tiff, [0x49, 0x49, 0x2B, 0x00]),
        (.tiff, [0x4D, 0x4D, 0x00, 0x2B]),
    ]

    /// What the leading bytes say about the format.
    enum Detection: Equatable {
        case format(ImageFormat)
        /// The data is shorter than a signature it begins to match (or empty).
        case truncatedSignature
        case unknown
    }

    static func detect(_ bytes: UnsafeRawBufferPointer) -> Detection {
        if bytes.isEmpty { return .truncatedSignature }
        var prefixOfSomeSignature = false
        for (format, signature) in signatures {
            if bytes.count >= signature.count {
                if bytes.prefix(signature.count).elementsEqual(signature) { return .format(format) }
            } else if signature.prefix(bytes.count).elementsEqual(bytes) {
                prefixOfSomeSignature = true
            }
        }
        return prefixOfSomeSignature ? .truncatedSignature : .unknown
    }

    /// The format announced by the data's signature, or nil when it is none of PNG, JPEG, TIFF.
    public static func detect(_ data: Data) -> ImageFormat? {
        data.withUnsafeBytes { raw in
            if case .format(let format) = detect(raw) { return format }
            return nil
        }
    }
}

/// A decoded image: planar (channel-major) Float32 samples scaled to [0, 1].
///
/// `pixels[c * width * height + y * width + x]` is channel `c` of the pixel at column `x`, row `y`:
/// all of channel 0 (gray, or red), then channel 1, and so on. Each sample is the file's integer
/// value divided by `2^bitDepth - 1`.
public struct DecodedImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (palettes are expanded to RGB or RGBA).
    public var channels: Int
    /// The bit depth of the samples in the file: 1, 2, 4, 8 or 16. Palette PNGs report 8, the depth
    /// of their palette entries.
    public var bitDepth: Int
    public var format: ImageFormat
    public var pixels: [Float]

    public init(width: Int, height: Int, channels: Int, bitDepth: Int, format: ImageFormat, pixels: [Float]) {
        precondition(pixels.count == width * height * channels, "pixel count must be width*height*channels")
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = bitDepth
        self.format = format
        self.pixels = pixels
    }

    public var pixelCount: Int { width * height }

    /// The sample of `channel` at column `x`, row `y`.
    public subscript(x x: Int, y y: Int, channel channel: Int) -> Float {
        pixels[channel * width * height + y * width + x]
    }

    /// All samples of one channel, row by row.
    public func plane(_ channel: Int) -> ArraySlice<Float> {
        let size = width * height
        return pixels[channel * size ..< (channel + 1) * size]
    }
}

/// What a header says about an image, read without decoding its pixels.
public struct ImageHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Channels a decode will produce (palettes and transparency keys already expanded).
    public var channels: Int
    public var bitDepth: Int
    public var format: ImageFormat

    public init(width: Int, height: Int, channels: Int, bitDepth: Int, format: ImageFormat) {
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = bitDepth
        self.format = format
    }

    public var pixelCount: Int { width * height }
}

/// Limits applied before any pixel memory is allocated.
public struct DecodeOptions: Sendable, Equatable {
    /// Largest width*height accepted; a header declaring more fails with `.tooLarge` (a guard
    /// against decompression bombs: a few hundred bytes can declare gigapixels).
    public var maxPixels: Int

    public init(maxPixels: Int = 100_000_000) {
        self.maxPixels = maxPixels
    }
}

/// Why an image could not be decoded, naming the file.
public struct ImageDecodeError: Error, CustomStringConvertible, Equatable {
    public enum Reason: Sendable, Equatable {
        /// The data ends before the image does (including an empty file).
        case truncated(String)
        /// The data starts with none of the PNG, JPEG or TIFF signatures.
        case badMagic
        /// A valid file of a kind kdad does not decode (CMYK JPEG, 12-bit JPEG, float TIFF, ...).
        case unsupportedVariant(String)
        /// The header declares more pixels than `DecodeOptions.maxPixels`; nothing was decoded.
        case tooLarge(width: Int, height: Int, limit: Int)
        /// The data is damaged (bad checksum, invalid compressed stream, inconsistent header).
        case corrupt(String)
        /// The file could not be read at all (missing, permissions, I/O error, out of memory).
        case unreadable(String)

        /// The reason without its details, for comparisons and statistics.
        public var kind: Kind {
            switch self {
            case .truncated: return .truncated
            case .badMagic: return .badMagic
            case .unsupportedVariant: return .unsupportedVariant
            case .tooLarge: return .tooLarge
            case .corrupt: return .corrupt
            case .unreadable: return .unreadable
            }
        }
    }

    public enum Kind: String, Sendable, CaseIterable {
        case truncated, badMagic, unsupportedVariant, tooLarge, corrupt, unreadable
    }

    /// The file path, or the name the caller gave for in-memory data.
    public var path: String
    public var reason: Reason
    /// The format the signature announced, when it was recognised.
    public var format: ImageFormat?

    public init(path: String, reason: Reason, format: ImageFormat? = nil) {
        self.path = path
        self.reason = reason
        self.format = format
    }

    public var description: String {
        let what = format.map { "\($0) " } ?? ""
        switch reason {
        case .truncated(let detail):
            return "\(path): truncated \(what)data: \(detail)"
        case .badMagic:
            return "\(path): not a PNG, JPEG or TIFF file (unrecognised signature)"
        case .unsupportedVariant(let detail):
            return "\(path): unsupported \(what)variant: \(detail)"
        case .tooLarge(let width, let height, let limit):
            return "\(path): \(what)image \(width)x\(height) exceeds the limit of \(limit) pixels"
        case .corrupt(let detail):
            return "\(path): corrupt \(what)data: \(detail)"
        case .unreadable(let detail):
            return "\(path): unreadable: \(detail)"
        }
    }
}

/// Why an image could not be encoded or written.
public struct ImageEncodeError: Error, CustomStringConvertible, Equatable {
    /// The output file, or a label such as "PNG encoder" for in-memory encodes.
    public var destination: String
    public var reason: String

    public init(destination: String, reason: String) {
        self.destination = destination
        self.reason = reason
    }

    public var description: String { "\(destination): \(reason)" }
}
