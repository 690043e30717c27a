import XCTest
import KdadShards
import KdadTestSupport
@testable import KdadPipeline

/// Ingest and resize on the seeded demo data (small generated images, runs in about a second).
final class IngestAndResizeTests: XCTestCase {
    func run(_ manifest: URL, _ options: RunOptions = RunOptions()) throws -> [StageOutcome] {
        try PipelineRunner.load(manifest: manifest).run(options)
    }

    func index(_ work: URL) throws -> [IngestedImage] {
        try String(contentsOf: work.appendingPathComponent("stages/ingest/index.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(IngestedImage.self, from: Data($0.utf8)) }
    }

    func quarantine(_ work: URL) throws -> [QuarantineEntry] {
        try String(contentsOf: work.appendingPathComponent("stages/ingest/quarantine.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(QuarantineEntry.self, from: Data($0.utf8)) }
    }

    func testIngestAndResizeDemoFolder() throws {
        let root = try makeTemporaryDirectory("kdad-ingest")
        let demo = try DemoDataset.write(to: root, images: 40, side: 24, lots: 3, seed: 5)
        let outcomes = try run(demo.manifest)
        XCTAssertEqual(outcomes.map(\.action), [.ran, .ran])
        let ingest = outcomes[0].record
        XCTAssertEqual(ingest.counts["inputs"], 40, "masks are excluded by the manifest's glob")
        XCTAssertEqual(ingest.counts["ingested"], 40)
        XCTAssertEqual(ingest.counts["quarantined"], 0)
        XCTAssertEqual(ingest.counts["lots"], 9, "3 lots a night over 3 nights")
        XCTAssertEqual(ingest.unitCount, 3, "40 images at 16 per unit")

        let work = root.appendingPathComponent("work")
        let images = try index(work)
        XCTAssertEqual(images.count, 40)
        XCTAssertEqual(images.map(\.key), images.map(\.key).sorted())
        let defect = try XCTUnwrap(images.first { $0.key == "night-2026-11-20/lot-1120B/defect_0008.png" })
        XCTAssertEqual(defect.label, "defect")
        XCTAssertEqual(defect.role, "score")
        XCTAssertEqual(defect.mask, "night-2026-11-20/lot-1120B/defect_0008_mask.png")
        XCTAssertEqual(defect.lot, "lot-1120B")
        XCTAssertEqual(defect.width, 24)
        XCTAssertEqual(defect.bitDepth, 8)
        XCTAssertEqual(defect.channels, 1)
        XCTAssertEqual(defect.sha256, SHA256.hex(of: try Data(contentsOf: root.appendingPathComponent("images/night-2026-11-20/lot-1120B/defect_0008.png"))))
        XCTAssertEqual(images.filter { $0.role == "train" }.count, 23, "4 of every 7")
        XCTAssertTrue(images.filter { $0.role == "train" }.allSatisfy { $0.label == "good" })

        // Pixels survive ingest exactly (8-bit in, uint8 out).
        let reader = try ShardReader(url: work.appendingPathComponent("stages/ingest/\(defect.shard)"))
        let record = try reader.record(forKey: defect.key)
        let tensor = try XCTUnwrap(record.tensor(named: "image"))
        XCTAssertEqual(tensor.shape, [1, 24, 24])
        let mask = try XCTUnwrap(record.tensor(named: "mask"))
        XCTAssertEqual(mask.shape, [1, 24, 24])
        XCTAssertTrue(try mask.uint8Values().contains(255))

        // Resize: 24 -> 40 -> centre 32, gray replicated to 3 identical planes.
        let resized = try ShardReader(url: work.appendingPathComponent("stages/resize/\(defect.shard)")).record(forKey: defect.key)
        let image = try XCTUnwrap(resized.tensor(named: "image"))
        XCTAssertEqual(image.shape, [3, 32, 32])
        let values = try image.uint8Values()
        XCTAssertEqual(Array(values[0..<1024]), Array(values[1024..<2048]))
        XCTAssertEqual(try XCTUnwrap(resized.tensor(named: "mask")).shape, [1, 32, 32])
        XCTAssertEqual(outcomes[1].record.counts["resized"], 40)
    }

    func testBadFilesAreQuarantinedAndDuplicatesReported() throws {
        let root = try makeTemporaryDirectory("kdad-quarantine")
        let demo = try DemoDataset.write(to: root, images: 20, side: 16, lots: 2, seed: 3)
        let images = root.appendingPathComponent("images")
        let lot0 = demo.lotFolders[0], lot1 = demo.lotFolders[1]
        try Data("not an image".utf8).write(to: images.appendingPathComponent("\(lot0)/text.png"))
        let good = try Data(contentsOf: images.appendingPathComponent("\(lot0)/good_0000.png"))
        try good.prefix(good.count / 2).write(to: images.appendingPathComponent("\(lot1)/truncated.png"))
        try good.write(to: images.appendingPathComponent("\(lot1)/copy.png"))
        try FileManager.default.createDirectory(at: images.appendingPathComponent("nolot"), withIntermediateDirectories: true)

        let record = try run(demo.manifest)[0].record
        XCTAssertEqual(record.counts["inputs"], 23)
        XCTAssertEqual(record.counts["ingested"], 21)
        XCTAssertEqual(record.counts["quarantined"], 2)
        XCTAssertEqual(record.counts["duplicate_groups"], 1)
        let work = root.appendingPathComponent("work")
        let quarantined = try quarantine(work)
        XCTAssertEqual(quarantined.map(\.key), ["\(lot0)/text.png", "\(lot1)/truncated.png"])
        XCTAssertTrue(quarantined[0].reason.contains("not a PNG, JPEG or TIFF"), quarantined[0].reason)
        XCTAssertEqual(quarantined[1].path, images.appendingPathComponent("\(lot1)/truncated.png").standardizedFileURL.path)
        let duplicates = try String(contentsOf: work.appendingPathComponent("stages/ingest/duplicates.json"), encoding: .utf8)
        XCTAssertEqual(duplicates, "[[\"\(lot0)/good_0000.png\",\"\(lot1)/copy.png\"]]\n")
        // Unlabeled extra image: ingested, no role from splits.
        XCTAssertEqual(try index(work).first { $0.key == "\(lot1)/copy.png" }?.role, "none")
    }

    func testTarArchiveIngestRefusesEscapingEntries() throws {
        let root = try makeTemporaryDirectory("kdad-tar")
        let demo = try DemoDataset.write(to: root, images: 12, side: 16, lots: 2, seed: 9, archive: true)
        let folderRoot = try makeTemporaryDirectory("kdad-tar-folder")
        _ = try DemoDataset.write(to: folderRoot, images: 12, side: 16, lots: 2, seed: 9, archive: false)
        let records = try run(demo.manifest)
        XCTAssertEqual(records[0].record.counts["ingested"], 12)
        // Same images from a folder and from a tar give the same pixels and content hashes.
        _ = try run(folderRoot.appendingPathComponent("demo.yaml"))
        let fromTar = try index(root.appendingPathComponent("work")), fromFolder = try index(folderRoot.appendingPathComponent("work"))
        XCTAssertEqual(fromTar.map(\.sha256), fromFolder.map(\.sha256))
        XCTAssertEqual(fromTar.map(\.key), fromFolder.map(\.key))

        // An archive with '../' and absolute entries: those are quarantined unread, the rest ingested.
        let png = try Data(contentsOf: folderRoot.appendingPathComponent("images/night-2026-11-20/lot-1120A/good_0000.png"))
        try TarWriter.write([("night-2026-11-20/lot-1120A/ok.png", png), ("../night-2026-11-20/lot-1120A/evil.png", png),
                             ("/night-2026-11-20/lot-1120B/abs.png", png)],
                            to: root.appendingPathComponent("images.tar"))
        let rerun = try run(demo.manifest)[0].record
        XCTAssertEqual(rerun.counts["ingested"], 1)
        XCTAssertEqual(rerun.counts["quarantined"], 2)
        let quarantined = try quarantine(root.appendingPathComponent("work"))
        XCTAssertTrue(quarantined.allSatisfy { $0.reason.contains("refusing archive entry") }, "\(quarantined)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("night-2026-11-20/lot-1120A/evil.png").path))
    }

    func testMTDIngestsEveryImage() throws {
        _ = try SharedData.require("datasets/mtd/splits.csv")
        // The repository manifest, copied to a temporary folder with its relative paths made absolute.
        let manifests = SharedData.packageRoot.appendingPathComponent("manifests")
        let source = try String(contentsOf: manifests.appendingPathComponent("mtd.yaml"), encoding: .utf8)
        let work = try makeTemporaryDirectory("kdad-mtd")
        addTeardownBlock { try? FileManager.default.removeItem(at: work) }  // ~120 MB of shards
        let manifest = work.appendingPathComponent("mtd.yaml")
        let rewritten = source
            .replacingOccurrences(of: "work_dir: ../work/mtd", with: "work_dir: \(work.appendingPathComponent("work").path)")
            .replacingOccurrences(of: "../pipelines/", with: manifests.appendingPathComponent("../pipelines").standardizedFileURL.path + "/")
            .replacingOccurrences(of: "../../shared/", with: SharedData.root.standardizedFileURL.path + "/")
        XCTAssertFalse(rewritten.contains(" ../"), "every relative path was rewritten")
        try Data(rewritten.utf8).write(to: manifest)
        let record = try PipelineRunner.load(manifest: manifest).run(RunOptions(stage: "ingest"))[0].record
        XCTAssertEqual(record.counts["ingested"], 1344)
        XCTAssertEqual(record.counts["quarantined"], 0)
        XCTAssertEqual(record.counts["role_train"], 714)
        XCTAssertEqual(record.counts["role_val"], 47)
        XCTAssertEqual(record.counts["role_score"], 583)
        XCTAssertEqual(record.counts["labels_without_file"], 0)
        guard case let .object(lots)? = record.info["lots"] else { return XCTFail("no lots in record") }
        XCTAssertEqual(lots.keys.sorted(), (0...6).map { "exp\($0)" })
    }
}


final class DeterminismTests: XCTestCase {
    /// Outputs must not depend on how many units run in parallel (units finish in any order).
    func testOutputsIndependentOfParallelism() throws {
        let root = try makeTemporaryDirectory("kdad-jobs")
        let demo = try DemoDataset.write(to: root, images: 50, side: 16, lots: 2, seed: 4)
        let text = try String(contentsOf: demo.manifest, encoding: .utf8)
        let other = root.appendingPathComponent("other.yaml")
        try Data(text.replacingOccurrences(of: "work_dir: work", with: "work_dir: work-3").utf8).write(to: other)
        let one = try PipelineRunner.load(manifest: demo.manifest).run(RunOptions(jobs: 1))
        let three = try PipelineRunner.load(manifest: other).run(RunOptions(jobs: 3))
        XCTAssertEqual(one.map(\.record.outputHash), three.map(\.record.outputHash))
        XCTAssertEqual(one.map(\.record.files), three.map(\.record.files))
        // Seed changes do not invalidate ingest (it draws no random numbers).
        try Data(text.replacingOccurrences(of: "seed: 4", with: "seed: 5").utf8).write(to: demo.manifest)
        XCTAssertEqual(try PipelineRunner.load(manifest: demo.manifest).run().map(\.action), [.skipped, .skipped])
    }
}
