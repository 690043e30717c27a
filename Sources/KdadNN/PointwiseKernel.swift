import COpenBLAS
import Foundation
import KdadTensor

/// Inference 1×1 convolution (stride 1, no padding) with the folded-BN bias, an optional residual and
/// the activation applied per image right after that image's GEMM, while its output is still in cache
/// (the tensor engine's conv2d computes the whole batch first, then a separate pass would re-read it).
enum PointwiseKernel {
    static func forward(_ x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor?, activation: Activation) -> Tensor {
        let n = x.shape[0], cin = x.shape[1], hw = x.shape[2] * x.shape[3], cout = weight.shape[0]
        precondition(weight.shape == [cout, cin, 1, 1], "pointwise: weight \(weight.shape) for \(cin) input channels")
        let out = Tensor.zeros([n, cout, x.shape[2], x.shape[3]])
        if let residual { precondition(residual.shape == out.shape, "pointwise: residual \(residual.shape) vs \(out.shape)") }
        _ = TensorRuntime.threadCount  // OpenBLAS gets its thread count before the first call
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                bias.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        for image in 0..<n {
                            let dst = po.baseAddress! + image * cout * hw
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(hw), Int32(cin),
                                        1, pw.baseAddress!, Int32(cin), px.baseAddress! + image * cin * hw, Int32(hw),
                                        0, dst, Int32(cout == 0 ? 1 : hw))
                            if let residual {
                                residual.withUnsafeBufferPointer { pr in
                                    Epilogue.apply(dst, planes: cout, planeSize: hw, bias: pb.baseAddress!,
                                                   residual: pr.baseAddress! + image * cout * hw, activation: activation)
                                }
                            } else {
                                Epilogue.apply(dst, planes: cout, planeSize: hw, bias: pb.baseAddress!, residual: nil,
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

/// d = act(d + bias[channel] (+ residual)) over `planes` consecutive channel planes of one image.
enum Epilogue {
    static func apply(_ d: UnsafeMutablePointer<Float>, planes: Int, planeSize: Int, bias: UnsafePointer<Float>,
                      residual: UnsafePointer<Float>?, activation: Activation) {
        let box = UncheckedBox(value: (d, bias, residual))
        ParallelLoop.forRange(planes, grain: max(1, 16384 / max(planeSize, 1))) { range in
            let (d, bias, residual) = box.value
            for p in range {
                let b = bias[p], row = d + p * planeSize
                if let r = residual.map({ $0 + p * planeSize }) {
                    switch activation {
                    case .identity: for i in 0..<planeSize { row[i] = row[i] + b + r[i] }
                    case .relu: for i in 0..<planeSize { row[i] = max(row[i] + b + r[i], 0) }
                    case .relu6: for i in 0..<planeSize { row[i] = min(max(row[i] + b + r[i], 0), 6) }
                    }
                } else {
                    switch activation {
                    case .identity: for i in 0..<planeSize { row[i] += b }
                    case .relu: for i in 0..<planeSize { row[i] = max(row[i] + b, 0) }
                    case .relu6: for i in 0..<planeSize { row[i] = min(max(row[i] + b, 0), 6) }
                    }
                }
            }
        }
    }
}
