import Foundation

extension Tensor {
    func reducedShape(_ axes: [Int]) -> (keep: [Int], axes: Set<Int>) {
        let resolved = Set((axes.isEmpty ? Array(0..<rank) : axes).map { normalizeAxis($0, rank: rank) })
        return (shape.enumerated().map { resolved.contains($0.offset) ? 1 : $0.element }, resolved)
    }

    /// Sum over `axes` (all axes when empty). Accumulates in Double.
    public func sum(axes: [Int] = [], keepDim: Bool = false) -> Tensor {
        let (keep, resolved) = reducedShape(axes)
        let summed = Kernels.sumTo(self, keep)
        let outShape = keepDim ? keep : shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: outShape, storage: summed === self ? copy().storage : summed.storage)
        let inputShape = shape
        return Tensor.result(out, name: "sum", inputs: [self]) { g in
            [Kernels.expand(Tensor(shape: keep, storage: g.storage), to: inputShape)]
        }
    }

    public func sum(axis: Int, keepDim: Bool = false) -> Tensor { sum(axes: [axis], keepDim: keepDim) }

    /// Mean over `axes` (all axes when empty).
    public func mean(axes: [Int] = [], keepDim: Bool = false) -> Tensor {
        let (keep, _) = reducedShape(axes)
        let n = count / Swift.max(keep.reduce(1, *), 1)
        return sum(axes: axes, keepDim: keepDim) * (1 / Float(n))
    }

    public func mean(axis: Int, keepDim: Bool = false) -> Tensor { mean(axes: [axis], keepDim: keepDim) }

    /// Maximum over `axes`; the gradient goes to the first maximal element of each reduced group.
    public func max(axes: [Int] = [], keepDim: Bool = false) -> Tensor {
        let (keep, resolved) = reducedShape(axes)
        let outCount = keep.reduce(1, *)
        var best = [Float](repeating: -.infinity, count: outCount)
        var argmax = [Int](repeating: -1, count: outCount)
        let targetStrides = broadcastStrides(keep, to: shape)
        let inStrides = contiguousStrides(shape)
        let px = pointer
        for i in 0..<count {
            var rem = i, off = 0
            for axis in 0..<rank { off += (rem / inStrides[axis]) * targetStrides[axis]; rem %= inStrides[axis] }
            let v = px[i]
            if argmax[off] < 0 || v > best[off] || (v.isNaN && !best[off].isNaN) { best[off] = v; argmax[off] = i }
        }
        let outShape = keepDim ? keep : shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
        let out = Tensor(shape: outShape, values: best)
        let inputShape = shape
        return Tensor.result(out, name: "max", inputs: [self]) { g in
            let gx = Tensor.zeros(inputShape)
            for (o, i) in argmax.enumerated() { gx.pointer[i] = g.pointer[o] }
            return [gx]
        }
    }

    public func max(axis: Int, keepDim: Bool = false) -> Tensor { max(axes: [axis], keepDim: keepDim) }

    /// Softmax along `axis` (max-subtracted for stability).
    public func softmax(axis: Int = 1) -> Tensor {
        let axis = normalizeAxis(axis, rank: rank)
        let outer = shape.prefix(axis).reduce(1, *), n = shape[axis], inner = shape.dropFirst(axis + 1).reduce(1, *)
        let out = Tensor.uninitialized(shape)
        let px = pointer, po = out.pointer
        Parallel.forRange(outer * inner, grain: 64) { range in
            for line in range {
                let base = (line / inner) * n * inner + line % inner
                var m = -Float.infinity
                for k in 0..<n { m = Swift.max(m, px[base + k * inner]) }
                var s: Float = 0
                for k in 0..<n { let e = expf(px[base + k * inner] - m); po[base + k * inner] = e; s += e }
                let r = 1 / s
                for k in 0..<n { po[base + k * inner] *= r }
            }
        }
        let probabilities = out.storageView()  // not `out` itself: the node would retain its own tensor
        return Tensor.result(out, name: "softmax", inputs: [self]) { g in
            let gx = Tensor.uninitialized(probabilities.shape)
            let pg = g.pointer, py = probabilities.pointer, pgx = gx.pointer
            Parallel.forRange(outer * inner, grain: 64) { range in
                for line in range {
                    let base = (line / inner) * n * inner + line % inner
                    var dot: Float = 0
                    for k in 0..<n { dot += pg[base + k * inner] * py[base + k * inner] }
                    for k in 0..<n { let i = base + k * inner; pgx[i] = py[i] * (pg[i] - dot) }
                }
            }
            return [gx]
        }
    }
}
