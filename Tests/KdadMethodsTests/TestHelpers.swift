import Foundation
import KdadTensor
@testable import KdadMethods

/// A teacher layer in tests: name, channels, stride.
struct FakeLayer {
    var name: String
    var channels: Int
    var stride: Int
}

/// Lite0's deep blocks (the peers' best neighbour layers) and the shallower trio.
let liteDeepLayers = [FakeLayer(name: "block07", channels: 80, stride: 16), FakeLayer(name: "block10", channels: 112, stride: 16),
                      FakeLayer(name: "block14", channels: 192, stride: 32)]
let liteShallowLayers = [FakeLayer(name: "block02", channels: 24, stride: 4), FakeLayer(name: "block04", channels: 40, stride: 8),
                         FakeLayer(name: "block07", channels: 80, stride: 16)]

func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }

/// A batch with random images and random "teacher" maps of the sizes a TF-SAME teacher gives.
func makeBatch(layers: [FakeLayer], batch: Int, height: Int, width: Int, seed: UInt64) -> DistillationBatch {
    var rng = SplitMix64(seed: seed)
    let images = Tensor.normal([batch, 3, height, width], rng: &rng)
    let features = layers.map { Tensor.normal([batch, $0.channels, ceilDiv(height, $0.stride), ceilDiv(width, $0.stride)], rng: &rng) }
    return DistillationBatch(images: images, teacherFeatures: features)
}

func makeMethod(kind: String, layers: [FakeLayer], distance: FeatureDistance = .cosine, options: [String: Double] = [:],
                seed: UInt64 = 7) throws -> any DistillationMethod {
    try Methods.make(MethodConfig(kind: kind, layers: layers.map(\.name), distance: distance, options: options),
                     teacherChannels: layers.map(\.channels), teacherStrides: layers.map(\.stride), seed: seed)
}

func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// Narrow students keep the debug-build tests fast; the default widths are exercised once.
func smallOptions(_ kind: String) -> [String: Double] {
    kind == "forward" ? ["width": 8] : ["embedChannels": 32, "decoderWidth": 0.25]
}
