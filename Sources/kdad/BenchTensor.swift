import ArgumentParser
import Foundation
import KdadTensor

/// `kdad bench tensor`: raw sgemm peak and conv2d throughput at batch 16, as % of that peak.
struct BenchTensor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tensor", abstract: "Conv2d and sgemm throughput.")

    @Option(help: "Batch size for the conv2d cases.") var batch = 16
    @Option(help: "Timed repetitions per measurement (the fastest is reported).") var repeats = 5
    @Option(help: """
        Rounds: measure the sgemm peak and every case this many times, one round after another, and \
        report each one's fastest round (each round's % of its own peak is printed as well). On a shared \
        machine the quiet moments then come to the peak and to the cases alike.
        """) var rounds = 3
    @Option(help: "Only cases whose name contains this text.") var only: String?
    @Option(help: "Backends to measure: builtin, oneDNN, automatic (comma-separated).") var backends = "builtin,oneDNN"
    @Option(help: "Threads for OpenBLAS and kdad's parallel loops (default: all cores).") var threads: Int?

    struct ConvCase {
        var name: String
        var inC, outC, size, kernel, stride, groups: Int
        var padding: Int { kernel / 2 }
    }

    /// One conv case on one backend: its FLOPs and the fastest forward / forward+backward seen.
    struct CaseResult {
        var name: String, backend: ConvBackend, flops: Double
        var forward = (wall: Double.infinity, cpu: Double.infinity)
        var training = (wall: Double.infinity, cpu: Double.infinity)

        /// Keeps the faster of each figure (wall and CPU separately, as `bestWallAndCPU` does).
        mutating func keepFastest(forward f: (wall: Double, cpu: Double), training t: (wall: Double, cpu: Double)) {
            forward = (min(forward.wall, f.wall), min(forward.cpu, f.cpu))
            training = (min(training.wall, t.wall), min(training.cpu, t.cpu))
        }
    }

    func run() async throws {
        if let threads { TensorRuntime.setThreadCount(threads) }
        print("threads: \(TensorRuntime.threadCount), load average before: \(Self.loadAverage())")
        let cases = [
            ConvCase(name: "3x3 64->64 @64²", inC: 64, outC: 64, size: 64, kernel: 3, stride: 1, groups: 1),
            ConvCase(name: "3x3 128->128 @32²", inC: 128, outC: 128, size: 32, kernel: 3, stride: 1, groups: 1),
            ConvCase(name: "1x1 24->144 @64²", inC: 24, outC: 144, size: 64, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "1x1 40->240 @32²", inC: 40, outC: 240, size: 32, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "1x1 144->24 @64²", inC: 144, outC: 24, size: 64, kernel: 1, stride: 1, groups: 1),
            ConvCase(name: "dw 3x3 144ch @64²", inC: 144, outC: 144, size: 64, kernel: 3, stride: 1, groups: 144),
            ConvCase(name: "dw 5x5 240ch @32²", inC: 240, outC: 240, size: 32, kernel: 5, stride: 1, groups: 240),
        ]
        let chosenBackends = backends.split(separator: ",").compactMap { ConvBackend(rawValue: String($0)) }
        // Case names are ASCII ("1x1"); accept the docs' "1×1" spelling in the filter too.
        let filter = only?.replacingOccurrences(of: "×", with: "x").replacingOccurrences(of: "→", with: "->")
        let selected = cases.filter { c in filter.map { c.name.contains($0) } ?? true }
        let runs = selected.flatMap { c in chosenBackends.map { (c, $0) } }
        var results: [CaseResult] = []
        var peakSquare = 0.0, peakConvLike = 0.0, sgemmCPU = 0.0
        var rng = SplitMix64(seed: 1)
        let a = Tensor.uniform([2048, 2048], rng: &rng), b = Tensor.uniform([2048, 2048], rng: &rng)
        for round in 1...max(rounds, 1) {
            let square = KernelBenchmarks.sgemmGFLOPS(m: 2048, n: 2048, k: 2048, repeats: repeats)
            // The GEMM a 3×3 64→64 conv at 64² performs per image: [64 × 576]·[576 × 4096].
            let convLike = KernelBenchmarks.sgemmGFLOPS(m: 64, n: 4096, k: 576, repeats: repeats * 4)
            // GFLOP per CPU-second of the same sgemm (through Tensor.matmul): a load-robust companion to
            // the wall-clock peak, since on a shared machine descheduling inflates wall times only.
            let t = Self.bestWallAndCPU(repeats: repeats) { _ = Tensor.noGrad { Tensor.matmul(a, b) } }
            let perCPUSecond = 2 * 2048 * 2048 * 2048 / t.cpu / 1e9
            peakSquare = max(peakSquare, square); peakConvLike = max(peakConvLike, convLike)
            sgemmCPU = max(sgemmCPU, perCPUSecond)
            let roundPeak = max(square, convLike)
            var roundLine: [String] = []
            for (index, (c, backend)) in runs.enumerated() {
                let measured = TensorRuntime.withConvBackend(backend) { Self.measure(c, batch: batch, repeats: repeats) }
                if round == 1 { results.append(CaseResult(name: c.name, backend: backend, flops: measured.flops)) }
                results[index].keepFastest(forward: measured.forward, training: measured.training)
                let label = chosenBackends.count > 1 ? "\(c.name) \(backend.rawValue)" : c.name
                roundLine.append(String(format: "%@ %.0f%%/%.0f%%", label as NSString,
                                        100 * measured.flops / measured.forward.wall / 1e9 / roundPeak,
                                        300 * measured.flops / measured.training.wall / 1e9 / roundPeak))
            }
            if rounds > 1 {
                print(String(format: "round %d: sgemm %.1f GFLOP/s; fwd/fwd+bwd %% of it: ", round, roundPeak)
                      + roundLine.joined(separator: ", "))
            }
        }
        let peak = max(peakSquare, peakConvLike)
        print(String(format: "sgemm n=2048:              %7.1f GFLOP/s  (%.1f GFLOP per CPU-second)", peakSquare, sgemmCPU))
        print(String(format: "sgemm 64x4096x576 (conv):  %7.1f GFLOP/s", peakConvLike))
        print("conv2d, batch \(batch) (GFLOP/s and % of the sgemm peak \(String(format: "%.1f", peak))"
              + (rounds > 1 ? ", each the fastest of \(rounds) rounds):" : "):"))
        print("  case                 backend    fwd GFLOP/s  (% peak)   fwd+bwd GFLOP/s  (% peak)   fwd ms   fwd+bwd ms"
              + "   CPU-time efficiency fwd / fwd+bwd (% of sgemm's GFLOP per CPU-second)")
        for r in results {
            let fwd = r.flops / r.forward.wall / 1e9, both = 3 * r.flops / r.training.wall / 1e9
            let fwdCPU = r.flops / r.forward.cpu / 1e9, bothCPU = 3 * r.flops / r.training.cpu / 1e9
            print(String(format: "  %-20@ %-9@ %9.1f  (%5.1f%%)   %13.1f  (%5.1f%%)   %6.2f   %8.2f   %5.1f%% / %5.1f%%",
                         r.name as NSString, r.backend.rawValue as NSString, fwd, 100 * fwd / peak, both, 100 * both / peak,
                         r.forward.wall * 1e3, r.training.wall * 1e3, 100 * fwdCPU / sgemmCPU, 100 * bothCPU / sgemmCPU))
        }
        // The machine may be shared: numbers are only comparable at similar load.
        print("load average after: \(Self.loadAverage())")
    }

    /// Fastest forward and forward+backward (wall and process CPU seconds) of one case at `batch`,
    /// on the current backend, and its forward FLOPs (forward+backward counts 3×).
    static func measure(_ c: ConvCase, batch: Int, repeats: Int)
        -> (flops: Double, forward: (wall: Double, cpu: Double), training: (wall: Double, cpu: Double)) {
        var rng = SplitMix64(seed: 7)
        let x = Tensor.normal([batch, c.inC, c.size, c.size], rng: &rng, requiresGrad: true)
        let w = Tensor.normal([c.outC, c.inC / c.groups, c.kernel, c.kernel], std: 0.05, rng: &rng, requiresGrad: true)
        let flops = KernelBenchmarks.conv2dFLOPs(inputShape: x.shape, weightShape: w.shape, stride: c.stride,
                                                 padding: c.padding, groups: c.groups)
        let forward = bestWallAndCPU(repeats: repeats) {
            _ = Tensor.noGrad { Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups) }
        }
        let seed = Tensor.ones([batch, c.outC, c.size / c.stride, c.size / c.stride])
        let training = bestWallAndCPU(repeats: repeats) {
            x.grad = nil; w.grad = nil
            Tensor.conv2d(x, weight: w, stride: c.stride, padding: c.padding, groups: c.groups).backward(seed)
        }
        return (flops, forward, training)
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
