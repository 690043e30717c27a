import XCTest
@testable import KdadPipeline

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(of: ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(of: String(repeating: "a", count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Streaming in odd-sized pieces must equal one-shot hashing (buffer boundary handling).
    func testStreamingMatchesOneShot() {
        let bytes = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
        var hasher = SHA256()
        var offset = 0
        for size in [1, 63, 64, 65, 2, 127, 300] where offset < bytes.count {
            let end = min(bytes.count, offset + size)
            hasher.update(bytes[offset..<end])
            offset = end
        }
        hasher.update(bytes[offset...])
        XCTAssertEqual(hasher.finalizeHex(), SHA256.hex(of: bytes))
    }
}

final class GlobTests: XCTestCase {
    func testPatterns() throws {
        let jpgs = try GlobPattern("MT_*/Imgs/*.jpg")
        XCTAssertTrue(jpgs.matches("MT_Free/Imgs/exp1_num_1.jpg"))
        XCTAssertFalse(jpgs.matches("MT_Free/Imgs/exp1_num_1.png"))
        XCTAssertFalse(jpgs.matches("MT_Free/a/Imgs/x.jpg"))
        let deep = try GlobPattern("**/*.png")
        XCTAssertTrue(deep.matches("a.png"))
        XCTAssertTrue(deep.matches("a/b/c.png"))
        XCTAssertFalse(deep.matches("a/b/c.png.txt"))
        XCTAssertTrue(try GlobPattern("lot[0-9]/?.tif").matches("lot3/x.tif"))
        XCTAssertFalse(try GlobPattern("lot[!0-9]/?.tif").matches("lot3/x.tif"))
        XCTAssertTrue(try GlobPattern("a.b").matches("a.b"))
        XCTAssertFalse(try GlobPattern("a.b").matches("axb"))
    }
}

final class LotRuleAndCSVTests: XCTestCase {
    func testLotRules() throws {
        let regex = LotRule.regex(CompiledRegexBox(regex: try CompiledRegex("(?:^|/)(exp[0-9]+)_[^/]*$")))
        XCTAssertEqual(regex.lot(forKey: "MT_Free/Imgs/exp12_num_3.jpg"), "exp12")
        XCTAssertNil(regex.lot(forKey: "MT_Free/Imgs/num_3.jpg"))
        XCTAssertEqual(LotRule.component(0).lot(forKey: "lot7/cam1/a.png"), "lot7")
        XCTAssertEqual(LotRule.component(-2).lot(forKey: "lot7/cam1/a.png"), "cam1")
        XCTAssertNil(LotRule.component(5).lot(forKey: "lot7/a.png"))
    }

    func testCSVFields() {
        XCTAssertEqual(LabelsCSV.fields("a,\"b,c\",,\"d\"\"e\""), ["a", "b,c", "", "d\"e"])
    }

    func testCanonicalJSONIsOrderIndependent() {
        let a = JSONValue.object(["b": .int(1), "a": .array([.string("x\n"), .double(0.5), .bool(true), .null])])
        XCTAssertEqual(a.canonicalText, "{\"a\":[\"x\\n\",0.5,true,null],\"b\":1}")
    }
}

final class ResampleTests: XCTestCase {
    func testAreaAveragesBlocks() {
        // 4x4 -> 2x2: each output is the mean of a 2x2 block.
        let plane: [Float] = [0, 1, 2, 3,  4, 5, 6, 7,  8, 9, 10, 11,  12, 13, 14, 15]
        let out = plane.withUnsafeBufferPointer { Resampler.resize($0, width: 4, height: 4, newWidth: 2, newHeight: 2, method: .area) }
        XCTAssertEqual(out, [2.5, 4.5, 10.5, 12.5])
    }

    func testAreaNonIntegerScaleKeepsMean() {
        let plane: [Float] = (0..<35).map { Float($0 % 7) / 7 }
        let out = plane.withUnsafeBufferPointer { Resampler.resize($0, width: 7, height: 5, newWidth: 3, newHeight: 2, method: .area) }
        let meanIn = plane.reduce(0, +) / Float(plane.count), meanOut = out.reduce(0, +) / Float(out.count)
        XCTAssertEqual(meanIn, meanOut, accuracy: 1e-5)
    }

    func testBilinearHalfPixelCentres() {
        // 2 -> 4 along x with align_corners=false: [a, .75a+.25b, .25a+.75b, b] (edges clamp).
        let plane: [Float] = [0, 1]
        let out = plane.withUnsafeBufferPointer { Resampler.resize($0, width: 2, height: 1, newWidth: 4, newHeight: 1, method: .bilinear) }
        XCTAssertEqual(out, [0, 0.25, 0.75, 1])
        let same: [Float] = [0.1, 0.7, 0.3]
        XCTAssertEqual(same.withUnsafeBufferPointer { Resampler.resize($0, width: 3, height: 1, newWidth: 3, newHeight: 1, method: .bilinear) }, same)
    }

    func testCentreCrop() {
        let plane: [Float] = (0..<16).map(Float.init)
        XCTAssertEqual(Resampler.centreCrop(plane, width: 4, height: 4, cropWidth: 2, cropHeight: 2), [5, 6, 9, 10])
    }
}
