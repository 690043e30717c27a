import ArgumentParser
import Foundation
import KdadPipeline

/// `kdad demo-data DIR`: a small seeded synthetic nightly archive to try kdad (and to test it) without real data.
struct DemoData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-data",
        abstract: "Write a small seeded demo archive (nights of production lots) and its manifest.",
        discussion: """
            Images go to night-YYYY-MM-DD/lot-MMDDX/ folders; lot letter A is brushed metal, B woven textile, \
            C a washer on a conveyor (then repeating). Every seventh image is defective (scratch, spot, crack \
            or missing material) with a *_mask.png beside it; some good washer images have dust on the \
            background, which is not a defect. Splits: 4/7 train, 1/7 val, 2/7 test (half of it defective).

            Then:  kdad run DIR/demo.yaml && kdad status DIR/demo.yaml
            """)

    @Argument(help: "Folder to write (created if missing).")
    var directory: String

    @Option(help: "Number of images in all (every seventh is defective).")
    var images = 280

    @Option(help: "Image side in pixels (at least 8).")
    var side = 128

    @Option(help: "Production lots per night (at most 26: lot letters A-Z).")
    var lots = 3

    @Option(help: "Number of nights (consecutive dates from 2026-11-20).")
    var nights = 3

    @Option(help: "Random seed: the same seed writes the same bytes.")
    var seed: UInt64 = 1

    @Flag(help: "Write the images as a folder instead of a tar archive.")
    var folder = false

    func validate() throws {
        guard images > 0 else { throw ValidationError("--images must be positive") }
        guard side >= 8 else { throw ValidationError("--side must be at least 8") }
        guard side <= 4096 else { throw ValidationError("--side must be at most 4096") }
        guard (1...26).contains(lots) else { throw ValidationError("--lots must be between 1 and 26") }
        guard (1...366).contains(nights) else { throw ValidationError("--nights must be between 1 and 366") }
    }

    func run() async throws {
        let summary = try DemoDataset.write(to: URL(fileURLWithPath: directory), images: images, side: side, lots: lots,
                                            nights: nights, seed: seed, archive: !folder, pipeline: .fullJob)
        print("wrote \(summary.images) images (\(summary.defective) defective) of \(side)x\(side) px in \(summary.lots) "
              + "lot\(summary.lots == 1 ? "" : "s") over \(summary.nights) night\(summary.nights == 1 ? "" : "s"); "
              + "manifest: \(summary.manifest.path)")
    }
}
