import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// A job whose inputs hold every kind of bad input we know of, among good images: each bad one ends
/// in quarantine with a reason, the good ones are ingested, the counts add up, and nothing outside the
/// work dir is written.
final class BadInputCorpusTests: XCTestCase {
    /// Every file and folder below `root` except `excluded`, with size and modification time.
    func snapshot(_ root: URL, excluding excluded: URL) throws -> [String: String] {
        var result: [String: String] = [:]
        let skip = excluded.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return result }
        for case let url as URL in walker {
            let path = url.standardizedFileURL.path
            if path == skip || path.hasPrefix(skip + "/") { walker.skipDescendants(); continue }
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            result[path] = "\(info.st_mode) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }
        return result
    }

    /// The PNG with its IHDR size replaced (CRC recomputed, so only the size is wrong).
    func pngClaiming(width: UInt32, height: UInt32, from png: Data) -> Data {
        var bytes = [UInt8](png)
        for (offset, value) in [(16, width), (20, height)] {
            withUnsafeBytes(of: value.bigEndian) { for i in 0..<4 { bytes[offset + i] = $0[i] } }
        }
        let crc = CRC32.checksum(Array(bytes[12..<29]))
        withUnsafeBytes(of: crc.bigEndian) { for i in 0..<4 { bytes[29 + i] = $0[i] } }
        return Data(bytes)
    }

    func testEveryBadInputIsQuarantinedWithAReasonAndNothingOutsideTheWorkDirIsWritten() throws {
        let root = try makeTemporaryDirectory("kdad-bad-corpus")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let demo = try DemoDataset.write(to: root, images: 20, side: 16, lots: 2, seed: 7, archive: false)
        let images = root.appendingPathComponent("images")
        let lot0 = demo.lotFolders[0], lot1 = demo.lotFolders[1]
        let good = try Data(contentsOf: images.appendingPathComponent("\(lot0)/good_0000.png"))
        var generator = SplitMix64(seed: 99)
        func random(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }) }

        // Expected quarantine reasons (a word each reason must contain), by key.
        var expected: [String: String] = [:]
        func put(_ key: String, _ data: Data, reason: String) throws {
            try data.write(to: images.appendingPathComponent(key))
            expected[key] = reason
        }
        for offset in [8, 20, 33, 100, good.count / 2, good.count - 1] {
            try put("\(lot0)/truncated_\(offset).png", good.prefix(offset), reason: "truncated")
        }
        try put("\(lot0)/empty.png", Data(), reason: "empty")
        try put("\(lot0)/wrong_magic.png", Data("GIF89a".utf8) + random(200), reason: "not a PNG, JPEG or TIFF")
        try put("\(lot0)/huge.png", pngClaiming(width: 60000, height: 60000, from: good), reason: "60000")
        try put("\(lot1)/random_png.png", Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + random(400), reason: "PNG")
        try put("\(lot1)/random_jpeg.png", Data([0xFF, 0xD8, 0xFF, 0xE0]) + random(400), reason: "JPEG")
        try put("\(lot1)/random_tiff.png", Data([0x49, 0x49, 0x2A, 0x00]) + random(400), reason: "TIFF")

        // Entries that are no readable regular file.
        let manager = FileManager.default
        try manager.createSymbolicLink(atPath: images.appendingPathComponent("\(lot0)/dangling.png").path,
                                       withDestinationPath: root.appendingPathComponent("nowhere/x.png").path)
        expected["\(lot0)/dangling.png"] = "dangling symbolic link"
        try manager.createSymbolicLink(atPath: images.appendingPathComponent("\(lot0)/loop.png").path, withDestinationPath: "loop.png")
        expected["\(lot0)/loop.png"] = "symbolic link loop"
        try manager.createDirectory(at: images.appendingPathComponent("\(lot1)/folder.png"), withIntermediateDirectories: false)
        expected["\(lot1)/folder.png"] = "is a directory"
        XCTAssertEqual(mkfifo(images.appendingPathComponent("\(lot1)/pipe.png").path, 0o644), 0)
        expected["\(lot1)/pipe.png"] = "not a regular file"
        // A directory link cycle must not make the walk loop; a link to a good image is read through.
        try manager.createSymbolicLink(atPath: images.appendingPathComponent("\(lot1)/cycle").path, withDestinationPath: "..")
        try manager.createSymbolicLink(atPath: images.appendingPathComponent("\(lot1)/linked.png").path,
                                       withDestinationPath: images.appendingPathComponent("\(lot0)/good_0000.png").path)

        let before = try snapshot(root, excluding: root.appendingPathComponent("work"))
        let record = try PipelineRunner.load(manifest: demo.manifest).run(RunOptions())[0].record
        XCTAssertEqual(try snapshot(root, excluding: root.appendingPathComponent("work")), before,
                       "ingest wrote or changed something outside the work dir")

        let work = root.appendingPathComponent("work/stages/ingest")
        let quarantine = try String(contentsOf: work.appendingPathComponent("quarantine.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(QuarantineEntry.self, from: Data($0.utf8)) }
        let reasons = Dictionary(quarantine.map { ($0.key, $0.reason) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(Set(reasons.keys), Set(expected.keys))
        for (key, word) in expected {
            XCTAssertTrue(reasons[key]?.contains(word) == true, "\(key): reason '\(reasons[key] ?? "none")' lacks '\(word)'")
        }
        let ingested = try String(contentsOf: work.appendingPathComponent("index.jsonl"), encoding: .utf8).split(separator: "\n").count
        XCTAssertEqual(ingested, 21, "20 demo images plus the linked one")
        XCTAssertEqual(record.counts["inputs"], ingested + expected.count)
        XCTAssertEqual(record.counts["ingested"], ingested)
        XCTAssertEqual(record.counts["quarantined"], expected.count)
    }
}
