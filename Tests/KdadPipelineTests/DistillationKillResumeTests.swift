import XCTest
import KdadShards
import KdadTestSupport
@testable import KdadPipeline

/// SIGKILL a real `kdad run` inside the features, train and score stages (at seeded moments after
/// each stage has started), resume, and compare every output byte with an uninterrupted run.
final class DistillationKillResumeTests: XCTestCase {
    var kdad: URL { builtProductsDirectory.appendingPathComponent("kdad") }

    func launch(_ manifest: URL) throws -> Process {
        let process = Process()
        process.executableURL = kdad
        process.arguments = ["run", manifest.path, "--quiet", "--jobs", "2"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Every file below `stages/` by relative path, except the records (they hold timings).
    func stageFiles(_ work: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let stages = work.appendingPathComponent("stages").standardizedFileURL
        guard let enumerator = FileManager.default.enumerator(at: stages, includingPropertiesForKeys: nil) else { return files }
        for case let url as URL in enumerator where !url.hasDirectoryPath && url.lastPathComponent != "stage.json" {
            files[String(url.standardizedFileURL.path.dropFirst(stages.path.count + 1))] = try Data(contentsOf: url)
        }
        return files
    }

    func testSIGKILLInFeaturesTrainAndScoreThenResumeGivesByteIdenticalOutputs() throws {
        guard FileManager.default.isExecutableFile(atPath: kdad.path) else {
            return XCTFail("built kdad not found at \(kdad.path); build with `swift build --build-tests`")
        }
        let job = try DistillationJob.make("kdad-distill-kill", images: 36, pipeline: DistillationJob.pipeline(epochs: 4, imagesPerUnit: 6))
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let text = try String(contentsOf: job.manifest, encoding: .utf8)
        let reference = job.root.appendingPathComponent("reference.yaml")
        try Data(text.replacingOccurrences(of: "work_dir: work", with: "work_dir: work-ref").utf8).write(to: reference)
        let uninterrupted = try launch(reference)
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0)
        let referenceRunner = try PipelineRunner.load(manifest: reference)
        let stages = job.work.appendingPathComponent("stages")

        // Kill only after this run has written something new into the stage (a unit, an epoch
        // checkpoint), then after a seeded fraction of a unit's time: the kill lands mid-stage.
        func progressed(_ stage: String, since start: Date) -> Bool {
            let directory = stages.appendingPathComponent(stage)
            guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.contentModificationDateKey]) else { return false }
            for case let url as URL in enumerator {
                if let modified = try? url.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate, modified >= start { return true }
            }
            return false
        }
        var generator = SplitMix64(seed: 99)
        var killedInside: [String: Int] = [:]
        for stage in ["features", "train", "score"] {
            let record = try XCTUnwrap(referenceRunner.readRecord(stage))
            let steps = stage == "train" ? 4 : max(record.unitCount, 1)
            for _ in 0..<3 {
                let start = Date()
                let process = try launch(job.manifest)
                let deadline = start.addingTimeInterval(120)
                while process.isRunning, !progressed(stage, since: start), Date() < deadline { Thread.sleep(forTimeInterval: 0.002) }
                Thread.sleep(forTimeInterval: record.durationSeconds / Double(steps) * Double(generator.next() % 1000) / 1000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
                let stageDone = FileManager.default.fileExists(atPath: stages.appendingPathComponent("\(stage)/stage.json").path)
                if process.terminationReason == .uncaughtSignal, !stageDone { killedInside[stage, default: 0] += 1 }
                // Whatever the moment of death, every published shard is complete.
                for (name, _) in try stageFiles(job.work) where name.hasSuffix(".shard") {
                    XCTAssertEqual(try ShardReader(url: stages.appendingPathComponent(name)).verifyAllRecords(), [], name)
                }
            }
        }
        print("distillation kill-and-resume: kills inside a stage \(killedInside)")
        for stage in ["features", "train", "score"] { XCTAssertGreaterThan(killedInside[stage] ?? 0, 0, "no kill landed inside \(stage); the test proved nothing for it") }

        let final = try launch(job.manifest)
        final.waitUntilExit()
        XCTAssertEqual(final.terminationStatus, 0)
        let resumed = try stageFiles(job.work), clean = try stageFiles(job.root.appendingPathComponent("work-ref"))
        XCTAssertEqual(resumed.keys.sorted(), clean.keys.sorted())
        for (name, data) in clean { XCTAssertTrue(resumed[name] == data, "\(name) differs after kill-and-resume") }
        let runner = try PipelineRunner.load(manifest: job.manifest)
        for stage in ["features", "train", "score", "evaluate"] {
            XCTAssertEqual(runner.readRecord(stage)?.outputHash, referenceRunner.readRecord(stage)?.outputHash, stage)
        }
        // Training continued from an epoch checkpoint at least once (not only restarted from scratch).
        let events = try String(contentsOf: job.work.appendingPathComponent("events.jsonl"), encoding: .utf8)
        XCTAssertTrue(events.contains("train_resumed"), "no run resumed training from its epoch checkpoint")
    }
}
