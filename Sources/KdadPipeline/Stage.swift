import Foundation
import KdadShards

/// Everything a stage may read while running. Stages write only through `UnitOutput`/`StageOutput`,
/// which confine writes to `stageDirectory`.
public struct StageContext: Sendable {
    public let job: JobManifest
    public let definition: StageDefinition
    public let workDirectory: URL
    public let stageDirectory: URL
    /// Output directories and records of the stages this one depends on.
    public let upstream: [String: (directory: URL, record: StageRecord)]
    public let events: EventLog
}

/// A pipeline stage (DVC-like): declared inputs (upstream outputs + external files), params and a
/// code version determine its cache key; work is split into fixed units so it can resume.
public protocol Stage: Sendable {
    var definition: StageDefinition { get }
    /// Bump when a code change alters outputs, so cached results are recomputed.
    var codeVersion: String { get }
    /// What this stage reads from outside the work dir (file listings, label files, manifest settings),
    /// as a JSON value whose hash joins the cache key. Must be cheap: `kdad status` calls it too.
    func externalInputs(job: JobManifest) throws -> JSONValue
    /// Plans the fixed work units for this run (deterministic for given inputs).
    func prepare(_ context: StageContext) throws -> any PreparedStage
}

/// A planned stage run: `unitCount` units, each producing files atomically.
public protocol PreparedStage: Sendable {
    var unitCount: Int { get }
    /// Items (images) in a unit, for progress and rates.
    func itemCount(ofUnit index: Int) -> Int
    /// Produces unit `index`'s files through `output`; must be deterministic (no timestamps, no
    /// unseeded randomness) so a resumed run is byte-identical to an uninterrupted one.
    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary
    /// Combines the unit summaries (in unit order) into stage-level files and counts.
    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary
}

/// What a unit reports: counts (summed per stage) and small per-item entries (kept in its marker).
public struct UnitSummary: Codable, Sendable, Equatable {
    public var counts: [String: Int]
    public var entries: [JSONValue]

    public init(counts: [String: Int] = [:], entries: [JSONValue] = []) {
        self.counts = counts
        self.entries = entries
    }
}

public struct StageSummary: Sendable {
    public var counts: [String: Int]
    public var info: [String: JSONValue]
    /// One human line for the run report, e.g. "1344 images ingested, 0 quarantined".
    public var headline: String

    public init(counts: [String: Int], info: [String: JSONValue] = [:], headline: String) {
        self.counts = counts
        self.info = info
        self.headline = headline
    }
}

/// Writes a unit's (or the stage's final) files atomically into the stage directory and remembers
/// each file's SHA-256 for the output hash.
public final class UnitOutput: @unchecked Sendable {
    public let directory: URL
    private let lock = NSLock()
    private(set) var files: [String: String] = [:]

    init(directory: URL) { self.directory = directory }

    /// `name` is a plain file name inside the stage directory.
    public func write(_ name: String, _ body: (URL) throws -> Void) throws {
        precondition(!name.contains("/") && !name.hasPrefix("."), "stage output names are plain file names")
        let url = directory.appendingPathComponent(name)
        try AtomicFile.write(to: url, body)
        let digest = try SHA256.hex(ofFileAt: url)
        lock.lock(); files[name] = digest; lock.unlock()
    }

    public func write(_ name: String, data: Data) throws {
        try write(name) { url in try AtomicFile.writePlain(data, to: url) }
    }

    /// Writes a shard named `name`; `ShardWriter` itself publishes atomically (temp, fsync, rename).
    public func writeShard(_ name: String, compressionLevel: Int = 3, _ body: (ShardWriter) throws -> Void) throws {
        precondition(!name.contains("/") && !name.hasPrefix("."), "stage output names are plain file names")
        let url = directory.appendingPathComponent(name)
        let writer = try ShardWriter(url: url, compressionLevel: compressionLevel)
        let entries: [ShardIndexEntry]
        do {
            try body(writer)
            entries = try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        // Digest of the shard's index: every record's key, offset, lengths and the CRC-32C of its
        // stored bytes. That detects any change of content as reliably as hashing the whole file
        // for cache purposes, at a fraction of the cost (shards are most of a stage's bytes).
        var hasher = SHA256()
        hasher.update("shard-index-v1\n")
        for entry in entries {
            hasher.update("\(entry.key)\t\(entry.offset)\t\(entry.compressedLength)\t\(entry.uncompressedLength)\t\(entry.checksum)\n")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
        hasher.update("size \(size ?? -1)\n")
        let digest = hasher.finalizeHex()
        lock.lock(); files[name] = digest; lock.unlock()
    }

    public func url(of name: String) -> URL { directory.appendingPathComponent(name) }
}

/// `stages/<name>/stage.json`: what a completed stage was computed from and what it produced.
public struct StageRecord: Codable, Sendable, Equatable {
    public var stage: String
    public var kind: String
    public var codeVersion: String
    public var params: JSONValue
    /// Hash of kind + code version + params + external inputs + upstream output hashes.
    public var inputHash: String
    /// Hash of every output file's name and SHA-256: downstream stages key on this, so an upstream
    /// rerun that reproduces identical outputs does not invalidate them.
    public var outputHash: String
    public var upstream: [String: String]
    public var unitCount: Int
    public var files: [String: String]
    public var counts: [String: Int]
    public var info: JSONValue
    public var headline: String
    public var startedAt: String
    public var finishedAt: String
    public var durationSeconds: Double
    public var unitsResumed: Int

    enum CodingKeys: String, CodingKey {
        case stage, kind, params, upstream, files, counts, info, headline
        case codeVersion = "code_version", inputHash = "input_hash", outputHash = "output_hash", unitCount = "unit_count"
        case startedAt = "started_at", finishedAt = "finished_at", durationSeconds = "duration_seconds", unitsResumed = "units_resumed"
    }
}

/// `stages/<name>/progress.json`: present while a stage is incomplete; says which inputs the
/// completed units belong to, so a resume never mixes units from different inputs.
struct StageProgress: Codable, Sendable {
    var inputHash: String
    var unitCount: Int
    enum CodingKeys: String, CodingKey { case inputHash = "input_hash", unitCount = "unit_count" }
}

/// `stages/<name>/units/unit-NNNNN.json`: written last, so its presence means the unit is complete.
struct UnitMarker: Codable, Sendable {
    var index: Int
    var files: [String: String]
    var summary: UnitSummary
}
