import Foundation
import KdadTensor
import KdadTestSupport
import KdadWeights
import XCTest

/// Rebuilds the network of shared/reference/autograd/make_autograd_golden.py and checks forward,
/// backward, the Adam step and the BatchNorm running statistics against the float64 PyTorch run.
final class GoldenAutogradTests: XCTestCase {
    func testGoldenNetworkWithBuiltinKernels() throws {
        try TensorRuntime.withConvBackend(.builtin) { try checkGoldenNetwork() }
    }

    func testGoldenNetworkWithOneDNN() throws {
        try TensorRuntime.withConvBackend(.oneDNN) { try checkGoldenNetwork() }
    }

    func checkGoldenNetwork() throws {
        let url = try SharedData.require("reference/autograd/golden.safetensors")
        let golden = try SafeTensors.read(contentsOf: url)
        func reference(_ key: String) throws -> WeightTensor {
            guard let t = golden[key] else { throw TensorError(key, "missing from golden file") }
            return t
        }
        func load(_ key: String, requiresGrad: Bool = false) throws -> Tensor {
            let t = try reference(key)
            return Tensor(shape: t.shape, values: try t.floats(), requiresGrad: requiresGrad)
        }
        let parameterNames = ["c1.weight", "b1.weight", "b1.bias", "dw.weight", "b2.weight", "b2.bias",
                              "gc.weight", "gc.bias", "up.weight", "up.bias", "b3.weight", "b3.bias",
                              "c5.weight", "c5.bias", "pw.weight", "pw.bias"]
        var p: [String: Tensor] = [:]
        for name in parameterNames { p[name] = try load("param0.\(name)", requiresGrad: true) }
        var norms: [String: BatchNorm2d] = [:]
        for name in ["b1", "b2", "b3"] {
            let bn = BatchNorm2d(channels: 8)
            bn.weight.assign(p["\(name).weight"]!.scalars)
            bn.bias.assign(p["\(name).bias"]!.scalars)
            norms[name] = bn
            p["\(name).weight"] = bn.weight
            p["\(name).bias"] = bn.bias
        }
        let x = try load("x", requiresGrad: true)
        let target = try load("target")

        let a = norms["b1"]!(Tensor.conv2d(x, weight: p["c1.weight"]!, padding: 1), training: true).relu()
        let b = norms["b2"]!(Tensor.conv2d(a, weight: p["dw.weight"]!, stride: 2, padding: 1, groups: 8), training: true).relu6()
        let c = Tensor.conv2d(b, weight: p["gc.weight"]!, bias: p["gc.bias"]!, padding: 1, groups: 4).simAM()
        let d = norms["b3"]!(Tensor.convTranspose2d(c, weight: p["up.weight"]!, bias: p["up.bias"]!, stride: 2), training: true).relu()
        let pooled = Tensor.maxPool2d(a.padded(Padding2D(1), mode: .constant(-1e9)), kernel: (3, 3), stride: (1, 1))
        let e = Tensor.concat([d, pooled], axis: 1)
        let f = Tensor.conv2d(e, weight: p["c5.weight"]!, bias: p["c5.bias"]!, padding: 2)
            + Tensor.avgPool2d(a, kernel: (2, 2)).upsampleBilinear(scale: 2)
        let out = Tensor.conv2d(f.leakyRelu(0.1), weight: p["pw.weight"]!, bias: p["pw.bias"]!)

        let lossCos = (1 - Tensor.cosineSimilarity(out, target, axis: 1)).mean()
        let lossL2 = ((out.l2Normalized(axis: 1) - target.l2Normalized(axis: 1)).square().sum(axis: 1) * 0.5).mean()
        let loss = lossCos + lossL2
        loss.backward()

        var failures: [String] = []
        var worst = (key: "", error: 0.0)
        func check(_ key: String, _ actual: [Float]) throws {
            let expected = try reference(key).doubles()
            let error = relativeError(actual, expected)
            if error > worst.error { worst = (key, error) }
            if !(error <= 1e-4) { failures.append("\(key): relative error \(error)") }
        }
        try check("out", out.scalars)
        try check("loss", [loss.item])
        try check("loss_cos", [lossCos.item])
        try check("loss_l2", [lossL2.item])
        try check("grad.x", try XCTUnwrap(x.grad).scalars)
        for name in parameterNames where name != "up.bias" {
            try check("grad.\(name)", try XCTUnwrap(p[name]!.grad, name).scalars)
        }
        // up.bias feeds BatchNorm b3, which removes any per-channel constant: its gradient is zero
        // analytically and the reference holds float64 rounding noise (~1e-17), so ‖a−b‖/‖b‖ is
        // meaningless there. Check instead that the reference really is noise and that ours is zero
        // to within 1e-4 of the same layer's weight-gradient scale (float32 rounding of a sum of 1024 terms).
        let upWeightGradNorm = try reference("grad.up.weight").doubles().reduce(0) { $0 + $1 * $1 }.squareRoot()
        let upBiasReference = try reference("grad.up.bias").doubles()
        XCTAssertLessThan(upBiasReference.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12 * upWeightGradNorm,
                          "grad.up.bias is expected to be analytically zero in the reference")
        let upBiasGrad = try XCTUnwrap(p["up.bias"]!.grad).scalars
        let upBiasError = zip(upBiasGrad, upBiasReference).reduce(0.0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }.squareRoot()
        print("grad.up.bias: ours \(upBiasGrad), |error| \(upBiasError), |grad.up.weight| \(upWeightGradNorm)")
        if !(upBiasError <= 1e-4 * upWeightGradNorm) { failures.append("grad.up.bias: error \(upBiasError) vs scale \(upWeightGradNorm)") }

        let adam = Adam(parameters: parameterNames.map { NamedParameter($0, p[$0]!) },
                        learningRate: 1e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 1e-5)
        adam.step()
        for name in parameterNames { try check("param1.\(name)", p[name]!.scalars) }
        for (name, bn) in norms {
            try check("buffer1.\(name).running_mean", bn.runningMean.scalars)
            try check("buffer1.\(name).running_var", bn.runningVar.scalars)
            try check("buffer1.\(name).num_batches_tracked", [Float(bn.numBatchesTracked)])
        }
        print("golden (\(TensorRuntime.convBackend)): worst relative error \(worst.error) at \(worst.key)")
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }
}
