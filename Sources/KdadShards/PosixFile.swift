import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Thin POSIX wrappers. The shard code uses raw file descriptors rather than FileHandle so that
/// reads are positioned (`pread`: no shared file offset, safe from several threads), writes never
/// buffer a whole shard, and fsync/rename are explicit.
enum PosixFile {
    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) + " (errno \(code))" }

    static func openForReading(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ShardError.io(path: path, operation: "open", reason: errorText()) }
        return descriptor
    }

    /// Creates (or truncates) `path` for writing.
    static func createForWriting(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ShardError.io(path: path, operation: "create", reason: errorText()) }
        return descriptor
    }

    static func size(of descriptor: Int32, path: String) throws -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw ShardError.io(path: path, operation: "fstat", reason: errorText()) }
        return Int(status.st_size)
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = write(descriptor, pointer, remaining)
            if written < 0 {
                if errno == EINTR { continue }
                throw ShardError.io(path: path, operation: "write", reason: errorText())
            }
            pointer += written
            remaining -= written
        }
    }

    /// Reads exactly `buffer.count` bytes at `offset`. Returns false if the file ends first.
    static func readExactly(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, path: String) throws -> Bool {
        guard var pointer = buffer.baseAddress else { return true }
        var remaining = buffer.count
        var position = off_t(offset)
        while remaining > 0 {
            let count = pread(descriptor, pointer, remaining, position)
            if count < 0 {
                if errno == EINTR { continue }
                throw ShardError.io(path: path, operation: "read", reason: errorText())
            }
            if count == 0 { return false }
            pointer += count
            remaining -= count
            position += off_t(count)
        }
        return true
    }

    static func sync(_ descriptor: Int32, path: String) throws {
        while fsync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw ShardError.io(path: path, operation: "fsync", reason: errorText())
        }
    }

    /// fsync of a directory, so a rename inside it survives a power loss.
    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ShardError.io(path: path, operation: "open directory", reason: errorText()) }
        defer { close(descriptor) }
        try sync(descriptor, path: path)
    }

    static func moveItem(_ source: String, to destination: String) throws {
        guard rename(source, destination) == 0 else {
            throw ShardError.io(path: destination, operation: "rename from \(source)", reason: errorText())
        }
    }
}
