import Foundation
import KdadSupport

/// Make-style "never half-written" files (temporary name, fsync, rename, fsync the directory); one
/// implementation for all modules. Its failures are `AtomicFileError`s, described "<path>: <reason>"
/// as `PipelineError.io` is.
typealias AtomicFile = KdadSupport.AtomicFile

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
