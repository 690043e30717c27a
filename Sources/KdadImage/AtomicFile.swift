import Foundation
import KdadSupport

/// Writes files so that readers see either the old content or the complete new one (the shared
/// `KdadSupport.AtomicFile`: temporary name in the same directory, fsync, rename, fsync the directory),
/// reporting failures as this module's `ImageEncodeError`.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws(ImageEncodeError) {
        do {
            try KdadSupport.AtomicFile.write(data, to: url)
        } catch {
            let location = error.path == url.path ? "" : " (\(error.path))"
            throw ImageEncodeError(destination: url.path, reason: error.reason + location)
        }
    }
}

extension PNGEncoder {
    /// Encodes planar floats (1 or 3 channels, 8 or 16 bits) and writes them atomically to `url`.
    public static func write(planar pixels: [Float], width: Int, height: Int, channels: Int, bitDepth: Int,
                             to url: URL) throws(ImageEncodeError) {
        let data: Data
        do {
            data = try encode(planar: pixels, width: width, height: height, channels: channels, bitDepth: bitDepth)
        } catch {
            throw ImageEncodeError(destination: url.path, reason: error.reason)
        }
        try AtomicFile.write(data, to: url)
    }
}
