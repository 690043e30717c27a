import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Make-style "never half-written" files: write to a temporary name in the same directory, fsync,
/// rename over the final name, fsync the directory. A reader (or a resumed run) sees either the old
/// state or the complete new file, never a torn one — also after SIGKILL or power loss.
enum AtomicFile {
    /// Prefix of in-flight temporary files; a resumed run deletes leftovers with this prefix.
    public static let temporaryPrefix = ".tmp."

    /// Calls `body` with a temporary URL to write to, then publishes it as `url`.
    public static func write(to url: URL, _ body: (URL) throws -> Void) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent("\(temporaryPrefix)\(getpid()).\(url.lastPathComponent)")
        try? FileManager.default.removeItem(at: temporary)
        do {
            try body(temporary)
            try fsyncFile(at: temporary)
            guard rename(temporary.path, url.path) == 0 else {
                throw PipelineError.io(path: url.path, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
            }
            try fsyncFile(at: directory)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { temporary in try writePlain(data, to: temporary) }
    }

    /// Plain POSIX create+write. (Foundation's `createFile`/`Data.write` stage through hidden temp
    /// files of their own, which a SIGKILL would leave behind under names we do not control.)
    static func writePlain(_ data: Data, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw PipelineError.io(path: url.path, reason: "cannot create file: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw PipelineError.io(path: url.path, reason: "write failed: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
    }

    static func fsyncFile(at url: URL) throws {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw PipelineError.io(path: url.path, reason: "cannot open to sync: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw PipelineError.io(path: url.path, reason: "fsync failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes temporary files a killed writer left behind in `directory` (not recursive): ours
    /// (`.tmp.<pid>.<name>`), the shard writer's (`.<name>.tmp-<pid>`), anyone's. Stage directories
    /// hold no hidden files of their own, so every hidden file there is a leftover.
    public static func removeLeftovers(in directory: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(".") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }
}

/// Runner-level failures (manifest problems are `ManifestError`).
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case io(path: String, reason: String)
    case locked(workDirectory: String, holder: String)
    case unknownStage(name: String, suggestion: String?)
    case stageFailed(stage: String, reason: String)
    case corruptRecord(path: String, reason: String)
    case unsafeArchiveEntry(archive: String, entry: String)
    /// The inputs cannot be processed as a whole (e.g. two files with one key); names the files.
    case invalidInput(reason: String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .locked(workDirectory, holder):
            return "work dir \(workDirectory) is in use by another kdad run (\(holder)); wait for it to finish or stop that process"
        case let .unknownStage(name, suggestion):
            return "no stage named '\(name)' in the pipeline" + (suggestion.map { " (did you mean '\($0)'?)" } ?? "")
        case let .stageFailed(stage, reason): return "stage '\(stage)' failed: \(reason)"
        case let .corruptRecord(path, reason): return "\(path): unreadable record (\(reason))"
        case let .invalidInput(reason): return reason
        case let .unsafeArchiveEntry(archive, entry):
            return "\(archive): refusing archive entry '\(entry)' (absolute path or '..' would escape the work dir)"
        }
    }
}
