import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// A source stage writing `items` numbered lines, `per_unit` per file; its external input is
/// `<input>/data.txt`. A file `<input>/fail-at` holding N makes unit N fail (a simulated crash).
struct SourceStage: Stage {
    let definition: StageDefinition
    var codeVersion: String { "source-1" }

    static let kind = StageKind(
        name: "source",
        params: [ParamSpec("items", .int(1...10_000), default: .int(10), help: "lines"),
                 ParamSpec("per_unit", .int(1...100), default: .int(3), help: "lines per unit"),
                 ParamSpec("tag", .string(allowed: nil), default: .string("x"), help: "prefix")],
        upstreamKinds: [], make: { SourceStage(definition: $0) })

    func externalInputs(job: JobManifest) throws -> JSONValue {
        .string(try SHA256.hex(ofFileAt: job.inputs[0].locations[0].url.appendingPathComponent("data.txt")))
    }

    func prepare(_ context: StageContext) throws -> any PreparedStage {
        let folder = context.job.inputs[0].locations[0].url
        let data = try String(contentsOf: folder.appendingPathComponent("data.txt"), encoding: .utf8)
        let failAt = (try? String(contentsOf: folder.appendingPathComponent("fail-at"), encoding: .utf8)).flatMap { Int($0) }
        return Prepared(items: definition.int("items"), perUnit: definition.int("per_unit"), tag: definition.string("tag")!,
                        data: data.trimmingCharacters(in: .whitespacesAndNewlines), failAt: failAt)
    }

    struct Simulated: Error {}

    struct Prepared: PreparedStage {
        let items: Int, perUnit: Int, tag: String, data: String, failAt: Int?
        var unitCount: Int { (items + perUnit - 1) / perUnit }
        func itemCount(ofUnit index: Int) -> Int { min(perUnit, items - index * perUnit) }
        func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
            if index == failAt { throw Simulated() }
            let lines = (0..<itemCount(ofUnit: index)).map { "\(tag) \(index * perUnit + $0) \(data)\n" }.joined()
            try output.write(String(format: "part-%05d.txt", index), data: Data(lines.utf8))
            return UnitSummary(counts: ["lines": itemCount(ofUnit: index)])
        }
        func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
            let total = units.reduce(0) { $0 + $1.counts["lines", default: 0] }
            try output.write("total.txt", data: Data("\(total)\n".utf8))
            return StageSummary(counts: ["lines": total], headline: "\(total) lines")
        }
    }
}

/// Copies its upstream's part files, applying `case` (upper/lower): downstream of anything.
struct DeriveStage: Stage {
    let definition: StageDefinition
    var codeVersion: String { "derive-1" }

    static let kind = StageKind(
        name: "derive",
        params: [ParamSpec("case", .string(allowed: ["upper", "lower"]), default: .string("upper"), help: "case")],
        upstreamKinds: ["source", "derive"], make: { DeriveStage(definition: $0) })

    func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    func prepare(_ context: StageContext) throws -> any PreparedStage {
        let upstream = context.upstream.values.first!
        return Prepared(directory: upstream.directory, parts: upstream.record.files.keys.filter { $0.hasPrefix("part-") }.sorted(),
                        upper: definition.string("case") == "upper")
    }

    struct Prepared: PreparedStage {
        let directory: URL, parts: [String], upper: Bool
        var unitCount: Int { parts.count }
        func itemCount(ofUnit index: Int) -> Int { 1 }
        func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
            let text = try String(contentsOf: directory.appendingPathComponent(parts[index]), encoding: .utf8)
            try output.write(parts[index], data: Data((upper ? text.uppercased() : text.lowercased()).utf8))
            return UnitSummary(counts: ["parts": 1])
        }
        func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
            StageSummary(counts: ["parts": units.count], headline: "\(units.count) parts")
        }
    }
}

let testRegistry = StageKindRegistry([SourceStage.kind, DeriveStage.kind])

/// s -> d1 -> d2, and s -> other.
struct TestJob {
    let root: URL
    var input: URL { root.appendingPathComponent("input") }
    var workDirectory: URL { root.appendingPathComponent("work") }

    init(pipeline: String = TestJob.pipeline) throws {
        root = try makeTemporaryDirectory("kdad-runner")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try Data("hello\n".utf8).write(to: input.appendingPathComponent("data.txt"))
        try setPipeline(pipeline)
        try Data("""
        job:
          name: runner-test
          pipeline: pipeline.yaml
          work_dir: work
          inputs:
            - path: input
          lots:
            component: 0
          train:
            glob: "**"
          score:
            glob: "**"
        """.utf8).write(to: root.appendingPathComponent("job.yaml"))
    }

    static let pipeline = """
    pipeline:
      name: runner-test
      stages:
        - name: s
          kind: source
          params: {items: 10, per_unit: 3}
        - name: d1
          kind: derive
          depends_on: s
        - name: d2
          kind: derive
          depends_on: d1
          params: {case: lower}
        - name: other
          kind: derive
          depends_on: s
    """

    func setPipeline(_ text: String) throws {
        try Data(text.utf8).write(to: root.appendingPathComponent("pipeline.yaml"))
    }

    func runner() throws -> PipelineRunner {
        try PipelineRunner.load(manifest: root.appendingPathComponent("job.yaml"), registry: testRegistry)
    }

    /// Stage name -> action for one run.
    func run(_ options: RunOptions = RunOptions(jobs: 2)) throws -> [String: StageOutcome.Action] {
        Dictionary(uniqueKeysWithValues: try runner().run(options).map { ($0.stage, $0.action) })
    }

    func file(_ stage: String, _ name: String) throws -> Data {
        try Data(contentsOf: workDirectory.appendingPathComponent("stages/\(stage)/\(name)"))
    }
}

final class RunnerTests: XCTestCase {
    func testSecondRunSkipsEverything() throws {
        let job = try TestJob()
        XCTAssertEqual(try job.run(), ["s": .ran, "d1": .ran, "d2": .ran, "other": .ran])
        XCTAssertEqual(String(decoding: try job.file("s", "part-00003.txt"), as: UTF8.self), "x 9 hello\n")
        XCTAssertEqual(String(decoding: try job.file("d2", "part-00000.txt"), as: UTF8.self), "x 0 hello\nx 1 hello\nx 2 hello\n")
        XCTAssertEqual(try job.run(), ["s": .skipped, "d1": .skipped, "d2": .skipped, "other": .skipped])
        let record = try XCTUnwrap(try job.runner().readRecord("s"))
        XCTAssertEqual(record.unitCount, 4)
        XCTAssertEqual(record.counts["lines"], 10)
        XCTAssertEqual(record.files["part-00000.txt"], SHA256.hex(of: try job.file("s", "part-00000.txt")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.workDirectory.appendingPathComponent("stages/s/progress.json").path))
        let events = try String(contentsOf: job.workDirectory.appendingPathComponent("events.jsonl"), encoding: .utf8)
        XCTAssertEqual(events.components(separatedBy: "\"event\":\"stage_skipped\"").count - 1, 4)
    }

    func testParamChangeRerunsThatStageAndDownstreamOnly() throws {
        let job = try TestJob()
        _ = try job.run()
        try job.setPipeline(TestJob.pipeline.replacingOccurrences(of: "      depends_on: s\n    - name: d2", with: "      depends_on: s\n      params: {case: lower}\n    - name: d2"))
        XCTAssertEqual(try job.run(), ["s": .skipped, "d1": .ran, "d2": .ran, "other": .skipped])
        XCTAssertEqual(String(decoding: try job.file("d1", "part-00000.txt"), as: UTF8.self), "x 0 hello\nx 1 hello\nx 2 hello\n")
    }

    func testExternalInputChangeRerunsAll() throws {
        let job = try TestJob()
        _ = try job.run()
        try Data("changed\n".utf8).write(to: job.input.appendingPathComponent("data.txt"))
        XCTAssertEqual(try job.run(), ["s": .ran, "d1": .ran, "d2": .ran, "other": .ran])
        XCTAssertEqual(String(decoding: try job.file("d1", "part-00000.txt"), as: UTF8.self), "X 0 CHANGED\nX 1 CHANGED\nX 2 CHANGED\n")
    }

    func testStageSelectionDownstreamAndForce() throws {
        let job = try TestJob()
        XCTAssertEqual(try job.run(RunOptions(stage: "d1")), ["s": .ran, "d1": .ran], "upstream is brought up to date, nothing else")
        XCTAssertEqual(try job.runner().status().map { "\($0.stage)=\($0.state.label)" }, ["s=done", "d1=done", "d2=not run", "other=not run"])
        XCTAssertEqual(try job.run(RunOptions(stage: "d1", downstream: true)), ["s": .skipped, "d1": .skipped, "d2": .ran])
        // --force reruns the named stage only; its outputs are identical, so downstream stays cached.
        XCTAssertEqual(try job.run(RunOptions(stage: "d1", force: true)), ["s": .skipped, "d1": .ran])
        XCTAssertEqual(try job.run(RunOptions(stage: "d1", downstream: true, force: true)), ["s": .skipped, "d1": .ran, "d2": .ran])
        XCTAssertEqual(try job.run(RunOptions(force: true)), ["s": .ran, "d1": .ran, "d2": .ran, "other": .ran])
        XCTAssertThrowsError(try job.run(RunOptions(stage: "d3"))) { error in
            XCTAssertEqual(error as? PipelineError, .unknownStage(name: "d3", suggestion: "d1"))
        }
    }

    func testInterruptedStageResumesFromLastCompleteUnit() throws {
        let job = try TestJob()
        try Data("2".utf8).write(to: job.input.appendingPathComponent("fail-at"))
        XCTAssertThrowsError(try job.run(RunOptions(jobs: 1)))
        let status = try job.runner().status()
        XCTAssertEqual(status.first?.state, .partial(completed: 2, total: 4, resumable: true))
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.workDirectory.appendingPathComponent("stages/s/stage.json").path))
        let firstUnit = try job.file("s", "part-00000.txt")
        // A leftover temporary file from a killed writer must not survive the resume.
        try Data("junk".utf8).write(to: job.workDirectory.appendingPathComponent("stages/s/.tmp.999.part-00002.txt"))
        try FileManager.default.removeItem(at: job.input.appendingPathComponent("fail-at"))
        let outcomes = try job.runner().run(RunOptions(jobs: 1))
        XCTAssertEqual(outcomes.first?.action, .resumed)
        XCTAssertEqual(outcomes.first?.record.unitsResumed, 2)
        XCTAssertEqual(try job.file("s", "part-00000.txt"), firstUnit)
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.workDirectory.appendingPathComponent("stages/s/.tmp.999.part-00002.txt").path))

        // Byte-identical to an uninterrupted run.
        let clean = try TestJob()
        _ = try clean.run()
        for name in ["part-00000.txt", "part-00001.txt", "part-00002.txt", "part-00003.txt", "total.txt"] {
            XCTAssertEqual(try job.file("s", name), try clean.file("s", name), name)
        }
        XCTAssertEqual(try job.runner().readRecord("s")?.outputHash, try clean.runner().readRecord("s")?.outputHash)
    }

    func testPartialUnitsFromOtherInputsAreNotReused() throws {
        let job = try TestJob()
        try Data("2".utf8).write(to: job.input.appendingPathComponent("fail-at"))
        XCTAssertThrowsError(try job.run(RunOptions(jobs: 1)))
        try Data("other\n".utf8).write(to: job.input.appendingPathComponent("data.txt"))
        XCTAssertEqual(try job.runner().status().first?.state, .partial(completed: 2, total: 4, resumable: false))
        try FileManager.default.removeItem(at: job.input.appendingPathComponent("fail-at"))
        let outcomes = try job.runner().run(RunOptions(jobs: 1))
        XCTAssertEqual(outcomes.first?.action, .ran)
        XCTAssertEqual(String(decoding: try job.file("s", "part-00000.txt"), as: UTF8.self), "x 0 other\nx 1 other\nx 2 other\n")
    }

    func testMissingOutputMakesStageRerun() throws {
        let job = try TestJob()
        _ = try job.run()
        try FileManager.default.removeItem(at: job.workDirectory.appendingPathComponent("stages/other/part-00001.txt"))
        XCTAssertEqual(try job.runner().status().last?.state.label, "stale")
        XCTAssertEqual(try job.run(), ["s": .skipped, "d1": .skipped, "d2": .skipped, "other": .ran])
    }

    func testLockContentionNamesTheOtherProcess() throws {
        let job = try TestJob()
        let lock = try WorkDirectoryLock(workDirectory: job.workDirectory, command: "kdad run holder-test")
        XCTAssertNotNil(WorkDirectoryLock.currentHolder(workDirectory: job.workDirectory))
        XCTAssertThrowsError(try job.run()) { error in
            guard case let .locked(directory, holder)? = error as? PipelineError else { return XCTFail("\(error)") }
            XCTAssertEqual(directory, job.workDirectory.path)
            XCTAssertTrue(holder.contains("pid \(getpid())"), holder)
            XCTAssertTrue(holder.contains("kdad run holder-test"), holder)
            XCTAssertTrue("\(error)".contains("in use by another kdad run"))
        }
        lock.release()
        XCTAssertNil(WorkDirectoryLock.currentHolder(workDirectory: job.workDirectory))
        XCTAssertEqual(try job.run()["s"], .ran)
    }

    func testStatusReportsStaleDownstream() throws {
        let job = try TestJob()
        XCTAssertEqual(try job.runner().status().map(\.state.label), ["not run", "not run", "not run", "not run"])
        _ = try job.run()
        XCTAssertEqual(try job.runner().status().map(\.state.label), ["done", "done", "done", "done"])
        try Data("changed\n".utf8).write(to: job.input.appendingPathComponent("data.txt"))
        let states = try job.runner().status()
        XCTAssertEqual(states.map(\.state.label), ["stale", "stale", "stale", "stale"])
        XCTAssertEqual(states[1].state, .stale(reason: "upstream s not up to date"))
    }
}

extension StageState {
    var label: String {
        switch self {
        case .done: return "done"
        case .stale: return "stale"
        case .partial: return "partial"
        case .notRun: return "not run"
        }
    }
}
