import ArgumentParser
import Foundation
import KdadTensor

/// `kdad bench tensor`: raw sgemm peak and conv2d throughput at batch 16, as % of that peak.
struct BenchTensor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tensor", abstract: "Conv2d and sgemm throughput.")

    @Option(help: "Batch size for the conv2d cases.") var batch = 16
    @Option(help: "Timed repetitions per measurement (the fastest is reported).") var repeats = 5
    @Option(help: "Only cases whose name contains this text.") var only: String?
    @Option(help: "Backends to measure: builtin, oneDNN, automatic (comma-separated).") var backends = "builtin,oneDNN"
    @Option(help: "Threads for OpenBLAS and kdad's parallel loops (default: all cores).") var threads: Int?

    struct ConvCase {
        var name: String
        var inC, outC, size, kernel, stride, groups: Int
        var padding: Int { kernel / 2 }
    }

    func run() async throws {
        if let threads { TensorRuntime.setThreadCount(threads) }
        print("threads: \(TensorRuntime.threadCount), load average before: \(Self.loadAverage())")
        let peakSquare = KernelBenchmarks.sgemmGFLOPS(m: 2048, n: 2048, k: 2048, repeats: repeats)
        // The GEMM a 3×3 64→64 conv at 64² performs per image: [64 × 576]·[576 × 4096].
        let peakConvLike = KernelBenchmarks.sgemmGFLOPS(m: 64, n: 4096, k: 576, repeats: repeats * 4)
        let peak = max(peakSquare, peakConvLike)
        print(String(format: "sgemm n=2048:              %7.1f GFLOP/s", peakSquare))
        print(String(format: "sgemm 64x4096x576 (conv):  %7.1f GFLOP/s", peakConvLike))
        print("conv2d, batch \(batch) (GFLOP/s and % of the sgemm peak \(String(format: "%.1f", peak))):")
        let cases = [
            ConvCase(name: "3x3 64->64 @64²", inC: 64, outC: 64, size: 64, kernel: 3, stride: 1, groups: 1),
            ConvCase(name: "3x3 128->128 @32²", inC: 128, outC: 128, size: 32, kernel: 3, stride: 1, groups: 1),
            ConvCase(name: "1x1 24->144 @64²", inC: 24, outC: 144, size: 64, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "1x1 40->240 @32²", inC: 40, outC: 240, size: 32, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "1x1 144->24 @64²", inC: 144, outC: 24, size: 64, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "dw 3x3 144ch @64²", inC: 144, outC: 144, size: 64, kernel: 3, stride: 1, groups: 144),
            ConvCase(name: "dw 5x5 240ch @32²", inC: 240, outC: 240, size: 32, kernel: 5, stride: 1, groups: 240),
        ]
        print("  case                 backend    fwd GFLOP/s  (% peak)   fwd+bwd GFLOP/s  (% peak)   fwd ms   fwd+bwd ms")
        let chosenBackends = backends.split(separator: ",").compactMap { ConvBackend(rawValue: String($0)) }
        // Case names are ASCII ("1x1"); accept the docs' "1×1" spelling in the filter too.
        let filter = only?.replacingOccurrences(of: "×", with: "x").replacingOccurrences(of: "→", with: "->")
        for c in cases where filter.map({ c.name.contains($0) }) ?? true {
          for backend in chosenBackends { TensorRuntime.withConvBackend(backend) {
            var rng = SplitMix64(seed: 7)
            let x = Tensor.normal([batch, c.inC, c.size, c.size], rng: &rng, requiresGrad: true)
            let w = Tensor.normal([c.outC, c.inC / c.groups, c.kernel, c.kernel], std: 0.05, rng: &rng, requiresGrad: true)
            let flops = KernelBenchmarks.conv2dFLOPs(inputShape: x.shape, weightShape: w.shape, stride: c.stride,
                                                     padding: c.padding, groups: c.groups)
            let forward = KernelBenchmarks.bestSeconds(repeats: repeats) {
                _ = Tensor.noGrad { Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups) }
            }
            let seed = Tensor.ones([batch, c.outC, c.size / c.stride, c.size / c.stride])
            let training = KernelBenchmarks.bestSeconds(repeats: repeats) {
                x.grad = nil; w.grad = nil
                Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups).backward(seed)
            }
            let fwd = flops / forward / 1e9, both = 3 * flops / training / 1e9
            print(String(format: "  %-20@ %-9@ %9.1f  (%5.1f%%)   %13.1f  (%5.1f%%)   %6.2f   %8.2f",
                         c.name as NSString, backend.rawValue as NSString, fwd, 100 * fwd / peak, both, 100 * both / peak,
                         forward * 1e3, training * 1e3))
        } } }
        // The machine may be shared: numbers are only comparable at similar load.
        print("load average after: \(Self.loadAverage())")
    }

    /// The 1, 5 and 15 minute load averages, formatted (or "unknown").
    static func loadAverage() -> String {
        var loads = [Double](repeating: 0, count: 3)
        guard getloadavg(&loads, 3) == 3 else { return "unknown" }
        return loads.map { String(format: "%.2f", $0) }.joined(separator: " ")
    }
}
