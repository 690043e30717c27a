import XCTest
import KdadNN
import KdadShards
import KdadTensor
import KdadWeights
import KdadTestSupport
@testable import KdadPipeline

/// A small demo job with the whole distillation chain: 32x32 crops, two shallow teacher layers,
/// a few epochs, so it runs in seconds in a debug build.
struct DistillationJob {
    let root: URL
    let manifest: URL
    var work: URL { root.appendingPathComponent("work") }

    static let layers = ["block02", "block04"]

    static func pipeline(epochs: Int = 2, method: String = "reverse", borderIgnore: Int = 0, imagesPerUnit: Int = 12,
                         layers: [String] = DistillationJob.layers, trainBatch: Int = 8) -> String {
        """
        pipeline:
          name: distill-test
          stages:
            - name: ingest
              kind: ingest
              params:
                images_per_unit: \(imagesPerUnit)
            - name: resize
              kind: resize
              depends_on: ingest
              params:
                size: 40
                crop: 32
            - name: features
              kind: features
              depends_on: resize
              params:
                layers: [\(layers.joined(separator: ", "))]
                batch_size: 5
            - name: train
              kind: train
              depends_on: features
              params:
                method: \(method)
                epochs: \(epochs)
                batch_size: \(trainBatch)
                options: {blocksPerStage: 1}
            - name: score
              kind: score
              depends_on: train
              params:
                batch_size: 4
                border_ignore: \(borderIgnore)
            - name: evaluate
              kind: evaluate
              depends_on: score

        """
    }

    static func make(_ label: String, images: Int = 36, pipeline: String = DistillationJob.pipeline()) throws -> DistillationJob {
        _ = try cachedLite0Weights()
        let root = try makeTemporaryDirectory(label)
        let demo = try DemoDataset.write(to: root, images: images, side: 40, lots: 3, seed: 7)
        try Data(pipeline.utf8).write(to: root.appendingPathComponent("pipeline.yaml"))
        return DistillationJob(root: root, manifest: demo.manifest)
    }

    func setPipeline(_ text: String) throws { try Data(text.utf8).write(to: root.appendingPathComponent("pipeline.yaml")) }

    @discardableResult
    func run(_ options: RunOptions = RunOptions()) throws -> [StageOutcome] {
        try PipelineRunner.load(manifest: manifest).run(options)
    }
}

/// The cached teacher weights, or a skip naming why (the features stage cannot run without them).
func cachedLite0Weights() throws -> URL {
    do { return try WeightCache.url(for: EfficientNetLiteVariant.lite0.cacheName) } catch {
        throw XCTSkip("skipped: EfficientNet-Lite0 weights are not in the cache (scripts/fetch-weights.sh): \(error)")
    }
}

final class DistillationStagesTests: XCTestCase {
    func records(_ url: URL) throws -> [ShardRecord] {
        var out: [ShardRecord] = []
        try ShardReader(url: url).forEachRecord { out.append($0) }
        return out
    }

    func testFullChainOutputsRecordsAndCaching() throws {
        let job = try DistillationJob.make("kdad-distill")
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let outcomes = try job.run()
        XCTAssertEqual(outcomes.map(\.stage), ["ingest", "resize", "features", "train", "score", "evaluate"])
        XCTAssertTrue(outcomes.allSatisfy { $0.action == .ran })
        let stages = job.work.appendingPathComponent("stages")
        let ingest = outcomes[0].record
        let cachedRoles = (ingest.counts["role_train"] ?? 0) + (ingest.counts["role_val"] ?? 0) + (ingest.counts["role_score"] ?? 0)

        // Feature cache: every train/val/score image, Float16 maps of the configured layers at the
        // teacher's shapes, equal to a direct teacher run on the resized image up to Float16 rounding.
        let features = outcomes[2].record
        XCTAssertEqual(features.counts["cached"], cachedRoles)
        let cache = try FeatureCacheDescription.load(from: stages.appendingPathComponent("features"))
        XCTAssertEqual(cache.layers.map(\.name), DistillationJob.layers)
        XCTAssertEqual(cache.layers.map(\.channels), [24, 40])
        XCTAssertEqual(cache.layers.map(\.stride), [4, 8])
        XCTAssertEqual(cache.imagesStage, "resize")
        let featureRecords = try cache.shards.flatMap { try records(stages.appendingPathComponent("features/\($0)")) }
        XCTAssertEqual(featureRecords.count, cachedRoles)
        let rawBytes = cachedRoles * (24 * 8 * 8 + 40 * 4 * 4) * 4
        XCTAssertEqual(features.counts["raw_float32_bytes"], rawBytes)
        let shardBytes = cache.shards.reduce(0) { $0 + DistillationSupport.fileSize(stages.appendingPathComponent("features/\($1)")) }
        XCTAssertEqual(features.counts["shard_bytes"], shardBytes)
        XCTAssertEqual(features.info["compression_ratio"]?.doubleValue ?? 0, Double(rawBytes) / Double(shardBytes), accuracy: 0.01)
        for record in featureRecords {
            XCTAssertEqual(record.tensors.map(\.name), DistillationJob.layers)
            XCTAssertEqual(record.tensors.map(\.dtype), [.float16, .float16])
            XCTAssertEqual(record.tensors.map(\.shape), [[24, 8, 8], [40, 4, 4]])
        }
        let probe = featureRecords[3]
        let resized = try ShardReader(url: stages.appendingPathComponent("resize/images-00000.shard")).record(forKey: probe.key)
        let input = try DistillationSupport.teacherInput(resized, normalization: "imagenet", shard: "images-00000.shard")
        let teacher = try EfficientNetLite.pretrained(.lite0)
        let direct = Tensor.noGrad { teacher.forward(Tensor(shape: [1, 3, 32, 32], values: input.values), features: [.block(2), .block(4)]) }
        for (tensor, feature) in zip(probe.tensors, [LiteFeature.block(2), .block(4)]) {
            let expected = direct[feature]!.scalars, cached = try tensor.floatValues()
            var worst: Float = 0
            for (a, b) in zip(cached, expected) { worst = max(worst, abs(a - b) / max(1, abs(b))) }
            XCTAssertLessThan(worst, 2e-3, "\(feature): cached Float16 features differ from a direct teacher run")  // fp16: 2^-11
        }

        // Training: checkpoints and one history line per epoch; resume files are gone.
        let trainDir = stages.appendingPathComponent("train")
        for name in ["best.safetensors", "last.safetensors", "history.jsonl", "training.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: trainDir.appendingPathComponent(name).path), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: trainDir.appendingPathComponent("epoch-checkpoint.safetensors").path))
        let history = try String(contentsOf: trainDir.appendingPathComponent("history.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(history.count, 2)
        XCTAssertEqual(outcomes[3].record.counts["train_images"], ingest.counts["role_train"])
        XCTAssertEqual(outcomes[3].record.counts["val_images"], ingest.counts["role_val"])

        // Scores: one row per score image, the map's max (border_ignore 0, score = max) is the score.
        let scoreDir = stages.appendingPathComponent("score")
        let csv = try String(contentsOf: scoreDir.appendingPathComponent("scores.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.first, "key,lot,source,split,label,defect_type,role,score")
        // Default roles [val, score]: the val images are scored too (the threshold's reference).
        XCTAssertEqual(csv.count - 1, (ingest.counts["role_score"] ?? 0) + (ingest.counts["role_val"] ?? 0))
        XCTAssertEqual(csv.dropFirst().filter { $0.split(separator: ",", omittingEmptySubsequences: false)[6] == "score" }.count, ingest.counts["role_score"])
        XCTAssertEqual(outcomes[4].record.counts["scored"], ingest.counts["role_score"])
        XCTAssertEqual(outcomes[4].record.counts["val_scored"], ingest.counts["role_val"])
        let jsonl = try String(contentsOf: scoreDir.appendingPathComponent("scores.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(jsonl.count, csv.count - 1)
        var scoreByKey: [String: Float] = [:]
        for line in csv.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            XCTAssertEqual(fields.count, 8, String(line))
            scoreByKey[String(fields[0])] = Float(fields[7])
        }
        let maps = try outcomes[4].record.files.keys.filter { $0.hasPrefix("maps-") }.sorted().flatMap { try records(scoreDir.appendingPathComponent($0)) }
        XCTAssertEqual(maps.count, csv.count - 1)
        var defectsWithMask = 0
        for record in maps {
            let map = try XCTUnwrap(record.tensor(named: "anomaly_map"))
            XCTAssertEqual(map.shape, [1, 32, 32])
            let stored = try map.floatValues().max()!
            let score = try XCTUnwrap(scoreByKey[record.key])
            XCTAssertEqual(stored, score, accuracy: abs(score) * 1e-3, record.key)
            let row = try record.decodeMetadata(ScoreRow.self)
            if row.label == "defect" {
                let mask = try XCTUnwrap(record.tensor(named: "mask"), "defective \(record.key) has its mask")
                XCTAssertEqual(mask.shape, [1, 32, 32])
                XCTAssertTrue(try mask.uint8Values().contains { $0 > 127 }, "mask of \(record.key) keeps its defect inside the crop")
                defectsWithMask += 1
            }
        }
        XCTAssertGreaterThan(defectsWithMask, 0)

        // Evaluation: metrics.json with the agreed keys; image AUROC equals a brute-force Mann-Whitney.
        let metricsData = try Data(contentsOf: stages.appendingPathComponent("evaluate/metrics.json"))
        XCTAssertEqual(try Data(contentsOf: job.work.appendingPathComponent("metrics.json")), metricsData)
        let metrics = try JSONDecoder().decode(JSONValue.self, from: metricsData)
        for key in ["image_auroc", "pixel_auroc", "pro", "image_f1_max", "per_lot", "per_defect_type"] {
            XCTAssertNotNil(metrics[key], "metrics.json has \(key)")
        }
        var good: [Float] = [], bad: [Float] = []
        for record in maps {
            let row = try record.decodeMetadata(ScoreRow.self)
            guard row.role == "score" else { continue }  // evaluate judges only the score images
            if row.label == "good" { good.append(row.score) } else { bad.append(row.score) }
        }
        var wins = 0.0
        for b in bad { for g in good { wins += b > g ? 1 : (b == g ? 0.5 : 0) } }
        XCTAssertEqual(metrics["image_auroc"]?.doubleValue ?? -1, wins / Double(good.count * bad.count), accuracy: 1e-12)
        let defectTypes = ["scratch", "spot", "crack", "missing"].filter { metrics["per_defect_type"]?[$0] != nil }
        XCTAssertFalse(defectTypes.isEmpty, "per_defect_type names the demo's defect types")
        for type in defectTypes { XCTAssertNotNil(metrics["per_defect_type"]?[type]?["pixel_auroc"]?.doubleValue, type) }

        // Rerun: nothing to do. A train param change reruns train, score and evaluate only.
        XCTAssertEqual(try job.run().map(\.action), [.skipped, .skipped, .skipped, .skipped, .skipped, .skipped])
        try job.setPipeline(DistillationJob.pipeline(epochs: 3))
        let changed = try job.run()
        XCTAssertEqual(changed.map(\.action), [.skipped, .skipped, .skipped, .ran, .ran, .ran])
        XCTAssertNotEqual(changed[3].record.outputHash, outcomes[3].record.outputHash)
        // A score param change reruns score and evaluate only.
        try job.setPipeline(DistillationJob.pipeline(epochs: 3, borderIgnore: 4))
        let bordered = try job.run()
        XCTAssertEqual(bordered.map(\.action), [.skipped, .skipped, .skipped, .skipped, .ran, .ran])
        // layer_weights: unit weights give the same maps and scores as none; leaving a layer out changes them;
        // a layer the student was not trained on is named in the error with the ones it was.
        func weighted(_ weights: String) -> String {
            DistillationJob.pipeline(epochs: 3, borderIgnore: 4).replacingOccurrences(of: "border_ignore: 4", with: "border_ignore: 4\n        layer_weights: \(weights)")
        }
        try job.setPipeline(weighted("{block02: 1, block04: 1}"))
        let unit = try job.run()
        XCTAssertEqual(unit[4].action, .ran)
        XCTAssertEqual(unit[4].record.outputHash, bordered[4].record.outputHash)
        try job.setPipeline(weighted("{block02: 0}"))
        let deepOnly = try job.run()
        XCTAssertEqual(deepOnly[4].action, .ran)
        XCTAssertNotEqual(deepOnly[4].record.outputHash, bordered[4].record.outputHash)
        try job.setPipeline(weighted("{block07: 2}"))
        XCTAssertThrowsError(try job.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("stage 'score' failed") && text.contains("'block07'") && text.contains("block02, block04")
                          && text.contains("pipeline.yaml:"), text)
        }
    }

    func testForwardStudentReadsImagesAndScores() throws {
        let job = try DistillationJob.make("kdad-distill-fwd", images: 20, pipeline: DistillationJob.pipeline(epochs: 1, method: "forward")
            .replacingOccurrences(of: "options: {blocksPerStage: 1}", with: "options: {width: 8}"))
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let outcomes = try job.run()
        XCTAssertEqual(outcomes[3].record.info["method"], .string("forward"))
        XCTAssertEqual(outcomes[4].record.counts["scored"], outcomes[0].record.counts["role_score"])
    }

    func testBadMethodOptionFailsNamingThePipelineFile() throws {
        let job = try DistillationJob.make("kdad-distill-bad", images: 10,
                                           pipeline: DistillationJob.pipeline().replacingOccurrences(of: "blocksPerStage", with: "blocksPerStag"))
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        XCTAssertThrowsError(try job.run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("stage 'train' failed") && text.contains("blocksPerStag") && text.contains("pipeline.yaml:"), text)
        }
    }

    func testParamTypesAreCheckedWhenThePipelineLoads() throws {
        let job = try DistillationJob.make("kdad-distill-params", images: 5)
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        func loadError(_ pipeline: String) -> String {
            do { try job.setPipeline(pipeline); _ = try PipelineRunner.load(manifest: job.manifest); return "loaded" } catch { return "\(error)" }
        }
        let layer = loadError(DistillationJob.pipeline().replacingOccurrences(of: "[block02, block04]", with: "[block02, blok04]"))
        XCTAssertTrue(layer.contains("pipeline.yaml:") && layer.contains("'pipeline.stages[2].params.layers'") && layer.contains("did you mean 'block04'"), layer)
        let option = loadError(DistillationJob.pipeline().replacingOccurrences(of: "{blocksPerStage: 1}", with: "{blocksPerStage: one}"))
        XCTAssertTrue(option.contains("'pipeline.stages[3].params.options.blocksPerStage' must be a number"), option)
        let wrongUpstream = loadError(DistillationJob.pipeline().replacingOccurrences(of: "depends_on: train", with: "depends_on: features"))
        XCTAssertTrue(wrongUpstream.contains("stage 'score' of kind 'score' cannot take input from 'features' of kind 'features'"), wrongUpstream)
    }

    func testEvaluateWithoutLabelsRecordsWhyAndWritesNoMetrics() throws {
        let job = try DistillationJob.make("kdad-distill-nolabels", images: 15)
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        // Same images, no labels: everything that is not training data is scored, unlabelled.
        let text = try String(contentsOf: job.manifest, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let labelsIndex = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "labels:" }) else {
            return XCTFail("demo manifest has no labels section:\n\(text)")
        }
        lines.remove(at: labelsIndex + 1); lines.remove(at: labelsIndex)
        var rewritten = lines.joined(separator: "\n")
        rewritten = rewritten.replacingOccurrences(of: #"split: train"#, with: #"glob: "*/lot-*A/**""#)
            .replacingOccurrences(of: #"split: val"#, with: #"glob: "*/lot-*B/**""#)
            .replacingOccurrences(of: #"split: test"#, with: #"glob: "**""#)
        try Data(rewritten.utf8).write(to: job.manifest)
        let outcomes = try job.run()
        let evaluate = try XCTUnwrap(outcomes.last)
        XCTAssertEqual(evaluate.record.info["skipped"], .string("no scored image has a label"), rewritten)
        XCTAssertFalse(FileManager.default.fileExists(atPath: job.work.appendingPathComponent("metrics.json").path))
        XCTAssertGreaterThan(outcomes[4].record.counts["scored"] ?? 0, 0)
    }

    /// A last training batch of one image whose deepest map is 1x1 would give BatchNorm a single
    /// value per channel; the stage folds it into the previous batch instead.
    func testLastSingleImageBatchIsFoldedIntoThePreviousOne() throws {
        let job = try DistillationJob.make("kdad-distill-fold", images: 20)
        addTeardownBlock { try? FileManager.default.removeItem(at: job.root) }
        let trainCount = try XCTUnwrap(job.run(RunOptions(stage: "ingest"))[0].record.counts["role_train"])
        XCTAssertGreaterThan(trainCount, 2)
        // block06 has stride 16: 2x2 at 32x32, so the reverse student's embedding is 1x1.
        try job.setPipeline(DistillationJob.pipeline(epochs: 1, layers: ["block04", "block06"], trainBatch: trainCount - 1))
        let outcomes = try job.run()
        XCTAssertEqual(outcomes[3].record.counts["train_images"], trainCount)
        XCTAssertEqual(outcomes[3].record.counts["epochs"], 1)
    }
}

