import Foundation
import KdadMethods
import KdadShards
import KdadTensor

/// Random access to the feature cache (and, for students that read pixels, the resized images)
/// for a list of images, assembled into `DistillationBatch`es. Records are decoded on demand, so
/// memory holds one batch, not the data set.
final class CachedFeatures: @unchecked Sendable {
    struct Item: Sendable {
        var shard: Int
        var key: String
        var provenance: ImageProvenance
    }

    let description: FeatureCacheDescription
    let featuresDirectory: URL
    let imagesDirectory: URL
    /// Positions in the cache's layer list of the layers the method uses, in method order.
    let layerPositions: [Int]
    let needsImages: Bool
    private var featureReaders: [Int: ShardReader] = [:]
    private var imageReaders: [Int: ShardReader] = [:]

    init(description: FeatureCacheDescription, featuresDirectory: URL, workDirectory: URL, layers: [String], needsImages: Bool) throws {
        self.description = description
        self.featuresDirectory = featuresDirectory
        self.imagesDirectory = DistillationSupport.stageDirectory(description.imagesStage, workDirectory: workDirectory)
        var positions: [Int] = []
        for layer in layers {
            guard let position = description.layers.firstIndex(where: { $0.name == layer }) else {
                throw PipelineError.invalidInput(reason: "layer '\(layer)' is not in the feature cache (cached: \(description.layers.map(\.name).joined(separator: ", ")))")
            }
            positions.append(position)
        }
        self.layerPositions = positions
        self.needsImages = needsImages
    }

    var layers: [FeatureCacheDescription.Layer] { layerPositions.map { description.layers[$0] } }

    func featureReader(_ shard: Int) throws -> ShardReader {
        if let reader = featureReaders[shard] { return reader }
        let reader = try ShardReader(url: featuresDirectory.appendingPathComponent(description.shards[shard]))
        featureReaders[shard] = reader
        return reader
    }

    func imageReader(_ shard: Int) throws -> ShardReader {
        if let reader = imageReaders[shard] { return reader }
        let name = "images-" + description.shards[shard].dropFirst("features-".count)
        let reader = try ShardReader(url: imagesDirectory.appendingPathComponent(name))
        imageReaders[shard] = reader
        return reader
    }

    /// The cached images whose role is in `roles`, in cache order (shard, then record order).
    func items(roles: Set<String>) throws -> [Item] {
        var items: [Item] = []
        for shard in description.shards.indices {
            let reader = try featureReader(shard)
            var iterator = try reader.makeRecordIterator()
            while let record = try iterator.next() {
                let provenance = try record.decodeMetadata(ImageProvenance.self)
                if roles.contains(provenance.role) { items.append(Item(shard: shard, key: record.key, provenance: provenance)) }
            }
        }
        return items
    }

    /// Items of one shard with a role in `roles`, in record order.
    func items(inShard shard: Int, roles: Set<String>) throws -> [Item] {
        var items: [Item] = []
        var iterator = try featureReader(shard).makeRecordIterator()
        while let record = try iterator.next() {
            let provenance = try record.decodeMetadata(ImageProvenance.self)
            if roles.contains(provenance.role) { items.append(Item(shard: shard, key: record.key, provenance: provenance)) }
        }
        return items
    }

    /// A batch of the given items: teacher features per method layer, and images when needed.
    func batch(_ items: ArraySlice<Item>) throws -> DistillationBatch {
        var perLayer = [[Float]](repeating: [], count: layerPositions.count)
        var shapes = [[Int]](repeating: [], count: layerPositions.count)
        var images: [Float] = []
        var imageShape: [Int] = []
        for item in items {
            let record = try featureReader(item.shard).record(forKey: item.key)
            for (slot, position) in layerPositions.enumerated() {
                let layer = description.layers[position]
                guard let tensor = record.tensor(named: layer.name), tensor.shape.count == 3 else {
                    throw PipelineError.invalidInput(reason: "\(description.shards[item.shard]): record '\(item.key)' has no feature map '\(layer.name)'")
                }
                if shapes[slot].isEmpty { shapes[slot] = tensor.shape } else if shapes[slot] != tensor.shape {
                    throw PipelineError.invalidInput(reason: "feature '\(layer.name)' of '\(item.key)' is \(tensor.shape), others in its batch \(shapes[slot])")
                }
                perLayer[slot] += try tensor.floatValues()
            }
            if needsImages {
                let imageRecord = try imageReader(item.shard).record(forKey: item.key)
                let input = try DistillationSupport.teacherInput(imageRecord, normalization: description.normalization,
                                                                 shard: description.shards[item.shard])
                if imageShape.isEmpty { imageShape = [3, input.height, input.width] }
                images += input.values
            }
        }
        let n = items.count
        let features = zip(perLayer, shapes).map { Tensor(shape: [n] + $1, values: $0) }
        return DistillationBatch(images: needsImages ? Tensor(shape: [n] + imageShape, values: images) : nil, teacherFeatures: features)
    }

    /// Batches of `items` in the given order, `batchSize` at a time. With `foldSingleton`, a last
    /// batch of one image joins the one before it: training-mode BatchNorm needs more than one value
    /// per channel, which a single image with a 1x1 map would not give.
    func batches(_ items: [Item], order: [Int], batchSize: Int, foldSingleton: Bool = false) -> AnySequence<DistillationBatch> {
        var bounds = Array(stride(from: 0, to: order.count, by: batchSize)) + [order.count]
        if foldSingleton, bounds.count > 2, order.count - bounds[bounds.count - 2] == 1 { bounds.remove(at: bounds.count - 2) }
        return AnySequence { () -> AnyIterator<DistillationBatch> in
            var next = 0
            return AnyIterator {
                guard next + 1 < bounds.count else { return nil }
                let (start, end) = (bounds[next], bounds[next + 1])
                next += 1
                // Errors cannot cross AnySequence: a failed read is recorded and the iteration stops.
                do { return try self.batch(ArraySlice(order[start..<end].map { items[$0] })) } catch {
                    self.readError = error
                    return nil
                }
            }
        }
    }

    /// The first read error hit while iterating `batches` (callers check it after each pass).
    var readError: Error?

    func throwIfReadFailed() throws {
        if let error = readError { readError = nil; throw error }
    }
}
