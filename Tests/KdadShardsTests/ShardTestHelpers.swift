import Foundation
import XCTest
import KdadShards
import KdadTestSupport

/// Runs `body` and returns the `ShardError` it throws; fails the test if it throws nothing or another type.
func expectShardError<T>(_ body: () throws -> T, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) -> ShardError? {
    do {
        _ = try body()
        XCTFail("expected a ShardError but the call succeeded. \(message)", file: file, line: line)
    } catch let error as ShardError {
        return error
    } catch {
        XCTFail("expected a ShardError, got \(type(of: error)): \(error). \(message)", file: file, line: line)
    }
    return nil
}

/// A temporary directory removed when the test ends.
func temporaryDirectory(for testCase: XCTestCase) throws -> URL {
    let directory = try makeTemporaryDirectory("kdad-shards")
    testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
    return directory
}

/// Writes `records` to a new shard at `url`.
@discardableResult
func writeShard(_ records: [ShardRecord], to url: URL, level: Int = 3) throws -> [ShardIndexEntry] {
    let writer = try ShardWriter(url: url, compressionLevel: level)
    for record in records { try writer.append(record) }
    return try writer.finish()
}

func littleEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
}

func littleEndianUInt64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}

func storeLittleEndianUInt32(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
}

/// Resident set size of this process in bytes, from /proc/self/status (Linux).
func residentMemoryBytes() throws -> Int {
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else {
        throw XCTSkip("no VmRSS line in /proc/self/status")
    }
    return kilobytes * 1024
}
