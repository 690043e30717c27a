import Foundation
import KdadTensor

/// STFPM-style forward distillation: a randomly initialised student reads the image and predicts
/// every chosen teacher layer at that layer's resolution.
///
/// Student: a ResNet-like trunk (3×3 stride-2 stem, then one stage of basic residual blocks per
/// further stride 2), tapped at each teacher layer's stride by a 1×1 linear head to the teacher's
/// channel count (teacher block outputs are linear projections, often negative, so no ReLU at the
/// end). When several teacher layers share a stride (Lite0 block07 and block10, both stride 16), the
/// deeper one gets `blocksPerStage` extra stride-1 blocks before its head, so the student is
/// deeper where the teacher is.
///
/// Options: `width` (channels at stride 2, default 32; a stage at stride s has width·s/2 channels,
/// capped by `maxWidth`, default 8·width), `blocksPerStage` (default 1).
final class ForwardDistillation: StudentBase, DistillationMethod {
    private struct Step {
        var blocks: [ResidualBlock]
        var head: Conv
    }
    private let stem: ConvBN
    private let steps: [Step]

    init(config: MethodConfig, teacher: TeacherLayout, seed: UInt64) throws {
        let options = try MethodOptions(config, known: ["width", "maxWidth", "blocksPerStage"])
        let width = try options.integer("width", default: 32, range: 4...1024)
        let maxWidth = try options.integer("maxWidth", default: 8 * width, range: width...4096)
        let blocksPerStage = try options.integer("blocksPerStage", default: 1, range: 1...8)
        func channels(atStride s: Int) -> Int { min(width * s / 2, maxWidth) }

        let mode = TrainingFlag()
        let builder = ParameterBuilder(seed: seed)
        stem = ConvBN(builder, "stem", in: 3, out: width, kernel: 3, stride: 2, mode: mode)
        var stride = 2, current = width
        var steps: [Step] = []
        for (i, name) in teacher.names.enumerated() {
            var blocks: [ResidualBlock] = []
            let target = teacher.strides[i]
            if target == stride && i > 0 {
                for j in 0..<blocksPerStage {
                    blocks.append(ResidualBlock(builder, "extra.\(name).\(j)", in: current, out: current, stride: 1, mode: mode))
                }
            }
            while stride < target {
                stride *= 2
                let out = channels(atStride: stride)
                for j in 0..<blocksPerStage {
                    blocks.append(ResidualBlock(builder, "stage\(log2Exact(stride)).\(j)", in: j == 0 ? current : out, out: out,
                                                stride: j == 0 ? 2 : 1, mode: mode))
                }
                current = out
            }
            steps.append(Step(blocks: blocks, head: builder.head("head.\(name)", in: current, out: teacher.channels[i])))
        }
        self.steps = steps
        super.init(config: config, teacher: teacher, seed: seed, builder: builder, mode: mode)
    }

    override func studentFeatures(_ batch: DistillationBatch) -> [Tensor] {
        guard let images = batch.images else {
            preconditionFailure("forward distillation needs the images in the batch (DistillationBatch.images is nil)")
        }
        precondition(images.rank == 4 && images.shape[1] == 3, "forward distillation: images have shape \(images.shape)")
        var x = stem(images)
        var outputs: [Tensor] = []
        for (i, step) in steps.enumerated() {
            for block in step.blocks { x = block(x) }
            let t = batch.teacherFeatures[i]
            outputs.append(matchSpatialSize(step.head(x), height: t.shape[2], width: t.shape[3]))
        }
        return outputs
    }
}
