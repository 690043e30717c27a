import ArgumentParser
import Foundation
import KdadNN
import KdadTensor
import KdadWeights

/// Teacher forward throughput: EfficientNet-Lite up to a block (the students' trunk) and the full
/// network with logits, fused (BN-folded) inference path under `Tensor.noGrad`, random input.
struct BenchTeacher: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacher",
        abstract: "Teacher forward throughput (images/s) for EfficientNet-Lite trunk and full network.")

    @Option(help: "Variant: lite0, lite1 or lite2.") var variant: String = "lite0"
    @Option(help: "Comma-separated input sizes.") var sizes: String = "224,256"
    @Option(help: "Batch size.") var batch: Int = 16
    @Option(help: "Deepest block of the trunk configuration.") var trunkBlock: Int = 7
    @Option(help: "Timed batches per configuration (after one warm-up batch).") var iterations: Int = 5
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Option(help: "Weights file (default: the cache's ImageNet weights).") var weights: String?
    @Option(help: "Images per fused sub-batch (default: the model's).") var microBatch: Int?
    @Flag(help: "Split each layer across threads instead of running whole images in parallel.") var layerParallel = false
    @Flag(help: "Use the tensor engine's conv2d instead of KdadNN's inference kernels (comparison).") var engineKernels = false
    @Flag(help: "Print a per-operation time breakdown (one extra sequential pass; CPU time when --threads 1).") var profile = false
    @Flag(help: "Print JSON lines instead of a table.") var json = false

    func run() async throws {
        try InferenceThreading.$engineKernelsOnly.withValue(engineKernels) { try runBench() }
    }

    func runBench() throws {
        guard let v = EfficientNetLiteVariant(rawValue: variant) else { throw ValidationError("unknown variant \(variant)") }
        let sizeList = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizeList.isEmpty, sizeList.allSatisfy({ $0 >= 32 }) else { throw ValidationError("sizes must be integers ≥ 32") }
        guard batch >= 1, iterations >= 1 else { throw ValidationError("batch and iterations must be ≥ 1") }
        if let threads { TensorRuntime.setThreadCount(threads) }
        let model: EfficientNetLite
        if let weights {
            model = try EfficientNetLite(variant: v, weightsAt: URL(fileURLWithPath: weights))
        } else {
            model = try EfficientNetLite.pretrained(v)
        }
        guard trunkBlock >= 0, trunkBlock < model.blocks.count else {
            throw ValidationError("trunk block must be in 0..<\(model.blocks.count)")
        }
        model.fuseForInference()
        if let microBatch { model.microBatch = max(1, microBatch) }
        model.imageParallel = !layerParallel
        if !json {
            print("kdad bench teacher: efficientnet-\(v.rawValue), batch \(batch), \(TensorRuntime.threadCount) thread(s), fused BN, \(iterations) timed batches")
        }
        for size in sizeList {
            let input = Tensor(shape: [batch, 3, size, size], repeating: 0.1)
            // Deterministic non-constant input (throughput does not depend on values, but avoid denormals).
            input.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = Float((i * 7919) % 2001) / 1000 - 1 } }
            for (name, features) in [("trunk to block\(String(format: "%02d", trunkBlock))", Set([LiteFeature.block(trunkBlock)])),
                                     ("full (logits)", Set([LiteFeature.logits]))] {
                _ = Tensor.noGrad { model.forward(input, features: features) }  // warm-up
                var times: [Double] = []
                let cpuStart = processCPUSeconds()
                for _ in 0..<iterations {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = Tensor.noGrad { model.forward(input, features: features) }
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                // CPU seconds per image (all threads): on a machine shared with other work, wall time
                // includes waiting for the cores; CPU time does not.
                let cpuPerImage = (processCPUSeconds() - cpuStart) / Double(iterations * batch)
                let best = times.min()!, median = times.sorted()[times.count / 2]
                let ips = Double(batch) / median
                if json {
                    print("{\"variant\":\"\(v.rawValue)\",\"size\":\(size),\"batch\":\(batch),\"config\":\"\(name)\",\"images_per_second\":\(String(format: "%.2f", ips)),\"best_images_per_second\":\(String(format: "%.2f", Double(batch) / best)),\"cpu_ms_per_image\":\(String(format: "%.2f", cpuPerImage * 1000))}")
                } else {
                    print(String(format: "%4d²  %-22@ %8.1f img/s (median of %d; best %.1f img/s; %.1f ms/batch; %.1f CPU ms/image)",
                                 size, name as NSString, ips, iterations, Double(batch) / best, median * 1000, cpuPerImage * 1000))
                }
                if profile {
                    // One thread: CPU time per op (unaffected by other load); several: wall time.
                    let profiler = OpProfiler(clock: TensorRuntime.threadCount == 1 ? .threadCPU : .wall)
                    _ = Tensor.noGrad { model.forward(input, features: features, profiler: profiler) }
                    for row in profiler.report() {
                        print(String(format: "        %-28@ %7.1f ms  %5.1f%%%@", row.label as NSString, row.seconds * 1000, row.share * 100,
                                     (row.gflops > 0 ? String(format: "  %6.1f GFLOP/s", row.gflops) : "") as NSString))
                    }
                }
            }
        }
    }
}

/// User + system CPU time of this process, all threads.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
