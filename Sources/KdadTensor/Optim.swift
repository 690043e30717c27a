import Foundation
import KdadWeights

/// A parameter with the name under which it is saved.
public struct NamedParameter: @unchecked Sendable {
    public var name: String
    public var tensor: Tensor
    public init(_ name: String, _ tensor: Tensor) { self.name = name; self.tensor = tensor }
}

/// Updates parameters in place from their `.grad`. Parameters without a gradient are skipped.
public protocol Optimizer: AnyObject {
    var parameters: [NamedParameter] { get }
    var learningRate: Float { get set }
    var stepCount: Int { get }
    func step()
    /// Moment buffers etc. as named float32 tensors, for checkpoints.
    func stateTensors(prefix: String) -> [WeightTensor]
    var stateMetadata: [String: String] { get }
    func loadState(_ file: SafeTensorsFile, prefix: String) throws
}

extension Optimizer {
    public func zeroGrad() { for p in parameters { p.tensor.grad = nil } }
}

/// Per-parameter buffers keyed by parameter index, saved as `<prefix><buffer>.<parameter name>`.
final class OptimizerBuffers {
    let names: [String]
    var buffers: [String: [Tensor?]]
    init(names: [String], kinds: [String]) {
        self.names = names
        buffers = Dictionary(uniqueKeysWithValues: kinds.map { ($0, [Tensor?](repeating: nil, count: names.count)) })
    }

    func get(_ kind: String, _ index: Int, shape: [Int]) -> Tensor {
        if let t = buffers[kind]![index] { return t }
        let t = Tensor.zeros(shape)
        buffers[kind]![index] = t
        return t
    }

    func weightTensors(prefix: String) -> [WeightTensor] {
        buffers.keys.sorted().flatMap { kind in
            buffers[kind]!.enumerated().compactMap { index, t in
                t.map { WeightTensor(name: "\(prefix)\(kind).\(names[index])", shape: $0.shape, floats: $0.scalars) }
            }
        }
    }

    func load(_ file: SafeTensorsFile, prefix: String, parameters: [NamedParameter]) throws {
        for kind in buffers.keys.sorted() {
            for (index, p) in parameters.enumerated() {
                let key = "\(prefix)\(kind).\(p.name)"
                guard let stored = file[key] else { buffers[kind]![index] = nil; continue }
                guard stored.shape == p.tensor.shape else {
                    throw TensorError(key, "optimizer state has shape \(stored.shape), parameter has \(p.tensor.shape)")
                }
                buffers[kind]![index] = Tensor(shape: stored.shape, values: try stored.floats())
            }
        }
    }
}

func parseStep(_ metadata: [String: String], prefix: String) throws -> Int {
    guard let text = metadata["\(prefix)step"] else { return 0 }
    guard let value = Int(text), value >= 0 else { throw TensorError("\(prefix)step", "not a step count: \(text)") }
    return value
}

/// Adam (Kingma & Ba) with PyTorch semantics: weight decay is added to the gradient; when
/// `decoupledWeightDecay` is set it becomes AdamW (Loshchilov & Hutter): p ← p·(1 − lr·wd) first.
public final class Adam: Optimizer {
    public let parameters: [NamedParameter]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    public let decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    let buffers: OptimizerBuffers

    public init(parameters: [NamedParameter], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                eps: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        buffers = OptimizerBuffers(names: parameters.map(\.name), kinds: ["exp_avg", "exp_avg_sq"])
    }

    public static func adamW(parameters: [NamedParameter], learningRate: Float = 1e-3, beta1: Float = 0.9,
                             beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 1e-2) -> Adam {
        Adam(parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps,
             weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let correction1 = 1 - Foundation.pow(Double(beta1), t), correction2 = 1 - Foundation.pow(Double(beta2), t)
        let stepSize = Float(Double(learningRate) / correction1)
        let rootCorrection2 = Float(correction2.squareRoot())
        let (b1, b2, eps, wd, lr, decoupled) = (beta1, beta2, eps, weightDecay, learningRate, decoupledWeightDecay)
        for (index, p) in parameters.enumerated() {
            guard let grad = p.tensor.grad else { continue }
            let m = buffers.get("exp_avg", index, shape: p.tensor.shape).pointer
            let v = buffers.get("exp_avg_sq", index, shape: p.tensor.shape).pointer
            let w = p.tensor.pointer, g = grad.pointer
            Parallel.forRange(p.tensor.count, grain: 1 << 14) { range in
                for i in range {
                    var gi = g[i]
                    if decoupled { w[i] *= 1 - lr * wd } else { gi += wd * w[i] }
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    w[i] -= stepSize * m[i] / (v[i].squareRoot() / rootCorrection2 + eps)
                }
            }
        }
    }

    public func stateTensors(prefix: String = "optim.") -> [WeightTensor] { buffers.weightTensors(prefix: prefix) }
    public var stateMetadata: [String: String] { ["optim.kind": decoupledWeightDecay ? "adamw" : "adam", "optim.step": String(stepCount)] }
    public func loadState(_ file: SafeTensorsFile, prefix: String = "optim.") throws {
        try buffers.load(file, prefix: prefix, parameters: parameters)
        stepCount = try parseStep(file.metadata, prefix: prefix)
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay added to
/// the gradient (PyTorch semantics: the first step initialises the momentum buffer to the gradient).
public final class SGD: Optimizer {
    public let parameters: [NamedParameter]
    public var learningRate: Float
    public var momentum: Float, dampening: Float, weightDecay: Float
    public let nesterov: Bool
    public private(set) var stepCount = 0
    let buffers: OptimizerBuffers

    public init(parameters: [NamedParameter], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum; self.dampening = dampening; self.weightDecay = weightDecay; self.nesterov = nesterov
        buffers = OptimizerBuffers(names: parameters.map(\.name), kinds: ["momentum_buffer"])
    }

    public func step() {
        stepCount += 1
        let (mu, damp, wd, lr, nesterov) = (momentum, dampening, weightDecay, learningRate, nesterov)
        for (index, p) in parameters.enumerated() {
            guard let grad = p.tensor.grad else { continue }
            let w = p.tensor.pointer, g = grad.pointer
            if mu == 0 {
                for i in 0..<p.tensor.count { w[i] -= lr * (g[i] + wd * w[i]) }
                continue
            }
            let first = buffers.buffers["momentum_buffer"]![index] == nil
            let b = buffers.get("momentum_buffer", index, shape: p.tensor.shape).pointer
            Parallel.forRange(p.tensor.count, grain: 1 << 14) { range in
                for i in range {
                    let gi = g[i] + wd * w[i]
                    b[i] = first ? gi : mu * b[i] + (1 - damp) * gi
                    w[i] -= lr * (nesterov ? gi + mu * b[i] : b[i])
                }
            }
        }
    }

    public func stateTensors(prefix: String = "optim.") -> [WeightTensor] { buffers.weightTensors(prefix: prefix) }
    public var stateMetadata: [String: String] { ["optim.kind": "sgd", "optim.step": String(stepCount)] }
    public func loadState(_ file: SafeTensorsFile, prefix: String = "optim.") throws {
        try buffers.load(file, prefix: prefix, parameters: parameters)
        stepCount = try parseStep(file.metadata, prefix: prefix)
    }
}

// MARK: - Learning-rate schedules

/// lr = base · gamma^⌊epoch / stepSize⌋.
public struct StepLR: Sendable, Equatable {
    public var baseLearningRate: Float, stepSize: Int, gamma: Float
    public init(baseLearningRate: Float, stepSize: Int, gamma: Float = 0.1) {
        precondition(stepSize > 0, "StepLR: step size must be positive")
        self.baseLearningRate = baseLearningRate; self.stepSize = stepSize; self.gamma = gamma
    }
    public func learningRate(epoch: Int) -> Float {
        baseLearningRate * Float(Foundation.pow(Double(gamma), Double(epoch / stepSize)))
    }
}

/// lr = min + (base − min)·(1 + cos(π·t/T))/2, constant at `minimum` after T.
public struct CosineAnnealingLR: Sendable, Equatable {
    public var baseLearningRate: Float, totalSteps: Int, minimumLearningRate: Float
    public init(baseLearningRate: Float, totalSteps: Int, minimumLearningRate: Float = 0) {
        precondition(totalSteps > 0, "CosineAnnealingLR: total steps must be positive")
        self.baseLearningRate = baseLearningRate; self.totalSteps = totalSteps; self.minimumLearningRate = minimumLearningRate
    }
    public func learningRate(step: Int) -> Float {
        let t = Double(Swift.min(step, totalSteps)) / Double(totalSteps)
        return minimumLearningRate + (baseLearningRate - minimumLearningRate) * Float((1 + Foundation.cos(Double.pi * t)) / 2)
    }
}

/// Multiplies the rate by `factor` when a minimised metric has not improved by more than
/// `threshold` (relative) for `patience` epochs; waits `cooldown` epochs after each reduction.
public struct ReduceLROnPlateau: Sendable, Equatable {
    public private(set) var learningRate: Float
    public var factor: Float, patience: Int, threshold: Float, cooldown: Int, minimumLearningRate: Float
    public private(set) var best: Float = .infinity
    public private(set) var badEpochs = 0
    public private(set) var cooldownLeft = 0

    public init(learningRate: Float, factor: Float = 0.1, patience: Int = 10, threshold: Float = 1e-4,
                cooldown: Int = 0, minimumLearningRate: Float = 0) {
        precondition(factor < 1 && factor > 0, "ReduceLROnPlateau: factor must be in (0, 1)")
        self.learningRate = learningRate; self.factor = factor; self.patience = patience
        self.threshold = threshold; self.cooldown = cooldown; self.minimumLearningRate = minimumLearningRate
    }

    /// Records one epoch's metric; returns the learning rate to use next.
    @discardableResult
    public mutating func step(metric: Float) -> Float {
        if metric < best * (1 - threshold) { best = metric; badEpochs = 0 } else { badEpochs += 1 }
        if cooldownLeft > 0 { cooldownLeft -= 1; badEpochs = 0 }
        if badEpochs > patience {
            learningRate = Swift.max(learningRate * factor, minimumLearningRate)
            cooldownLeft = cooldown
            badEpochs = 0
        }
        return learningRate
    }
}
