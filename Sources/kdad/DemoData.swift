import ArgumentParser
import Foundation
import KdadPipeline

/// `kdad demo-data DIR`: a small seeded synthetic job to try kdad (and to test it) without real data.
struct DemoData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-data",
        abstract: "Write a small seeded demo archive and its manifest.",
        discussion: "Then: kdad run DIR/demo.yaml && kdad status DIR/demo.yaml")

    @Argument(help: "Folder to write (created if missing).")
    var directory: String

    @Option(help: "Number of images (every fifth is defective).")
    var images = 240

    @Option(help: "Image side in pixels.")
    var side = 48

    @Option(help: "Number of production lots.")
    var lots = 4

    @Option(help: "Random seed: the same seed writes the same bytes.")
    var seed: UInt64 = 1

    @Flag(help: "Write the images as a folder instead of a tar archive.")
    var folder = false

    func validate() throws {
        guard images > 0 else { throw ValidationError("--images must be positive") }
        guard side >= 8 else { throw ValidationError("--side must be at least 8") }
        guard lots > 0 else { throw ValidationError("--lots must be positive") }
    }

    func run() async throws {
        let summary = try DemoDataset.write(to: URL(fileURLWithPath: directory), images: images, side: side, lots: lots,
                                            seed: seed, archive: !folder)
        print("wrote \(summary.images) images (\(summary.defective) defective) in \(summary.lots) lots; manifest: \(summary.manifest.path)")
    }
}
