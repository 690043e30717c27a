import Foundation

extension Tensor {
    /// Matrix product: [M,K]×[K,N] → [M,N], or batched [B,M,K]×[B,K,N] → [B,M,N].
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition((a.rank == 2 && b.rank == 2) || (a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0]),
                     "matmul: \(a.shape) × \(b.shape)")
        let batched = a.rank == 3
        let batch = batched ? a.shape[0] : 1
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        precondition(b.shape[b.rank - 2] == k, "matmul: \(a.shape) × \(b.shape)")
        let out = Tensor.uninitialized(batched ? [batch, m, n] : [m, n])
        for i in 0..<batch {
            BLAS.gemm(transA: false, transB: false, m: m, n: n, k: k, a: a.pointer + i * m * k, lda: k,
                      b: b.pointer + i * k * n, ldb: n, beta: 0, c: out.pointer + i * m * n, ldc: n)
        }
        return result(out, name: "matmul", inputs: [a, b]) { g in
            var ga: Tensor?, gb: Tensor?
            if a.requiresGrad {
                let t = Tensor.uninitialized(a.shape)
                for i in 0..<batch {  // dA = dC · Bᵀ
                    BLAS.gemm(transA: false, transB: true, m: m, n: k, k: n, a: g.pointer + i * m * n, lda: n,
                              b: b.pointer + i * k * n, ldb: n, beta: 0, c: t.pointer + i * m * k, ldc: k)
                }
                ga = t
            }
            if b.requiresGrad {
                let t = Tensor.uninitialized(b.shape)
                for i in 0..<batch {  // dB = Aᵀ · dC
                    BLAS.gemm(transA: true, transB: false, m: k, n: n, k: m, a: a.pointer + i * m * k, lda: k,
                              b: g.pointer + i * m * n, ldb: n, beta: 0, c: t.pointer + i * k * n, ldc: n)
                }
                gb = t
            }
            return [ga, gb]
        }
    }

    /// Batched matrix product (alias of `matmul` on rank-3 tensors).
    public static func bmm(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3, "bmm: \(a.shape) × \(b.shape)")
        return matmul(a, b)
    }

    /// Fully connected layer: x [N, in] · weightᵀ ([out, in], PyTorch layout) + bias [out].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1], "linear: x \(x.shape), weight \(weight.shape)")
        let n = x.shape[0], inF = x.shape[1], outF = weight.shape[0]
        let out = Tensor.uninitialized([n, outF])
        BLAS.gemm(transA: false, transB: true, m: n, n: outF, k: inF, a: x.pointer, lda: inF,
                  b: weight.pointer, ldb: inF, beta: 0, c: out.pointer, ldc: outF)
        if let bias {
            precondition(bias.shape == [outF], "linear: bias \(bias.shape)")
            for r in 0..<n { for j in 0..<outF { out.pointer[r * outF + j] += bias.pointer[j] } }
        }
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return result(out, name: "linear", inputs: inputs) { g in
            var grads: [Tensor?] = []
            if x.requiresGrad {
                let t = Tensor.uninitialized(x.shape)
                BLAS.gemm(transA: false, transB: false, m: n, n: inF, k: outF, a: g.pointer, lda: outF,
                          b: weight.pointer, ldb: inF, beta: 0, c: t.pointer, ldc: inF)
                grads.append(t)
            } else { grads.append(nil) }
            if weight.requiresGrad {
                let t = Tensor.uninitialized(weight.shape)
                BLAS.gemm(transA: true, transB: false, m: outF, n: inF, k: n, a: g.pointer, lda: outF,
                          b: x.pointer, ldb: inF, beta: 0, c: t.pointer, ldc: inF)
                grads.append(t)
            } else { grads.append(nil) }
            if let bias { grads.append(bias.requiresGrad ? Kernels.sumTo(g, [1, outF]).reshapedStorage([outF]) : nil) }
            return grads
        }
    }

    /// Same storage, new shape, no graph (internal helper for gradients).
    func reshapedStorage(_ newShape: [Int]) -> Tensor { Tensor(shape: newShape, storage: storage) }
}
