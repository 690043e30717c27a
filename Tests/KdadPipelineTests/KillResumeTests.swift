import XCTest
import KdadShards
import KdadTestSupport
@testable import KdadPipeline

/// SIGKILL a real `kdad run` at seeded random moments, resume, and compare with an uninterrupted run.
final class KillResumeTests: XCTestCase {
    var kdad: URL { builtProductsDirectory.appendingPathComponent("kdad") }

    func runKdad(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = kdad
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Every file of every stage directory, by relative path (stage.json holds timings: compared via hashes).
    func stageFiles(_ work: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let stages = work.appendingPathComponent("stages")
        guard let enumerator = FileManager.default.enumerator(at: stages, includingPropertiesForKeys: nil) else { return files }
        for case let url as URL in enumerator where !url.hasDirectoryPath && url.lastPathComponent != "stage.json" {
            let relative = String(url.standardizedFileURL.path.dropFirst(stages.standardizedFileURL.path.count + 1))
            files[relative] = try Data(contentsOf: url)
        }
        return files
    }

    /// Completed work units so far, from the run's JSON-lines event log (0 before the first run).
    func unitsDone(_ work: URL) throws -> Int {
        guard let data = FileManager.default.contents(atPath: work.appendingPathComponent("events.jsonl").path) else { return 0 }
        return String(decoding: data, as: UTF8.self).components(separatedBy: "\"unit_done\"").count - 1
    }

    func testSIGKILLAtRandomPointsThenResumeGivesByteIdenticalOutputs() throws {
        guard FileManager.default.isExecutableFile(atPath: kdad.path) else {
            return XCTFail("built kdad not found at \(kdad.path); build with `swift build --build-tests`")
        }
        let root = try makeTemporaryDirectory("kdad-kill")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let demo = try DemoDataset.write(to: root, images: 400, side: 40, lots: 4, seed: 11)
        // Small work units (4 images): many unit boundaries, so 20+ kills land inside the stages.
        let pipeline = root.appendingPathComponent("pipeline.yaml")
        let pipelineText = try String(contentsOf: pipeline, encoding: .utf8)
        XCTAssertTrue(pipelineText.contains("images_per_unit: 16"), pipelineText)
        try Data(pipelineText.replacingOccurrences(of: "images_per_unit: 16", with: "images_per_unit: 4").utf8).write(to: pipeline)
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        let reference = root.appendingPathComponent("reference.yaml")
        try Data(text.replacingOccurrences(of: "work_dir: work", with: "work_dir: work-ref").utf8).write(to: reference)

        let started = Date()
        let uninterrupted = try runKdad(["run", reference.path, "--quiet"])
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0)
        let fullRun = Date().timeIntervalSince(started)
        let referenceUnits = try unitsDone(root.appendingPathComponent("work-ref"))
        XCTAssertGreaterThanOrEqual(referenceUnits, 150, "the kill test needs many work units to land kills inside stages")
        // Mean time per unit on this machine (debug or release build, loaded or idle).
        let unitTime = fullRun / Double(max(referenceUnits, 1))

        // Kills are driven by observed progress, not by wall-clock guesses: each run is killed at a
        // seeded random moment within about one unit's time after it completed a new unit, so every kill
        // lands while a stage is working (often mid-write), whatever the machine's speed or load.
        var generator = SplitMix64(seed: 2024)
        var kills = 0, partialSeen = false
        let work = root.appendingPathComponent("work")
        for _ in 0..<200 where kills < 24 {
            let before = try unitsDone(work)
            let process = try runKdad(["run", demo.manifest.path, "--quiet", "--jobs", "2"])
            let deadline = Date().addingTimeInterval(max(60, fullRun * 4))
            while process.isRunning, try unitsDone(work) <= before, Date() < deadline { usleep(1_000) }
            Thread.sleep(forTimeInterval: unitTime * Double(generator.next() % 1000) / 1000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal {
                kills += 1
            } else {
                XCTAssertEqual(process.terminationStatus, 0)
                break
            }
            // Whatever the moment of death: every published shard is complete, and status reads.
            for (name, _) in try stageFiles(work) where name.hasSuffix(".shard") {
                let reader = try ShardReader(url: work.appendingPathComponent("stages/\(name)"))
                XCTAssertEqual(try reader.verifyAllRecords(), [], name)
            }
            let states = try PipelineRunner.load(manifest: demo.manifest).status()
            if states.contains(where: { if case .partial = $0.state { return true }; return false }) { partialSeen = true }
        }
        print("kill-and-resume: uninterrupted run \(String(format: "%.2f", fullRun)) s, \(kills) runs killed")
        XCTAssertGreaterThanOrEqual(kills, 20, "fewer than 20 runs were killed mid-way")
        XCTAssertTrue(partialSeen, "no kill landed inside a stage")

        let final = try runKdad(["run", demo.manifest.path, "--quiet"])
        final.waitUntilExit()
        XCTAssertEqual(final.terminationStatus, 0)

        let resumed = try stageFiles(work), clean = try stageFiles(root.appendingPathComponent("work-ref"))
        XCTAssertEqual(resumed.keys.sorted(), clean.keys.sorted())
        for (name, data) in clean { XCTAssertTrue(resumed[name] == data, "\(name) differs after kill-and-resume") }
        let runner = try PipelineRunner.load(manifest: demo.manifest), referenceRunner = try PipelineRunner.load(manifest: reference)
        for stage in ["ingest", "resize"] {
            XCTAssertEqual(runner.readRecord(stage)?.outputHash, referenceRunner.readRecord(stage)?.outputHash, stage)
        }
        XCTAssertEqual(try runner.status().map { "\($0.state)".hasPrefix("done") }, [true, true])
    }
}
