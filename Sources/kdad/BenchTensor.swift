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
        // GFLOP per CPU-second of the same sgemm (through Tensor.matmul): a load-robust companion to
        // the wall-clock peak, since on a shared machine descheduling inflates wall times only.
        let sgemmCPU: Double = {
            var rng = SplitMix64(seed: 1)
            let a = Tensor.uniform([2048, 2048], rng: &rng), b = Tensor.uniform([2048, 2048], rng: &rng)
            let t = Self.bestWallAndCPU(repeats: repeats) { _ = Tensor.noGrad { Tensor.matmul(a, b) } }
            return 2 * 2048 * 2048 * 2048 / t.cpu / 1e9
        }()
        print(String(format: "sgemm n=2048:              %7.1f GFLOP/s  (%.1f GFLOP per CPU-second)", peakSquare, sgemmCPU))
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
        print("  case                 backend    fwd GFLOP/s  (% peak)   fwd+bwd GFLOP/s  (% peak)   fwd ms   fwd+bwd ms"
              + "   CPU-time efficiency fwd / fwd+bwd (% of sgemm's GFLOP per CPU-second)")
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
            let forward = Self.bestWallAndCPU(repeats: repeats) {
                _ = Tensor.noGrad { Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups) }
            }
            let seed = Tensor.ones([batch, c.outC, c.size / c.stride, c.size / c.stride])
            let training = Self.bestWallAndCPU(repeats: repeats) {
                x.grad = nil; w.grad = nil
                Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups).backward(seed)
            }
            let fwd = flops / forward.wall / 1e9, both = 3 * flops / training.wall / 1e9
            let fwdCPU = flops / forward.cpu / 1e9, bothCPU = 3 * flops / training.cpu / 1e9
            print(String(format: "  %-20@ %-9@ %9.1f  (%5.1f%%)   %13.1f  (%5.1f%%)   %6.2f   %8.2f   %5.1f%% / %5.1f%%",
                         c.name as NSString, backend.rawValue as NSString, fwd, 100 * fwd / peak, both, 100 * both / peak,
                         forward.wall * 1e3, training.wall * 1e3, 100 * fwdCPU / sgemmCPU, 100 * bothCPU / sgemmCPU))
        } } }
        // The machine may be shared: numbers are only comparable at similar load.
        print("load average after: \(Self.loadAverage())")
    }

    /// Fastest wall-clock and fastest process-CPU seconds of `body` over `repeats` runs after one
    /// warm-up (each minimum taken separately: other processes only ever add to either).
    static func bestWallAndCPU(repeats: Int, _ body: () -> Void) -> (wall: Double, cpu: Double) {
        func seconds(_ clock: clockid_t) -> Double {
            var t = timespec()
            clock_gettime(clock, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        body()
        var wall = Double.infinity, cpu = Double.infinity
        for _ in 0..<max(repeats, 1) {
            let w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID)
            body()
            cpu = min(cpu, seconds(CLOCK_PROCESS_CPUTIME_ID) - c0)
            wall = min(wall, seconds(CLOCK_MONOTONIC) - w0)
        }
        return (wall, cpu)
    }

    /// The 1, 5 and 15 minute load averages, formatted (or "unknown").
    static func loadAverage() -> String {
        var loads = [Double](repeating: 0, count: 3)
        guard getloadavg(&loads, 3) == 3 else { return "unknown" }
        return loads.map { String(format: "%.2f", $0) }.joined(separator: " ")
    }
}
