// Decision thresholds without labels, chosen from scores of defect-free held-out images.
import Foundation

/// The `q`-quantile of `scores` with linear interpolation between order statistics: Hyndman & Fan
/// type 7, numpy's default. Sorted values x[0] <= ... <= x[n-1], h = (n - 1) q, result
/// x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). Constant scores are fine (the constant).
public func quantileThreshold(scores: [Float], q: Double) throws(MetricsError) -> Double {
    let what = "quantile threshold"
    guard !scores.isEmpty else { throw .emptyInput(what: what) }
    guard q >= 0, q <= 1 else { throw .invalidArgument(name: "q", value: q, reason: "must be in [0, 1]") }
    try validateScores(scores, what: what, requireFinite: true)
    let sorted = scores.map(Double.init).sorted()
    let h = Double(sorted.count - 1) * q
    let lowIndex = Int(h.rounded(.down))
    let highIndex = min(lowIndex + 1, sorted.count - 1)
    return sorted[lowIndex] + (h - Double(lowIndex)) * (sorted[highIndex] - sorted[lowIndex])
}

/// How the location (lower end) of the fitted Gamma distribution is chosen. Anomaly scores are
/// rarely near zero (a distillation distance has an offset), and a 2-parameter Gamma fitted to
/// offset data underestimates the skew of the upper tail.
public enum GammaLocation: Sendable, Equatable {
    /// Scores ~ Gamma(k, θ): the classic 2-parameter fit; every score must be > 0.
    case zero
    /// Scores - c ~ Gamma(k, θ) for the given c; every score must be > c.
    case fixed(Double)
    /// c = min - marginFraction * (max - min), a simple shifted fit.
    case belowMinimum(marginFraction: Double)
    /// 3-parameter maximum likelihood: c maximises the profile likelihood (k, θ fitted by MLE for
    /// each c) over min - c in [(max - min) / n, 1000 (max - min)]. The lower bound is the typical
    /// spacing of the smallest order statistic; without it the likelihood is unbounded as c -> min
    /// when k < 1. The upper bound is where the Gamma is indistinguishable from a normal.
    case maximumLikelihood
}

/// A fitted shifted Gamma distribution: score = location + Gamma(shape k, scale θ).
public struct GammaFit: Sendable, Equatable, Codable {
    public enum Method: String, Sendable, Codable {
        /// Shape by Newton's method on log k - ψ(k) = log(mean y) - mean(log y), scale = mean y / k.
        case maximumLikelihood = "maximum_likelihood"
        /// k = mean² / variance, θ = variance / mean: used only if the MLE iteration fails.
        case methodOfMoments = "method_of_moments"
    }

    public var shape: Double
    public var scale: Double
    public var location: Double
    public var method: Method
    public var sampleCount: Int

    public init(shape: Double, scale: Double, location: Double, method: Method, sampleCount: Int) {
        self.shape = shape
        self.scale = scale
        self.location = location
        self.method = method
        self.sampleCount = sampleCount
    }

    /// P(score <= x).
    public func cdf(_ x: Double) -> Double {
        regularizedGamma(a: shape, x: (x - location) / scale).lower
    }

    /// P(score > x), accurate far into the tail.
    public func survival(_ x: Double) -> Double {
        regularizedGamma(a: shape, x: (x - location) / scale).upper
    }

    /// The x with P(score > x) = tailProbability.
    public func upperQuantile(tailProbability: Double) throws(MetricsError) -> Double {
        guard tailProbability > 0, tailProbability < 1 else {
            throw .invalidArgument(name: "tailProbability", value: tailProbability, reason: "must be in (0, 1)")
        }
        return location + scale * inverseRegularizedGamma(a: shape, lower: 1 - tailProbability,
                                                          upper: tailProbability)
    }

    /// The x with P(score <= x) = probability.
    public func quantile(_ probability: Double) throws(MetricsError) -> Double {
        guard probability > 0, probability < 1 else {
            throw .invalidArgument(name: "probability", value: probability, reason: "must be in (0, 1)")
        }
        return location + scale * inverseRegularizedGamma(a: shape, lower: probability, upper: 1 - probability)
    }

    /// Log-likelihood of the data under this fit (−∞ if a score is at or below the location).
    public func logLikelihood(_ scores: [Float]) -> Double {
        var total = 0.0
        let normaliser = logGamma(shape) + shape * log(scale)
        for score in scores {
            let y = Double(score) - location
            if y <= 0 { return -.infinity }
            total += (shape - 1) * log(y) - y / scale - normaliser
        }
        return total
    }
}

/// Sufficient statistics of y = score - location for the Gamma MLE.
private struct ShiftedStatistics {
    var mean: Double
    /// s = log(mean y) - mean(log y) >= 0, computed as -mean(log(y / mean y)) to avoid cancellation.
    var logMeanMinusMeanLog: Double
    var meanLog: Double
    var variance: Double
}

private func shiftedStatistics(_ values: [Double], location: Double) -> ShiftedStatistics {
    let n = Double(values.count)
    let mean = values.reduce(0) { $0 + ($1 - location) } / n
    var s = 0.0, variance = 0.0
    for value in values {
        let y = value - location
        s -= log(y / mean)
        variance += (y - mean) * (y - mean)
    }
    s /= n
    return ShiftedStatistics(mean: mean, logMeanMinusMeanLog: max(s, 0), meanLog: log(mean) - s,
                             variance: variance / n)
}

/// MLE of (k, θ) from the statistics: Newton on f(k) = log k - ψ(k) - s, f'(k) = 1/k - ψ'(k) < 0,
/// started at the Choi–Wette/Minka approximation k0 = (3 - s + √((s - 3)² + 24 s)) / (12 s).
/// Falls back to the method of moments if the iteration leaves the valid range.
private func fitShape(_ stats: ShiftedStatistics) -> (shape: Double, scale: Double, method: GammaFit.Method) {
    let s = stats.logMeanMinusMeanLog
    if s > 0 {
        var k = (3 - s + ((s - 3) * (s - 3) + 24 * s).squareRoot()) / (12 * s)
        for _ in 0..<100 {
            let f = log(k) - digamma(k) - s
            let slope = 1 / k - trigamma(k)
            var next = k - f / slope
            if !(next > 0) { next = k / 2 }
            let converged = abs(next - k) <= 1e-13 * k
            k = next
            if converged || !k.isFinite { break }
        }
        if k.isFinite && k > 0 && k < 1e15 {
            return (k, stats.mean / k, .maximumLikelihood)
        }
    }
    let k = stats.mean * stats.mean / stats.variance
    return (k, stats.variance / stats.mean, .methodOfMoments)
}

/// Fits a shifted Gamma distribution to (defect-free) scores. Needs at least 2 distinct finite scores.
public func fitGamma(scores: [Float], location: GammaLocation = .maximumLikelihood) throws(MetricsError) -> GammaFit {
    let what = "Gamma fit"
    guard !scores.isEmpty else { throw .emptyInput(what: what) }
    try validateScores(scores, what: what, requireFinite: true)
    let values = scores.map(Double.init)
    let minimum = values.min()!, maximum = values.max()!
    guard maximum > minimum else { throw .constantScores(what: what, value: minimum) }
    let range = maximum - minimum

    func fit(at c: Double) -> GammaFit {
        let stats = shiftedStatistics(values, location: c)
        let (k, theta, method) = fitShape(stats)
        return GammaFit(shape: k, scale: theta, location: c, method: method, sampleCount: values.count)
    }

    switch location {
    case .zero:
        guard minimum > 0 else {
            throw .invalidArgument(name: "minimum score", value: minimum, reason: "a Gamma fit at location 0 needs scores > 0")
        }
        return fit(at: 0)
    case let .fixed(c):
        guard c.isFinite, minimum > c else {
            throw .invalidArgument(name: "location", value: c, reason: "must be finite and below the smallest score \(minimum)")
        }
        return fit(at: c)
    case let .belowMinimum(marginFraction):
        guard marginFraction > 0, marginFraction.isFinite else {
            throw .invalidArgument(name: "marginFraction", value: marginFraction, reason: "must be > 0")
        }
        return fit(at: minimum - marginFraction * range)
    case .maximumLikelihood:
        // Profile log-likelihood over u = log(gap / range), gap = min - c.
        func profile(_ u: Double) -> (fit: GammaFit, logLikelihood: Double) {
            let candidate = fit(at: minimum - range * exp(u))
            let stats = shiftedStatistics(values, location: candidate.location)
            let k = candidate.shape, theta = candidate.scale
            // Per-sample log-likelihood from the statistics: (k-1) E[log y] - E[y]/θ - log Γ(k) - k log θ.
            let ll = (k - 1) * stats.meanLog - stats.mean / theta - logGamma(k) - k * log(theta)
            return (candidate, ll)
        }
        let lowU = log(1 / Double(values.count)), highU = log(1000.0)
        let gridCount = 48
        let grid = (0...gridCount).map { lowU + (highU - lowU) * Double($0) / Double(gridCount) }
        let profileValues = grid.map { profile($0).logLikelihood }
        var bestIndex = 0
        for index in profileValues.indices where profileValues[index] > profileValues[bestIndex] { bestIndex = index }
        // Golden-section refinement inside the neighbouring grid cells.
        var a = grid[max(bestIndex - 1, 0)], b = grid[min(bestIndex + 1, gridCount)]
        let ratio = (5.0.squareRoot() - 1) / 2
        var x1 = b - ratio * (b - a), x2 = a + ratio * (b - a)
        var f1 = profile(x1).logLikelihood, f2 = profile(x2).logLikelihood
        for _ in 0..<60 where b - a > 1e-10 {
            if f1 < f2 { a = x1; x1 = x2; f1 = f2; x2 = a + ratio * (b - a); f2 = profile(x2).logLikelihood }
            else { b = x2; x2 = x1; f2 = f1; x1 = b - ratio * (b - a); f1 = profile(x1).logLikelihood }
        }
        let refined = profile((a + b) / 2)
        return refined.logLikelihood >= profileValues[bestIndex] ? refined.fit : profile(grid[bestIndex]).fit
    }
}

/// The score above which a fraction `tailProbability` of defect-free images is expected to fall,
/// from a Gamma distribution fitted to defect-free scores (see `fitGamma`).
public func gammaThreshold(scores: [Float], tailProbability: Double,
                           location: GammaLocation = .maximumLikelihood) throws(MetricsError) -> Double {
    guard tailProbability > 0, tailProbability < 1 else {
        throw .invalidArgument(name: "tailProbability", value: tailProbability, reason: "must be in (0, 1)")
    }
    return try fitGamma(scores: scores, location: location).upperQuantile(tailProbability: tailProbability)
}
