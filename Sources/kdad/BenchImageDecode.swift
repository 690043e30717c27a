import ArgumentParser
import Foundation
import KdadImage

/// `kdad bench decode`: how fast kdad turns the data set's JPEGs into planar floats.
/// Files are read into memory first so the figures measure decoding, not the disk.
struct BenchImageDecode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Image decode throughput (every JPEG under the data set, optionally the PNG masks too).")

    @Option(help: "Folder searched recursively for images (default: ../shared/datasets/mtd from the current directory).")
    var dataset: String = "../shared/datasets/mtd"

    @Option(help: "Decode the whole set this many times (the figures use the total).")
    var repeats: Int = 3

    @Flag(help: "Also decode the PNG files (the masks).")
    var includePNG = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: dataset)
        var extensions: Set<String> = ["jpg", "jpeg"]
        if includePNG { extensions.insert("png") }
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else {
            throw ValidationError("cannot list \(root.path)")
        }
        var files: [URL] = []
        for case let url as URL in walker where extensions.contains(url.pathExtension.lowercased()) {
            files.append(url)
        }
        files.sort { $0.path < $1.path }
        guard !files.isEmpty else { throw ValidationError("no \(extensions.sorted().joined(separator: "/")) files under \(root.path)") }

        let contents = try files.map { try Data(contentsOf: $0) }
        let compressedBytes = contents.reduce(0) { $0 + $1.count }

        // One untimed pass to warm caches and fail early on a bad file.
        var pixels = 0
        for (url, data) in zip(files, contents) {
            pixels += try ImageDecoder.decode(data: data, name: url.path).pixelCount
        }

        let clock = ContinuousClock()
        var checksum: Float = 0
        let elapsed = try clock.measure {
            for _ in 0..<repeats {
                for (url, data) in zip(files, contents) {
                    let image = try ImageDecoder.decode(data: data, name: url.path)
                    checksum += image.pixels[image.pixels.count / 2]  // keeps the decode observable
                }
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let images = Double(files.count * repeats)
        let megabytes = Double(compressedBytes * repeats) / 1_000_000
        let megapixels = Double(pixels * repeats) / 1_000_000
        print("decoded \(files.count) files × \(repeats) from \(root.path) (single thread, checksum \(checksum))")
        print(String(format: "  %.1f MB compressed, %.1f Mpx per pass; %.3f s total", megabytes / Double(repeats),
                     megapixels / Double(repeats), seconds))
        print(String(format: "  %.1f MB/s in   %.0f images/s   %.1f Mpx/s", megabytes / seconds, images / seconds,
                     megapixels / seconds))
    }
}
