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

    func testSIGKILLAtRandomPointsThenResumeGivesByteIdenticalOutputs() throws {
        guard FileManager.default.isExecutableFile(atPath: kdad.path) else {
            return XCTFail("built kdad not found at \(kdad.path); build with `swift build --build-tests`")
        }
        let root = try makeTemporaryDirectory("kdad-kill")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let demo = try DemoDataset.write(to: root, images: 400, side: 40, lots: 4, seed: 11)
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        let reference = root.appendingPathComponent("reference.yaml")
        try Data(text.replacingOccurrences(of: "work_dir: work", with: "work_dir: work-ref").utf8).write(to: reference)

        let started = Date()
        let uninterrupted = try runKdad(["run", reference.path, "--quiet"])
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0)
        // Kill moments scale with this machine's speed (debug or release build, loaded or idle).
        let fullRun = Date().timeIntervalSince(started)

        var generator = SplitMix64(seed: 2024)
        var kills = 0, partialSeen = false
        let work = root.appendingPathComponent("work")
        for _ in 0..<10 {
            let process = try runKdad(["run", demo.manifest.path, "--quiet", "--jobs", "2"])
            let delay = fullRun * (0.05 + 0.9 * Double(generator.next() % 1000) / 1000)
            Thread.sleep(forTimeInterval: delay)
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
        XCTAssertGreaterThan(kills, 0, "no run was killed mid-way; the test proved nothing")
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
