import Foundation
import KdadShards

/// Resize (and optionally centre-crop) every ingested image to the network input size, converting
/// gray to 3 channels. One unit per upstream shard, so units line up with ingest's.
public struct ResizeStage: Stage {
    public static let kind = StageKind(
        name: "resize",
        params: [
            ParamSpec("size", .int(8...4096), default: .int(256), help: "output side in pixels (before the crop)"),
            ParamSpec("crop", .int(8...4096), default: .null, help: "centre crop side in pixels, or absent for none"),
            ParamSpec("method", .string(allowed: ResampleMethod.allCases.map(\.rawValue)), default: .string("area"), help: "resampling filter"),
            ParamSpec("keep_aspect", .bool, default: .bool(false), help: "scale the shorter side to 'size' instead of squashing to a square"),
            ParamSpec("channels", .int(1...3), default: .int(3), help: "1 (gray) or 3 (gray replicated / RGB)"),
            ParamSpec("normalization", .string(allowed: ["imagenet", "none"]), default: .string("imagenet"),
                      help: "normalisation later stages apply to the [0,1] pixels (recorded, not applied here)"),
            ParamSpec("compression_level", .int(1...19), default: .int(3), help: "zstd level of the shards"),
        ],
        upstreamKinds: ["ingest"],
        make: { ResizeStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "resize-1" }

    public func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let size = definition.int("size")
        let crop = definition.params["crop"]?.intValue
        let channels = definition.int("channels")
        if let crop, crop > size {
            throw PipelineError.stageFailed(stage: definition.name, reason: "crop \(crop) is larger than size \(size)")
        }
        guard channels == 1 || channels == 3 else {
            throw PipelineError.stageFailed(stage: definition.name, reason: "channels must be 1 or 3, not \(channels)")
        }
        let (upstreamName, upstream) = context.upstream.first!
        let shards = upstream.record.files.keys.filter { $0.hasPrefix("images-") && $0.hasSuffix(".shard") }.sorted()
        var counts: [String: Int] = [:]
        let indexText = try String(contentsOf: upstream.directory.appendingPathComponent("index.jsonl"), encoding: .utf8)
        for line in indexText.split(separator: "\n") {
            let image = try JSONDecoder().decode(IngestedImage.self, from: Data(line.utf8))
            counts[image.shard, default: 0] += 1
        }
        return PreparedResize(upstreamName: upstreamName, upstreamDirectory: upstream.directory, shards: shards, counts: counts,
                              size: size, crop: crop, method: ResampleMethod(rawValue: definition.string("method") ?? "area") ?? .area,
                              keepAspect: definition.bool("keep_aspect"), channels: channels,
                              normalization: definition.string("normalization") ?? "imagenet",
                              compressionLevel: definition.int("compression_level"))
    }
}

struct PreparedResize: PreparedStage {
    let upstreamName: String
    let upstreamDirectory: URL
    let shards: [String]
    let counts: [String: Int]
    let size: Int
    let crop: Int?
    let method: ResampleMethod
    let keepAspect: Bool
    let channels: Int
    let normalization: String
    let compressionLevel: Int

    var unitCount: Int { shards.count }
    func itemCount(ofUnit index: Int) -> Int { counts[shards[index]] ?? 0 }

    /// Output (height, width) before the crop.
    func resizedShape(width: Int, height: Int) -> (Int, Int) {
        guard keepAspect else { return (size, size) }
        if width < height { return (Int((Double(height) * Double(size) / Double(width)).rounded()), size) }
        return (size, Int((Double(width) * Double(size) / Double(height)).rounded()))
    }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        let reader = try ShardReader(url: upstreamDirectory.appendingPathComponent(shards[index]))
        var resized = 0
        let name = shards[index]
        try output.writeShard(name, compressionLevel: compressionLevel) { writer in
            try reader.forEachRecord { record in
                guard let image = record.tensor(named: "image"), image.shape.count == 3 else {
                    throw PipelineError.invalidInput(reason: "record '\(record.key)' in \(name) has no CHW 'image' tensor")
                }
                var tensors = [try transform(image, name: "image", outputChannels: channels)]
                if let mask = record.tensor(named: "mask") { tensors.append(try transform(mask, name: "mask", outputChannels: 1)) }
                var metadata = (try? JSONDecoder().decode(JSONValue.self, from: record.metadata)) ?? .object([:])
                if case var .object(object) = metadata {
                    object["resize"] = .object(["height": .int(tensors[0].shape[1]), "width": .int(tensors[0].shape[2]),
                                                "method": .string(method.rawValue), "normalization": .string(normalization)])
                    metadata = .object(object)
                }
                try writer.append(ShardRecord(key: record.key, metadata: Data(metadata.canonicalText.utf8), tensors: tensors))
                resized += 1
            }
        }
        return UnitSummary(counts: ["resized": resized])
    }

    func transform(_ tensor: ShardTensor, name: String, outputChannels: Int) throws -> ShardTensor {
        let (c, h, w) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let values: [Float] = tensor.dtype == .uint8 ? Self.dequantize(try tensor.uint8Values()) : try tensor.floatValues()
        // Collapse to the planes we need before resampling (gray is resized once, then replicated).
        var planes: [[Float]] = []
        let area = h * w
        let colour = c >= 3
        if outputChannels == 1 {
            if colour {
                planes = [(0..<area).map { 0.299 * values[$0] + 0.587 * values[area + $0] + 0.114 * values[2 * area + $0] }]
            } else { planes = [Array(values[0..<area])] }
        } else {
            planes = colour ? (0..<3).map { Array(values[($0 * area)..<(($0 + 1) * area)]) } : [Array(values[0..<area])]
        }
        let (rh, rw) = resizedShape(width: w, height: h)
        let side = crop
        var out: [Float] = []
        for plane in planes {
            var resized = plane.withUnsafeBufferPointer { Resampler.resize($0, width: w, height: h, newWidth: rw, newHeight: rh, method: method) }
            if let side { resized = Resampler.centreCrop(resized, width: rw, height: rh, cropWidth: side, cropHeight: side) }
            out += resized
        }
        let (oh, ow) = side.map { ($0, $0) } ?? (rh, rw)
        if outputChannels == 3, planes.count == 1 { out = out + out + out }
        let bytes = quantize(out[...])
        return try ShardTensor(name: name, uint8: bytes, shape: [outputChannels, oh, ow])
    }

    static func dequantize(_ levels: [UInt8]) -> [Float] {
        [Float](unsafeUninitializedCapacity: levels.count) { out, count in
            levels.withUnsafeBufferPointer { input in
                for i in 0..<input.count { out[i] = Float(input[i]) / 255 }
            }
            count = levels.count
        }
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        let total = units.reduce(0) { $0 + ($1.counts["resized"] ?? 0) }
        let shape = crop.map { "\($0)x\($0)" } ?? (keepAspect ? "shorter side \(size)" : "\(size)x\(size)")
        return StageSummary(counts: ["resized": total],
                            info: ["normalization": .string(normalization), "channels": .int(channels)],
                            headline: "\(total) images resized to \(shape) (\(method.rawValue)), \(channels) channels")
    }
}
