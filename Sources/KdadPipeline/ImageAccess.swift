import Foundation
import KdadShards

/// A decoded image as the pipeline stores it: planar CHW samples in [0, 1].
public struct LoadedImage: Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var bitDepth: Int
    public var format: String
    public var pixels: [Float]

    /// 8-bit sources are stored exactly as uint8; deeper ones as float16 (11 significant bits).
    func tensor(named name: String) throws -> ShardTensor {
        let shape = [channels, height, width]
        if bitDepth <= 8 {
            return try ShardTensor(name: name, uint8: pixels.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }, shape: shape)
        }
        return try ShardTensor(name: name, float16From: pixels, shape: shape)
    }

    func firstChannelTensor(named name: String) throws -> ShardTensor {
        let plane = pixels[0..<(width * height)]
        return try ShardTensor(name: name, uint8: plane.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) }, shape: [1, height, width])
    }
}

/// The one place the pipeline calls the image module.
enum ImageAccess {
    static func decode(_ data: Data, name: String, scratch: URL) throws -> LoadedImage {
        throw PipelineError.io(path: name, reason: "image decoding is not available in this build")
    }
}
