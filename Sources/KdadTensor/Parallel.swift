import Foundation
import COpenBLAS

/// Thread configuration. GEMM runs on OpenBLAS's own threads; everything else runs in our parallel
/// loops. The two never nest (no parallel loop calls BLAS), so the cores are never oversubscribed.
public enum TensorRuntime {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var configuredThreads = 0

    /// Threads used by parallel loops and OpenBLAS. Defaults to the number of active cores.
    public static var threadCount: Int {
        lock.lock(); defer { lock.unlock() }
        if configuredThreads == 0 {
            configuredThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)
            openblas_set_num_threads(Int32(configuredThreads))
        }
        return configuredThreads
    }

    /// Bytes of freed tensor buffers kept for reuse (default 1 GiB); 0 disables the cache.
    public static var cachedMemoryLimit: Int {
        get { StoragePool.shared.withLock { $0.limitBytes } }
        set { StoragePool.shared.withLock { $0.limitBytes = max(0, newValue) }; if newValue <= 0 { _ = releaseCachedMemory() } }
    }

    /// Bytes currently held in the buffer cache.
    public static var cachedMemory: Int { StoragePool.shared.cachedByteCount }

    /// Returns cached tensor buffers to the system; the result is the number of bytes freed.
    @discardableResult
    public static func releaseCachedMemory() -> Int { StoragePool.shared.drain() }

    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
        lock.lock(); defer { lock.unlock() }
        configuredThreads = count
        openblas_set_num_threads(Int32(count))
    }
}

/// Carries a non-Sendable value (a loop body writing through raw pointers into disjoint ranges)
/// into `concurrentPerform`. Safety argument: every chunk touches only its own output range.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Which implementation runs convolutions. The API is the same; the backend is a speed detail.
public enum ConvBackend: String, Sendable, CaseIterable {
    /// Per-case choice from `kdad bench tensor` measurements (see Docs/tensor.md).
    case automatic
    /// im2col + OpenBLAS sgemm for dense/grouped, direct kernels for depthwise.
    case builtin
    /// oneDNN primitives (falls back to builtin where oneDNN cannot build one).
    case oneDNN
}

extension TensorRuntime {
    @TaskLocal static var convBackendOverride: ConvBackend = .automatic

    /// Runs `body` with convolutions forced onto `backend` (benchmarks and cross-checking tests).
    public static func withConvBackend<R>(_ backend: ConvBackend, _ body: () throws -> R) rethrows -> R {
        try $convBackendOverride.withValue(backend) { try body() }
    }

    public static var convBackend: ConvBackend { convBackendOverride }
}

enum Parallel {
    /// Runs `body` over `0..<count` split into contiguous chunks of at least `grain` items.
    /// Chunk boundaries depend only on `count`, `grain` and the thread count, so any per-chunk
    /// partial results combined in chunk order are reproducible.
    static func forRange(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = TensorRuntime.threadCount
        let chunks = min(threads, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                shared.value(chunkRange(chunk, of: chunks, total: count))
            }
        }
    }

    /// Fixed chunking independent of thread count (for reductions whose partial sums must not
    /// depend on the machine): `chunks` ranges, each run as one work item.
    static func forChunks(_ count: Int, chunks: Int, _ body: (Int, Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = max(1, min(chunks, count))
        if chunks == 1 || TensorRuntime.threadCount == 1 {
            for chunk in 0..<chunks { body(chunk, chunkRange(chunk, of: chunks, total: count)) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                shared.value(chunk, chunkRange(chunk, of: chunks, total: count))
            }
        }
    }

    static func chunkRange(_ chunk: Int, of chunks: Int, total: Int) -> Range<Int> {
        let base = total / chunks, extra = total % chunks
        let start = chunk * base + min(chunk, extra)
        return start..<(start + base + (chunk < extra ? 1 : 0))
    }
}

/// Thin wrappers over OpenBLAS sgemm (row-major).
enum BLAS {
    /// C[m×n] = alpha * op(A) * op(B) + beta * C, row-major with leading dimensions.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = TensorRuntime.threadCount  // make sure OpenBLAS got its thread count
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Raw kernels shared by ops and their backward functions (no graph recording).
enum Kernels {
    static func addSameShape(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
        let out = Tensor.uninitialized(a.shape)
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        Parallel.forRange(a.count, grain: 1 << 15) { range in
            for i in range { po[i] = pa[i] + pb[i] }
        }
        return out
    }

    static func map(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        let out = Tensor.uninitialized(x.shape)
        let px = x.pointer, po = out.pointer
        Parallel.forRange(x.count, grain: 1 << 14) { range in
            for i in range { po[i] = f(px[i]) }
        }
        return out
    }

    static func zip(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.count == b.count, "zip: \(a.shape) vs \(b.shape)")
        let out = Tensor.uninitialized(a.shape)
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        Parallel.forRange(a.count, grain: 1 << 14) { range in
            for i in range { po[i] = f(pa[i], pb[i]) }
        }
        return out
    }

    static func zip3(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
        precondition(a.count == b.count && b.count == c.count, "zip3: \(a.shape) vs \(b.shape) vs \(c.shape)")
        let out = Tensor.uninitialized(a.shape)
        let pa = a.pointer, pb = b.pointer, pc = c.pointer, po = out.pointer
        Parallel.forRange(a.count, grain: 1 << 14) { range in
            for i in range { po[i] = f(pa[i], pb[i], pc[i]) }
        }
        return out
    }
}
