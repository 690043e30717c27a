import CKernels

/// Pointwise (1×1, stride 1, unpadded) convolutions on our own kernels (`Sources/CKernels`)
/// instead of one OpenBLAS sgemm per image.
///
/// Why: with K = 24-144 input channels each output element costs only 48-288 FLOPs, so these
/// convolutions are bound by memory traffic and, on OpenBLAS, by per-call packing and thread
/// start-up (16 calls per batch, each an OpenBLAS parallel region). Here one image's `C×HW` slab
/// is the operand where it lies (packed 256 columns at a time, the next block prefetched while
/// one computes), the work is split over (image, column chunk) units on our own threads, and the
/// backward pass reads the output gradient once for both gradients (dX = Wᵀ·dY and dW += dY·Xᵀ
/// on the same L2-resident column block).
///
/// Determinism: every output element of the forward pass and of dX is one fixed-order sum, and
/// dW is summed per unit and then over units in unit order, where the units depend only on the
/// geometry. So results are bit-identical for any thread count.
enum PointwiseConv {
    /// Measured range (K = 24-240 in EfficientNet); wider layers stay on OpenBLAS, whose blocked
    /// k loop suits large K better than our single pass over a K × 256 panel.
    static let maxChannelsPerGroup = 256

    /// 64-byte aligned scratch for the packed panels (the AVX2 kernels use aligned loads on it).
    static func allocateScratch(floats: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: Swift.max(floats, 16) * 4, alignment: 64).bindMemory(to: Float.self, capacity: floats)
    }

    static func applies(_ g: ConvGeometry) -> Bool {
        g.isPointwise && !g.isDepthwise && g.inPerGroup <= maxChannelsPerGroup && g.outPerGroup <= maxChannelsPerGroup
    }

    /// Column chunks per image: enough units to keep every core busy even at batch 1, chosen from
    /// the geometry alone (never from the thread count) so the dW summation order is fixed.
    /// Chunk widths are multiples of 16 except the last.
    static func columnChunks(_ g: ConvGeometry) -> [Range<Int>] {
        let hw = g.height * g.width, images = g.batch * g.groups
        let wanted = Swift.max(1, Swift.min((8 + images - 1) / images, hw / 1024))
        let width = Swift.max(16, ((hw + wanted - 1) / wanted + 15) / 16 * 16)
        return stride(from: 0, to: hw, by: width).map { $0..<Swift.min($0 + width, hw) }
    }

    static func forward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        output: UnsafeMutablePointer<Float>) {
        let hw = g.height * g.width, chunks = columnChunks(g)
        let units = g.batch * g.groups * chunks.count
        let scratchFloats = kdad_gemm_nn_smallk_scratch_floats(g.outPerGroup, g.inPerGroup)
        Parallel.forRange(units) { range in
            let panel = allocateScratch(floats: scratchFloats)
            defer { panel.deallocate() }
            for unit in range {
                let image = unit / (g.groups * chunks.count), grp = (unit / chunks.count) % g.groups
                let cols = chunks[unit % chunks.count]
                let src = input + (image * g.inChannels + grp * g.inPerGroup) * hw + cols.lowerBound
                let dst = output + (image * g.outChannels + grp * g.outPerGroup) * hw + cols.lowerBound
                kdad_gemm_nn_smallk(g.outPerGroup, cols.count, g.inPerGroup,
                                    weight + grp * g.outPerGroup * g.inPerGroup, g.inPerGroup,
                                    src, hw, dst, hw, panel)
            }
        }
    }

    /// Both gradients (either may be skipped) from one pass over the output gradient.
    /// `weight` is needed for dX only, `input` for dW only.
    static func backward(_ g: ConvGeometry, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                         input: UnsafePointer<Float>?, gradInput: UnsafeMutablePointer<Float>?,
                         gradWeight: UnsafeMutablePointer<Float>?) {
        precondition((gradWeight == nil) == (input == nil), "PointwiseConv.backward: dW needs the input")
        precondition(gradInput == nil || weight != nil, "PointwiseConv.backward: dX needs the weight")
        let hw = g.height * g.width, chunks = columnChunks(g)
        let cin = g.inPerGroup, cout = g.outPerGroup, perGroup = cin * cout
        let units = g.batch * g.groups * chunks.count
        // Wᵀ per group ([Cin × Cout]), so dX uses the same small-K kernel as the forward pass.
        let transposed = UnsafeMutablePointer<Float>.allocate(capacity: gradInput == nil ? 0 : g.groups * perGroup)
        defer { transposed.deallocate() }
        if gradInput != nil, let weight {
            for grp in 0..<g.groups {
                let w = weight + grp * perGroup, t = transposed + grp * perGroup
                for o in 0..<cout { for i in 0..<cin { t[i * cout + o] = w[o * cin + i] } }
            }
        }
        // One dW partial per unit, summed in unit order afterwards.
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: gradWeight == nil ? 0 : units * perGroup)
        defer { partials.deallocate() }
        let scratchFloats = kdad_pointwise_backward_scratch_floats(cin, cout)
        Parallel.forRange(units) { range in
            let panels = allocateScratch(floats: scratchFloats)
            defer { panels.deallocate() }
            for unit in range {
                let image = unit / (g.groups * chunks.count), grp = (unit / chunks.count) % g.groups
                let cols = chunks[unit % chunks.count]
                let dy = gradOutput + (image * g.outChannels + grp * cout) * hw + cols.lowerBound
                let x = input.map { $0 + (image * g.inChannels + grp * cin) * hw + cols.lowerBound }
                let dx = gradInput.map { $0 + (image * g.inChannels + grp * cin) * hw + cols.lowerBound }
                let partial: UnsafeMutablePointer<Float>? = gradWeight == nil ? nil : partials + unit * perGroup
                partial?.update(repeating: 0, count: perGroup)
                kdad_pointwise_backward(cin, cout, cols.count, transposed + grp * perGroup, dy, x, hw, dx, partial,
                                        panels)
            }
        }
        guard let gradWeight else { return }
        let perImage = chunks.count
        Parallel.forRange(g.groups * perGroup, grain: 256) { range in
            for e in range {
                let grp = e / perGroup, offset = e % perGroup
                var s: Float = 0
                for image in 0..<g.batch {
                    for chunk in 0..<perImage {
                        s += partials[((image * g.groups + grp) * perImage + chunk) * perGroup + offset]
                    }
                }
                gradWeight[e] = s
            }
        }
    }
}

extension PointwiseConv {
    /// Runs `body` with the portable C loops instead of the AVX2 kernels (tests check both paths).
    /// Not thread-safe: the switch is process-wide, so only call it where nothing else convolves.
    static func withPortableKernels<R>(_ body: () throws -> R) rethrows -> R {
        kdad_kernels_force_portable(1)
        defer { kdad_kernels_force_portable(0) }
        return try body()
    }

    /// Whether the AVX2+FMA kernels run (false on CPUs without them, or when forced portable).
    static var usesAVX2: Bool { kdad_kernels_use_avx2() != 0 }
}
