import COpenBLAS
import Foundation
import KdadTensor

/// Inference k×k convolution with groups = 1 (EfficientNet's stem, ResNet's 3×3/7×7): per image an
/// im2col into a scratch matrix, one OpenBLAS `sgemm`, and the bias/residual/activation epilogue
/// while that image's output is in cache. Parallel over im2col rows unless inside an image-parallel
/// worker (then everything stays on the worker's thread).
enum DenseConvKernel {
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Padding2D, dilation: Int,
                        residual: Tensor?, activation: Activation) -> Tensor {
        let n = x.shape[0], cin = x.shape[1], h = x.shape[2], w = x.shape[3]
        let cout = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
        precondition(weight.shape[1] == cin, "dense conv: weight \(weight.shape) for \(cin) input channels")
        let ho = (h + padding.top + padding.bottom - dilation * (kh - 1) - 1) / stride + 1
        let wo = (w + padding.left + padding.right - dilation * (kw - 1) - 1) / stride + 1
        precondition(ho > 0 && wo > 0, "dense conv: empty output for input \(x.shape)")
        let k = cin * kh * kw, howo = ho * wo
        let out = Tensor.zeros([n, cout, ho, wo])
        if let residual { precondition(residual.shape == out.shape, "dense conv: residual \(residual.shape) vs \(out.shape)") }
        _ = TensorRuntime.threadCount
        let col = UnsafeMutablePointer<Float>.allocate(capacity: k * howo)
        defer { col.deallocate() }
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                bias.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        for image in 0..<n {
                            let src = UncheckedBox(value: px.baseAddress! + image * cin * h * w)
                            let dstCol = UncheckedBox(value: col)
                            // col[(c, ky, kx), (oy, ox)] = x[c, oy*s - top + ky*d, ox*s - left + kx*d] or 0.
                            ParallelLoop.forRange(k, grain: 4) { rows in
                                for row in rows {
                                    let c = row / (kh * kw), ky = (row / kw) % kh, kx = row % kw
                                    let plane = src.value + c * h * w, d = dstCol.value + row * howo
                                    for oy in 0..<ho {
                                        let iy = oy * stride - padding.top + ky * dilation
                                        let drow = d + oy * wo
                                        if iy < 0 || iy >= h { drow.update(repeating: 0, count: wo); continue }
                                        let srow = plane + iy * w
                                        for ox in 0..<wo {
                                            let ix = ox * stride - padding.left + kx * dilation
                                            drow[ox] = ix >= 0 && ix < w ? srow[ix] : 0
                                        }
                                    }
                                }
                            }
                            let dst = po.baseAddress! + image * cout * howo
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(howo), Int32(k),
                                        1, pw.baseAddress!, Int32(k), col, Int32(howo), 0, dst, Int32(howo))
                            if let residual {
                                residual.withUnsafeBufferPointer { pr in
                                    Epilogue.apply(dst, planes: cout, planeSize: howo, bias: pb.baseAddress!,
                                                   residual: pr.baseAddress! + image * cout * howo, activation: activation)
                                }
                            } else {
                                Epilogue.apply(dst, planes: cout, planeSize: howo, bias: pb.baseAddress!, residual: nil,
                                               activation: activation)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
