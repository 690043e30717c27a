import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that readers see either the old content or the complete new one: the bytes go
/// to a temporary name in the same directory, are fsynced, then renamed over the target (rename is
/// atomic within a file system), and the directory is fsynced so the rename survives a crash.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws(ImageEncodeError) {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
        func failure(_ what: String, _ code: Int32) -> ImageEncodeError {
            ImageEncodeError(destination: url.path, reason: "\(what): \(String(cString: strerror(code)))")
        }
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot create \(temporary.lastPathComponent)", errno) }
        var written = 0
        var writeError: Int32 = 0
        data.withUnsafeBytes { raw in
            while written < raw.count {
                let result = systemWrite(descriptor, raw.baseAddress! + written, raw.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    writeError = errno
                    return
                }
                written += result
            }
        }
        if writeError == 0, fsync(descriptor) != 0 { writeError = errno }
        if close(descriptor) != 0, writeError == 0 { writeError = errno }
        if writeError != 0 {
            unlink(temporary.path)
            throw failure("cannot write", writeError)
        }
        if rename(temporary.path, url.path) != 0 {
            let code = errno
            unlink(temporary.path)
            throw failure("cannot rename into place", code)
        }
        let directoryDescriptor = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)  // best effort: some file systems refuse fsync on directories
            close(directoryDescriptor)
        }
    }
}

/// POSIX write(2), spelled so it does not collide with the Swift `write` methods in scope.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, bytes, count)
    #else
    return Darwin.write(descriptor, bytes, count)
    #endif
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
