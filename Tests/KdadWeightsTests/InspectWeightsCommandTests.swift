import Foundation
import KdadTestSupport
import XCTest

/// Runs the built `kdad inspect-weights` as a child process.
final class InspectWeightsCommandTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    private func runKdad(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let executable = builtProductsDirectory.appendingPathComponent("kdad")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw XCTSkip("kdad is not built at \(executable.path); run swift build --build-tests")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    func testJSONReportOfTheZipFixture() throws {
        let result = try runKdad(["inspect-weights", "--json", fixtures.appendingPathComponent("checkpoint-zip.pth").path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["format"] as? String, "pytorch-zip")
        XCTAssertEqual(report["tensor_count"] as? Int, 21)
        // 48 + 4 + 1 + 24 + 12 + 24 + 12 + 5 + 3 + 2 + 2 + 2 + 2 + 3 + 3 + 2 + 0 + 4 + 2 + 2 + 2
        XCTAssertEqual(report["parameter_count"] as? Int, 159)
        let tensors = try XCTUnwrap(report["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.first?["name"] as? String, "conv.weight")
        XCTAssertEqual(tensors.first?["shape"] as? [Int], [4, 3, 2, 2])
        XCTAssertEqual(tensors.first?["dtype"] as? String, "F32")
        XCTAssertEqual((report["metadata"] as? [String: String])?["epoch"], "7")
    }

    func testTableReportAndErrors() throws {
        let table = try runKdad(["inspect-weights", fixtures.appendingPathComponent("checkpoint-legacy.pth").path])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("format:     pytorch-legacy"), table.stdout)
        XCTAssertTrue(table.stdout.contains("parameters: 159 "), table.stdout)
        XCTAssertNotNil(table.stdout.range(of: #"transposed\s+F32\s+\[6, 4\]\s+24"#, options: .regularExpression), table.stdout)

        // Deflated zip entries are read (the shared zip reader inflates them): same report as the stored zip.
        let deflated = try runKdad(["inspect-weights", fixtures.appendingPathComponent("checkpoint-deflated.pth").path])
        XCTAssertEqual(deflated.status, 0, deflated.stderr)
        XCTAssertTrue(deflated.stdout.contains("format:     pytorch-zip"), deflated.stdout)
        XCTAssertTrue(deflated.stdout.contains("parameters: 159 "), deflated.stdout)

        // A damaged file fails with its path and the reason on stderr.
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cut = directory.appendingPathComponent("cut-deflated.pth")
        let bytes = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-deflated.pth"))
        try bytes.prefix(bytes.count - 30).write(to: cut)
        let failed = try runKdad(["inspect-weights", cut.path])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.contains("cut-deflated.pth") && failed.stderr.contains("end-of-central-directory"), failed.stderr)
    }
}
