import Foundation

/// Where a report came from (summary.json `provenance`, the page's provenance table). Everything but
/// `generatedAt` and `host` is determined by the inputs.
public struct ReportProvenance: Codable, Sendable, Equatable {
    public var kdadVersion: String
    public var job: String
    public var manifest: String
    public var manifestSHA256: String
    public var pipeline: String
    public var pipelineSHA256: String
    public var teacher: String
    public var teacherWeights: String
    public var teacherWeightsSHA256: String
    public var studentCheckpoint: String
    public var studentCheckpointSHA256: String
    public var scoreStage: String
    public var scoreOutputHash: String
    public var thresholdMethod: String
    public var thresholdValue: Double
    public var runID: String
    public var generatedAt: String
    public var host: String

    enum CodingKeys: String, CodingKey {
        case job, manifest, pipeline, teacher, host
        case kdadVersion = "kdad_version", manifestSHA256 = "manifest_sha256", pipelineSHA256 = "pipeline_sha256"
        case teacherWeights = "teacher_weights", teacherWeightsSHA256 = "teacher_weights_sha256"
        case studentCheckpoint = "student_checkpoint", studentCheckpointSHA256 = "student_checkpoint_sha256"
        case scoreStage = "score_stage", scoreOutputHash = "score_output_hash"
        case thresholdMethod = "threshold_method", thresholdValue = "threshold_value"
        case runID = "run_id", generatedAt = "generated_at"
    }
}

/// The report's HTML: self-contained pages (inline CSS and SVG, no script, no external URL). Every
/// piece of text goes through `escape`, every relative link through `urlPath`.
enum ReportHTML {
    /// HTML-escapes text for element content and quoted attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// Percent-encodes a relative file name for src/href (RFC 3986 unreserved characters stay).
    static func urlPath(_ name: String) -> String {
        var out = ""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default: out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String { String(format: "%.4g", value) }
    static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    static func trend(_ lot: ReportLot) -> String {
        guard let previous = lot.previousRate else { return "—" }
        let change = (lot.rate - previous) * 100
        return String(format: "%@%.1f pp", change > 0 ? "+" : change < 0 ? "−" : "±", abs(change))
    }

    static let css = """
    body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222;background:#fff}
    h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
    table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
    th{background:#f5f5f5;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
    .bad{color:#b3261e;font-weight:600}.ok{color:#1b6e20}.muted{color:#777}.key{word-break:break-all}
    .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
    figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:6px;background:#fafafa}
    figure img{width:100%;height:auto;image-rendering:pixelated;display:block}
    figcaption{font-size:12px;margin-top:4px;word-break:break-all}
    .summary{font-size:15px}.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;vertical-align:middle}
    nav a{margin-right:12px}svg{max-width:100%;height:auto}code{font-size:12px}
    """

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        \(css)
        </style>
        </head>
        <body>
        \(body)
        </body>
        </html>

        """
    }

    static func link(_ file: String, _ text: String) -> String { "<a href=\"\(urlPath(file))\">\(escape(text))</a>" }

    // MARK: Index

    static func index(model: ReportModel, scale: ColourScale, provenance: ReportProvenance, rowsPerPage: Int) -> String {
        let t = model.threshold
        var body = "<h1>kdad inspection report: \(escape(provenance.job))</h1>\n"
        body += "<p class=\"muted\">run \(escape(provenance.runID)) · generated \(escape(provenance.generatedAt)) on \(escape(provenance.host))</p>\n"
        let total = model.images.count, defective = model.defectiveCount
        body += "<p class=\"summary\"><b>\(total)</b> images judged in <b>\(model.lots.count)</b> lots: "
        body += "<b class=\"\(defective > 0 ? "bad" : "ok")\">\(defective) defective</b> (\(percent(total > 0 ? Double(defective) / Double(total) : 0)))"
        body += ", \(model.quarantined.count) quarantined (not scored).<br>\n"
        body += "Threshold <b>\(number(t.value))</b>: \(escape(t.settings.summary)) of \(t.reference.count) held-out defect-free images "
        body += "(val scores \(number(t.reference.min))–\(number(t.reference.max)), median \(number(t.reference.median))); an image is defective when its score is above it.</p>\n"
        if let labelled = t.labelled {
            body += "<p>On the labelled test images with this threshold: "
            var parts: [String] = []
            if let fpr = labelled.falsePositiveRate { parts.append("false alarms on \(labelled.falsePositives) of \(labelled.good) good images (FPR \(percent(fpr)))") }
            if let recall = labelled.recall { parts.append("\(labelled.truePositives) of \(labelled.defective) defective images found (recall \(percent(recall)))") }
            body += parts.joined(separator: "; ")
            if let f1 = t.f1Max {
                body += ". For comparison, the F1-max threshold (chosen with the labels) is \(number(f1.threshold)): F1 \(String(format: "%.3f", f1.f1)), precision \(percent(f1.precision)), recall \(percent(f1.recall))"
            }
            body += ".</p>\n"
        }
        body += "<nav>" + [link("images.csv", "images.csv"), link("lots.csv", "lots.csv"), link("quarantine.csv", "quarantine.csv"),
                           link("summary.json", "summary.json")].joined(separator: " ") + "</nav>\n"

        body += "<h2>Lots</h2>\n" + lotTable(model)
        body += "<h2>Score distribution</h2>\n" + histogramSVG(model)
        body += "<h2>Defect rate per lot</h2>\n" + lotRateSVG(model)
        body += "<h2>Most anomalous images (top \(model.gallery.count))</h2>\n"
        body += legend(scale: scale, threshold: t.value)
        body += gallery(model.gallery, model: model)
        body += quarantineSection(model.quarantined, limit: 500)
        body += historySection(model.history)
        body += "<h2>Provenance</h2>\n" + provenanceTable(provenance)
        return page(title: "kdad report: \(provenance.job)", body: body)
    }

    static func lotTable(_ model: ReportModel) -> String {
        let hasNights = model.lots.contains { $0.night != nil }
        var html = "<table>\n<tr>" + (hasNights ? "<th>night</th>" : "") + "<th>lot</th><th class=\"n\">images</th><th class=\"n\">defective</th><th class=\"n\">rate</th><th class=\"n\">trend</th><th class=\"n\">max score</th><th class=\"n\">quarantined</th></tr>\n"
        for lot in model.lots {
            html += "<tr>" + (hasNights ? "<td>\(escape(lot.night ?? ""))</td>" : "")
            html += "<td>\(link(lot.page, lot.lot))</td><td class=\"n\">\(lot.images)</td>"
            html += "<td class=\"n\(lot.defective > 0 ? " bad" : "")\">\(lot.defective)</td><td class=\"n\">\(percent(lot.rate))</td>"
            html += "<td class=\"n\">\(escape(trend(lot)))</td><td class=\"n\">\(lot.maxScore.map { number(Double($0)) } ?? "—")</td>"
            html += "<td class=\"n\">\(lot.quarantined)</td></tr>\n"
        }
        return html + "</table>\n<p class=\"muted\">trend: change of the lot's defect rate in percentage points since the most recent earlier report run that had this lot.</p>\n"
    }

    static func legend(scale: ColourScale, threshold: Double) -> String {
        let stops = (0...10).map { i -> String in
            let t = Float(i) / 10
            return "<stop offset=\"\(i * 10)%\" stop-color=\"\(InfernoColourMap.hex(t))\"/>"
        }.joined()
        let position = max(0, min(1, scale.position(Float(threshold))))
        let x = 10 + Double(position) * 300
        return """
        <p>Each overlay: the resized image (left) and the anomaly map blended on it (right); <span style="color:#3cff3c;background:#333;padding:0 3px">green</span> outlines the region where the map is above the threshold, <span style="color:#00c8ff;background:#333;padding:0 3px">cyan</span> the ground-truth defect mask when there is one. One colour scale for every image of this run: \(escape(scale.rule)).</p>
        <svg viewBox="0 0 420 46" width="420" height="46" role="img" aria-label="colour scale">
        <defs><linearGradient id="inferno">\(stops)</linearGradient></defs>
        <rect x="10" y="4" width="300" height="14" fill="url(#inferno)"/>
        <line x1="\(String(format: "%.1f", x))" y1="1" x2="\(String(format: "%.1f", x))" y2="21" stroke="#3cff3c" stroke-width="2"/>
        <text x="10" y="34" font-size="11">\(escape(number(scale.low)))</text>
        <text x="310" y="34" font-size="11" text-anchor="end">\(escape(number(scale.high)))</text>
        <text x="\(String(format: "%.1f", x))" y="44" font-size="11" text-anchor="middle">threshold \(escape(number(threshold)))</text>
        </svg>

        """
    }

    static func gallery(_ indices: [Int], model: ReportModel) -> String {
        guard !indices.isEmpty else { return "<p class=\"muted\">no images.</p>\n" }
        var html = "<div class=\"cards\">\n"
        for index in indices {
            let image = model.images[index]
            html += "<figure>"
            if let overlay = image.overlay {
                html += "<img src=\"\(urlPath(overlay))\" alt=\"\(escape(image.key))\" loading=\"lazy\">"
            }
            var caption = "<span class=\"key\">\(escape(image.key))</span><br>lot \(escape(image.lot)) · score \(number(Double(image.score))) · "
            caption += image.defective ? "<span class=\"bad\">defective</span>" : "<span class=\"ok\">good</span>"
            if let label = image.label { caption += " · label \(escape(label))" + (image.defectType.map { " (\(escape($0)))" } ?? "") }
            html += "<figcaption>\(caption)</figcaption></figure>\n"
        }
        return html + "</div>\n"
    }

    static func quarantineSection(_ entries: [ReportQuarantined], limit: Int) -> String {
        var html = "<h2>Quarantined inputs (\(entries.count))</h2>\n"
        guard !entries.isEmpty else { return html + "<p class=\"muted\">none: every input image was scored or used for training.</p>\n" }
        html += "<p>These inputs could not be ingested and were not judged (full list: \(link("quarantine.csv", "quarantine.csv"))).</p>\n"
        html += "<table>\n<tr><th>lot</th><th>file</th><th>reason</th></tr>\n"
        for entry in entries.prefix(limit) {
            html += "<tr><td>\(escape(entry.lot))</td><td class=\"key\">\(escape(entry.path))</td><td>\(escape(entry.reason))</td></tr>\n"
        }
        html += "</table>\n"
        if entries.count > limit { html += "<p class=\"muted\">\(entries.count - limit) more in quarantine.csv.</p>\n" }
        return html
    }

    static func historySection(_ history: [ReportHistoryEntry]) -> String {
        var html = "<h2>Previous runs</h2>\n"
        guard !history.isEmpty else { return html + "<p class=\"muted\">none recorded in this work dir yet.</p>\n" }
        html += "<table>\n<tr><th>run</th><th>generated</th><th class=\"n\">images</th><th class=\"n\">defective</th><th class=\"n\">rate</th><th class=\"n\">threshold</th></tr>\n"
        for entry in history.prefix(20) {
            html += "<tr><td>\(escape(entry.runID))</td><td>\(escape(entry.generatedAt))</td><td class=\"n\">\(entry.images)</td>"
            html += "<td class=\"n\">\(entry.defective)</td><td class=\"n\">\(percent(entry.rate))</td><td class=\"n\">\(number(entry.threshold))</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func provenanceTable(_ p: ReportProvenance) -> String {
        let rows: [(String, String)] = [
            ("kdad version", p.kdadVersion), ("job", p.job),
            ("manifest", "\(p.manifest) (SHA-256 \(p.manifestSHA256))"), ("pipeline", "\(p.pipeline) (SHA-256 \(p.pipelineSHA256))"),
            ("teacher", "\(p.teacher), weights \(p.teacherWeights) (SHA-256 \(p.teacherWeightsSHA256))"),
            ("student checkpoint", "\(p.studentCheckpoint) (SHA-256 \(p.studentCheckpointSHA256))"),
            ("scores", "stage \(p.scoreStage), output hash \(p.scoreOutputHash)"),
            ("threshold", "\(p.thresholdMethod) = \(String(format: "%.9g", p.thresholdValue))"),
            ("run id", p.runID), ("generated (UTC)", p.generatedAt), ("host", p.host),
        ]
        return "<table>\n" + rows.map { "<tr><th>\(escape($0.0))</th><td><code>\(escape($0.1))</code></td></tr>\n" }.joined() + "</table>\n"
    }

    // MARK: Charts

    /// Histogram of the judged images' scores (stacked by label when labelled), the val scores as a
    /// green step line, the threshold as a red line and the F1-max threshold dashed.
    static func histogramSVG(_ model: ReportModel) -> String {
        let scores = model.images.map(\.score)
        guard !scores.isEmpty else { return "<p class=\"muted\">no scores.</p>\n" }
        let t = model.threshold
        var low = Double(min(scores.min()!, model.valScores.min() ?? scores.min()!)), high = Double(max(scores.max()!, model.valScores.max() ?? scores.max()!))
        low = min(low, t.value); high = max(high, t.value)
        if let f1 = t.f1Max { low = min(low, f1.threshold); high = max(high, f1.threshold) }
        if !(high > low) { high = low + 1 }
        let pad = (high - low) * 0.02
        low -= pad; high += pad
        let bins = 50
        func bin(_ value: Float) -> Int { min(bins - 1, max(0, Int((Double(value) - low) / (high - low) * Double(bins)))) }
        var good = [Int](repeating: 0, count: bins), bad = good, unlabelled = good, val = good
        for image in model.images {
            let b = bin(image.score)
            switch image.label { case nil: unlabelled[b] += 1; case "good"?: good[b] += 1; default: bad[b] += 1 }
        }
        for score in model.valScores { val[bin(score)] += 1 }
        let maxCount = max(1, (0..<bins).map { good[$0] + bad[$0] + unlabelled[$0] }.max()!, val.max() ?? 0)
        let (width, height, left, top, bottom) = (760.0, 240.0, 40.0, 10.0, 200.0)
        let plotWidth = width - left - 10, barWidth = plotWidth / Double(bins)
        func x(_ value: Double) -> Double { left + (value - low) / (high - low) * plotWidth }
        func y(_ count: Int) -> Double { bottom - Double(count) / Double(maxCount) * (bottom - top) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"score histogram\">\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(width - 10))\" y2=\"\(f(bottom))\" stroke=\"#444\"/>\n"
        for b in 0..<bins {
            var base = 0
            for (count, colour) in [(good[b], "#4c78a8"), (bad[b], "#e45756"), (unlabelled[b], "#9d9d9d")] where count > 0 {
                svg += "<rect x=\"\(f(left + Double(b) * barWidth + 0.5))\" y=\"\(f(y(base + count)))\" width=\"\(f(barWidth - 1))\" height=\"\(f(y(base) - y(base + count)))\" fill=\"\(colour)\"/>\n"
                base += count
            }
        }
        if !model.valScores.isEmpty {
            var points: [String] = []
            for b in 0..<bins {
                points.append("\(f(left + Double(b) * barWidth)),\(f(y(val[b])))")
                points.append("\(f(left + Double(b + 1) * barWidth)),\(f(y(val[b])))")
            }
            svg += "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#2ca02c\" stroke-width=\"1.5\"/>\n"
        }
        svg += "<line x1=\"\(f(x(t.value)))\" y1=\"\(f(top))\" x2=\"\(f(x(t.value)))\" y2=\"\(f(bottom))\" stroke=\"#d00\" stroke-width=\"2\"/>\n"
        svg += "<text x=\"\(f(x(t.value) + 3))\" y=\"\(f(top + 10))\" font-size=\"11\" fill=\"#d00\">threshold \(escape(number(t.value)))</text>\n"
        if let f1 = t.f1Max {
            svg += "<line x1=\"\(f(x(f1.threshold)))\" y1=\"\(f(top))\" x2=\"\(f(x(f1.threshold)))\" y2=\"\(f(bottom))\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n"
            svg += "<text x=\"\(f(x(f1.threshold) + 3))\" y=\"\(f(top + 24))\" font-size=\"11\" fill=\"#555\">F1-max \(escape(number(f1.threshold)))</text>\n"
        }
        svg += "<text x=\"\(f(left))\" y=\"\(f(bottom + 14))\" font-size=\"11\">\(escape(number(low)))</text>\n"
        svg += "<text x=\"\(f(width - 10))\" y=\"\(f(bottom + 14))\" font-size=\"11\" text-anchor=\"end\">\(escape(number(high)))</text>\n"
        svg += "<text x=\"\(f(left - 4))\" y=\"\(f(top + 8))\" font-size=\"11\" text-anchor=\"end\">\(maxCount)</text>\n"
        svg += "<text x=\"\(f(left - 4))\" y=\"\(f(bottom))\" font-size=\"11\" text-anchor=\"end\">0</text>\n"
        svg += "<text x=\"\(f((left + width) / 2))\" y=\"\(f(bottom + 30))\" font-size=\"11\" text-anchor=\"middle\">image score (\(model.images.count) judged images, \(model.valScores.count) val images)</text>\n"
        svg += "</svg>\n"
        let hasLabels = model.images.contains { $0.label != nil }
        var legend = "<p class=\"legend\">"
        if hasLabels { legend += "<span style=\"background:#4c78a8\"></span>labelled good<span style=\"background:#e45756\"></span>labelled defective" }
        if model.images.contains(where: { $0.label == nil }) { legend += "<span style=\"background:#9d9d9d\"></span>unlabelled" }
        legend += "<span style=\"background:#2ca02c\"></span>val (defect-free reference)</p>\n"
        return svg + legend
    }

    /// Horizontal bars: each lot's defect rate (up to 200 lots, in table order).
    static func lotRateSVG(_ model: ReportModel) -> String {
        let lots = model.lots.filter { $0.images > 0 }
        guard !lots.isEmpty else { return "<p class=\"muted\">no lots with judged images.</p>\n" }
        let shown = Array(lots.prefix(200))
        let maxRate = max(0.05, shown.map(\.rate).max()!)
        let (labelWidth, barArea, row) = (190.0, 470.0, 18.0)
        let height = Double(shown.count) * row + 10
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = "<svg viewBox=\"0 0 760 \(Int(height))\" width=\"760\" height=\"\(Int(height))\" role=\"img\" aria-label=\"defect rate per lot\">\n"
        for (i, lot) in shown.enumerated() {
            let y = 5 + Double(i) * row
            let name = lot.lot.count > 28 ? String(lot.lot.prefix(27)) + "…" : lot.lot
            svg += "<text x=\"\(f(labelWidth - 6))\" y=\"\(f(y + 12))\" font-size=\"11\" text-anchor=\"end\">\(escape(name))</text>\n"
            let w = lot.rate / maxRate * barArea
            svg += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y + 2))\" width=\"\(f(max(w, 0.5)))\" height=\"\(f(row - 5))\" fill=\"\(lot.defective > 0 ? "#e45756" : "#9ccc65")\"/>\n"
            svg += "<text x=\"\(f(labelWidth + w + 4))\" y=\"\(f(y + 12))\" font-size=\"11\">\(escape(percent(lot.rate))) (\(lot.defective)/\(lot.images))</text>\n"
        }
        svg += "</svg>\n"
        if lots.count > shown.count { svg += "<p class=\"muted\">first \(shown.count) of \(lots.count) lots shown; all are in lots.csv.</p>\n" }
        return svg
    }

    // MARK: Lot pages

    /// Page file names of a lot: `lot-0001.html`, `lot-0001-p2.html`, ...
    static func lotPageName(_ lot: ReportLot, page: Int) -> String {
        page == 1 ? lot.page : lot.page.replacingOccurrences(of: ".html", with: "-p\(page).html")
    }

    /// Every page of every lot: its gallery on the first page, then its images by descending score,
    /// `rowsPerPage` a page.
    static func lotPages(model: ReportModel, scale: ColourScale, rowsPerPage: Int) -> [(name: String, html: String)] {
        var byLot: [String: [Int]] = [:]
        for (index, image) in model.images.enumerated() { byLot[image.lot, default: []].append(index) }
        var pages: [(String, String)] = []
        for lot in model.lots {
            let ranked = ReportModel.ranked(byLot[lot.lot] ?? [], in: model.images)
            let pageCount = max(1, (ranked.count + rowsPerPage - 1) / rowsPerPage)
            for page in 1...pageCount {
                var body = "<nav>\(link("index.html", "← report"))"
                if page > 1 { body += link(lotPageName(lot, page: page - 1), "← previous page") }
                if page < pageCount { body += link(lotPageName(lot, page: page + 1), "next page →") }
                body += "</nav>\n<h1>Lot \(escape(lot.lot))</h1>\n"
                if let night = lot.night { body += "<p class=\"muted\">\(escape(night))</p>\n" }
                body += "<p class=\"summary\">\(lot.images) images judged, <b class=\"\(lot.defective > 0 ? "bad" : "ok")\">\(lot.defective) defective</b> (\(percent(lot.rate))), trend \(escape(trend(lot))), \(lot.quarantined) quarantined. Threshold \(number(model.threshold.value)).</p>\n"
                if page == 1 {
                    let gallery = model.lotGalleries[lot.lot] ?? []
                    body += "<h2>Most anomalous in this lot (top \(gallery.count))</h2>\n"
                    body += legend(scale: scale, threshold: model.threshold.value)
                    body += self.gallery(gallery, model: model)
                    let quarantined = model.quarantined.filter { $0.lot == lot.lot }
                    if !quarantined.isEmpty { body += quarantineSection(quarantined, limit: 500) }
                }
                let start = (page - 1) * rowsPerPage
                let slice = ranked[min(start, ranked.count)..<min(start + rowsPerPage, ranked.count)]
                body += "<h2>Images \(slice.isEmpty ? 0 : start + 1)–\(start + slice.count) of \(ranked.count) (page \(page) of \(pageCount))</h2>\n"
                body += "<table>\n<tr><th class=\"n\">#</th><th>image</th><th class=\"n\">score</th><th>decision</th><th>label</th></tr>\n"
                for (offset, index) in slice.enumerated() {
                    let image = model.images[index]
                    body += "<tr><td class=\"n\">\(start + offset + 1)</td><td class=\"key\">\(escape(image.source))</td><td class=\"n\">\(number(Double(image.score)))</td>"
                    body += image.defective ? "<td class=\"bad\">defective</td>" : "<td class=\"ok\">good</td>"
                    body += "<td>\(escape(image.label ?? ""))\(image.defectType.map { " (" + escape($0) + ")" } ?? "")</td></tr>\n"
                }
                body += "</table>\n"
                pages.append((lotPageName(lot, page: page), Self.page(title: "kdad report: lot \(lot.lot)", body: body)))
            }
        }
        return pages
    }
}
