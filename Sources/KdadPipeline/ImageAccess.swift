import Foundation
import KdadImage
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
            return try ShardTensor(name: name, uint8: quantize(pixels[...]), shape: shape)
        }
        return try ShardTensor(name: name, float16From: pixels, shape: shape)
    }

    func firstChannelTensor(named name: String) throws -> ShardTensor {
        try ShardTensor(name: name, uint8: quantize(pixels[0..<(width * height)]), shape: [1, height, width])
    }
}

/// [0,1] floats to 8-bit levels (round to nearest, clamped). Pointer loop: this runs over every
/// pixel of every image, and `map` with a closure is slow in unoptimised builds.
func quantize(_ values: ArraySlice<Float>) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: values.count) { out, count in
        values.withUnsafeBufferPointer { input in
            for i in 0..<input.count {
                let level = input[i] * 255 + 0.5
                out[i] = level <= 0 ? 0 : (level >= 255 ? 255 : UInt8(level))
            }
        }
        count = values.count
    }
}

/// The one place the pipeline calls the image module.
enum ImageAccess {
    /// Decodes in memory (folders and archive entries alike); errors name `name`.
    static func decode(_ data: Data, name: String) throws -> LoadedImage {
        let image = try ImageDecoder.decode(data: data, name: name)
        return LoadedImage(width: image.width, height: image.height, channels: image.channels, bitDepth: image.bitDepth,
                           format: image.format.rawValue, pixels: image.pixels)
    }
}
