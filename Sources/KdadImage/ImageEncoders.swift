import CImageCodecs
import Foundation

/// PNG colour types (values as in the PNG specification).
public enum PNGColorType: Int32, Sendable, CaseIterable {
    case gray = 0
    case rgb = 2
    case palette = 3
    case grayAlpha = 4
    case rgba = 6

    /// Samples per pixel in the encoder's input (a palette image takes one index per pixel).
    public var samplesPerPixel: Int {
        switch self {
        case .gray, .palette: return 1
        case .grayAlpha: return 2
        case .rgb: return 3
        case .rgba: return 4
        }
    }
}

/// Writes PNG. The common cases (masks, heatmaps) have one-line entry points; `encode(samples8:…)`
/// and `encode(samples16:…)` expose every colour type and depth (tests use them for fixtures).
public enum PNGEncoder {
    /// 8-bit gray from row-major bytes.
    public static func encodeGray8(_ pixels: [UInt8], width: Int, height: Int) throws(ImageEncodeError) -> Data {
        try encode(samples8: pixels, width: width, height: height, colorType: .gray)
    }

    /// 8-bit RGB from row-major interleaved bytes (R, G, B, R, ...).
    public static func encodeRGB8(_ pixels: [UInt8], width: Int, height: Int) throws(ImageEncodeError) -> Data {
        try encode(samples8: pixels, width: width, height: height, colorType: .rgb)
    }

    /// 16-bit gray from row-major values.
    public static func encodeGray16(_ pixels: [UInt16], width: Int, height: Int) throws(ImageEncodeError) -> Data {
        try encode(samples16: pixels, width: width, height: height, colorType: .gray)
    }

    /// Encodes planar [0, 1] floats (the `DecodedImage` layout) with 1 (gray) or 3 (RGB) channels at
    /// 8 or 16 bits. Values are clamped to [0, 1] and rounded to the nearest level; NaN becomes 0.
    public static func encode(planar pixels: [Float], width: Int, height: Int, channels: Int, bitDepth: Int) throws(ImageEncodeError) -> Data {
        let colorType: PNGColorType
        switch channels {
        case 1: colorType = .gray
        case 3: colorType = .rgb
        default: throw ImageEncodeError(destination: "PNG encoder", reason: "planar encode takes 1 or 3 channels, not \(channels)")
        }
        try checkCount(pixels.count, width: width, height: height, samplesPerPixel: channels, label: "PNG encoder")
        switch bitDepth {
        case 8:
            return try encode(samples8: SampleConversion.interleave8(pixels, width: width, height: height, channels: channels),
                              width: width, height: height, colorType: colorType)
        case 16:
            return try encode(samples16: SampleConversion.interleave16(pixels, width: width, height: height, channels: channels),
                              width: width, height: height, colorType: colorType)
        default:
            throw ImageEncodeError(destination: "PNG encoder", reason: "planar encode writes 8 or 16 bits, not \(bitDepth)")
        }
    }

    /// Encodes a `DecodedImage`-shaped value (1 or 3 channels) at 8 or 16 bits.
    public static func encode(_ image: DecodedImage, bitDepth: Int) throws(ImageEncodeError) -> Data {
        try encode(planar: image.pixels, width: image.width, height: image.height, channels: image.channels, bitDepth: bitDepth)
    }

    /// General 1/2/4/8-bit encoder. Samples are interleaved, one byte per sample even below 8 bits
    /// (the encoder packs them); for `.palette` they are indices into `palette` (RGB triples,
    /// 1...256 entries) with optional per-entry alpha in `transparency`.
    public static func encode(
        samples8 samples: [UInt8], width: Int, height: Int, colorType: PNGColorType, bitDepth: Int = 8,
        palette: [UInt8] = [], transparency: [UInt8] = [], interlaced: Bool = false, compressionLevel: Int = 6
    ) throws(ImageEncodeError) -> Data {
        try checkCount(samples.count, width: width, height: height, samplesPerPixel: colorType.samplesPerPixel, label: "PNG encoder")
        guard palette.count % 3 == 0, palette.count <= 768 else {
            throw ImageEncodeError(destination: "PNG encoder", reason: "palette must hold 1...256 RGB triples, got \(palette.count) bytes")
        }
        if bitDepth < 8 || colorType == .palette {
            let limit = colorType == .palette ? palette.count / 3 : 1 << bitDepth
            if let bad = samples.first(where: { Int($0) >= limit }) {
                throw ImageEncodeError(destination: "PNG encoder", reason: "sample \(bad) out of range for \(bitDepth)-bit \(colorType)")
            }
        }
        return try runEncoder(label: "PNG encoder") { out, message, capacity in
            samples.withUnsafeBytes { raw in
                palette.withUnsafeBufferPointer { paletteBuffer in
                    transparency.withUnsafeBufferPointer { alphaBuffer in
                        kdad_png_encode(raw.baseAddress, UInt32(width), UInt32(height), colorType.rawValue, Int32(bitDepth),
                                        paletteBuffer.baseAddress, Int32(palette.count / 3),
                                        alphaBuffer.baseAddress, Int32(transparency.count),
                                        interlaced ? 1 : 0, Int32(compressionLevel), out, message, capacity)
                    }
                }
            }
        }
    }

    /// General 16-bit encoder (gray, gray+alpha, RGB, RGBA), interleaved samples.
    public static func encode(
        samples16 samples: [UInt16], width: Int, height: Int, colorType: PNGColorType, interlaced: Bool = false,
        compressionLevel: Int = 6
    ) throws(ImageEncodeError) -> Data {
        guard colorType != .palette else {
            throw ImageEncodeError(destination: "PNG encoder", reason: "palette images are at most 8-bit")
        }
        try checkCount(samples.count, width: width, height: height, samplesPerPixel: colorType.samplesPerPixel, label: "PNG encoder")
        return try runEncoder(label: "PNG encoder") { out, message, capacity in
            samples.withUnsafeBytes { raw in
                kdad_png_encode(raw.baseAddress, UInt32(width), UInt32(height), colorType.rawValue, 16,
                                nil, 0, nil, 0, interlaced ? 1 : 0, Int32(compressionLevel), out, message, capacity)
            }
        }
    }
}

/// TIFF compression choices.
public enum TIFFCompression: Sendable, CaseIterable {
    case none, lzw, deflate

    var code: Int32 {
        switch self {
        case .none: return Int32(KDAD_TIFF_COMPRESSION_NONE)
        case .lzw: return Int32(KDAD_TIFF_COMPRESSION_LZW)
        case .deflate: return Int32(KDAD_TIFF_COMPRESSION_DEFLATE)
        }
    }
}

/// How TIFF pixel data is laid out in the file.
public enum TIFFLayout: Sendable, Equatable {
    /// Horizontal strips of this many rows (0: libtiff's default of about 8 KiB per strip).
    case strips(rowsPerStrip: Int)
    /// Tiles of this size (each a multiple of 16, as the TIFF specification requires).
    case tiles(width: Int, height: Int)
}

public struct TIFFEncodeOptions: Sendable, Equatable {
    public var compression: TIFFCompression
    public var layout: TIFFLayout
    /// One plane per channel (PlanarConfiguration 2) instead of interleaved samples.
    public var separatePlanes: Bool
    /// Horizontal differencing before LZW/deflate (better compression of smooth images).
    public var predictor: Bool

    public init(compression: TIFFCompression = .deflate, layout: TIFFLayout = .strips(rowsPerStrip: 0),
                separatePlanes: Bool = false, predictor: Bool = false) {
        self.compression = compression
        self.layout = layout
        self.separatePlanes = separatePlanes
        self.predictor = predictor
    }
}

/// Writes single-image TIFF: 8 or 16-bit, gray / gray+alpha / RGB / RGBA.
public enum TIFFEncoder {
    /// Interleaved 8-bit samples, `channels` per pixel (1...4).
    public static func encode(samples8 samples: [UInt8], width: Int, height: Int, channels: Int,
                              options: TIFFEncodeOptions = TIFFEncodeOptions()) throws(ImageEncodeError) -> Data {
        try checkCount(samples.count, width: width, height: height, samplesPerPixel: channels, label: "TIFF encoder")
        return try samples.withUnsafeBytes { raw in
            Result { () throws(ImageEncodeError) in
                try encode(raw, width: width, height: height, channels: channels, bitDepth: 8, options: options)
            }
        }.get()
    }

    /// Interleaved 16-bit samples, `channels` per pixel (1...4).
    public static func encode(samples16 samples: [UInt16], width: Int, height: Int, channels: Int,
                              options: TIFFEncodeOptions = TIFFEncodeOptions()) throws(ImageEncodeError) -> Data {
        try checkCount(samples.count, width: width, height: height, samplesPerPixel: channels, label: "TIFF encoder")
        return try samples.withUnsafeBytes { raw in
            Result { () throws(ImageEncodeError) in
                try encode(raw, width: width, height: height, channels: channels, bitDepth: 16, options: options)
            }
        }.get()
    }

    /// Planar [0, 1] floats (the `DecodedImage` layout), clamped and rounded to 8 or 16 bits.
    public static func encode(planar pixels: [Float], width: Int, height: Int, channels: Int, bitDepth: Int,
                              options: TIFFEncodeOptions = TIFFEncodeOptions()) throws(ImageEncodeError) -> Data {
        try checkCount(pixels.count, width: width, height: height, samplesPerPixel: channels, label: "TIFF encoder")
        switch bitDepth {
        case 8:
            return try encode(samples8: SampleConversion.interleave8(pixels, width: width, height: height, channels: channels),
                              width: width, height: height, channels: channels, options: options)
        case 16:
            return try encode(samples16: SampleConversion.interleave16(pixels, width: width, height: height, channels: channels),
                              width: width, height: height, channels: channels, options: options)
        default:
            throw ImageEncodeError(destination: "TIFF encoder", reason: "TIFF encode writes 8 or 16 bits, not \(bitDepth)")
        }
    }

    static func encode(_ raw: UnsafeRawBufferPointer, width: Int, height: Int, channels: Int, bitDepth: Int,
                       options: TIFFEncodeOptions) throws(ImageEncodeError) -> Data {
        guard (1...4).contains(channels) else {
            throw ImageEncodeError(destination: "TIFF encoder", reason: "channels must be 1...4, not \(channels)")
        }
        var rowsPerStrip = 0, tileWidth = 0, tileHeight = 0
        switch options.layout {
        case .strips(let rows): rowsPerStrip = rows
        case .tiles(let width, let height): (tileWidth, tileHeight) = (width, height)
        }
        guard rowsPerStrip >= 0, rowsPerStrip <= Int(UInt32.max), tileWidth >= 0, tileHeight >= 0,
              tileWidth % 16 == 0, tileHeight % 16 == 0, tileWidth <= 65536, tileHeight <= 65536 else {
            throw ImageEncodeError(destination: "TIFF encoder", reason: "invalid layout \(options.layout) (tiles are multiples of 16)")
        }
        return try runEncoder(label: "TIFF encoder") { out, message, capacity in
            kdad_tiff_encode(raw.baseAddress, UInt32(width), UInt32(height), Int32(channels), Int32(bitDepth),
                             options.compression.code, UInt32(rowsPerStrip), UInt32(tileWidth), UInt32(tileHeight),
                             options.separatePlanes ? 1 : 0, options.predictor ? 1 : 0, out, message, capacity)
        }
    }
}

/// Writes baseline or progressive JPEG (8-bit gray or RGB; 4 channels write CMYK, which kdad's
/// decoder rejects — useful only to test that).
public enum JPEGEncoder {
    public static func encode(samples8 samples: [UInt8], width: Int, height: Int, channels: Int, quality: Int = 90,
                              progressive: Bool = false) throws(ImageEncodeError) -> Data {
        try checkCount(samples.count, width: width, height: height, samplesPerPixel: channels, label: "JPEG encoder")
        return try runEncoder(label: "JPEG encoder") { out, message, capacity in
            samples.withUnsafeBufferPointer { buffer in
                kdad_jpeg_encode(buffer.baseAddress, UInt32(width), UInt32(height), Int32(channels), Int32(quality),
                                 progressive ? 1 : 0, out, message, capacity)
            }
        }
    }
}

// MARK: - Shared helpers

func checkCount(_ count: Int, width: Int, height: Int, samplesPerPixel: Int, label: String) throws(ImageEncodeError) {
    guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
        throw ImageEncodeError(destination: label, reason: "invalid size \(width)x\(height)")
    }
    let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
    guard !overflow, pixels.multipliedReportingOverflow(by: samplesPerPixel) == (count, false) else {
        throw ImageEncodeError(destination: label,
                               reason: "\(count) samples given for \(width)x\(height) with \(samplesPerPixel) per pixel")
    }
}

/// Calls a C encoder and turns its buffer into Data (or its status into an error).
func runEncoder(label: String, _ body: (UnsafeMutablePointer<kdad_buffer>, UnsafeMutablePointer<CChar>, Int) -> kdad_status) throws(ImageEncodeError) -> Data {
    var buffer = kdad_buffer()
    var message = [CChar](repeating: 0, count: Int(KDAD_MESSAGE_CAPACITY))
    let status = message.withUnsafeMutableBufferPointer { body(&buffer, $0.baseAddress!, $0.count) }
    defer { kdad_buffer_free(&buffer) }
    guard status == KDAD_STATUS_OK else {
        let text = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw ImageEncodeError(destination: label, reason: text.isEmpty ? "encoder failed (status \(status.rawValue))" : text)
    }
    guard let bytes = buffer.bytes else { return Data() }
    return Data(bytes: bytes, count: buffer.size)
}

/// Float ↔ integer sample conversion for the encoders.
enum SampleConversion {
    /// Planar floats → interleaved 8-bit, clamping to [0, 1] and rounding (NaN → 0).
    static func interleave8(_ planar: [Float], width: Int, height: Int, channels: Int) -> [UInt8] {
        let plane = width * height
        return [UInt8](unsafeUninitializedCapacity: planar.count) { out, initialized in
            planar.withUnsafeBufferPointer { source in
                for c in 0..<channels {
                    for i in 0..<plane {
                        out[i * channels + c] = UInt8(quantize(source[c * plane + i], maximum: 255))
                    }
                }
            }
            initialized = planar.count
        }
    }

    /// Planar floats → interleaved 16-bit, clamping to [0, 1] and rounding (NaN → 0).
    static func interleave16(_ planar: [Float], width: Int, height: Int, channels: Int) -> [UInt16] {
        let plane = width * height
        return [UInt16](unsafeUninitializedCapacity: planar.count) { out, initialized in
            planar.withUnsafeBufferPointer { source in
                for c in 0..<channels {
                    for i in 0..<plane {
                        out[i * channels + c] = UInt16(quantize(source[c * plane + i], maximum: 65535))
                    }
                }
            }
            initialized = planar.count
        }
    }

    @inline(__always)
    static func quantize(_ value: Float, maximum: Float) -> Int {
        guard value > 0 else { return 0 }  // also NaN
        guard value < 1 else { return Int(maximum) }
        return Int((value * maximum).rounded())
    }
}
