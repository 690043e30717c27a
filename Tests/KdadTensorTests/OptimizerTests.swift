import Foundation
import KdadTensor
import KdadTestSupport
import KdadWeights
import XCTest

final class OptimizerTests: XCTestCase {
    func testSGDMomentumAndWeightDecayFollowPyTorch() {
        let w = Tensor(shape: [2], values: [1, -2], requiresGrad: true)
        let sgd = SGD(parameters: [NamedParameter("w", w)], learningRate: 0.1, momentum: 0.9, weightDecay: 0.01)
        w.grad = Tensor(shape: [2], values: [0.5, 0.5])
        sgd.step()
        // g = 0.5 + 0.01·w; buffer = g on the first step.
        let g1 = [0.5 + 0.01 * 1.0, 0.5 + 0.01 * -2.0]
        let w1 = [1 - 0.1 * g1[0], -2 - 0.1 * g1[1]]
        XCTAssertEqual(w.scalars.map(Double.init), w1, accuracy: 1e-6)
        w.grad = Tensor(shape: [2], values: [-1, 0])
        sgd.step()
        let g2 = [-1 + 0.01 * w1[0], 0 + 0.01 * w1[1]]
        let b2 = [0.9 * g1[0] + g2[0], 0.9 * g1[1] + g2[1]]
        XCTAssertEqual(w.scalars.map(Double.init), [w1[0] - 0.1 * b2[0], w1[1] - 0.1 * b2[1]], accuracy: 1e-6)
    }

    func testAdamWDecouplesWeightDecay() {
        let w = Tensor(shape: [1], values: [2], requiresGrad: true)
        let adamw = Adam.adamW(parameters: [NamedParameter("w", w)], learningRate: 0.1, weightDecay: 0.5)
        w.grad = Tensor(shape: [1], values: [3])
        adamw.step()
        // p ← p(1 − lr·wd) − lr·m̂/(√v̂ + eps) with m̂ = g, v̂ = g² on step 1.
        XCTAssertEqual(Double(w.item), 2 * (1 - 0.05) - 0.1 * 3 / (3 + 1e-8), accuracy: 1e-6)
        let adam = Adam(parameters: [NamedParameter("v", Tensor(shape: [1], values: [2], requiresGrad: true))], learningRate: 0.1, weightDecay: 0.5)
        adam.parameters[0].tensor.grad = Tensor(shape: [1], values: [3])
        adam.step()
        // Coupled: g = 3 + 0.5·2 = 4, the step is lr·sign(g).
        XCTAssertEqual(Double(adam.parameters[0].tensor.item), 2 - 0.1 * 4 / (4 + 1e-8), accuracy: 1e-6)
    }

    /// Train a tiny least-squares model; resume from a checkpoint and check the run continues exactly.
    func testCheckpointRoundTripResumesTrainingExactly() throws {
        func makeModel() -> (Tensor, Tensor) {
            (randomTensor([3, 4], seed: 50, scale: 0.5), Tensor.zeros([3], requiresGrad: true))
        }
        let data = randomTensor([8, 4], seed: 51, requiresGrad: false)
        let target = randomTensor([8, 3], seed: 52, requiresGrad: false)
        func trainStep(_ w: Tensor, _ b: Tensor, _ opt: Adam) -> Float {
            opt.zeroGrad()
            let loss = Tensor.mseLoss(Tensor.linear(data, weight: w, bias: b), target)
            loss.backward()
            opt.step()
            return loss.item
        }
        let (w, b) = makeModel()
        let opt = Adam(parameters: [NamedParameter("w", w), NamedParameter("b", b)], learningRate: 0.05)
        let first = trainStep(w, b, opt)
        for _ in 0..<4 { _ = trainStep(w, b, opt) }
        XCTAssertLessThan(trainStep(w, b, opt), first, "training should reduce the loss")

        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("state.safetensors")
        try Checkpoint.save(parameters: opt.parameters, optimizer: opt, metadata: ["epoch": "6"], to: url)
        let continued = (0..<3).map { _ in trainStep(w, b, opt) }

        let (w2, b2) = makeModel()
        let opt2 = Adam(parameters: [NamedParameter("w", w2), NamedParameter("b", b2)], learningRate: 0.05)
        let metadata = try Checkpoint.load(from: url, parameters: opt2.parameters, optimizer: opt2)
        XCTAssertEqual(metadata["epoch"], "6")
        XCTAssertEqual(opt2.stepCount, 6)
        let resumed = (0..<3).map { _ in trainStep(w2, b2, opt2) }
        XCTAssertEqual(resumed, continued)
        XCTAssertEqual(w2.scalars, w.scalars)

        // A checkpoint missing a parameter is an error naming the file and the key.
        let extra = NamedParameter("missing", Tensor.zeros([1]))
        XCTAssertThrowsError(try Checkpoint.load(from: url, parameters: [extra])) { error in
            XCTAssertTrue("\(error)".contains("param.missing") && "\(error)".contains(url.path), "\(error)")
        }
        let sgd = SGD(parameters: opt2.parameters, learningRate: 0.1, momentum: 0.9)
        XCTAssertThrowsError(try Checkpoint.load(from: url, parameters: [], optimizer: sgd))
    }

    func testLearningRateSchedules() {
        let step = StepLR(baseLearningRate: 1, stepSize: 3, gamma: 0.5)
        XCTAssertEqual((0..<7).map { step.learningRate(epoch: $0) }, [1, 1, 1, 0.5, 0.5, 0.5, 0.25])
        let cosine = CosineAnnealingLR(baseLearningRate: 1, totalSteps: 10, minimumLearningRate: 0.1)
        XCTAssertEqual(cosine.learningRate(step: 0), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(step: 5), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(step: 10), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(step: 20), 0.1, accuracy: 1e-6)
        var plateau = ReduceLROnPlateau(learningRate: 1, factor: 0.5, patience: 1, cooldown: 1)
        let rates = [5, 4, 4, 4, 4, 4, 3].map { plateau.step(metric: Float($0)) }
        // Bad epochs after 4: #1 (no change), #2 → halve; cooldown epoch; then #1, #2 → halve; 3 improves.
        XCTAssertEqual(rates, [1, 1, 1, 0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(plateau.step(metric: 3), 0.5)
        XCTAssertEqual(plateau.step(metric: 3), 0.25)
    }
}

/// Lets `XCTAssertEqual` compare Double arrays elementwise with an accuracy.
func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
