import Foundation
import KdadShards
import KdadTensor

/// What the feature cache holds and where its images came from; written by the `features` stage as
/// `cache.json` and read by `train` and `score`. Because it is one of the stage's output files, its
/// content (including the images stage's output hash) joins the output hash that downstream cache keys
/// are computed from.
public struct FeatureCacheDescription: Codable, Sendable, Equatable {
    public struct Layer: Codable, Sendable, Equatable {
        public var name: String
        public var channels: Int
        public var stride: Int
    }
    public var teacher: String
    public var layers: [Layer]
    public var roles: [String]
    /// The resize stage whose shards (same file names) hold the images.
    public var imagesStage: String
    public var imagesOutputHash: String
    /// `imagenet` = the teacher's own input normalisation was applied; `none` = raw [0,1] pixels.
    public var normalization: String
    /// Feature shards in unit order.
    public var shards: [String]

    enum CodingKeys: String, CodingKey {
        case teacher, layers, roles, normalization, shards
        case imagesStage = "images_stage", imagesOutputHash = "images_output_hash"
    }

    static let fileName = "cache.json"

    static func load(from directory: URL) throws -> FeatureCacheDescription {
        let url = directory.appendingPathComponent(fileName)
        do {
            return try JSONDecoder().decode(FeatureCacheDescription.self, from: Data(contentsOf: url))
        } catch {
            throw PipelineError.corruptRecord(path: url.path, reason: "\(error)")
        }
    }
}

/// The metadata every per-image record carries from ingest on (a subset of `IngestedImage`).
struct ImageProvenance: Codable, Sendable {
    var key: String
    var source: String
    var lot: String
    var label: String?
    var defectType: String?
    var split: String?
    var role: String
    enum CodingKeys: String, CodingKey {
        case key, source, lot, label, split, role
        case defectType = "defect_type"
    }
}

enum DistillationSupport {
    /// A completed stage's record, read from its directory (for stages two steps upstream).
    static func record(ofStage name: String, workDirectory: URL) throws -> StageRecord {
        let url = workDirectory.appendingPathComponent("stages/\(name)/stage.json")
        do {
            return try JSONDecoder().decode(StageRecord.self, from: Data(contentsOf: url))
        } catch {
            throw PipelineError.corruptRecord(path: url.path, reason: "stage '\(name)' has no readable record (\(error))")
        }
    }

    static func stageDirectory(_ name: String, workDirectory: URL) -> URL {
        workDirectory.appendingPathComponent("stages/\(name)")
    }

    /// A record's uint8 `image` [C,S,S] as teacher input values [3,S,S] (gray replicated), normalised
    /// as the teacher expects when `normalization == "imagenet"`.
    static func teacherInput(_ record: ShardRecord, normalization: String, shard: String) throws -> (values: [Float], height: Int, width: Int) {
        guard let image = record.tensor(named: "image"), image.shape.count == 3, image.dtype == .uint8 else {
            throw PipelineError.invalidInput(reason: "record '\(record.key)' in \(shard) has no uint8 CHW 'image' tensor")
        }
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        let levels = try image.uint8Values()
        let plane = h * w
        // EfficientNet-Lite's own normalisation: (x/255 - 0.5)/0.5.
        let (scale, shift): (Float, Float) = normalization == "imagenet" ? (2.0 / 255, -1) : (1.0 / 255, 0)
        var out = [Float](repeating: 0, count: 3 * plane)
        out.withUnsafeMutableBufferPointer { dst in
            levels.withUnsafeBufferPointer { src in
                for channel in 0..<3 {
                    let from = (c >= 3 ? channel : 0) * plane
                    for i in 0..<plane { dst[channel * plane + i] = Float(src[from + i]) * scale + shift }
                }
            }
        }
        return (out, h, w)
    }

    /// Float16 shard tensor from a [1,C,h,w] (or [C,h,w]) tensor, dropping the batch axis.
    static func float16Tensor(name: String, _ tensor: Tensor) throws -> ShardTensor {
        let shape = tensor.rank == 4 ? Array(tensor.shape.dropFirst()) : tensor.shape
        return try ShardTensor(name: name, float16From: tensor.scalars, shape: shape)
    }

    static func fileSize(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size]) as? Int) ?? 0
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }
}

/// Serialises calls into networks shared by concurrently running units: their forward passes are
/// multi-threaded already, and OpenBLAS's process-wide thread setting must not be raced (it would
/// change the last bits of sgemm results and break byte-identical resumes).
final class NetworkLock: @unchecked Sendable {
    private let lock = NSLock()
    func run<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }
}
