// Special functions for the Gamma distribution, in double precision and pure Swift (no libm
// lgamma: glibc's writes the global `signgam`, which is not safe under concurrency).
import Foundation

/// log Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms: relative error ~1e-15).
func logGamma(_ x: Double) -> Double {
    if x < 0.5 {
        // Reflection keeps the Lanczos sum in its accurate range.
        return log(Double.pi / sin(Double.pi * x)) - logGamma(1 - x)
    }
    let coefficients: [Double] = [
        0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
        -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
        1.5056327351493116e-7,
    ]
    let z = x - 1
    var sum = coefficients[0]
    for i in 1..<coefficients.count { sum += coefficients[i] / (z + Double(i)) }
    let t = z + 7.5
    return 0.5 * log(2 * Double.pi) + (z + 0.5) * log(t) - t + log(sum)
}

/// ψ(x) = d/dx log Γ(x) for x > 0: recurrence up to x >= 12, then the asymptotic series
/// (first omitted term 691 / (32760 x^12) < 3e-15 there).
func digamma(_ x: Double) -> Double {
    var x = x, result = 0.0
    while x < 12 { result -= 1 / x; x += 1 }
    let inverse = 1 / x, inverse2 = inverse * inverse
    let series = inverse2 * (1.0 / 12 - inverse2 * (1.0 / 120 - inverse2 * (1.0 / 252 - inverse2
        * (1.0 / 240 - inverse2 * (1.0 / 132)))))
    return result + log(x) - 0.5 * inverse - series
}

/// ψ'(x) for x > 0: recurrence up to x >= 12, then the asymptotic series
/// 1/x + 1/(2x²) + Σ B_2n / x^(2n+1) (first omitted term 7 / (6 x^15) < 1e-16 there).
func trigamma(_ x: Double) -> Double {
    var x = x, result = 0.0
    while x < 12 { result += 1 / (x * x); x += 1 }
    let inverse = 1 / x, inverse2 = inverse * inverse
    let series = inverse + inverse2 / 2 + inverse * inverse2 * (1.0 / 6 - inverse2 * (1.0 / 30 - inverse2
        * (1.0 / 42 - inverse2 * (1.0 / 30 - inverse2 * (5.0 / 66 - inverse2 * (691.0 / 2730))))))
    return result + series
}

/// Regularised incomplete gamma functions (P, Q) = (γ(a,x)/Γ(a), Γ(a,x)/Γ(a)), both returned so the
/// smaller one keeps full relative precision (Q in the far upper tail is what thresholds need).
func regularizedGamma(a: Double, x: Double) -> (lower: Double, upper: Double) {
    precondition(a > 0, "shape must be positive")
    if x <= 0 { return (0, 1) }
    if x.isInfinite { return (1, 0) }
    let logPrefactor = a * log(x) - x - logGamma(a)
    if x < a + 1 {
        // Series: γ(a,x) = e^-x x^a Σ x^n / (a (a+1) ... (a+n)).
        var term = 1 / a, sum = term, n = 1.0
        while abs(term) > abs(sum) * 1e-17 && n < 1e7 {
            term *= x / (a + n)
            sum += term
            n += 1
        }
        let lower = min(1, exp(logPrefactor) * sum)
        return (lower, 1 - lower)
    }
    // Continued fraction for Γ(a,x) (modified Lentz).
    let tiny = 1e-300
    var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
    var i = 1.0
    while i < 1e7 {
        let an = -i * (i - a)
        b += 2
        d = an * d + b
        if abs(d) < tiny { d = tiny }
        c = b + an / c
        if abs(c) < tiny { c = tiny }
        d = 1 / d
        let delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16 { break }
        i += 1
    }
    let upper = min(1, exp(logPrefactor) * h)
    return (1 - upper, upper)
}

/// Standard normal quantile, Abramowitz & Stegun 26.2.23 (|error| < 4.5e-4): only a starting point.
func approximateNormalQuantile(_ p: Double) -> Double {
    let tail = min(p, 1 - p)
    let t = (-2 * log(tail)).squareRoot()
    let z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
        / (1 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
    return p < 0.5 ? -z : z
}

/// The x with P(a, x) = lower (equivalently Q(a, x) = upper = 1 - lower). Pass both so a tail
/// probability like 1e-9 is not lost to rounding in 1 - 1e-9. Bracketed Newton on the logarithm
/// of the smaller of P and Q (bisection whenever a step leaves the bracket), to ~1e-14 relative.
func inverseRegularizedGamma(a: Double, lower: Double, upper: Double) -> Double {
    precondition(a > 0 && lower > 0 && upper > 0, "needs a > 0 and a probability strictly inside (0, 1)")
    let useUpper = upper < lower
    let target = log(useUpper ? upper : lower)
    // Starting point: Wilson–Hilferty for a >= 1, the small-a power/exponential forms otherwise.
    var x: Double
    if a >= 1 {
        let z = approximateNormalQuantile(lower)
        let cube = 1 - 1 / (9 * a) + z / (3 * a.squareRoot())
        x = cube > 0 ? a * cube * cube * cube : a * 0.01
    } else {
        let t = 1 - a * (0.253 + a * 0.12)
        x = lower < t ? pow(lower / t, 1 / a) : 1 - log(1 - (lower - t) / (1 - t))
    }
    if !(x > 0) || !x.isFinite { x = a }
    let logGammaA = logGamma(a)
    // f(x) = log(P or Q)(x) - target, increasing in x for P and decreasing for Q; sign-normalise so
    // that `excess > 0` means x is too large.
    func excessAndSlope(_ x: Double) -> (excess: Double, slope: Double) {
        let (p, q) = regularizedGamma(a: a, x: x)
        let density = exp((a - 1) * log(x) - x - logGammaA)
        if useUpper { return (target - log(q), density / q) }
        return (log(p) - target, density / p)
    }
    var low = 0.0, high = Double.infinity
    for _ in 0..<300 {
        let (excess, slope) = excessAndSlope(x)
        if excess == 0 { return x }
        if excess > 0 { high = x } else { low = x }
        var next = x - excess / slope
        if !(next > low && next < high) || !next.isFinite {
            next = high.isFinite ? (low + high) / 2 : max(2 * x, x + 1)
        }
        if abs(next - x) <= 1e-15 * x || (high.isFinite && high - low <= 1e-15 * high) { return next }
        x = next
    }
    return x
}
