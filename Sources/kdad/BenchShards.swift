import ArgumentParser
import Foundation
import KdadShards

/// Shard write/read throughput and compression ratio on feature-map-like float16 data.
///
/// Data kinds (each record holds one float16 tensor [channels, height, width]):
/// - `smooth`: per channel a sum of three low-frequency 2-D sinusoids plus 2% noise — like CNN
///   features before the activation;
/// - `relu`:   the same field after ReLU with a 0.5 threshold (about two thirds zeros) — like
///   post-activation teacher features;
/// - `random`: uniformly random bytes — the incompressible worst case (raw I/O + checksum speed).
/// Throughput is MB/s (10^6 bytes) of uncompressed tensor payload. Write time includes the index,
/// fsync and rename; read time is a full streaming pass (checksum, decompress, decode) over the
/// just-written file, so the file is in the page cache: it measures kdad, not the disk.
struct BenchShards: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shards", abstract: "Shard write/read throughput.")

    @Option(help: "Records per shard.") var records: Int = 64
    @Option(help: "Channels of each feature map.") var channels: Int = 192
    @Option(help: "Height of each feature map.") var height: Int = 32
    @Option(help: "Width of each feature map.") var width: Int = 32
    @Option(help: "Comma-separated zstd levels.") var levels: String = "1,3,9"
    @Option(help: "Comma-separated data kinds: smooth, relu, random.") var kinds: String = "smooth,relu,random"
    @Option(help: "Timed repetitions per case (the best is reported).") var repeats: Int = 3
    @Option(help: "Directory for the temporary shards (default: the system temporary directory).") var directory: String?
    @Option(help: "Seed of the synthetic data.") var seed: UInt64 = 7

    func validate() throws {
        guard records > 0, channels > 0, height > 0, width > 0, repeats > 0 else {
            throw ValidationError("--records, --channels, --height, --width and --repeats must be positive")
        }
        guard parsedLevels() != nil else { throw ValidationError("--levels must be comma-separated integers") }
        for kind in kinds.split(separator: ",") where !["smooth", "relu", "random"].contains(String(kind)) {
            throw ValidationError("unknown data kind \"\(kind)\" (use smooth, relu, random)")
        }
    }

    private func parsedLevels() -> [Int]? {
        let parts = levels.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return parts.contains(where: { $0 == nil }) || parts.isEmpty ? nil : parts.map { $0! }
    }

    func run() async throws {
        let base = directory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
        let workDirectory = base.appendingPathComponent("kdad-bench-shards-\(getpid())", isDirectory: true)
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: workDirectory) }

        let payloadPerRecord = channels * height * width * 2
        let totalPayload = Double(records * payloadPerRecord)
        print("kdad bench shards: \(records) records x float16 [\(channels), \(height), \(width)] = "
            + String(format: "%.1f MB", totalPayload / 1e6) + " payload per shard, best of \(repeats)")
        print("kind    level   write MB/s   read MB/s   ratio   file MB")
        for kind in kinds.split(separator: ",").map(String.init) {
            let shardRecords = try makeRecords(kind: kind)
            for level in parsedLevels()! {
                let url = workDirectory.appendingPathComponent("\(kind)-\(level).shard")
                var bestWrite = Double.infinity, bestRead = Double.infinity
                var fileSize = 0
                for _ in 0..<repeats {
                    let writeStart = DispatchTime.now().uptimeNanoseconds
                    let writer = try ShardWriter(url: url, compressionLevel: level)
                    for record in shardRecords { try writer.append(record) }
                    try writer.finish()
                    bestWrite = min(bestWrite, Double(DispatchTime.now().uptimeNanoseconds - writeStart) / 1e9)

                    let readStart = DispatchTime.now().uptimeNanoseconds
                    let reader = try ShardReader(url: url)
                    var payload = 0
                    try reader.forEachRecord { payload += $0.payloadByteCount }
                    bestRead = min(bestRead, Double(DispatchTime.now().uptimeNanoseconds - readStart) / 1e9)
                    guard payload == Int(totalPayload) else {
                        throw ValidationError("read back \(payload) payload bytes, wrote \(Int(totalPayload))")
                    }
                    fileSize = reader.fileSize
                }
                print(kind.padding(toLength: 8, withPad: " ", startingAt: 0)
                    + String(format: "%5d %12.0f %11.0f %7.2f %9.1f", level,
                             totalPayload / 1e6 / bestWrite, totalPayload / 1e6 / bestRead,
                             totalPayload / Double(fileSize), Double(fileSize) / 1e6))
            }
        }
    }

    /// Distinct records, generated before timing starts.
    private func makeRecords(kind: String) throws -> [ShardRecord] {
        try (0..<records).map { index in
            let recordSeed = seed &+ UInt64(index) &* 1_000_003
            let tensor: ShardTensor
            switch kind {
            case "random":
                let bytes = ShardSyntheticData.randomBytes(count: channels * height * width * 2, seed: recordSeed)
                tensor = try ShardTensor(name: "features", dtype: .float16, shape: [channels, height, width], bytes: Data(bytes))
            default:
                let values = ShardSyntheticData.featureMap(channels: channels, height: height, width: width, seed: recordSeed,
                                                           reluThreshold: kind == "relu" ? 0.5 : nil)
                tensor = try ShardTensor(name: "features", float16From: values, shape: [channels, height, width])
            }
            return ShardRecord(key: String(format: "image-%05d", index),
                               metadata: Data("{\"index\":\(index)}".utf8), tensors: [tensor])
        }
    }
}
