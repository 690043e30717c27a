// Connected components of a binary ground-truth mask: the "regions" of the PRO metric.
// 8-connectivity (diagonal neighbours belong to the same region), as in the MVTec AD evaluation
// code, which labels with a 3x3 all-ones structuring element.

/// Region labelling of a `width` x `height` row-major mask.
public struct ConnectedComponents: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// Per pixel: 0 for background, k in 1...regionCount for the k-th region (numbered in
    /// row-major order of each region's first pixel).
    public let labels: [Int32]
    /// `regionSizes[k - 1]` is the pixel count of region k.
    public let regionSizes: [Int]

    public var regionCount: Int { regionSizes.count }
}

/// Labels the true pixels of `mask` into 8-connected regions.
public func connectedComponents(mask: [Bool], width: Int, height: Int) throws(MetricsError) -> ConnectedComponents {
    let (pixelCount, overflow) = width.multipliedReportingOverflow(by: height)
    guard width > 0, height > 0, !overflow, pixelCount == mask.count else {
        throw .invalidGeometry(what: "ground-truth mask", width: width, height: height, pixelCount: mask.count)
    }
    var labels = [Int32](repeating: 0, count: mask.count)
    var regionSizes: [Int] = []
    var stack: [Int] = []
    for seed in mask.indices where mask[seed] && labels[seed] == 0 {
        let label = Int32(regionSizes.count + 1)
        labels[seed] = label
        stack.append(seed)
        var size = 0
        // Depth-first flood fill with an explicit stack (no recursion depth limit).
        while let pixel = stack.popLast() {
            size += 1
            let y = pixel / width, x = pixel - y * width
            for dy in -1...1 {
                let ny = y + dy
                if ny < 0 || ny >= height { continue }
                for dx in -1...1 {
                    let nx = x + dx
                    if nx < 0 || nx >= width || (dx == 0 && dy == 0) { continue }
                    let neighbour = ny * width + nx
                    if mask[neighbour] && labels[neighbour] == 0 {
                        labels[neighbour] = label
                        stack.append(neighbour)
                    }
                }
            }
        }
        regionSizes.append(size)
    }
    return ConnectedComponents(width: width, height: height, labels: labels, regionSizes: regionSizes)
}

/// A binary defect mask from an 8-bit gray mask: defect where value > `threshold` (MTD masks are
/// white = defect with some anti-aliased edge values, hence the default 127).
public func defectMask(fromGray gray: [UInt8], threshold: UInt8 = 127) -> [Bool] {
    gray.map { $0 > threshold }
}
