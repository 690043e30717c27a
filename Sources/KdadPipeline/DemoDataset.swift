import Foundation
import KdadImage
import KdadSupport

/// A small seeded synthetic nightly inspection archive: parts photographed per production lot, some
/// with a defect and its pixel mask, plus its labels CSV, a pipeline and a job manifest. Enough to try
/// kdad end to end and to test the pipeline without the real data set. Same seed, same bytes.
///
/// Layout: `images/night-2026-11-20/lot-1120A/good_0000.png` (+ `defect_0001_mask.png` beside each
/// defective image), several nights, several lots per night. The lot letter is the production line, and
/// each line makes one kind of part: A brushed metal, B woven textile, C a washer on a dark conveyor
/// (then the cycle repeats). Good washer images may carry dust or fibres on the background: not a
/// defect, so a background filter has to learn to ignore them.
public enum DemoDataset {
    public struct Summary: Sendable {
        public let manifest: URL
        public let images: Int
        public let defective: Int
        /// Lots that received at least one image (nights × lots per night when there are enough images).
        public let lots: Int
        /// Nights that received at least one image.
        public let nights: Int
        /// Every lot's folder relative to the input root (`night-2026-11-20/lot-1120A`), in order;
        /// the first is never empty.
        public let lotFolders: [String]
    }

    /// Writes into `directory`: `images/` (or `images.tar` when `archive`), `labels.csv`,
    /// `pipeline.yaml` (see `DemoPipeline`), `demo.yaml` (the manifest, work dir `work/`). `lots` is per
    /// night. Splits repeat every 7 images: 4 train good, 1 val good, 1 test good, 1 test defective.
    public static func write(to directory: URL, images count: Int = 280, side: Int = 128, lots: Int = 3, nights: Int = 3,
                             seed: UInt64 = 1, archive: Bool = false,
                             pipeline: DemoPipeline = .ingestAndResize) throws -> Summary {
        precondition(count > 0 && lots > 0 && nights > 0 && side >= 8, "demo data needs images, lots, nights and a side of at least 8")
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        let plans = plan(images: count, lots: lots, nights: nights)
        // Each image draws from its own stream, so rendering in parallel gives the same bytes.
        let results = DemoRenderings(count: plans.count)
        DispatchQueue.concurrentPerform(iterations: plans.count) { index in
            results.store(render(plans[index], side: side, seed: seed), at: index)
        }
        let renderings = results.all()
        var files: [(path: String, data: Data)] = []
        var csv = "image,split,label,defect_type,mask,lot\n"
        var defective = 0
        for (plan, rendering) in zip(plans, renderings) {
            guard let rendering else { continue }
            files.append((plan.key, try PNGEncoder.encodeGray8(rendering.pixels, width: side, height: side)))
            if let mask = rendering.defectMask {
                defective += 1
                files.append((plan.maskKey, try PNGEncoder.encodeGray8(mask, width: side, height: side)))
            }
            let defect = rendering.defect
            csv += "\(plan.key),\(plan.split),\(defect == nil ? "good" : "defect"),\(defect?.rawValue ?? ""),"
                + "\(defect == nil ? "" : plan.maskKey),\(plan.lot)\n"
        }
        let inputPath: String
        if archive {
            try TarWriter.write(files, to: directory.appendingPathComponent("images.tar"))
            inputPath = "images.tar"
        } else {
            for file in files {
                let url = directory.appendingPathComponent("images/\(file.path)")
                try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try file.data.write(to: url)
            }
            inputPath = "images"
        }
        try Data(csv.utf8).write(to: directory.appendingPathComponent("labels.csv"))
        try Data(pipeline.text.utf8).write(to: directory.appendingPathComponent("pipeline.yaml"))
        let manifest = directory.appendingPathComponent("demo.yaml")
        try Data("""
        # Demo job written by `kdad demo-data` (seed \(seed)): nights of lots, lot = 2nd path component.
        job:
          name: demo
          pipeline: pipeline.yaml
          work_dir: work
          seed: \(seed)
          inputs:
            - path: \(inputPath)
              include: "night-*/lot-*/*.png"
              exclude: "**/*_mask.png"
          lots:
            component: 1
          labels:
            csv: labels.csv
          train:
            split: train
          val:
            split: val
          score:
            split: test

        """.utf8).write(to: manifest)
        var lotFolders: [String] = []
        for plan in plans where lotFolders.last != plan.folder { lotFolders.append(plan.folder) }
        return Summary(manifest: manifest, images: count, defective: defective, lots: lotFolders.count,
                       nights: Set(plans.map(\.night)).count, lotFolders: lotFolders)
    }
}

/// The pipeline `DemoDataset.write` puts beside the archive.
public enum DemoPipeline: String, Sendable, CaseIterable {
    /// The whole job (`kdad demo-data` writes this one): ingest → resize → features → train → score →
    /// evaluate, and threshold → report from the scores, sized so the demo runs in a few minutes on 2 cores (Docs/quickstart.md has the
    /// measurements behind each choice).
    case fullJob = "full"
    /// Ingest and a tiny resize only: runs in about a second, the fixture the pipeline tests build on.
    case ingestAndResize = "ingest-resize"

    /// Stage kinds in the order the pipeline runs them.
    public var stageKinds: [String] {
        switch self {
        case .fullJob: ["ingest", "resize", "features", "train", "score", "evaluate", "threshold", "report"]
        case .ingestAndResize: ["ingest", "resize"]
        }
    }

    /// The text of `pipeline.yaml`.
    public var text: String {
        switch self {
        case .ingestAndResize:
            return """
            # Demo pipeline: ingest and resize only (small images, runs in about a second).
            pipeline:
              name: demo
              stages:
                - name: ingest
                  kind: ingest
                  params:
                    images_per_unit: 16
                - name: resize
                  kind: resize
                  depends_on: ingest
                  params:
                    size: 40
                    crop: 32
                    method: area

            """
        case .fullJob:
            return Self.fullJobText
        }
    }

    // The full job's choices (Docs/quickstart.md "Why these settings" has the measurements).
    /// The teacher's input side: demo-data's default 128 px (upsampling to 256 cost ~6x the training
    /// time for +0.02 image AUROC).
    public static let inputSide = 128
    /// Shallow Lite0 blocks (strides 4, 8, 16: 32², 16², 8² maps at 128 px): the demo's defects are a
    /// few pixels wide, and the deep blocks 10/14/15 that suit MTD at 256 px would see only 8² and 4² maps here.
    public static let teacherLayers = ["block02", "block04", "block07"]
    /// RD4AD-style: trains on the feature cache alone, several times faster per epoch than `forward`.
    public static let method = "reverse"
    /// 40, not 20: image AUROC 0.866 → 0.932 (validation loss still falling at 20) for twice the time.
    public static let epochs = 40
    /// Excluded from the image score at each edge: TF "SAME" padding makes the outermost pixels of
    /// every map noisy; the defects are drawn at least 15% of the side inside the part.
    public static let borderIgnore = 4
    public static let gaussianSigma = 2

    static var fullJobText: String {
        """
        # Demo pipeline: the whole job on the demo archive (a few minutes on 2 cores, mostly training).
        # Written by `kdad demo-data`; Docs/quickstart.md explains each choice with measurements.
        pipeline:
          name: demo
          stages:
            - name: ingest
              kind: ingest
              params:
                images_per_unit: 32
            - name: resize
              kind: resize
              depends_on: ingest
              params:
                size: \(inputSide)                # demo-data's default side; no crop: defects may lie near the edge
                method: area
                channels: 3
                normalization: imagenet      # the teacher's own
            - name: features
              kind: features
              depends_on: resize
              params:
                teacher: efficientnet-lite0
                layers: [\(teacherLayers.joined(separator: ", "))]   # shallow blocks: the defects are a few pixels wide
                roles: [train, val, score]
                batch_size: 16
            - name: train
              kind: train
              depends_on: features
              params:
                method: \(method)
                distance: cosine
                epochs: \(epochs)
                batch_size: 16
                optimizer: adam
                learning_rate: 0.001
                schedule: none
            - name: score
              kind: score
              depends_on: train
              params:
                checkpoint: best             # lowest validation loss
                combine: sum
                gaussian_sigma: \(gaussianSigma)
                image_score: max
                border_ignore: \(borderIgnore)
            - name: evaluate
              kind: evaluate
              depends_on: score
              params:
                pro_fpr_limit: 0.3
            - name: threshold
              kind: threshold
              depends_on: score
              params:
                method: quantile             # of the defect-free val images' scores: no labels needed
                quantile: 0.995
            - name: report
              kind: report
              depends_on: threshold
              params:
                gallery_size: 24
                lot_gallery_size: 6

        """
    }
}

// MARK: - Plan: which image goes where

/// The kind of part a production line makes.
public enum DemoPart: String, Sendable, CaseIterable {
    case brushedMetal = "brushed-metal"
    case wovenTextile = "woven-textile"
    /// A flat washer on a darker conveyor: the only kind with visible background.
    case washer
}

/// Defect types written to labels.csv `defect_type`.
public enum DemoDefect: String, Sendable, CaseIterable {
    /// A thin, slightly curved, anti-aliased bright line (on cloth: a snagged thread).
    case scratch
    /// An irregular blob, darker or brighter than the surface (stain, pit, splash).
    case spot
    /// A dark branching random walk.
    case crack
    /// A bite out of the washer's rim (washers only).
    case missing
}

/// One planned image: its place in the archive and what it shows.
struct DemoImagePlan: Sendable, Equatable {
    let index: Int
    let night: String
    let lot: String
    let part: DemoPart
    let split: String
    let isDefective: Bool

    var folder: String { "\(night)/\(lot)" }
    var name: String { String(format: "%@_%04d", isDefective ? "defect" : "good", index) }
    var key: String { "\(folder)/\(name).png" }
    var maskKey: String { "\(folder)/\(name)_mask.png" }
}

/// A rendered image with the geometry behind it (tests check masks and dust against it).
struct DemoRendering: Sendable {
    var pixels: [UInt8]
    var defect: DemoDefect?
    /// 255 on defective pixels; nil for good images.
    var defectMask: [UInt8]?
    /// Pixels that belong to the inspected part (every pixel for the surface kinds).
    var partMask: [Bool]
    /// Pixels touched by background dust or fibres (good washer images only, never on the part).
    var dustMask: [Bool]
}

extension DemoDataset {
    /// Nights are consecutive dates from this one.
    static let firstNight = (year: 2026, month: 11, day: 20)

    /// Images fill lots in order (a lot is a contiguous block, as a camera writes them); lots fill
    /// nights. Splits cycle every 7 images: train, test-defect, train, val, train, test-good, train.
    static func plan(images count: Int, lots: Int, nights: Int) -> [DemoImagePlan] {
        let totalLots = lots * nights
        return (0..<count).map { index in
            let globalLot = index * totalLots / count
            let night = globalLot / lots, line = globalLot % lots
            let date = nightDate(offset: night)
            let nightName = String(format: "night-%04d-%02d-%02d", date.year, date.month, date.day)
            let lotName = String(format: "lot-%02d%02d", date.month, date.day) + lineLetters(line)
            let position = index % 7
            let split = [0, 2, 4, 6].contains(position) ? "train" : position == 3 ? "val" : "test"
            return DemoImagePlan(index: index, night: nightName, lot: lotName, part: DemoPart.allCases[line % DemoPart.allCases.count],
                                 split: split, isDefective: position == 1)
        }
    }

    /// A, B, …, Z, AA, AB, …
    static func lineLetters(_ line: Int) -> String {
        let letter = String(UnicodeScalar(UInt8(65 + line % 26)))
        return line < 26 ? letter : lineLetters(line / 26 - 1) + letter
    }

    static func nightDate(offset: Int) -> (year: Int, month: Int, day: Int) {
        var (year, month, day) = firstNight
        for _ in 0..<offset {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            let length = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
            day += 1
            if day > length { day = 1; month += 1 }
            if month > 12 { month = 1; year += 1 }
        }
        return (year, month, day)
    }

    // MARK: - Rendering

    static func render(_ plan: DemoImagePlan, side: Int, seed: UInt64) -> DemoRendering {
        var mixer = SplitMix64(seed: seed ^ (UInt64(plan.index) &* 0xD1B5_4A32_D192_ED03))
        var generator = SplitMix64(seed: mixer.next())
        var canvas = DemoCanvas(side: side)
        var scene: WasherGeometry?
        let defectTypes: [DemoDefect] = plan.part == .washer ? DemoDefect.allCases : [.scratch, .spot, .crack]
        let defect = plan.isDefective ? defectTypes[Int(generator.next() % UInt64(defectTypes.count))] : nil
        switch plan.part {
        case .brushedMetal: canvas.paintBrushedMetal(&generator)
        case .wovenTextile: canvas.paintWovenTextile(&generator)
        case .washer:
            var geometry = WasherGeometry(side: side, generator: &generator)
            if defect == .missing { geometry.addNotch(&generator) }
            canvas.paintWasher(geometry, &generator)
            scene = geometry
        }
        let partCoverage = scene.map { $0.coverageMap(includingNotch: true) } ?? [Float](repeating: 1, count: side * side)
        var defectMask: [UInt8]?
        if let defect {
            defectMask = canvas.applyDefect(defect, washer: scene, partCoverage: partCoverage, &generator)
        }
        var dustMask = [Bool](repeating: false, count: side * side)
        if let scene, !plan.isDefective, generator.nextUniform() < 0.5 {
            dustMask = canvas.sprinkleDust(outside: scene, &generator)
        }
        canvas.addSensorNoise(&generator)
        return DemoRendering(pixels: canvas.bytes(), defect: defectMask == nil ? nil : defect, defectMask: defectMask,
                             partMask: partCoverage.map { $0 >= 0.5 }, dustMask: dustMask)
    }
}

/// Renderings collected from concurrent workers, each into its own slot.
final class DemoRenderings: @unchecked Sendable {
    private var slots: [DemoRendering?]
    private let lock = NSLock()
    init(count: Int) { slots = [DemoRendering?](repeating: nil, count: count) }
    func store(_ rendering: DemoRendering, at index: Int) { lock.lock(); slots[index] = rendering; lock.unlock() }
    func all() -> [DemoRendering?] { lock.lock(); defer { lock.unlock() }; return slots }
}

/// Lattice value noise with smooth interpolation, anisotropic (separate cell sizes along x and y) and
/// periodic over its lattice, so any coordinate (also negative, rotated ones) is valid.
struct ValueNoise {
    let columns: Int, rows: Int
    let cellX: Float, cellY: Float
    let values: [Float]

    /// Covers at least `extent` pixels in both directions before repeating.
    init(extent: Float, cellX: Float, cellY: Float, generator: inout SplitMix64) {
        self.cellX = cellX
        self.cellY = cellY
        columns = max(2, Int((extent / cellX).rounded(.up)) + 1)
        rows = max(2, Int((extent / cellY).rounded(.up)) + 1)
        values = (0..<(columns * rows)).map { _ in generator.nextUniform() * 2 - 1 }
    }

    /// In [-1, 1].
    func callAsFunction(_ x: Float, _ y: Float) -> Float {
        let fx = x / cellX, fy = y / cellY
        let x0 = fx.rounded(.down), y0 = fy.rounded(.down)
        var tx = fx - x0, ty = fy - y0
        tx = tx * tx * (3 - 2 * tx)
        ty = ty * ty * (3 - 2 * ty)
        let c0 = Self.wrap(Int(x0), columns), c1 = Self.wrap(Int(x0) + 1, columns)
        let r0 = Self.wrap(Int(y0), rows) * columns, r1 = Self.wrap(Int(y0) + 1, rows) * columns
        let top = values[r0 + c0] + (values[r0 + c1] - values[r0 + c0]) * tx
        let bottom = values[r1 + c0] + (values[r1 + c1] - values[r1 + c0]) * tx
        return top + (bottom - top) * ty
    }

    static func wrap(_ value: Int, _ count: Int) -> Int { ((value % count) + count) % count }
}

extension SplitMix64 {
    /// Uniform in [low, high).
    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextUniform() }
    mutating func sign() -> Float { next() & 1 == 0 ? -1 : 1 }
}

/// The washer and its place in the frame. The part is the annulus inner < d < outer around the centre,
/// minus an optional notch (a disc centred on the rim: missing material).
struct WasherGeometry: Sendable {
    let side: Int
    let centreX: Float, centreY: Float
    let outer: Float, inner: Float
    var notch: (x: Float, y: Float, radius: Float)?

    init(side: Int, generator: inout SplitMix64) {
        let s = Float(side)
        self.side = side
        centreX = s / 2 + s * generator.uniform(-0.04, 0.04)
        centreY = s / 2 + s * generator.uniform(-0.04, 0.04)
        outer = s * generator.uniform(0.32, 0.38)
        inner = outer * generator.uniform(0.38, 0.48)
    }

    mutating func addNotch(_ generator: inout SplitMix64) {
        let angle = generator.uniform(0, 2 * .pi)
        let radius = max(1.5, Float(side) * generator.uniform(0.05, 0.08))
        notch = (centreX + outer * cos(angle), centreY + outer * sin(angle), radius)
    }

    func distance(_ x: Float, _ y: Float) -> Float {
        let dx = x - centreX, dy = y - centreY
        return (dx * dx + dy * dy).squareRoot()
    }

    /// Anti-aliased coverage of the annulus at a pixel centre (1 pixel wide ramp).
    func ringCoverage(_ x: Float, _ y: Float) -> Float {
        let d = distance(x, y)
        return clamp01(outer - d + 0.5) * clamp01(d - inner + 0.5)
    }

    func notchCoverage(_ x: Float, _ y: Float) -> Float {
        guard let notch else { return 0 }
        let dx = x - notch.x, dy = y - notch.y
        return clamp01(notch.radius - (dx * dx + dy * dy).squareRoot() + 0.5)
    }

    func coverageMap(includingNotch: Bool) -> [Float] {
        var map = [Float](repeating: 0, count: side * side)
        for y in 0..<side {
            for x in 0..<side {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                map[y * side + x] = ringCoverage(px, py) * (includingNotch ? 1 - notchCoverage(px, py) : 1)
            }
        }
        return map
    }
}

@inline(__always) func clamp01(_ value: Float) -> Float { min(1, max(0, value)) }

/// A gray image in [0, 1] being painted.
struct DemoCanvas {
    let side: Int
    var values: [Float]

    init(side: Int) {
        self.side = side
        values = [Float](repeating: 0, count: side * side)
    }

    var size: Float { Float(side) }

    func bytes() -> [UInt8] { values.map { UInt8(clamp01($0) * 255 + 0.5) } }

    /// Sensor noise: small triangular-distributed per-pixel jitter.
    mutating func addSensorNoise(_ generator: inout SplitMix64) {
        for i in values.indices { values[i] += (generator.nextUniform() + generator.nextUniform() - 1) * 0.025 }
    }

    /// Streaks along a brushing direction (fine and medium anisotropic noise), soft blotches, a light
    /// gradient and a specular band across the streaks.
    mutating func paintBrushedMetal(_ g: inout SplitMix64) {
        let angle = g.uniform(-0.15, 0.15) + (g.next() % 4 == 0 ? .pi / 2 : 0)
        let c = cos(angle), s = sin(angle)
        let extent = size * 1.5
        let fine = ValueNoise(extent: extent, cellX: max(4, size * 0.35), cellY: 0.8, generator: &g)
        let medium = ValueNoise(extent: extent, cellX: max(6, size * 0.9), cellY: 2.5, generator: &g)
        let blotch = ValueNoise(extent: extent, cellX: max(4, size / 3), cellY: max(4, size / 3), generator: &g)
        let base = g.uniform(0.45, 0.6)
        let gradientAngle = g.uniform(0, 2 * .pi), gradient = g.uniform(0.06, 0.14)
        let bandCentre = size * g.uniform(-0.3, 0.3), bandWidth = size * g.uniform(0.15, 0.3), band = g.uniform(0.06, 0.14)
        let gx = cos(gradientAngle) / size * gradient, gy = sin(gradientAngle) / size * gradient
        for y in 0..<side {
            for x in 0..<side {
                let xc = Float(x) + 0.5 - size / 2, yc = Float(y) + 0.5 - size / 2
                let along = xc * c + yc * s, across = -xc * s + yc * c
                let bandOffset = (across - bandCentre) / bandWidth
                values[y * side + x] = base + 0.07 * fine(along, across) + 0.05 * medium(along, across)
                    + 0.03 * blotch(xc, yc) + gx * xc + gy * yc + band * exp(-bandOffset * bandOffset)
            }
        }
    }

    /// Plain weave: warp and weft threads alternate over and under; each thread has a rounded
    /// cross-section, its own brightness and a slow waviness (jitter), with fibre texture along it.
    mutating func paintWovenTextile(_ g: inout SplitMix64) {
        let period = max(4, size / g.uniform(11, 16))
        let angle = g.uniform(-0.06, 0.06)
        let c = cos(angle), s = sin(angle)
        let extent = size * 1.5
        let waveA = ValueNoise(extent: extent, cellX: period * 3, cellY: period * 3, generator: &g)
        let waveB = ValueNoise(extent: extent, cellX: period * 3, cellY: period * 3, generator: &g)
        let warpShade = ValueNoise(extent: extent, cellX: period, cellY: extent, generator: &g)
        let weftShade = ValueNoise(extent: extent, cellX: extent, cellY: period, generator: &g)
        let fibresAlongWarp = ValueNoise(extent: extent, cellX: 0.7, cellY: max(2, period / 2), generator: &g)
        let fibresAlongWeft = ValueNoise(extent: extent, cellX: max(2, period / 2), cellY: 0.7, generator: &g)
        let gap = g.uniform(0.08, 0.16), thread = g.uniform(0.45, 0.65), warpTint = g.uniform(-0.06, 0.06)
        let gradientAngle = g.uniform(0, 2 * .pi), gradient = g.uniform(0.03, 0.08)
        let gx = cos(gradientAngle) / size * gradient, gy = sin(gradientAngle) / size * gradient
        for y in 0..<side {
            for x in 0..<side {
                let xc = Float(x) + 0.5 - size / 2, yc = Float(y) + 0.5 - size / 2
                let a = xc * c + yc * s + 0.15 * period * waveA(xc, yc) + size
                let b = -xc * s + yc * c + 0.15 * period * waveB(xc, yc) + size
                let i = (a / period).rounded(.down), j = (b / period).rounded(.down)
                let fa = a / period - i, fb = b / period - j
                let warpOnTop = (Int(i) + Int(j)) & 1 == 0
                // Across the top thread: rounded profile; along it: it dips under its neighbours.
                let acrossT = warpOnTop ? fa : fb, alongT = warpOnTop ? fb : fa
                let profile = sin(.pi * acrossT).squareRoot()
                let dip = 0.7 + 0.3 * sin(.pi * alongT)
                let shade = warpOnTop ? warpTint + 0.05 * warpShade(a, b) + 0.04 * fibresAlongWarp(a, b)
                    : -warpTint + 0.05 * weftShade(a, b) + 0.04 * fibresAlongWeft(a, b)
                values[y * side + x] = gap + (thread + shade) * profile * dip + gx * xc + gy * yc
            }
        }
    }

    /// A turned-metal washer (bow-tie reflection, machining rings, darker bevels) with a soft shadow on
    /// a dark, unevenly lit conveyor.
    mutating func paintWasher(_ washer: WasherGeometry, _ g: inout SplitMix64) {
        let extent = size * 1.5
        let belt = ValueNoise(extent: extent, cellX: max(3, size / 6), cellY: max(3, size / 6), generator: &g)
        let grain = ValueNoise(extent: extent, cellX: 1.2, cellY: 1.2, generator: &g)
        let rings = ValueNoise(extent: extent, cellX: max(3, size / 10), cellY: 0.9, generator: &g)
        let background = g.uniform(0.1, 0.18), light = g.uniform(0, 2 * .pi)
        let metal = g.uniform(0.55, 0.68), reflection = g.uniform(0.1, 0.16)
        let bevel = max(1, size * 0.025)
        let shadowX = cos(light + .pi) * size * 0.025, shadowY = sin(light + .pi) * size * 0.025
        let coverage = washer.coverageMap(includingNotch: true)
        for y in 0..<side {
            for x in 0..<side {
                let px = Float(x) + 0.5, py = Float(y) + 0.5
                let xc = px - size / 2, yc = py - size / 2
                // Conveyor: dark, brighter towards the light, with a shadow offset away from it.
                var floor = background + 0.03 * belt(xc, yc) + 0.04 * (xc * cos(light) + yc * sin(light)) / size
                let shadowDistance = washer.distance(px - shadowX, py - shadowY)
                let shadow = clamp01((washer.outer + 1 - shadowDistance) / 2) * clamp01((shadowDistance - washer.inner + 1) / 2)
                floor *= 1 - 0.4 * shadow
                let cover = coverage[y * side + x]
                guard cover > 0 else { values[y * side + x] = floor; continue }
                let d = washer.distance(px, py)
                let theta = atan2(py - washer.centreY, px - washer.centreX)
                let edge = min(washer.outer - d, d - washer.inner)
                var steel = metal + reflection * cos(2 * (theta - light)) + 0.03 * rings(theta * washer.outer, d)
                    + 0.015 * grain(xc, yc)
                if edge < bevel { steel -= 0.15 * (1 - max(0, edge) / bevel) }
                values[y * side + x] = floor * (1 - cover) + steel * cover
            }
        }
    }

    // MARK: Defects

    /// Paints a defect of `type` on the part and returns its mask (255 where the defect covers at least
    /// half a pixel of the part). Sizes scale with the image; tries again (new draws) if a tiny image
    /// leaves the mask empty, then falls back to a spot in the middle of the part.
    mutating func applyDefect(_ type: DemoDefect, washer: WasherGeometry?, partCoverage: [Float],
                              _ g: inout SplitMix64) -> [UInt8] {
        if type == .missing, let washer {
            // The notch already removed material; the mask is what was part and is no more.
            let intact = washer.coverageMap(includingNotch: false)
            let mask = zip(intact, partCoverage).map { intact, now in intact >= 0.5 && now < 0.5 ? UInt8(255) : 0 }
            if mask.contains(255) { return mask }
        }
        for attempt in 0..<12 {
            let kind = type == .missing || attempt == 11 ? DemoDefect.spot : type
            let centre = attempt == 11 ? partCentre(washer) : pointOnPart(washer, &g)
            var coverage: [Float]
            var delta: Float
            switch kind {
            case .scratch:
                coverage = scratchCoverage(from: centre, &g)
                delta = g.uniform(0.22, 0.35)  // catches the light (on cloth: a snagged, pulled thread)
            case .crack:
                coverage = crackCoverage(from: centre, &g)
                delta = -g.uniform(0.3, 0.45)
            case .spot, .missing:
                coverage = spotCoverage(at: centre, minimumRadius: attempt == 11 ? 1.5 : 1.2, &g)
                delta = g.sign() * g.uniform(0.2, 0.35)
            }
            for i in coverage.indices { coverage[i] *= partCoverage[i] }
            let mask = coverage.map { $0 >= 0.5 ? UInt8(255) : 0 }
            guard mask.contains(255) else { continue }
            for i in values.indices where coverage[i] > 0 {
                // Cracks and dark spots take light away; bright marks add it.
                values[i] = delta < 0 ? values[i] * (1 + delta * 1.5 * coverage[i]) : values[i] + delta * coverage[i]
            }
            return mask
        }
        // Unreachable for side >= 8 (the fallback spot always covers the part's middle); keep a valid mask.
        var mask = [UInt8](repeating: 0, count: side * side)
        let centre = partCentre(washer)
        mask[min(side - 1, Int(centre.y)) * side + min(side - 1, Int(centre.x))] = 255
        return mask
    }

    func partCentre(_ washer: WasherGeometry?) -> (x: Float, y: Float) {
        guard let washer else { return (size / 2, size / 2) }
        return (washer.centreX + (washer.inner + washer.outer) / 2, washer.centreY)
    }

    /// A point well inside the part: anywhere but the border for surfaces, mid-ring for the washer.
    func pointOnPart(_ washer: WasherGeometry?, _ g: inout SplitMix64) -> (x: Float, y: Float) {
        guard let washer else { return (size * g.uniform(0.15, 0.85), size * g.uniform(0.15, 0.85)) }
        let angle = g.uniform(0, 2 * .pi)
        let width = washer.outer - washer.inner
        let radius = washer.inner + width * g.uniform(0.3, 0.7)
        return (washer.centreX + radius * cos(angle), washer.centreY + radius * sin(angle))
    }

    /// Quadratic Bézier through the start point, slightly bent, fading at both ends.
    func scratchCoverage(from start: (x: Float, y: Float), _ g: inout SplitMix64) -> [Float] {
        let length = size * g.uniform(0.18, 0.4), angle = g.uniform(0, 2 * .pi), bend = g.uniform(-0.25, 0.25) * length
        let end = (x: start.x + length * cos(angle), y: start.y + length * sin(angle))
        let control = (x: (start.x + end.x) / 2 - bend * sin(angle), y: (start.y + end.y) / 2 + bend * cos(angle))
        let width = max(0.45, size / 128 * g.uniform(0.45, 0.8))
        let steps = 24
        var points: [(x: Float, y: Float, halfWidth: Float)] = []
        for k in 0...steps {
            let t = Float(k) / Float(steps), u = 1 - t
            let taper = min(1, min(t, u) * 6 + 0.35)
            points.append((u * u * start.x + 2 * u * t * control.x + t * t * end.x,
                           u * u * start.y + 2 * u * t * control.y + t * t * end.y, max(0.5, width * taper)))
        }
        return strokeCoverage([points])
    }

    /// A random walk with persistent direction that sometimes branches.
    func crackCoverage(from start: (x: Float, y: Float), _ g: inout SplitMix64) -> [Float] {
        let step = max(1, size / 64)
        let totalSteps = max(4, Int(size * g.uniform(0.15, 0.3) / step))
        let width = max(0.5, size / 128 * g.uniform(0.55, 0.8))
        var strokes: [[(x: Float, y: Float, halfWidth: Float)]] = []
        var pending: [(x: Float, y: Float, angle: Float, steps: Int, width: Float)] = [(start.x, start.y, g.uniform(0, 2 * .pi), totalSteps, width)]
        while let branch = pending.popLast(), strokes.count < 5 {
            var x = branch.x, y = branch.y, angle = branch.angle
            var stroke = [(x: x, y: y, halfWidth: branch.width)]
            for k in 0..<branch.steps {
                angle += g.uniform(-0.45, 0.45)
                x += step * cos(angle)
                y += step * sin(angle)
                // A half width of at least 0.5 px keeps the mask (coverage >= 0.5) a connected line.
                stroke.append((x, y, max(0.5, branch.width * (1 - 0.4 * Float(k) / Float(branch.steps)))))
                if g.nextUniform() < 0.07, pending.count + strokes.count < 4 {
                    let remaining = branch.steps - k
                    pending.append((x, y, angle + g.sign() * g.uniform(0.5, 1.1), max(2, Int(Float(remaining) * g.uniform(0.3, 0.6))),
                                    branch.width * 0.8))
                }
            }
            strokes.append(stroke)
        }
        return strokeCoverage(strokes)
    }

    /// An irregular disc (radius modulated by low harmonics) with a 1-pixel anti-aliased rim.
    func spotCoverage(at centre: (x: Float, y: Float), minimumRadius: Float, _ g: inout SplitMix64) -> [Float] {
        let radius = max(minimumRadius, size * g.uniform(0.03, 0.065))
        let a2 = g.uniform(0, 0.2), p2 = g.uniform(0, 2 * .pi), a3 = g.uniform(0, 0.12), p3 = g.uniform(0, 2 * .pi)
        var coverage = [Float](repeating: 0, count: side * side)
        let reach = radius * 1.4 + 1
        for y in max(0, Int(centre.y - reach))..<min(side, Int(centre.y + reach) + 1) {
            for x in max(0, Int(centre.x - reach))..<min(side, Int(centre.x + reach) + 1) {
                let dx = Float(x) + 0.5 - centre.x, dy = Float(y) + 0.5 - centre.y
                let theta = atan2(dy, dx)
                let edge = radius * (1 + a2 * sin(2 * theta + p2) + a3 * sin(3 * theta + p3))
                coverage[y * side + x] = clamp01(edge - (dx * dx + dy * dy).squareRoot() + 0.5)
            }
        }
        return coverage
    }

    /// Anti-aliased coverage of polylines with a half width per vertex (max over all segments).
    func strokeCoverage(_ strokes: [[(x: Float, y: Float, halfWidth: Float)]]) -> [Float] {
        var coverage = [Float](repeating: 0, count: side * side)
        for stroke in strokes where stroke.count >= 2 {
            for (p, q) in zip(stroke, stroke.dropFirst()) {
                let reach = max(p.halfWidth, q.halfWidth) + 1
                let dx = q.x - p.x, dy = q.y - p.y, lengthSquared = max(1e-6, dx * dx + dy * dy)
                let x0 = max(0, Int(min(p.x, q.x) - reach)), x1 = min(side - 1, Int(max(p.x, q.x) + reach))
                let y0 = max(0, Int(min(p.y, q.y) - reach)), y1 = min(side - 1, Int(max(p.y, q.y) + reach))
                guard x0 <= x1, y0 <= y1 else { continue }
                for y in y0...y1 {
                    for x in x0...x1 {
                        let px = Float(x) + 0.5 - p.x, py = Float(y) + 0.5 - p.y
                        let t = clamp01((px * dx + py * dy) / lengthSquared)
                        let ex = px - t * dx, ey = py - t * dy
                        let halfWidth = p.halfWidth + (q.halfWidth - p.halfWidth) * t
                        let value = clamp01(halfWidth + 0.5 - (ex * ex + ey * ey).squareRoot())
                        coverage[y * side + x] = max(coverage[y * side + x], value)
                    }
                }
            }
        }
        return coverage
    }

    // MARK: Background dust (not a defect)

    /// Bright specks and short fibres on the conveyor, each placed so that its whole footprint stays at
    /// least a pixel clear of the washer's rim. Returns the pixels it touched.
    mutating func sprinkleDust(outside washer: WasherGeometry, _ g: inout SplitMix64) -> [Bool] {
        var touched = [Bool](repeating: false, count: side * side)
        let specks = 1 + Int(g.next() % 4), fibres = Int(g.next() % 3)
        for item in 0..<(specks + fibres) {
            let isFibre = item >= specks
            let length = isFibre ? size * g.uniform(0.06, 0.14) : 0
            let halfWidth: Float = isFibre ? g.uniform(0.35, 0.5) : max(0.5, size / 128 * g.uniform(0.6, 1.6))
            // Clearance: the footprint lies within `length + halfWidth + 1` of the anchor; the part's
            // coverage is zero beyond outer + 0.5.
            let clearance = washer.outer + 1.5 + length + halfWidth + 1
            var anchor: (x: Float, y: Float)?
            for _ in 0..<24 {
                let x = g.uniform(1, size - 1), y = g.uniform(1, size - 1)
                if washer.distance(x, y) >= clearance { anchor = (x, y); break }
            }
            guard let anchor else { continue }
            let coverage: [Float]
            if isFibre {
                let angle = g.uniform(0, 2 * .pi), bend = g.uniform(-0.6, 0.6)
                var points: [(x: Float, y: Float, halfWidth: Float)] = []
                var x = anchor.x, y = anchor.y, heading = angle
                let steps = 8
                for _ in 0...steps {
                    points.append((x, y, halfWidth))
                    heading += bend / Float(steps)
                    x += length / Float(steps) * cos(heading)
                    y += length / Float(steps) * sin(heading)
                }
                coverage = strokeCoverage([points])
            } else {
                coverage = strokeCoverage([[(anchor.x, anchor.y, halfWidth), (anchor.x + 0.01, anchor.y, halfWidth)]])
            }
            let brightness = isFibre ? g.uniform(0.12, 0.25) : g.uniform(0.2, 0.45)
            for i in coverage.indices where coverage[i] > 0 {
                values[i] += brightness * coverage[i]
                touched[i] = true
            }
        }
        return touched
    }
}

/// SplitMix64 (the shared generator in KdadSupport): tiny, seedable, and identical on every platform.
public typealias SplitMix64 = KdadSupport.SplitMix64

/// Writes a plain ustar archive (regular files, fixed mtime 0 so archives are reproducible).
public enum TarWriter {
    public static func write(_ files: [(path: String, data: Data)], to url: URL) throws {
        var out = Data()
        for file in files {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int, length: Int) {
                for (i, byte) in text.utf8.prefix(length).enumerated() { header[offset + i] = byte }
            }
            func octal(_ value: Int, at offset: Int, length: Int) {
                put(String(repeating: "0", count: max(0, length - 1 - String(value, radix: 8).count)) + String(value, radix: 8), at: offset, length: length - 1)
            }
            guard file.path.utf8.count <= 100 else {
                throw PipelineError.io(path: file.path, reason: "tar entry names are limited to 100 bytes here")
            }
            put(file.path, at: 0, length: 100)
            octal(0o644, at: 100, length: 8)
            octal(0, at: 108, length: 8)
            octal(0, at: 116, length: 8)
            octal(file.data.count, at: 124, length: 12)
            octal(0, at: 136, length: 12)
            put("        ", at: 148, length: 8)
            header[156] = UInt8(ascii: "0")
            put("ustar", at: 257, length: 6)
            put("00", at: 263, length: 2)
            let checksum = header.reduce(0) { $0 + Int($1) }
            put(String(format: "%06o", checksum), at: 148, length: 6)
            header[154] = 0
            header[155] = UInt8(ascii: " ")
            out.append(contentsOf: header)
            out.append(file.data)
            out.append(Data(count: (512 - file.data.count % 512) % 512))
        }
        out.append(Data(count: 1024))
        try out.write(to: url, options: .atomic)
    }
}
