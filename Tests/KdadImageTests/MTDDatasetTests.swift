import Foundation
import KdadTestSupport
import XCTest
@testable import KdadImage

/// Every image and mask of the Magnetic Tile Defects data set decodes, and what the decoder reports
/// agrees with the bytes of the files themselves.
final class MTDDatasetTests: XCTestCase {
    func testEveryImageAndMaskDecodesWithMatchingSizes() throws {
        let root = try SharedData.require("datasets/mtd")
        let walker = try XCTUnwrap(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
        var jpegs: [URL] = []
        var pngs: Set<String> = []
        for case let url as URL in walker {
            switch url.pathExtension {
            case "jpg": jpegs.append(url)
            case "png": pngs.insert(url.path)
            default: break
            }
        }
        XCTAssertEqual(jpegs.count, 1344)
        XCTAssertEqual(pngs.count, 1344)

        var checkedPixels = 0
        var maskValueCounts = [Int](repeating: 0, count: 256)
        for jpegURL in jpegs.sorted(by: { $0.path < $1.path }) {
            let maskURL = jpegURL.deletingPathExtension().appendingPathExtension("png")
            XCTAssertTrue(pngs.contains(maskURL.path), "no mask for \(jpegURL.path)")
            let jpegData = try Data(contentsOf: jpegURL)
            let maskData = try Data(contentsOf: maskURL)
            let image = try ImageDecoder.decode(data: jpegData, name: jpegURL.path)
            let mask = try ImageDecoder.decode(data: maskData, name: maskURL.path)

            XCTAssertEqual(image.format, .jpeg)
            XCTAssertEqual(mask.format, .png)
            XCTAssertEqual([image.channels, image.bitDepth], [1, 8], jpegURL.path)
            XCTAssertEqual([mask.channels, mask.bitDepth], [1, 8], maskURL.path)
            XCTAssertEqual([mask.width, mask.height], [image.width, image.height], "mask size differs: \(maskURL.path)")
            XCTAssertEqual(image.pixels.count, image.width * image.height)
            XCTAssertEqual(mask.pixels.count, mask.width * mask.height)

            // Sizes checked against the bytes of the files, read here without any codec.
            let sof = try XCTUnwrap(HeaderBytes.jpegSOF(jpegData), jpegURL.path)
            XCTAssertEqual([sof.width, sof.height, sof.components], [image.width, image.height, 1], jpegURL.path)
            let ihdr = try XCTUnwrap(HeaderBytes.pngIHDR(maskData), maskURL.path)
            XCTAssertEqual([ihdr.width, ihdr.height, ihdr.bitDepth, ihdr.colorType], [mask.width, mask.height, 8, 0], maskURL.path)

            // Values are exact multiples of 1/255 in [0, 1].
            XCTAssertEqual(countLevels(mask.pixels, into: &maskValueCounts), 0, "\(maskURL.path): values off the 1/255 grid")
            let (lo, hi) = range(image.pixels)
            XCTAssertTrue(lo >= 0 && hi <= 1 && hi > lo, "\(jpegURL.path): range \(lo)...\(hi)")
            checkedPixels += image.pixelCount
        }
        // Masks are black with white defects (and some grey at the edges, per the data set's README).
        XCTAssertGreaterThan(maskValueCounts[0], 0)
        XCTAssertGreaterThan(maskValueCounts[255], 0)
        XCTAssertGreaterThan(checkedPixels, 100_000_000)
    }

    func testHeadersAgreeWithDecodes() throws {
        let root = try SharedData.require("datasets/mtd")
        let splits = try String(contentsOf: root.appendingPathComponent("splits.csv"), encoding: .utf8)
        let rows = splits.split(whereSeparator: \.isNewline).dropFirst().prefix(40)
        XCTAssertEqual(rows.count, 40)
        for row in rows {
            let columns = row.split(separator: ",").map(String.init)
            for relative in [columns[0], columns[4]] where !relative.isEmpty {
                let url = root.appendingPathComponent(relative)
                let header = try ImageDecoder.readHeader(contentsOf: url)
                let image = try ImageDecoder.decode(contentsOf: url)
                XCTAssertEqual(header, ImageHeader(width: image.width, height: image.height, channels: image.channels,
                                                   bitDepth: image.bitDepth, format: image.format), url.path)
            }
        }
    }

    func testPixelLimitRejectsRealFilesBeforeDecoding() throws {
        let root = try SharedData.require("datasets/mtd")
        let url = root.appendingPathComponent("MT_Fray/Imgs/exp6_num_77744.jpg")
        let image = try ImageDecoder.decode(contentsOf: url)
        XCTAssertEqual([image.width, image.height], [606, 240])
        let limit = DecodeOptions(maxPixels: 606 * 240 - 1)
        for attempt in [{ _ = try ImageDecoder.decode(contentsOf: url, options: limit) },
                        { _ = try ImageDecoder.readHeader(contentsOf: url, options: limit) }] {
            let error = expectDecodeError(attempt, "limit below the image size")
            XCTAssertEqual(error?.reason, .tooLarge(width: 606, height: 240, limit: 606 * 240 - 1))
            XCTAssertEqual(error?.path, url.path)
        }
        XCTAssertNoThrow(try ImageDecoder.decode(contentsOf: url, options: DecodeOptions(maxPixels: 606 * 240)))
    }

    /// Tallies 8-bit levels; returns how many values are not exactly level/255 in [0, 1].
    /// (Unsafe-buffer loops: this runs over ~140 million samples, also in debug builds.)
    private func countLevels(_ values: [Float], into counts: inout [Int]) -> Int {
        var offGrid = 0
        values.withUnsafeBufferPointer { buffer in
            for v in buffer {
                let level = Int((v * 255).rounded())
                if level < 0 || level > 255 || v != Float(level) / 255 { offGrid += 1 } else { counts[level] += 1 }
            }
        }
        return offGrid
    }

    private func range(_ values: [Float]) -> (Float, Float) {
        values.withUnsafeBufferPointer { buffer in
            var lo = Float.infinity, hi = -Float.infinity
            for v in buffer {
                lo = Swift.min(lo, v)
                hi = Swift.max(hi, v)
            }
            return (lo, hi)
        }
    }
}
