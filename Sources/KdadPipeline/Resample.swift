import Foundation

/// Separable image resampling: per-axis tap lists (source index, weight), applied along x then y.
/// Deterministic (fixed summation order), so resized shards are byte-identical run to run.
public enum ResampleMethod: String, Sendable, CaseIterable {
    /// Half-pixel-centre bilinear (align_corners = false), as PyTorch/OpenCV without antialias.
    case bilinear
    /// Exact box-filter area average (OpenCV INTER_AREA semantics when shrinking): each output
    /// pixel is the coverage-weighted mean of the source pixels under it. Best for downscaling.
    case area
}

/// Taps per output position, flattened with a fixed stride so the inner loops index plain buffers.
struct AxisTaps {
    var first: [Int] = []
    var count: [Int] = []
    var weights: [Float] = []
    var stride = 0

    init(from source: Int, to target: Int, method: ResampleMethod) {
        let scale = Double(source) / Double(target)
        var lists: [[Float]] = []
        for o in 0..<target {
            switch method {
            case .bilinear:
                let centre = (Double(o) + 0.5) * scale - 0.5
                let lower = Int(centre.rounded(.down))
                let fraction = Float(centre - Double(lower))
                let a = min(max(lower, 0), source - 1), b = min(max(lower + 1, 0), source - 1)
                if a == b { first.append(a); lists.append([1]) }
                else { first.append(a); lists.append([1 - fraction, fraction]) }
            case .area:
                let start = Double(o) * scale, end = Double(o + 1) * scale
                let lo = Int(start.rounded(.down)), hi = min(source, Int(end.rounded(.up)))
                var taps: [Float] = []
                for s in lo..<max(hi, lo + 1) {
                    let overlap = min(end, Double(s + 1)) - max(start, Double(s))
                    taps.append(Float(max(0, overlap) / (end - start)))
                }
                first.append(min(lo, source - 1))
                lists.append(taps)
            }
        }
        stride = lists.map(\.count).max() ?? 1
        for list in lists {
            count.append(list.count)
            weights += list + [Float](repeating: 0, count: stride - list.count)
        }
    }
}

enum Resampler {
    /// Resizes one plane (row-major `height` x `width`) to `newHeight` x `newWidth`.
    static func resize(_ plane: UnsafeBufferPointer<Float>, width: Int, height: Int, newWidth: Int, newHeight: Int,
                       method: ResampleMethod) -> [Float] {
        let xTaps = AxisTaps(from: width, to: newWidth, method: method)
        let yTaps = AxisTaps(from: height, to: newHeight, method: method)
        var horizontal = [Float](repeating: 0, count: height * newWidth)
        xTaps.first.withUnsafeBufferPointer { first in
            xTaps.count.withUnsafeBufferPointer { count in
                xTaps.weights.withUnsafeBufferPointer { weights in
                    horizontal.withUnsafeMutableBufferPointer { out in
                        for y in 0..<height {
                            let row = y * width, outRow = y * newWidth
                            for x in 0..<newWidth {
                                let start = row + first[x], base = x * xTaps.stride
                                var sum: Float = 0
                                for k in 0..<count[x] { sum += weights[base + k] * plane[start + k] }
                                out[outRow + x] = sum
                            }
                        }
                    }
                }
            }
        }
        var result = [Float](repeating: 0, count: newHeight * newWidth)
        horizontal.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { out in
                for y in 0..<newHeight {
                    let start = yTaps.first[y], outRow = y * newWidth, base = y * yTaps.stride
                    for k in 0..<yTaps.count[y] {
                        let w = yTaps.weights[base + k]
                        let sourceRow = (start + k) * newWidth
                        for x in 0..<newWidth { out[outRow + x] += w * source[sourceRow + x] }
                    }
                }
            }
        }
        return result
    }

    /// Centre crop of a row-major plane.
    static func centreCrop(_ plane: [Float], width: Int, height: Int, cropWidth: Int, cropHeight: Int) -> [Float] {
        let x0 = (width - cropWidth) / 2, y0 = (height - cropHeight) / 2
        var out: [Float] = []
        out.reserveCapacity(cropWidth * cropHeight)
        for y in y0..<(y0 + cropHeight) { out.append(contentsOf: plane[(y * width + x0)..<(y * width + x0 + cropWidth)]) }
        return out
    }
}
