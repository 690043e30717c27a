// Matrix-product kernels for pointwise (1×1) convolutions, where OpenBLAS spends most of its time
// packing and threading: K (input channels) is 24-144, so each output element costs only 48-288
// FLOPs and the run is bound by memory traffic and per-call overheads. These kernels take one
// image's C×HW slab as the operand where it lies, pack it in 256-column blocks (prefetching the
// next block while computing this one) and keep the output tile in registers.
// (dW reads X unpacked when X is the operand with more channels: see nt_raw.)
//
// AVX2+FMA versions are selected at run time; the portable loops are the fallback and the
// reference. Each output element is accumulated in a fixed order (no dependence on how the caller
// splits columns or images), so results are bit-identical for any thread count.

#include "CKernels.h"
#include <string.h>
#include <stdint.h>
#include <stdlib.h>

#define KDAD_BLOCK KDAD_PANEL_COLUMNS
// Prefetch the next block's source rows while computing this one (0 disables, for A/B runs).
#ifndef KDAD_PREFETCH_NEXT
#define KDAD_PREFETCH_NEXT 1
#endif
#ifndef KDAD_PREFETCH_ROWS
#define KDAD_PREFETCH_ROWS 4
#endif

// X rows ahead of the current pair that nt_raw prefetches (2-16 measured alike).
#ifndef KDAD_RAW_AHEAD
#define KDAD_RAW_AHEAD 6
#endif

// k steps of a tile between two prefetch_some calls.
#ifndef KDAD_PREFETCH_STEP
#define KDAD_PREFETCH_STEP 12
#endif

#if defined(__x86_64__) || defined(__i386__)
#define KDAD_X86 1
#include <immintrin.h>
#endif

static int force_portable = 0;

void kdad_kernels_force_portable(int force) { force_portable = force; }

int kdad_kernels_use_avx2(void) {
#if KDAD_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached && !force_portable;
#else
    return 0;
#endif
}

// MARK: portable reference

static void nn_portable(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                        const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    for (ptrdiff_t i = 0; i < m; i++) {
        float *crow = c + i * ldc;
        for (ptrdiff_t j = 0; j < n; j++) crow[j] = 0;
        for (ptrdiff_t p = 0; p < k; p++) {
            const float av = a[i * lda + p];
            const float *brow = b + p * ldb;
            for (ptrdiff_t j = 0; j < n; j++) crow[j] += av * brow[j];
        }
    }
}

static void nt_portable(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                        const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc) {
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            const float *ar = a + i * lda, *br = b + j * ldb;
            float s = 0;
            for (ptrdiff_t p = 0; p < k; p++) s += ar[p] * br[p];
            c[i * ldc + j] += s;
        }
    }
}

static void backward_portable(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t n, const float *wt, const float *dy,
                              const float *x, ptrdiff_t ld, float *dx, float *dw) {
    if (dx) nn_portable(cin, n, cout, wt, cout, dy, ld, dx, ld);
    if (dw) nt_portable(cout, cin, n, dy, ld, x, ld, dw, cin);
}

#if KDAD_X86

// MARK: AVX2 kernels on packed panels
//
// B operands are packed into "strip-major" panels: for a k × w block (w a multiple of 16, the
// tail padded with zeros), panel[s·k·16 + p·16 + j] = B[p, 16·s + j]. Unpacked, the rows of one
// image's C×HW slab lie HW floats apart (16 KiB at 64²), so the k rows of a 16-column strip all
// fall into the same L1/L2 cache sets and evict each other; packed, a strip is k·64 contiguous
// bytes. Zero padding makes tails exact (0·0 adds nothing to a dot product).

enum { NN_MR = 6, NR = 16 };

#define KDAD_AVX2 __attribute__((target("avx2,fma")))

/// Packs columns [0, w) of B[k × ld] into a strip-major panel with ceil(w/16) strips. Row by
/// row, so each source row is read as one contiguous run (k parallel strided streams defeat the
/// hardware prefetcher when k is 100+).
static void pack_panel(ptrdiff_t k, ptrdiff_t w, const float *b, ptrdiff_t ldb, float *panel) {
    const ptrdiff_t full = w / NR, rest = w - full * NR;
    for (ptrdiff_t p = 0; p < k; p++) {
        const float *src = b + p * ldb;
        float *dst = panel + p * NR;
        if (p + KDAD_PREFETCH_ROWS < k) {
            // Rows are only w·4 bytes long: too short for the hardware prefetcher to ramp up.
            const char *ahead = (const char *)(src + KDAD_PREFETCH_ROWS * ldb);
            for (ptrdiff_t off = 0; off < w * (ptrdiff_t)sizeof(float); off += 64) __builtin_prefetch(ahead + off, 0, 0);
        }
        for (ptrdiff_t s = 0; s < full; s++) memcpy(dst + s * k * NR, src + s * NR, NR * sizeof(float));
        if (rest) {
            float *d = dst + full * k * NR;
            for (ptrdiff_t j = 0; j < NR; j++) d[j] = j < rest ? src[full * NR + j] : 0;
        }
    }
}

/// Packs A[m × k] into row blocks of 6, k-major: ap[(blk·k + p)·6 + r] = A[6·blk + r, p] (rows
/// past m are zero). A tile's 6 broadcasts per k step then come from one 24-byte run at fixed
/// offsets from one pointer, instead of 6 rows lda apart (fewer address µops in the FMA loop).
static void pack_a(ptrdiff_t m, ptrdiff_t k, const float *a, ptrdiff_t lda, float *ap) {
    for (ptrdiff_t blk = 0; blk * NN_MR < m; blk++) {
        float *dst = ap + blk * k * NN_MR;
        for (ptrdiff_t p = 0; p < k; p++) {
            for (ptrdiff_t r = 0; r < NN_MR; r++) {
                const ptrdiff_t row = blk * NN_MR + r;
                dst[p * NN_MR + r] = row < m ? a[row * lda + p] : 0;
            }
        }
    }
}

/// The source block the caller packs next (k rows × w floats, leading dimension ld), fetched
/// into L2 while this block computes, so the memory reads overlap the FMAs instead of stalling
/// the next pack_panel. The lines are spread evenly over the tiles' k loops (a few every
/// KDAD_PREFETCH_STEP k steps): issued as one burst of ~36 lines per tile (144→24 forward), the
/// prefetches (likely) held the L1 miss buffers that the tile's own panel loads from L2 need.
/// Measured in a C harness, 144→24 @64² forward, batch 16 on 2 threads at load 5-6, CPU ms per
/// thread, best of 15 per run, 4 alternating runs: burst 4.23-4.46, spread every 12 steps
/// 3.79-4.04 (every 6: 3.80-4.21, every 24: 3.86-4.05); bit-identical outputs.
typedef struct { const float *src; ptrdiff_t ld, linesPerRow, lines, done, perStep; } prefetch_plan;

/// A plan spreading the k × w block at `src` over `steps` calls of prefetch_some (none if src is NULL).
static prefetch_plan make_prefetch_plan(const float *src, ptrdiff_t k, ptrdiff_t w, ptrdiff_t ld, ptrdiff_t steps) {
    prefetch_plan plan = {0};
    if (src && w > 0 && k > 0) {
        plan.src = src; plan.ld = ld; plan.linesPerRow = (w + 15) / 16;
        plan.lines = k * plan.linesPerRow; plan.perStep = (plan.lines + steps - 1) / steps;
    }
    return plan;
}

static inline __attribute__((always_inline)) void prefetch_some(prefetch_plan *pf) {
    if (!pf->src) return;
    const ptrdiff_t end = pf->done + pf->perStep < pf->lines ? pf->done + pf->perStep : pf->lines;
    for (ptrdiff_t l = pf->done; l < end; l++)
        __builtin_prefetch(pf->src + (l / pf->linesPerRow) * pf->ld + (l % pf->linesPerRow) * 16, 0, 2);
    pf->done = end;
}

/// One tile: `rows` (≤ 6) rows of C × one 16-column packed strip, the whole k sum in 12 ymm
/// accumulators (one FMA chain per element, k increasing). `cols` < 16 only for the last strip
/// (stored through a scratch tile). prefetch_some(pf) runs every KDAD_PREFETCH_STEP k steps:
/// the k loop is split rather than given a branch, which cost 50-90% more CPU when tried.
/// (Chunks of equal length, k·c/chunks, measured ~20% slower than 12,12,…,rest: not kept.)
/// Plain stores: non-temporal ones were measured slower on this VM in every case (24→144 @64²
/// forward 3.3 → 5.3 ms CPU per thread), so there are none.
static inline __attribute__((always_inline)) KDAD_AVX2
void nn_tile(int rows, ptrdiff_t k, const float *ap, const float *strip, float *c, ptrdiff_t ldc, ptrdiff_t cols,
             prefetch_plan *pf) {
    __m256 acc0[NN_MR], acc1[NN_MR];
    for (int r = 0; r < NN_MR; r++) { acc0[r] = _mm256_setzero_ps(); acc1[r] = _mm256_setzero_ps(); }
    for (ptrdiff_t p0 = 0; p0 < k; p0 += KDAD_PREFETCH_STEP) {
        const ptrdiff_t p1 = k - p0 < KDAD_PREFETCH_STEP ? k : p0 + KDAD_PREFETCH_STEP;
        prefetch_some(pf);
        for (ptrdiff_t p = p0; p < p1; p++) {
            const __m256 b0 = _mm256_load_ps(strip + p * NR), b1 = _mm256_load_ps(strip + p * NR + 8);
            for (int r = 0; r < rows; r++) {
                const __m256 av = _mm256_broadcast_ss(ap + p * NN_MR + r);
                acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
            }
        }
    }
    if (cols == NR) {
        for (int r = 0; r < rows; r++) {
            _mm256_storeu_ps(c + r * ldc, acc0[r]); _mm256_storeu_ps(c + r * ldc + 8, acc1[r]);
        }
    } else {
        float tile[NR];
        for (int r = 0; r < rows; r++) {
            _mm256_storeu_ps(tile, acc0[r]); _mm256_storeu_ps(tile + 8, acc1[r]);
            memcpy(c + r * ldc, tile, (size_t)cols * sizeof(float));
        }
    }
}

static inline __attribute__((always_inline)) KDAD_AVX2
void nn_rows(int rows, ptrdiff_t w, ptrdiff_t k, const float *ap, const float *panel, float *c, ptrdiff_t ldc,
             prefetch_plan *pf) {
    for (ptrdiff_t j = 0; j < w; j += NR) {
        const ptrdiff_t cols = w - j < NR ? w - j : NR;
        nn_tile(rows, k, ap, panel + (j / NR) * k * NR, c + j, ldc, cols, pf);
    }
}

/// C[m × w] = A · panel (w columns, packed; A packed by pack_a). Row blocks outermost: each block
/// of 6 output rows is written as 6 contiguous runs of w floats (6 write streams). Strip-outer
/// order wrote all m rows 64 bytes at a time: m streams HW·4 bytes apart, which alias in L1 and
/// defeat write combining (measured: 24→144 @64² forward 4.5 → 3.6 ms CPU per thread).
/// `next` (k rows × nextW floats, leading dimension nextLd; may be NULL) is prefetched meanwhile.
static KDAD_AVX2 void nn_panel(ptrdiff_t m, ptrdiff_t w, ptrdiff_t k, const float *ap, const float *panel,
                               float *c, ptrdiff_t ldc, const float *next, ptrdiff_t nextK, ptrdiff_t nextW,
                               ptrdiff_t nextLd) {
    const ptrdiff_t steps = ((m + NN_MR - 1) / NN_MR) * ((w + NR - 1) / NR) * ((k + KDAD_PREFETCH_STEP - 1) / KDAD_PREFETCH_STEP);
    prefetch_plan plan = make_prefetch_plan(next, nextK, nextW, nextLd, steps);
    prefetch_plan *pf = &plan;
    ptrdiff_t i = 0;
    for (; i + NN_MR <= m; i += NN_MR) nn_rows(NN_MR, w, k, ap + i * k, panel, c + i * ldc, ldc, pf);
    const float *ai = ap + i * k;
    float *ci = c + i * ldc;
    switch (m - i) {  // constant row counts so the tile's loops unroll into registers
    case 5: nn_rows(5, w, k, ai, panel, ci, ldc, pf); break;
    case 4: nn_rows(4, w, k, ai, panel, ci, ldc, pf); break;
    case 3: nn_rows(3, w, k, ai, panel, ci, ldc, pf); break;
    case 2: nn_rows(2, w, k, ai, panel, ci, ldc, pf); break;
    case 1: nn_rows(1, w, k, ai, panel, ci, ldc, pf); break;
    default: break;
    }
}

static KDAD_AVX2 void nn_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                              const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, float *scratch) {
    float *panel = scratch, *ap = scratch + KDAD_BLOCK * k;
    pack_a(m, k, a, lda, ap);
    // Blocks of 256 columns: each of the k source rows is read as 1 KiB runs (prefetch-friendly),
    // and the packed k × 256 panel stays in L2 while every row block of C reads it.
    for (ptrdiff_t j0 = 0; j0 < n; j0 += KDAD_BLOCK) {
        const ptrdiff_t w = n - j0 < KDAD_BLOCK ? n - j0 : KDAD_BLOCK;
        pack_panel(k, w, b + j0, ldb, panel);
        const ptrdiff_t nextW = n - j0 - w < KDAD_BLOCK ? n - j0 - w : KDAD_BLOCK;
        nn_panel(m, w, k, ap, panel, c + j0, ldc, KDAD_PREFETCH_NEXT ? b + j0 + w : NULL, k, nextW, ldb);
    }
}

static inline __attribute__((always_inline)) KDAD_AVX2 float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 6 × 2 tiles: 12 accumulators + 2 vectors of the big panel + 1 of the small one = 15 ymm.
enum { NT_SMALL = 6, NT_BIG = 2 };

/// ns × nb (≤ 6 × 2) dot products over all strips between rows of the small panel S (row r of
/// strip t: 16 floats at s + t·sstride + r·16) and rows of the big operand G (row q of strip t:
/// 16 floats at g + t·gstride + q·gq: a packed panel, or X where it lies, see nt_raw); element
/// (r, q) is added to c[r·ldcs + q·ldcb]. Each element is one 8-lane FMA chain over strips then
/// halves, reduced by hsum — the same order whichever operand is the small one or packed.
static inline __attribute__((always_inline)) KDAD_AVX2
void nt_tile(int ns, int nb, ptrdiff_t strips, const float *s, ptrdiff_t sstride, const float *g, ptrdiff_t gstride,
             ptrdiff_t gq, float *c, ptrdiff_t ldcs, ptrdiff_t ldcb) {
    __m256 acc[NT_SMALL][NT_BIG];
    for (int r = 0; r < NT_SMALL; r++) for (int q = 0; q < NT_BIG; q++) acc[r][q] = _mm256_setzero_ps();
    for (ptrdiff_t st = 0; st < strips; st++) {
        const float *ss = s + st * sstride, *gs = g + st * gstride;
        for (int h = 0; h < NR; h += 8) {
            __m256 gv[NT_BIG];
            for (int q = 0; q < nb; q++) gv[q] = _mm256_loadu_ps(gs + q * gq + h);
            for (int r = 0; r < ns; r++) {
                const __m256 sv = _mm256_load_ps(ss + r * NR + h);
                for (int q = 0; q < nb; q++) acc[r][q] = _mm256_fmadd_ps(sv, gv[q], acc[r][q]);
            }
        }
    }
    for (int r = 0; r < ns; r++) for (int q = 0; q < nb; q++) c[r * ldcs + q * ldcb] += hsum(acc[r][q]);
}

/// nt_tile with the tile size as compile-time constants (ns ≤ 6, nb ≤ 2), so the accumulators stay
/// in registers; one switch for both callers.
static inline __attribute__((always_inline)) KDAD_AVX2
void nt_tile_sized(int ns, int nb, ptrdiff_t strips, const float *s, ptrdiff_t sstride, const float *g, ptrdiff_t gstride,
                   ptrdiff_t gq, float *c, ptrdiff_t ldcs, ptrdiff_t ldcb) {
#define NT_CASE(S, B) case (S) * 4 + (B): nt_tile(S, B, strips, s, sstride, g, gstride, gq, c, ldcs, ldcb); break;
    switch (ns * 4 + nb) {
    NT_CASE(6, 2) NT_CASE(6, 1) NT_CASE(5, 2) NT_CASE(5, 1) NT_CASE(4, 2) NT_CASE(4, 1)
    NT_CASE(3, 2) NT_CASE(3, 1) NT_CASE(2, 2) NT_CASE(2, 1) NT_CASE(1, 2) NT_CASE(1, 1)
    default: break;
    }
#undef NT_CASE
}

/// C[ma × mb] += PA · PBᵀ for panels PA (ma rows) and PB (mb rows) with `strips` strips each.
/// The panel with fewer rows takes the tile's 6 side and stays in L1 across a row of tiles; the
/// other is streamed from L2 once per 6 of its partner's rows (the previous 4 × 3 tiles streamed
/// the big panel ⌈small/3⌉ times: twice the L2 traffic for 24 and 144 channels).
/// `pf0`, `pf1`: blocks to prefetch meanwhile (the next dY and X blocks; plans may be empty).
static KDAD_AVX2 void nt_panels(ptrdiff_t ma, ptrdiff_t mb, ptrdiff_t strips, const float *pa, const float *pb,
                                float *c, ptrdiff_t ldc, prefetch_plan *pf0, prefetch_plan *pf1) {
    const int aIsSmall = ma <= mb;
    const ptrdiff_t msmall = aIsSmall ? ma : mb, mbig = aIsSmall ? mb : ma;
    const float *ps = aIsSmall ? pa : pb, *pg = aIsSmall ? pb : pa;
    const ptrdiff_t ldcs = aIsSmall ? ldc : 1, ldcb = aIsSmall ? 1 : ldc;
    for (ptrdiff_t i = 0; i < msmall; i += NT_SMALL) {
        const int ns = msmall - i < NT_SMALL ? (int)(msmall - i) : NT_SMALL;
        for (ptrdiff_t j = 0; j < mbig; j += NT_BIG) {
            const int nb = mbig - j < NT_BIG ? (int)(mbig - j) : NT_BIG;
            const float *si = ps + i * NR, *gj = pg + j * NR;
            float *cij = c + i * ldcs + j * ldcb;
            prefetch_some(pf0); prefetch_some(pf1);
            nt_tile_sized(ns, nb, strips, si, msmall * NR, gj, mbig * NR, NR, cij, ldcs, ldcb);
        }
    }
}

/// dW[ms × mb] += PS · Xᵀ with X read where it lies instead of from a packed panel (X: mb rows
/// of `strips`·16 floats, leading dimension ld), for layers where X has the most channels (the
/// big operand, 144→24 projections). Along a row of X a tile's strips are contiguous, so a tile
/// reads its 2 X rows as two 1 KiB runs: no set conflicts, and no pack (a copy of the 147 KiB
/// block through L3 and L2 per 256 columns). X rows run outermost, so a tile's 2 rows stay in L1
/// for the ⌈ms/6⌉ tiles that use them and X is read from memory once; meanwhile rows
/// KDAD_RAW_AHEAD ahead (past the end: the next block's, `next`, nextW floats wide) are prefetched,
/// a part per tile, so X streams in without stalls. Measured (C harness, 144→24 @64², batch 16
/// on 2 threads, CPU ms per thread, best of 15-20, alternating runs at load 2.5-3): dX+dW 7.2-7.4
/// → 6.3-6.7, dW alone 4.7 → 3.9-4.0. Same FMA order per element as nt_panels: bit-identical.
static KDAD_AVX2 void nt_raw(ptrdiff_t ms, ptrdiff_t mb, ptrdiff_t strips, const float *ps, const float *x,
                             ptrdiff_t ld, float *c, ptrdiff_t ldc, const float *next, ptrdiff_t nextW,
                             prefetch_plan *pf) {
    const ptrdiff_t linesThis = strips, linesNext = (nextW + NR - 1) / NR;
    const ptrdiff_t tilesPerRowPair = (ms + NT_SMALL - 1) / NT_SMALL;
    for (ptrdiff_t j = 0; j < mb; j += NT_BIG) {
        const int nb = mb - j < NT_BIG ? (int)(mb - j) : NT_BIG;
        const float *gj = x + j * ld;
        // The rows KDAD_RAW_AHEAD ahead of this pair (of this block, else of the next one).
        const float *pfRow[NT_BIG];
        ptrdiff_t pfLines[NT_BIG];
        for (int q = 0; q < NT_BIG; q++) {
            const ptrdiff_t t = j + KDAD_RAW_AHEAD + q;
            if (t < mb) { pfRow[q] = x + t * ld; pfLines[q] = linesThis; }
            else if (next && t - mb < mb) { pfRow[q] = next + (t - mb) * ld; pfLines[q] = linesNext; }
            else { pfRow[q] = NULL; pfLines[q] = 0; }
        }
        const ptrdiff_t total = pfLines[0] + pfLines[1], perTile = (total + tilesPerRowPair - 1) / tilesPerRowPair;
        ptrdiff_t done = 0;
        for (ptrdiff_t i = 0; i < ms; i += NT_SMALL) {
            const int ns = ms - i < NT_SMALL ? (int)(ms - i) : NT_SMALL;
            const ptrdiff_t end = done + perTile < total ? done + perTile : total;
            for (; done < end; done++) {
                const int q = done < pfLines[0] ? 0 : 1;
                __builtin_prefetch(pfRow[q] + (q ? done - pfLines[0] : done) * NR, 0, 3);
            }
            prefetch_some(pf);
            const float *si = ps + i * NR;
            float *cij = c + i * ldc + j;
            nt_tile_sized(ns, nb, strips, si, ms * NR, gj, NR, ld, cij, ldc, 1);
        }
    }
}

static KDAD_AVX2 void backward_avx2(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t n, const float *wt, const float *dy,
                                    const float *x, ptrdiff_t ld, float *dx, float *dw, float *scratch) {
    const ptrdiff_t block = KDAD_BLOCK;
    float *pdy = scratch, *px = scratch + cout * block, *ap = px + cin * block;
    if (dx) pack_a(cin, cout, wt, cout, ap);
    for (ptrdiff_t j0 = 0; j0 < n; j0 += block) {
        const ptrdiff_t w = n - j0 < block ? n - j0 : block, strips = (w + NR - 1) / NR;
        // dY's block is packed once and read by both gradients while it sits in L2.
        pack_panel(cout, w, dy + j0, ld, pdy);
        const ptrdiff_t nextW = n - j0 - w < block ? n - j0 - w : block;
        if (dx) nn_panel(cin, w, cout, ap, pdy, dx + j0, ld, KDAD_PREFETCH_NEXT ? dy + j0 + w : NULL, cout, nextW, ld);
        if (dw && cout <= cin && w % NR == 0) {
            // X is the big operand: read in place (nt_raw). A partial last strip (w % 16 ≠ 0)
            // would read past the block, so such blocks take the packed path below.
            const ptrdiff_t tiles = ((cout + NT_SMALL - 1) / NT_SMALL) * ((cin + NT_BIG - 1) / NT_BIG);
            prefetch_plan nextDY = make_prefetch_plan(KDAD_PREFETCH_NEXT && !dx ? dy + j0 + w : NULL, cout, nextW, ld, tiles);
            nt_raw(cout, cin, strips, pdy, x + j0, ld, dw, cin, KDAD_PREFETCH_NEXT && nextW > 0 ? x + j0 + w : NULL, nextW,
                   &nextDY);
        } else if (dw) {
            pack_panel(cin, w, x + j0, ld, px);
            // The next X block always, the next dY block unless the dX pass fetched it already.
            const ptrdiff_t small = cout < cin ? cout : cin, big = cout < cin ? cin : cout;
            const ptrdiff_t tiles = ((small + NT_SMALL - 1) / NT_SMALL) * ((big + NT_BIG - 1) / NT_BIG);
            prefetch_plan nextX = make_prefetch_plan(KDAD_PREFETCH_NEXT ? x + j0 + w : NULL, cin, nextW, ld, tiles);
            prefetch_plan nextDY = make_prefetch_plan(KDAD_PREFETCH_NEXT && !dx ? dy + j0 + w : NULL, cout, nextW, ld, tiles);
            nt_panels(cout, cin, strips, pdy, px, dw, cin, &nextX, &nextDY);
        }
    }
}

#endif  // KDAD_X86

ptrdiff_t kdad_gemm_nn_smallk_scratch_floats(ptrdiff_t m, ptrdiff_t k) {
    return (ptrdiff_t)KDAD_PANEL_COLUMNS * k + (m + 5) / 6 * 6 * k;
}

ptrdiff_t kdad_pointwise_backward_scratch_floats(ptrdiff_t cin, ptrdiff_t cout) {
    return (ptrdiff_t)KDAD_PANEL_COLUMNS * (cin + cout) + (cin + 5) / 6 * 6 * cout;
}

void kdad_gemm_nn_smallk(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                         const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, float *scratch) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { for (ptrdiff_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float)); return; }
#if KDAD_X86
    if (kdad_kernels_use_avx2() && ((uintptr_t)scratch & 63) == 0) { nn_avx2(m, n, k, a, lda, b, ldb, c, ldc, scratch); return; }
#endif
    nn_portable(m, n, k, a, lda, b, ldb, c, ldc);
}

void kdad_pointwise_backward(ptrdiff_t cin, ptrdiff_t cout, ptrdiff_t n, const float *wt, const float *dy,
                             const float *x, ptrdiff_t ld, float *dx, float *dw, float *scratch) {
    if (n <= 0 || cin <= 0 || cout <= 0) return;
#if KDAD_X86
    if (kdad_kernels_use_avx2() && ((uintptr_t)scratch & 63) == 0) { backward_avx2(cin, cout, n, wt, dy, x, ld, dx, dw, scratch); return; }
#endif
    backward_portable(cin, cout, n, wt, dy, x, ld, dx, dw);
}
