import Foundation
import XCTest
@testable import KdadSupport

final class CRC32Tests: XCTestCase {
    func testStandardCheckValueAndPieces() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        // Slicing-by-8 and the byte-at-a-time tail agree with each other at every split.
        let bytes = (0..<37).map { UInt8(truncatingIfNeeded: $0 &* 73 &+ 5) }
        let whole = CRC32.checksum(bytes)
        for split in 0...bytes.count {
            XCTAssertEqual(CRC32.checksum(Array(bytes[split...]), continuing: CRC32.checksum(Array(bytes[..<split]))), whole, "split \(split)")
        }
    }
}

final class ZipArchiveTests: XCTestCase {
    /// The text `deflatedFixture` holds: 60 CSV-like lines.
    static let fixtureText = (0..<60).map { i in
        String(format: "lot%d/part_%03d.png,%@\n", i % 4, i, i % 5 == 0 ? "defect" : "good")
    }.joined()

    /// Raw DEFLATE (one dynamic-Huffman block) of `fixtureText`, made once with Python's zlib:
    ///     c = zlib.compressobj(9, zlib.DEFLATED, -15); base64.b64encode(c.compress(text) + c.flush())
    /// (1404 bytes in, 205 out, zlib.crc32(text) = 0x81974786).
    static let deflatedFixture = """
        ddHLCsIwEEDRvd8imsyjj68RsbWbYork/xGFBFtuthO4meGsKYfrdn/nWwjhsr2W8zQ/50c+rSnH8hB/D0tK03csZSy7sZax7sa1brtxbfvh01rvu\
        N5zfeD6iJvH46WlHiPWo2A9KtcNN4/HS2u943rP9YHrI24uLVNhU2FTYVNhU2mZCpsKmwqbCptqy1TZVNlU2VTZVFumyqbKpsqmyqbWMjU2NTY1Nj\
        U2tZapsamxqbGpsam3TJ1NnU2dTZ1NvWXqbOps6mzqf5d+AA==
        """

    struct Member {
        var name: String
        var data: [UInt8]
        /// What is stored: `data` itself, or compressed bytes for method 8.
        var stored: [UInt8]
        var method: UInt16 = 0
        var flags: UInt16 = 0
        var crc: UInt32? = nil
    }

    /// A minimal zip writer for the tests: local headers, the central directory, the end record, and
    /// optionally the zip64 end record + locator with the classic fields saturated.
    static func makeZip(_ members: [Member], zip64: Bool = false) -> Data {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        var offsets: [Int] = []
        for member in members {
            offsets.append(out.count)
            u32(0x0403_4B50); u16(20); u16(member.flags); u16(member.method); u16(0); u16(0)
            u32(member.crc ?? CRC32.checksum(member.data)); u32(UInt32(member.stored.count)); u32(UInt32(member.data.count))
            u16(UInt16(member.name.utf8.count)); u16(0)
            out += Array(member.name.utf8)
            out += member.stored
        }
        let directoryStart = out.count
        for (member, offset) in zip(members, offsets) {
            u32(0x0201_4B50); u16(20); u16(20); u16(member.flags); u16(member.method); u16(0x6000); u16(0x5821)
            u32(member.crc ?? CRC32.checksum(member.data)); u32(UInt32(member.stored.count)); u32(UInt32(member.data.count))
            u16(UInt16(member.name.utf8.count)); u16(0); u16(0); u16(0); u16(0); u32(0); u32(UInt32(offset))
            out += Array(member.name.utf8)
        }
        let directorySize = out.count - directoryStart
        if zip64 {
            let record = out.count
            u32(0x0606_4B50); u64(44); u16(45); u16(45); u32(0); u32(0)
            u64(UInt64(members.count)); u64(UInt64(members.count)); u64(UInt64(directorySize)); u64(UInt64(directoryStart))
            u32(0x0706_4B50); u32(0); u64(UInt64(record)); u32(1)
            u32(0x0605_4B50); u16(0); u16(0); u16(0xFFFF); u16(0xFFFF); u32(0xFFFF_FFFF); u32(0xFFFF_FFFF); u16(0)
        } else {
            u32(0x0605_4B50); u16(0); u16(0); u16(UInt16(members.count)); u16(UInt16(members.count))
            u32(UInt32(directorySize)); u32(UInt32(directoryStart)); u16(0)
        }
        return Data(out)
    }

    func fixtureMembers() throws -> [Member] {
        let text = Array(Self.fixtureText.utf8)
        let compressed = [UInt8](try XCTUnwrap(Data(base64Encoded: Self.deflatedFixture)))
        return [
            Member(name: "a/stored.txt", data: Array("stored bytes".utf8), stored: Array("stored bytes".utf8)),
            Member(name: "b/index.csv", data: text, stored: compressed, method: 8),
            Member(name: "empty", data: [], stored: []),
        ]
    }

    func testFixtureIsWhatPythonMade() throws {
        XCTAssertEqual(Self.fixtureText.utf8.count, 1404)
        XCTAssertEqual(CRC32.checksum(Array(Self.fixtureText.utf8)), 0x8197_4786)
    }

    func testStoredAndDeflatedEntriesReadBack() throws {
        for zip64 in [false, true] {
            let archive = try ZipArchive(Self.makeZip(try fixtureMembers(), zip64: zip64))
            XCTAssertEqual(archive.entries.map(\.name), ["a/stored.txt", "b/index.csv", "empty"], "zip64: \(zip64)")
            XCTAssertEqual(archive.entries.map(\.method), [0, 8, 0])
            XCTAssertEqual(archive.entries[1].dosModified, 0x5821_6000)
            XCTAssertEqual(try archive.contents(of: archive.entries[0]), Data("stored bytes".utf8))
            let index = try XCTUnwrap(archive.entry(named: "b/index.csv"))
            XCTAssertEqual(index.compressedSize, 205)
            XCTAssertEqual(String(decoding: try archive.contents(of: index), as: UTF8.self), Self.fixtureText)
            XCTAssertEqual(try archive.contents(of: archive.entries[2]), Data())
            // Reading an entry straight from the bytes, without the directory, gives the same.
            XCTAssertEqual(try ZipArchive.contents(of: index, in: archive.bytes), Data(Self.fixtureText.utf8))
            XCTAssertNil(archive.entry(named: "missing"))
        }
    }

    func assertZipError(_ body: @autoclosure () throws -> some Any, _ kind: ZipError.Kind, mentioning text: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? ZipError else { return XCTFail("not a ZipError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            XCTAssertTrue(error.description.contains(text), "\(error)", file: file, line: line)
        }
    }

    func testDamagedEntriesAreRefusedWithTypedErrors() throws {
        var members = try fixtureMembers()
        // Stored bytes that do not match the recorded CRC.
        members[0].crc = 0x1234_5678
        // Deflated bytes cut short.
        members[1].stored.removeLast(40)
        let archive = try ZipArchive(Self.makeZip(members))
        assertZipError(try archive.contents(of: archive.entries[0]), .checksumMismatch, mentioning: "a/stored.txt: CRC-32 mismatch")
        assertZipError(try archive.contents(of: archive.entries[1]), .malformed, mentioning: "b/index.csv: corrupt deflate data")

        let refused = try ZipArchive(Self.makeZip([
            Member(name: "locked", data: [1], stored: [1], flags: 1),
            Member(name: "bzip2", data: [1], stored: [1], method: 12),
        ]))
        assertZipError(try refused.contents(of: refused.entries[0]), .unsupported, mentioning: "encrypted")
        assertZipError(try refused.contents(of: refused.entries[1]), .unsupported, mentioning: "method 12")
    }

    func testDeflatedEntryMayNotInflatePastItsDeclaredSize() throws {
        var members = try fixtureMembers()
        members[1].data.removeLast(4)  // the directory now declares 1400 bytes
        let archive = try ZipArchive(Self.makeZip(members))
        assertZipError(try archive.contents(of: archive.entries[1]), .malformed, mentioning: "exceeds the declared size")
    }

    func testTruncatedOrForeignBytesAreNotAnArchive() throws {
        let zip = Self.makeZip(try fixtureMembers())
        assertZipError(try ZipArchive(zip.prefix(zip.count - 10)), .truncated, mentioning: "end-of-central-directory record not found")
        assertZipError(try ZipArchive(Data("short".utf8)), .truncated, mentioning: "too short")
        // The directory survives but the data it points at is cut off.
        var members = try fixtureMembers()
        members[0].data = Array(repeating: 7, count: 64)
        members[0].stored = members[0].data
        let whole = Self.makeZip(members)
        let archive = try ZipArchive(whole)
        let cut = whole.prefix(40)
        assertZipError(try ZipArchive.contents(of: archive.entries[0], in: cut), .truncated, mentioning: "runs past")
    }

    func testInflateDecodesAllBlockTypes() throws {
        // Stored block, then the fixture's dynamic block; fixed blocks are covered by the pipeline's tests.
        XCTAssertEqual(try Inflate.decompress([0x01, 0x03, 0x00, 0xFC, 0xFF, 0x61, 0x62, 0x63], expectedSize: 3), Array("abc".utf8))
        let compressed = [UInt8](try XCTUnwrap(Data(base64Encoded: Self.deflatedFixture)))
        XCTAssertEqual(try Inflate.decompress(compressed, expectedSize: 0), Array(Self.fixtureText.utf8))
        XCTAssertThrowsError(try Inflate.decompress(compressed, expectedSize: 0, limit: 100))
        XCTAssertThrowsError(try Inflate.decompress([0x07], expectedSize: 0), "block type 3 is invalid")
    }
}
