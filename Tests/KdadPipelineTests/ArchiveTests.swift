import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// Golden inputs below were made with Python's zlib/zipfile (an independent implementation).
final class ArchiveTests: XCTestCase {
    func inflate(_ base64: String) throws -> String {
        let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded: base64)))
        return String(decoding: try Inflate.decompress(bytes, expectedSize: 0), as: UTF8.self)
    }

    func testInflateStoredFixedAndDynamicBlocks() throws {
        XCTAssertEqual(try inflate("AQ0A8v9zdG9yZWQgYmxvY2sh"), "stored block!")
        XCTAssertEqual(try inflate("y05JTFHIhhOJefm5iTmVAA=="), "kdad kdad kdad anomaly")
        let expected = (0..<60).map { "aaaaaaaabbbbccde \($0 * $0 % 97);" }.joined()
        XCTAssertEqual(try inflate("jdLLEcIwDIThViiB+CkP1ZiE/lsgM9zwd7CPO1pp9ctz/t77fud5fR7P1/yXjlUqqzRgbKuW6qpl1BX0axgbSJcxFtbSV60neDEBUxvqhrZFvC7s6FfhHaKnA+mO6gdvRb4AAqybQDngrRibgCD0MfQJkOVAXQBfE1Jkzsh3iAsog3wgcse6XXV5U9ucoSzK3PYIiJSIivx9oS8="), expected)
        XCTAssertThrowsError(try Inflate.decompress([0x05], expectedSize: 0), "truncated stream")
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    /// lotA/a.png (deflated), lotB/b.png (stored), ../lotA/evil.png (stored), lotA/notes.txt (deflated).
    static let zip = "UEsDBBQAAAAIAAAAIQAU2anUiAAAAIwAAAAKAAAAbG90QS9hLnBuZ+sM8HPn5ZLiYmBg4PX0cAkC0hwgDCIYHqY8DAdSwZ4ujiEVcxg9GLb/Z2CQs4mqmLblEgOzon1s9cztVxnYVJwS6ubsusHAqe6a3Dh/720GHi2PtJZFB+4x8Ot6Z7YvPfyQQcjAL6drxbEnDKLGgfm9q08+P6oq8/Bca/MDkDWern4u65wSmgBQSwMEFAAAAAAAAAAhABTZqdSMAAAAjAAAAAoAAABsb3RCL2IucG5niVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAAePFp4lrTSAAMhP117mbfVAAYkQmB+nLrYAAknRWOBn73bAAwqSGaEosDeAA8tS2mHpcPhABIwTmyKqMbkABUzUW+Nq8nnxSUc4c6Fg+AAAAAASUVORK5CYIJQSwMEFAAAAAAAAAAhABTZqdSMAAAAjAAAABAAAAAuLi9sb3RBL2V2aWwucG5niVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAU0lEQVR4nAFIALf/AAAePFp4lrTSAAMhP117mbfVAAYkQmB+nLrYAAknRWOBn73bAAwqSGaEosDeAA8tS2mHpcPhABIwTmyKqMbkABUzUW+Nq8nnxSUc4c6Fg+AAAAAASUVORK5CYIJQSwMEFAAAAAgAAAAhAMFIQlkMAAAALAEAAA4AAABsb3RBL25vdGVzLnR4dMtIzcnJV8gYJYkgAVBLAQIUAxQAAAAIAAAAIQAU2anUiAAAAIwAAAAKAAAAAAAAAAAAAACAAQAAAABsb3RBL2EucG5nUEsBAhQDFAAAAAAAAAAhABTZqdSMAAAAjAAAAAoAAAAAAAAAAAAAAIABsAAAAGxvdEIvYi5wbmdQSwECFAMUAAAAAAAAACEAFNmp1IwAAACMAAAAEAAAAAAAAAAAAAAAgAFkAQAALi4vbG90QS9ldmlsLnBuZ1BLAQIUAxQAAAAIAAAAIQDBSEJZDAAAACwBAAAOAAAAAAAAAAAAAACAAR4CAABsb3RBL25vdGVzLnR4dFBLBQYAAAAABAAEAOoAAABWAgAAAAA="
    static let pngSHA256 = "ef6833e1164fb1cf32f90f2d26c737de8c78eaa7258d63698ff5dc2afab094fe"

    func testZipEntriesAndRead() throws {
        let root = try makeTemporaryDirectory("kdad-zip")
        let url = root.appendingPathComponent("lots.zip")
        try XCTUnwrap(Data(base64Encoded: Self.zip)).write(to: url)
        let entries = try ZipArchive.entries(of: url)
        XCTAssertEqual(entries.map(\.name), ["../lotA/evil.png", "lotA/a.png", "lotA/notes.txt", "lotB/b.png"])
        XCTAssertEqual(entries.map(\.unsafe), [true, false, false, false])
        XCTAssertEqual(SHA256.hex(of: try ZipArchive.read(url, entry: entries[1])), Self.pngSHA256)
        XCTAssertEqual(SHA256.hex(of: try ZipArchive.read(url, entry: entries[3])), Self.pngSHA256)
        XCTAssertEqual(String(decoding: try ZipArchive.read(url, entry: entries[2]), as: UTF8.self), String(repeating: "hello ", count: 50))
    }

    func testZipInputIngestsAndQuarantinesEscapingEntry() throws {
        let root = try makeTemporaryDirectory("kdad-zip-job")
        try XCTUnwrap(Data(base64Encoded: Self.zip)).write(to: root.appendingPathComponent("lots.zip"))
        try Data("""
        pipeline:
          name: zip
          stages:
            - name: ingest
              kind: ingest
        """.utf8).write(to: root.appendingPathComponent("pipeline.yaml"))
        try Data("""
        job:
          name: zip
          pipeline: pipeline.yaml
          work_dir: work
          inputs:
            - path: lots.zip
              include: "*/*.png"
          lots:
            component: 0
          train:
            glob: "lotA/**"
          score:
            glob: "**"
        """.utf8).write(to: root.appendingPathComponent("job.yaml"))
        let record = try PipelineRunner.load(manifest: root.appendingPathComponent("job.yaml")).run()[0].record
        XCTAssertEqual(record.counts["inputs"], 3)
        XCTAssertEqual(record.counts["ingested"], 2)
        XCTAssertEqual(record.counts["quarantined"], 1)
        XCTAssertEqual(record.counts["duplicate_groups"], 1, "a.png and b.png have the same bytes")
        XCTAssertEqual(record.counts["role_train"], 1)
        let quarantine = try String(contentsOf: root.appendingPathComponent("work/stages/ingest/quarantine.jsonl"), encoding: .utf8)
        XCTAssertTrue(quarantine.contains("refusing archive entry '..\\/lotA\\/evil.png'"), quarantine)
    }
}

final class TarZstdTests: XCTestCase {
    func testTarZstdInputMatchesFolderAndIsCachedInsideTheWorkDir() throws {
        let folderRoot = try makeTemporaryDirectory("kdad-zst-folder")
        _ = try DemoDataset.write(to: folderRoot, images: 10, side: 16, lots: 2, seed: 8, archive: false)
        let tarRoot = try makeTemporaryDirectory("kdad-zst")
        let demo = try DemoDataset.write(to: tarRoot, images: 10, side: 16, lots: 2, seed: 8, archive: true)
        let tar = tarRoot.appendingPathComponent("images.tar")
        try ZstdFile.compress(try Data(contentsOf: tar)).write(to: tarRoot.appendingPathComponent("images.tar.zst"))
        try FileManager.default.removeItem(at: tar)
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "path: images.tar", with: "path: images.tar.zst").utf8).write(to: demo.manifest)

        let outcomes = try PipelineRunner.load(manifest: demo.manifest).run()
        XCTAssertEqual(outcomes[0].record.counts["ingested"], 10)
        _ = try PipelineRunner.load(manifest: folderRoot.appendingPathComponent("demo.yaml")).run(RunOptions(stage: "ingest"))
        func index(_ root: URL) throws -> [IngestedImage] {
            try String(contentsOf: root.appendingPathComponent("work/stages/ingest/index.jsonl"), encoding: .utf8)
                .split(separator: "\n").map { try JSONDecoder().decode(IngestedImage.self, from: Data($0.utf8)) }
        }
        let fromZstd = try index(tarRoot), fromFolder = try index(folderRoot)
        XCTAssertEqual(fromZstd.map(\.sha256), fromFolder.map(\.sha256))
        XCTAssertTrue(fromZstd[0].source.hasPrefix(tarRoot.appendingPathComponent("images.tar.zst").standardizedFileURL.path + "!"), fromZstd[0].source)
        let cache = try FileManager.default.contentsOfDirectory(atPath: tarRoot.appendingPathComponent("work/cache").path)
        XCTAssertEqual(cache.count, 1)
        XCTAssertTrue(cache[0].hasPrefix("images-") && cache[0].hasSuffix(".tar"), "\(cache)")
        XCTAssertEqual(try PipelineRunner.load(manifest: demo.manifest).run().map(\.action), [.skipped, .skipped])
    }

    func testCorruptZstdFailsTheStageWithTheArchiveNamed() throws {
        let root = try makeTemporaryDirectory("kdad-zst-bad")
        let demo = try DemoDataset.write(to: root, images: 4, side: 8, lots: 1, seed: 2, archive: true)
        let compressed = try ZstdFile.compress(try Data(contentsOf: root.appendingPathComponent("images.tar")))
        try compressed.prefix(compressed.count / 2).write(to: root.appendingPathComponent("images.tar.zst"))
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "path: images.tar", with: "path: images.tar.zst").utf8).write(to: demo.manifest)
        XCTAssertThrowsError(try PipelineRunner.load(manifest: demo.manifest).run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("stage 'ingest' failed") && message.contains("images.tar.zst"), message)
        }
        let cache = root.appendingPathComponent("work/cache")
        XCTAssertEqual(((try? FileManager.default.contentsOfDirectory(atPath: cache.path)) ?? []).filter { !$0.hasPrefix(".") }, [],
                       "no half-decompressed archive is published")
    }
}
