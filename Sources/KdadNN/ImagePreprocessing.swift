import Foundation
import KdadImage
import KdadTensor

/// Turning decoded images into teacher input the way the reference pipeline (PIL) does.
public enum ImagePreprocessing {
    /// An 8-bit RGB image, planar: `planes[c][y * width + x]`.
    public struct RGB8: Sendable, Equatable {
        public var width: Int
        public var height: Int
        public var planes: [[UInt8]]
        public init(width: Int, height: Int, planes: [[UInt8]]) {
            precondition(planes.count == 3 && planes.allSatisfy { $0.count == width * height }, "RGB8 needs three planes of width*height")
            self.width = width
            self.height = height
            self.planes = planes
        }
    }

    /// PIL's `convert('RGB')` of a decoded image: gray is replicated, alpha dropped (not composited);
    /// samples are rounded to 8 bits.
    public static func rgb8(_ image: DecodedImage) -> RGB8 {
        let size = image.width * image.height
        func plane(_ c: Int) -> [UInt8] {
            image.pixels[c * size ..< (c + 1) * size].map { UInt8(clamping: Int(($0 * 255).rounded())) }
        }
        let rgb = image.channels >= 3 ? [plane(0), plane(1), plane(2)] : { let g = plane(0); return [g, g, g] }()
        return RGB8(width: image.width, height: image.height, planes: rgb)
    }

    /// Resampling weights for one axis, as Pillow's `precompute_coeffs` with the triangle
    /// (BILINEAR) filter: the support widens with the downscale factor (antialiasing), weights are
    /// normalised and then rounded to 22-bit fixed point.
    struct AxisCoefficients {
        var start: [Int]
        var count: [Int]
        var stride: Int
        var weights: [Int32]

        static let precisionBits = 22

        init(inSize: Int, outSize: Int) {
            let scale = Double(inSize) / Double(outSize)
            let filterScale = max(scale, 1)
            let support = 1.0 * filterScale
            stride = Int(support.rounded(.up)) * 2 + 1
            start = []; count = []
            weights = [Int32](repeating: 0, count: stride * outSize)
            for o in 0..<outSize {
                let center = (Double(o) + 0.5) * scale
                let lo = max(Int(center - support + 0.5), 0)
                let hi = min(Int(center + support + 0.5), inSize)
                var w = [Double](repeating: 0, count: hi - lo)
                var total = 0.0
                for i in 0..<(hi - lo) {
                    let t = abs((Double(i + lo) - center + 0.5) / filterScale)
                    w[i] = t < 1 ? 1 - t : 0
                    total += w[i]
                }
                for i in 0..<w.count {
                    let v = total != 0 ? w[i] / total : w[i]
                    let fixed = v * Double(1 << Self.precisionBits)
                    weights[o * stride + i] = Int32(v < 0 ? (fixed - 0.5).rounded(.towardZero) : (fixed + 0.5).rounded(.towardZero))
                }
                start.append(lo); count.append(hi - lo)
            }
        }

        /// Pillow's clip8: round (the accumulator starts at one half) and clamp to 0…255.
        @inline(__always) static func clip8(_ acc: Int64) -> UInt8 {
            let v = acc >> Int64(precisionBits)
            return UInt8(clamping: v)
        }
    }

    /// `Image.resize((w, h), Image.BILINEAR)` on one 8-bit plane: a horizontal pass then a vertical
    /// pass, each rounding to 8 bits (a pass is skipped when its size is unchanged), as Pillow does.
    public static func resizeBilinearPIL(_ plane: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [UInt8] {
        precondition(plane.count == width * height && toWidth > 0 && toHeight > 0, "resizeBilinearPIL: bad sizes")
        var current = plane, cw = width
        if toWidth != width {
            let c = AxisCoefficients(inSize: width, outSize: toWidth)
            var out = [UInt8](repeating: 0, count: toWidth * height)
            for y in 0..<height {
                for o in 0..<toWidth {
                    var acc: Int64 = 1 << Int64(AxisCoefficients.precisionBits - 1)
                    for i in 0..<c.count[o] {
                        acc += Int64(current[y * cw + c.start[o] + i]) * Int64(c.weights[o * c.stride + i])
                    }
                    out[y * toWidth + o] = AxisCoefficients.clip8(acc)
                }
            }
            current = out; cw = toWidth
        }
        if toHeight != height {
            let c = AxisCoefficients(inSize: height, outSize: toHeight)
            var out = [UInt8](repeating: 0, count: cw * toHeight)
            for o in 0..<toHeight {
                for x in 0..<cw {
                    var acc: Int64 = 1 << Int64(AxisCoefficients.precisionBits - 1)
                    for i in 0..<c.count[o] {
                        acc += Int64(current[(c.start[o] + i) * cw + x]) * Int64(c.weights[o * c.stride + i])
                    }
                    out[o * cw + x] = AxisCoefficients.clip8(acc)
                }
            }
            current = out
        }
        return current
    }

    public static func resizeBilinearPIL(_ image: RGB8, width: Int, height: Int) -> RGB8 {
        RGB8(width: width, height: height, planes: image.planes.map {
            resizeBilinearPIL($0, width: image.width, height: image.height, toWidth: width, toHeight: height)
        })
    }

    /// A [1, 3, H, W] tensor in EfficientNet-Lite's input range, (x/255 - 0.5)/0.5.
    public static func efficientNetInput(_ image: RGB8) -> Tensor {
        var values: [Float] = []
        values.reserveCapacity(3 * image.width * image.height)
        for plane in image.planes { for v in plane { values.append((Float(v) / 255 - 0.5) / 0.5) } }
        return Tensor(shape: [1, 3, image.height, image.width], values: values)
    }

    /// Decoded image → PIL-style RGB → bilinear resize to `size × size` → normalised teacher input.
    public static func efficientNetInput(_ image: DecodedImage, size: Int) -> Tensor {
        efficientNetInput(resizeBilinearPIL(rgb8(image), width: size, height: size))
    }
}
