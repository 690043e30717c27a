import Foundation
import KdadNN
import KdadShards
import KdadTensor

/// Feature cache: the frozen teacher runs once over the resized images of the chosen roles and its
/// feature maps are stored as Float16 in zstd shards (one unit per resize shard, same numbering), so
/// training epochs and scoring never recompute the teacher (MEASURED.md: ~9x cheaper epochs).
public struct FeaturesStage: Stage {
    static let teachers: [String: EfficientNetLiteVariant] = [
        "efficientnet-lite0": .lite0, "efficientnet-lite1": .lite1, "efficientnet-lite2": .lite2,
    ]
    /// Every feature name some Lite variant has (the variant's own block count is checked in `prepare`).
    static let layerNames = ["stem"] + (0..<21).map { String(format: "block%02d", $0) } + ["head"]

    public static let kind = StageKind(
        name: "features",
        params: [
            ParamSpec("teacher", .string(allowed: teachers.keys.sorted()), default: .string("efficientnet-lite0"),
                      help: "frozen ImageNet teacher"),
            ParamSpec("layers", .stringList(allowed: layerNames),
                      default: .array(["block07", "block10", "block14"].map(JSONValue.string)),
                      help: "teacher feature maps to cache (MEASURED.md: deep blocks 7/10/14 separate MTD defects best)"),
            ParamSpec("roles", .stringList(allowed: ["train", "val", "score"]),
                      default: .array(["train", "val", "score"].map(JSONValue.string)), help: "image roles to cache"),
            ParamSpec("batch_size", .int(1...1024), default: .int(16), help: "images per teacher forward pass"),
            ParamSpec("compression_level", .int(1...19), default: .int(3), help: "zstd level of the shards"),
        ],
        upstreamKinds: ["resize"],
        make: { FeaturesStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "features-1" }

    public func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let name = definition.name
        let teacherName = definition.string("teacher") ?? "efficientnet-lite0"
        guard let variant = Self.teachers[teacherName] else {
            throw PipelineError.stageFailed(stage: name, reason: "unknown teacher '\(teacherName)'")
        }
        let teacher: EfficientNetLite
        do { teacher = try EfficientNetLite.pretrained(variant) } catch {
            throw PipelineError.stageFailed(stage: name, reason: "cannot load the \(teacherName) teacher weights: \(error)")
        }
        teacher.fuseForInference()
        let architecture = teacher.architecture
        var layers: [(feature: LiteFeature, info: FeatureCacheDescription.Layer)] = []
        for layerName in definition.strings("layers") {
            guard let feature = LiteFeature(name: layerName) else {
                throw PipelineError.stageFailed(stage: name, reason: "unknown teacher layer '\(layerName)'")
            }
            let (channels, stride): (Int, Int)
            switch feature {
            case .stem: (channels, stride) = (EfficientNetLiteArchitecture.stemChannels, 2)
            case let .block(i):
                guard i < architecture.blocks.count else {
                    throw PipelineError.stageFailed(stage: name, reason: "\(teacherName) has blocks block00...\(String(format: "block%02d", architecture.blocks.count - 1)); '\(layerName)' does not exist")
                }
                (channels, stride) = (architecture.blocks[i].outChannels, architecture.blockStrides[i])
            case .head: (channels, stride) = (EfficientNetLiteArchitecture.headChannels, architecture.blockStrides.last ?? 32)
            case .logits: throw PipelineError.stageFailed(stage: name, reason: "logits are not a feature map")
            }
            layers.append((feature, .init(name: layerName, channels: channels, stride: stride)))
        }
        // Channel order = configured order (methods index layers by position).
        let (upstreamName, upstream) = context.upstream.first!
        let shards = upstream.record.files.keys.filter { $0.hasPrefix("images-") && $0.hasSuffix(".shard") }.sorted()
        let roles = Set(definition.strings("roles"))
        // Units count only the images of the cached roles (for progress); read from the ingest index.
        var counts: [String: Int] = [:]
        if let ingestName = upstream.record.upstream.keys.first {
            let index = DistillationSupport.stageDirectory(ingestName, workDirectory: context.workDirectory).appendingPathComponent("index.jsonl")
            if let text = try? String(contentsOf: index, encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    if let image = try? JSONDecoder().decode(IngestedImage.self, from: Data(line.utf8)), roles.contains(image.role) {
                        counts[image.shard, default: 0] += 1
                    }
                }
            }
        }
        let normalization = upstream.record.params["normalization"]?.stringValue ?? "imagenet"
        let description = FeatureCacheDescription(
            teacher: teacherName, layers: layers.map(\.info), roles: definition.strings("roles"),
            imagesStage: upstreamName, imagesOutputHash: upstream.record.outputHash, normalization: normalization,
            shards: shards.map(FeaturesStage.featureShardName(forImageShard:)))
        return PreparedFeatures(teacher: teacher, features: layers.map(\.feature), description: description,
                                imagesDirectory: upstream.directory, imageShards: shards, counts: counts, roles: roles,
                                batchSize: definition.int("batch_size"), compressionLevel: definition.int("compression_level"),
                                lock: NetworkLock())
    }

    /// `images-00003.shard` -> `features-00003.shard`.
    static func featureShardName(forImageShard name: String) -> String {
        "features-" + name.dropFirst("images-".count)
    }
}

struct PreparedFeatures: PreparedStage {
    let teacher: EfficientNetLite
    let features: [LiteFeature]
    let description: FeatureCacheDescription
    let imagesDirectory: URL
    let imageShards: [String]
    let counts: [String: Int]
    let roles: Set<String>
    let batchSize: Int
    let compressionLevel: Int
    let lock: NetworkLock

    var unitCount: Int { imageShards.count }
    func itemCount(ofUnit index: Int) -> Int { counts[imageShards[index]] ?? 0 }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        let imageShard = imageShards[index]
        let name = description.shards[index]
        let reader = try ShardReader(url: imagesDirectory.appendingPathComponent(imageShard))
        var cached = 0, rawBytes = 0
        try output.writeShard(name, compressionLevel: compressionLevel) { writer in
            var pending: [ShardRecord] = []
            func flush() throws {
                guard !pending.isEmpty else { return }
                let inputs = try pending.map { try DistillationSupport.teacherInput($0, normalization: description.normalization, shard: imageShard) }
                let (h, w) = (inputs[0].height, inputs[0].width)
                guard inputs.allSatisfy({ $0.height == h && $0.width == w }) else {
                    throw PipelineError.invalidInput(reason: "\(imageShard): images of different sizes in one batch (use a resize stage with a fixed size or crop)")
                }
                let batch = Tensor(shape: [pending.count, 3, h, w], values: inputs.flatMap(\.values))
                let outputs = lock.run { Tensor.noGrad { teacher.forward(batch, features: Set(features)) } }
                for (position, record) in pending.enumerated() {
                    var tensors: [ShardTensor] = []
                    for (layer, feature) in zip(description.layers, features) {
                        let map = outputs[feature]!.slice(axis: 0, position..<(position + 1))
                        tensors.append(try DistillationSupport.float16Tensor(name: layer.name, map))
                        rawBytes += map.count * 4
                    }
                    try writer.append(ShardRecord(key: record.key, metadata: record.metadata, tensors: tensors))
                    cached += 1
                }
                pending.removeAll(keepingCapacity: true)
            }
            try reader.forEachRecord { record in
                let provenance = try record.decodeMetadata(ImageProvenance.self)
                guard roles.contains(provenance.role) else { return }
                pending.append(record)
                if pending.count == batchSize { try flush() }
            }
            try flush()
        }
        // Keep memory flat across units (see PreparedScore.runUnit).
        TensorRuntime.releaseCachedMemory()
        let shardBytes = DistillationSupport.fileSize(output.url(of: name))
        return UnitSummary(counts: ["cached": cached, "raw_float32_bytes": rawBytes, "shard_bytes": shardBytes])
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        func total(_ key: String) -> Int { units.reduce(0) { $0 + ($1.counts[key] ?? 0) } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try output.write(FeatureCacheDescription.fileName, data: try encoder.encode(description) + Data("\n".utf8))
        let raw = total("raw_float32_bytes"), stored = total("shard_bytes")
        let ratio = stored > 0 ? Double(raw) / Double(stored) : 0
        let layers = description.layers.map(\.name).joined(separator: ",")
        return StageSummary(
            counts: ["cached": total("cached"), "raw_float32_bytes": raw, "shard_bytes": stored],
            info: ["teacher": .string(description.teacher), "layers": .array(description.layers.map { .string($0.name) }),
                   "raw_float32_bytes": .int(raw), "shard_bytes": .int(stored),
                   "compression_ratio": .double((ratio * 100).rounded() / 100)],
            headline: String(format: "%d images, %@ of %@: %@ (raw float32 %@, %.2fx smaller)", total("cached"), layers,
                             description.teacher, DistillationSupport.megabytes(stored), DistillationSupport.megabytes(raw), ratio))
    }
}
