import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// The `kdad` binary's exit statuses and messages, as cron and scripts see them.
final class CommandLineTests: XCTestCase {
    func runKdad(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let kdad = builtProductsDirectory.appendingPathComponent("kdad")
        guard FileManager.default.isExecutableFile(atPath: kdad.path) else {
            XCTFail("built kdad not found at \(kdad.path)")
            return (-1, "", "")
        }
        let process = Process()
        process.executableURL = kdad
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    func testInvalidManifestExitsTwoWithLocation() throws {
        let root = try makeTemporaryDirectory("kdad-cli")
        let demo = try DemoDataset.write(to: root, images: 5, side: 8, lots: 1, seed: 1)
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "  inputs:", with: "  inptus:").utf8).write(to: demo.manifest)
        let result = try runKdad(["run", demo.manifest.path])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.error.contains("\(demo.manifest.path):7:3: unknown key 'inptus' in 'job' (did you mean 'inputs'?)"), result.error)
    }

    func testLockedWorkDirExitsThreeNamingTheHolder() throws {
        let root = try makeTemporaryDirectory("kdad-cli-lock")
        let demo = try DemoDataset.write(to: root, images: 5, side: 8, lots: 1, seed: 1)
        let lock = try WorkDirectoryLock(workDirectory: root.appendingPathComponent("work"), command: "kdad run nightly")
        let blocked = try runKdad(["run", demo.manifest.path])
        XCTAssertEqual(blocked.status, 3)
        XCTAssertTrue(blocked.error.contains("is in use by another kdad run (pid \(getpid())"), blocked.error)
        let status = try runKdad(["status", demo.manifest.path])
        XCTAssertEqual(status.status, 0)
        XCTAssertTrue(status.output.contains("a run is in progress: pid \(getpid())"), status.output)
        lock.release()
        let run = try runKdad(["run", demo.manifest.path])
        XCTAssertEqual(run.status, 0, run.error)
        XCTAssertTrue(run.output.contains("ingest: done"), run.output)
        let after = try runKdad(["status", demo.manifest.path])
        XCTAssertTrue(after.output.contains("ingest  done     5 images ingested, 0 quarantined, 3 lots"), after.output)
        XCTAssertTrue(after.output.contains("resize  done     5 images resized to 32x32 (area), 3 channels"), after.output)
    }
}
