import Foundation
import KdadTensor

/// RD4AD-style reverse distillation: the student never sees the image. The teacher's multi-scale
/// features are squeezed through a trainable one-class bottleneck, and a decoder mirroring the
/// teacher (deep → shallow) must reconstruct every chosen teacher layer from that embedding.
/// Anomalous regions are poorly represented by the bottleneck, so the reconstruction disagrees.
///
/// Bottleneck (OCBE with MSFF fusion, METHODS.md 001):
/// - every shallower map goes down to the deepest stride through 3×3 stride-2 conv+BN+ReLU (channels
///   doubling up to the deepest map's); a map already at the deepest stride (a shared stride, e.g.
///   Lite0 block07/block10) gets one 3×3 stride-1 conv+BN+ReLU instead;
/// - concatenated with the deepest map, fused by 1×1 conv+BN+ReLU to `embedChannels`;
/// - one residual one-class-embedding block (basic block, stride `embedStride`).
///
/// Decoder: per teacher layer, deepest first: ×2 upsamplings by 2×2 stride-2 transposed conv+BN+ReLU
/// until that layer's stride (none between layers that share a stride), `blocksPerStage` residual
/// blocks, and a 1×1 linear head to the teacher's channels (teacher maps are signed: no ReLU).
///
/// Options: `embedChannels` (default 2·C_deepest), `embedStride` (1 or 2, default 2),
/// `decoderWidth` (decoder stage channels = decoderWidth·C_l, default 1), `blocksPerStage` (default 1).
final class ReverseDistillation: StudentBase, DistillationMethod {
    private struct UpBlock {
        let up: UpConv
        let norm: BatchNorm2d
        let mode: TrainingFlag
        func callAsFunction(_ x: Tensor) -> Tensor { norm(up(x), training: mode.isTraining).relu() }
    }
    private struct DecoderStage {
        var upsamplings: [UpBlock]
        var blocks: [ResidualBlock]
        var head: Conv
    }
    /// Per shallower layer, its path to the deepest stride.
    private let downPaths: [[ConvBN]]
    private let fuse: ConvBN
    private let embedding: ResidualBlock
    /// Deepest teacher layer first.
    private let decoder: [DecoderStage]

    init(config: MethodConfig, teacher: TeacherLayout, seed: UInt64) throws {
        let options = try MethodOptions(config, known: ["embedChannels", "embedStride", "decoderWidth", "blocksPerStage"])
        let last = teacher.count - 1
        let deepestChannels = teacher.channels[last], deepestStride = teacher.strides[last]
        let embedChannels = try options.integer("embedChannels", default: 2 * deepestChannels, range: 4...8192)
        let embedStride = try options.integer("embedStride", default: 2, range: 1...2)
        let decoderWidth = try options.real("decoderWidth", default: 1, range: 0.0625...16)
        let blocksPerStage = try options.integer("blocksPerStage", default: 1, range: 1...8)

        let mode = TrainingFlag()
        let builder = ParameterBuilder(seed: seed)
        var downPaths: [[ConvBN]] = []
        for i in 0..<last {
            let name = teacher.names[i], steps = log2Exact(deepestStride / teacher.strides[i])
            var path: [ConvBN] = []
            if steps == 0 {
                path.append(ConvBN(builder, "bottleneck.\(name).0", in: teacher.channels[i], out: deepestChannels, kernel: 3, mode: mode))
            }
            var channels = teacher.channels[i]
            for j in 0..<steps {
                let out = j == steps - 1 ? deepestChannels : min(channels * 2, deepestChannels)
                path.append(ConvBN(builder, "bottleneck.\(name).\(j)", in: channels, out: out, kernel: 3, stride: 2, mode: mode))
                channels = out
            }
            downPaths.append(path)
        }
        self.downPaths = downPaths
        fuse = ConvBN(builder, "bottleneck.fuse", in: deepestChannels * teacher.count, out: embedChannels, kernel: 1, mode: mode)
        embedding = ResidualBlock(builder, "bottleneck.oce", in: embedChannels, out: embedChannels, stride: embedStride, mode: mode)

        var decoder: [DecoderStage] = []
        var currentStride = deepestStride * embedStride, current = embedChannels
        for i in stride(from: last, through: 0, by: -1) {
            let name = teacher.names[i]
            let width = max(8, Int((decoderWidth * Double(teacher.channels[i])).rounded()))
            var ups: [UpBlock] = []
            var j = 0
            while currentStride > teacher.strides[i] {
                ups.append(UpBlock(up: builder.upsample("decoder.\(name).up\(j).deconv", in: current, out: width),
                                   norm: builder.batchNorm("decoder.\(name).up\(j).bn", channels: width), mode: mode))
                currentStride /= 2; current = width; j += 1
            }
            var blocks: [ResidualBlock] = []
            for k in 0..<blocksPerStage {
                blocks.append(ResidualBlock(builder, "decoder.\(name).block\(k)", in: current, out: width, stride: 1, mode: mode))
                current = width
            }
            decoder.append(DecoderStage(upsamplings: ups, blocks: blocks,
                                        head: builder.head("decoder.\(name).head", in: width, out: teacher.channels[i])))
        }
        self.decoder = decoder
        super.init(config: config, teacher: teacher, seed: seed, builder: builder, mode: mode)
    }

    /// The one-class embedding of the teacher maps.
    func embed(_ features: [Tensor]) -> Tensor {
        var parts: [Tensor] = []
        for (i, path) in downPaths.enumerated() {
            var x = features[i]
            for layer in path { x = layer(x) }
            let deepest = features[features.count - 1]
            parts.append(matchSpatialSize(x, height: deepest.shape[2], width: deepest.shape[3]))
        }
        parts.append(features[features.count - 1])
        return embedding(fuse(Tensor.concat(parts, axis: 1)))
    }

    override func studentFeatures(_ batch: DistillationBatch) -> [Tensor] {
        let features = batch.teacherFeatures
        var x = embed(features)
        var outputs = [Tensor?](repeating: nil, count: features.count)
        for (k, stage) in decoder.enumerated() {
            let i = features.count - 1 - k, t = features[i]
            for up in stage.upsamplings { x = up(x) }
            x = matchSpatialSize(x, height: t.shape[2], width: t.shape[3])
            for block in stage.blocks { x = block(x) }
            outputs[i] = stage.head(x)
        }
        return outputs.map { $0! }
    }
}
