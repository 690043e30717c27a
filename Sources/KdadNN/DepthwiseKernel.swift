import Foundation
import KdadTensor

/// Inference depthwise convolution (one k×k filter per channel, NCHW, stride 1 or 2) with the
/// folded-BN bias and the activation applied when the output is written.
///
/// Why not the tensor engine's depthwise kernel: it runs bounds-checked inner loops of one output
/// row (7…112 values), gathers with stride 2, and needs separate passes for bias and activation.
/// Here each input plane is first copied into zero-padded *phase planes* (one for stride 1; four for
/// stride 2: even/odd rows × even/odd columns) of row length R = out_w + (k-1)/stride. In that layout
/// every tap (ky, kx) of every output is a unit-stride read at a fixed offset, so each tap is one long
/// branch-free multiply-add over a band of output rows flattened to `rows × R` values (the R - out_w
/// extra columns per row are computed and dropped). Bands keep the accumulator in L1.
enum DepthwiseKernel {
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Padding2D,
                        activation: Activation) -> Tensor {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let kh = weight.shape[2], kw = weight.shape[3]
        precondition(weight.shape[0] == c && weight.shape[1] == 1, "depthwise: weight \(weight.shape) for \(c) channels")
        precondition(stride == 1 || stride == 2, "depthwise kernel supports strides 1 and 2")
        let ho = (h + padding.top + padding.bottom - kh) / stride + 1
        let wo = (w + padding.left + padding.right - kw) / stride + 1
        let rowLength = wo + (kw - 1) / stride
        let phaseRows = ho + (kh - 1) / stride
        // Reads run up to (kw-1)/stride past the last phase row: a zero tail covers them.
        let phaseSize = phaseRows * rowLength + kw
        let phases = stride * stride
        let bandRows = max(1, 2048 / rowLength)
        let taps = kh * kw
        let out = Tensor.zeros([n, c, ho, wo])
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pwgt in
                bias.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        let box = UncheckedBox(value: (px.baseAddress!, pwgt.baseAddress!, pb.baseAddress!, po.baseAddress!))
                        ParallelLoop.forRange(n * c) { planes in
                            let (px, pwgt, pb, po) = box.value
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: phases * phaseSize + bandRows * rowLength)
                            defer { scratch.deallocate() }
                            // Borders are never written, so zeroing once serves every plane of the chunk.
                            scratch.initialize(repeating: 0, count: phases * phaseSize + bandRows * rowLength)
                            let acc = scratch + phases * phaseSize
                            // Per tap: its weight and its offset from a band's first phase-plane value.
                            let tapWeights = UnsafeMutablePointer<Float>.allocate(capacity: taps)
                            let tapOffsets = UnsafeMutablePointer<Int>.allocate(capacity: taps)
                            defer { tapWeights.deallocate(); tapOffsets.deallocate() }
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let phase = stride == 1 ? 0 : (ky & 1) * 2 + (kx & 1)
                                    tapOffsets[ky * kw + kx] = phase * phaseSize + (ky / stride) * rowLength + kx / stride
                                }
                            }
                            for p in planes {
                                let ch = p % c
                                let src = px + p * h * w
                                // Scatter the input into the phase planes (padded coordinates py, px).
                                for y in 0..<h {
                                    let py = y + padding.top
                                    let ry = py % stride, yy = py / stride
                                    if yy >= phaseRows { break }
                                    let s = src + y * w
                                    if stride == 1 {
                                        let count = min(w, rowLength - padding.left)
                                        (scratch + yy * rowLength + padding.left).update(from: s, count: count)
                                    } else {
                                        // Padded column 2·col is input column 2·col - left (even phase),
                                        // 2·col + 1 the next one (odd phase): deinterleave 8 at a time.
                                        let even = scratch + (ry * 2) * phaseSize + yy * rowLength
                                        let odd = scratch + (ry * 2 + 1) * phaseSize + yy * rowLength
                                        var col = 0
                                        while col < rowLength {
                                            let i0 = 2 * col - padding.left
                                            if i0 >= 0 && i0 + 8 <= w && col + 4 <= rowLength {
                                                let v = UnsafeRawPointer(s + i0).loadUnaligned(as: SIMD8<Float>.self)
                                                UnsafeMutableRawPointer(even + col).storeBytes(of: v.evenHalf, as: SIMD4<Float>.self)
                                                UnsafeMutableRawPointer(odd + col).storeBytes(of: v.oddHalf, as: SIMD4<Float>.self)
                                                col += 4
                                            } else {
                                                if i0 >= 0 && i0 < w { even[col] = s[i0] }
                                                if i0 + 1 >= 0 && i0 + 1 < w { odd[col] = s[i0 + 1] }
                                                col += 1
                                            }
                                        }
                                    }
                                }
                                let wt = pwgt + ch * kh * kw
                                for t in 0..<taps { tapWeights[t] = wt[t] }
                                let b = pb[ch]
                                let dst = po + p * ho * wo
                                var r0 = 0
                                while r0 < ho {
                                    let rows = min(bandRows, ho - r0)
                                    let len = rows * rowLength
                                    let base = scratch + r0 * rowLength
                                    // All taps of 8 outputs accumulate in registers (eight scalars the
                                    // optimiser turns into vector registers; plain Float arithmetic also
                                    // keeps debug builds fast, unlike the generic SIMD types).
                                    var j = 0
                                    while j + 8 <= len {
                                        var a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b
                                        for t in 0..<taps {
                                            let wv = tapWeights[t], v = base + tapOffsets[t] + j
                                            a0 += wv * v[0]; a1 += wv * v[1]; a2 += wv * v[2]; a3 += wv * v[3]
                                            a4 += wv * v[4]; a5 += wv * v[5]; a6 += wv * v[6]; a7 += wv * v[7]
                                        }
                                        let d = acc + j
                                        d[0] = a0; d[1] = a1; d[2] = a2; d[3] = a3; d[4] = a4; d[5] = a5; d[6] = a6; d[7] = a7
                                        j += 8
                                    }
                                    while j < len {
                                        var a = b
                                        for t in 0..<taps { a += tapWeights[t] * base[tapOffsets[t] + j] }
                                        acc[j] = a
                                        j += 1
                                    }
                                    for r in 0..<rows {
                                        let a = acc + r * rowLength, d = dst + (r0 + r) * wo
                                        switch activation {
                                        case .identity: d.update(from: a, count: wo)
                                        case .relu: for i in 0..<wo { d[i] = max(a[i], 0) }
                                        case .relu6: for i in 0..<wo { d[i] = min(max(a[i], 0), 6) }
                                        }
                                    }
                                    r0 += rows
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
