import Foundation
import KdadMethods
import KdadShards
import KdadTensor

/// Trains a distillation student on the cached teacher features of the `train` images.
///
/// One work unit (epochs depend on each other). Inside it, the complete training state is saved
/// after every epoch (`epoch-checkpoint.safetensors`, atomic), so a killed run resumes from the last
/// completed epoch; all randomness derives from (seed, epoch), so the resumed run reaches the same
/// weights bit for bit. Outputs: `best.safetensors` (lowest validation loss when `val` images
/// exist, else the last epoch), `last.safetensors`, `history.jsonl` and `training.json`.
public struct TrainStage: Stage {
    public static let kind = StageKind(
        name: "train",
        params: [
            ParamSpec("method", .string(allowed: Methods.kinds), default: .string("reverse"),
                      help: "student: forward (STFPM-style, reads the images) or reverse (RD4AD-style, decodes the deepest features)"),
            ParamSpec("layers", .stringList(allowed: FeaturesStage.layerNames), default: .null,
                      help: "cached teacher layers to distil, shallow to deep (absent = all cached layers)"),
            ParamSpec("distance", .string(allowed: ["cosine", "normalizedL2"]), default: .string("cosine"), help: "per-pixel feature distance"),
            ParamSpec("options", .numberMap, default: .object([:]), help: "method knobs (Docs/methods.md), e.g. {width: 32}"),
            ParamSpec("epochs", .int(1...100_000), default: .int(20), help: "training epochs"),
            ParamSpec("batch_size", .int(1...4096), default: .int(16), help: "images per optimiser step"),
            ParamSpec("optimizer", .string(allowed: ["adam", "adamw", "sgd"]), default: .string("adam"), help: "optimiser"),
            ParamSpec("learning_rate", .double(1e-9...10), default: .double(0.001), help: "base learning rate"),
            ParamSpec("weight_decay", .double(0...10), default: .double(0), help: "L2 (adam, sgd) or decoupled (adamw) weight decay"),
            ParamSpec("beta1", .double(0...0.999999), default: .double(0.9), help: "Adam beta1, or SGD momentum"),
            ParamSpec("beta2", .double(0...0.999999999), default: .double(0.999), help: "Adam beta2"),
            ParamSpec("schedule", .string(allowed: ["none", "cosine", "step", "plateau"]), default: .string("none"), help: "learning-rate schedule"),
        ],
        upstreamKinds: ["features"],
        make: { TrainStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "train-2" }

    /// The seed is the manifest's: changing it retrains.
    public func externalInputs(job: JobManifest) throws -> JSONValue { .object(["seed": .int(Int(bitPattern: UInt(job.seed)))]) }

    func fail(_ reason: String) -> PipelineError {
        .stageFailed(stage: definition.name, reason: "\(reason) (\(definition.file):\(definition.line))")
    }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let (featuresName, upstream) = context.upstream.first!
        let description = try FeatureCacheDescription.load(from: upstream.directory)
        guard description.roles.contains("train") else { throw fail("the feature cache '\(featuresName)' has no 'train' images (its roles: \(description.roles))") }
        let layers = definition.params["layers"].flatMap { $0 == .null ? nil : definition.strings("layers") } ?? description.layers.map(\.name)
        let methodName = definition.string("method") ?? "reverse"
        var options: [String: Double] = [:]
        if case let .object(object)? = definition.params["options"] { for (key, value) in object { options[key] = value.doubleValue } }
        let method = MethodConfig(kind: methodName, layers: layers,
                                  distance: FeatureDistance(rawValue: definition.string("distance") ?? "cosine") ?? .cosine, options: options)
        let training = TrainingConfig(epochs: definition.int("epochs"), batchSize: definition.int("batch_size"),
                                      optimizer: definition.string("optimizer") ?? "adam", learningRate: definition.double("learning_rate"),
                                      weightDecay: definition.double("weight_decay"),
                                      betas: definition.string("optimizer") == "sgd" ? [definition.double("beta1")] : [definition.double("beta1"), definition.double("beta2")],
                                      schedule: definition.string("schedule") ?? "none", seed: context.job.seed)
        let data: CachedFeatures
        do {
            data = try CachedFeatures(description: description, featuresDirectory: upstream.directory, workDirectory: context.workDirectory,
                                      layers: layers, needsImages: methodName == "forward")
        } catch { throw fail("\(error)") }
        // Build once now so a bad option or layer set fails before any work, naming the pipeline file.
        do { _ = try Methods.make(method, teacherChannels: data.layers.map(\.channels), teacherStrides: data.layers.map(\.stride), seed: training.seed) }
        catch { throw fail("\(error)") }
        let train = try data.items(roles: ["train"])
        let val = description.roles.contains("val") ? try data.items(roles: ["val"]) : []
        guard !train.isEmpty else { throw fail("no training images in the feature cache") }
        return PreparedTrain(stageName: definition.name, method: method, training: training, data: data, train: train, val: val,
                             directory: context.stageDirectory, events: context.events)
    }
}

struct EpochRecord: Codable, Sendable, Equatable {
    var epoch: Int
    var trainLoss: Float
    var valLoss: Float?
    var learningRate: Float
    var best: Bool
    enum CodingKeys: String, CodingKey {
        case epoch, best
        case trainLoss = "train_loss", valLoss = "val_loss", learningRate = "learning_rate"
    }
}

struct PreparedTrain: PreparedStage, @unchecked Sendable {
    let stageName: String
    let method: MethodConfig
    let training: TrainingConfig
    let data: CachedFeatures
    let train: [CachedFeatures.Item]
    let val: [CachedFeatures.Item]
    let directory: URL
    let events: EventLog

    var unitCount: Int { 1 }
    func itemCount(ofUnit index: Int) -> Int { train.count * training.epochs }

    var epochCheckpoint: URL { directory.appendingPathComponent("epoch-checkpoint.safetensors") }
    var bestCheckpoint: URL { directory.appendingPathComponent("best-checkpoint.safetensors") }
    var historyURL: URL { directory.appendingPathComponent("epoch-history.json") }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        let channels = data.layers.map(\.channels), strides = data.layers.map(\.stride)
        let student = try Methods.make(method, teacherChannels: channels, teacherStrides: strides, seed: training.seed)
        let trainer = try Trainer(method: student, config: training)
        var history: [EpochRecord] = []
        if FileManager.default.fileExists(atPath: epochCheckpoint.path) {
            try trainer.loadCheckpoint(from: epochCheckpoint)
            // The history is written before the checkpoint: keep the epochs the checkpoint holds.
            if let saved = try? JSONDecoder().decode([EpochRecord].self, from: Data(contentsOf: historyURL)) {
                history = Array(saved.prefix(trainer.epoch))
            }
            guard history.count == trainer.epoch else {
                throw PipelineError.corruptRecord(path: historyURL.path, reason: "holds \(history.count) epochs, the checkpoint \(trainer.epoch)")
            }
            events.record("train_resumed", stage: stageName, ["epoch": .int(trainer.epoch)])
        }
        let startEpoch = trainer.epoch
        let clock = Date()
        while trainer.epoch < training.epochs {
            let epochStart = Date()
            let order = trainer.shuffledOrder(epoch: trainer.epoch, count: train.count)
            let trainLoss = try trainer.trainEpoch(data.batches(train, order: order, batchSize: training.batchSize, foldSingleton: true))
            try data.throwIfReadFailed()
            let learningRate = trainer.learningRate
            var valLoss: Float?
            if !val.isEmpty {
                valLoss = trainer.validationLoss(data.batches(val, order: Array(val.indices), batchSize: training.batchSize))
                try data.throwIfReadFailed()
            }
            let isBest = val.isEmpty ? true : trainer.validationImproved
            history.append(EpochRecord(epoch: trainer.epoch, trainLoss: trainLoss, valLoss: valLoss, learningRate: learningRate, best: isBest))
            // Order matters for resumption: best, history, then the epoch checkpoint (see above).
            if isBest { try trainer.saveCheckpoint(to: bestCheckpoint) }
            try AtomicFile.write(try JSONEncoder().encode(history), to: historyURL)
            try trainer.saveCheckpoint(to: epochCheckpoint)

            let seconds = Date().timeIntervalSince(epochStart)
            let done = trainer.epoch - startEpoch
            let eta = Date().timeIntervalSince(clock) / Double(done) * Double(training.epochs - trainer.epoch)
            let rate = Double(train.count) / max(seconds, 1e-9)
            var line = String(format: "%@: epoch %d/%d  loss %.5f", stageName, trainer.epoch, training.epochs, trainLoss)
            if let valLoss { line += String(format: "  val %.5f%@", valLoss, isBest ? " (best)" : "") }
            line += String(format: "  %.1f img/s  ETA %@", rate, TrainStage.duration(eta))
            FileHandle.standardError.write(Data((line + "\n").utf8))
            var fields: [String: JSONValue] = ["epoch": .int(trainer.epoch), "train_loss": .double(Double(trainLoss)),
                                               "images_per_second": .double(rate), "eta_seconds": .double(eta)]
            if let valLoss { fields["val_loss"] = .double(Double(valLoss)) }
            events.record("epoch_done", stage: stageName, fields)
        }

        try output.write("last.safetensors") { url in try FileManager.default.copyItem(at: epochCheckpoint, to: url) }
        // No best file when no validation loss was ever finite: the last epoch stands in.
        let bestSource = FileManager.default.fileExists(atPath: bestCheckpoint.path) ? bestCheckpoint : epochCheckpoint
        try output.write("best.safetensors") { url in try FileManager.default.copyItem(at: bestSource, to: url) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let historyLines = try history.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined()
        try output.write("history.jsonl", data: Data(historyLines.utf8))
        let bestEpoch = history.last(where: \.best)?.epoch ?? history.count
        let summary: JSONValue = .object([
            "method": try IngestJSON.value(method), "training": try IngestJSON.value(training),
            "feature_cache": .object(["teacher": .string(data.description.teacher), "layers": .array(data.layers.map { .string($0.name) })]),
            "train_images": .int(train.count), "val_images": .int(val.count),
            "best_epoch": .int(bestEpoch), "best_by": .string(val.isEmpty ? "last epoch (no val images)" : "val loss"),
        ])
        try output.write("training.json", data: Data((summary.canonicalText + "\n").utf8))
        let best = history.first { $0.epoch == bestEpoch }
        var entry: [String: JSONValue] = ["best_epoch": .int(bestEpoch), "final_train_loss": .double(Double(history.last?.trainLoss ?? .nan))]
        if let value = best?.valLoss { entry["best_val_loss"] = .double(Double(value)) }
        return UnitSummary(counts: ["train_images": train.count, "val_images": val.count, "epochs": history.count],
                           entries: [.object(entry)])
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        // The outputs hold the final state; the epoch-level resume files are no longer needed.
        for url in [epochCheckpoint, bestCheckpoint, historyURL] { try? FileManager.default.removeItem(at: url) }
        let counts = units.first?.counts ?? [:]
        let entry = units.first?.entries.first ?? .object([:])
        var headline = "\(method.kind) student on \(method.layers.joined(separator: ",")): \(counts["epochs"] ?? 0) epochs over \(counts["train_images"] ?? 0) images"
        if let loss = entry["final_train_loss"]?.doubleValue { headline += String(format: ", final loss %.5f", loss) }
        if let val = entry["best_val_loss"]?.doubleValue { headline += String(format: ", best val loss %.5f at epoch %d", val, entry["best_epoch"]?.intValue ?? 0) }
        var info: [String: JSONValue] = ["method": .string(method.kind), "layers": .array(method.layers.map(JSONValue.string))]
        if case let .object(object) = entry { info.merge(object) { $1 } }
        return StageSummary(counts: counts, info: info, headline: headline)
    }
}

extension TrainStage {
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) : (s >= 60 ? String(format: "%dm%02ds", s / 60, s % 60) : "\(s)s")
    }
}

enum IngestJSON {
    static func value<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(value))
    }
}
