import XCTest
import KdadImage
import KdadTestSupport
@testable import KdadPipeline

/// `kdad demo-data`: a seeded nightly archive (nights → lots → images, masks beside defects) whose
/// labels, masks and background dust are consistent with how the images were drawn.
final class DemoDatasetTests: XCTestCase {
    struct LabelRow: Equatable {
        let image: String, split: String, label: String, defectType: String, mask: String, lot: String
    }

    func labels(_ root: URL) throws -> [LabelRow] {
        let lines = try String(contentsOf: root.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "image,split,label,defect_type,mask,lot")
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(fields.count, 6, String(line))
            return LabelRow(image: fields[0], split: fields[1], label: fields[2], defectType: fields[3], mask: fields[4], lot: fields[5])
        }
    }

    /// 8-connected components of the 255 pixels.
    func components(_ mask: [UInt8], side: Int) -> Int {
        var seen = [Bool](repeating: false, count: mask.count), count = 0
        for start in mask.indices where mask[start] == 255 && !seen[start] {
            count += 1
            var stack = [start]
            seen[start] = true
            while let index = stack.popLast() {
                let x = index % side, y = index / side
                for dy in -1...1 {
                    for dx in -1...1 {
                        let nx = x + dx, ny = y + dy
                        guard nx >= 0, ny >= 0, nx < side, ny < side else { continue }
                        let next = ny * side + nx
                        if mask[next] == 255 && !seen[next] { seen[next] = true; stack.append(next) }
                    }
                }
            }
        }
        return count
    }

    func testSameSeedWritesTheSameBytesAndAnotherSeedDoesNot() throws {
        let first = try makeTemporaryDirectory("kdad-demo-a"), second = try makeTemporaryDirectory("kdad-demo-b")
        let other = try makeTemporaryDirectory("kdad-demo-c")
        for root in [first, second] {
            _ = try DemoDataset.write(to: root, images: 42, side: 24, lots: 3, nights: 2, seed: 17, archive: true)
        }
        _ = try DemoDataset.write(to: other, images: 42, side: 24, lots: 3, nights: 2, seed: 18, archive: true)
        for name in ["images.tar", "labels.csv", "demo.yaml", "pipeline.yaml"] {
            XCTAssertEqual(try Data(contentsOf: first.appendingPathComponent(name)), try Data(contentsOf: second.appendingPathComponent(name)), name)
        }
        XCTAssertNotEqual(try Data(contentsOf: first.appendingPathComponent("images.tar")),
                          try Data(contentsOf: other.appendingPathComponent("images.tar")))
        // Every image differs with the seed, not just one of them.
        let plans = DemoDataset.plan(images: 42, lots: 3, nights: 2)
        for plan in plans {
            XCTAssertNotEqual(DemoDataset.render(plan, side: 24, seed: 17).pixels, DemoDataset.render(plan, side: 24, seed: 18).pixels, plan.key)
        }
    }

    func testCountsPerSplitLabelLotAndNight() throws {
        let root = try makeTemporaryDirectory("kdad-demo-counts")
        let summary = try DemoDataset.write(to: root, images: 70, side: 16, lots: 3, nights: 2, seed: 3, archive: false)
        XCTAssertEqual(summary.images, 70)
        XCTAssertEqual(summary.defective, 10)
        XCTAssertEqual(summary.lots, 6)
        XCTAssertEqual(summary.nights, 2)
        XCTAssertEqual(summary.lotFolders, ["night-2026-11-20/lot-1120A", "night-2026-11-20/lot-1120B", "night-2026-11-20/lot-1120C",
                                            "night-2026-11-21/lot-1121A", "night-2026-11-21/lot-1121B", "night-2026-11-21/lot-1121C"])
        let rows = try labels(root)
        XCTAssertEqual(rows.count, 70)
        XCTAssertEqual(rows.filter { $0.split == "train" }.count, 40)
        XCTAssertEqual(rows.filter { $0.split == "val" }.count, 10)
        XCTAssertEqual(rows.filter { $0.split == "test" }.count, 20)
        XCTAssertEqual(rows.filter { $0.label == "defect" }.count, 10)
        XCTAssertTrue(rows.filter { $0.label == "defect" }.allSatisfy { $0.split == "test" }, "defects are only scored")
        XCTAssertTrue(rows.allSatisfy { ["good", "defect"].contains($0.label) })
        var perLot: [String: Int] = [:], perNight: [String: Int] = [:]
        for row in rows {
            let components = row.image.split(separator: "/").map(String.init)
            XCTAssertEqual(components.count, 3, row.image)
            XCTAssertEqual(components[1], row.lot, "the lot is the second path component")
            XCTAssertTrue(components[0].hasPrefix("night-2026-11-2"), row.image)
            perLot[row.lot, default: 0] += 1
            perNight[components[0], default: 0] += 1
        }
        XCTAssertEqual(perLot.count, 6)
        XCTAssertTrue(perLot.values.allSatisfy { (11...12).contains($0) }, "\(perLot)")
        XCTAssertEqual(perNight, ["night-2026-11-20": 35, "night-2026-11-21": 35])

        // Masks exist exactly for defective images; defect types come from the documented set.
        let images = root.appendingPathComponent("images")
        for row in rows {
            XCTAssertTrue(FileManager.default.fileExists(atPath: images.appendingPathComponent(row.image).path), row.image)
            let maskBeside = images.appendingPathComponent(row.image.replacingOccurrences(of: ".png", with: "_mask.png"))
            if row.label == "defect" {
                XCTAssertEqual(row.mask, row.image.replacingOccurrences(of: ".png", with: "_mask.png"))
                XCTAssertNotNil(DemoDefect(rawValue: row.defectType), row.defectType)
                XCTAssertTrue(FileManager.default.fileExists(atPath: maskBeside.path), row.mask)
            } else {
                XCTAssertEqual(row.mask, "")
                XCTAssertEqual(row.defectType, "")
                XCTAssertFalse(FileManager.default.fileExists(atPath: maskBeside.path), "good image with a mask: \(row.image)")
            }
        }
        let allFiles = try XCTUnwrap(FileManager.default.enumerator(atPath: images.path)).compactMap { $0 as? String }.filter { $0.hasSuffix(".png") }
        XCTAssertEqual(allFiles.count, 80, "70 images and 10 masks, nothing else")

        // Fewer images than lots: only the lots that got images exist.
        let few = try DemoDataset.write(to: try makeTemporaryDirectory("kdad-demo-few"), images: 4, side: 8, lots: 3, nights: 3, seed: 1)
        XCTAssertEqual(few.lots, 4)
        XCTAssertEqual(few.nights, 3, "images spread over the lots: 0, 2, 4, 6 of 9")
    }

    func testEveryDefectHasANonEmptyMaskOnThePartAtEverySize() throws {
        var typesSeen = Set<DemoDefect>()
        for side in [8, 13, 32, 64] {
            let plans = DemoDataset.plan(images: 168, lots: 3, nights: 1).filter(\.isDefective)
            XCTAssertEqual(plans.count, 24)
            for plan in plans {
                let rendering = DemoDataset.render(plan, side: side, seed: UInt64(side))
                let mask = try XCTUnwrap(rendering.defectMask, "\(plan.key) at \(side) px")
                XCTAssertEqual(mask.count, side * side)
                let marked = mask.indices.filter { mask[$0] == 255 }
                XCTAssertFalse(marked.isEmpty, "\(plan.key) at \(side) px")
                XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == 255 })
                // Not trivially huge: under a fifth of the image (a rim bite on a tiny washer is the largest).
                XCTAssertLessThan(marked.count, side * side / 5, "\(plan.key) at \(side) px: \(rendering.defect!)")
                if rendering.defect == .missing {
                    XCTAssertTrue(marked.allSatisfy { !rendering.partMask[$0] }, "missing material is no longer part")
                } else {
                    XCTAssertTrue(marked.allSatisfy { rendering.partMask[$0] }, "\(plan.key): a \(rendering.defect!) off the part")
                }
                XCTAssertTrue(rendering.dustMask.allSatisfy { !$0 }, "no dust on defective images")
                if plan.part != .washer {
                    // On a surface nothing clips a defect: its mask is one 8-connected piece (thin lines do not break up).
                    XCTAssertEqual(components(mask, side: side), 1, "\(plan.key) at \(side) px: \(rendering.defect!)")
                }
                typesSeen.insert(try XCTUnwrap(rendering.defect))
            }
        }
        XCTAssertEqual(typesSeen, Set(DemoDefect.allCases))

        // The written masks decode to the image size and mark the same pixels.
        let root = try makeTemporaryDirectory("kdad-demo-masks")
        _ = try DemoDataset.write(to: root, images: 14, side: 20, lots: 1, nights: 1, seed: 9, archive: false)
        for row in try labels(root) where row.label == "defect" {
            let decoded = try ImageDecoder.decode(contentsOf: root.appendingPathComponent("images/\(row.mask)"))
            XCTAssertEqual([decoded.width, decoded.height, decoded.channels], [20, 20, 1])
            let plan = try XCTUnwrap(DemoDataset.plan(images: 14, lots: 1, nights: 1).first { $0.key == row.image })
            let expected = try XCTUnwrap(DemoDataset.render(plan, side: 20, seed: 9).defectMask)
            XCTAssertEqual(decoded.pixels.map { $0 > 0.5 }, expected.map { $0 == 255 })
        }
    }

    func testDustOnlyOnGoodWasherImagesAndNeverOnThePart() throws {
        var dusty = 0, cleanWashers = 0
        for side in [16, 48] {
            for plan in DemoDataset.plan(images: 126, lots: 3, nights: 1) {
                let rendering = DemoDataset.render(plan, side: side, seed: 21)
                let dust = rendering.dustMask.indices.filter { rendering.dustMask[$0] }
                guard !dust.isEmpty else {
                    if plan.part == .washer && !plan.isDefective { cleanWashers += 1 }
                    continue
                }
                dusty += 1
                XCTAssertEqual(plan.part, .washer, plan.key)
                XCTAssertFalse(plan.isDefective, plan.key)
                XCTAssertNil(rendering.defectMask, plan.key)
                XCTAssertTrue(dust.allSatisfy { !rendering.partMask[$0] }, "\(plan.key): dust on the part")
                // Clear of the rim by more than a pixel, by the generator's geometry.
                let part = rendering.partMask.indices.filter { rendering.partMask[$0] }
                let nearest = dust.map { d in part.map { p in
                    let dx = d % side - p % side, dy = d / side - p / side
                    return dx * dx + dy * dy
                }.min() ?? Int.max }.min() ?? Int.max
                XCTAssertGreaterThan(nearest, 1, "\(plan.key): dust touches the washer")
            }
        }
        XCTAssertGreaterThan(dusty, 5, "some good washer images carry dust")
        XCTAssertGreaterThan(cleanWashers, 5, "and some do not")
    }

    func testPartsFollowTheLotLetter() throws {
        let plans = DemoDataset.plan(images: 40, lots: 4, nights: 2)
        XCTAssertEqual(Set(plans.filter { $0.lot.hasSuffix("A") }.map(\.part)), [.brushedMetal])
        XCTAssertEqual(Set(plans.filter { $0.lot.hasSuffix("B") }.map(\.part)), [.wovenTextile])
        XCTAssertEqual(Set(plans.filter { $0.lot.hasSuffix("C") }.map(\.part)), [.washer])
        XCTAssertEqual(Set(plans.filter { $0.lot.hasSuffix("D") }.map(\.part)), [.brushedMetal])
        XCTAssertEqual(DemoDataset.lineLetters(27), "AB")
        XCTAssertEqual(DemoDataset.nightDate(offset: 11).day, 1, "2026-12-01")
        XCTAssertEqual(DemoDataset.nightDate(offset: 42).year, 2027)
    }

    func testManifestRunsThroughIngest() throws {
        let root = try makeTemporaryDirectory("kdad-demo-ingest")
        let summary = try DemoDataset.write(to: root, images: 28, side: 16, lots: 2, nights: 2, seed: 4, archive: true)
        let record = try PipelineRunner.load(manifest: summary.manifest).run(RunOptions(stage: "ingest"))[0].record
        XCTAssertEqual(record.counts["inputs"], 28, "masks are excluded by the manifest's glob")
        XCTAssertEqual(record.counts["ingested"], 28)
        XCTAssertEqual(record.counts["quarantined"], 0)
        XCTAssertEqual(record.counts["lots"], 4)
        XCTAssertEqual(record.counts["role_train"], 16)
        XCTAssertEqual(record.counts["role_val"], 4)
        XCTAssertEqual(record.counts["role_score"], 8)
        XCTAssertEqual(record.counts["labels_without_file"], 0)
        let index = try String(contentsOf: root.appendingPathComponent("work/stages/ingest/index.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(IngestedImage.self, from: Data($0.utf8)) }
        XCTAssertEqual(Set(index.map(\.lot)), Set(summary.lotFolders.map { String($0.split(separator: "/")[1]) }))
        let defects = index.filter { $0.label == "defect" }
        XCTAssertEqual(defects.count, 4)
        XCTAssertTrue(defects.allSatisfy { $0.mask == $0.key.replacingOccurrences(of: ".png", with: "_mask.png") && $0.role == "score" })
    }
}
