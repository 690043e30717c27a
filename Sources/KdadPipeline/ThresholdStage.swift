import Foundation
import KdadMetrics

/// Chooses the decision threshold without defect labels, from the scores of the held-out defect-free
/// `val` images (scored by the score stage): their `quantile`, or a Gamma distribution fitted to
/// them (DSKD) and the score its upper tail exceeds with probability `tail_probability`. An image is
/// defective when its score is above the threshold. When the `score` images carry labels, the
/// threshold's false-positive rate and recall on them and the F1-max threshold (which needs labels,
/// so is for comparison only) are recorded too. Writes `threshold.json`.
public struct ThresholdStage: Stage {
    public static let kind = StageKind(
        name: "threshold",
        params: [
            ParamSpec("method", .string(allowed: ["quantile", "gamma"]), default: .string("quantile"),
                      help: "quantile of the val scores, or an upper-tail quantile of a Gamma fitted to them"),
            ParamSpec("quantile", .double(0.5...1), default: .double(0.995), help: "method quantile: the val-score quantile (type 7)"),
            ParamSpec("tail_probability", .double(1e-9...0.5), default: .double(0.005),
                      help: "method gamma: expected fraction of defect-free images above the threshold"),
            ParamSpec("gamma_location", .string(allowed: ["mle", "zero"]), default: .string("mle"),
                      help: "method gamma: 3-parameter fit (location by maximum likelihood) or a plain 2-parameter fit"),
            ParamSpec("min_val_images", .int(2...1_000_000), default: .int(10),
                      help: "fewer val images than this is an error (a threshold from a handful of scores is noise)"),
        ],
        upstreamKinds: ["score"],
        make: { ThresholdStage(definition: $0) })

    public let definition: StageDefinition
    public var codeVersion: String { "threshold-1" }

    public func externalInputs(job: JobManifest) throws -> JSONValue { .null }

    func fail(_ reason: String) -> PipelineError {
        .stageFailed(stage: definition.name, reason: "\(reason) (\(definition.file):\(definition.line))")
    }

    public func prepare(_ context: StageContext) throws -> any PreparedStage {
        let (scoreName, score) = context.upstream.first!
        let rows = try ScoreTable.load(scoreDirectory: score.directory)
        let reference = rows.filter { $0.role == "val" }.map(\.score)
        let minimum = definition.int("min_val_images")
        guard reference.count >= minimum else {
            let scoredRoles = score.record.params["roles"].map { "\($0)" } ?? "[score]"
            let hint = reference.isEmpty
                ? "no 'val' image was scored: add a 'val:' split of defect-free images to the manifest (\(context.job.displayName)), keep 'val' in the features stage's roles and in the score stage '\(scoreName)' roles (now \(scoredRoles))"
                : "add more defect-free images to the manifest's 'val:' split (\(context.job.displayName)) or lower 'min_val_images'"
            throw fail("the threshold needs at least \(minimum) scored val images, found \(reference.count): \(hint)")
        }
        let settings = ThresholdSettings(method: definition.string("method") ?? "quantile", quantile: definition.double("quantile"),
                                         tailProbability: definition.double("tail_probability"),
                                         gammaLocation: definition.string("gamma_location") ?? "mle")
        let result: ThresholdResult
        do { result = try ThresholdResult.compute(settings: settings, rows: rows) } catch {
            throw fail("cannot compute the threshold from \(reference.count) val scores: \(error)")
        }
        return PreparedThreshold(result: result)
    }
}

/// The threshold method and its parameters, as set in the pipeline file.
public struct ThresholdSettings: Codable, Sendable, Equatable {
    public var method: String
    public var quantile: Double
    public var tailProbability: Double
    public var gammaLocation: String

    public init(method: String, quantile: Double = 0.995, tailProbability: Double = 0.005, gammaLocation: String = "mle") {
        self.method = method
        self.quantile = quantile
        self.tailProbability = tailProbability
        self.gammaLocation = gammaLocation
    }

    /// Human form, e.g. "gamma fit (3-parameter MLE), tail probability 0.005".
    public var summary: String {
        method == "gamma"
            ? "Gamma fit to val scores (\(gammaLocation == "mle" ? "3-parameter MLE" : "2-parameter"), upper tail probability \(tailProbability))"
            : "val-score quantile \(quantile)"
    }

    enum CodingKeys: String, CodingKey {
        case method, quantile
        case tailProbability = "tail_probability", gammaLocation = "gamma_location"
    }
}

/// What the threshold stage decided and, with labels, how that decision does (`threshold.json`).
public struct ThresholdResult: Codable, Sendable, Equatable {
    public struct ReferenceScores: Codable, Sendable, Equatable {
        public var role: String
        public var count: Int
        public var min: Double
        public var median: Double
        public var max: Double
    }
    /// Decisions at the threshold on the labelled `score` images (defective = score > threshold).
    public struct LabelledOutcome: Codable, Sendable, Equatable {
        public var good: Int
        public var defective: Int
        public var truePositives: Int
        public var falsePositives: Int
        /// Flagged good images / good images (nil without good images).
        public var falsePositiveRate: Double?
        /// Flagged defective images / defective images (nil without defective images).
        public var recall: Double?
        public var precision: Double?
        public var f1: Double?
        enum CodingKeys: String, CodingKey {
            case good, defective, recall, precision, f1
            case truePositives = "true_positives", falsePositives = "false_positives", falsePositiveRate = "false_positive_rate"
        }
    }
    public struct F1MaxComparison: Codable, Sendable, Equatable {
        /// Predict defect for score >= this (KdadMetrics' F1-max convention).
        public var threshold: Double
        public var f1: Double
        public var precision: Double
        public var recall: Double
    }

    public var settings: ThresholdSettings
    public var value: Double
    public var decision: String
    public var reference: ReferenceScores
    public var gammaFit: GammaFit?
    public var labelled: LabelledOutcome?
    public var f1Max: F1MaxComparison?

    enum CodingKeys: String, CodingKey {
        case settings, value, decision, reference, labelled
        case gammaFit = "gamma_fit", f1Max = "f1_max"
    }

    static let fileName = "threshold.json"

    /// Threshold from the `val` rows; outcome and F1-max from the labelled `score` rows.
    static func compute(settings: ThresholdSettings, rows: [ScoreRow]) throws -> ThresholdResult {
        let reference = rows.filter { $0.role == "val" }.map(\.score)
        var fit: GammaFit?
        let value: Double
        if settings.method == "gamma" {
            let gamma = try fitGamma(scores: reference, location: settings.gammaLocation == "zero" ? .zero : .maximumLikelihood)
            value = try gamma.upperQuantile(tailProbability: settings.tailProbability)
            fit = gamma
        } else {
            value = try quantileThreshold(scores: reference, q: settings.quantile)
        }
        let sorted = reference.map(Double.init).sorted()
        var result = ThresholdResult(
            settings: settings, value: value, decision: "defective when score > threshold",
            reference: ReferenceScores(role: "val", count: sorted.count, min: sorted.first ?? 0, median: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
                                       max: sorted.last ?? 0),
            gammaFit: fit, labelled: nil, f1Max: nil)
        let labelled = rows.filter { $0.role == "score" && $0.label != nil }
        if !labelled.isEmpty {
            let isDefect = labelled.map { $0.label != "good" }
            let good = isDefect.filter { !$0 }.count, defective = labelled.count - good
            var tp = 0, fp = 0
            for (row, defect) in zip(labelled, isDefect) where Double(row.score) > value {
                if defect { tp += 1 } else { fp += 1 }
            }
            let flagged = tp + fp
            let recall: Double? = defective > 0 ? Double(tp) / Double(defective) : nil
            result.labelled = LabelledOutcome(
                good: good, defective: defective, truePositives: tp, falsePositives: fp,
                falsePositiveRate: good > 0 ? Double(fp) / Double(good) : nil, recall: recall,
                precision: flagged > 0 ? Double(tp) / Double(flagged) : nil,
                f1: defective > 0 ? Double(2 * tp) / Double(2 * tp + fp + (defective - tp)) : nil)
            if good > 0, defective > 0 {
                let best = try KdadMetrics.f1Max(scores: labelled.map(\.score), labels: isDefect)
                result.f1Max = F1MaxComparison(threshold: Double(best.threshold), f1: best.f1, precision: best.precision, recall: best.recall)
            }
        }
        return result
    }

    static func load(from directory: URL) throws -> ThresholdResult {
        let url = directory.appendingPathComponent(fileName)
        do { return try JSONDecoder().decode(ThresholdResult.self, from: Data(contentsOf: url)) } catch {
            throw PipelineError.corruptRecord(path: url.path, reason: "\(error)")
        }
    }

    /// "0.6123 (val-score quantile 0.995 of 47 val images)".
    var headline: String {
        var text = String(format: "threshold %.6g from %d val images (%@)", value, reference.count, settings.summary)
        if let labelled {
            var parts: [String] = []
            if let fpr = labelled.falsePositiveRate { parts.append(String(format: "FPR %.1f%% of %d good", fpr * 100, labelled.good)) }
            if let recall = labelled.recall { parts.append(String(format: "recall %.1f%% of %d defective", recall * 100, labelled.defective)) }
            text += "; on labelled test images: " + parts.joined(separator: ", ")
        }
        if let f1Max { text += String(format: "; F1-max threshold %.6g (F1 %.3f, needs labels)", f1Max.threshold, f1Max.f1) }
        return text
    }
}

/// The score stage's rows (`scores.jsonl`), in shard order.
enum ScoreTable {
    static func load(scoreDirectory: URL) throws -> [ScoreRow] {
        let url = scoreDirectory.appendingPathComponent("scores.jsonl")
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw PipelineError.corruptRecord(path: url.path, reason: "cannot read the score table: \(error)")
        }
        let decoder = JSONDecoder()
        var rows: [ScoreRow] = []
        for (number, line) in text.split(separator: "\n").enumerated() {
            do { rows.append(try decoder.decode(ScoreRow.self, from: Data(line.utf8))) } catch {
                throw PipelineError.corruptRecord(path: url.path, reason: "line \(number + 1): \(error)")
            }
        }
        return rows
    }
}

struct PreparedThreshold: PreparedStage {
    let result: ThresholdResult

    var unitCount: Int { 1 }
    func itemCount(ofUnit index: Int) -> Int { result.reference.count }

    func runUnit(_ index: Int, output: UnitOutput) throws -> UnitSummary {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try output.write(ThresholdResult.fileName, data: try encoder.encode(result) + Data("\n".utf8))
        return UnitSummary(counts: ["val_images": result.reference.count])
    }

    func finish(units: [UnitSummary], output: UnitOutput) throws -> StageSummary {
        var info: [String: JSONValue] = ["threshold": .double(result.value), "method": .string(result.settings.method)]
        if let fpr = result.labelled?.falsePositiveRate { info["false_positive_rate"] = .double(fpr) }
        if let recall = result.labelled?.recall { info["recall"] = .double(recall) }
        if let f1Max = result.f1Max { info["f1_max_threshold"] = .double(f1Max.threshold); info["f1_max"] = .double(f1Max.f1) }
        return StageSummary(counts: ["val_images": result.reference.count], info: info, headline: result.headline)
    }
}
