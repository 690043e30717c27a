import COpenBLAS
import Foundation
import KdadTensor

/// Carries a loop body into `concurrentPerform`; every chunk writes only its own output range.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
}

/// How KdadNN's inference kernels use threads.
public enum InferenceThreading {
    /// True inside an image-parallel worker: that worker's kernels run on its own thread only.
    @TaskLocal static var serial = false
    /// Benchmarks only: run the fused path's convolutions through KdadTensor's `conv2d` (then one
    /// bias/residual/activation pass) instead of KdadNN's kernels, to measure what they gain.
    @TaskLocal public static var engineKernelsOnly = false

    /// Runs `body(worker)` for `workers` workers concurrently, each with serial kernels and OpenBLAS
    /// limited to one thread. OpenBLAS's thread count is process-wide: it is restored afterwards, and
    /// tensor-engine GEMMs issued by other threads meanwhile run single-threaded (slower, still correct).
    static func imageParallel(workers: Int, _ body: (Int) -> Void) {
        let restore = TensorRuntime.threadCount
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(restore)) }
        // Task-locals bound by the caller are not visible on the GCD worker threads: pass them on.
        let engineOnly = engineKernelsOnly
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(value: body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                // The built-in convolution backend: oneDNN would start an OpenMP team inside each worker
                // (oversubscribing the cores, and its threads spin-wait after each call).
                TensorRuntime.withConvBackend(.builtin) {
                    InferenceThreading.$engineKernelsOnly.withValue(engineOnly) {
                        InferenceThreading.$serial.withValue(true) { box.value(worker) }
                    }
                }
            }
        }
    }
}

enum ParallelLoop {
    /// Runs `body` over `0..<count` in at most `TensorRuntime.threadCount` contiguous chunks of at least `grain`
    /// (inline inside an image-parallel worker).
    static func forRange(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        if InferenceThreading.serial { body(0..<count); return }
        let chunks = min(TensorRuntime.threadCount, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(value: body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let base = count / chunks, extra = count % chunks
                let start = chunk * base + min(chunk, extra)
                box.value(start..<(start + base + (chunk < extra ? 1 : 0)))
            }
        }
    }
}

/// Inference-only (no autograd) operations on fresh tensors: the folded-BN convolution with its bias,
/// residual and activation applied in one pass over the output.
enum InferenceKernels {
    static func conv(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Padding2D, groups: Int,
                     dilation: Int, activation: Activation, residual: Tensor?, profiler: OpProfiler? = nil) -> Tensor {
        let kh = weight.shape[2], kw = weight.shape[3]
        if InferenceThreading.engineKernelsOnly {
            let kind = groups == 1 ? "conv\(kh)x\(kw)" : groups == x.shape[1] ? "depthwise\(kh)x\(kw)" : "grouped\(kh)x\(kw)"
            let out = profiler?.measure("tensor-engine \(kind) s\(stride)") {
                Tensor.conv2d(x, weight: weight, bias: nil, stride: (stride, stride), padding: padding,
                              dilation: (dilation, dilation), groups: groups)
            } ?? Tensor.conv2d(x, weight: weight, bias: nil, stride: (stride, stride), padding: padding,
                               dilation: (dilation, dilation), groups: groups)
            if let profiler {
                profiler.measure("bias+activation pass") {
                    biasActivationInPlace(out, bias: bias, residual: residual, activation: activation)
                }
            } else {
                biasActivationInPlace(out, bias: bias, residual: residual, activation: activation)
            }
            return out
        }
        let depthwise = groups > 1 && groups == x.shape[1] && weight.shape[0] == groups && dilation == 1
            && (stride == 1 || stride == 2) && residual == nil
        if depthwise {
            guard let profiler else {
                return DepthwiseKernel.forward(x, weight: weight, bias: bias, stride: stride, padding: padding, activation: activation)
            }
            let label = "depthwise\(kh)x\(kw) s\(stride) (+bias+act)"
            let out = profiler.measure(label) {
                DepthwiseKernel.forward(x, weight: weight, bias: bias, stride: stride, padding: padding, activation: activation)
            }
            profiler.measure(label, flops: 2 * Double(out.count * kh * kw)) {}
            return out
        }
        let pointwise = kh == 1 && kw == 1 && stride == 1 && groups == 1 && padding == .zero
        if pointwise {
            guard let profiler else {
                return PointwiseKernel.forward(x, weight: weight, bias: bias, residual: residual, activation: activation)
            }
            let label = "conv1x1 s1 (+bias+act\(residual == nil ? "" : "+residual"))"
            let out = profiler.measure(label) {
                PointwiseKernel.forward(x, weight: weight, bias: bias, residual: residual, activation: activation)
            }
            profiler.measure(label, flops: 2 * Double(out.count * x.shape[1])) {}
            return out
        }
        if groups == 1 {
            guard let profiler else {
                return DenseConvKernel.forward(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                               dilation: dilation, residual: residual, activation: activation)
            }
            let label = "conv\(kh)x\(kw) s\(stride) (+bias+act\(residual == nil ? "" : "+residual"))"
            let out = profiler.measure(label) {
                DenseConvKernel.forward(x, weight: weight, bias: bias, stride: stride, padding: padding,
                                        dilation: dilation, residual: residual, activation: activation)
            }
            profiler.measure(label, flops: 2 * Double(out.count * x.shape[1] * kh * kw)) {}
            return out
        }
        guard let profiler else {
            let out = Tensor.conv2d(x, weight: weight, bias: nil, stride: (stride, stride), padding: padding,
                                    dilation: (dilation, dilation), groups: groups)
            biasActivationInPlace(out, bias: bias, residual: residual, activation: activation)
            return out
        }
        let kind = groups == 1 ? (kh == 1 && kw == 1 ? "conv1x1" : "conv\(kh)x\(kw)")
            : groups == x.shape[1] ? "depthwise\(kh)x\(kw)" : "grouped\(kh)x\(kw)"
        let label = "\(kind) s\(stride)"
        let out = profiler.measure(label) {
            Tensor.conv2d(x, weight: weight, bias: nil, stride: (stride, stride), padding: padding,
                          dilation: (dilation, dilation), groups: groups)
        }
        let macs = Double(out.count) * Double(weight.count / weight.shape[0])
        profiler.measure(label, flops: 2 * macs) {}
        profiler.measure("bias+activation" + (residual == nil ? "" : "+residual")) {
            biasActivationInPlace(out, bias: bias, residual: residual, activation: activation)
        }
        return out
    }

    /// out[n, c, :, :] = act(out + bias[c] (+ residual)), in place on a tensor nothing else references yet.
    static func biasActivationInPlace(_ out: Tensor, bias: Tensor, residual: Tensor?, activation: Activation) {
        let n = out.shape[0], c = out.shape[1], plane = out.count / max(n * c, 1)
        if let residual { precondition(residual.shape == out.shape, "residual \(residual.shape) vs output \(out.shape)") }
        bias.withUnsafeBufferPointer { pb in
            out.withUnsafeMutableBufferPointer { po in
                for image in 0..<n {
                    let d = po.baseAddress! + image * c * plane
                    if let residual {
                        residual.withUnsafeBufferPointer { pr in
                            Epilogue.apply(d, planes: c, planeSize: plane, bias: pb.baseAddress!,
                                           residual: pr.baseAddress! + image * c * plane, activation: activation)
                        }
                    } else {
                        Epilogue.apply(d, planes: c, planeSize: plane, bias: pb.baseAddress!, residual: nil, activation: activation)
                    }
                }
            }
        }
    }
}
