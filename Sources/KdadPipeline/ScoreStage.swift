import Foundation
import KdadMethods
import KdadShards
import KdadTensor

/// Scores the images of the chosen roles (default `val` and `score`: the held-out defect-free `val`
/// images give the threshold stage its reference scores) with the trained student: per-layer distance maps combined into one
/// anomaly map at the resized image size (`AnomalyMaps.combine`), stored as Float16 in shards (one
/// unit per feature shard, so memory stays flat however many images there are), plus `scores.csv`
/// and `scores.jsonl`. Each map record also carries the ground-truth mask, when the image has one,
/// resized from the original with nearest neighbour onto the map's pixel grid, for `evaluate`.
public struct ScoreStage: Stage {
    public static let kind = StageKind(
        name: "score",
        params: [
            ParamSpec("checkpoint", .string(allowed: ["best", "last"]), default: .string("best"), help: "which trained weights to score with"),
            ParamSpec("combine", .string(allowed: ["sum", "product"]), default: .string("sum"), help: "how per-layer maps are combined"),
            ParamSpec("gaussian_sigma", .double(0...64), default: .double(4), help: "Gaussian smoothing of the map in pixels (0 = off)"),
            ParamSpec("image_score", .string(allowed: ["max", "topk_mean"]), default: .string("max"), help: "image score from its map"),
            ParamSpec("top_k", .int(1...1_000_000), default: .int(10), help: "pixels averaged by topk_mean"),
            ParamSpec("layer_weights", .numberMap, default: .object([:]),
                      help: "weight per teacher layer in the combined map, e.g. {block07: 0, block14: 1}; unnamed layers weigh 1, 0 leaves a layer out"),
            ParamSpec("border_ignore", .int(0...4096), default: .int(0), help: "pixels at each edge excluded from the image score"),
            ParamSpec("batch_size", .int(1...4096), default: .int(16), help: "images per student forward pass"),
            ParamSpec("compression_level", .int(1...19), default: .int(3), help: "zstd level of the map shards"),
            ParamSpec("roles", .stringList(allowed: ["val", "score"]), default: .array(["val", "score"].map(JSONValue.string)),
                      help: "image roles to score (a role the feature cache lacks is skipped with a note)"),
        ],
        upstreamKinds: ["train"],
        make: { ScoreStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "score-3" }  // 3: CR/CRLF in names quoted in scores.csv

    public func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    func fail(_ reason: String) -> PipelineError {
        .stageFailed(stage: definition.name, reason: "\(reason) (\(definition.file):\(definition.line))")
    }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let (_, train) = context.upstream.first!
        let work = context.workDirectory
        guard let featuresName = train.record.upstream.keys.first else { throw fail("the train stage record names no feature stage") }
        let featuresDirectory = DistillationSupport.stageDirectory(featuresName, workDirectory: work)
        let description = try FeatureCacheDescription.load(from: featuresDirectory)
        // Roles the cache lacks are skipped (and said so in the headline); 'score' itself is required.
        let requested = definition.strings("roles")
        let roles = requested.filter(description.roles.contains)
        let missingRoles = requested.filter { !description.roles.contains($0) }
        guard roles.contains("score") else {
            throw fail("the feature cache '\(featuresName)' does not hold the 'score' images (its roles: \(description.roles.joined(separator: ", ")); add 'score'), or the score stage's 'roles' omit 'score'")
        }
        let resize = try DistillationSupport.record(ofStage: description.imagesStage, workDirectory: work)
        guard let ingestName = resize.upstream.keys.first else { throw fail("the resize stage record names no ingest stage") }

        let checkpoint = train.directory.appendingPathComponent("\(definition.string("checkpoint") ?? "best").safetensors")
        let file: Data
        do { file = try Data(contentsOf: checkpoint) } catch { throw fail("cannot read \(checkpoint.path): \(error)") }
        let method = try Self.methodConfig(inCheckpoint: file, path: checkpoint.path)
        let data = try CachedFeatures(description: description, featuresDirectory: featuresDirectory, workDirectory: work,
                                      layers: method.layers, needsImages: method.kind == "forward")
        let student = try Methods.make(method, teacherChannels: data.layers.map(\.channels), teacherStrides: data.layers.map(\.stride),
                                       seed: context.job.seed)
        do {
            try Checkpoint.load(from: checkpoint, parameters: student.parameters.map { NamedParameter($0.name, $0.tensor) },
                                buffers: student.buffers.map { NamedParameter($0.name, $0.tensor) })
        } catch { throw fail("cannot load the student from \(checkpoint.path): \(error)") }
        student.setTraining(false)

        let mapConfig = AnomalyMapConfig(combine: definition.string("combine") ?? "sum", gaussianSigma: definition.double("gaussian_sigma"),
                                         imageScore: definition.string("image_score") ?? "max", topK: definition.int("top_k"),
                                         borderIgnore: definition.int("border_ignore"),
                                         layerWeights: try layerWeights(layers: method.layers))
        do { try mapConfig.validate() } catch { throw fail("\(error)") }
        // Items per unit, for progress (counts only, read once here).
        var counts: [Int] = []
        for shard in description.shards.indices { counts.append(try data.items(inShard: shard, roles: Set(roles)).count) }
        let geometry = MaskGeometry(size: resize.params["size"]?.intValue ?? 256, crop: resize.params["crop"]?.intValue,
                                    keepAspect: resize.params["keep_aspect"]?.boolValue ?? false)
        return PreparedScore(description: description, featuresDirectory: featuresDirectory, workDirectory: work,
                             ingestDirectory: DistillationSupport.stageDirectory(ingestName, workDirectory: work),
                             method: method, student: StudentBox(student), mapConfig: mapConfig, geometry: geometry, counts: counts,
                             batchSize: definition.int("batch_size"), compressionLevel: definition.int("compression_level"), lock: NetworkLock(),
                             roles: roles, missingRoles: missingRoles, featuresName: featuresName)
    }

    /// `layer_weights` in the student's layer order (nil when none is given, so the unweighted
    /// combination stays exactly as before). A name the student was not trained on is an error.
    func layerWeights(layers: [String]) throws -> [Float]? {
        guard case let .object(named)? = definition.params["layer_weights"], !named.isEmpty else { return nil }
        for name in named.keys.sorted() where !layers.contains(name) {
            throw fail("layer_weights names '\(name)', but the student was trained on \(layers.joined(separator: ", ")); use those names")
        }
        return layers.map { Float(named[$0]?.doubleValue ?? 1) }
    }

    /// The method configuration a training checkpoint was made with (safetensors metadata).
    static func methodConfig(inCheckpoint data: Data, path: String) throws -> MethodConfig {
        // safetensors: u64 little-endian header length, then the JSON header with "__metadata__".
        guard data.count >= 8 else { throw PipelineError.corruptRecord(path: path, reason: "too short for safetensors") }
        let length = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length <= UInt64(data.count - 8) else { throw PipelineError.corruptRecord(path: path, reason: "safetensors header length \(length) exceeds the file") }
        let header = data.subdata(in: 8..<(8 + Int(length)))
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any],
              let metadata = object["__metadata__"] as? [String: String], let text = metadata["trainer.method_config"],
              let config = try? JSONDecoder().decode(MethodConfig.self, from: Data(text.utf8)) else {
            throw PipelineError.corruptRecord(path: path, reason: "not a kdad training checkpoint (no trainer.method_config metadata)")
        }
        return config
    }
}

/// The resize stage's geometry, to put original-resolution masks on the anomaly map's pixel grid.
struct MaskGeometry: Sendable {
    var size: Int
    var crop: Int?
    var keepAspect: Bool

    /// Nearest-neighbour resize (half-pixel centres) of a uint8 mask to the resize stage's
    /// (height, width) before the crop, then the same centre crop.
    func apply(_ mask: [UInt8], width: Int, height: Int) -> (values: [UInt8], width: Int, height: Int) {
        var (rh, rw) = (size, size)
        if keepAspect {
            if width < height { (rh, rw) = (Int((Double(height) * Double(size) / Double(width)).rounded()), size) }
            else { (rh, rw) = (size, Int((Double(width) * Double(size) / Double(height)).rounded())) }
        }
        let columns = (0..<rw).map { min(width - 1, Int((Double($0) + 0.5) * Double(width) / Double(rw))) }
        let (ow, oh) = crop.map { ($0, $0) } ?? (rw, rh)
        let x0 = (rw - ow) / 2, y0 = (rh - oh) / 2
        var out = [UInt8](repeating: 0, count: ow * oh)
        for y in 0..<oh {
            let sy = min(height - 1, Int((Double(y + y0) + 0.5) * Double(height) / Double(rh)))
            for x in 0..<ow { out[y * ow + x] = mask[sy * width + columns[x + x0]] }
        }
        return (out, ow, oh)
    }
}

/// A student shared by the unit workers (calls are serialised by `NetworkLock`).
final class StudentBox: @unchecked Sendable {
    let method: any DistillationMethod
    init(_ method: any DistillationMethod) { self.method = method }
}

/// One scored image, as listed in `scores.csv`/`scores.jsonl`. `role` is `val` (held-out defect-free
/// images, the threshold's reference) or `score` (the images to judge); rows written before roles
/// were recorded decode as `score`, the only role scored then.
struct ScoreRow: Codable, Sendable {
    var key: String
    var lot: String
    var source: String
    var split: String?
    var label: String?
    var defectType: String?
    var role: String
    var score: Float
    enum CodingKeys: String, CodingKey {
        case key, lot, source, split, label, role, score
        case defectType = "defect_type"
    }

    init(key: String, lot: String, source: String, split: String?, label: String?, defectType: String?, role: String, score: Float) {
        self.key = key; self.lot = lot; self.source = source; self.split = split; self.label = label
        self.defectType = defectType; self.role = role; self.score = score
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        key = try c.decode(String.self, forKey: .key)
        lot = try c.decode(String.self, forKey: .lot)
        source = try c.decode(String.self, forKey: .source)
        split = try c.decodeIfPresent(String.self, forKey: .split)
        label = try c.decodeIfPresent(String.self, forKey: .label)
        defectType = try c.decodeIfPresent(String.self, forKey: .defectType)
        role = try c.decodeIfPresent(String.self, forKey: .role) ?? "score"
        score = try c.decode(Float.self, forKey: .score)
    }
}

struct PreparedScore: PreparedStage {
    let description: FeatureCacheDescription
    let featuresDirectory: URL
    let workDirectory: URL
    let ingestDirectory: URL
    let method: MethodConfig
    let student: StudentBox
    let mapConfig: AnomalyMapConfig
    let geometry: MaskGeometry
    let counts: [Int]
    let batchSize: Int
    let compressionLevel: Int
    let lock: NetworkLock
    /// Roles scored, and requested roles the feature cache does not hold (skipped).
    let roles: [String]
    let missingRoles: [String]
    let featuresName: String

    var unitCount: Int { description.shards.count }
    func itemCount(ofUnit index: Int) -> Int { counts[index] }

    static func mapShardName(_ featureShard: String) -> String { "maps-" + featureShard.dropFirst("features-".count) }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        // Each unit reads through its own readers (units may run concurrently).
        let data = try CachedFeatures(description: description, featuresDirectory: featuresDirectory, workDirectory: workDirectory,
                                      layers: method.layers, needsImages: method.kind == "forward")
        let items = try data.items(inShard: index, roles: Set(roles))
        let resizedReader = try data.imageReader(index)
        let ingestReader = try ShardReader(url: ingestDirectory.appendingPathComponent("images-" + description.shards[index].dropFirst("features-".count)))
        var entries: [JSONValue] = []
        try output.writeShard(Self.mapShardName(description.shards[index]), compressionLevel: compressionLevel) { writer in
            for start in stride(from: 0, to: items.count, by: batchSize) {
                let slice = items[start..<min(start + batchSize, items.count)]
                let batch = try data.batch(slice)
                // The map has the resized image's size (the teacher's input).
                let first = try resizedReader.record(forKey: slice.first!.key)
                guard let image = first.tensor(named: "image"), image.shape.count == 3 else {
                    throw PipelineError.invalidInput(reason: "record '\(first.key)' has no resized image")
                }
                let (height, width) = (image.shape[1], image.shape[2])
                let (maps, scores) = lock.run {
                    Tensor.noGrad {
                        AnomalyMaps.combine(student.method.layerDistanceMaps(batch), height: height, width: width, config: mapConfig)
                    }
                }
                for (position, item) in slice.enumerated() {
                    let map = maps.slice(axis: 0, position..<(position + 1))
                    var tensors = [try DistillationSupport.float16Tensor(name: "anomaly_map", map)]
                    let original = try ingestReader.record(forKey: item.key)
                    if let mask = original.tensor(named: "mask"), mask.shape.count == 3, mask.dtype == .uint8 {
                        let resized = geometry.apply(try mask.uint8Values(), width: mask.shape[2], height: mask.shape[1])
                        guard resized.width == width, resized.height == height else {
                            throw PipelineError.invalidInput(reason: "mask of '\(item.key)' maps to \(resized.width)x\(resized.height), the anomaly map is \(width)x\(height)")
                        }
                        tensors.append(try ShardTensor(name: "mask", uint8: resized.values, shape: [1, height, width]))
                    }
                    let p = item.provenance
                    let row = ScoreRow(key: item.key, lot: p.lot, source: p.source, split: p.split, label: p.label,
                                       defectType: p.defectType, role: p.role, score: scores[position])
                    let metadata = try IngestJSON.value(row)
                    try writer.append(ShardRecord(key: item.key, metadata: Data(metadata.canonicalText.utf8), tensors: tensors))
                    entries.append(metadata)
                }
            }
        }
        // The tensor engine caches freed buffers by exact size; each unit's last, shorter batch adds
        // new sizes, so without this the cache (not a leak, but bounded only by its 1 GiB limit) grows
        // with the number of units. Scoring memory must stay flat however many images are scored.
        TensorRuntime.releaseCachedMemory()
        return UnitSummary(counts: ["scored": items.count], entries: entries)
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        let decoder = JSONDecoder()
        var rows: [ScoreRow] = []
        for unit in units {
            for entry in unit.entries { rows.append(try decoder.decode(ScoreRow.self, from: Data(entry.canonicalText.utf8))) }
        }
        var csv = "key,lot,source,split,label,defect_type,role,score\n"
        var jsonl = ""
        for row in rows {
            // %.9g round-trips a Float exactly.
            let score = String(format: "%.9g", row.score)
            csv += [row.key, row.lot, row.source, row.split, row.label, row.defectType, row.role].map(CSV.field).joined(separator: ",") + ",\(score)\n"
            jsonl += try IngestJSON.value(row).canonicalText + "\n"
        }
        try output.write("scores.csv", data: Data(csv.utf8))
        try output.write("scores.jsonl", data: Data(jsonl.utf8))
        let sorted = rows.filter { $0.role == "score" }.map(\.score).sorted()
        let valCount = rows.filter { $0.role == "val" }.count
        var info: [String: JSONValue] = ["method": .string(method.kind), "image_score": .string(mapConfig.imageScore),
                                         "border_ignore": .int(mapConfig.borderIgnore), "gaussian_sigma": .double(mapConfig.gaussianSigma)]
        if !sorted.isEmpty {
            info["score_min"] = .double(Double(sorted.first!)); info["score_median"] = .double(Double(sorted[sorted.count / 2]))
            info["score_max"] = .double(Double(sorted.last!))
        }
        info["roles"] = .array(roles.map(JSONValue.string))
        var headline = sorted.isEmpty ? "no images to score"
            : String(format: "%d images scored (score median %.4g, max %.4g)", sorted.count, sorted[sorted.count / 2], sorted.last!)
        if roles.contains("val") { headline += ", \(valCount) val images scored for the threshold" }
        if !missingRoles.isEmpty {
            let note = "role\(missingRoles.count == 1 ? "" : "s") \(missingRoles.joined(separator: ", ")) skipped: not in the feature cache '\(featuresName)' (add to its roles)"
            info["skipped_roles"] = .string(note)
            headline += "; " + note
        }
        // `scored` counts the images to judge (role score), as before roles existed; `val_scored` the rest.
        return StageSummary(counts: ["scored": sorted.count, "val_scored": valCount], info: info, headline: headline)
    }
}
