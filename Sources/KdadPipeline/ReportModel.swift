import Foundation

/// One judged image (role `score`) in the report.
struct ReportImage: Sendable, Equatable {
    var key: String
    var lot: String
    /// The `night-*` folder the image came from, when its key has one (the nightly archive layout).
    var night: String?
    var source: String
    var score: Float
    var defective: Bool
    var label: String?
    var defectType: String?
    /// Overlay file name, for gallery images only.
    var overlay: String?
}

/// An input that never got scored: quarantined at ingest (cannot be decoded, no lot, bad mask, ...).
struct ReportQuarantined: Sendable, Equatable {
    var lot: String
    var key: String
    var path: String
    var reason: String
}

/// One lot's line in the summary (and lots.csv).
struct ReportLot: Sendable, Equatable {
    var lot: String
    var night: String?
    var images: Int
    var defective: Int
    var maxScore: Float?
    var quarantined: Int
    /// The lot's defect rate in the most recent earlier report run that had it.
    var previousRate: Double?
    /// `lot-NNNN.html` (first page of the lot's image list).
    var page: String
    var rate: Double { images > 0 ? Double(defective) / Double(images) : 0 }
}

/// A previous report run, from `WORK_DIR/report/history/<run id>.json`.
struct ReportHistoryEntry: Codable, Sendable, Equatable {
    struct Lot: Codable, Sendable, Equatable {
        var images: Int
        var defective: Int
    }
    var runID: String
    var generatedAt: String
    var threshold: Double
    var images: Int
    var defective: Int
    var lots: [String: Lot]
    enum CodingKeys: String, CodingKey {
        case threshold, images, defective, lots
        case runID = "run_id", generatedAt = "generated_at"
    }
    var rate: Double { images > 0 ? Double(defective) / Double(images) : 0 }
}

/// Everything the report shows, built once from the score rows, threshold and quarantine list.
struct ReportModel: Sendable {
    var images: [ReportImage]
    var quarantined: [ReportQuarantined]
    var lots: [ReportLot]
    var threshold: ThresholdResult
    /// Earlier runs, newest first (this run excluded; `build` sorts them).
    var history: [ReportHistoryEntry]
    /// Indices into `images`: the gallery (most anomalous first) and each lot's gallery.
    var gallery: [Int]
    var lotGalleries: [String: [Int]]
    var valScores: [Float]

    var defectiveCount: Int { images.filter(\.defective).count }

    /// The `night-*` path component of a key, if any.
    static func night(ofKey key: String) -> String? {
        key.split(separator: "/").first { $0.hasPrefix("night-") }.map(String.init)
    }

    /// Indices of `images` by descending score, ties by key (deterministic).
    static func ranked(_ indices: [Int], in images: [ReportImage]) -> [Int] {
        indices.sorted { a, b in
            images[a].score != images[b].score ? images[a].score > images[b].score : images[a].key < images[b].key
        }
    }

    static func build(rows: [ScoreRow], quarantined: [ReportQuarantined], threshold: ThresholdResult, history: [ReportHistoryEntry],
                      gallerySize: Int, lotGallerySize: Int) -> ReportModel {
        let images = rows.filter { $0.role == "score" }.map { row in
            ReportImage(key: row.key, lot: row.lot, night: night(ofKey: row.key), source: row.source, score: row.score,
                        defective: Double(row.score) > threshold.value, label: row.label, defectType: row.defectType)
        }
        let history = history.sorted { ($0.generatedAt, $0.runID) > ($1.generatedAt, $1.runID) }
        var byLot: [String: [Int]] = [:]
        for (index, image) in images.enumerated() { byLot[image.lot, default: []].append(index) }
        var quarantinedByLot: [String: Int] = [:]
        for entry in quarantined { quarantinedByLot[entry.lot, default: 0] += 1 }
        var nightOfLot: [String: String] = [:]
        for image in images { if let night = image.night, nightOfLot[image.lot] == nil { nightOfLot[image.lot] = night } }
        for entry in quarantined { if let night = night(ofKey: entry.key), nightOfLot[entry.lot] == nil { nightOfLot[entry.lot] = night } }
        let lotNames = Set(byLot.keys).union(quarantinedByLot.keys).sorted { a, b in
            let (na, nb) = (nightOfLot[a] ?? "", nightOfLot[b] ?? "")
            return na != nb ? na < nb : a < b
        }
        var lots: [ReportLot] = []
        var lotGalleries: [String: [Int]] = [:]
        for (position, name) in lotNames.enumerated() {
            let members = byLot[name] ?? []
            let previous = history.first { $0.lots[name] != nil }.flatMap { entry -> Double? in
                let lot = entry.lots[name]!
                return lot.images > 0 ? Double(lot.defective) / Double(lot.images) : nil
            }
            lots.append(ReportLot(lot: name, night: nightOfLot[name], images: members.count,
                                  defective: members.filter { images[$0].defective }.count,
                                  maxScore: members.map { images[$0].score }.max(), quarantined: quarantinedByLot[name] ?? 0,
                                  previousRate: previous, page: String(format: "lot-%04d.html", position + 1)))
            lotGalleries[name] = Array(ranked(members, in: images).prefix(lotGallerySize))
        }
        let gallery = Array(ranked(Array(images.indices), in: images).prefix(gallerySize))
        return ReportModel(images: images, quarantined: quarantined, lots: lots, threshold: threshold, history: history,
                           gallery: gallery, lotGalleries: lotGalleries, valScores: rows.filter { $0.role == "val" }.map(\.score))
    }

    /// Every image that gets an overlay (gallery and lot galleries), in a fixed order.
    var overlayIndices: [Int] {
        var seen = Set<Int>()
        var out: [Int] = []
        for index in gallery + lots.flatMap({ lotGalleries[$0.lot] ?? [] }) where seen.insert(index).inserted { out.append(index) }
        return out
    }

    /// Overlay file name for a key: a hash, so hostile or long file names never reach the file system.
    static func overlayName(forKey key: String) -> String { "overlay-" + SHA256.hex(of: key).prefix(20) + ".png" }

    // MARK: CSV

    static func number(_ value: Double) -> String { String(format: "%.9g", value) }

    /// `images.csv`: one row per judged image, in score-stage order.
    var imagesCSV: String {
        var csv = "lot,night,source,key,score,decision,threshold,label,defect_type\n"
        let threshold = Self.number(self.threshold.value)
        for image in images {
            csv += [image.lot, image.night, image.source, image.key].map(CSV.field).joined(separator: ",")
            csv += ",\(Self.number(Double(image.score))),\(image.defective ? "defective" : "good"),\(threshold),"
            csv += [image.label, image.defectType].map(CSV.field).joined(separator: ",") + "\n"
        }
        return csv
    }

    /// `lots.csv`: one row per lot (judged images, flagged ones, quarantined inputs, trend).
    var lotsCSV: String {
        var csv = "lot,night,images,defective,defect_rate,max_score,quarantined,previous_defect_rate\n"
        for lot in lots {
            csv += [lot.lot, lot.night].map(CSV.field).joined(separator: ",")
            csv += ",\(lot.images),\(lot.defective),\(Self.number(lot.rate)),\(lot.maxScore.map { Self.number(Double($0)) } ?? ""),"
            csv += "\(lot.quarantined),\(lot.previousRate.map(Self.number) ?? "")\n"
        }
        return csv
    }

    /// `quarantine.csv`: inputs that were not scored and why.
    var quarantineCSV: String {
        var csv = "lot,key,path,reason\n"
        for entry in quarantined { csv += [entry.lot, entry.key, entry.path, entry.reason].map(CSV.field).joined(separator: ",") + "\n" }
        return csv
    }
}
