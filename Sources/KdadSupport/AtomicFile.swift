import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an atomic write failed: the file concerned (the target, its temporary, or its directory) and
/// what went wrong, with the system's own words for it.
public struct AtomicFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// Make-style "never half-written" files: the bytes go to a hidden temporary name in the same
/// directory, are fsynced, then renamed over the target (rename is atomic within a file system), and
/// the directory is fsynced so the rename itself survives a crash. A reader (or a resumed run) sees
/// either the old file or the complete new one, never a torn one — also after SIGKILL or power loss.
public enum AtomicFile {
    /// Prefix of in-flight temporary files; a resumed run deletes leftovers with this prefix
    /// (see `removeLeftovers(in:)`).
    public static let temporaryPrefix = ".tmp."

    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws(AtomicFileError) {
        let temporary = temporaryURL(for: url)
        do {
            try writePlain(data, to: temporary)
            try publish(temporary, as: url)
        } catch {
            unlink(temporary.path)
            throw error
        }
        try fsyncDirectory(url.deletingLastPathComponent())
    }

    /// Calls `body` with a temporary URL (hidden, in `url`'s directory) to write the file at, then
    /// publishes it as `url`. An error from `body` is rethrown as it is, after the temporary is removed;
    /// the publishing steps throw `AtomicFileError`.
    public static func write(to url: URL, _ body: (URL) throws -> Void) throws {
        let temporary = temporaryURL(for: url)
        do {
            try body(temporary)
            try publish(temporary, as: url)
        } catch {
            unlink(temporary.path)
            throw error
        }
        try fsyncDirectory(url.deletingLastPathComponent())
    }

    /// Flushes the finished temporary and renames it over `url`.
    private static func publish(_ temporary: URL, as url: URL) throws(AtomicFileError) {
        try fsyncFile(at: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            throw AtomicFileError(path: url.path, reason: "cannot rename into place: \(lastErrorText())")
        }
    }

    /// A fresh temporary name beside `url`: the prefix, the process id and a per-process counter,
    /// so concurrent writers (threads or processes) never share one.
    static func temporaryURL(for url: URL) -> URL {
        let serial = temporarySerial.next()
        return url.deletingLastPathComponent()
            .appendingPathComponent("\(temporaryPrefix)\(getpid()).\(serial).\(url.lastPathComponent)")
    }

    private static let temporarySerial = SerialNumbers()

    /// Plain POSIX create+write, no rename. (Foundation's `createFile`/`Data.write` stage through
    /// hidden temp files of their own, which a SIGKILL would leave behind under names we do not control.)
    public static func writePlain(_ data: Data, to url: URL) throws(AtomicFileError) {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw AtomicFileError(path: url.path, reason: "cannot create file: \(lastErrorText())")
        }
        var failure: AtomicFileError?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = systemWrite(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = AtomicFileError(path: url.path, reason: "write failed: \(lastErrorText())")
                    return
                }
                offset += written
            }
        }
        if close(descriptor) != 0, failure == nil {
            failure = AtomicFileError(path: url.path, reason: "close failed: \(lastErrorText())")
        }
        if let failure { throw failure }
    }

    /// Flushes a file's bytes to stable storage.
    public static func fsyncFile(at url: URL) throws(AtomicFileError) {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw AtomicFileError(path: url.path, reason: "cannot open to sync: \(lastErrorText())")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw AtomicFileError(path: url.path, reason: "fsync failed: \(lastErrorText())")
        }
    }

    /// Flushes a directory entry change (a rename) to stable storage. Some file systems cannot fsync a
    /// directory at all (EINVAL); that is no failure of ours, the rename is as durable as they allow.
    static func fsyncDirectory(_ directory: URL) throws(AtomicFileError) {
        let descriptor = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw AtomicFileError(path: directory.path, reason: "cannot open directory to sync: \(lastErrorText())")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 || errno == EINVAL || errno == ENOTSUP else {
            throw AtomicFileError(path: directory.path, reason: "fsync failed: \(lastErrorText())")
        }
    }

    /// Removes temporary files a killed writer left behind in `directory` (not recursive): ours
    /// (`.tmp.<pid>.<n>.<name>`), the shard writer's (`.<name>.tmp-<pid>`), anyone's. Meant for
    /// directories that hold no hidden files of their own, where every hidden file is a leftover.
    public static func removeLeftovers(in directory: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(".") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}

/// Thread-safe increasing numbers (temporary-name uniqueness within one process).
private final class SerialNumbers: @unchecked Sendable {
    private let lock = NSLock()
    private var last = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        last += 1
        return last
    }
}

private func lastErrorText() -> String { String(cString: strerror(errno)) }

/// POSIX write(2), spelled so it does not collide with the `write` methods in scope.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, bytes, count)
    #else
    return Darwin.write(descriptor, bytes, count)
    #endif
}
