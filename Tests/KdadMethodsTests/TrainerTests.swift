import XCTest
import KdadTensor
import KdadTestSupport
@testable import KdadMethods

final class TrainerTests: XCTestCase {
    /// A fixed little data set of single images, batches of 2 in the trainer's shuffled order.
    private struct Dataset {
        let images: [Tensor]
        let features: [[Tensor]]
        init(layers: [FakeLayer], count: Int, size: Int, seed: UInt64) {
            var images: [Tensor] = [], features: [[Tensor]] = []
            for i in 0..<count {
                let b = makeBatch(layers: layers, batch: 1, height: size, width: size, seed: seed &+ UInt64(i))
                images.append(b.images!); features.append(b.teacherFeatures)
            }
            self.images = images; self.features = features
        }
        func batches(order: [Int], batchSize: Int) -> AnySequence<DistillationBatch> {
            let groups = stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
            return AnySequence(groups.lazy.map { group in
                DistillationBatch(images: Tensor.concat(group.map { images[$0] }, axis: 0),
                                  teacherFeatures: (0..<features[0].count).map { l in Tensor.concat(group.map { features[$0][l] }, axis: 0) })
            })
        }
    }

    private func runEpochs(_ trainer: Trainer, _ data: Dataset, through last: Int) throws {
        while trainer.epoch < last {
            let order = trainer.shuffledOrder(epoch: trainer.epoch, count: data.images.count)
            try trainer.trainEpoch(data.batches(order: order, batchSize: trainer.config.batchSize))
            trainer.validationLoss(data.batches(order: [0, 1], batchSize: 2))
        }
    }

    private func state(_ method: any DistillationMethod) -> [String: [UInt32]] {
        var s: [String: [UInt32]] = [:]
        for p in method.parameters { s["p." + p.name] = bits(p.tensor) }
        for b in method.buffers { s["b." + b.name] = bits(b.tensor) }
        return s
    }

    func testResumedTrainingIsBitIdenticalToAnUninterruptedRun() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [(kind: String, config: TrainingConfig)] = [
            ("forward", TrainingConfig(epochs: 3, batchSize: 2, optimizer: "adam", learningRate: 3e-3, schedule: "cosine", seed: 5)),
            ("reverse", TrainingConfig(epochs: 3, batchSize: 2, optimizer: "adamw", learningRate: 2e-3, weightDecay: 1e-2, schedule: "plateau", seed: 6)),
            ("reverse", TrainingConfig(epochs: 3, batchSize: 2, optimizer: "sgd", learningRate: 1e-2, betas: [0.9], schedule: "step", seed: 7)),
        ]
        let layers = liteShallowLayers
        let data = Dataset(layers: layers, count: 6, size: 32, seed: 100)
        for (kind, config) in cases {
            let straight = try Trainer(method: makeMethod(kind: kind, layers: layers, options: smallOptions(kind)), config: config)
            try runEpochs(straight, data, through: 3)

            let first = try Trainer(method: makeMethod(kind: kind, layers: layers, options: smallOptions(kind)), config: config)
            try runEpochs(first, data, through: 2)
            let url = directory.appendingPathComponent("\(kind)-\(config.optimizer).safetensors")
            try first.saveCheckpoint(to: url)
            // A fresh process would build the method from the same seed and then load.
            let resumed = try Trainer(method: makeMethod(kind: kind, layers: layers, options: smallOptions(kind)), config: config)
            try resumed.loadCheckpoint(from: url)
            XCTAssertEqual(resumed.epoch, 2)
            XCTAssertEqual(resumed.bestValidationLoss, first.bestValidationLoss)
            XCTAssertEqual(state(resumed.method), state(first.method))
            try runEpochs(resumed, data, through: 3)

            XCTAssertEqual(state(resumed.method), state(straight.method), "\(kind)/\(config.optimizer)/\(config.schedule)")
            XCTAssertEqual(resumed.learningRate.bitPattern, straight.learningRate.bitPattern)
            XCTAssertEqual(resumed.bestValidationLoss, straight.bestValidationLoss)
            XCTAssertEqual(resumed.lastTrainingLoss, straight.lastTrainingLoss)
            let counters = (resumed.method as! BatchNormCounting).batchNormModules.map(\.module.numBatchesTracked)
            XCTAssertEqual(counters, (straight.method as! BatchNormCounting).batchNormModules.map(\.module.numBatchesTracked))
            XCTAssertEqual(counters.first, 9, "3 epochs × 3 batches")
            // Training changed the weights (the comparison above is not trivially true).
            let untrained = try makeMethod(kind: kind, layers: layers, options: smallOptions(kind))
            XCTAssertNotEqual(state(untrained), state(straight.method))
        }
    }

    func testShuffledOrderIsADeterministicPermutation() throws {
        let trainer = try Trainer(method: makeMethod(kind: "forward", layers: liteDeepLayers, options: smallOptions("forward")),
                                  config: TrainingConfig(seed: 42))
        let other = try Trainer(method: makeMethod(kind: "forward", layers: liteDeepLayers, options: smallOptions("forward")),
                                config: TrainingConfig(seed: 43))
        for epoch in 0..<4 {
            let order = trainer.shuffledOrder(epoch: epoch, count: 100)
            XCTAssertEqual(order.sorted(), Array(0..<100))
            XCTAssertEqual(order, trainer.shuffledOrder(epoch: epoch, count: 100))
            XCTAssertNotEqual(order, Array(0..<100))
            XCTAssertNotEqual(order, trainer.shuffledOrder(epoch: epoch + 1, count: 100))
            XCTAssertNotEqual(order, other.shuffledOrder(epoch: epoch, count: 100))
        }
        XCTAssertEqual(trainer.shuffledOrder(epoch: 0, count: 0), [])
        XCTAssertEqual(trainer.shuffledOrder(epoch: 0, count: 1), [0])
    }

    func testScheduledLearningRates() throws {
        let data = Dataset(layers: liteShallowLayers, count: 2, size: 16, seed: 1)
        func rates(_ schedule: String, epochs: Int) throws -> [Float] {
            let trainer = try Trainer(method: makeMethod(kind: "forward", layers: liteShallowLayers, options: smallOptions("forward")),
                                      config: TrainingConfig(epochs: epochs, batchSize: 2, learningRate: 0.01, schedule: schedule))
            var out: [Float] = []
            for _ in 0..<epochs {
                try trainer.trainEpoch(data.batches(order: [0, 1], batchSize: 2))
                out.append(trainer.learningRate)
            }
            return out
        }
        XCTAssertEqual(try rates("none", epochs: 2), [0.01, 0.01])
        let cosine = try rates("cosine", epochs: 4)
        for (got, e) in zip(cosine, 0..<4) { XCTAssertEqual(got, 0.01 * Float((1 + cos(Double.pi * Double(e) / 4)) / 2), accuracy: 1e-7) }
        XCTAssertEqual(try rates("step", epochs: 3), [0.01, 0.01, 0.001])
        var plateau = PlateauState()
        for metric: Float in [1, 0.5, 0.6, 0.6, 0.6] { plateau.record(metric) }
        XCTAssertEqual(plateau.reductions, 1)
        XCTAssertEqual(plateau.scale, 0.5)
    }

    func testErrors() throws {
        let method = try makeMethod(kind: "forward", layers: liteDeepLayers, options: smallOptions("forward"))
        XCTAssertThrowsError(try Trainer(method: method, config: TrainingConfig(optimizer: "rmsprop"))) {
            XCTAssertTrue("\($0)".contains("unknown optimizer \"rmsprop\""))
        }
        XCTAssertThrowsError(try Trainer(method: method, config: TrainingConfig(schedule: "linear")))
        XCTAssertThrowsError(try Trainer(method: method, config: TrainingConfig(epochs: 0)))
        XCTAssertThrowsError(try Trainer(method: method, config: TrainingConfig(betas: [0.9])))

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("forward.safetensors")
        try Trainer(method: method, config: TrainingConfig()).saveCheckpoint(to: url)
        let reverse = try Trainer(method: makeMethod(kind: "reverse", layers: liteDeepLayers, options: smallOptions("reverse")),
                                  config: TrainingConfig())
        XCTAssertThrowsError(try reverse.loadCheckpoint(from: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("checkpoint is for method"), "\(error)")
        }
        let missing = directory.appendingPathComponent("absent.safetensors")
        XCTAssertThrowsError(try reverse.loadCheckpoint(from: missing)) { XCTAssertTrue("\($0)".contains(missing.path)) }
    }
}
