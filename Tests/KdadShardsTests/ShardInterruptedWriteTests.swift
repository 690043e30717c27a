import Foundation
import XCTest
import KdadShards
import KdadTestSupport

/// Spawns `kdad internal write-shard` and kills it with SIGKILL part-way through.
final class ShardInterruptedWriteTests: XCTestCase {
    private let recordCount = 6
    private let recordBytes = 3000
    private let seed: UInt64 = 11

    private func kdadExecutable() throws -> URL {
        let url = builtProductsDirectory.appendingPathComponent("kdad")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            // A failure, not a skip: without the child process this test would check nothing.
            XCTFail("the kdad executable is not at \(url.path); build the package (swift build --build-tests) first")
            throw CocoaError(.fileNoSuchFile)
        }
        return url
    }

    /// Reads a child's stdout one line at a time (blocking), keeping bytes after the last newline.
    private struct LineReader {
        let handle: FileHandle
        var pending = Data()

        mutating func nextLine() -> String? {
            while true {
                if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[(newline + 1)...])
                    return line
                }
                let chunk = handle.availableData
                if chunk.isEmpty { return nil }
                pending.append(chunk)
            }
        }
    }

    private func startWriter(output: URL, delayMilliseconds: Int) throws -> (Process, LineReader) {
        let process = Process()
        process.executableURL = try kdadExecutable()
        process.arguments = ["internal", "write-shard", "--output", output.path, "--records", "\(recordCount)",
                             "--record-bytes", "\(recordBytes)", "--delay-ms", "\(delayMilliseconds)", "--seed", "\(seed)"]
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        return (process, LineReader(handle: stdout.fileHandleForReading))
    }

    func testAnUninterruptedWriteProducesTheExpectedShard() throws {
        let directory = try temporaryDirectory(for: self)
        let output = directory.appendingPathComponent("complete.shard")
        let (process, lines) = try startWriter(output: output, delayMilliseconds: 0)
        var reader = lines
        var printed: [String] = []
        while let line = reader.nextLine() { printed.append(line) }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(printed.count, recordCount + 2)
        XCTAssertEqual(printed.last, "finished \(output.standardizedFileURL.path)")

        let shard = try ShardReader(url: output)
        XCTAssertEqual(shard.count, recordCount)
        for index in 0..<recordCount {
            let expected = try ShardSyntheticData.testRecord(index: index, payloadBytes: recordBytes, seed: seed)
            XCTAssertEqual(try shard.record(forKey: expected.key), expected)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["complete.shard"])
    }

    func testKillingTheWriterLeavesNoFileAtTheFinalPathAndAnUnreadableTempFile() throws {
        // Kill after the header only, after some records, and after every record but before finish().
        for recordsBeforeKill in [0, 1, 3, recordCount] {
            let directory = try temporaryDirectory(for: self)
            let output = directory.appendingPathComponent("killed.shard")
            let (process, lines) = try startWriter(output: output, delayMilliseconds: 400)
            var reader = lines
            let temporaryLine = try XCTUnwrap(reader.nextLine())
            XCTAssertTrue(temporaryLine.hasPrefix("temporary "), temporaryLine)
            let temporaryPath = String(temporaryLine.dropFirst("temporary ".count))
            for index in 0..<recordsBeforeKill {
                XCTAssertEqual(reader.nextLine(), "record \(index)")
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, "k = \(recordsBeforeKill)")
            XCTAssertEqual(process.terminationStatus, SIGKILL)

            XCTAssertFalse(FileManager.default.fileExists(atPath: output.path), "k = \(recordsBeforeKill): a file exists at the final path")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [".killed.shard.tmp-\(process.processIdentifier)"])
            let leftover = URL(fileURLWithPath: temporaryPath)
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: leftover.path)[.size] as? Int)
            XCTAssertGreaterThanOrEqual(size, ShardFormat.headerSize + recordsBeforeKill * 100, "records written before the kill should be on disk")
            guard case .truncated(path: leftover.path, _)? = expectShardError({ try ShardReader(url: leftover) }, "k = \(recordsBeforeKill)") else {
                return XCTFail("the leftover temp file after \(recordsBeforeKill) records must read as truncated")
            }
        }
    }
}
