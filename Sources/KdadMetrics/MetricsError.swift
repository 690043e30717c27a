/// Why a metric or threshold could not be computed. Every case names the input it is about (`what`),
/// so a caller evaluating many groups can tell which one failed.
public enum MetricsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No values at all (no scores, no pixels, no images).
    case emptyInput(what: String)
    /// Two arrays that must be parallel have different lengths.
    case lengthMismatch(what: String, expected: Int, actual: Int)
    /// A score is NaN (the order of scores is then undefined).
    case nanScore(what: String, index: Int)
    /// A score is infinite where a finite value is needed (quantiles, Gamma fits).
    case infiniteScore(what: String, index: Int)
    /// The labels contain only one class, so a ranking metric is undefined.
    case missingClass(what: String, missing: String)
    /// All scores are equal, so a distribution cannot be fitted.
    case constantScores(what: String, value: Double)
    /// An argument is outside its valid range.
    case invalidArgument(name: String, value: Double, reason: String)
    /// Image geometry does not match the map length.
    case invalidGeometry(what: String, width: Int, height: Int, pixelCount: Int)
    /// A numerical routine did not converge.
    case noConvergence(what: String, detail: String)
    /// Some images carry pixel maps and others do not, so pixel metrics would cover a partial set.
    case inconsistentPixelData(what: String, detail: String)

    public var description: String {
        switch self {
        case let .emptyInput(what):
            return "\(what): no values to evaluate"
        case let .lengthMismatch(what, expected, actual):
            return "\(what): length mismatch, expected \(expected) values but got \(actual)"
        case let .nanScore(what, index):
            return "\(what): score at index \(index) is NaN"
        case let .infiniteScore(what, index):
            return "\(what): score at index \(index) is infinite"
        case let .missingClass(what, missing):
            return "\(what): no \(missing) samples, the metric needs both classes"
        case let .constantScores(what, value):
            return "\(what): all scores equal \(value), cannot fit a distribution"
        case let .invalidArgument(name, value, reason):
            return "invalid \(name) = \(value): \(reason)"
        case let .invalidGeometry(what, width, height, pixelCount):
            return "\(what): \(width)x\(height) does not match \(pixelCount) pixels"
        case let .noConvergence(what, detail):
            return "\(what): did not converge (\(detail))"
        case let .inconsistentPixelData(what, detail):
            return "\(what): \(detail)"
        }
    }
}

/// Throws on the first NaN (and, if `requireFinite`, infinite) value.
func validateScores(_ scores: [Float], what: String, requireFinite: Bool = false) throws(MetricsError) {
    for (index, score) in scores.enumerated() {
        if score.isNaN { throw .nanScore(what: what, index: index) }
        if requireFinite && score.isInfinite { throw .infiniteScore(what: what, index: index) }
    }
}
