import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on `<work dir>/kdad.lock` for the duration of a run, so two cron jobs (or a
/// cron job and a person) never write one work dir at once. The kernel drops the lock when the
/// process dies, so a SIGKILLed run never leaves a stale lock behind. The file's text names the holder.
public final class WorkDirectoryLock {
    public let url: URL
    private var descriptor: Int32

    public static func lockFile(in workDirectory: URL) -> URL { workDirectory.appendingPathComponent("kdad.lock") }

    /// Takes the lock or throws `PipelineError.locked` naming the process that holds it.
    public init(workDirectory: URL, command: String) throws {
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        url = Self.lockFile(in: workDirectory)
        descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw PipelineError.io(path: url.path, reason: "cannot open lock file: \(String(cString: strerror(errno)))")
        }
        if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(descriptor)
            throw PipelineError.locked(workDirectory: workDirectory.path, holder: holder.flatMap { $0.isEmpty ? nil : $0 } ?? "holder unknown")
        }
        let host = ProcessInfo.processInfo.hostName
        let text = "pid \(getpid()) on \(host), started \(Timestamp.now()), command: \(command)\n"
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    /// Who holds the lock right now, or nil if nobody does (used by `kdad status`).
    public static func currentHolder(workDirectory: URL) -> String? {
        let url = lockFile(in: workDirectory)
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return nil
        }
        return (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }

    public func release() {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

enum Timestamp {
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
