import CImageCodecs
import Foundation

/// Decodes PNG, JPEG and TIFF into planar Float32 (see `DecodedImage`), choosing the decoder from
/// the data's signature. All entry points are thread-safe (no shared state).
public enum ImageDecoder {
    /// Decodes the file at `url`.
    public static func decode(contentsOf url: URL, options: DecodeOptions = DecodeOptions()) throws(ImageDecodeError) -> DecodedImage {
        let data = try readFile(url)
        return try decode(data: data, name: url.path, options: options)
    }

    /// Decodes in-memory data; `name` appears in errors in place of a path.
    public static func decode(data: Data, name: String, options: DecodeOptions = DecodeOptions()) throws(ImageDecodeError) -> DecodedImage {
        let limit = UInt64(max(0, options.maxPixels))
        let outcome: Result<DecodedImage, ImageDecodeError> = data.withUnsafeBytes { raw in
            let format: ImageFormat
            switch detection(raw, name: name) {
            case .success(let detected): format = detected
            case .failure(let error): return .failure(error)
            }
            let codec = decoderFunction(format)
            let base = raw.bindMemory(to: UInt8.self).baseAddress
            var info = kdad_image_info()
            let headerStatus = codec(base, raw.count, limit, nil, 0, &info)
            if headerStatus != KDAD_STATUS_OK {
                return .failure(error(headerStatus, info: info, format: format, name: name, limit: options.maxPixels))
            }
            let count = Int(info.width) * Int(info.height) * Int(info.channels)
            var status = KDAD_STATUS_OK
            let pixels = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                status = codec(base, raw.count, limit, buffer.baseAddress, count, &info)
                initialized = status == KDAD_STATUS_OK ? count : 0
            }
            if status != KDAD_STATUS_OK {
                return .failure(error(status, info: info, format: format, name: name, limit: options.maxPixels))
            }
            return .success(DecodedImage(
                width: Int(info.width), height: Int(info.height), channels: Int(info.channels),
                bitDepth: Int(info.bit_depth), format: format, pixels: pixels))
        }
        return try outcome.get()
    }

    /// Reads only what is needed to learn the size, channels and depth of the image at `url`.
    /// Reads a prefix of the file first and the whole file only if the header lies beyond it
    /// (TIFF directories are often at the end).
    public static func readHeader(contentsOf url: URL, options: DecodeOptions = DecodeOptions()) throws(ImageDecodeError) -> ImageHeader {
        let prefixLength = 256 * 1024
        let prefix: Data
        let fileSize: Int
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            prefix = try handle.read(upToCount: prefixLength) ?? Data()
            fileSize = Int(try handle.seekToEnd())
        } catch {
            throw ImageDecodeError(path: url.path, reason: .unreadable("cannot read file: \(describe(error))"))
        }
        do {
            return try readHeader(data: prefix, name: url.path, options: options)
        } catch let error where error.reason.kind == .truncated && fileSize > prefix.count {
            return try readHeader(data: try readFile(url), name: url.path, options: options)
        }
    }

    /// Reads the header of in-memory data without decoding pixels. Applies the pixel limit too.
    public static func readHeader(data: Data, name: String, options: DecodeOptions = DecodeOptions()) throws(ImageDecodeError) -> ImageHeader {
        let limit = UInt64(max(0, options.maxPixels))
        let outcome: Result<ImageHeader, ImageDecodeError> = data.withUnsafeBytes { raw in
            let format: ImageFormat
            switch detection(raw, name: name) {
            case .success(let detected): format = detected
            case .failure(let error): return .failure(error)
            }
            var info = kdad_image_info()
            let status = decoderFunction(format)(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, limit, nil, 0, &info)
            if status != KDAD_STATUS_OK {
                return .failure(error(status, info: info, format: format, name: name, limit: options.maxPixels))
            }
            return .success(ImageHeader(
                width: Int(info.width), height: Int(info.height), channels: Int(info.channels),
                bitDepth: Int(info.bit_depth), format: format))
        }
        return try outcome.get()
    }

    // MARK: - Internals

    typealias DecoderFunction = @convention(c) (
        UnsafePointer<UInt8>?, Int, UInt64, UnsafeMutablePointer<Float>?, Int, UnsafeMutablePointer<kdad_image_info>?
    ) -> kdad_status

    static func decoderFunction(_ format: ImageFormat) -> DecoderFunction {
        switch format {
        case .png: return kdad_png_decode
        case .jpeg: return kdad_jpeg_decode
        case .tiff: return kdad_tiff_decode
        }
    }

    static func detection(_ raw: UnsafeRawBufferPointer, name: String) -> Result<ImageFormat, ImageDecodeError> {
        switch ImageFormat.detect(raw) {
        case .format(let format):
            return .success(format)
        case .truncatedSignature:
            let detail = raw.isEmpty ? "the file is empty" : "only \(raw.count) bytes, the start of a signature"
            return .failure(ImageDecodeError(path: name, reason: .truncated(detail)))
        case .unknown:
            return .failure(ImageDecodeError(path: name, reason: .badMagic))
        }
    }

    static func readFile(_ url: URL) throws(ImageDecodeError) -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw ImageDecodeError(path: url.path, reason: .unreadable("cannot read file: \(describe(error))"))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let cocoa = error as? CocoaError, let underlying = cocoa.userInfo[NSUnderlyingErrorKey] as? NSError,
           underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return (error as NSError).localizedDescription
    }

    static func message(_ info: kdad_image_info) -> String {
        withUnsafeBytes(of: info.message) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func error(_ status: kdad_status, info: kdad_image_info, format: ImageFormat, name: String, limit: Int) -> ImageDecodeError {
        let detail = message(info)
        let reason: ImageDecodeError.Reason
        switch status {
        case KDAD_STATUS_TRUNCATED: reason = .truncated(detail)
        case KDAD_STATUS_BAD_MAGIC: reason = .badMagic
        case KDAD_STATUS_UNSUPPORTED: reason = .unsupportedVariant(detail)
        case KDAD_STATUS_TOO_LARGE: reason = .tooLarge(width: Int(info.width), height: Int(info.height), limit: limit)
        case KDAD_STATUS_CORRUPT: reason = .corrupt(detail)
        case KDAD_STATUS_OUT_OF_MEMORY: reason = .unreadable("out of memory: \(detail)")
        default: reason = .unreadable("internal decoder error \(status.rawValue): \(detail)")
        }
        return ImageDecodeError(path: name, reason: reason, format: format)
    }
}
