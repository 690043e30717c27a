import Foundation

/// The shape arithmetic of one 2-D convolution (NCHW input, [out, in/groups, kh, kw] weight).
struct ConvGeometry: Hashable {
    var batch, inChannels, height, width: Int
    var outChannels, kernelH, kernelW: Int
    var strideH, strideW: Int
    var padding: Padding2D
    var dilationH, dilationW: Int
    var groups: Int

    var outHeight: Int { (height + padding.top + padding.bottom - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    var outWidth: Int { (width + padding.left + padding.right - dilationW * (kernelW - 1) - 1) / strideW + 1 }
    var inPerGroup: Int { inChannels / groups }
    var outPerGroup: Int { outChannels / groups }
    /// Rows of the im2col matrix for one group.
    var patchSize: Int { inPerGroup * kernelH * kernelW }
    var isDepthwise: Bool { groups > 1 && groups == inChannels }
    /// 1×1, stride 1, unpadded: the input already is the im2col matrix.
    var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padding == .zero
    }
    var inputShape: [Int] { [batch, inChannels, height, width] }
    var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }
    var weightShape: [Int] { [outChannels, inPerGroup, kernelH, kernelW] }
    var flops: Double { 2 * Double(batch * outChannels * outHeight * outWidth * patchSize) }

    /// Output columns `ox` whose input column `ox*stride + offset` lies inside `0..<size`.
    static func validRange(offset: Int, stride: Int, size: Int, outSize: Int) -> Range<Int> {
        // ceil((-offset)/stride) for the first, floor((size-1-offset)/stride) for the last.
        let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let hiInclusive = size - 1 - offset < 0 ? -1 : (size - 1 - offset) / stride
        let hi = Swift.min(hiInclusive + 1, outSize)
        return lo < hi ? lo..<hi : 0..<0
    }
}

/// Raw convolution kernels (no autograd). Dense and grouped convolutions use im2col + sgemm per
/// image, pointwise ones our own kernels (`PointwiseConv`); depthwise convolutions use a direct
/// kernel parallel over planes.
enum ConvKernels {
    // MARK: im2col / col2im for one image and one group

    /// col[K × HoWo] from the `inPerGroup` channels starting at `input`.
    static func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let ho = g.outHeight, wo = g.outWidth, h = g.height, w = g.width
        let k2 = g.kernelH * g.kernelW
        Parallel.forRange(g.patchSize, grain: 4) { rows in
            for row in rows {
                let c = row / k2, ky = (row % k2) / g.kernelW, kx = row % g.kernelW
                let plane = input + c * h * w
                let dst = col + row * ho * wo
                let offX = kx * g.dilationW - g.padding.left
                let valid = ConvGeometry.validRange(offset: offX, stride: g.strideW, size: w, outSize: wo)
                for oy in 0..<ho {
                    let iy = oy * g.strideH - g.padding.top + ky * g.dilationH
                    let d = dst + oy * wo
                    if iy < 0 || iy >= h || valid.isEmpty { d.update(repeating: 0, count: wo); continue }
                    let src = plane + iy * w + offX
                    if valid.lowerBound > 0 { d.update(repeating: 0, count: valid.lowerBound) }
                    if g.strideW == 1 {
                        (d + valid.lowerBound).update(from: src + valid.lowerBound, count: valid.count)
                    } else {
                        for ox in valid { d[ox] = src[ox * g.strideW] }
                    }
                    if valid.upperBound < wo { (d + valid.upperBound).update(repeating: 0, count: wo - valid.upperBound) }
                }
            }
        }
    }

    /// Adds col[K × HoWo] back into the image gradient (the adjoint of im2col).
    static func col2imAdd(_ g: ConvGeometry, col: UnsafePointer<Float>, input: UnsafeMutablePointer<Float>) {
        let ho = g.outHeight, wo = g.outWidth, h = g.height, w = g.width
        let k2 = g.kernelH * g.kernelW
        // Parallel over channels: each channel's rows touch only its own plane.
        Parallel.forRange(g.inPerGroup) { channels in
            for c in channels {
                let plane = input + c * h * w
                for kk in 0..<k2 {
                    let ky = kk / g.kernelW, kx = kk % g.kernelW, row = c * k2 + kk
                    let src = col + row * ho * wo
                    let offX = kx * g.dilationW - g.padding.left
                    let valid = ConvGeometry.validRange(offset: offX, stride: g.strideW, size: w, outSize: wo)
                    if valid.isEmpty { continue }
                    for oy in 0..<ho {
                        let iy = oy * g.strideH - g.padding.top + ky * g.dilationH
                        if iy < 0 || iy >= h { continue }
                        let d = plane + iy * w + offX
                        let s = src + oy * wo
                        if g.strideW == 1 {
                            for ox in valid { d[ox] += s[ox] }
                        } else {
                            for ox in valid { d[ox * g.strideW] += s[ox] }
                        }
                    }
                }
            }
        }
    }

    // MARK: forward

    /// The oneDNN plan to use for this geometry, or nil for the built-in kernels.
    static func oneDNNPlan(_ g: ConvGeometry) -> DNNLConvPlan? {
        let use: Bool
        switch TensorRuntime.convBackend {
        case .builtin: use = false
        case .oneDNN: use = true
        case .automatic: use = prefersOneDNN(g)
        }
        return use ? DNNLRuntime.shared?.plan(for: g) : nil
    }

    /// Measured rule (kdad bench tensor, 2 cores; numbers in Docs/tensor.md): oneDNN's direct
    /// JIT kernels win on dense k×k convolutions in every run, quiet or busy (3×3 64→64 @64²,
    /// batch 16, quiet: 31 vs 41 ms forward). For 1×1 our path (`PointwiseConv`: own kernels, no
    /// im2col, no reorders) beat oneDNN 1.5-6× in every run measured (all on a busy machine); depthwise ties (3×3) or oneDNN wins the forward (5×5) when
    /// quiet, but both lose 1.3-4× whenever the machine is busy, because every oneDNN call adds two
    /// NCHW<->blocked reorders and three OpenMP parallel regions. So those stay on our kernels, as
    /// do tiny convolutions. Per primitive, only oneDNN's direct JIT kernels are used (`useForward`…).
    static func prefersOneDNN(_ g: ConvGeometry) -> Bool {
        !g.isDepthwise && !(g.kernelH == 1 && g.kernelW == 1) && g.flops >= 20e6
    }

    static func forward(_ g: ConvGeometry, input: Tensor, weight: Tensor) -> Tensor {
        let out = Tensor.uninitialized(g.outputShape)
        if let plan = oneDNNPlan(g), plan.useForward { plan.runForward(input: input.pointer, weight: weight.pointer, output: out.pointer); return out }
        if g.isDepthwise { depthwiseForward(g, input: input.pointer, weight: weight.pointer, output: out.pointer); return out }
        if PointwiseConv.applies(g) { PointwiseConv.forward(g, input: input.pointer, weight: weight.pointer, output: out.pointer); return out }
        let hw = g.height * g.width, howo = g.outHeight * g.outWidth, k = g.patchSize
        let scratch = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * howo)
        defer { scratch?.deallocate() }
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let src = input.pointer + (n * g.inChannels + grp * g.inPerGroup) * hw
                let col: UnsafePointer<Float>
                if let scratch { im2col(g, input: src, col: scratch); col = UnsafePointer(scratch) } else { col = UnsafePointer(src) }
                BLAS.gemm(transA: false, transB: false, m: g.outPerGroup, n: howo, k: k,
                          a: weight.pointer + grp * g.outPerGroup * k, lda: k, b: col, ldb: howo, beta: 0,
                          c: out.pointer + (n * g.outChannels + grp * g.outPerGroup) * howo, ldc: howo)
            }
        }
        return out
    }

    /// Gradient with respect to the input, given the output gradient.
    static func backwardData(_ g: ConvGeometry, gradOutput: Tensor, weight: Tensor) -> Tensor {
        if let plan = oneDNNPlan(g), plan.useBackwardData {
            let gradInput = Tensor.uninitialized(g.inputShape)
            plan.runBackwardData(gradOutput: gradOutput.pointer, weight: weight.pointer, gradInput: gradInput.pointer)
            return gradInput
        }
        if PointwiseConv.applies(g) {
            let gradInput = Tensor.uninitialized(g.inputShape)
            PointwiseConv.backward(g, gradOutput: gradOutput.pointer, weight: weight.pointer, input: nil,
                                   gradInput: gradInput.pointer, gradWeight: nil)
            return gradInput
        }
        let gradInput = Tensor.zeros(g.inputShape)
        if g.isDepthwise {
            depthwiseBackwardData(g, gradOutput: gradOutput.pointer, weight: weight.pointer, gradInput: gradInput.pointer)
            return gradInput
        }
        let hw = g.height * g.width, howo = g.outHeight * g.outWidth, k = g.patchSize
        let scratch = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * howo)
        defer { scratch?.deallocate() }
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let dst = gradInput.pointer + (n * g.inChannels + grp * g.inPerGroup) * hw
                BLAS.gemm(transA: true, transB: false, m: k, n: howo, k: g.outPerGroup,
                          a: weight.pointer + grp * g.outPerGroup * k, lda: k,
                          b: gradOutput.pointer + (n * g.outChannels + grp * g.outPerGroup) * howo, ldb: howo,
                          beta: 0, c: scratch ?? dst, ldc: howo)
                if let scratch { col2imAdd(g, col: scratch, input: dst) }
            }
        }
        return gradInput
    }

    /// Gradient with respect to the weight, summed over the batch.
    static func backwardWeight(_ g: ConvGeometry, input: Tensor, gradOutput: Tensor) -> Tensor {
        if let plan = oneDNNPlan(g), plan.useBackwardWeights {
            let gradWeight = Tensor.uninitialized(g.weightShape)
            plan.runBackwardWeights(input: input.pointer, gradOutput: gradOutput.pointer, gradWeight: gradWeight.pointer)
            return gradWeight
        }
        if PointwiseConv.applies(g) {
            let gradWeight = Tensor.uninitialized(g.weightShape)
            PointwiseConv.backward(g, gradOutput: gradOutput.pointer, weight: nil, input: input.pointer,
                                   gradInput: nil, gradWeight: gradWeight.pointer)
            return gradWeight
        }
        let gradWeight = Tensor.zeros(g.weightShape)
        if g.isDepthwise {
            depthwiseBackwardWeight(g, input: input.pointer, gradOutput: gradOutput.pointer, gradWeight: gradWeight.pointer)
            return gradWeight
        }
        let hw = g.height * g.width, howo = g.outHeight * g.outWidth, k = g.patchSize
        let scratch = g.isPointwise ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * howo)
        defer { scratch?.deallocate() }
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let src = input.pointer + (n * g.inChannels + grp * g.inPerGroup) * hw
                let col: UnsafePointer<Float>
                if let scratch { im2col(g, input: src, col: scratch); col = UnsafePointer(scratch) } else { col = UnsafePointer(src) }
                BLAS.gemm(transA: false, transB: true, m: g.outPerGroup, n: k, k: howo,
                          a: gradOutput.pointer + (n * g.outChannels + grp * g.outPerGroup) * howo, lda: howo,
                          b: col, ldb: howo, beta: 1,
                          c: gradWeight.pointer + grp * g.outPerGroup * k, ldc: k)
            }
        }
        return gradWeight
    }

    /// Both gradients of a convolution. Pointwise convolutions on the built-in kernels compute
    /// them in one pass over the output gradient; everything else makes the two separate calls.
    static func backwardBoth(_ g: ConvGeometry, input: Tensor, gradOutput: Tensor, weight: Tensor) -> (data: Tensor, weight: Tensor) {
        let plan = oneDNNPlan(g)
        if PointwiseConv.applies(g) && !(plan?.useBackwardData ?? false) && !(plan?.useBackwardWeights ?? false) {
            let gradInput = Tensor.uninitialized(g.inputShape), gradWeight = Tensor.uninitialized(g.weightShape)
            PointwiseConv.backward(g, gradOutput: gradOutput.pointer, weight: weight.pointer, input: input.pointer,
                                   gradInput: gradInput.pointer, gradWeight: gradWeight.pointer)
            return (gradInput, gradWeight)
        }
        return (backwardData(g, gradOutput: gradOutput, weight: weight), backwardWeight(g, input: input, gradOutput: gradOutput))
    }

    /// Per-channel sums of an NCHW gradient (the bias gradient), accumulated in Double.
    static func channelSums(_ t: Tensor) -> Tensor {
        let n = t.shape[0], c = t.shape[1], plane = t.count / max(n * c, 1)
        let out = Tensor.uninitialized([c])
        let pt = t.pointer, po = out.pointer
        Parallel.forRange(c) { range in
            for ch in range {
                var s = 0.0
                for b in 0..<n {
                    let p = pt + (b * c + ch) * plane
                    var partial: Float = 0
                    for i in 0..<plane { partial += p[i] }
                    s += Double(partial)
                }
                po[ch] = Float(s)
            }
        }
        return out
    }

    // MARK: depthwise (groups == inChannels; outChannels = multiplier * inChannels)
    //
    // Each plane is first copied into a zero-padded scratch plane, so the inner loops run over
    // whole output rows with no bounds checks (contiguous and vectorisable at stride 1).

    /// Copies an h×w plane into the interior of a zero-bordered padded plane.
    @inline(__always)
    static func padPlane(_ g: ConvGeometry, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        let pw = g.width + g.padding.left + g.padding.right, ph = g.height + g.padding.top + g.padding.bottom
        dst.update(repeating: 0, count: pw * ph)
        for y in 0..<g.height {
            (dst + (y + g.padding.top) * pw + g.padding.left).update(from: src + y * g.width, count: g.width)
        }
    }

    /// Σ a[i]·b[i·stride] over n elements, with eight partial sums (a fixed order: deterministic).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int, stride: Int) -> Float {
        var i = 0
        if stride == 1 {
            var acc = SIMD8<Float>()
            while i + 8 <= n {
                acc += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
                    * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
                i += 8
            }
            var s = acc.sum()
            while i < n { s += a[i] * b[i]; i += 1 }
            return s
        }
        var s: Float = 0
        while i < n { s += a[i] * b[i * stride]; i += 1 }
        return s
    }

    static func depthwiseForward(_ g: ConvGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                 output: UnsafeMutablePointer<Float>) {
        let ho = g.outHeight, wo = g.outWidth, pw = g.width + g.padding.left + g.padding.right
        let ph = g.height + g.padding.top + g.padding.bottom
        let mult = g.outPerGroup, kk = g.kernelH * g.kernelW, sw = g.strideW
        Parallel.forRange(g.batch * g.inChannels) { planes in
            let padded = UnsafeMutablePointer<Float>.allocate(capacity: pw * ph)
            defer { padded.deallocate() }
            for p in planes {
                let n = p / g.inChannels, c = p % g.inChannels
                padPlane(g, input + p * g.height * g.width, padded)
                for m in 0..<mult {
                    let o = c * mult + m
                    let dst = output + (n * g.outChannels + o) * ho * wo
                    let wt = weight + o * kk
                    dst.update(repeating: 0, count: ho * wo)
                    for oy in 0..<ho {
                        let drow = dst + oy * wo
                        for ky in 0..<g.kernelH {
                            let srow = padded + (oy * g.strideH + ky * g.dilationH) * pw
                            for kx in 0..<g.kernelW {
                                let wv = wt[ky * g.kernelW + kx], s = srow + kx * g.dilationW
                                if sw == 1 {
                                    for ox in 0..<wo { drow[ox] += wv * s[ox] }
                                } else {
                                    for ox in 0..<wo { drow[ox] += wv * s[ox * sw] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    static func depthwiseBackwardData(_ g: ConvGeometry, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                      gradInput: UnsafeMutablePointer<Float>) {
        let ho = g.outHeight, wo = g.outWidth, pw = g.width + g.padding.left + g.padding.right
        let ph = g.height + g.padding.top + g.padding.bottom
        let mult = g.outPerGroup, kk = g.kernelH * g.kernelW, sw = g.strideW
        // Parallel over input planes: all output channels of a plane's group go to the same work item.
        Parallel.forRange(g.batch * g.inChannels) { planes in
            let padded = UnsafeMutablePointer<Float>.allocate(capacity: pw * ph)
            defer { padded.deallocate() }
            for p in planes {
                let n = p / g.inChannels, c = p % g.inChannels
                padded.update(repeating: 0, count: pw * ph)
                for m in 0..<mult {
                    let o = c * mult + m
                    let src = gradOutput + (n * g.outChannels + o) * ho * wo
                    let wt = weight + o * kk
                    for oy in 0..<ho {
                        let grow = src + oy * wo
                        for ky in 0..<g.kernelH {
                            let prow = padded + (oy * g.strideH + ky * g.dilationH) * pw
                            for kx in 0..<g.kernelW {
                                let wv = wt[ky * g.kernelW + kx], d = prow + kx * g.dilationW
                                if sw == 1 {
                                    for ox in 0..<wo { d[ox] += wv * grow[ox] }
                                } else {
                                    for ox in 0..<wo { d[ox * sw] += wv * grow[ox] }
                                }
                            }
                        }
                    }
                }
                let dst = gradInput + p * g.height * g.width
                for y in 0..<g.height {
                    (dst + y * g.width).update(from: padded + (y + g.padding.top) * pw + g.padding.left, count: g.width)
                }
            }
        }
    }

    static func depthwiseBackwardWeight(_ g: ConvGeometry, input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                        gradWeight: UnsafeMutablePointer<Float>) {
        let ho = g.outHeight, wo = g.outWidth, pw = g.width + g.padding.left + g.padding.right
        let ph = g.height + g.padding.top + g.padding.bottom
        let mult = g.outPerGroup, kk = g.kernelH * g.kernelW
        // Parallel over input channels (each owns its `mult` output channels' weights); the batch
        // is summed in order inside, so the result does not depend on the thread count.
        Parallel.forRange(g.inChannels) { channels in
            let padded = UnsafeMutablePointer<Float>.allocate(capacity: pw * ph)
            defer { padded.deallocate() }
            var acc = [Double](repeating: 0, count: kk)
            for c in channels {
                for m in 0..<mult {
                    let o = c * mult + m
                    for i in 0..<kk { acc[i] = 0 }
                    for n in 0..<g.batch {
                        if m == 0 || mult > 1 { padPlane(g, input + (n * g.inChannels + c) * g.height * g.width, padded) }
                        let gout = gradOutput + (n * g.outChannels + o) * ho * wo
                        for ky in 0..<g.kernelH {
                            for kx in 0..<g.kernelW {
                                var s: Float = 0
                                for oy in 0..<ho {
                                    s += dot(gout + oy * wo, padded + (oy * g.strideH + ky * g.dilationH) * pw + kx * g.dilationW,
                                             wo, stride: g.strideW)
                                }
                                acc[ky * g.kernelW + kx] += Double(s)
                            }
                        }
                    }
                    for i in 0..<kk { gradWeight[o * kk + i] = Float(acc[i]) }
                }
            }
        }
    }
}

extension Tensor {
    /// 2-D convolution of an NCHW tensor with a [out, in/groups, kh, kw] weight (PyTorch layout),
    /// explicit four-sided padding (TF-SAME is asymmetric), dilation and groups (depthwise when
    /// groups == input channels).
    public static func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                              stride: (Int, Int), padding: Padding2D = .zero,
                              dilation: (Int, Int) = (1, 1), groups: Int = 1) -> Tensor {
        precondition(input.rank == 4 && weight.rank == 4, "conv2d: input \(input.shape), weight \(weight.shape)")
        let geometry = ConvGeometry(batch: input.shape[0], inChannels: input.shape[1], height: input.shape[2], width: input.shape[3],
                                    outChannels: weight.shape[0], kernelH: weight.shape[2], kernelW: weight.shape[3],
                                    strideH: stride.0, strideW: stride.1, padding: padding,
                                    dilationH: dilation.0, dilationW: dilation.1, groups: groups)
        precondition(groups >= 1 && geometry.inChannels % groups == 0 && geometry.outChannels % groups == 0
                     && weight.shape[1] == geometry.inPerGroup,
                     "conv2d: input \(input.shape), weight \(weight.shape), groups \(groups)")
        precondition(geometry.outHeight > 0 && geometry.outWidth > 0, "conv2d: empty output for input \(input.shape)")
        if let bias { precondition(bias.shape == [geometry.outChannels], "conv2d: bias \(bias.shape)") }
        let out = ConvKernels.forward(geometry, input: input, weight: weight)
        if let bias { addChannelBias(out, bias) }
        let inputs = [input, weight] + (bias.map { [$0] } ?? [])
        return result(out, name: "conv2d", inputs: inputs) { g in
            var grads: [Tensor?]
            if input.requiresGrad && weight.requiresGrad {
                let both = ConvKernels.backwardBoth(geometry, input: input, gradOutput: g, weight: weight)
                grads = [both.data, both.weight]
            } else {
                grads = [
                    input.requiresGrad ? ConvKernels.backwardData(geometry, gradOutput: g, weight: weight) : nil,
                    weight.requiresGrad ? ConvKernels.backwardWeight(geometry, input: input, gradOutput: g) : nil,
                ]
            }
            if let bias { grads.append(bias.requiresGrad ? ConvKernels.channelSums(g) : nil) }
            return grads
        }
    }

    public static func conv2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                              padding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Tensor {
        conv2d(input, weight: weight, bias: bias, stride: (stride, stride), padding: Padding2D(padding),
               dilation: (dilation, dilation), groups: groups)
    }

    /// Transposed convolution (the adjoint of conv2d) with a [in, out/groups, kh, kw] weight
    /// (PyTorch layout). `padding` removes rows/columns from the full output; `outputPadding` adds
    /// them at the bottom/right.
    public static func convTranspose2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil,
                                       stride: (Int, Int), padding: Padding2D = .zero,
                                       outputPadding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1),
                                       groups: Int = 1) -> Tensor {
        precondition(input.rank == 4 && weight.rank == 4 && weight.shape[0] == input.shape[1] && input.shape[1] % groups == 0,
                     "convTranspose2d: input \(input.shape), weight \(weight.shape), groups \(groups)")
        precondition(outputPadding.0 < Swift.max(stride.0, dilation.0) && outputPadding.1 < Swift.max(stride.1, dilation.1),
                     "convTranspose2d: output padding must be smaller than stride or dilation")
        let kh = weight.shape[2], kw = weight.shape[3]
        let outH = (input.shape[2] - 1) * stride.0 - padding.top - padding.bottom + dilation.0 * (kh - 1) + outputPadding.0 + 1
        let outW = (input.shape[3] - 1) * stride.1 - padding.left - padding.right + dilation.1 * (kw - 1) + outputPadding.1 + 1
        precondition(outH > 0 && outW > 0, "convTranspose2d: empty output for input \(input.shape)")
        // The equivalent convolution maps the transposed output (as its input) to our input; the
        // output-padding rows/columns are input rows no window of that convolution reaches.
        let geometry = ConvGeometry(batch: input.shape[0], inChannels: weight.shape[1] * groups, height: outH, width: outW,
                                    outChannels: input.shape[1], kernelH: kh, kernelW: kw,
                                    strideH: stride.0, strideW: stride.1,
                                    padding: padding,
                                    dilationH: dilation.0, dilationW: dilation.1, groups: groups)
        precondition(geometry.outHeight == input.shape[2] && geometry.outWidth == input.shape[3],
                     "convTranspose2d: inconsistent geometry for input \(input.shape)")
        if let bias { precondition(bias.shape == [geometry.inChannels], "convTranspose2d: bias \(bias.shape)") }
        let out = ConvKernels.backwardData(geometry, gradOutput: input, weight: weight)
        if let bias { addChannelBias(out, bias) }
        let inputs = [input, weight] + (bias.map { [$0] } ?? [])
        return result(out, name: "conv_transpose2d", inputs: inputs) { g in
            var grads: [Tensor?] = [
                input.requiresGrad ? ConvKernels.forward(geometry, input: g, weight: weight) : nil,
                weight.requiresGrad ? ConvKernels.backwardWeight(geometry, input: g, gradOutput: input) : nil,
            ]
            if let bias { grads.append(bias.requiresGrad ? ConvKernels.channelSums(g) : nil) }
            return grads
        }
    }

    public static func convTranspose2d(_ input: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                                       padding: Int = 0, outputPadding: Int = 0, dilation: Int = 1, groups: Int = 1) -> Tensor {
        convTranspose2d(input, weight: weight, bias: bias, stride: (stride, stride), padding: Padding2D(padding),
                        outputPadding: (outputPadding, outputPadding), dilation: (dilation, dilation), groups: groups)
    }

    /// Adds bias[c] to every element of channel c of an NCHW tensor, in place (fresh results only).
    static func addChannelBias(_ t: Tensor, _ bias: Tensor) {
        let n = t.shape[0], c = t.shape[1], plane = t.count / Swift.max(n * c, 1)
        let pt = t.pointer, pb = bias.pointer
        Parallel.forRange(n * c, grain: Swift.max(1, 16384 / Swift.max(plane, 1))) { range in
            for p in range {
                let b = pb[p % c], d = pt + p * plane
                for i in 0..<plane { d[i] += b }
            }
        }
    }
}
