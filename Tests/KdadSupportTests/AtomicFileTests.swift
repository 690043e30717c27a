import Foundation
import XCTest
import KdadTestSupport
@testable import KdadSupport

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesContentAndLeavesNoTemporaries() throws {
        let directory = try makeTemporaryDirectory("kdad-atomic")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("result.json")
        try AtomicFile.write(Data("first".utf8), to: target)
        XCTAssertEqual(try Data(contentsOf: target), Data("first".utf8))
        let big = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try AtomicFile.write(big, to: target)
        XCTAssertEqual(try Data(contentsOf: target), big)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["result.json"])
    }

    func testBodyWritesAtTemporaryNameThenPublishes() throws {
        let directory = try makeTemporaryDirectory("kdad-atomic-body")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("out.bin")
        var seen: URL?
        try AtomicFile.write(to: target) { temporary in
            seen = temporary
            XCTAssertFalse(FileManager.default.fileExists(atPath: target.path), "nothing is published before the body ends")
            try AtomicFile.writePlain(Data([1, 2, 3]), to: temporary)
        }
        let temporary = try XCTUnwrap(seen)
        XCTAssertEqual(temporary.deletingLastPathComponent().path, directory.path, "same directory, so rename is atomic")
        XCTAssertTrue(temporary.lastPathComponent.hasPrefix(AtomicFile.temporaryPrefix))
        XCTAssertEqual(try Data(contentsOf: target), Data([1, 2, 3]))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["out.bin"])
    }

    struct BodyFailure: Error, Equatable {}

    func testFailingBodyKeepsOldFileAndRemovesTemporary() throws {
        let directory = try makeTemporaryDirectory("kdad-atomic-fail")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("keep.txt")
        try AtomicFile.write(Data("old".utf8), to: target)
        XCTAssertThrowsError(try AtomicFile.write(to: target) { temporary in
            try AtomicFile.writePlain(Data("half".utf8), to: temporary)
            throw BodyFailure()
        }) { error in XCTAssertEqual(error as? BodyFailure, BodyFailure(), "the body's own error comes through unchanged") }
        XCTAssertEqual(try Data(contentsOf: target), Data("old".utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["keep.txt"])
    }

    func testMissingDirectoryIsATypedErrorNamingThePath() throws {
        let directory = try makeTemporaryDirectory("kdad-atomic-missing")
        defer { try? FileManager.default.removeItem(at: directory) }
        let target = directory.appendingPathComponent("no/such/dir/file.txt")
        do {
            try AtomicFile.write(Data("x".utf8), to: target)
            XCTFail("writing into a missing directory must fail")
        } catch {
            XCTAssertTrue(error.path.hasPrefix(directory.appendingPathComponent("no/such/dir").path), error.path)
            XCTAssertTrue(error.reason.contains("cannot create"), error.reason)
            XCTAssertTrue(error.description.hasPrefix(error.path + ": "), error.description)
        }
    }

    func testRemoveLeftoversDeletesOnlyHiddenFiles() throws {
        let directory = try makeTemporaryDirectory("kdad-atomic-leftovers")
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in [".tmp.123.1.unit-0001.json", ".shard-0.kds.tmp-99", "unit-0002.json"] {
            try Data(name.utf8).write(to: directory.appendingPathComponent(name))
        }
        AtomicFile.removeLeftovers(in: directory)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["unit-0002.json"])
    }
}
