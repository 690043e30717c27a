import Foundation

extension Tensor {
    /// Max pooling over H, W of an NCHW tensor. Padding never wins (implicit -infinity); the
    /// gradient goes to the first maximal element of each window.
    public static func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil,
                                 padding: Padding2D = .zero) -> Tensor {
        let stride = stride ?? kernel
        precondition(x.rank == 4, "maxPool2d: input \(x.shape)")
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let ho = (h + padding.top + padding.bottom - kernel.0) / stride.0 + 1
        let wo = (w + padding.left + padding.right - kernel.1) / stride.1 + 1
        precondition(ho > 0 && wo > 0, "maxPool2d: empty output for \(x.shape)")
        let out = Tensor.uninitialized([n, c, ho, wo])
        let argmax = UnsafeMutablePointer<Int32>.allocate(capacity: out.count)
        let argmaxBox = PointerOwner(argmax)
        let px = x.pointer, po = out.pointer
        Parallel.forRange(n * c) { planes in
            for p in planes {
                let src = px + p * h * w
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var best = -Float.infinity, index: Int32 = -1
                        for ky in 0..<kernel.0 {
                            let iy = oy * stride.0 - padding.top + ky
                            if iy < 0 || iy >= h { continue }
                            for kx in 0..<kernel.1 {
                                let ix = ox * stride.1 - padding.left + kx
                                if ix < 0 || ix >= w { continue }
                                let v = src[iy * w + ix]
                                if index < 0 || v > best || v.isNaN { best = v; index = Int32(iy * w + ix) }
                            }
                        }
                        let o = p * ho * wo + oy * wo + ox
                        po[o] = best; argmax[o] = index
                    }
                }
            }
        }
        let shape = x.shape
        return result(out, name: "max_pool2d", inputs: [x]) { g in
            let gx = Tensor.zeros(shape)
            let pg = g.pointer, pgx = gx.pointer, idx = argmaxBox.pointer
            Parallel.forRange(n * c) { planes in
                for p in planes {
                    for o in 0..<ho * wo where idx[p * ho * wo + o] >= 0 {
                        pgx[p * h * w + Int(idx[p * ho * wo + o])] += pg[p * ho * wo + o]
                    }
                }
            }
            return [gx]
        }
    }

    /// Average pooling. `countIncludePad` divides by the full window (PyTorch default).
    public static func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil,
                                 padding: Padding2D = .zero, countIncludePad: Bool = true) -> Tensor {
        let stride = stride ?? kernel
        precondition(x.rank == 4, "avgPool2d: input \(x.shape)")
        let h = x.shape[2], w = x.shape[3]
        let ho = (h + padding.top + padding.bottom - kernel.0) / stride.0 + 1
        let wo = (w + padding.left + padding.right - kernel.1) / stride.1 + 1
        precondition(ho > 0 && wo > 0, "avgPool2d: empty output for \(x.shape)")
        // Window bounds per output row/column, clipped to the input, and the divisor.
        func window(_ o: Int, stride: Int, pad: Int, k: Int, size: Int) -> Range<Int> {
            let start = o * stride - pad
            return Swift.max(start, 0)..<Swift.min(start + k, size)
        }
        let rows = (0..<ho).map { window($0, stride: stride.0, pad: padding.top, k: kernel.0, size: h) }
        let cols = (0..<wo).map { window($0, stride: stride.1, pad: padding.left, k: kernel.1, size: w) }
        let full = Float(kernel.0 * kernel.1)
        return windowMean(x, rows: rows, cols: cols, name: "avg_pool2d") { oy, ox in
            countIncludePad ? full : Float(rows[oy].count * cols[ox].count)
        }
    }

    /// Adaptive average pooling to `outputSize` (PyTorch bin edges: floor(i*H/o) ..< ceil((i+1)*H/o)).
    public static func adaptiveAvgPool2d(_ x: Tensor, outputSize: (Int, Int)) -> Tensor {
        precondition(x.rank == 4, "adaptiveAvgPool2d: input \(x.shape)")
        let h = x.shape[2], w = x.shape[3]
        let (ho, wo) = outputSize
        let rows = (0..<ho).map { ($0 * h) / ho..<(($0 + 1) * h + ho - 1) / ho }
        let cols = (0..<wo).map { ($0 * w) / wo..<(($0 + 1) * w + wo - 1) / wo }
        return windowMean(x, rows: rows, cols: cols, name: "adaptive_avg_pool2d") { oy, ox in
            Float(rows[oy].count * cols[ox].count)
        }
    }

    /// The mean over the window `rows[oy] × cols[ox]` of each plane, divided by `divisor(oy, ox)`,
    /// and its backward: the one kernel behind average and adaptive average pooling.
    private static func windowMean(_ x: Tensor, rows: [Range<Int>], cols: [Range<Int>], name: String,
                                   divisor: (Int, Int) -> Float) -> Tensor {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let ho = rows.count, wo = cols.count
        // Divisors once per output position, outside the per-plane loops.
        let divisors = (0..<ho * wo).map { divisor($0 / wo, $0 % wo) }
        let out = Tensor.uninitialized([n, c, ho, wo])
        let px = x.pointer, po = out.pointer
        Parallel.forRange(n * c) { planes in
            for p in planes {
                let src = px + p * h * w
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var s: Float = 0
                        for iy in rows[oy] { for ix in cols[ox] { s += src[iy * w + ix] } }
                        po[p * ho * wo + oy * wo + ox] = s / divisors[oy * wo + ox]
                    }
                }
            }
        }
        let shape = x.shape
        return result(out, name: name, inputs: [x]) { g in
            let gx = Tensor.zeros(shape)
            let pg = g.pointer, pgx = gx.pointer
            Parallel.forRange(n * c) { planes in
                for p in planes {
                    let dst = pgx + p * h * w
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            let v = pg[p * ho * wo + oy * wo + ox] / divisors[oy * wo + ox]
                            for iy in rows[oy] { for ix in cols[ox] { dst[iy * w + ix] += v } }
                        }
                    }
                }
            }
            return [gx]
        }
    }
}

/// Owns a raw allocation captured by a backward closure; frees it with the graph.
final class PointerOwner<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
    init(_ pointer: UnsafeMutablePointer<Element>) { self.pointer = pointer }
    deinit { pointer.deallocate() }
}
