import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `<work dir>/events.jsonl`: one JSON object per line (time, event, stage, details), appended with
/// O_APPEND so lines from successive runs never interleave. Timings live here and in stage.json,
/// never inside shards (which must be byte-identical between runs).
public final class EventLog: @unchecked Sendable {
    public let url: URL
    private let descriptor: Int32
    private let lock = NSLock()

    public init(workDirectory: URL) throws {
        url = workDirectory.appendingPathComponent("events.jsonl")
        descriptor = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw PipelineError.io(path: url.path, reason: "cannot open event log: \(String(cString: strerror(errno)))")
        }
        // A run killed mid-line leaves a partial last line; start ours on a fresh one.
        if let handle = try? FileHandle(forReadingFrom: url), let size = try? handle.seekToEnd(), size > 0 {
            try? handle.seek(toOffset: size - 1)
            if let last = try? handle.read(upToCount: 1), last != Data("\n".utf8) { _ = Glibc.write(descriptor, "\n", 1) }
            try? handle.close()
        }
    }

    deinit { close(descriptor) }

    public func record(_ event: String, stage: String? = nil, _ fields: [String: JSONValue] = [:]) {
        var object = fields
        object["time"] = .string(Timestamp.now())
        object["event"] = .string(event)
        if let stage { object["stage"] = .string(stage) }
        let line = JSONValue.object(object).canonicalText + "\n"
        lock.lock()
        defer { lock.unlock() }
        _ = line.withCString { write(descriptor, $0, strlen($0)) }
    }
}

/// Progress of a long stage on stderr: a live line (images/s, ETA) on a terminal, a plain log line
/// every `logInterval` seconds otherwise (cron mail, log files).
public final class ProgressReporter: @unchecked Sendable {
    public enum Mode: Sendable { case silent, terminal, log }
    private let mode: Mode
    private let logInterval: TimeInterval
    private let lock = NSLock()
    private var stage = ""
    private var total = 0
    private var done = 0
    private var startDone = 0
    private var started = Date()
    private var lastPrint = Date.distantPast

    public init(mode: Mode, logInterval: TimeInterval = 10) {
        self.mode = mode
        self.logInterval = logInterval
    }

    public static func automatic(quiet: Bool) -> ProgressReporter {
        ProgressReporter(mode: quiet ? .silent : (isatty(2) != 0 ? .terminal : .log))
    }

    func begin(stage: String, total: Int, alreadyDone: Int) {
        lock.lock(); defer { lock.unlock() }
        self.stage = stage
        self.total = total
        self.done = alreadyDone
        self.startDone = alreadyDone
        self.started = Date()
        self.lastPrint = .distantPast
    }

    func advance(by items: Int) {
        lock.lock(); defer { lock.unlock() }
        done += items
        let now = Date()
        let interval = mode == .terminal ? 0.2 : logInterval
        if now.timeIntervalSince(lastPrint) >= interval || done == total {
            lastPrint = now
            emit(now: now, final: false)
        }
    }

    func end() {
        lock.lock(); defer { lock.unlock() }
        if mode == .terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func emit(now: Date, final: Bool) {
        guard mode != .silent, total > 0 else { return }
        let elapsed = now.timeIntervalSince(started)
        let rate = elapsed > 0 ? Double(done - startDone) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let text = String(format: "%@: %d/%d images (%.0f%%), %.1f images/s, ETA %@", stage, done, total,
                          100 * Double(done) / Double(total), rate, Self.duration(eta))
        switch mode {
        case .terminal: FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        case .log: FileHandle.standardError.write(Data("[\(Timestamp.now())] \(text)\n".utf8))
        case .silent: break
        }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, (s / 60) % 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
