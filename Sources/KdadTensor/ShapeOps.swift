import Foundation

extension Kernels {
    /// Broadcasts `x` to `shape` (copying).
    static func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
        if x.shape == shape { return x }
        let out = Tensor.uninitialized(shape)
        let (cshape, cstrides) = coalesce(shape, [broadcastStrides(x.shape, to: shape)])
        let inner = cshape.last!, sx = cstrides[0].last!
        let outer = Array(cshape.dropLast()), outerX = Array(cstrides[0].dropLast())
        let px = x.pointer, po = out.pointer
        Parallel.forRange(out.count / max(inner, 1), grain: max(1, 8192 / max(inner, 1))) { range in
            for row in range {
                var rem = row, off = 0
                for axis in stride(from: outer.count - 1, through: 0, by: -1) {
                    let i = rem % outer[axis]; rem /= outer[axis]
                    off += i * outerX[axis]
                }
                let o = po + row * inner
                if sx == 0 { o.update(repeating: px[off], count: inner) } else {
                    for j in 0..<inner { o[j] = px[off + j * sx] }
                }
            }
        }
        return out
    }

    /// Copies `x` with its axes reordered so that output axis i is input axis `axes[i]`.
    static func permute(_ x: Tensor, _ axes: [Int]) -> Tensor {
        let outShape = axes.map { x.shape[$0] }
        let inStrides = contiguousStrides(x.shape)
        let permStrides = axes.map { inStrides[$0] }
        let out = Tensor.uninitialized(outShape)
        guard out.count > 0 else { return out }
        let inner = outShape.last ?? 1, si = permStrides.last ?? 1
        let outer = Array(outShape.dropLast()), outerS = Array(permStrides.dropLast())
        let px = x.pointer, po = out.pointer
        Parallel.forRange(out.count / inner, grain: max(1, 8192 / inner)) { range in
            for row in range {
                var rem = row, off = 0
                for axis in stride(from: outer.count - 1, through: 0, by: -1) {
                    let i = rem % outer[axis]; rem /= outer[axis]
                    off += i * outerS[axis]
                }
                let o = po + row * inner
                for j in 0..<inner { o[j] = px[off + j * si] }
            }
        }
        return out
    }
}

/// Explicit 2-D padding (TF-SAME padding is asymmetric, so all four sides are separate).
public struct Padding2D: Hashable, Sendable {
    public var top, bottom, left, right: Int
    public init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }
    public init(_ all: Int) { self.init(top: all, bottom: all, left: all, right: all) }
    public init(height: Int, width: Int) { self.init(top: height, bottom: height, left: width, right: width) }
    public static let zero = Padding2D(0)
}

public enum PadMode: Equatable, Sendable {
    case constant(Float)
    case reflect
    case replicate
}

extension Tensor {
    /// Same values, new shape (shares storage). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let hole = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            resolved[hole] = count / known
        }
        precondition(resolved.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let out = Tensor(shape: resolved, storage: storage)
        let inputShape = shape
        return Tensor.result(out, name: "reshape", inputs: [self]) { g in
            [Tensor(shape: inputShape, storage: g.storage)]
        }
    }

    /// Collapses axes from `startAxis` on into one.
    public func flattened(from startAxis: Int = 1) -> Tensor {
        reshaped(Array(shape.prefix(startAxis)) + [shape.dropFirst(startAxis).reduce(1, *)])
    }

    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<rank), "permutation \(axes) for rank \(rank)")
        let out = Kernels.permute(self, axes)
        var inverse = [Int](repeating: 0, count: axes.count)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        return Tensor.result(out, name: "permute", inputs: [self]) { g in [Kernels.permute(g, inverse)] }
    }

    /// Swaps the last two axes.
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed needs rank >= 2")
        var axes = Array(0..<rank)
        axes.swapAt(rank - 1, rank - 2)
        return permuted(axes)
    }

    /// Broadcasts to `shape` (copying).
    public func expanded(to newShape: [Int]) -> Tensor {
        _ = broadcastShape(shape, newShape)
        let out = Kernels.expand(self, to: newShape)
        let inputShape = shape
        return Tensor.result(out, name: "expand", inputs: [self]) { g in [Kernels.sumTo(g, inputShape)] }
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let axis = normalizeAxis(axis, rank: rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice \(range) out of 0..<\(shape[axis])")
        var outShape = shape
        outShape[axis] = range.count
        let out = Tensor.uninitialized(outShape)
        let outer = shape.prefix(axis).reduce(1, *), inner = shape.dropFirst(axis + 1).reduce(1, *)
        let full = shape[axis] * inner, part = range.count * inner, start = range.lowerBound * inner
        let px = pointer, po = out.pointer
        for o in 0..<outer { (po + o * part).update(from: px + o * full + start, count: part) }
        let inputShape = shape
        return Tensor.result(out, name: "slice", inputs: [self]) { g in
            let gx = Tensor.zeros(inputShape)
            let pg = g.pointer, pgx = gx.pointer
            for o in 0..<outer { (pgx + o * full + start).update(from: pg + o * part, count: part) }
            return [gx]
        }
    }

    /// Splits along `axis` into pieces of the given sizes.
    public func split(axis: Int, sizes: [Int]) -> [Tensor] {
        let axis = normalizeAxis(axis, rank: rank)
        precondition(sizes.reduce(0, +) == shape[axis], "split sizes \(sizes) for dimension \(shape[axis])")
        var start = 0
        return sizes.map { size in defer { start += size }; return slice(axis: axis, start..<(start + size)) }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat of nothing")
        let first = tensors[0]
        let axis = normalizeAxis(axis, rank: first.rank)
        for t in tensors {
            precondition(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == axis || t.shape[$0] == first.shape[$0] },
                         "concat along \(axis): \(t.shape) vs \(first.shape)")
        }
        var outShape = first.shape
        outShape[axis] = tensors.map { $0.shape[axis] }.reduce(0, +)
        let out = Tensor.uninitialized(outShape)
        let outer = first.shape.prefix(axis).reduce(1, *), inner = first.shape.dropFirst(axis + 1).reduce(1, *)
        let full = outShape[axis] * inner
        var offsets: [Int] = []
        var offset = 0
        for t in tensors {
            offsets.append(offset)
            let part = t.shape[axis] * inner
            let pt = t.pointer, po = out.pointer
            for o in 0..<outer { (po + o * full + offset).update(from: pt + o * part, count: part) }
            offset += part
        }
        return result(out, name: "concat", inputs: tensors) { g in
            tensors.enumerated().map { index, t in
                guard t.requiresGrad else { return nil }
                let part = t.shape[axis] * inner
                let gt = Tensor.uninitialized(t.shape)
                let pg = g.pointer, pgt = gt.pointer
                for o in 0..<outer { (pgt + o * part).update(from: pg + o * full + offsets[index], count: part) }
                return gt
            }
        }
    }

    /// Pads the last two axes (H, W) of an NCHW tensor.
    public func padded(_ padding: Padding2D, mode: PadMode = .constant(0)) -> Tensor {
        precondition(rank >= 2, "pad needs rank >= 2")
        let h = shape[rank - 2], w = shape[rank - 1]
        let ho = h + padding.top + padding.bottom, wo = w + padding.left + padding.right
        precondition(ho > 0 && wo > 0, "padding \(padding) leaves nothing of \(shape)")
        if mode == .reflect {
            precondition(padding.top < h && padding.bottom < h && padding.left < w && padding.right < w,
                         "reflect padding \(padding) must be smaller than the input \(h)x\(w)")
        }
        let planes = count / Swift.max(h * w, 1)
        var outShape = shape
        outShape[rank - 2] = ho; outShape[rank - 1] = wo
        let out = Tensor.uninitialized(outShape)
        // Source index for each output row/column (nil: constant fill).
        func source(_ i: Int, before: Int, size: Int) -> Int? {
            let s = i - before
            if s >= 0 && s < size { return s }
            switch mode {
            case .constant: return nil
            case .replicate: return Swift.min(Swift.max(s, 0), size - 1)
            case .reflect: return s < 0 ? -s : 2 * (size - 1) - s
            }
        }
        let rowSource = (0..<ho).map { source($0, before: padding.top, size: h) }
        let colSource = (0..<wo).map { source($0, before: padding.left, size: w) }
        let fill: Float = { if case .constant(let v) = mode { return v } else { return 0 } }()
        let px = pointer, po = out.pointer
        Parallel.forRange(planes, grain: 4) { range in
            for p in range {
                for oy in 0..<ho {
                    let o = po + p * ho * wo + oy * wo
                    guard let sy = rowSource[oy] else { o.update(repeating: fill, count: wo); continue }
                    let src = px + p * h * w + sy * w
                    for ox in 0..<wo { o[ox] = colSource[ox].map { src[$0] } ?? fill }
                }
            }
        }
        let inputShape = shape
        return Tensor.result(out, name: "pad", inputs: [self]) { g in
            let gx = Tensor.zeros(inputShape)
            let pg = g.pointer, pgx = gx.pointer
            Parallel.forRange(planes, grain: 4) { range in
                for p in range {
                    for oy in 0..<ho {
                        guard let sy = rowSource[oy] else { continue }
                        let src = pg + p * ho * wo + oy * wo
                        let dst = pgx + p * h * w + sy * w
                        for ox in 0..<wo { if let sx = colSource[ox] { dst[sx] += src[ox] } }
                    }
                }
            }
            return [gx]
        }
    }
}
