import Foundation

/// The inferno colour map (perceptually uniform, readable in grey print, no green or cyan in it, so
/// the outlines drawn in those colours stand out) as 11 anchors at t = 0, 0.1, ..., 1, interpolated
/// linearly: close enough to the 256-entry table for a heatmap, and small enough to read.
enum InfernoColourMap {
    static let anchors: [(UInt8, UInt8, UInt8)] = [
        (0, 0, 4), (22, 11, 57), (66, 10, 104), (106, 23, 110), (147, 38, 103), (188, 55, 84),
        (221, 81, 58), (243, 120, 25), (252, 165, 10), (246, 215, 70), (252, 255, 164),
    ]

    /// Colour at t in [0, 1] (clamped; NaN counts as 0).
    static func rgb(_ t: Float) -> (UInt8, UInt8, UInt8) {
        let clamped = t.isNaN ? 0 : min(max(t, 0), 1)
        let position = clamped * Float(anchors.count - 1)
        let low = min(Int(position), anchors.count - 2)
        let f = position - Float(low)
        let a = anchors[low], b = anchors[low + 1]
        func mix(_ x: UInt8, _ y: UInt8) -> UInt8 { UInt8((Float(x) + (Float(y) - Float(x)) * f).rounded()) }
        return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// `#rrggbb` at t (for the SVG legend).
    static func hex(_ t: Float) -> String {
        let (r, g, b) = rgb(t)
        return String(format: "#%02x%02x%02x", r, g, b)
    }
}

/// One colour scale for every overlay of a run, so colours compare across images: `low` maps to the
/// darkest colour, `high` to the brightest.
public struct ColourScale: Codable, Sendable, Equatable {
    public var low: Double
    public var high: Double
    /// How the bounds were chosen (shown on the page).
    public var rule: String

    func position(_ value: Float) -> Float {
        high > low ? Float((Double(value) - low) / (high - low)) : 0
    }

    /// low = median anomaly-map pixel of the judged images (normal texture is dark), high =
    /// max(99.9th percentile of those pixels, threshold + (threshold - low)), so the image threshold
    /// sits at or below the middle of the scale. `pixels` is a deterministic sample of map pixels.
    static func make(pixels: [Float], threshold: Double) -> ColourScale {
        let rule = "black = median anomaly-map pixel, white = max(99.9th percentile of map pixels, threshold + (threshold - median)); the threshold is at or below mid-scale"
        guard !pixels.isEmpty else { return ColourScale(low: 0, high: max(threshold * 2, 1e-6), rule: rule) }
        let sorted = pixels.filter(\.isFinite).sorted()
        guard !sorted.isEmpty else { return ColourScale(low: 0, high: max(threshold * 2, 1e-6), rule: rule) }
        func quantile(_ q: Double) -> Double {
            let h = Double(sorted.count - 1) * q
            let i = Int(h.rounded(.down)), j = min(i + 1, sorted.count - 1)
            return Double(sorted[i]) + (h - Double(i)) * Double(sorted[j] - sorted[i])
        }
        let low = min(quantile(0.5), threshold)
        var high = max(quantile(0.999), threshold + (threshold - low))
        if !(high > low) { high = low + 1e-6 }
        return ColourScale(low: low, high: high, rule: rule)
    }
}

/// Gallery overlays: two panels side by side, the resized image (left) and the same image with the
/// anomaly map blended on it (right); both carry the outline of the region where the map exceeds the
/// image threshold (green) and, when the image has a ground-truth mask, the mask's outline (cyan).
enum OverlayRenderer {
    static let predictedOutline: (UInt8, UInt8, UInt8) = (60, 255, 60)
    static let truthOutline: (UInt8, UInt8, UInt8) = (0, 200, 255)
    /// Columns of neutral grey between the panels.
    static let gap = 4

    /// Pixels of `region` with a 4-neighbour outside it (or on the image edge).
    static func outline(_ region: [Bool], width: Int, height: Int) -> [Bool] {
        var edge = [Bool](repeating: false, count: region.count)
        for y in 0..<height {
            for x in 0..<width where region[y * width + x] {
                let inside = { (xx: Int, yy: Int) -> Bool in xx >= 0 && yy >= 0 && xx < width && yy < height && region[yy * width + xx] }
                if !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1) { edge[y * width + x] = true }
            }
        }
        return edge
    }

    /// Interleaved RGB of size (2 * width + gap) x height. `image` is uint8 CHW with 1 or 3 channels;
    /// `map` and `mask` are row-major height x width.
    static func render(image: [UInt8], channels: Int, width: Int, height: Int, map: [Float], mask: [UInt8]?,
                       threshold: Double, scale: ColourScale, alpha: Float) -> (pixels: [UInt8], width: Int, height: Int) {
        let plane = width * height
        precondition(image.count == channels * plane && map.count == plane, "overlay inputs must match the map size")
        let outWidth = 2 * width + gap
        var out = [UInt8](repeating: 96, count: outWidth * height * 3)
        let predicted = outline(map.map { Double($0) > threshold }, width: width, height: height)
        let truth = mask.map { outline($0.map { $0 > 127 }, width: width, height: height) }
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                let source: (Float, Float, Float) = channels >= 3
                    ? (Float(image[i]), Float(image[plane + i]), Float(image[2 * plane + i]))
                    : (Float(image[i]), Float(image[i]), Float(image[i]))
                let heat = InfernoColourMap.rgb(scale.position(map[i]))
                var left = (UInt8(source.0), UInt8(source.1), UInt8(source.2))
                func blend(_ s: Float, _ h: UInt8) -> UInt8 { UInt8(min(255, max(0, (s * (1 - alpha) + Float(h) * alpha).rounded()))) }
                var right = (blend(source.0, heat.0), blend(source.1, heat.1), blend(source.2, heat.2))
                if truth?[i] == true { left = truthOutline; right = truthOutline }
                if predicted[i] { left = predictedOutline; right = predictedOutline }
                let l = (y * outWidth + x) * 3, r = (y * outWidth + width + gap + x) * 3
                out[l] = left.0; out[l + 1] = left.1; out[l + 2] = left.2
                out[r] = right.0; out[r + 1] = right.1; out[r + 2] = right.2
            }
        }
        return (out, outWidth, height)
    }
}
