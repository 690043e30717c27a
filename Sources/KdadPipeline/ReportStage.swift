import Foundation
import KdadImage
import KdadNN
import KdadShards
import KdadWeights

/// kdad's release version: report provenance and the `kdad` executable's `--version`.
public enum KdadVersion {
    public static let current = "0.1.0"
}

/// The report of a run: a self-contained `index.html` (lot summary with trend against earlier runs,
/// score histogram with the threshold, defect rate per lot, gallery of the most anomalous images with
/// heatmap overlays, quarantined inputs, provenance), one page per lot (paged image lists), and
/// `images.csv`, `lots.csv`, `quarantine.csv`, `summary.json`. Written into the stage directory and
/// published to `WORK_DIR/report/`, where `history/<run id>.json` keeps each run's per-lot counts for
/// the trend. Only the generation time and host differ between two reports of the same inputs.
public struct ReportStage: Stage {
    public static let kind = StageKind(
        name: "report",
        params: [
            ParamSpec("gallery_size", .int(0...1000), default: .int(24), help: "most anomalous images shown with overlays on the index"),
            ParamSpec("lot_gallery_size", .int(0...200), default: .int(6), help: "most anomalous images per lot shown with overlays on its page"),
            ParamSpec("rows_per_page", .int(10...100_000), default: .int(500), help: "images listed per lot page"),
            ParamSpec("overlay_alpha", .double(0...1), default: .double(0.5), help: "opacity of the colour map over the image"),
            ParamSpec("history", .bool, default: .bool(true), help: "record this run in WORK_DIR/report/history and show trends against earlier runs"),
        ],
        upstreamKinds: ["threshold"],
        make: { ReportStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "report-1" }

    /// The manifest and pipeline files are named (with hashes) in the provenance, so they key the stage.
    public func externalInputs(job: JobManifest) throws -> JSONValue {
        .object(["manifest_sha256": .string(try SHA256.hex(ofFileAt: job.url)),
                 "pipeline_sha256": .string(try SHA256.hex(ofFileAt: job.pipelineURL))])
    }

    func fail(_ reason: String) -> PipelineError {
        .stageFailed(stage: definition.name, reason: "\(reason) (\(definition.file):\(definition.line))")
    }

    /// `WORK_DIR/report`, where the report is published.
    public static func publishedDirectory(workDirectory: URL) -> URL { workDirectory.appendingPathComponent("report") }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let work = context.workDirectory
        let (_, thresholdStage) = context.upstream.first!
        guard let scoreName = thresholdStage.record.upstream.keys.first else { throw fail("the threshold stage record names no score stage") }
        let score = try DistillationSupport.record(ofStage: scoreName, workDirectory: work)
        let scoreDirectory = DistillationSupport.stageDirectory(scoreName, workDirectory: work)
        guard let trainName = score.upstream.keys.first else { throw fail("the score stage record names no train stage") }
        let train = try DistillationSupport.record(ofStage: trainName, workDirectory: work)
        guard let featuresName = train.upstream.keys.first else { throw fail("the train stage record names no feature stage") }
        let description = try FeatureCacheDescription.load(from: DistillationSupport.stageDirectory(featuresName, workDirectory: work))
        let resize = try DistillationSupport.record(ofStage: description.imagesStage, workDirectory: work)
        guard let ingestName = resize.upstream.keys.first else { throw fail("the resize stage record names no ingest stage") }

        let rows = try ScoreTable.load(scoreDirectory: scoreDirectory)
        let threshold = try ThresholdResult.load(from: thresholdStage.directory)
        let quarantined = try Self.quarantine(ingestDirectory: DistillationSupport.stageDirectory(ingestName, workDirectory: work), lotRule: context.job.lotRule)
        let runID = String(SHA256.hex(of: "kdad-report-run\n\(score.outputHash)\n").prefix(16))
        let historyDirectory = Self.publishedDirectory(workDirectory: work).appendingPathComponent("history")
        let history = definition.bool("history") ? Self.history(in: historyDirectory, excluding: runID) : []

        var model = ReportModel.build(rows: rows, quarantined: quarantined, threshold: threshold, history: history,
                                      gallerySize: definition.int("gallery_size"), lotGallerySize: definition.int("lot_gallery_size"))
        for index in model.overlayIndices { model.images[index].overlay = ReportModel.overlayName(forKey: model.images[index].key) }

        let checkpoint = "\(score.params["checkpoint"]?.stringValue ?? "best").safetensors"
        let (weightsName, weightsHash) = Self.teacherWeights(description.teacher, cacheDirectory: work.appendingPathComponent("cache"))
        let provenance = ReportProvenance(
            kdadVersion: KdadVersion.current, job: context.job.name,
            manifest: context.job.displayName, manifestSHA256: try SHA256.hex(ofFileAt: context.job.url),
            pipeline: context.job.pipelineURL.lastPathComponent, pipelineSHA256: try SHA256.hex(ofFileAt: context.job.pipelineURL),
            teacher: description.teacher, teacherWeights: weightsName, teacherWeightsSHA256: weightsHash,
            studentCheckpoint: "stages/\(trainName)/\(checkpoint)", studentCheckpointSHA256: train.files[checkpoint] ?? "unknown",
            scoreStage: scoreName, scoreOutputHash: score.outputHash,
            thresholdMethod: threshold.settings.summary, thresholdValue: threshold.value,
            runID: runID, generatedAt: "", host: "")
        let mapShards = score.files.keys.filter { $0.hasPrefix("maps-") && $0.hasSuffix(".shard") }.sorted()
        return PreparedReport(model: model, provenance: provenance, scoreDirectory: scoreDirectory, mapShards: mapShards,
                              imagesDirectory: DistillationSupport.stageDirectory(description.imagesStage, workDirectory: work),
                              workDirectory: work, historyDirectory: definition.bool("history") ? historyDirectory : nil,
                              rowsPerPage: definition.int("rows_per_page"), alpha: Float(definition.double("overlay_alpha")))
    }

    /// Ingest's quarantine list, each entry with its lot (or "(no lot)" when the lot rule fails on it).
    static func quarantine(ingestDirectory: URL, lotRule: LotRule) throws -> [ReportQuarantined] {
        let url = ingestDirectory.appendingPathComponent("quarantine.jsonl")
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw PipelineError.corruptRecord(path: url.path, reason: "cannot read the quarantine list: \(error)")
        }
        var out: [ReportQuarantined] = []
        for (number, line) in text.split(separator: "\n").enumerated() {
            let entry: QuarantineEntry
            do { entry = try JSONDecoder().decode(QuarantineEntry.self, from: Data(line.utf8)) } catch {
                throw PipelineError.corruptRecord(path: url.path, reason: "line \(number + 1): \(error)")
            }
            out.append(ReportQuarantined(lot: lotRule.lot(forKey: entry.key) ?? "(no lot)", key: entry.key, path: entry.path, reason: entry.reason))
        }
        return out
    }

    /// Earlier runs' history entries, newest first; unreadable files are skipped (it is a convenience).
    static func history(in directory: URL, excluding runID: String) -> [ReportHistoryEntry] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        let entries = names.compactMap { name -> ReportHistoryEntry? in
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else { return nil }
            return try? JSONDecoder().decode(ReportHistoryEntry.self, from: data)
        }
        return entries.filter { $0.runID != runID }.sorted { ($0.generatedAt, $0.runID) > ($1.generatedAt, $1.runID) }
    }

    /// The teacher's weight file name and SHA-256 (the features stage loads it from the weight cache).
    /// The digest is remembered in `cacheDirectory` by (path, size, modification time), as the input
    /// catalog does for images, so each report does not rehash tens of megabytes.
    static func teacherWeights(_ teacher: String, cacheDirectory: URL) -> (String, String) {
        guard let variant = FeaturesStage.teachers[teacher] else { return ("unknown", "unknown (teacher '\(teacher)')") }
        let url: URL
        do { url = try WeightCache.url(for: variant.cacheName) } catch { return ("unavailable", "unavailable (\(error))") }
        let attributes = (try? FileManager.default.attributesOfItem(atPath: url.path)) ?? [:]
        let size = (attributes[.size] as? Int) ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let stamp = "\(url.path)\t\(size)\t\(modified)"
        let memo = cacheDirectory.appendingPathComponent("weights-sha256.json")
        var known = ((try? Data(contentsOf: memo)).flatMap { try? JSONDecoder().decode([String: String].self, from: $0) }) ?? [:]
        if let digest = known[stamp] { return (url.lastPathComponent, digest) }
        do {
            let digest = try SHA256.hex(ofFileAt: url)
            known[stamp] = digest
            try? FileManager.default.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let data = try? encoder.encode(known) { try? AtomicFile.write(data, to: memo) }
            return (url.lastPathComponent, digest)
        } catch {
            return (url.lastPathComponent, "unreadable (\(error))")
        }
    }
}

struct PreparedReport: PreparedStage {
    let model: ReportModel
    let provenance: ReportProvenance
    let scoreDirectory: URL
    let mapShards: [String]
    let imagesDirectory: URL
    let workDirectory: URL
    let historyDirectory: URL?
    let rowsPerPage: Int
    let alpha: Float

    /// Map pixels sampled for the colour scale (a fixed stride, so the sample is deterministic).
    static let pixelSampleTarget = 4_000_000

    var unitCount: Int { 1 }
    func itemCount(ofUnit index: Int) -> Int { model.images.count }

    /// Overlays, CSVs and lot pages. The index and summary (which carry the generation time) are
    /// written by `finish`.
    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        let readers = try mapShards.map { try ShardReader(url: scoreDirectory.appendingPathComponent($0)) }
        let scale = try colourScale(readers)
        let overlayIndices = model.overlayIndices
        for imageIndex in overlayIndices {
            let image = model.images[imageIndex]
            guard let name = image.overlay, let position = readers.firstIndex(where: { $0.contains(key: image.key) }) else {
                throw PipelineError.invalidInput(reason: "no anomaly map for '\(image.key)' in the score stage's shards")
            }
            let record = try readers[position].record(forKey: image.key)
            guard let map = record.tensor(named: "anomaly_map"), map.shape.count == 3 else {
                throw PipelineError.invalidInput(reason: "\(mapShards[position]): record '\(image.key)' has no anomaly_map")
            }
            let (height, width) = (map.shape[1], map.shape[2])
            let imageShard = "images-" + mapShards[position].dropFirst("maps-".count)
            let resized = try ShardReader(url: imagesDirectory.appendingPathComponent(imageShard)).record(forKey: image.key)
            guard let pixels = resized.tensor(named: "image"), pixels.dtype == .uint8, pixels.shape.count == 3,
                  pixels.shape[1] == height, pixels.shape[2] == width else {
                throw PipelineError.invalidInput(reason: "\(imageShard): resized image of '\(image.key)' is missing or does not match its \(width)x\(height) anomaly map")
            }
            let mask = try record.tensor(named: "mask").map { try $0.uint8Values() }
            let overlay = OverlayRenderer.render(image: try pixels.uint8Values(), channels: pixels.shape[0], width: width, height: height,
                                                 map: try map.floatValues(), mask: mask, threshold: model.threshold.value, scale: scale, alpha: alpha)
            let png: Data
            do { png = try PNGEncoder.encodeRGB8(overlay.pixels, width: overlay.width, height: overlay.height) } catch {
                throw PipelineError.invalidInput(reason: "cannot encode the overlay of '\(image.key)': \(error)")
            }
            try output.write(name, data: png)
        }
        try output.write("images.csv", data: Data(model.imagesCSV.utf8))
        try output.write("lots.csv", data: Data(model.lotsCSV.utf8))
        try output.write("quarantine.csv", data: Data(model.quarantineCSV.utf8))
        for page in ReportHTML.lotPages(model: model, scale: scale, rowsPerPage: rowsPerPage) {
            try output.write(page.name, data: Data(page.html.utf8))
        }
        return UnitSummary(counts: ["overlays": overlayIndices.count], entries: [try IngestJSON.value(scale)])
    }

    /// The run's colour scale from a strided sample of the judged images' map pixels.
    func colourScale(_ readers: [ShardReader]) throws -> ColourScale {
        let judged = Set(model.images.map(\.key))
        var sample: [Float] = []
        var stride = 0, counter = 0
        for reader in readers {
            try reader.forEachRecord { record in
                guard judged.contains(record.key), let map = record.tensor(named: "anomaly_map") else { return }
                if stride == 0 { stride = max(1, model.images.count * map.elementCount / Self.pixelSampleTarget) }
                for value in try map.floatValues() {
                    if counter % stride == 0 { sample.append(value) }
                    counter += 1
                }
            }
        }
        return ColourScale.make(pixels: sample, threshold: model.threshold.value)
    }

    /// Every file the report consists of (what is published to WORK_DIR/report).
    var fileNames: [String] {
        var names = ["index.html", "summary.json", "images.csv", "lots.csv", "quarantine.csv"]
        names += model.overlayIndices.compactMap { model.images[$0].overlay }
        for lot in model.lots {
            let count = model.images.filter { $0.lot == lot.lot }.count
            for page in 1...max(1, (count + rowsPerPage - 1) / rowsPerPage) { names.append(ReportHTML.lotPageName(lot, page: page)) }
        }
        return names
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        guard let scaleValue = units.first?.entries.first,
              let scale = try? JSONDecoder().decode(ColourScale.self, from: Data(scaleValue.canonicalText.utf8)) else {
            throw PipelineError.invalidInput(reason: "the report unit recorded no colour scale")
        }
        var provenance = self.provenance
        provenance.generatedAt = Self.utcNow()
        provenance.host = ProcessInfo.processInfo.hostName
        try output.write("index.html", data: Data(ReportHTML.index(model: model, scale: scale, provenance: provenance, rowsPerPage: rowsPerPage).utf8))
        let summary = try self.summary(scale: scale, provenance: provenance)
        try output.write("summary.json", data: summary)

        // Publish: WORK_DIR/report gets exactly this report's files (history/ is kept).
        let published = ReportStage.publishedDirectory(workDirectory: workDirectory)
        try FileManager.default.createDirectory(at: published, withIntermediateDirectories: true)
        let names = fileNames
        let keep = Set(names)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: published.path)) ?? [] where !keep.contains(name) {
            var isDirectory: ObjCBool = false
            let url = published.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue { try? FileManager.default.removeItem(at: url) }
        }
        for name in names { try AtomicFile.write(try Data(contentsOf: output.url(of: name)), to: published.appendingPathComponent(name)) }
        if let historyDirectory {
            try FileManager.default.createDirectory(at: historyDirectory, withIntermediateDirectories: true)
            var lots: [String: ReportHistoryEntry.Lot] = [:]
            for lot in model.lots where lot.images > 0 { lots[lot.lot] = .init(images: lot.images, defective: lot.defective) }
            let entry = ReportHistoryEntry(runID: provenance.runID, generatedAt: provenance.generatedAt, threshold: model.threshold.value,
                                           images: model.images.count, defective: model.defectiveCount, lots: lots)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try encoder.encode(entry) + Data("\n".utf8), to: historyDirectory.appendingPathComponent("\(provenance.runID).json"))
        }

        let total = model.images.count, defective = model.defectiveCount
        let rate = total > 0 ? Double(defective) / Double(total) : 0
        let headline = String(format: "%d images, %d defective (%.1f%%) over %d lots → %@", total, defective, rate * 100, model.lots.count,
                              PipelineRunner.display(published.appendingPathComponent("index.html")))
        return StageSummary(counts: ["images": total, "defective": defective, "lots": model.lots.count, "quarantined": model.quarantined.count,
                                     "overlays": units.first?.counts["overlays"] ?? 0],
                            info: ["threshold": .double(model.threshold.value), "run_id": .string(provenance.runID),
                                   "report": .string(published.appendingPathComponent("index.html").path)],
                            headline: headline)
    }

    func summary(scale: ColourScale, provenance: ReportProvenance) throws -> Data {
        let total = model.images.count, defective = model.defectiveCount
        let lots: [JSONValue] = model.lots.map { lot in
            .object(["lot": .string(lot.lot), "night": lot.night.map(JSONValue.string) ?? .null, "images": .int(lot.images),
                     "defective": .int(lot.defective), "defect_rate": .double(lot.rate),
                     "max_score": lot.maxScore.map { .double(Double($0)) } ?? .null, "quarantined": .int(lot.quarantined),
                     "previous_defect_rate": lot.previousRate.map(JSONValue.double) ?? .null, "page": .string(lot.page)])
        }
        let object: JSONValue = .object([
            "run_id": .string(provenance.runID),
            "job": .string(provenance.job),
            "threshold": try IngestJSON.value(model.threshold),
            "totals": .object(["images": .int(total), "defective": .int(defective),
                               "defect_rate": .double(total > 0 ? Double(defective) / Double(total) : 0),
                               "quarantined": .int(model.quarantined.count), "lots": .int(model.lots.count),
                               "val_images": .int(model.valScores.count)]),
            "lots": .array(lots),
            "colour_scale": try IngestJSON.value(scale),
            "gallery": .array(model.gallery.map { .string(model.images[$0].key) }),
            "previous_runs": .array(model.history.map { .string($0.runID) }),
            "provenance": try IngestJSON.value(provenance),
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(object) + Data("\n".utf8)
    }

    /// UTC, to the second: "2026-11-23T17:49:42Z".
    static func utcNow() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date())
    }
}
