import Foundation

public struct RunOptions: Sendable {
    /// Bring this stage up to date (and its out-of-date upstream); nil = the whole pipeline.
    public var stage: String?
    /// With `stage`: also run every stage downstream of it.
    public var downstream: Bool
    /// Rerun the selected stages even when their cache key matches (upstream only if out of date).
    public var force: Bool
    /// Parallel work units (each unit is independent; outputs do not depend on this).
    public var jobs: Int
    /// The command line, recorded in the lock file and event log.
    public var command: String

    public init(stage: String? = nil, downstream: Bool = false, force: Bool = false, jobs: Int = 2, command: String = "kdad run") {
        self.stage = stage
        self.downstream = downstream
        self.force = force
        self.jobs = max(1, jobs)
        self.command = command
    }
}

/// What happened to one stage in a run.
public struct StageOutcome: Sendable, Equatable {
    public enum Action: String, Sendable { case skipped, ran, resumed }
    public let stage: String
    public let action: Action
    public let record: StageRecord
}

/// A stage's state as `kdad status` reports it.
public enum StageState: Sendable, Equatable, CustomStringConvertible {
    case done(StageRecord)
    case stale(reason: String)
    /// `resumable` = the completed units match the current inputs.
    case partial(completed: Int, total: Int, resumable: Bool)
    case notRun

    public var description: String {
        switch self {
        case let .done(record): return "done     \(record.headline)"
        case let .stale(reason): return "stale    \(reason)"
        case let .partial(completed, total, resumable):
            return "partial  \(completed)/\(total) units" + (resumable ? " (kdad run resumes here)" : " (inputs changed since; will restart)")
        case .notRun: return "not run"
        }
    }
}

/// Runs a job's pipeline: content-hash cached stages (skipped when unchanged), resumable work
/// units, one run per work dir at a time.
public struct PipelineRunner: Sendable {
    public let job: JobManifest
    public let pipeline: PipelineDefinition
    public let registry: StageKindRegistry

    public init(job: JobManifest, pipeline: PipelineDefinition, registry: StageKindRegistry = .standard) {
        self.job = job
        self.pipeline = pipeline
        self.registry = registry
    }

    /// Loads a manifest and the pipeline it references.
    public static func load(manifest url: URL, displayName: String? = nil, registry: StageKindRegistry = .standard) throws -> PipelineRunner {
        let job = try JobManifest.load(contentsOf: url, displayName: displayName)
        let pipeline = try PipelineDefinition.load(contentsOf: job.pipelineURL, displayName: Self.display(job.pipelineURL), registry: registry)
        return PipelineRunner(job: job, pipeline: pipeline, registry: registry)
    }

    /// Paths in messages: relative to the current directory when below it.
    static func display(_ url: URL) -> String {
        let cwd = FileManager.default.currentDirectoryPath + "/"
        return url.path.hasPrefix(cwd) ? String(url.path.dropFirst(cwd.count)) : url.path
    }

    var stagesDirectory: URL { job.workDirectory.appendingPathComponent("stages") }
    public func stageDirectory(_ name: String) -> URL { stagesDirectory.appendingPathComponent(name) }
    func recordURL(_ name: String) -> URL { stageDirectory(name).appendingPathComponent("stage.json") }
    func progressURL(_ name: String) -> URL { stageDirectory(name).appendingPathComponent("progress.json") }
    func unitsDirectory(_ name: String) -> URL { stageDirectory(name).appendingPathComponent("units") }
    func markerURL(_ name: String, _ index: Int) -> URL {
        unitsDirectory(name).appendingPathComponent(String(format: "unit-%05d.json", index))
    }

    func makeStage(_ definition: StageDefinition) -> any Stage { registry.kinds[definition.kind]!.make(definition) }

    public func readRecord(_ name: String) -> StageRecord? {
        guard let data = try? Data(contentsOf: recordURL(name)) else { return nil }
        return try? JSONDecoder().decode(StageRecord.self, from: data)
    }

    /// The cache key of a stage given its upstream records.
    func inputHash(_ stage: any Stage, upstream: [String: StageRecord]) throws -> (hash: String, upstream: [String: String]) {
        let upstreamHashes = upstream.mapValues(\.outputHash)
        let key = JSONValue.object([
            "kind": .string(stage.definition.kind),
            "code_version": .string(stage.codeVersion),
            "params": .object(stage.definition.params),
            "external": try stage.externalInputs(job: job),
            "upstream": .object(upstreamHashes.mapValues(JSONValue.string)),
        ])
        return (SHA256.hex(of: key.canonicalText), upstreamHashes)
    }

    /// Stage names to run, in order, and the subset that `--force` applies to.
    func selection(_ options: RunOptions) throws -> (run: [String], forced: Set<String>) {
        guard let target = options.stage else {
            let all = pipeline.stages.map(\.name)
            return (all, options.force ? Set(all) : [])
        }
        guard pipeline.stage(named: target) != nil else {
            throw PipelineError.unknownStage(name: target, suggestion: closestMatch(to: target, among: pipeline.stages.map(\.name)))
        }
        let targets = options.downstream ? pipeline.downstream(of: target) : [target]
        var needed = Set<String>()
        for name in targets { needed.formUnion(pipeline.upstream(of: name)) }
        return (pipeline.stages.map(\.name).filter(needed.contains), options.force ? Set(targets) : [])
    }

    // MARK: Run

    /// Runs the selected stages; `report` receives one human line per stage.
    @discardableResult
    public func run(_ options: RunOptions = RunOptions(), progress: ProgressReporter = ProgressReporter(mode: .silent),
                    report: (String) -> Void = { _ in }) throws -> [StageOutcome] {
        let (names, forced) = try selection(options)
        let lock = try WorkDirectoryLock(workDirectory: job.workDirectory, command: options.command)
        defer { lock.release() }
        let events = try EventLog(workDirectory: job.workDirectory)
        events.record("run_start", ["command": .string(options.command), "manifest": .string(job.url.path),
                                     "stages": .array(names.map(JSONValue.string))])
        var outcomes: [StageOutcome] = []
        var records: [String: StageRecord] = [:]
        do {
            for name in names {
                let definition = pipeline.stage(named: name)!
                var upstream: [String: (directory: URL, record: StageRecord)] = [:]
                for dependency in definition.dependsOn { upstream[dependency] = (stageDirectory(dependency), records[dependency]!) }
                let outcome: StageOutcome
                do {
                    outcome = try runStage(makeStage(definition), upstream: upstream, force: forced.contains(name),
                                           jobs: options.jobs, events: events, progress: progress)
                } catch let error as PipelineError {
                    if case .stageFailed = error { throw error }
                    throw PipelineError.stageFailed(stage: name, reason: "\(error)")
                } catch {
                    // Say which stage failed; complete units stay and the next run resumes after them.
                    throw PipelineError.stageFailed(stage: name, reason: "\(error)")
                }
                records[name] = outcome.record
                outcomes.append(outcome)
                switch outcome.action {
                case .skipped: report("\(name): up to date (\(outcome.record.headline))")
                case .ran, .resumed:
                    let resumed = outcome.action == .resumed ? ", resumed after \(outcome.record.unitsResumed) complete units" : ""
                    report(String(format: "%@: done in %.1f s%@ (%@)", name, outcome.record.durationSeconds, resumed, outcome.record.headline))
                }
            }
        } catch {
            events.record("run_failed", ["error": .string("\(error)")])
            throw error
        }
        events.record("run_end", ["ran": .array(outcomes.filter { $0.action != .skipped }.map { .string($0.stage) })])
        return outcomes
    }

    func runStage(_ stage: any Stage, upstream: [String: (directory: URL, record: StageRecord)], force: Bool,
                  jobs: Int, events: EventLog, progress: ProgressReporter) throws -> StageOutcome {
        let name = stage.definition.name
        let (hash, upstreamHashes) = try inputHash(stage, upstream: upstream.mapValues(\.record))
        let directory = stageDirectory(name)
        if !force, let record = readRecord(name), record.inputHash == hash, outputsPresent(record, directory: directory) {
            // A kill between writing stage.json and removing progress.json leaves the latter behind.
            try? FileManager.default.removeItem(at: progressURL(name))
            events.record("stage_skipped", stage: name, ["input_hash": .string(hash)])
            return StageOutcome(stage: name, action: .skipped, record: record)
        }

        // From here the stage is not done: drop the record first, so a crash never leaves a
        // record beside outputs it does not describe.
        let fileManager = FileManager.default
        try? fileManager.removeItem(at: recordURL(name))
        let previous = (try? Data(contentsOf: progressURL(name))).flatMap { try? JSONDecoder().decode(StageProgress.self, from: $0) }
        let resuming = !force && previous?.inputHash == hash
        if !resuming {
            try? fileManager.removeItem(at: directory)
        }
        try fileManager.createDirectory(at: unitsDirectory(name), withIntermediateDirectories: true)
        AtomicFile.removeLeftovers(in: directory)
        AtomicFile.removeLeftovers(in: unitsDirectory(name))

        let startedAt = Timestamp.now()
        let clock = Date()
        let context = StageContext(job: job, definition: stage.definition, workDirectory: job.workDirectory,
                                   stageDirectory: directory, upstream: upstream, events: events)
        let prepared: any PreparedStage
        do { prepared = try stage.prepare(context) } catch {
            events.record("stage_failed", stage: name, ["error": .string("\(error)")])
            throw error
        }
        if resuming, previous?.unitCount != prepared.unitCount {
            // Same inputs but a different plan (cannot happen with deterministic stages): distrust the units.
            try? fileManager.removeItem(at: unitsDirectory(name))
            try fileManager.createDirectory(at: unitsDirectory(name), withIntermediateDirectories: true)
        }
        if !resuming || previous?.unitCount != prepared.unitCount {
            try AtomicFile.write(try Self.encoder.encode(StageProgress(inputHash: hash, unitCount: prepared.unitCount)), to: progressURL(name))
        }

        // Completed units (their marker exists and decodes) are kept; the rest run now.
        var markers = [UnitMarker?](repeating: nil, count: prepared.unitCount)
        for index in 0..<prepared.unitCount {
            if let data = try? Data(contentsOf: markerURL(name, index)), let marker = try? JSONDecoder().decode(UnitMarker.self, from: data),
               marker.index == index, marker.files.keys.allSatisfy({ fileManager.fileExists(atPath: directory.appendingPathComponent($0).path) }) {
                markers[index] = marker
            }
        }
        let resumedUnits = markers.compactMap { $0 }.count
        let totalItems = (0..<prepared.unitCount).reduce(0) { $0 + prepared.itemCount(ofUnit: $1) }
        let doneItems = (0..<prepared.unitCount).filter { markers[$0] != nil }.reduce(0) { $0 + prepared.itemCount(ofUnit: $1) }
        events.record(resumedUnits > 0 ? "stage_resumed" : "stage_start", stage: name,
                      ["input_hash": .string(hash), "units": .int(prepared.unitCount), "units_complete": .int(resumedUnits)])
        progress.begin(stage: name, total: totalItems, alreadyDone: doneItems)

        let pending = (0..<prepared.unitCount).filter { markers[$0] == nil }
        let results = UnitResults(markers)
        try Self.forEachConcurrently(pending, workers: jobs) { index in
            let output = UnitOutput(directory: directory)
            let unitStart = Date()
            let summary = try prepared.runUnit(index, output: output)
            let marker = UnitMarker(index: index, files: output.files, summary: summary)
            try AtomicFile.write(try Self.encoder.encode(marker), to: markerURL(name, index))
            results.set(index, marker)
            let items = prepared.itemCount(ofUnit: index)
            events.record("unit_done", stage: name, ["unit": .int(index), "items": .int(items),
                                                     "seconds": .double(Date().timeIntervalSince(unitStart))])
            progress.advance(by: items)
        } onError: { error in
            events.record("stage_failed", stage: name, ["error": .string("\(error)")])
        }
        progress.end()

        let completed = results.all.map { $0! }
        let finalOutput = UnitOutput(directory: directory)
        let summary = try prepared.finish(units: completed.map(\.summary), output: finalOutput)
        var files: [String: String] = [:]
        for marker in completed { files.merge(marker.files) { $1 } }
        files.merge(finalOutput.files) { $1 }
        let outputHash = SHA256.hex(of: files.keys.sorted().map { "\($0) \(files[$0]!)\n" }.joined())
        let record = StageRecord(stage: name, kind: stage.definition.kind, codeVersion: stage.codeVersion,
                                 params: .object(stage.definition.params), inputHash: hash, outputHash: outputHash,
                                 upstream: upstreamHashes, unitCount: prepared.unitCount, files: files,
                                 counts: summary.counts, info: .object(summary.info), headline: summary.headline,
                                 startedAt: startedAt, finishedAt: Timestamp.now(),
                                 durationSeconds: Date().timeIntervalSince(clock), unitsResumed: resumedUnits)
        try AtomicFile.write(try Self.encoder.encode(record), to: recordURL(name))
        try? fileManager.removeItem(at: progressURL(name))
        events.record("stage_done", stage: name, ["output_hash": .string(outputHash), "seconds": .double(record.durationSeconds),
                                                  "counts": .object(summary.counts.mapValues(JSONValue.int))])
        return StageOutcome(stage: name, action: resumedUnits > 0 ? .resumed : .ran, record: record)
    }

    func outputsPresent(_ record: StageRecord, directory: URL) -> Bool {
        record.files.keys.allSatisfy { FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path) }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    /// Runs `body` for each index on up to `workers` threads; the first error stops further work
    /// (units already running finish) and is rethrown.
    static func forEachConcurrently(_ indices: [Int], workers: Int, _ body: @escaping @Sendable (Int) throws -> Void,
                                    onError: @escaping @Sendable (Error) -> Void) throws {
        let queue = WorkQueue(indices)
        let group = DispatchGroup()
        for _ in 0..<min(workers, max(indices.count, 1)) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while let index = queue.next() {
                    do { try body(index) } catch {
                        queue.fail(error)
                        onError(error)
                        return
                    }
                }
            }
        }
        group.wait()
        if let error = queue.error { throw error }
    }

    // MARK: Status

    /// Each stage's state, in pipeline order, without running anything.
    public func status() throws -> [(stage: String, state: StageState)] {
        var states: [(String, StageState)] = []
        var current: [String: StageRecord] = [:]
        for definition in pipeline.stages {
            let name = definition.name
            let stage = makeStage(definition)
            let notReady = definition.dependsOn.filter { current[$0] == nil }
            let record = readRecord(name)
            let progress = (try? Data(contentsOf: progressURL(name))).flatMap { try? JSONDecoder().decode(StageProgress.self, from: $0) }
            var hash: String?
            if notReady.isEmpty {
                var upstream: [String: StageRecord] = [:]
                for dependency in definition.dependsOn { upstream[dependency] = current[dependency] }
                hash = try inputHash(stage, upstream: upstream).hash
            }
            let isDone = hash != nil && record != nil && hash == record!.inputHash && outputsPresent(record!, directory: stageDirectory(name))
            if let record, isDone {
                states.append((name, .done(record)))
                current[name] = record
            } else if let progress {
                let completed = (0..<progress.unitCount).filter { FileManager.default.fileExists(atPath: markerURL(name, $0).path) }.count
                states.append((name, .partial(completed: completed, total: progress.unitCount, resumable: hash == progress.inputHash)))
            } else if let record {
                if !notReady.isEmpty {
                    states.append((name, .stale(reason: "upstream \(notReady.joined(separator: ", ")) not up to date")))
                } else if hash != record.inputHash {
                    states.append((name, .stale(reason: "inputs, params or code changed since the last run")))
                } else {
                    states.append((name, .stale(reason: "output files are missing")))
                }
            } else {
                states.append((name, .notRun))
            }
        }
        return states
    }
}

/// Unit markers filled in by worker threads.
final class UnitResults: @unchecked Sendable {
    private let lock = NSLock()
    private var markers: [UnitMarker?]
    init(_ markers: [UnitMarker?]) { self.markers = markers }
    func set(_ index: Int, _ marker: UnitMarker) { lock.lock(); markers[index] = marker; lock.unlock() }
    var all: [UnitMarker?] { lock.lock(); defer { lock.unlock() }; return markers }
}

/// Hands out unit indices in order to worker threads; stops handing out after a failure.
final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: ArraySlice<Int>
    private var firstError: Error?
    init(_ indices: [Int]) { remaining = indices[...] }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return firstError }
    func next() -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard firstError == nil else { return nil }
        return remaining.popFirst()
    }
    func fail(_ error: Error) {
        lock.lock(); defer { lock.unlock() }
        if firstError == nil { firstError = error }
    }
}
