import Foundation
import KdadTensor
import KdadWeights

/// How a student is trained.
public struct TrainingConfig: Codable, Hashable, Sendable {
    public var epochs: Int
    public var batchSize: Int
    /// "adam" | "adamw" | "sgd" (SGD uses momentum betas[0], default 0.9)
    public var optimizer: String
    public var learningRate: Double
    public var weightDecay: Double
    /// Adam's (β1, β2); for SGD, [momentum].
    public var betas: [Double]
    /// "none" | "cosine" | "step" | "plateau" (see `Trainer`)
    public var schedule: String
    public var seed: UInt64

    public init(epochs: Int = 20, batchSize: Int = 16, optimizer: String = "adam", learningRate: Double = 1e-3,
                weightDecay: Double = 0, betas: [Double] = [0.9, 0.999], schedule: String = "none", seed: UInt64 = 0) {
        self.epochs = epochs; self.batchSize = batchSize; self.optimizer = optimizer; self.learningRate = learningRate
        self.weightDecay = weightDecay; self.betas = betas; self.schedule = schedule; self.seed = seed
    }
}

public struct TrainerError: Error, CustomStringConvertible, Equatable {
    /// The checkpoint file concerned, if any.
    public var file: String?
    public var reason: String
    public init(file: String? = nil, reason: String) { self.file = file; self.reason = reason }
    public var description: String { file.map { "\($0): \(reason)" } ?? "training: \(reason)" }
}

/// Runs epochs over batches the stage supplies, and saves/restores the complete training state.
///
/// Learning-rate schedules are functions of the completed epoch count (or, for "plateau", of state
/// kept in the checkpoint), applied at the start of each epoch:
/// - "cosine": base·(1 + cos(π·e/epochs))/2;
/// - "step": base × 0.1 from epoch ⌈2·epochs/3⌉ on;
/// - "plateau": × 0.5 when the monitored loss (validation loss if `validationLoss` ran after the
///   epoch, else the epoch's training loss) has not improved by 1e-4 (relative) for 2 epochs.
///
/// Determinism: the trainer itself draws no random numbers except in `shuffledOrder`, which is a
/// pure function of (seed, epoch); methods draw theirs at construction from their seed. So a run
/// resumed from an epoch checkpoint reaches the same weights bit for bit as an uninterrupted one
/// (same thread count: OpenBLAS sums differ across thread counts).
public final class Trainer {
    public let method: any DistillationMethod
    public let config: TrainingConfig
    /// Completed epochs.
    public private(set) var epoch = 0
    public private(set) var bestValidationLoss: Float?
    public private(set) var lastValidationLoss: Float?
    /// Whether the latest `validationLoss` call set a new best.
    public private(set) var validationImproved = false
    public private(set) var lastTrainingLoss: Float?
    public var learningRate: Float { optimizer.learningRate }

    let optimizer: any Optimizer
    private var plateau = PlateauState()
    /// The loss the plateau schedule looks at before the next epoch.
    private var pendingPlateauMetric: Float?

    public init(method: any DistillationMethod, config: TrainingConfig) throws {
        guard config.epochs >= 1 else { throw TrainerError(reason: "epochs must be at least 1, got \(config.epochs)") }
        guard config.batchSize >= 1 else { throw TrainerError(reason: "batchSize must be at least 1, got \(config.batchSize)") }
        guard config.learningRate.isFinite, config.learningRate > 0 else {
            throw TrainerError(reason: "learningRate must be positive, got \(config.learningRate)")
        }
        guard config.weightDecay.isFinite, config.weightDecay >= 0 else {
            throw TrainerError(reason: "weightDecay must be ≥ 0, got \(config.weightDecay)")
        }
        guard ["none", "cosine", "step", "plateau"].contains(config.schedule) else {
            throw TrainerError(reason: "unknown schedule \"\(config.schedule)\"; known: none, cosine, step, plateau")
        }
        let parameters = method.parameters.map { NamedParameter($0.name, $0.tensor) }
        let lr = Float(config.learningRate), wd = Float(config.weightDecay)
        switch config.optimizer {
        case "adam", "adamw":
            let betas = config.betas.isEmpty ? [0.9, 0.999] : config.betas
            guard betas.count == 2, betas.allSatisfy({ $0 >= 0 && $0 < 1 }) else {
                throw TrainerError(reason: "\(config.optimizer) needs betas [β1, β2] in [0, 1), got \(config.betas)")
            }
            optimizer = config.optimizer == "adam"
                ? Adam(parameters: parameters, learningRate: lr, beta1: Float(betas[0]), beta2: Float(betas[1]), weightDecay: wd)
                : Adam.adamW(parameters: parameters, learningRate: lr, beta1: Float(betas[0]), beta2: Float(betas[1]), weightDecay: wd)
        case "sgd":
            let momentum = config.betas.first ?? 0.9
            guard momentum >= 0 && momentum < 1 else { throw TrainerError(reason: "sgd momentum (betas[0]) must be in [0, 1), got \(momentum)") }
            optimizer = SGD(parameters: parameters, learningRate: lr, momentum: Float(momentum), weightDecay: wd)
        default:
            throw TrainerError(reason: "unknown optimizer \"\(config.optimizer)\"; known: adam, adamw, sgd")
        }
        self.method = method
        self.config = config
    }

    /// A permutation of 0..<count that depends only on (seed, epoch).
    public func shuffledOrder(epoch: Int, count: Int) -> [Int] {
        var rng = SplitMix64(seed: Self.mix(config.seed, UInt64(bitPattern: Int64(epoch))))
        var order = Array(0..<count)
        if count < 2 { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// Derives an independent stream seed from a seed and a counter (SplitMix64 finaliser).
    static func mix(_ seed: UInt64, _ counter: UInt64) -> UInt64 {
        var z = seed &+ 0x9E37_79B9_7F4A_7C15 &* (counter &+ 1)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The learning rate for the epoch about to run.
    private func scheduledLearningRate() -> Float {
        let base = Float(config.learningRate)
        switch config.schedule {
        case "cosine":
            return CosineAnnealingLR(baseLearningRate: base, totalSteps: config.epochs).learningRate(step: epoch)
        case "step":
            return epoch >= (2 * config.epochs + 2) / 3 ? base * 0.1 : base
        case "plateau":
            if let metric = pendingPlateauMetric {
                plateau.record(metric)
                pendingPlateauMetric = nil
            }
            return base * plateau.scale
        default:
            return base
        }
    }

    /// One epoch over `batches`; `progress(batchIndex, loss)` after each step. Returns the mean of
    /// the batch losses.
    @discardableResult
    public func trainEpoch(_ batches: AnySequence<DistillationBatch>, progress: (Int, Float) -> Void = { _, _ in }) throws -> Float {
        optimizer.learningRate = scheduledLearningRate()
        method.setTraining(true)
        var total = 0.0, count = 0
        for (index, batch) in batches.enumerated() {
            optimizer.zeroGrad()
            let loss = method.loss(batch)
            let value = loss.item
            guard value.isFinite else {
                throw TrainerError(reason: "loss is \(value) at epoch \(epoch + 1), batch \(index) (learning rate \(optimizer.learningRate))")
            }
            loss.backward()
            optimizer.step()
            total += Double(value)
            count += 1
            progress(index, value)
        }
        guard count > 0 else { throw TrainerError(reason: "epoch \(epoch + 1) received no batches") }
        epoch += 1
        let mean = Float(total / Double(count))
        lastTrainingLoss = mean
        pendingPlateauMetric = mean
        return mean
    }

    /// Mean loss over `batches` in evaluation mode (BatchNorm running statistics, no gradients);
    /// records the best value. NaN when there are no batches.
    @discardableResult
    public func validationLoss(_ batches: AnySequence<DistillationBatch>) -> Float {
        method.setTraining(false)
        var total = 0.0, count = 0
        Tensor.noGrad {
            for batch in batches {
                total += Double(method.loss(batch).item)
                count += 1
            }
        }
        guard count > 0 else { validationImproved = false; return .nan }
        let mean = Float(total / Double(count))
        lastValidationLoss = mean
        validationImproved = mean.isFinite && (bestValidationLoss.map { mean < $0 } ?? true)
        if validationImproved { bestValidationLoss = mean }
        pendingPlateauMetric = mean
        return mean
    }

    // MARK: - Checkpoints

    private static let metadataPrefix = "trainer."

    private var counters: [(name: String, module: BatchNorm2d)] {
        (method as? BatchNormCounting)?.batchNormModules ?? []
    }

    /// Parameters, buffers, optimiser moments and step, epoch, validation and schedule state, BN
    /// batch counters and the method configuration, in one safetensors file written atomically
    /// (temporary file, fsync, rename).
    public func saveCheckpoint(to url: URL) throws {
        var metadata: [String: String] = [
            "trainer.epoch": String(epoch),
            "trainer.method_config": try Self.json(method.config),
            "trainer.training_config": try Self.json(config),
            "trainer.plateau": try Self.json(plateau),
        ]
        func putFloat(_ key: String, _ value: Float?) { if let value { metadata[key] = String(value.bitPattern) } }
        putFloat("trainer.best_val_loss", bestValidationLoss)
        putFloat("trainer.last_val_loss", lastValidationLoss)
        putFloat("trainer.last_train_loss", lastTrainingLoss)
        putFloat("trainer.pending_plateau_metric", pendingPlateauMetric)
        for bn in counters { metadata["bn.\(bn.name).num_batches_tracked"] = String(bn.module.numBatchesTracked) }
        do {
            try Checkpoint.save(parameters: method.parameters.map { NamedParameter($0.name, $0.tensor) },
                                buffers: method.buffers.map { NamedParameter($0.name, $0.tensor) },
                                optimizer: optimizer, metadata: metadata, to: url)
        } catch let error as TrainerError {
            throw error
        } catch {
            throw TrainerError(file: url.path, reason: "cannot write checkpoint: \(error)")
        }
    }

    /// Restores everything `saveCheckpoint` wrote. The file must come from the same method
    /// configuration; the state is validated before anything is overwritten.
    public func loadCheckpoint(from url: URL) throws {
        let file: SafeTensorsFile
        do { file = try SafeTensors.read(contentsOf: url) } catch {
            throw TrainerError(file: url.path, reason: "cannot read checkpoint: \(error)")
        }
        let meta = file.metadata
        guard let epochText = meta["trainer.epoch"], let storedEpoch = Int(epochText), storedEpoch >= 0,
              let configText = meta["trainer.method_config"] else {
            throw TrainerError(file: url.path, reason: "not a kdad training checkpoint (no trainer.epoch / trainer.method_config metadata)")
        }
        let storedConfig: MethodConfig
        do { storedConfig = try JSONDecoder().decode(MethodConfig.self, from: Data(configText.utf8)) } catch {
            throw TrainerError(file: url.path, reason: "unreadable method configuration in metadata: \(error)")
        }
        guard storedConfig == method.config else {
            throw TrainerError(file: url.path, reason: "checkpoint is for method \(configText), this trainer runs \((try? Self.json(method.config)) ?? "?")")
        }
        func getFloat(_ key: String) throws -> Float? {
            guard let text = meta[key] else { return nil }
            guard let bits = UInt32(text) else { throw TrainerError(file: url.path, reason: "metadata \(key) = \(text) is not a float bit pattern") }
            return Float(bitPattern: bits)
        }
        let best = try getFloat("trainer.best_val_loss"), last = try getFloat("trainer.last_val_loss")
        let lastTrain = try getFloat("trainer.last_train_loss"), pending = try getFloat("trainer.pending_plateau_metric")
        var plateauState = PlateauState()
        if let text = meta["trainer.plateau"] {
            do { plateauState = try JSONDecoder().decode(PlateauState.self, from: Data(text.utf8)) } catch {
                throw TrainerError(file: url.path, reason: "unreadable plateau state in metadata: \(error)")
            }
        }
        var counts: [Int] = []
        for bn in counters {
            let key = "bn.\(bn.name).num_batches_tracked"
            guard let text = meta[key], let value = Int(text), value >= 0 else {
                throw TrainerError(file: url.path, reason: "metadata \(key) missing or invalid")
            }
            counts.append(value)
        }
        do {
            try Checkpoint.load(from: url, parameters: method.parameters.map { NamedParameter($0.name, $0.tensor) },
                                buffers: method.buffers.map { NamedParameter($0.name, $0.tensor) }, optimizer: optimizer)
        } catch {
            throw TrainerError(file: url.path, reason: "cannot restore state: \(error)")
        }
        for (bn, count) in zip(counters, counts) { bn.module.numBatchesTracked = count }
        epoch = storedEpoch
        bestValidationLoss = best
        lastValidationLoss = last
        lastTrainingLoss = lastTrain
        pendingPlateauMetric = pending
        plateau = plateauState
        validationImproved = false
    }

    private static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Reduce-on-plateau bookkeeping (factor 0.5, patience 2, relative threshold 1e-4), Codable so a
/// resumed run continues with the same learning rate.
struct PlateauState: Codable, Equatable {
    static let factor: Float = 0.5, patience = 2, threshold: Float = 1e-4
    var best: Float?
    var badEpochs = 0
    var reductions = 0
    var scale: Float { Float(Foundation.pow(Double(Self.factor), Double(reductions))) }

    mutating func record(_ metric: Float) {
        guard metric.isFinite else { badEpochs += 1; return }
        if let best, !(metric < best * (1 - Self.threshold)) {
            badEpochs += 1
        } else {
            best = metric
            badEpochs = 0
        }
        if badEpochs > Self.patience {
            reductions += 1
            badEpochs = 0
        }
    }
}
