import Foundation

/// Accumulates wall time per operation label during forward passes (for `kdad bench teacher --profile`).
/// A class: one profiler is shared by every layer of a pass. Not thread-safe; forward passes are
/// sequential at the layer level (parallelism is inside the kernels).
public final class OpProfiler: @unchecked Sendable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]
    public private(set) var flops: [String: Double] = [:]

    public init() {}

    public func reset() { seconds = [:]; calls = [:]; flops = [:] }

    @discardableResult
    func measure<R>(_ label: String, flops work: Double = 0, _ body: () -> R) -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        seconds[label, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        calls[label, default: 0] += 1
        flops[label, default: 0] += work
        return result
    }

    /// Labels by descending time: (label, seconds, share of total, GFLOP/s).
    public func report() -> [(label: String, seconds: Double, share: Double, gflops: Double)] {
        let total = seconds.values.reduce(0, +)
        return seconds.sorted { $0.value > $1.value }.map { label, s in
            (label, s, total > 0 ? s / total : 0, s > 0 ? (flops[label] ?? 0) / s / 1e9 : 0)
        }
    }
}
