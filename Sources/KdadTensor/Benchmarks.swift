import Foundation

/// Timing helpers for `kdad bench tensor` (speed targets live in benchmarks, not in tests).
public enum KernelBenchmarks {
    /// Fastest seconds per call of `body` over `repeats` runs after one warm-up. The minimum, not
    /// the median: on a shared machine other processes only ever add time.
    public static func bestSeconds(repeats: Int, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<Swift.max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times.min()!
    }

    /// GFLOP/s of a raw OpenBLAS sgemm C[m×n] = A[m×k]·B[k×n] (row-major), best of `repeats`.
    public static func sgemmGFLOPS(m: Int, n: Int, k: Int, repeats: Int = 5) -> Double {
        var rng = SplitMix64(seed: 1)
        let a = Tensor.uniform([m, k], rng: &rng), b = Tensor.uniform([k, n], rng: &rng)
        let c = Tensor.uninitialized([m, n])
        let seconds = bestSeconds(repeats: repeats) {
            BLAS.gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.pointer, lda: k, b: b.pointer, ldb: n,
                      beta: 0, c: c.pointer, ldc: n)
        }
        return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    /// Useful FLOPs of one conv2d forward (multiply-adds × 2); backward (data + weight) is twice that.
    public static func conv2dFLOPs(inputShape: [Int], weightShape: [Int], stride: Int, padding: Int, groups: Int) -> Double {
        let ho = (inputShape[2] + 2 * padding - weightShape[2]) / stride + 1
        let wo = (inputShape[3] + 2 * padding - weightShape[3]) / stride + 1
        return 2 * Double(inputShape[0] * weightShape[0] * ho * wo * weightShape[1] * weightShape[2] * weightShape[3])
    }
}
