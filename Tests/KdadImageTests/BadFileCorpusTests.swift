import Foundation
import KdadTestSupport
import XCTest
@testable import KdadImage

/// Hundreds of damaged files, made here and written to disk, decoded in one process: each must fail
/// with a typed ImageDecodeError naming the file (never a crash, never a silent success).
final class BadFileCorpusTests: XCTestCase {
    struct Specimen {
        var name: String
        var bytes: Data
        /// The reason every decode of it must give; nil when only "some typed error" is determinable.
        var expected: ImageDecodeError.Kind?
    }

    /// Valid files of each format and several variants (the sources of the damaged ones).
    func validFiles() throws -> [(String, Data)] {
        var rng = SeededGenerator(seed: 77)
        let gray8 = (0..<(40 * 30)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let rgb16 = (0..<(24 * 20 * 3)).map { _ in UInt16.random(in: 0...65535, using: &rng) }
        let smooth = (0..<(48 * 40 * 3)).map { i in UInt8(truncatingIfNeeded: (i / 3 % 48) * 5 + (i / 144) * 3 + i % 3 * 40) }
        var files: [(String, Data)] = [
            ("gray8.png", try PNGEncoder.encodeGray8(gray8, width: 40, height: 30)),
            ("rgb16-interlaced.png", try PNGEncoder.encode(samples16: rgb16, width: 24, height: 20, colorType: .rgb, interlaced: true)),
            ("baseline-gray.jpg", try JPEGEncoder.encode(samples8: gray8, width: 40, height: 30, channels: 1)),
            ("progressive-rgb.jpg", try JPEGEncoder.encode(samples8: smooth, width: 48, height: 40, channels: 3, progressive: true)),
            ("strips-lzw.tif", try TIFFEncoder.encode(samples16: rgb16, width: 24, height: 20, channels: 3,
                                                      options: TIFFEncodeOptions(compression: .lzw, layout: .strips(rowsPerStrip: 4)))),
            ("tiles-deflate.tif", try TIFFEncoder.encode(samples8: gray8, width: 40, height: 30, channels: 1,
                                                         options: TIFFEncodeOptions(compression: .deflate, layout: .tiles(width: 16, height: 16)))),
            ("plain.tif", try TIFFEncoder.encode(samples8: gray8, width: 40, height: 30, channels: 1,
                                                 options: TIFFEncodeOptions(compression: .none))),
        ]
        if let root = try? SharedData.require("datasets/mtd") {
            files.append(("mtd.jpg", try Data(contentsOf: root.appendingPathComponent("MT_Fray/Imgs/exp6_num_77744.jpg"))))
            files.append(("mtd.png", try Data(contentsOf: root.appendingPathComponent("MT_Fray/Imgs/exp6_num_77744.png"))))
        }
        return files
    }

    func corpus() throws -> [Specimen] {
        var specimens: [Specimen] = []
        let valid = try validFiles()
        for (name, data) in valid {
            XCTAssertNoThrow(try ImageDecoder.decode(data: data, name: name), "the source \(name) must be valid")
            let cuts = Set([1, 2, 3, 4, 7, 8, 12, 20, 33, 60, 100, data.count / 3, data.count / 2, data.count - 10,
                            data.count - 2, data.count - 1]).filter { $0 > 0 && $0 < data.count }.sorted()
            for cut in cuts {
                specimens.append(Specimen(name: "cut\(cut)-\(name)", bytes: data.prefix(cut), expected: .truncated))
            }
        }
        specimens.append(Specimen(name: "empty.png", bytes: Data(), expected: .truncated))

        // Wrong magic: other formats, text, a JPEG missing its first byte, a PNG with a broken signature.
        let jpeg = valid.first { $0.0.hasSuffix(".jpg") }!.1
        let png = valid.first { $0.0.hasSuffix(".png") }!.1
        var brokenSignature = png
        brokenSignature[1] = UInt8(ascii: "Q")
        for (name, bytes) in [("gif.png", Data("GIF89a\u{1}\u{0}\u{1}\u{0}".utf8)), ("bmp.tif", Data("BM\u{0}\u{0}\u{0}\u{0}".utf8)),
                              ("text.jpg", Data("this is not an image\n".utf8)), ("shifted.jpg", jpeg.dropFirst()),
                              ("sig.png", brokenSignature), ("zeros.png", Data(count: 64))] {
            specimens.append(Specimen(name: "magic-\(name)", bytes: bytes, expected: .badMagic))
        }

        // Headers claiming 60000x60000: rejected from the header, before any allocation.
        var bigPNG = [UInt8](png)
        bigPNG.replaceSubrange(16..<24, with: [0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60])
        let crc = CRC32.checksum(bigPNG[12..<29])
        bigPNG.replaceSubrange(29..<33, with: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        specimens.append(Specimen(name: "huge.png", bytes: Data(bigPNG), expected: .tooLarge))
        for (name, data) in valid where name.hasSuffix(".jpg") {
            var bytes = [UInt8](data)
            let sof = try XCTUnwrap(HeaderBytes.jpegSOF(data))
            bytes.replaceSubrange((sof.offset + 3)..<(sof.offset + 7), with: [0xEA, 0x60, 0xEA, 0x60])
            specimens.append(Specimen(name: "huge-\(name)", bytes: Data(bytes), expected: .tooLarge))
        }
        for (name, data) in valid where name.hasSuffix(".tif") && !name.contains("tiles") {
            var patcher = TIFFTagPatcher(data)
            XCTAssertTrue(patcher.set(tag: 256, to: 60000))  // ImageWidth
            XCTAssertTrue(patcher.set(tag: 257, to: 60000))  // ImageLength
            XCTAssertTrue(patcher.set(tag: 278, to: 60000))  // RowsPerStrip, so the strip tables stay consistent
            specimens.append(Specimen(name: "huge-\(name)", bytes: patcher.data, expected: .tooLarge))
        }

        // Random bytes after each signature (lengths from a few bytes to a few KiB).
        var rng = SeededGenerator(seed: 2024)
        let signatures: [(String, [UInt8])] = [("png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), ("jpg", [0xFF, 0xD8, 0xFF]),
                                               ("tif", [0x49, 0x49, 0x2A, 0x00]), ("tif", [0x4D, 0x4D, 0x00, 0x2A])]
        for (index, (ext, signature)) in signatures.enumerated() {
            for n in 0..<40 {
                let length = [0, 1, 5, 13, 64, 300, 2000, 5000][n % 8] + Int.random(in: 0...7, using: &rng)
                let noise = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                specimens.append(Specimen(name: "noise\(index)-\(n).\(ext)", bytes: Data(signature + noise), expected: nil))
            }
        }
        // Valid headers, scrambled bodies: the bytes past the first 40 are replaced with noise.
        for (name, data) in valid {
            for n in 0..<6 {
                var bytes = [UInt8](data)
                for i in 40..<bytes.count where Int.random(in: 0..<4, using: &rng) == 0 { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
                bytes[bytes.count - 1 - n] ^= 0x55  // at least the tail differs
                specimens.append(Specimen(name: "scrambled\(n)-\(name)", bytes: Data(bytes), expected: nil))
            }
        }
        return specimens
    }

    func testEveryDamagedFileGivesATypedError() throws {
        let directory = try makeTemporaryDirectory("kdad-bad-images")
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let specimens = try corpus()
        XCTAssertGreaterThan(specimens.count, 300)
        var kinds: [ImageDecodeError.Kind: Int] = [:]
        for specimen in specimens {
            let url = directory.appendingPathComponent(specimen.name)
            try specimen.bytes.write(to: url)
            let attempts: [(String, () throws -> Void)] = [
                ("decode(contentsOf:)", { _ = try ImageDecoder.decode(contentsOf: url) }),
                ("decode(data:)", { _ = try ImageDecoder.decode(data: specimen.bytes, name: url.path) }),
            ]
            for (label, attempt) in attempts {
                guard let error = expectDecodeError(attempt, "\(label) \(specimen.name)") else { continue }
                XCTAssertEqual(error.path, url.path)
                XCTAssertTrue(error.description.contains(specimen.name), error.description)
                if let expected = specimen.expected {
                    XCTAssertEqual(error.reason.kind, expected, "\(specimen.name): \(error)")
                } else {
                    XCTAssertNotEqual(error.reason.kind, .unreadable, "\(specimen.name): \(error)")
                }
                kinds[error.reason.kind, default: 0] += 1
            }
            // readHeader may succeed on a file damaged after its header; when it fails, it is typed.
            do {
                _ = try ImageDecoder.readHeader(contentsOf: url)
            } catch {
                // (readHeader throws ImageDecodeError by its typed signature.)
                XCTAssertEqual(error.path, url.path)
                if specimen.expected == .tooLarge || specimen.expected == .badMagic {
                    XCTAssertEqual(error.reason.kind, specimen.expected, specimen.name)
                }
            }
        }
        print("bad-file corpus: \(specimens.count) files, errors by reason: \(kinds.sorted { $0.key.rawValue < $1.key.rawValue })")
        XCTAssertGreaterThan(kinds[.corrupt, default: 0], 0)
    }

    func testTooLargeIsDecidedBeforeDecoding() throws {
        // 60000x60000 gray is 3.6 billion floats (14 GB): were it allocated, this test would not pass.
        for specimen in try corpus() where specimen.expected == .tooLarge {
            let error = expectDecodeError({ _ = try ImageDecoder.decode(data: specimen.bytes, name: specimen.name) }, specimen.name)
            XCTAssertEqual(error?.reason, .tooLarge(width: 60000, height: 60000, limit: 100_000_000), specimen.name)
            let header = expectDecodeError({ _ = try ImageDecoder.readHeader(data: specimen.bytes, name: specimen.name) }, specimen.name)
            XCTAssertEqual(header?.reason.kind, .tooLarge)
            // With the limit raised, the header reads fine: the size was the only objection.
            let size = try ImageDecoder.readHeader(data: specimen.bytes, name: specimen.name,
                                                   options: DecodeOptions(maxPixels: 60000 * 60000))
            XCTAssertEqual([size.width, size.height], [60000, 60000])
        }
    }
}
