#ifndef KDAD_CKERNELS_H
#define KDAD_CKERNELS_H

#include <stddef.h>

/// Columns per packed block (the scratch sizes below are multiples of it).
#define KDAD_PANEL_COLUMNS 256

#ifdef __cplusplus
extern "C" {
#endif

/// Small-K matrix product for pointwise convolutions, one image at a time (row-major, beta = 0):
///   C[m × n] = A[m × k] · B[k × n]
/// with leading dimensions lda, ldb, ldc (in floats). Each output element is a sum over k in
/// increasing order with one FMA chain, so results do not depend on how callers split the columns.
/// `scratch`: 64-byte aligned, `kdad_gemm_nn_smallk_scratch_floats(m, k)` floats (A and blocks
/// of B are packed into it).
void kdad_gemm_nn_smallk(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                         const float *a, ptrdiff_t lda,
                         const float *b, ptrdiff_t ldb,
                         float *c, ptrdiff_t ldc, float *scratch);

/// Scratch floats `kdad_gemm_nn_smallk` needs for an m × k left operand.
ptrdiff_t kdad_gemm_nn_smallk_scratch_floats(ptrdiff_t m, ptrdiff_t k);

/// Both gradients of a pointwise convolution over n pixel columns of one image (and group):
///   dx[cin × n]  = wt[cin × cout] · dy[cout × n]      (wt = Wᵀ; skipped when dx is NULL)
///   dw[cout × cin] += dy[cout × n] · x[cin × n]ᵀ      (skipped when dw is NULL; x may then be NULL)
/// dy, x and dx have leading dimension ld. The columns run in fixed blocks of 256 (each packed
/// once and read by both products while in L2), so the dw sums have a fixed order.
/// `scratch`: 64-byte aligned, `kdad_pointwise_backward_scratch_floats(cin, cout)` floats.
void kdad_pointwise_backward(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t n, const float *wt, const float *dy,
                             const float *x, ptrdiff_t ld, float *dx, float *dw, float *scratch);

/// Scratch floats `kdad_pointwise_backward` needs for these channel counts.
ptrdiff_t kdad_pointwise_backward_scratch_floats(ptrdiff_t cin, ptrdiff_t cout);

/// 1 when the AVX2+FMA kernels run on this CPU, 0 when the portable C loops do.
int kdad_kernels_use_avx2(void);

/// Forces the portable kernels (tests compare both paths); 0 restores runtime dispatch.
void kdad_kernels_force_portable(int force);

#ifdef __cplusplus
}
#endif

#endif
