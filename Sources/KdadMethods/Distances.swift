import Foundation
import KdadTensor

extension FeatureDistance {
    /// Per-pixel distance between teacher `t` and student `s` ([N, C, h, w] each) as [N, 1, h, w];
    /// differentiable. Zero vectors are safe: norms are clamped (cosine) or normalised with
    /// PyTorch's zero subgradient (`l2Normalized`).
    public func map(teacher t: Tensor, student s: Tensor) -> Tensor {
        precondition(t.shape == s.shape && t.rank == 4, "distance map: teacher \(t.shape) vs student \(s.shape)")
        let n = t.shape[0], h = t.shape[2], w = t.shape[3]
        switch self {
        case .cosine:
            return (1 - Tensor.cosineSimilarity(t, s, axis: 1)).reshaped([n, 1, h, w])
        case .normalizedL2:
            return (t.l2Normalized(axis: 1) - s.l2Normalized(axis: 1)).square().sum(axis: 1, keepDim: true) * 0.5
        }
    }

    /// Mean of the per-pixel distance over positions and images: one layer's loss.
    public func loss(teacher t: Tensor, student s: Tensor) -> Tensor {
        map(teacher: t, student: s).mean()
    }
}

/// Methods with BatchNorm layers expose their `numBatchesTracked` counters so the trainer can
/// keep them in checkpoints (KdadTensor's Checkpoint stores floats only).
protocol BatchNormCounting: AnyObject {
    var batchNormModules: [(name: String, module: BatchNorm2d)] { get }
}

/// Shared plumbing of the students: named tensors, train/eval mode, loss and maps from the
/// per-layer student outputs.
class StudentBase: BatchNormCounting {
    let config: MethodConfig
    let teacher: TeacherLayout
    let builder: ParameterBuilder
    let mode: TrainingFlag

    /// `builder` already holds the subclass's layers, built with `mode`.
    init(config: MethodConfig, teacher: TeacherLayout, seed: UInt64, builder: ParameterBuilder, mode: TrainingFlag) {
        self.config = config
        self.teacher = teacher
        self.builder = builder
        self.mode = mode
    }

    var parameters: [(name: String, tensor: Tensor)] { builder.parameters }
    var buffers: [(name: String, tensor: Tensor)] { builder.buffers }
    var batchNormModules: [(name: String, module: BatchNorm2d)] { builder.batchNorms }
    func setTraining(_ training: Bool) { mode.isTraining = training }

    /// The student's prediction of each teacher layer, at the teacher maps' sizes.
    func studentFeatures(_ batch: DistillationBatch) -> [Tensor] { fatalError("subclass responsibility") }

    func checkBatch(_ batch: DistillationBatch) {
        precondition(batch.teacherFeatures.count == teacher.count,
                     "\(config.kind): batch has \(batch.teacherFeatures.count) teacher maps, method has \(teacher.count) layers")
        for (i, t) in batch.teacherFeatures.enumerated() {
            precondition(t.rank == 4 && t.shape[1] == teacher.channels[i],
                         "\(config.kind): teacher map \(teacher.names[i]) has shape \(t.shape), expected \(teacher.channels[i]) channels")
        }
    }

    func loss(_ batch: DistillationBatch) -> Tensor {
        checkBatch(batch)
        let students = studentFeatures(batch)
        var total: Tensor?
        for (t, s) in zip(batch.teacherFeatures, students) {
            let layer = config.distance.loss(teacher: t, student: s)
            total = total.map { $0 + layer } ?? layer
        }
        return total!
    }

    func layerDistanceMaps(_ batch: DistillationBatch) -> [Tensor] {
        checkBatch(batch)
        return zip(batch.teacherFeatures, studentFeatures(batch)).map { config.distance.map(teacher: $0, student: $1) }
    }
}
