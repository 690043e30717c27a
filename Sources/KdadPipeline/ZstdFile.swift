import Foundation
import CZstd
#if canImport(Glibc)
import Glibc
#endif

/// zstd for `.tar.zst` inputs. A zstd stream cannot be read at random offsets, so an archive is
/// decompressed once into the work dir's cache (never anywhere else) and then read as a plain tar.
enum ZstdFile {
    struct Failure: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "\(path): \(reason)" }
    }

    /// Streams `source` (zstd) into `destination` (plain), publishing it atomically.
    static func decompress(_ source: URL, to destination: URL) throws {
        guard let input = FileHandle(forReadingAtPath: source.path) else {
            throw Failure(path: source.path, reason: "cannot open compressed archive")
        }
        defer { try? input.close() }
        guard let context = ZSTD_createDCtx() else { throw Failure(path: source.path, reason: "cannot create zstd context") }
        defer { ZSTD_freeDCtx(context) }
        try AtomicFile.write(to: destination) { temporary in
            let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw Failure(path: temporary.path, reason: "cannot create: \(String(cString: strerror(errno)))") }
            defer { close(descriptor) }
            let outputCapacity = ZSTD_DStreamOutSize()
            var output = [UInt8](repeating: 0, count: outputCapacity)
            var lastResult = 0
            var sawInput = false
            while true {
                let chunk = try input.read(upToCount: ZSTD_DStreamInSize()) ?? Data()
                if chunk.isEmpty { break }
                sawInput = true
                try chunk.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                    var inBuffer = ZSTD_inBuffer(src: raw.baseAddress, size: raw.count, pos: 0)
                    while inBuffer.pos < inBuffer.size {
                        try output.withUnsafeMutableBytes { out in
                            var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                            let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                            if ZSTD_isError(result) != 0 {
                                throw Failure(path: source.path, reason: "corrupt zstd data: \(String(cString: ZSTD_getErrorName(result)))")
                            }
                            lastResult = result
                            var written = 0
                            while written < outBuffer.pos {
                                let n = Glibc.write(descriptor, out.baseAddress! + written, outBuffer.pos - written)
                                if n < 0 {
                                    if errno == EINTR { continue }
                                    throw Failure(path: temporary.path, reason: "write failed: \(String(cString: strerror(errno)))")
                                }
                                written += n
                            }
                        }
                    }
                }
            }
            guard sawInput, lastResult == 0 else { throw Failure(path: source.path, reason: "truncated zstd stream") }
        }
    }

    /// One-shot compression (demo data and tests).
    static func compress(_ data: Data, level: Int32 = 3) throws -> Data {
        let capacity = ZSTD_compressBound(data.count)
        var output = Data(count: capacity)
        let size = output.withUnsafeMutableBytes { out in
            data.withUnsafeBytes { input in ZSTD_compress(out.baseAddress, capacity, input.baseAddress, input.count, level) }
        }
        guard ZSTD_isError(size) == 0 else { throw Failure(path: "<memory>", reason: String(cString: ZSTD_getErrorName(size))) }
        return output.prefix(size)
    }
}
