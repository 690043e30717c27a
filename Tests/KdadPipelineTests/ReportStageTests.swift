import XCTest
import KdadShards
import KdadTestSupport
@testable import KdadPipeline

/// The report's pure parts: escaping, CSV consistency, trend, colour map, outlines.
final class ReportWriterTests: XCTestCase {
    func threshold(_ value: Double) -> ThresholdResult {
        ThresholdResult(settings: ThresholdSettings(method: "quantile"), value: value, decision: "defective when score > threshold",
                        reference: .init(role: "val", count: 3, min: 0.1, median: 0.2, max: 0.3), gammaFit: nil, labelled: nil, f1Max: nil)
    }

    func rows() -> [ScoreRow] {
        let hostile = "night-2026-11-20/lot-<b>A/<script>alert(\"x\")&'.png"
        var rows = [ScoreRow(key: hostile, lot: "lot-<b>A", source: "images/" + hostile, split: "test", label: "good", defectType: nil, role: "score", score: 0.9)]
        for i in 0..<30 {
            let lot = i % 3 == 0 ? "lot-1" : "lot-2"
            rows.append(ScoreRow(key: "night-2026-11-21/\(lot)/img_\(i).png", lot: lot, source: "images/\(lot)/img_\(i).png", split: "test",
                                 label: i % 4 == 0 ? "defect" : "good", defectType: i % 4 == 0 ? "crack" : nil, role: "score", score: Float(i) / 30))
        }
        rows += (0..<5).map { ScoreRow(key: "v\($0)", lot: "lot-1", source: "v\($0)", split: "val", label: "good", defectType: nil, role: "val", score: 0.1) }
        return rows
    }

    func provenance() -> ReportProvenance {
        ReportProvenance(kdadVersion: "0.1.0", job: "job <i>", manifest: "m.yaml", manifestSHA256: "aa", pipeline: "p.yaml", pipelineSHA256: "bb",
                         teacher: "efficientnet-lite0", teacherWeights: "w", teacherWeightsSHA256: "cc", studentCheckpoint: "best",
                         studentCheckpointSHA256: "dd", scoreStage: "score", scoreOutputHash: "ee", thresholdMethod: "q", thresholdValue: 0.5,
                         runID: "r1", generatedAt: "2026-01-01T00:00:00Z", host: "host<&>")
    }

    func testEscapeAndURLEncoding() {
        XCTAssertEqual(ReportHTML.escape(#"<script>"a" & 'b'</script>"#), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;")
        XCTAssertEqual(ReportHTML.urlPath("lot-0001.html"), "lot-0001.html")
        XCTAssertEqual(ReportHTML.urlPath("a b/<c>\"é.png"), "a%20b%2F%3Cc%3E%22%C3%A9.png")
    }

    func testHostileNamesRenderAsTextAndNoExternalURLs() throws {
        var history = [ReportHistoryEntry(runID: "r0", generatedAt: "2025-12-31T00:00:00Z", threshold: 0.5, images: 20, defective: 2,
                                          lots: ["lot-1": .init(images: 10, defective: 1), "<x>": .init(images: 1, defective: 1)])]
        history[0].lots["lot-2"] = .init(images: 10, defective: 10)
        let quarantined = [ReportQuarantined(lot: "lot-<b>A", key: "night-2026-11-20/lot-<b>A/<img src=x>.png", path: "images/<img src=x>.png", reason: "bad <png>")]
        var model = ReportModel.build(rows: rows(), quarantined: quarantined, threshold: threshold(0.5), history: history, gallerySize: 5, lotGallerySize: 2)
        for index in model.overlayIndices { model.images[index].overlay = ReportModel.overlayName(forKey: model.images[index].key) }
        let scale = ColourScale.make(pixels: (0..<100).map { Float($0) / 100 }, threshold: 0.5)
        let pages = [("index.html", ReportHTML.index(model: model, scale: scale, provenance: provenance(), rowsPerPage: 10))]
            + ReportHTML.lotPages(model: model, scale: scale, rowsPerPage: 10).map { ($0.name, $0.html) }
        let urlAttribute = try NSRegularExpression(pattern: #"(src|href)\s*=\s*["']?\s*(https?:)?//"#, options: [.caseInsensitive])
        for (name, html) in pages {
            XCTAssertEqual(urlAttribute.numberOfMatches(in: html, range: NSRange(html.startIndex..., in: html)), 0, "\(name) links outside")
            XCTAssertFalse(html.contains("<script"), "\(name) has a raw <script")
            XCTAssertFalse(html.contains("<img src=x"), name)
            XCTAssertFalse(html.contains("<b>A") || html.contains("<i>") || html.contains("<x>"), name)
        }
        let index = pages[0].1
        XCTAssertTrue(index.contains("&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;.png"), "the hostile key is shown as text in the gallery")
        XCTAssertTrue(index.contains("host&lt;&amp;&gt;"))
        XCTAssertTrue(index.contains("&lt;img src=x&gt;.png") && index.contains("bad &lt;png&gt;"), "quarantined entry shown escaped")
        // The hostile lot's own page lists the image as text.
        let hostileLot = try XCTUnwrap(model.lots.first { $0.lot == "lot-<b>A" })
        let lotPage = try XCTUnwrap(pages.first { $0.0 == hostileLot.page }).1
        XCTAssertTrue(lotPage.contains("images/night-2026-11-20/lot-&lt;b&gt;A/&lt;script&gt;alert(&quot;x&quot;)&amp;&#39;.png"))
        // Every local link target is one of the report's files.
        let names = Set(pages.map(\.0) + model.overlayIndices.compactMap { model.images[$0].overlay } + ["images.csv", "lots.csv", "quarantine.csv", "summary.json"])
        let link = try NSRegularExpression(pattern: #"(?:src|href)="([^"]*)""#)
        for (name, html) in pages {
            for match in link.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
                let target = String(html[Range(match.range(at: 1), in: html)!]).removingPercentEncoding!
                XCTAssertTrue(names.contains(target), "\(name) links to \(target), which the report does not have")
            }
        }
        // 20 images in lot-2 with 10 rows a page: two pages, linked to each other.
        let lot2 = try XCTUnwrap(model.lots.first { $0.lot == "lot-2" })
        XCTAssertTrue(names.contains(ReportHTML.lotPageName(lot2, page: 2)))
        XCTAssertFalse(names.contains(ReportHTML.lotPageName(lot2, page: 3)))
    }

    func testCSVCountsAgreeAndTrendComesFromHistory() throws {
        let history = [ReportHistoryEntry(runID: "old", generatedAt: "2025-01-01T00:00:00Z", threshold: 0.5, images: 10, defective: 5,
                                          lots: ["lot-1": .init(images: 10, defective: 5)]),
                       ReportHistoryEntry(runID: "newer", generatedAt: "2025-06-01T00:00:00Z", threshold: 0.5, images: 4, defective: 1,
                                          lots: ["lot-1": .init(images: 4, defective: 1)])]
        let quarantined = [ReportQuarantined(lot: "lot-1", key: "k", path: "p", reason: "r")]
        let model = ReportModel.build(rows: rows(), quarantined: quarantined, threshold: threshold(0.5), history: history, gallerySize: 3, lotGallerySize: 1)
        let images = model.imagesCSV.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(images.count, 31, "one row per score image, none for val")
        var perLot: [String: (Int, Int)] = [:]
        for fields in images {
            XCTAssertEqual(fields.count, 9, fields.joined(separator: ","))
            let defective = fields[5] == "defective"
            XCTAssertEqual(defective, Double(fields[4])! > 0.5, "decision is score > threshold")
            XCTAssertEqual(fields[6], "0.5")
            perLot[fields[0], default: (0, 0)].0 += 1
            if defective { perLot[fields[0], default: (0, 0)].1 += 1 }
        }
        let lots = model.lotsCSV.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(lots.count, 3)
        for fields in lots {
            XCTAssertEqual(Int(fields[2]), perLot[fields[0]]?.0, fields[0]); XCTAssertEqual(Int(fields[3]), perLot[fields[0]]?.1, fields[0])
        }
        // lot-1: the newest previous run had 1/4 defective; the older 5/10 is not the comparison.
        let lot1 = try XCTUnwrap(model.lots.first { $0.lot == "lot-1" })
        XCTAssertEqual(lot1.previousRate, 0.25)
        XCTAssertEqual(lot1.quarantined, 1)
        XCTAssertNil(model.lots.first { $0.lot == "lot-2" }?.previousRate)
        // Gallery: the three highest scores, descending.
        XCTAssertEqual(model.gallery.map { model.images[$0].score }, [Float(29) / 30, Float(28) / 30, 0.9])
    }

    func testColourMapScaleAndOutlines() {
        XCTAssertTrue(InfernoColourMap.rgb(0) == (0, 0, 4) && InfernoColourMap.rgb(1) == (252, 255, 164))
        XCTAssertTrue(InfernoColourMap.rgb(-3) == InfernoColourMap.rgb(0) && InfernoColourMap.rgb(.nan) == InfernoColourMap.rgb(0))
        let scale = ColourScale.make(pixels: (0..<1001).map { Float($0) / 1000 }, threshold: 0.8)
        XCTAssertEqual(scale.low, 0.5, accuracy: 1e-6)
        XCTAssertEqual(scale.high, 1.1, accuracy: 1e-6, "threshold + (threshold - median) beats the 99.9th percentile here")
        // A 3x3 block inside a 5x5 region: its ring is outline, its centre is not.
        var region = [Bool](repeating: false, count: 25)
        for y in 1...3 { for x in 1...3 { region[y * 5 + x] = true } }
        let edge = OverlayRenderer.outline(region, width: 5, height: 5)
        XCTAssertEqual(edge.filter { $0 }.count, 8)
        XCTAssertFalse(edge[12])
        // Overlay: two panels plus the gap; an above-threshold pixel's outline is green in both.
        let map: [Float] = (0..<25).map { region[$0] ? 2 : 0 }
        let out = OverlayRenderer.render(image: [UInt8](repeating: 100, count: 25), channels: 1, width: 5, height: 5, map: map, mask: nil,
                                         threshold: 1, scale: ColourScale(low: 0, high: 2, rule: ""), alpha: 0.5)
        XCTAssertEqual(out.width, 2 * 5 + OverlayRenderer.gap)
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(out.pixels[((y * out.width + x) * 3)..<((y * out.width + x) * 3 + 3)]) }
        XCTAssertEqual(pixel(1, 1), [60, 255, 60]); XCTAssertEqual(pixel(5 + OverlayRenderer.gap + 1, 1), [60, 255, 60])
        XCTAssertEqual(pixel(0, 0), [100, 100, 100], "left panel keeps the image")
        XCTAssertEqual(pixel(5 + OverlayRenderer.gap, 0), [50, 50, 52], "right panel: half image, half the darkest colour (0, 0, 4)")
    }
}

/// The report stage in a real (tiny) run of the demo archive, with a hostile file name and a broken
/// file among the images.
final class ReportStageTests: XCTestCase {
    static let reportStages = """
        - name: threshold
          kind: threshold
          depends_on: score
          params:
            quantile: 0.9
            min_val_images: 3
        - name: report
          kind: report
          depends_on: threshold
          params:
            gallery_size: 5
            lot_gallery_size: 2
            rows_per_page: 10

    """

    /// A demo job plus `<script>.png` (a copy of a good test image) and an undecodable `broken.png`,
    /// both in the first lot's folder and in the `test` split.
    func makeJob(_ label: String, images: Int = 36) throws -> (job: DistillationJob, lot: String) {
        _ = try cachedLite0Weights()
        let root = try makeTemporaryDirectory(label)
        let demo = try DemoDataset.write(to: root, images: images, side: 40, lots: 3, nights: 1, seed: 7)
        let folder = demo.lotFolders[0]
        let lot = String(folder.split(separator: "/")[1])
        let imagesDirectory = root.appendingPathComponent("images/\(folder)")
        let labels = root.appendingPathComponent("labels.csv")
        var csv = try String(contentsOf: labels, encoding: .utf8)
        let goodTest = try XCTUnwrap(csv.split(separator: "\n").first { $0.contains(",test,good,") && $0.hasPrefix(folder + "/") },
                                     "the first lot has a good test image")
        let goodFile = String(goodTest.split(separator: ",")[0])
        try FileManager.default.copyItem(at: root.appendingPathComponent("images/\(goodFile)"), to: imagesDirectory.appendingPathComponent("<script>.png"))
        try Data("not a png".utf8).write(to: imagesDirectory.appendingPathComponent("broken.png"))
        csv += "\(folder)/<script>.png,test,good,,,\(lot)\n\(folder)/broken.png,test,good,,,\(lot)\n"
        try Data(csv.utf8).write(to: labels)
        try Data((DistillationJob.pipeline(epochs: 1) + Self.reportStages).utf8).write(to: root.appendingPathComponent("pipeline.yaml"))
        return (DistillationJob(root: root, manifest: demo.manifest), lot)
    }

    func lines(_ url: URL) throws -> [[String]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    func testDemoRunReportIsCompleteConsistentEscapedAndReproducible() throws {
        let (job, hostileLot) = try makeJob("kdad-report")
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let outcomes = try job.run()
        XCTAssertEqual(outcomes.map(\.stage), ["ingest", "resize", "features", "train", "score", "evaluate", "threshold", "report"])
        let ingest = outcomes[0].record, score = outcomes[4].record, report = outcomes[7].record
        XCTAssertEqual(ingest.counts["quarantined"], 1, "broken.png is quarantined")
        let scoreCount = try XCTUnwrap(ingest.counts["role_score"])
        XCTAssertEqual(score.counts["scored"], scoreCount)

        // Threshold: the 0.9 quantile of the val rows of scores.jsonl, nothing else.
        let rows = try ScoreTable.load(scoreDirectory: job.work.appendingPathComponent("stages/score"))
        let val = rows.filter { $0.role == "val" }.map(\.score)
        XCTAssertEqual(val.count, ingest.counts["role_val"])
        let threshold = try ThresholdResult.load(from: job.work.appendingPathComponent("stages/threshold"))
        XCTAssertEqual(threshold.value, try quantile(val, 0.9), accuracy: 1e-12)
        XCTAssertEqual(threshold.reference.count, val.count)

        let dir = job.work.appendingPathComponent("report")
        // images.csv: one row per scored image, decisions = score > threshold.
        let images = try lines(dir.appendingPathComponent("images.csv"))
        XCTAssertEqual(images.count, scoreCount)
        XCTAssertEqual(Set(images.map { $0[3] }), Set(rows.filter { $0.role == "score" }.map(\.key)))
        for fields in images { XCTAssertEqual(fields[5] == "defective", Double(fields[4])! > threshold.value, fields.joined(separator: ",")) }
        XCTAssertTrue(images.contains { $0[3].hasSuffix("/<script>.png") && $0[0] == hostileLot })
        // lots.csv: counts agree with images.csv; the quarantined input is counted in its lot.
        let lots = try lines(dir.appendingPathComponent("lots.csv"))
        XCTAssertEqual(lots.count, 3)
        for fields in lots {
            let members = images.filter { $0[0] == fields[0] }
            XCTAssertEqual(Int(fields[2]), members.count, fields[0])
            XCTAssertEqual(Int(fields[3]), members.filter { $0[5] == "defective" }.count, fields[0])
            XCTAssertEqual(Int(fields[6]), fields[0] == hostileLot ? 1 : 0, fields[0])
        }
        let quarantine = try lines(dir.appendingPathComponent("quarantine.csv"))
        XCTAssertEqual(quarantine.count, 1)
        XCTAssertTrue(quarantine[0][2].hasSuffix("broken.png") && quarantine[0][0] == hostileLot)
        // Every input is accounted for: judged, quarantined, or used as train/val/none.
        XCTAssertEqual(images.count + quarantine.count + (ingest.counts["role_train"] ?? 0) + (ingest.counts["role_val"] ?? 0) + (ingest.counts["role_none"] ?? 0),
                       ingest.counts["inputs"])
        XCTAssertEqual(report.headline, String(format: "%d images, %d defective (%.1f%%) over 3 lots → %@", images.count,
                                               images.filter { $0[5] == "defective" }.count,
                                               Double(images.filter { $0[5] == "defective" }.count) / Double(images.count) * 100,
                                               PipelineRunner.display(dir.appendingPathComponent("index.html"))))

        // HTML: escaped hostile names, no external URL, every local link resolves to a file beside it.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        let htmlFiles = files.filter { $0.hasSuffix(".html") }
        XCTAssertGreaterThan(htmlFiles.count, 3, "index plus lot pages")
        let urlAttribute = try NSRegularExpression(pattern: #"(src|href)\s*=\s*["']?\s*(https?:)?//"#, options: [.caseInsensitive])
        let link = try NSRegularExpression(pattern: #"(?:src|href)="([^"]*)""#)
        var sawHostile = false
        for name in htmlFiles {
            let html = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            XCTAssertEqual(urlAttribute.numberOfMatches(in: html, range: NSRange(html.startIndex..., in: html)), 0, name)
            XCTAssertFalse(html.contains("<script"), name)
            if html.contains("/&lt;script&gt;.png") { sawHostile = true }
            for match in link.matches(in: html, range: NSRange(html.startIndex..., in: html)) {
                let target = String(html[Range(match.range(at: 1), in: html)!]).removingPercentEncoding!
                XCTAssertTrue(files.contains(target), "\(name) links to missing \(target)")
            }
        }
        XCTAssertTrue(sawHostile, "the hostile file name is listed, escaped")
        // Overlays: both panels at the map size (32x32 after the crop).
        let overlays = files.filter { $0.hasPrefix("overlay-") }
        XCTAssertFalse(overlays.isEmpty)
        for name in overlays {
            let image = try ImageAccess.decode(try Data(contentsOf: dir.appendingPathComponent(name)), name: name)
            XCTAssertEqual(image.width, 2 * 32 + OverlayRenderer.gap); XCTAssertEqual(image.height, 32); XCTAssertEqual(image.channels, 3)
        }
        // summary.json agrees and names the provenance.
        let summary = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: dir.appendingPathComponent("summary.json")))
        XCTAssertEqual(summary["totals"]?["images"], .int(images.count))
        XCTAssertEqual(summary["totals"]?["quarantined"], .int(1))
        XCTAssertEqual(summary["threshold"]?["value"]?.doubleValue, threshold.value)
        let provenance = try XCTUnwrap(summary["provenance"])
        XCTAssertEqual(provenance["manifest_sha256"], .string(try SHA256.hex(ofFileAt: job.manifest)))
        XCTAssertEqual(provenance["student_checkpoint_sha256"], .string(SHA256.hex(of: try Data(contentsOf: job.work.appendingPathComponent("stages/train/best.safetensors")))))
        XCTAssertEqual(provenance["teacher_weights_sha256"], .string(try sha256sum(try cachedLite0Weights())))
        XCTAssertEqual(provenance["kdad_version"], .string(KdadVersion.current))
        let runID = try XCTUnwrap(provenance["run_id"]?.stringValue)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("history/\(runID).json").path))

        // Same inputs, report rerun: every file identical except the generation time and host.
        let before = try snapshot(dir)
        let rerun = try job.run(RunOptions(stage: "report", force: true))
        XCTAssertEqual(rerun.last?.action, .ran)
        let after = try snapshot(dir)
        XCTAssertEqual(Set(before.keys), Set(after.keys))
        for (name, data) in before {
            if name.hasSuffix(".png") { XCTAssertEqual(data, after[name], name); continue }
            XCTAssertEqual(try normalised(data, in: before), try normalised(after[name]!, in: after), name)
        }
    }

    func testThresholdWithoutValSplitSaysToAddOne() throws {
        let (job, _) = try makeJob("kdad-report-noval", images: 21)
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let text = try String(contentsOf: job.manifest, encoding: .utf8)
        try Data(text.replacingOccurrences(of: "  val:\n    split: val\n", with: "").utf8).write(to: job.manifest)
        XCTAssertThrowsError(try job.run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("stage 'threshold' failed") && message.contains("add a 'val:' split"), message)
        }
    }

    func testScoreSkipsARoleTheFeatureCacheLacksAndTheThresholdSaysWhatToAdd() throws {
        let (job, _) = try makeJob("kdad-report-noval-cache", images: 21)
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let pipeline = DistillationJob.pipeline(epochs: 1).replacingOccurrences(of: "batch_size: 5\n", with: "batch_size: 5\n        roles: [train, score]\n")
        XCTAssertNotEqual(pipeline, DistillationJob.pipeline(epochs: 1))
        try job.setPipeline(pipeline + Self.reportStages)
        XCTAssertThrowsError(try job.run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("stage 'threshold' failed") && message.contains("'val' in the features stage's roles"), message)
        }
        let score = try DistillationSupport.record(ofStage: "score", workDirectory: job.work)
        XCTAssertTrue(score.headline.contains("role val skipped: not in the feature cache 'features'"), score.headline)
        XCTAssertEqual(score.counts["val_scored"], 0)
        XCTAssertGreaterThan(score.counts["scored"] ?? 0, 0)
    }

    /// The coreutils digest (an independent implementation, and fast in a debug build).
    func sha256sum(_ url: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: output, as: UTF8.self).prefix(64))
    }

    func quantile(_ scores: [Float], _ q: Double) throws -> Double {
        let sorted = scores.map(Double.init).sorted()
        let h = Double(sorted.count - 1) * q, i = Int(h)
        return sorted[i] + (h - Double(i)) * (sorted[min(i + 1, sorted.count - 1)] - sorted[i])
    }

    /// Every file of the report directory (history/ included) by relative name.
    func snapshot(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in enumerator where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            out[String(url.path.dropFirst(dir.path.count + 1))] = try Data(contentsOf: url)
        }
        return out
    }

    /// Replaces what may differ between two reports of the same inputs, the generation time (as
    /// summary.json states it), with a placeholder. The host is the same machine here.
    func normalised(_ data: Data, in snapshot: [String: Data]) throws -> String {
        let summary = try JSONDecoder().decode(JSONValue.self, from: XCTUnwrap(snapshot["summary.json"]))
        let time = try XCTUnwrap(summary["provenance"]?["generated_at"]?.stringValue)
        XCTAssertFalse(time.isEmpty)
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: time, with: "<generated-at>")
    }
}
