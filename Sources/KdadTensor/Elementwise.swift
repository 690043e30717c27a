import Foundation

/// NumPy-style broadcast of two shapes (aligned at the trailing dimension).
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
    let rank = max(a.count, b.count)
    let pa = [Int](repeating: 1, count: rank - a.count) + a
    let pb = [Int](repeating: 1, count: rank - b.count) + b
    return (0..<rank).map { axis in
        precondition(pa[axis] == pb[axis] || pa[axis] == 1 || pb[axis] == 1,
                     "shapes \(a) and \(b) do not broadcast")
        return pa[axis] == 1 ? pb[axis] : pa[axis]
    }
}

/// Strides of `shape` seen from a broadcast result of rank `rank`: 0 along broadcast dimensions.
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let padded = [Int](repeating: 1, count: outShape.count - shape.count) + shape
    let strides = contiguousStrides(padded)
    return (0..<outShape.count).map { padded[$0] == 1 && outShape[$0] != 1 ? 0 : strides[$0] }
}

/// Merges adjacent dimensions that every operand traverses contiguously (or all broadcast), so
/// e.g. [N,C,1,1] against [N,C,H,W] becomes a 2-D [N*C, H*W] loop.
func coalesce(_ shape: [Int], _ strideSets: [[Int]]) -> ([Int], [[Int]]) {
    var outShape: [Int] = []
    var outStrides = [[Int]](repeating: [], count: strideSets.count)
    for axis in 0..<shape.count where shape[axis] != 1 {
        if let last = outShape.last,
           strideSets.indices.allSatisfy({ outStrides[$0].last! == strideSets[$0][axis] * shape[axis] }) {
            outShape[outShape.count - 1] = last * shape[axis]
            for s in strideSets.indices { outStrides[s][outStrides[s].count - 1] = strideSets[s][axis] }
        } else {
            outShape.append(shape[axis])
            for s in strideSets.indices { outStrides[s].append(strideSets[s][axis]) }
        }
    }
    if outShape.isEmpty { return ([1], strideSets.map { _ in [1] }) }
    return (outShape, outStrides)
}

extension Kernels {
    /// out = f(a, b) with broadcasting.
    static func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape { return zip(a, b, f) }
        let outShape = broadcastShape(a.shape, b.shape)
        let out = Tensor.uninitialized(outShape)
        let (shape, strides) = coalesce(outShape, [broadcastStrides(a.shape, to: outShape),
                                                   broadcastStrides(b.shape, to: outShape)])
        let inner = shape.last!, sa = strides[0].last!, sb = strides[1].last!
        let rows = out.count / max(inner, 1)
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        let outer = Array(shape.dropLast()), outerA = Array(strides[0].dropLast()), outerB = Array(strides[1].dropLast())
        Parallel.forRange(rows, grain: max(1, 8192 / max(inner, 1))) { range in
            for row in range {
                var rem = row, offA = 0, offB = 0
                for axis in stride(from: outer.count - 1, through: 0, by: -1) {
                    let i = rem % outer[axis]; rem /= outer[axis]
                    offA += i * outerA[axis]; offB += i * outerB[axis]
                }
                let o = po + row * inner
                if sa == 1 && sb == 1 {
                    for j in 0..<inner { o[j] = f(pa[offA + j], pb[offB + j]) }
                } else if sa == 1 && sb == 0 {
                    let vb = pb[offB]
                    for j in 0..<inner { o[j] = f(pa[offA + j], vb) }
                } else if sa == 0 && sb == 1 {
                    let va = pa[offA]
                    for j in 0..<inner { o[j] = f(va, pb[offB + j]) }
                } else {
                    for j in 0..<inner { o[j] = f(pa[offA + j * sa], pb[offB + j * sb]) }
                }
            }
        }
        return out
    }

    /// Sums `g` down to `shape` (the reverse of broadcasting), accumulating in Double.
    static func sumTo(_ g: Tensor, _ shape: [Int]) -> Tensor {
        if g.shape == shape { return g }
        let targetStrides = broadcastStrides(shape, to: g.shape)
        let (cshape, cstrides) = coalesce(g.shape, [contiguousStrides(g.shape), targetStrides])
        let count = shape.reduce(1, *)
        var acc = [Double](repeating: 0, count: count)
        let inner = cshape.last!, st = cstrides[1].last!
        let outer = Array(cshape.dropLast()), outerT = Array(cstrides[1].dropLast())
        let rows = g.count / max(inner, 1)
        let pg = g.pointer
        acc.withUnsafeMutableBufferPointer { accp in
            for row in 0..<rows {
                var rem = row, off = 0
                for axis in stride(from: outer.count - 1, through: 0, by: -1) {
                    let i = rem % outer[axis]; rem /= outer[axis]
                    off += i * outerT[axis]
                }
                let src = pg + row * inner
                if st == 0 {
                    var s = 0.0
                    for j in 0..<inner { s += Double(src[j]) }
                    accp[off] += s
                } else {
                    for j in 0..<inner { accp[off + j * st] += Double(src[j]) }
                }
            }
        }
        return Tensor(shape: shape, values: acc.map { Float($0) })
    }
}

// MARK: - Binary ops with broadcasting

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = Kernels.broadcast(a, b, +)
        return result(out, name: "add", inputs: [a, b]) { g in
            [a.requiresGrad ? Kernels.sumTo(g, a.shape) : nil, b.requiresGrad ? Kernels.sumTo(g, b.shape) : nil]
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = Kernels.broadcast(a, b, -)
        return result(out, name: "sub", inputs: [a, b]) { g in
            [a.requiresGrad ? Kernels.sumTo(g, a.shape) : nil,
             b.requiresGrad ? Kernels.sumTo(Kernels.map(g) { -$0 }, b.shape) : nil]
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = Kernels.broadcast(a, b, *)
        return result(out, name: "mul", inputs: [a, b]) { g in
            [a.requiresGrad ? Kernels.sumTo(Kernels.broadcast(g, b, *), a.shape) : nil,
             b.requiresGrad ? Kernels.sumTo(Kernels.broadcast(g, a, *), b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = Kernels.broadcast(a, b, /)
        let quotient = out.storageView()  // not `out` itself: the node would retain its own tensor
        return result(out, name: "div", inputs: [a, b]) { g in
            let gOverB = Kernels.broadcast(g, b, /)
            return [a.requiresGrad ? Kernels.sumTo(gOverB, a.shape) : nil,
                    b.requiresGrad ? Kernels.sumTo(Kernels.zip(gOverB, quotient) { -$0 * $1 }, b.shape) : nil]
        }
    }

    // Scalar forms.
    public static func + (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { a.affine(scale: -1, shift: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.affine(scale: s, shift: 0) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1 / s, shift: 0) }
    public static func / (s: Float, a: Tensor) -> Tensor { Tensor(shape: [], values: [s]) / a }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }

    /// scale * x + shift.
    public func affine(scale: Float, shift: Float) -> Tensor {
        let out = Kernels.map(self) { $0 * scale + shift }
        return Tensor.result(out, name: "affine", inputs: [self]) { g in [Kernels.map(g) { $0 * scale }] }
    }
}

// MARK: - Unary ops

extension Tensor {
    /// Elementwise op whose derivative is a function of the input and the output.
    func unary(_ name: String, _ f: (Float) -> Float, derivative: @escaping (_ x: Float, _ y: Float) -> Float) -> Tensor {
        let out = Kernels.map(self, f)
        let output = out.storageView()  // not `out` itself: the node would retain its own tensor
        return Tensor.result(out, name: name, inputs: [self]) { [self] g in
            [Kernels.zip3(g, self, output) { g, x, y in g * derivative(x, y) }]
        }
    }

    public func relu() -> Tensor { unary("relu", { Swift.max($0, 0) }, derivative: { x, _ in x > 0 ? 1 : 0 }) }
    public func relu6() -> Tensor {
        unary("relu6", { Swift.min(Swift.max($0, 0), 6) }, derivative: { x, _ in x > 0 && x < 6 ? 1 : 0 })
    }
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        unary("leaky_relu", { $0 > 0 ? $0 : $0 * slope }, derivative: { x, _ in x > 0 ? 1 : slope })
    }
    public func sigmoid() -> Tensor {
        unary("sigmoid", { 1 / (1 + expf(-$0)) }, derivative: { _, y in y * (1 - y) })
    }
    public func silu() -> Tensor {
        unary("silu", { $0 / (1 + expf(-$0)) }, derivative: { x, _ in
            let s = 1 / (1 + expf(-x)); return s * (1 + x * (1 - s))
        })
    }
    public func tanh() -> Tensor { unary("tanh", { tanhf($0) }, derivative: { _, y in 1 - y * y }) }
    public func exp() -> Tensor { unary("exp", { expf($0) }, derivative: { _, y in y }) }
    public func log() -> Tensor { unary("log", { logf($0) }, derivative: { x, _ in 1 / x }) }
    public func sqrt() -> Tensor { unary("sqrt", { sqrtf($0) }, derivative: { _, y in 0.5 / y }) }
    public func abs() -> Tensor { unary("abs", { Swift.abs($0) }, derivative: { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) }) }
    public func square() -> Tensor { unary("square", { $0 * $0 }, derivative: { x, _ in 2 * x }) }
    /// x^p for a scalar exponent.
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return square() }
        return unary("pow", { powf($0, p) }, derivative: { x, _ in p * powf(x, p - 1) })
    }
    /// Clamps to [lower, upper]; the gradient passes where the input is strictly inside.
    public func clamp(min lower: Float = -.infinity, max upper: Float = .infinity) -> Tensor {
        unary("clamp", { Swift.min(Swift.max($0, lower), upper) },
              derivative: { x, _ in x >= lower && x <= upper ? 1 : 0 })
    }
}
