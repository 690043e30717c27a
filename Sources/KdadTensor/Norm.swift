import Foundation

extension Tensor {
    /// Batch normalisation over (N, H, W) per channel of an NCHW (or NC) tensor.
    /// Training: normalises with the biased batch variance and, when running stats are given,
    /// updates them in place with `momentum` and the unbiased variance (PyTorch semantics).
    /// Evaluation: normalises with the running statistics.
    public static func batchNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                                 training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2, "batchNorm: input \(x.shape)")
        let n = x.shape[0], c = x.shape[1], plane = x.count / Swift.max(n * c, 1), m = n * plane
        for t in [weight, bias, runningMean, runningVar] { if let t { precondition(t.count == c, "batchNorm: \(t.shape) for \(c) channels") } }
        var mean = [Float](repeating: 0, count: c), invStd = [Float](repeating: 0, count: c)
        let px = x.pointer
        if training {
            precondition(m > 1 || runningVar == nil, "batchNorm: training needs more than one value per channel")
            var variance = [Double](repeating: 0, count: c)
            mean.withUnsafeMutableBufferPointer { meanp in
                invStd.withUnsafeMutableBufferPointer { invp in
                    variance.withUnsafeMutableBufferPointer { varp in
                        Parallel.forRange(c) { channels in
                            for ch in channels {
                                var s = 0.0
                                for b in 0..<n { let p = px + (b * c + ch) * plane; for i in 0..<plane { s += Double(p[i]) } }
                                let mu = s / Double(m)
                                var ss = 0.0
                                for b in 0..<n {
                                    let p = px + (b * c + ch) * plane
                                    for i in 0..<plane { let d = Double(p[i]) - mu; ss += d * d }
                                }
                                let v = ss / Double(m)
                                meanp[ch] = Float(mu); varp[ch] = v
                                invp[ch] = Float(1 / (v + Double(eps)).squareRoot())
                            }
                        }
                    }
                }
            }
            if let runningMean, let runningVar {
                let unbiased = Double(m) / Double(Swift.max(m - 1, 1))
                for ch in 0..<c {
                    runningMean.pointer[ch] = (1 - momentum) * runningMean.pointer[ch] + momentum * mean[ch]
                    runningVar.pointer[ch] = (1 - momentum) * runningVar.pointer[ch] + momentum * Float(variance[ch] * unbiased)
                }
            }
        } else {
            guard let runningMean, let runningVar else { preconditionFailure("batchNorm: evaluation needs running statistics") }
            for ch in 0..<c {
                mean[ch] = runningMean.pointer[ch]
                invStd[ch] = 1 / (runningVar.pointer[ch] + eps).squareRoot()
            }
        }
        let gamma = weight.map { $0.scalars } ?? [Float](repeating: 1, count: c)
        let beta = bias.map { $0.scalars } ?? [Float](repeating: 0, count: c)
        let out = Tensor.uninitialized(x.shape)
        let po = out.pointer
        Parallel.forRange(n * c, grain: Swift.max(1, 16384 / Swift.max(plane, 1))) { planes in
            for p in planes {
                let ch = p % c, scale = invStd[ch] * gamma[ch], shift = beta[ch] - mean[ch] * scale
                let s = px + p * plane, d = po + p * plane
                for i in 0..<plane { d[i] = s[i] * scale + shift }
            }
        }
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return result(out, name: "batch_norm", inputs: inputs) { g in
            let pg = g.pointer
            var sumDy = [Double](repeating: 0, count: c), sumDyXhat = [Double](repeating: 0, count: c)
            sumDy.withUnsafeMutableBufferPointer { sdy in
                sumDyXhat.withUnsafeMutableBufferPointer { sdx in
                    Parallel.forRange(c) { channels in
                        for ch in channels {
                            var a = 0.0, b2 = 0.0
                            let mu = mean[ch], inv = invStd[ch]
                            for b in 0..<n {
                                let off = (b * c + ch) * plane
                                var pa: Float = 0, pb: Float = 0
                                for i in 0..<plane { let dy = pg[off + i]; pa += dy; pb += dy * (px[off + i] - mu) * inv }
                                a += Double(pa); b2 += Double(pb)
                            }
                            sdy[ch] = a; sdx[ch] = b2
                        }
                    }
                }
            }
            var grads: [Tensor?] = []
            if x.requiresGrad {
                let gx = Tensor.uninitialized(x.shape)
                let pgx = gx.pointer
                Parallel.forRange(n * c, grain: Swift.max(1, 16384 / Swift.max(plane, 1))) { planes in
                    for p in planes {
                        let ch = p % c, inv = invStd[ch], mu = mean[ch], k = gamma[ch] * inv
                        let off = p * plane
                        if training {
                            let meanDy = Float(sumDy[ch] / Double(m)), meanDyXhat = Float(sumDyXhat[ch] / Double(m))
                            for i in 0..<plane {
                                let xhat = (px[off + i] - mu) * inv
                                pgx[off + i] = k * (pg[off + i] - meanDy - xhat * meanDyXhat)
                            }
                        } else {
                            for i in 0..<plane { pgx[off + i] = k * pg[off + i] }
                        }
                    }
                }
                grads.append(gx)
            } else { grads.append(nil) }
            if let weight { grads.append(weight.requiresGrad ? Tensor(shape: weight.shape, values: sumDyXhat.map { Float($0) }) : nil) }
            if let bias { grads.append(bias.requiresGrad ? Tensor(shape: bias.shape, values: sumDy.map { Float($0) }) : nil) }
            return grads
        }
    }

    /// Group normalisation: statistics per (sample, group of channels) over the group's channels
    /// and all positions; per-channel affine.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] % groups == 0, "groupNorm: input \(x.shape), groups \(groups)")
        let n = x.shape[0], c = x.shape[1], plane = x.count / Swift.max(n * c, 1)
        let perGroup = c / groups, size = perGroup * plane
        let gamma = weight.map { $0.scalars } ?? [Float](repeating: 1, count: c)
        let beta = bias.map { $0.scalars } ?? [Float](repeating: 0, count: c)
        var mean = [Float](repeating: 0, count: n * groups), invStd = mean
        let px = x.pointer
        mean.withUnsafeMutableBufferPointer { meanp in
            invStd.withUnsafeMutableBufferPointer { invp in
                Parallel.forRange(n * groups) { range in
                    for ng in range {
                        let p = px + ng * size
                        var s = 0.0
                        for i in 0..<size { s += Double(p[i]) }
                        let mu = s / Double(size)
                        var ss = 0.0
                        for i in 0..<size { let d = Double(p[i]) - mu; ss += d * d }
                        meanp[ng] = Float(mu); invp[ng] = Float(1 / (ss / Double(size) + Double(eps)).squareRoot())
                    }
                }
            }
        }
        let out = Tensor.uninitialized(x.shape)
        let po = out.pointer
        Parallel.forRange(n * c) { planes in
            for p in planes {
                let ch = p % c, ng = (p / c) * groups + ch / perGroup
                let scale = invStd[ng] * gamma[ch], shift = beta[ch] - mean[ng] * scale
                for i in 0..<plane { po[p * plane + i] = px[p * plane + i] * scale + shift }
            }
        }
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return result(out, name: "group_norm", inputs: inputs) { g in
            let pg = g.pointer
            // Per (sample, channel): sum dy and sum dy*xhat.
            var sumDy = [Double](repeating: 0, count: n * c), sumDyXhat = sumDy
            sumDy.withUnsafeMutableBufferPointer { sdy in
                sumDyXhat.withUnsafeMutableBufferPointer { sdx in
                    Parallel.forRange(n * c) { planes in
                        for p in planes {
                            let ch = p % c, ng = (p / c) * groups + ch / perGroup
                            var a = 0.0, b = 0.0
                            for i in 0..<plane {
                                let dy = Double(pg[p * plane + i])
                                a += dy; b += dy * Double((px[p * plane + i] - mean[ng]) * invStd[ng])
                            }
                            sdy[p] = a; sdx[p] = b
                        }
                    }
                }
            }
            var grads: [Tensor?] = []
            if x.requiresGrad {
                let gx = Tensor.uninitialized(x.shape)
                let pgx = gx.pointer
                Parallel.forRange(n * groups) { range in
                    for ng in range {
                        let b = ng / groups, grp = ng % groups
                        // Means over the group of dxhat = dy*gamma and dxhat*xhat.
                        var mdx = 0.0, mdxx = 0.0
                        for ch in grp * perGroup..<(grp + 1) * perGroup {
                            mdx += Double(gamma[ch]) * sumDy[b * c + ch]; mdxx += Double(gamma[ch]) * sumDyXhat[b * c + ch]
                        }
                        let a = Float(mdx / Double(size)), bb = Float(mdxx / Double(size))
                        let mu = mean[ng], inv = invStd[ng]
                        for ch in grp * perGroup..<(grp + 1) * perGroup {
                            let off = (b * c + ch) * plane
                            for i in 0..<plane {
                                let xhat = (px[off + i] - mu) * inv
                                pgx[off + i] = inv * (pg[off + i] * gamma[ch] - a - xhat * bb)
                            }
                        }
                    }
                }
                grads.append(gx)
            } else { grads.append(nil) }
            if let weight {
                grads.append(weight.requiresGrad ? Tensor(shape: weight.shape, values: (0..<c).map { ch in
                    Float((0..<n).reduce(0.0) { $0 + sumDyXhat[$1 * c + ch] }) }) : nil)
            }
            if let bias {
                grads.append(bias.requiresGrad ? Tensor(shape: bias.shape, values: (0..<c).map { ch in
                    Float((0..<n).reduce(0.0) { $0 + sumDy[$1 * c + ch] }) }) : nil)
            }
            return grads
        }
    }
}

/// BatchNorm2d with learnable affine parameters and running statistics (PyTorch defaults).
public final class BatchNorm2d: @unchecked Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let runningMean: Tensor
    public let runningVar: Tensor
    public var numBatchesTracked: Int = 0
    public var momentum: Float
    public var eps: Float

    public init(channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) {
        weight = Tensor.ones([channels], requiresGrad: true)
        bias = Tensor.zeros([channels], requiresGrad: true)
        runningMean = Tensor.zeros([channels])
        runningVar = Tensor.ones([channels])
        self.momentum = momentum
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor, training: Bool) -> Tensor {
        if training { numBatchesTracked += 1 }
        return Tensor.batchNorm(x, weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                                training: training, momentum: momentum, eps: eps)
    }
}
