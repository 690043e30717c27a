import Foundation

/// Accumulates wall time per operation label during forward passes (for `kdad bench teacher --profile`).
/// A class: one profiler is shared by every layer of a pass. Not thread-safe; forward passes are
/// sequential at the layer level (parallelism is inside the kernels).
public final class OpProfiler: @unchecked Sendable {
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]
    public private(set) var flops: [String: Double] = [:]

    /// Wall time, or the calling thread's CPU time (meaningful with one thread; robust on a busy machine).
    public enum Clock: Sendable { case wall, threadCPU }
    public let clock: Clock

    public init(clock: Clock = .wall) { self.clock = clock }

    func now() -> UInt64 {
        switch clock {
        case .wall: return DispatchTime.now().uptimeNanoseconds
        case .threadCPU:
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
        }
    }

    public func reset() { seconds = [:]; calls = [:]; flops = [:] }

    @discardableResult
    func measure<R>(_ label: String, flops work: Double = 0, _ body: () -> R) -> R {
        let start = now()
        let result = body()
        seconds[label, default: 0] += Double(now() - start) / 1e9
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
