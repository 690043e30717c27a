import Foundation
import KdadImage
import KdadSupport

/// A small seeded synthetic inspection data set (gray textured "parts", some with a dark defect
/// blob and its mask), its labels CSV, a pipeline and a job manifest: enough to try kdad end to end
/// and to test the pipeline without the real data set. Same seed, same bytes.
public enum DemoDataset {
    public struct Summary: Sendable {
        public let manifest: URL
        public let images: Int
        public let defective: Int
        public let lots: Int
    }

    /// Writes into `directory`: `images/` (or `images.tar` when `archive`), `labels.csv`,
    /// `pipeline.yaml`, `demo.yaml` (the manifest, work dir `work/`).
    public static func write(to directory: URL, images count: Int = 240, side: Int = 48, lots: Int = 4, seed: UInt64 = 1,
                             archive: Bool = false) throws -> Summary {
        precondition(count > 0 && lots > 0 && side >= 8, "demo data needs images, lots and a side of at least 8")
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        var generator = SplitMix64(seed: seed)
        var files: [(path: String, data: Data)] = []
        var csv = "image,split,label,defect_type,mask,lot\n"
        var defective = 0
        for index in 0..<count {
            let lot = "lot\(index % lots)"
            let isDefect = index % 5 == 4
            let name = String(format: "%@/%@_%04d", lot, isDefect ? "defect" : "good", index)
            var pixels = texture(side: side, generator: &generator)
            var mask: [UInt8]?
            if isDefect {
                defective += 1
                mask = stampBlob(&pixels, side: side, generator: &generator)
            }
            files.append(("\(name).png", try PNGEncoder.encodeGray8(pixels, width: side, height: side)))
            if let mask { files.append(("\(name)_mask.png", try PNGEncoder.encodeGray8(mask, width: side, height: side))) }
            // Good images: 3 of 4 train, then val/test alternate; defects are always test.
            let split = isDefect ? "test" : (index % 4 != 3 ? "train" : (index % 8 == 3 ? "val" : "test"))
            csv += "\(name).png,\(split),\(isDefect ? "defect" : "good"),\(isDefect ? "blob" : ""),\(isDefect ? "\(name)_mask.png" : ""),\(lot)\n"
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
        try Data("""
        # Demo pipeline: small images, so the whole job runs in seconds.
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

        """.utf8).write(to: directory.appendingPathComponent("pipeline.yaml"))
        let manifest = directory.appendingPathComponent("demo.yaml")
        try Data("""
        # Demo job written by `kdad demo-data` (seed \(seed)).
        job:
          name: demo
          pipeline: pipeline.yaml
          work_dir: work
          seed: \(seed)
          inputs:
            - path: \(inputPath)
              include: "lot*/*.png"
              exclude: "**/*_mask.png"
          lots:
            component: 0
          labels:
            csv: labels.csv
          train:
            split: train
          val:
            split: val
          score:
            split: test

        """.utf8).write(to: manifest)
        return Summary(manifest: manifest, images: count, defective: defective, lots: min(lots, count))
    }

    /// Smooth gradient plus seeded noise: a plausible defect-free surface.
    static func texture(side: Int, generator: inout SplitMix64) -> [UInt8] {
        let base = 90 + Int(generator.next() % 60)
        let slope = Double(Int(generator.next() % 41) - 20) / Double(side)
        var pixels = [UInt8](repeating: 0, count: side * side)
        for y in 0..<side {
            for x in 0..<side {
                let noise = Int(generator.next() % 21) - 10
                let value = Double(base) + slope * Double(x + y) + Double(noise)
                pixels[y * side + x] = UInt8(max(0, min(255, Int(value))))
            }
        }
        return pixels
    }

    /// Darkens a disc at a seeded position; returns its mask (255 inside).
    static func stampBlob(_ pixels: inout [UInt8], side: Int, generator: inout SplitMix64) -> [UInt8] {
        let radius = max(2, side / 8 + Int(generator.next() % UInt64(max(1, side / 8))))
        let cx = radius + Int(generator.next() % UInt64(max(1, side - 2 * radius)))
        let cy = radius + Int(generator.next() % UInt64(max(1, side - 2 * radius)))
        var mask = [UInt8](repeating: 0, count: side * side)
        for y in 0..<side {
            for x in 0..<side where (x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius {
                pixels[y * side + x] = pixels[y * side + x] / 3
                mask[y * side + x] = 255
            }
        }
        return mask
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
