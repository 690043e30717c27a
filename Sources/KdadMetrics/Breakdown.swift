// Whole-test-set evaluation with breakdowns, producing the content of `metrics.json`.
//
// Groups (MVTec / anomalib practice):
//   - overall: every image;
//   - per lot: the images of that lot (its good and its defective images);
//   - per defect type: the defective images of that type versus ALL good images of the test set
//     (good images have no type, so each type is judged against the same defect-free population).
// A metric that is undefined for a group (e.g. AUROC of a lot without good images, pixel metrics
// without maps) is JSON null, never a made-up number.

/// One scored test image with its labels.
public struct EvaluatedImage: Sendable, Equatable {
    public var id: String
    /// Image-level anomaly score (normally the maximum of the anomaly map).
    public var score: Float
    public var isDefect: Bool
    /// Defect type of a defective image; ignored for good images.
    public var defectType: String?
    /// Production lot (acquisition session), if known.
    public var lot: String?

    public init(id: String, score: Float, isDefect: Bool, defectType: String? = nil, lot: String? = nil) {
        self.id = id
        self.score = score
        self.isDefect = isDefect
        self.defectType = defectType
        self.lot = lot
    }
}

/// Metrics of one group of images. Encodes every key, with null for undefined metrics.
public struct GroupMetrics: Sendable, Equatable, Codable {
    public var imageAUROC: Double?
    public var pixelAUROC: Double?
    public var pro: Double?
    public var imageF1Max: Double?
    /// The score threshold (predict defect for score >= it) achieving `imageF1Max`.
    public var imageF1Threshold: Float?
    public var goodImageCount: Int
    public var defectImageCount: Int

    public init(imageAUROC: Double?, pixelAUROC: Double?, pro: Double?, imageF1Max: Double?,
                imageF1Threshold: Float?, goodImageCount: Int, defectImageCount: Int) {
        self.imageAUROC = imageAUROC
        self.pixelAUROC = pixelAUROC
        self.pro = pro
        self.imageF1Max = imageF1Max
        self.imageF1Threshold = imageF1Threshold
        self.goodImageCount = goodImageCount
        self.defectImageCount = defectImageCount
    }

    enum CodingKeys: String, CodingKey {
        case imageAUROC = "image_auroc"
        case pixelAUROC = "pixel_auroc"
        case pro
        case imageF1Max = "image_f1_max"
        case imageF1Threshold = "image_f1_threshold"
        case goodImageCount = "good_images"
        case defectImageCount = "defect_images"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        // `encode` (not `encodeIfPresent`) so an undefined metric appears as null.
        try container.encode(imageAUROC, forKey: .imageAUROC)
        try container.encode(pixelAUROC, forKey: .pixelAUROC)
        try container.encode(pro, forKey: .pro)
        try container.encode(imageF1Max, forKey: .imageF1Max)
        try container.encode(imageF1Threshold, forKey: .imageF1Threshold)
        try container.encode(goodImageCount, forKey: .goodImageCount)
        try container.encode(defectImageCount, forKey: .defectImageCount)
    }
}

/// The content of `metrics.json`: the overall metrics at top level (`image_auroc`, `pixel_auroc`,
/// `pro`, `image_f1_max`, ...) plus `per_lot` and `per_defect_type` maps and the PRO FPR limit.
public struct MetricsReport: Sendable, Equatable, Codable {
    public var overall: GroupMetrics
    public var perLot: [String: GroupMetrics]
    public var perDefectType: [String: GroupMetrics]
    public var proFPRLimit: Double

    public init(overall: GroupMetrics, perLot: [String: GroupMetrics], perDefectType: [String: GroupMetrics],
                proFPRLimit: Double) {
        self.overall = overall
        self.perLot = perLot
        self.perDefectType = perDefectType
        self.proFPRLimit = proFPRLimit
    }

    enum CodingKeys: String, CodingKey {
        case perLot = "per_lot"
        case perDefectType = "per_defect_type"
        case proFPRLimit = "pro_fpr_limit"
    }

    public init(from decoder: any Decoder) throws {
        overall = try GroupMetrics(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        perLot = try container.decode([String: GroupMetrics].self, forKey: .perLot)
        perDefectType = try container.decode([String: GroupMetrics].self, forKey: .perDefectType)
        proFPRLimit = try container.decode(Double.self, forKey: .proFPRLimit)
    }

    public func encode(to encoder: any Encoder) throws {
        // The overall metrics share the top-level object with the breakdowns.
        try overall.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(perLot, forKey: .perLot)
        try container.encode(perDefectType, forKey: .perDefectType)
        try container.encode(proFPRLimit, forKey: .proFPRLimit)
    }
}

/// Accumulates scored images (and optionally their anomaly maps and masks) and computes the
/// overall and per-group metrics. Pixel data is kept per image so any group can be evaluated.
public struct MetricsEvaluator: Sendable {
    public private(set) var images: [EvaluatedImage] = []
    public let fprLimit: Double
    var pool = PixelPool()
    var hasPixelData: Bool?

    public init(fprLimit: Double = 0.3) throws(MetricsError) {
        try validateFPRLimit(fprLimit)
        self.fprLimit = fprLimit
    }

    /// Adds one image. Either every image comes with a `map` (row-major `width` x `height`) or none
    /// does. `mask` marks defect pixels; nil means "no defect pixel" (allowed for good images only).
    public mutating func add(_ image: EvaluatedImage, map: [Float]? = nil, mask: [Bool]? = nil,
                             width: Int = 0, height: Int = 0) throws(MetricsError) {
        let what = "image \(image.id)"
        if image.score.isNaN { throw .nanScore(what: what, index: images.count) }
        let withPixels = map != nil
        if let hasPixelData, hasPixelData != withPixels {
            throw .inconsistentPixelData(what: what, detail: hasPixelData
                ? "earlier images have anomaly maps but this one has none"
                : "earlier images have no anomaly maps but this one has one")
        }
        if let map {
            if mask == nil && image.isDefect {
                throw .inconsistentPixelData(what: what, detail: "a defective image with a map needs a ground-truth mask")
            }
            let resolvedMask = mask ?? [Bool](repeating: false, count: map.count)
            guard resolvedMask.count == map.count else {
                throw .lengthMismatch(what: what, expected: map.count, actual: resolvedMask.count)
            }
            let components = try connectedComponents(mask: resolvedMask, width: width, height: height)
            try pool.append(map: map, mask: resolvedMask, components: components, what: what)
        }
        hasPixelData = withPixels
        images.append(image)
    }

    /// Metrics of the images at `indices`; undefined metrics are nil.
    public func metrics(forImages indices: [Int]) throws(MetricsError) -> GroupMetrics {
        let scores = indices.map { images[$0].score }
        let labels = indices.map { images[$0].isDefect }
        let defects = labels.filter { $0 }.count
        var result = GroupMetrics(imageAUROC: nil, pixelAUROC: nil, pro: nil, imageF1Max: nil,
                                  imageF1Threshold: nil, goodImageCount: labels.count - defects,
                                  defectImageCount: defects)
        guard !indices.isEmpty else { return result }
        result.imageAUROC = try undefinedAsNil { () throws(MetricsError) in try imageAUROC(scores: scores, labels: labels) }
        if let best = try undefinedAsNil({ () throws(MetricsError) in try f1Max(scores: scores, labels: labels) }) {
            result.imageF1Max = best.f1
            result.imageF1Threshold = best.threshold
        }
        if hasPixelData == true {
            let subset = pool.subset(images: indices)
            if subset.regionCount > 0,
               let pixel = try undefinedAsNil({ () throws(MetricsError) in try subset.sweep(fprLimit: fprLimit, what: "pixel metrics") }) {
                result.pixelAUROC = pixel.auroc
                result.pro = pixel.pro
            }
        }
        return result
    }

    /// Overall, per-lot and per-defect-type metrics.
    public func report() throws(MetricsError) -> MetricsReport {
        guard !images.isEmpty else { throw .emptyInput(what: "metrics report") }
        let overall = try metrics(forImages: Array(images.indices))
        var lots: [String: [Int]] = [:]
        var defectTypes: [String: [Int]] = [:]
        var goodIndices: [Int] = []
        for (index, image) in images.enumerated() {
            if let lot = image.lot { lots[lot, default: []].append(index) }
            if image.isDefect {
                if let type = image.defectType { defectTypes[type, default: []].append(index) }
            } else {
                goodIndices.append(index)
            }
        }
        var perLot: [String: GroupMetrics] = [:]
        for (lot, indices) in lots { perLot[lot] = try metrics(forImages: indices) }
        var perDefectType: [String: GroupMetrics] = [:]
        for (type, indices) in defectTypes { perDefectType[type] = try metrics(forImages: indices + goodIndices) }
        return MetricsReport(overall: overall, perLot: perLot, perDefectType: perDefectType, proFPRLimit: fprLimit)
    }
}

/// Runs `body`; a metric that is undefined for the data (one class missing, nothing to evaluate)
/// becomes nil, every other error propagates.
private func undefinedAsNil<T>(_ body: () throws(MetricsError) -> T) throws(MetricsError) -> T? {
    do {
        return try body()
    } catch {
        switch error {
        case .missingClass, .emptyInput: return nil
        default: throw error
        }
    }
}
