import CDNNL
import Foundation

/// oneDNN (2.6, C API) as a convolution backend. oneDNN picks blocked layouts for its JIT kernels
/// (`format_tag_any`); we keep tensors NCHW and reorder at the boundary. Primitives are built once
/// per geometry and cached; scratchpads are per call so concurrent use is safe.
final class DNNLRuntime: @unchecked Sendable {
    let engine: dnnl_engine_t
    let lock = NSLock()
    var plans: [ConvGeometry: DNNLConvPlan?] = [:]

    /// nil when oneDNN cannot create a CPU engine (then the built-in kernels run).
    static let shared: DNNLRuntime? = {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        return DNNLRuntime(engine: engine)
    }()

    private init(engine: dnnl_engine_t) { self.engine = engine }

    func plan(for geometry: ConvGeometry) -> DNNLConvPlan? {
        lock.lock(); defer { lock.unlock() }
        if let cached = plans[geometry] { return cached }
        let plan = DNNLConvPlan(geometry, engine: engine)
        plans[geometry] = .some(plan)
        return plan
    }

    /// A new stream per call: streams are cheap and not meant to be shared across threads.
    func withStream<R>(_ body: (dnnl_stream_t) -> R) -> R {
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success,
              let stream else { preconditionFailure("oneDNN: cannot create a stream") }
        defer { dnnl_stream_destroy(stream) }
        let result = body(stream)
        dnnl_stream_wait(stream)
        return result
    }
}

/// A `dnnl_dims_t` argument (the C API takes a pointer to 12 dimensions).
func dnnlDims(_ values: [Int]) -> [Int64] {
    values.map(Int64.init) + [Int64](repeating: 0, count: 12 - values.count)
}

func dnnlMemoryDesc(_ shape: [Int], _ tag: dnnl_format_tag_t) -> dnnl_memory_desc_t {
    var md = dnnl_memory_desc_t()
    let status = dnnl_memory_desc_init_by_tag(&md, Int32(shape.count), dnnlDims(shape), dnnl_f32, tag)
    precondition(status == dnnl_success, "oneDNN: memory descriptor for \(shape)")
    return md
}

/// One operand of a primitive: the layout the primitive wants and, if it differs from ours,
/// reorders between the two.
struct DNNLOperand {
    var user: dnnl_memory_desc_t
    var chosen: dnnl_memory_desc_t
    var toChosen: dnnl_primitive_t?
    var toUser: dnnl_primitive_t?
}

final class DNNLConvPlan: @unchecked Sendable {
    let engine: dnnl_engine_t
    let geometry: ConvGeometry
    var forward: dnnl_primitive_t?, forwardPD: dnnl_primitive_desc_t?
    var backwardData: dnnl_primitive_t?, backwardDataPD: dnnl_primitive_desc_t?
    var backwardWeights: dnnl_primitive_t?, backwardWeightsPD: dnnl_primitive_desc_t?
    var fwdSrc, fwdWeights, fwdDst: DNNLOperand
    var bdDiffSrc, bdWeights, bdDiffDst: DNNLOperand
    var bwSrc, bwDiffWeights, bwDiffDst: DNNLOperand
    /// oneDNN's implementation names, e.g. "jit:avx2", "jit_1x1:avx2", "jit_dw:avx2", "gemm:jit".
    var forwardImplementation = "", backwardDataImplementation = "", backwardWeightsImplementation = ""

    /// Forced oneDNN (tests, benchmarks) runs whatever oneDNN chose; automatic mode only its direct JIT kernels.
    var useForward: Bool { TensorRuntime.convBackend == .oneDNN || Self.isDirectJIT(forwardImplementation) }
    var useBackwardData: Bool { TensorRuntime.convBackend == .oneDNN || Self.isDirectJIT(backwardDataImplementation) }
    var useBackwardWeights: Bool { TensorRuntime.convBackend == .oneDNN || Self.isDirectJIT(backwardWeightsImplementation) }

    static func implementation(_ pd: dnnl_primitive_desc_t?) -> String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else { return "" }
        return String(cString: name)
    }

    /// Only oneDNN's direct JIT kernels beat ours: its gemm-based and reference fallbacks are
    /// im2col+GEMM like ours plus layout reorders, or far slower (depthwise 5×5 backward-weights
    /// falls back to gemm:jit and takes seconds).
    static func isDirectJIT(_ implementation: String) -> Bool {
        implementation.hasPrefix("jit") && !implementation.contains("gemm")
    }

    init?(_ g: ConvGeometry, engine: dnnl_engine_t) {
        self.engine = engine
        geometry = g
        let srcShape = g.inputShape, dstShape = g.outputShape
        let weightShape = g.groups == 1 ? g.weightShape
            : [g.groups, g.outPerGroup, g.inPerGroup, g.kernelH, g.kernelW]
        let weightTag = g.groups == 1 ? dnnl_oihw : dnnl_goihw
        let userSrc = dnnlMemoryDesc(srcShape, dnnl_nchw)
        let userDst = dnnlMemoryDesc(dstShape, dnnl_nchw)
        let userWeights = dnnlMemoryDesc(weightShape, weightTag)
        var anySrc = dnnlMemoryDesc(srcShape, dnnl_format_tag_any), anyDst = dnnlMemoryDesc(dstShape, dnnl_format_tag_any)
        var anyWeights = dnnlMemoryDesc(weightShape, dnnl_format_tag_any)
        let strides = dnnlDims([g.strideH, g.strideW]), dilates = dnnlDims([g.dilationH - 1, g.dilationW - 1])
        let padL = dnnlDims([g.padding.top, g.padding.left]), padR = dnnlDims([g.padding.bottom, g.padding.right])

        var attr: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attr) == dnnl_success else { return nil }
        defer { dnnl_primitive_attr_destroy(attr) }
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)

        var fdesc = dnnl_convolution_desc_t()
        guard dnnl_dilated_convolution_forward_desc_init(&fdesc, dnnl_forward_training, dnnl_convolution_direct,
                                                         &anySrc, &anyWeights, nil, &anyDst,
                                                         strides, dilates, padL, padR) == dnnl_success,
              dnnl_primitive_desc_create(&forwardPD, &fdesc, attr, engine, nil) == dnnl_success,
              dnnl_primitive_create(&forward, forwardPD) == dnnl_success else { return nil }

        var bddesc = dnnl_convolution_desc_t()
        guard dnnl_dilated_convolution_backward_data_desc_init(&bddesc, dnnl_convolution_direct, &anySrc, &anyWeights, &anyDst,
                                                               strides, dilates, padL, padR) == dnnl_success,
              dnnl_primitive_desc_create(&backwardDataPD, &bddesc, attr, engine, forwardPD) == dnnl_success,
              dnnl_primitive_create(&backwardData, backwardDataPD) == dnnl_success else { return nil }

        var bwdesc = dnnl_convolution_desc_t()
        guard dnnl_dilated_convolution_backward_weights_desc_init(&bwdesc, dnnl_convolution_direct, &anySrc, &anyWeights, nil,
                                                                  &anyDst, strides, dilates, padL, padR) == dnnl_success,
              dnnl_primitive_desc_create(&backwardWeightsPD, &bwdesc, attr, engine, forwardPD) == dnnl_success,
              dnnl_primitive_create(&backwardWeights, backwardWeightsPD) == dnnl_success else { return nil }

        func operand(_ pd: dnnl_primitive_desc_t?, _ query: dnnl_query_t, user: dnnl_memory_desc_t) -> DNNLOperand? {
            guard let chosenPointer = dnnl_primitive_desc_query_md(pd, query, 0) else { return nil }
            var op = DNNLOperand(user: user, chosen: chosenPointer.pointee, toChosen: nil, toUser: nil)
            if dnnl_memory_desc_equal(&op.user, &op.chosen) == 0 {
                var rpd: dnnl_primitive_desc_t?
                guard dnnl_reorder_primitive_desc_create(&rpd, &op.user, engine, &op.chosen, engine, nil) == dnnl_success,
                      dnnl_primitive_create(&op.toChosen, rpd) == dnnl_success else { return nil }
                dnnl_primitive_desc_destroy(rpd)
                guard dnnl_reorder_primitive_desc_create(&rpd, &op.chosen, engine, &op.user, engine, nil) == dnnl_success,
                      dnnl_primitive_create(&op.toUser, rpd) == dnnl_success else { return nil }
                dnnl_primitive_desc_destroy(rpd)
            }
            return op
        }
        guard let a = operand(forwardPD, dnnl_query_src_md, user: userSrc),
              let b = operand(forwardPD, dnnl_query_weights_md, user: userWeights),
              let c = operand(forwardPD, dnnl_query_dst_md, user: userDst),
              let d = operand(backwardDataPD, dnnl_query_diff_src_md, user: userSrc),
              let e = operand(backwardDataPD, dnnl_query_weights_md, user: userWeights),
              let f = operand(backwardDataPD, dnnl_query_diff_dst_md, user: userDst),
              let h = operand(backwardWeightsPD, dnnl_query_src_md, user: userSrc),
              let i = operand(backwardWeightsPD, dnnl_query_diff_weights_md, user: userWeights),
              let j = operand(backwardWeightsPD, dnnl_query_diff_dst_md, user: userDst) else { return nil }
        forwardImplementation = Self.implementation(forwardPD)
        backwardDataImplementation = Self.implementation(backwardDataPD)
        backwardWeightsImplementation = Self.implementation(backwardWeightsPD)
        (fwdSrc, fwdWeights, fwdDst) = (a, b, c)
        (bdDiffSrc, bdWeights, bdDiffDst) = (d, e, f)
        (bwSrc, bwDiffWeights, bwDiffDst) = (h, i, j)
        _ = (userSrc, userDst, userWeights)
    }

    deinit {
        for p in [forward, backwardData, backwardWeights] { if let p { dnnl_primitive_destroy(p) } }
        for pd in [forwardPD, backwardDataPD, backwardWeightsPD] { if let pd { dnnl_primitive_desc_destroy(pd) } }
        for op in [fwdSrc, fwdWeights, fwdDst, bdDiffSrc, bdWeights, bdDiffDst, bwSrc, bwDiffWeights, bwDiffDst] {
            if let p = op.toChosen { dnnl_primitive_destroy(p) }
            if let p = op.toUser { dnnl_primitive_destroy(p) }
        }
    }

    // MARK: execution

    /// Memory objects wrapping our buffers (and temporaries in the chosen layout) for one call.
    final class Call {
        let engine: dnnl_engine_t
        var memories: [dnnl_memory_t] = []
        /// Temporaries come from the tensor buffer cache: fresh pages would fault on every call.
        var buffers: [(UnsafeMutablePointer<Float>, Int)] = []
        init(engine: dnnl_engine_t) { self.engine = engine }
        deinit {
            for m in memories { dnnl_memory_destroy(m) }
            for (p, count) in buffers { StoragePool.shared.release(p, count: count) }
        }
        func memory(_ md: dnnl_memory_desc_t, _ pointer: UnsafeMutableRawPointer?) -> dnnl_memory_t {
            var md = md
            var mem: dnnl_memory_t?
            let handle = pointer ?? {
                let count = (max(dnnl_memory_desc_get_size(&md), 64) + 3) / 4
                let b = StoragePool.shared.allocate(count: count)
                buffers.append((b, count))
                return UnsafeMutableRawPointer(b)
            }()
            precondition(dnnl_memory_create(&mem, &md, engine, handle) == dnnl_success, "oneDNN: memory")
            memories.append(mem!)
            return mem!
        }
    }

    static func run(_ primitive: dnnl_primitive_t?, _ stream: dnnl_stream_t, _ args: [(Int32, dnnl_memory_t)]) {
        let execArgs = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1) }
        let status = dnnl_primitive_execute(primitive, stream, Int32(execArgs.count), execArgs)
        precondition(status == dnnl_success, "oneDNN: execute failed with status \(status)")
    }

    /// Input side: our buffer in the primitive's layout (reordered into a temporary when needed).
    func input(_ op: DNNLOperand, _ pointer: UnsafeMutablePointer<Float>, _ call: Call, _ stream: dnnl_stream_t) -> dnnl_memory_t {
        let user = call.memory(op.user, UnsafeMutableRawPointer(pointer))
        guard let reorder = op.toChosen else { return user }
        let chosen = call.memory(op.chosen, nil)
        Self.run(reorder, stream, [(DNNL_ARG_FROM, user), (DNNL_ARG_TO, chosen)])
        return chosen
    }

    /// Output side: where the primitive writes, and a closure that moves it into our buffer.
    func output(_ op: DNNLOperand, _ pointer: UnsafeMutablePointer<Float>, _ call: Call, _ stream: dnnl_stream_t)
        -> (dnnl_memory_t, () -> Void) {
        let user = call.memory(op.user, UnsafeMutableRawPointer(pointer))
        guard let reorder = op.toUser else { return (user, {}) }
        let chosen = call.memory(op.chosen, nil)
        return (chosen, { Self.run(reorder, stream, [(DNNL_ARG_FROM, chosen), (DNNL_ARG_TO, user)]) })
    }

    func scratchpad(_ pd: dnnl_primitive_desc_t?, _ call: Call) -> dnnl_memory_t {
        call.memory(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)!.pointee, nil)
    }

    func runForward(input x: UnsafeMutablePointer<Float>, weight: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>) {
        DNNLRuntime.shared!.withStream { stream in
            let call = Call(engine: engine)
            let src = input(fwdSrc, x, call, stream), w = input(fwdWeights, weight, call, stream)
            let (dst, finish) = output(fwdDst, y, call, stream)
            Self.run(forward, stream, [(DNNL_ARG_SRC, src), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DST, dst),
                                       (DNNL_ARG_SCRATCHPAD, scratchpad(forwardPD, call))])
            finish()
        }
    }

    func runBackwardData(gradOutput dy: UnsafeMutablePointer<Float>, weight: UnsafeMutablePointer<Float>,
                         gradInput dx: UnsafeMutablePointer<Float>) {
        DNNLRuntime.shared!.withStream { stream in
            let call = Call(engine: engine)
            let diffDst = input(bdDiffDst, dy, call, stream), w = input(bdWeights, weight, call, stream)
            let (diffSrc, finish) = output(bdDiffSrc, dx, call, stream)
            Self.run(backwardData, stream, [(DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_WEIGHTS, w), (DNNL_ARG_DIFF_SRC, diffSrc),
                                            (DNNL_ARG_SCRATCHPAD, scratchpad(backwardDataPD, call))])
            finish()
        }
    }

    func runBackwardWeights(input x: UnsafeMutablePointer<Float>, gradOutput dy: UnsafeMutablePointer<Float>,
                            gradWeight dw: UnsafeMutablePointer<Float>) {
        DNNLRuntime.shared!.withStream { stream in
            let call = Call(engine: engine)
            let src = input(bwSrc, x, call, stream), diffDst = input(bwDiffDst, dy, call, stream)
            let (diffWeights, finish) = output(bwDiffWeights, dw, call, stream)
            Self.run(backwardWeights, stream, [(DNNL_ARG_SRC, src), (DNNL_ARG_DIFF_DST, diffDst), (DNNL_ARG_DIFF_WEIGHTS, diffWeights),
                                               (DNNL_ARG_SCRATCHPAD, scratchpad(backwardWeightsPD, call))])
            finish()
        }
    }
}
