import Foundation
import KdadSupport

/// Deterministic synthetic records and feature-like tensors, shared by `kdad internal write-shard`,
/// `kdad bench shards` and the tests, so a child process and its test agree byte for byte.
public enum ShardSyntheticData {
    /// SplitMix64 (shared with the rest of kdad): the seed fully determines the stream.
    public typealias Generator = KdadSupport.SplitMix64

    /// Random bytes (incompressible).
    public static func randomBytes(count: Int, seed: UInt64) -> [UInt8] {
        var generator = Generator(seed: seed)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            generator.fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Metadata of the records `testRecord` makes.
    public struct TestRecordMetadata: Codable, Equatable, Sendable {
        public var index: Int
        public var seed: UInt64
    }

    /// Record `index` of the deterministic test shard: key `record-<index, 5 digits>`, metadata
    /// `{"index":…,"seed":…}`, a uint8 tensor "payload" of `payloadBytes` random bytes and a small
    /// float16 tensor "features" [2,3].
    public static func testRecord(index: Int, payloadBytes: Int, seed: UInt64) throws -> ShardRecord {
        let recordSeed = seed ^ (UInt64(index) &* 0xD6E8_FEB8_6659_FD93)
        var generator = Generator(seed: recordSeed)
        let features = (0..<6).map { _ in generator.nextUniform() * 2 - 1 }
        return try ShardRecord(
            key: String(format: "record-%05d", index),
            metadata: TestRecordMetadata(index: index, seed: seed),
            tensors: [
                ShardTensor(name: "payload", uint8: randomBytes(count: payloadBytes, seed: recordSeed &+ 1), shape: [payloadBytes]),
                ShardTensor(name: "features", float16From: features, shape: [2, 3]),
            ])
    }

    /// A CNN-feature-like map [channels, height, width]: per channel a sum of three random
    /// low-frequency 2-D sinusoids (smooth over space, like features after a few convolutions)
    /// plus 2% white noise, scaled to roughly unit variance. With `reluThreshold`, values below
    /// it become 0 and the rest are shifted down by it (post-ReLU activations; a threshold of 0.5
    /// zeroes about two thirds of the map).
    public static func featureMap(channels: Int, height: Int, width: Int, seed: UInt64, reluThreshold: Float? = nil) -> [Float] {
        var generator = Generator(seed: seed)
        var values = [Float](repeating: 0, count: channels * height * width)
        for channel in 0..<channels {
            var waves: [(fy: Float, fx: Float, phase: Float, amplitude: Float)] = []
            for _ in 0..<3 {
                waves.append((fy: generator.nextUniform() * 0.5, fx: generator.nextUniform() * 0.5,
                              phase: generator.nextUniform() * 2 * .pi, amplitude: 0.5 + generator.nextUniform()))
            }
            let offset = generator.nextUniform() - 0.5
            for y in 0..<height {
                for x in 0..<width {
                    var value = offset + 0.02 * (generator.nextUniform() * 2 - 1)
                    for wave in waves {
                        value += wave.amplitude * 0.6 * sin(wave.fy * Float(y) + wave.fx * Float(x) + wave.phase)
                    }
                    if let threshold = reluThreshold { value = max(0, value - threshold) }
                    values[(channel * height + y) * width + x] = value
                }
            }
        }
        return values
    }
}
