import Foundation
import KdadMetrics
import KdadShards

/// Detection metrics of the scored images (role `score`) that have labels: image AUROC, pixel AUROC and PRO (when
/// every defective image has a mask), image F1-max; overall, per lot and per defect type, with
/// KdadMetrics. Writes `metrics.json` in the stage directory and a copy at `WORK_DIR/metrics.json`.
/// Without labelled images (or without both good and defective ones) it records why and writes no
/// metrics.
public struct EvaluateStage: Stage {
    public static let kind = StageKind(
        name: "evaluate",
        params: [
            ParamSpec("pro_fpr_limit", .double(0.001...1), default: .double(0.3), help: "PRO is integrated up to this pixel false-positive rate"),
        ],
        upstreamKinds: ["score"],
        make: { EvaluateStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "evaluate-2" }

    public func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let (_, score) = context.upstream.first!
        let shards = score.record.files.keys.filter { $0.hasPrefix("maps-") && $0.hasSuffix(".shard") }.sorted()
        return PreparedEvaluate(scoreDirectory: score.directory, shards: shards, fprLimit: definition.double("pro_fpr_limit"),
                                workDirectory: context.workDirectory, imageCount: score.record.counts["scored"] ?? 0)
    }
}

struct PreparedEvaluate: PreparedStage {
    let scoreDirectory: URL
    let shards: [String]
    let fprLimit: Double
    let workDirectory: URL
    let imageCount: Int

    /// One unit: the metrics need every image at once (exact pixel AUROC/PRO sort all pixels).
    var unitCount: Int { 1 }
    func itemCount(ofUnit index: Int) -> Int { imageCount }

    /// Mask pixels count as defect above half of the 8-bit range (MTD: value > 127).
    static let maskThreshold: UInt8 = 127

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        // First pass over metadata only: which images are labelled, and do all defective ones have masks?
        var labelled = 0, defects = 0, goods = 0, defectsWithoutMask = 0, unlabelled = 0
        for shard in shards {
            try ShardReader(url: scoreDirectory.appendingPathComponent(shard)).forEachRecord { record in
                let row = try record.decodeMetadata(ScoreRow.self)
                // Only the images to judge: `val` images are defect-free by construction (threshold reference).
                guard row.role == "score" else { return }
                guard let label = row.label else { unlabelled += 1; return }
                labelled += 1
                if label == "good" { goods += 1 } else {
                    defects += 1
                    if record.tensor(named: "mask") == nil { defectsWithoutMask += 1 }
                }
            }
        }
        let counts = ["labelled": labelled, "good": goods, "defective": defects, "unlabelled": unlabelled,
                      "defective_without_mask": defectsWithoutMask]
        guard goods > 0, defects > 0 else {
            let reason = labelled == 0 ? "no scored image has a label" : "the labelled images are all \(goods > 0 ? "good" : "defective")"
            try output.write("evaluation.json", data: Data((JSONValue.object(["skipped": .string(reason)]).canonicalText + "\n").utf8))
            return UnitSummary(counts: counts, entries: [.object(["skipped": .string(reason)])])
        }
        let withPixels = defectsWithoutMask == 0
        var evaluator = try MetricsEvaluator(fprLimit: fprLimit)
        for shard in shards {
            try ShardReader(url: scoreDirectory.appendingPathComponent(shard)).forEachRecord { record in
                let row = try record.decodeMetadata(ScoreRow.self)
                guard row.role == "score", let label = row.label else { return }
                let image = EvaluatedImage(id: row.key, score: row.score, isDefect: label != "good", defectType: row.defectType, lot: row.lot)
                guard withPixels, let map = record.tensor(named: "anomaly_map"), map.shape.count == 3 else {
                    try evaluator.add(image)
                    return
                }
                let (height, width) = (map.shape[1], map.shape[2])
                let mask = try record.tensor(named: "mask").map { try $0.uint8Values().map { $0 > Self.maskThreshold } }
                try evaluator.add(image, map: try map.floatValues(), mask: mask, width: width, height: height)
            }
        }
        let report = try evaluator.report()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(report) + Data("\n".utf8)
        try output.write("metrics.json", data: data)
        var entry: [String: JSONValue] = [:]
        if let value = report.overall.imageAUROC { entry["image_auroc"] = .double(value) }
        if let value = report.overall.pixelAUROC { entry["pixel_auroc"] = .double(value) }
        if let value = report.overall.pro { entry["pro"] = .double(value) }
        if let value = report.overall.imageF1Max { entry["image_f1_max"] = .double(value) }
        if !withPixels { entry["pixel_metrics"] = .string("skipped: \(defectsWithoutMask) defective images have no mask") }
        return UnitSummary(counts: counts, entries: [.object(entry)])
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        let counts = units.first?.counts ?? [:]
        let entry = units.first?.entries.first ?? .object([:])
        let published = workDirectory.appendingPathComponent("metrics.json")
        if let skipped = entry["skipped"]?.stringValue {
            try? FileManager.default.removeItem(at: published)
            return StageSummary(counts: counts, info: ["skipped": .string(skipped)], headline: "not evaluated: \(skipped)")
        }
        // The work dir's copy is a convenience for people and dashboards; the stage's file is the record.
        try AtomicFile.write(try Data(contentsOf: output.url(of: "metrics.json")), to: published)
        func value(_ key: String) -> String { entry[key]?.doubleValue.map { String(format: "%.4f", $0) } ?? "n/a" }
        let headline = "image AUROC \(value("image_auroc")), pixel AUROC \(value("pixel_auroc")), PRO \(value("pro")), image F1-max \(value("image_f1_max")) over \(counts["good"] ?? 0) good + \(counts["defective"] ?? 0) defective images"
        var info: [String: JSONValue] = [:]
        if case let .object(object) = entry { info = object }
        return StageSummary(counts: counts, info: info, headline: headline)
    }
}
