import Foundation
import XCTest
@testable import KdadMetrics

final class ThresholdTests: XCTestCase {
    func testQuantileType7() throws {
        // Sorted [1, 1, 3, 4, 5], q = 0.3: h = 4 * 0.3 = 1.2 -> x[1] + 0.2 (x[2] - x[1]) = 1 + 0.4 = 1.4
        // (numpy.quantile([3, 1, 4, 1, 5], 0.3) = 1.4).
        XCTAssertEqual(try quantileThreshold(scores: [3, 1, 4, 1, 5], q: 0.3), 1.4, accuracy: 1e-12)
        XCTAssertEqual(try quantileThreshold(scores: [3, 1, 4, 1, 5], q: 0), 1)
        XCTAssertEqual(try quantileThreshold(scores: [3, 1, 4, 1, 5], q: 1), 5)
        XCTAssertEqual(try quantileThreshold(scores: [3, 1, 4, 1, 5], q: 0.5), 3)
        XCTAssertEqual(try quantileThreshold(scores: [2], q: 0.99), 2)
        XCTAssertEqual(try quantileThreshold(scores: [7, 7, 7], q: 0.9), 7)  // constant is well defined
        XCTAssertThrowsMetricsError(try quantileThreshold(scores: [], q: 0.5), .emptyInput(what: "quantile threshold"))
        XCTAssertThrowsMetricsError(try quantileThreshold(scores: [1, .nan], q: 0.5), .nanScore(what: "quantile threshold", index: 1))
        XCTAssertThrowsMetricsError(try quantileThreshold(scores: [1], q: 1.5),
                                    .invalidArgument(name: "q", value: 1.5, reason: "must be in [0, 1]"))
    }

    func testSpecialFunctionsKnownValues() {
        XCTAssertEqual(logGamma(0.5), 0.5 * log(Double.pi), accuracy: 1e-14)  // Γ(1/2) = √π
        XCTAssertEqual(logGamma(10), log(362_880.0), accuracy: 1e-13)  // Γ(10) = 9!
        XCTAssertEqual(logGamma(0.1), 2.252712651734206, accuracy: 1e-13)  // Γ(0.1) = 9.5135...
        XCTAssertEqual(digamma(1), -0.5772156649015329, accuracy: 1e-14)  // -Euler–Mascheroni
        XCTAssertEqual(trigamma(1), Double.pi * Double.pi / 6, accuracy: 1e-13)
        // scipy.stats.gamma.cdf(2.5, 3) and gamma.sf(30, 2) = 31 e^-30.
        XCTAssertEqual(regularizedGamma(a: 3, x: 2.5).lower, 0.45618688411667035, accuracy: 1e-14)
        XCTAssertEqual(regularizedGamma(a: 2, x: 30).upper, 31 * exp(-30.0), accuracy: 1e-25)
        // a = 1 is the exponential distribution: P = 1 - e^-x.
        XCTAssertEqual(regularizedGamma(a: 1, x: 0.7).lower, 1 - exp(-0.7), accuracy: 1e-15)
    }

    func testChiSquareQuantiles() throws {
        // χ²_k = Gamma(k/2, scale 2). Expected values: scipy.stats.chi2.ppf.
        let cases: [(k: Double, p: Double, expected: Double)] = [
            (1, 0.95, 3.841458820694124), (2, 0.95, 5.991464547107979), (10, 0.99, 23.209251158954356),
            (3, 0.999, 16.26623619623813), (5, 0.05, 1.1454762260617692), (1, 0.5, 0.454936423119572),
            (1, 0.01, 0.00015708785790970184),
        ]
        for c in cases {
            let distribution = GammaFit(shape: c.k / 2, scale: 2, location: 0, method: .maximumLikelihood, sampleCount: 0)
            XCTAssertEqual(try distribution.quantile(c.p), c.expected, accuracy: 1e-11 * c.expected, "k \(c.k) p \(c.p)")
        }
        // Far tail: chi2.isf(1e-9, 4) = 47.87945573114794, also the root of e^-y (1 + y) = 1e-9 at
        // x = 2y (closed form of the χ²_4 survival; mpmath gives 47.8794557311479468). Note that
        // chi2.ppf(1 - 1e-9, 4) = 47.8794557900 is off in the 9th digit: 1 - 1e-9 is rounded before
        // the inversion, which is why the tail is solved from the upper probability directly.
        let chi4 = GammaFit(shape: 2, scale: 2, location: 0, method: .maximumLikelihood, sampleCount: 0)
        XCTAssertEqual(try chi4.upperQuantile(tailProbability: 1e-9), 47.87945573114794, accuracy: 1e-12)
        // Small and large shapes: scipy.stats.gamma.ppf(0.3, 0.2), gamma.isf(1e-6, 0.3), gamma.ppf(0.999, 400).
        let small = GammaFit(shape: 0.2, scale: 1, location: 0, method: .maximumLikelihood, sampleCount: 0)
        XCTAssertEqual(try small.quantile(0.3), 0.0015877907243441144, accuracy: 1e-15)
        let smallTail = GammaFit(shape: 0.3, scale: 1, location: 0, method: .maximumLikelihood, sampleCount: 0)
        XCTAssertEqual(try smallTail.upperQuantile(tailProbability: 1e-6), 10.984835632108625, accuracy: 1e-10)
        let large = GammaFit(shape: 400, scale: 1, location: 0, method: .maximumLikelihood, sampleCount: 0)
        XCTAssertEqual(try large.quantile(0.999), 464.6644601732239, accuracy: 1e-9)
        // Quantile and CDF are inverses.
        for p in [1e-6, 0.2, 0.5, 0.97] { XCTAssertEqual(chi4.cdf(try chi4.quantile(p)), p, accuracy: 1e-12 * max(p, 1e-3)) }
    }

    func testTwoParameterFitRecoversKnownGamma() throws {
        // n = 5000 from Gamma(2.5, 1.5). MLE standard errors: sd(k) ≈ sqrt(k / (n (k ψ'(k) - 1)))
        // ≈ 0.047 (1.9 %); tolerances are about 3 standard errors.
        var generator = SeededGenerator(seed: 2024)
        let samples = (0..<5000).map { _ in Float(generator.gamma(shape: 2.5, scale: 1.5)) }
        let fit = try fitGamma(scores: samples, location: .zero)
        XCTAssertEqual(fit.method, .maximumLikelihood)
        XCTAssertEqual(fit.shape, 2.5, accuracy: 0.15)
        XCTAssertEqual(fit.shape * fit.scale, 3.75, accuracy: 0.09)  // mean: sd 3.75 / sqrt(2.5 n) ≈ 0.034
        // MLE property: the fitted mean equals the sample mean exactly.
        let sampleMean = samples.reduce(0.0) { $0 + Double($1) } / 5000
        XCTAssertEqual(fit.shape * fit.scale, sampleMean, accuracy: 1e-9)
        // Small shape too (heavily skewed, many scores near 0): Gamma(0.6, 2), sd(k) ≈ 0.010.
        let skewed = (0..<5000).map { _ in Float(generator.gamma(shape: 0.6, scale: 2)) }
        XCTAssertEqual(try fitGamma(scores: skewed, location: .zero).shape, 0.6, accuracy: 0.035)
    }

    func testShiftedFitRecoversLocationAndTail() throws {
        // Offset scores, as from a distillation distance: 5 + Gamma(3, 0.5).
        var generator = SeededGenerator(seed: 99)
        let samples = (0..<5000).map { _ in Float(5 + generator.gamma(shape: 3, scale: 0.5)) }
        let fit = try fitGamma(scores: samples, location: .maximumLikelihood)
        XCTAssertEqual(fit.location, 5, accuracy: 0.15)
        XCTAssertEqual(fit.shape, 3, accuracy: 0.6)
        XCTAssertEqual(fit.location + fit.shape * fit.scale, 6.5, accuracy: 0.03)
        // The fitted 3-parameter model must beat the 2-parameter one on likelihood.
        XCTAssertGreaterThan(fit.logLikelihood(samples), try fitGamma(scores: samples, location: .zero).logLikelihood(samples))
        // The threshold at tail 1e-3 is close to the true 0.999 quantile 5 + 0.5 * gamma.ppf(0.999, 3)
        // = 5 + 0.5 * 11.229 = 10.615; a 2-parameter fit at 0 underestimates the tail.
        let threshold = try gammaThreshold(scores: samples, tailProbability: 1e-3)
        XCTAssertEqual(threshold, 10.615, accuracy: 0.35)
        let fresh = (0..<200_000).map { _ in 5 + generator.gamma(shape: 3, scale: 0.5) }
        let exceed = Double(fresh.filter { $0 > threshold }.count) / Double(fresh.count)
        XCTAssertEqual(exceed, 1e-3, accuracy: 0.6e-3)
        // The fixed-margin variant lands nearby.
        let margin = try fitGamma(scores: samples, location: .belowMinimum(marginFraction: 0.02))
        XCTAssertEqual(margin.location + margin.shape * margin.scale, 6.5, accuracy: 0.03)
    }

    func testGammaErrors() {
        XCTAssertThrowsMetricsError(try fitGamma(scores: []), .emptyInput(what: "Gamma fit"))
        XCTAssertThrowsMetricsError(try fitGamma(scores: [1, .nan]), .nanScore(what: "Gamma fit", index: 1))
        XCTAssertThrowsMetricsError(try fitGamma(scores: [1, .infinity]), .infiniteScore(what: "Gamma fit", index: 1))
        XCTAssertThrowsMetricsError(try fitGamma(scores: [2, 2, 2]), .constantScores(what: "Gamma fit", value: 2))
        XCTAssertThrowsMetricsError(try fitGamma(scores: [-1, 2], location: .zero),
                                    .invalidArgument(name: "minimum score", value: -1, reason: "a Gamma fit at location 0 needs scores > 0"))
        XCTAssertThrowsMetricsError(try gammaThreshold(scores: [1, 2, 3], tailProbability: 0),
                                    .invalidArgument(name: "tailProbability", value: 0, reason: "must be in (0, 1)"))
    }
}
