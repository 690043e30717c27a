import Foundation
import KdadTensor

/// Inference depthwise convolution (one filter per channel, NCHW) with the folded-BN bias and the
/// activation applied as each output row is finished.
///
/// Why not the tensor engine's depthwise kernel: it accumulates straight into the output with
/// bounds-checked, strided inner loops, then needs separate passes for bias and activation. Here each
/// plane is first copied into a zero-padded scratch plane (split into even and odd columns for
/// stride 2), so every inner loop is a branch-free, unit-stride multiply-add over an L1-resident row.
enum DepthwiseKernel {
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Padding2D,
                        activation: Activation) -> Tensor {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let kh = weight.shape[2], kw = weight.shape[3]
        precondition(weight.shape[0] == c && weight.shape[1] == 1, "depthwise: weight \(weight.shape) for \(c) channels")
        precondition(stride == 1 || stride == 2, "depthwise kernel supports strides 1 and 2")
        let ho = (h + padding.top + padding.bottom - kh) / stride + 1
        let wo = (w + padding.left + padding.right - kw) / stride + 1
        let ph = h + padding.top + padding.bottom
        // Padded row length, rounded so every tap of every output column is inside the row.
        let pw = (wo - 1) * stride + kw
        // Stride 2: even columns then odd columns, each `half` long.
        let half = (pw + 1) / 2
        let rowLength = stride == 1 ? pw : 2 * half
        let out = Tensor.zeros([n, c, ho, wo])
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pwgt in
                bias.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        let px = UncheckedBox(value: px.baseAddress!), pwgt = UncheckedBox(value: pwgt.baseAddress!)
                        let pb = UncheckedBox(value: pb.baseAddress!), po = UncheckedBox(value: po.baseAddress!)
                        ParallelLoop.forRange(n * c) { planes in
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: ph * rowLength + wo)
                            defer { scratch.deallocate() }
                            let acc = scratch + ph * rowLength
                            scratch.initialize(repeating: 0, count: ph * rowLength)
                            for p in planes {
                                let ch = p % c
                                let src = px.value + p * h * w
                                // Fill the interior rows (the zero border stays zero across planes).
                                for y in 0..<h {
                                    let row = scratch + (y + padding.top) * rowLength
                                    let s = src + y * w
                                    let copyCount = min(w, pw - padding.left)
                                    if stride == 1 {
                                        (row + padding.left).update(from: s, count: copyCount)
                                    } else {
                                        for i in 0..<copyCount {
                                            let col = i + padding.left
                                            row[(col & 1) * half + (col >> 1)] = s[i]
                                        }
                                    }
                                }
                                let wt = pwgt.value + ch * kh * kw
                                let b = pb.value[ch]
                                let dst = po.value + p * ho * wo
                                for oy in 0..<ho {
                                    for i in 0..<wo { acc[i] = b }
                                    for ky in 0..<kh {
                                        let row = scratch + (oy * stride + ky) * rowLength
                                        for kx in 0..<kw {
                                            let wv = wt[ky * kw + kx]
                                            let s = stride == 1 ? row + kx : row + (kx & 1) * half + (kx >> 1)
                                            for i in 0..<wo { acc[i] += wv * s[i] }
                                        }
                                    }
                                    let d = dst + oy * wo
                                    switch activation {
                                    case .identity: d.update(from: acc, count: wo)
                                    case .relu: for i in 0..<wo { d[i] = max(acc[i], 0) }
                                    case .relu6: for i in 0..<wo { d[i] = min(max(acc[i], 0), 6) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
