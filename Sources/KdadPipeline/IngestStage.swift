import Foundation
import KdadShards

/// Ingest: every input file is decoded and stored (with its provenance, label and lot) in shards of
/// `images_per_unit` images, or quarantined with a reason. Invariant: ingested + quarantined = inputs.
public struct IngestStage: Stage {
    public static let kind = StageKind(
        name: "ingest",
        params: [
            ParamSpec("images_per_unit", .int(1...100_000), default: .int(64), help: "images per work unit (one shard each)"),
            ParamSpec("compression_level", .int(1...19), default: .int(3), help: "zstd level of the shards"),
        ],
        upstreamKinds: [],
        make: { IngestStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "ingest-1" }

    public func externalInputs(job: JobManifest) throws -> JSONValue {
        // Like DVC's/Make's stat check: files by (key, size, mtime), archives by their own stat.
        // Content is hashed during ingest itself, so a touched-but-identical file reruns ingest
        // and downstream stages rerun only if ingest's outputs actually changed.
        var labelsHash: JSONValue = .null
        if case let .csv(url)? = job.labels { labelsHash = .string(try SHA256.hex(ofFileAt: url)) }
        return .object(["settings": job.ingestSettings, "listing": .string(try InputCatalog.fingerprint(job.inputs)),
                        "labels_csv": labelsHash])
    }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let job = context.job
        let catalog = try InputCatalog.list(job.inputs, cacheDirectory: context.workDirectory.appendingPathComponent("cache"))
        var labels: [String: LabelRow] = [:]
        if case let .csv(url)? = job.labels { labels = try LabelsCSV.load(url) }
        return PreparedIngest(job: job, catalog: catalog, labels: labels,
                              imagesPerUnit: definition.int("images_per_unit"),
                              compressionLevel: definition.int("compression_level"))
    }
}

/// Metadata stored with each ingested image (JSON in the shard record and in `index.jsonl`).
public struct IngestedImage: Codable, Sendable, Equatable {
    public var key: String
    public var source: String
    public var lot: String
    public var width: Int
    public var height: Int
    public var channels: Int
    public var bitDepth: Int
    public var format: String
    public var sha256: String
    public var label: String?
    public var defectType: String?
    public var split: String?
    /// train / val / score / none.
    public var role: String
    public var mask: String?
    /// Which shard of the ingest stage holds the pixels.
    public var shard: String

    enum CodingKeys: String, CodingKey {
        case key, source, lot, width, height, channels, format, sha256, label, split, role, mask, shard
        case bitDepth = "bit_depth", defectType = "defect_type"
    }
}

public struct QuarantineEntry: Codable, Sendable, Equatable, Error {
    public var key: String
    public var path: String
    public var reason: String
}

struct PreparedIngest: PreparedStage {
    let job: JobManifest
    let catalog: InputCatalog
    let labels: [String: LabelRow]
    let imagesPerUnit: Int
    let compressionLevel: Int

    var unitCount: Int { (catalog.items.count + imagesPerUnit - 1) / imagesPerUnit }

    func items(ofUnit index: Int) -> ArraySlice<InputItem> {
        catalog.items[(index * imagesPerUnit)..<min(catalog.items.count, (index + 1) * imagesPerUnit)]
    }

    func itemCount(ofUnit index: Int) -> Int { items(ofUnit: index).count }

    static func shardName(_ index: Int) -> String { String(format: "images-%05d.shard", index) }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        var entries: [JSONValue] = []
        var ingested = 0, quarantined = 0
        let shard = Self.shardName(index)
        try output.writeShard(shard, compressionLevel: compressionLevel) { writer in
            for item in items(ofUnit: index) {
                switch ingest(item, shard: shard) {
                case let .success((metadata, tensors)):
                    try writer.append(try ShardRecord(key: item.key, metadata: metadata, tensors: tensors))
                    entries.append(try Self.json(metadata))
                    ingested += 1
                case let .failure(entry):
                    entries.append(.object(["quarantine": try Self.json(entry)]))
                    quarantined += 1
                }
            }
        }
        return UnitSummary(counts: ["ingested": ingested, "quarantined": quarantined], entries: entries)
    }

    static func json<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(value))
    }


    func ingest(_ item: InputItem, shard: String) -> Result<(IngestedImage, [ShardTensor]), QuarantineEntry> {
        func quarantine(_ reason: String) -> Result<(IngestedImage, [ShardTensor]), QuarantineEntry> {
            .failure(QuarantineEntry(key: item.key, path: item.displayPath, reason: reason))
        }
        let data: Data
        do { data = try catalog.data(of: item) } catch { return quarantine("\(error)") }
        let image: LoadedImage
        do { image = try ImageAccess.decode(data, name: item.relativePath) } catch { return quarantine("\(error)") }
        guard let lot = job.lotRule.lot(forKey: item.key) else {
            return quarantine("lot rule \(job.lotRule.canonical.canonicalText) does not match the key")
        }
        var label: String?, defectType: String?, split: String?, maskKey: String?
        switch job.labels {
        case .csv?:
            if let row = labels[item.key] {
                label = row.label; defectType = row.defectType; split = row.split; maskKey = row.mask
            }
        case let .folders(good, defect)?:
            if good.contains(where: { $0.matches(item.key) }) { label = "good" }
            else if defect.contains(where: { $0.matches(item.key) }) {
                label = "defect"
                defectType = item.key.split(separator: "/").dropLast().last.map(String.init)
            }
        case nil: break
        }
        let isDefective = label != nil && label != "good"
        var role = "none"
        if job.train.contains(key: item.key, split: split), !isDefective { role = "train" }
        else if let val = job.val, val.contains(key: item.key, split: split), !isDefective { role = "val" }
        else if job.score.contains(key: item.key, split: split) { role = "score" }

        var tensors: [ShardTensor] = []
        do {
            tensors.append(try image.tensor(named: "image"))
            if let maskKey {
                let prefix = catalog.locations[item.locationIndex].keyPrefix
                let relative = !prefix.isEmpty && maskKey.hasPrefix(prefix + "/") ? String(maskKey.dropFirst(prefix.count + 1)) : maskKey
                guard let maskItem = catalog.sibling(relative, of: item) else { return quarantine("mask '\(maskKey)' not found") }
                let mask = try ImageAccess.decode(try catalog.data(of: maskItem), name: maskItem.relativePath)
                guard mask.width == image.width, mask.height == image.height else {
                    return quarantine("mask '\(maskKey)' is \(mask.width)x\(mask.height), image is \(image.width)x\(image.height)")
                }
                tensors.append(try mask.firstChannelTensor(named: "mask"))
            }
        } catch {
            return quarantine("\(error)")
        }
        let metadata = IngestedImage(key: item.key, source: item.displayPath, lot: lot, width: image.width, height: image.height,
                                     channels: image.channels, bitDepth: image.bitDepth, format: image.format,
                                     sha256: SHA256.hex(of: data), label: label, defectType: defectType, split: split,
                                     role: role, mask: maskKey, shard: shard)
        return .success((metadata, tensors))
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        var index: [IngestedImage] = []
        var quarantine: [QuarantineEntry] = []
        let decoder = JSONDecoder()
        for unit in units {
            for entry in unit.entries {
                let data = Data(entry.canonicalText.utf8)
                if let q = entry["quarantine"] {
                    quarantine.append(try decoder.decode(QuarantineEntry.self, from: Data(q.canonicalText.utf8)))
                } else {
                    index.append(try decoder.decode(IngestedImage.self, from: data))
                }
            }
        }
        // The invariant the brief of every nightly run rests on: nothing silently dropped.
        guard index.count + quarantine.count == catalog.items.count else {
            throw PipelineError.invalidInput(reason: "invariant violated: \(index.count) ingested + \(quarantine.count) quarantined != \(catalog.items.count) input files")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try output.write("index.jsonl", data: Data(try index.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined().utf8))
        try output.write("quarantine.jsonl", data: Data(try quarantine.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined().utf8))

        var byHash: [String: [String]] = [:]
        for image in index { byHash[image.sha256, default: []].append(image.key) }
        let duplicates = byHash.values.filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        try output.write("duplicates.json", data: Data((JSONValue.array(duplicates.map { .array($0.map(JSONValue.string)) }).canonicalText + "\n").utf8))

        var lots: [String: Int] = [:], roles: [String: Int] = [:]
        for image in index { lots[image.lot, default: 0] += 1; roles[image.role, default: 0] += 1 }
        var counts: [String: Int] = ["inputs": catalog.items.count, "ingested": index.count, "quarantined": quarantine.count,
                                     "duplicate_groups": duplicates.count, "lots": lots.count]
        for (role, count) in roles { counts["role_\(role)"] = count }
        let inputKeys = Set(catalog.items.map(\.key))
        let labelsWithoutFile = labels.keys.filter { !inputKeys.contains($0) }.count
        if !labels.isEmpty { counts["labels_without_file"] = labelsWithoutFile }
        var headline = "\(index.count) images ingested, \(quarantine.count) quarantined, \(lots.count) lot\(lots.count == 1 ? "" : "s")"
        if !duplicates.isEmpty { headline += ", \(duplicates.count) groups of duplicate images (see duplicates.json)" }
        return StageSummary(counts: counts,
                            info: ["lots": .object(lots.mapValues(JSONValue.int)), "roles": .object(roles.mapValues(JSONValue.int)),
                                   "invariant": .string("ingested + quarantined == inputs")],
                            headline: headline)
    }
}
