// Image-level detection metrics: one score per image, one label per image (true = defective).
// Convention everywhere in this module: an image (or pixel) is *predicted* defective when
// score >= threshold, as in sklearn / torchmetrics / anomalib.

/// A point of a ROC curve: predicting "defect" for score >= `threshold` gives these rates.
public struct ROCPoint: Sendable, Equatable, Codable {
    public var threshold: Float
    public var falsePositiveRate: Double
    public var truePositiveRate: Double

    public init(threshold: Float, falsePositiveRate: Double, truePositiveRate: Double) {
        self.threshold = threshold
        self.falsePositiveRate = falsePositiveRate
        self.truePositiveRate = truePositiveRate
    }
}

/// Counts of a thresholded prediction and the rates derived from them.
public struct PrecisionRecall: Sendable, Equatable, Codable {
    public var threshold: Float
    public var truePositives: Int
    public var falsePositives: Int
    public var falseNegatives: Int
    public var trueNegatives: Int

    /// TP / (TP + FP); 1 when nothing is predicted defective (no false alarm was raised), the same
    /// convention as the end point of sklearn's precision-recall curve.
    public var precision: Double {
        let predicted = truePositives + falsePositives
        return predicted == 0 ? 1 : Double(truePositives) / Double(predicted)
    }

    /// TP / (TP + FN); the functions that build this value guarantee at least one defective sample.
    public var recall: Double {
        let actual = truePositives + falseNegatives
        return actual == 0 ? 0 : Double(truePositives) / Double(actual)
    }

    /// 2TP / (2TP + FP + FN), equal to the harmonic mean of precision and recall and 0 when TP = 0.
    public var f1: Double {
        let denominator = 2 * truePositives + falsePositives + falseNegatives
        return denominator == 0 ? 0 : Double(2 * truePositives) / Double(denominator)
    }
}

/// The best F1 over all thresholds and the threshold (a score value; predict defect for score >=
/// threshold) that achieves it.
public struct F1MaxResult: Sendable, Equatable, Codable {
    public var f1: Double
    public var threshold: Float
    public var precision: Double
    public var recall: Double
}

/// All samples sharing one score value: how many are defective (positives) and good (negatives).
struct TieGroup {
    var score: Float
    var positives: Int
    var negatives: Int
}

/// Checks parallel arrays and returns the tie groups in descending score order.
func descendingTieGroups(scores: [Float], labels: [Bool], what: String) throws(MetricsError) -> [TieGroup] {
    guard scores.count == labels.count else {
        throw .lengthMismatch(what: what, expected: scores.count, actual: labels.count)
    }
    guard !scores.isEmpty else { throw .emptyInput(what: what) }
    try validateScores(scores, what: what)
    let order = scores.indices.sorted { scores[$0] > scores[$1] }
    var groups: [TieGroup] = []
    for index in order {
        let score = scores[index]
        if groups.isEmpty || groups[groups.count - 1].score != score {
            groups.append(TieGroup(score: score, positives: 0, negatives: 0))
        }
        if labels[index] { groups[groups.count - 1].positives += 1 } else { groups[groups.count - 1].negatives += 1 }
    }
    return groups
}

func classCounts(_ groups: [TieGroup]) -> (positives: Int, negatives: Int) {
    groups.reduce((0, 0)) { ($0.0 + $1.positives, $0.1 + $1.negatives) }
}

/// Exact area under the ROC curve: the Mann–Whitney statistic P(score_defect > score_good) +
/// 1/2 P(score_defect == score_good), i.e. ties count one half. Equals the trapezoidal area under
/// `rocCurve` (a tie group is a diagonal segment).
public func imageAUROC(scores: [Float], labels: [Bool]) throws(MetricsError) -> Double {
    let what = "image AUROC"
    let groups = try descendingTieGroups(scores: scores, labels: labels, what: what)
    let (positives, negatives) = classCounts(groups)
    guard positives > 0 else { throw .missingClass(what: what, missing: "defective") }
    guard negatives > 0 else { throw .missingClass(what: what, missing: "good") }
    // Twice the Mann–Whitney U, kept in integers so it is exact.
    var twiceU = 0
    var negativesBelow = negatives
    for group in groups {
        negativesBelow -= group.negatives
        twiceU += 2 * group.positives * negativesBelow + group.positives * group.negatives
    }
    return Double(twiceU) / (2 * Double(positives) * Double(negatives))
}

/// The ROC curve at every distinct score, from (0, 0) at threshold +infinity to (1, 1) at the
/// smallest score. Tied scores give one point (a diagonal step).
public func rocCurve(scores: [Float], labels: [Bool]) throws(MetricsError) -> [ROCPoint] {
    let what = "ROC curve"
    let groups = try descendingTieGroups(scores: scores, labels: labels, what: what)
    let (positives, negatives) = classCounts(groups)
    guard positives > 0 else { throw .missingClass(what: what, missing: "defective") }
    guard negatives > 0 else { throw .missingClass(what: what, missing: "good") }
    var points = [ROCPoint(threshold: .infinity, falsePositiveRate: 0, truePositiveRate: 0)]
    var truePositives = 0, falsePositives = 0
    for group in groups {
        truePositives += group.positives
        falsePositives += group.negatives
        points.append(ROCPoint(threshold: group.score,
                               falsePositiveRate: Double(falsePositives) / Double(negatives),
                               truePositiveRate: Double(truePositives) / Double(positives)))
    }
    return points
}

/// The best F1 over every threshold equal to a distinct score. Among thresholds with the same F1
/// the highest is returned (fewest alarms). Needs at least one defective sample.
public func f1Max(scores: [Float], labels: [Bool]) throws(MetricsError) -> F1MaxResult {
    let what = "F1-max"
    let groups = try descendingTieGroups(scores: scores, labels: labels, what: what)
    let (positives, _) = classCounts(groups)
    guard positives > 0 else { throw .missingClass(what: what, missing: "defective") }
    var best = F1MaxResult(f1: -1, threshold: .infinity, precision: 1, recall: 0)
    var truePositives = 0, falsePositives = 0
    for group in groups {
        truePositives += group.positives
        falsePositives += group.negatives
        let counts = PrecisionRecall(threshold: group.score, truePositives: truePositives,
                                     falsePositives: falsePositives,
                                     falseNegatives: positives - truePositives, trueNegatives: 0)
        if counts.f1 > best.f1 {
            best = F1MaxResult(f1: counts.f1, threshold: group.score,
                               precision: counts.precision, recall: counts.recall)
        }
    }
    return best
}

/// Precision, recall and F1 when predicting defect for score >= `threshold`.
/// Needs at least one defective sample (recall is undefined otherwise).
public func precisionRecall(scores: [Float], labels: [Bool], threshold: Float) throws(MetricsError) -> PrecisionRecall {
    let what = "precision/recall"
    guard scores.count == labels.count else {
        throw .lengthMismatch(what: what, expected: scores.count, actual: labels.count)
    }
    guard !scores.isEmpty else { throw .emptyInput(what: what) }
    try validateScores(scores, what: what)
    if threshold.isNaN { throw .invalidArgument(name: "threshold", value: .nan, reason: "must not be NaN") }
    var result = PrecisionRecall(threshold: threshold, truePositives: 0, falsePositives: 0,
                                 falseNegatives: 0, trueNegatives: 0)
    for (score, isDefect) in zip(scores, labels) {
        switch (score >= threshold, isDefect) {
        case (true, true): result.truePositives += 1
        case (true, false): result.falsePositives += 1
        case (false, true): result.falseNegatives += 1
        case (false, false): result.trueNegatives += 1
        }
    }
    guard result.truePositives + result.falseNegatives > 0 else {
        throw .missingClass(what: what, missing: "defective")
    }
    return result
}
