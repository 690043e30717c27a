// swift-tools-version:6.0
// kdad — knowledge-distillation anomaly detection for industrial visual inspection.
import PackageDescription

// System libraries come from Debian packages (scripts/setup.sh installs them).
func systemLibrary(_ name: String, pkgConfig: String?, apt: [String]) -> Target {
    .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig, providers: [.apt(apt)])
}

let package = Package(
    name: "kdad",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kdad", targets: ["kdad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C system-library shims.
        systemLibrary("COpenBLAS", pkgConfig: "openblas", apt: ["libopenblas-dev"]),
        systemLibrary("CZstd", pkgConfig: "libzstd", apt: ["libzstd-dev"]),
        systemLibrary("CPNG", pkgConfig: "libpng", apt: ["libpng-dev"]),
        systemLibrary("CJPEG", pkgConfig: "libjpeg", apt: ["libjpeg62-turbo-dev"]),
        systemLibrary("CTIFF", pkgConfig: "libtiff-4", apt: ["libtiff-dev"]),
        systemLibrary("CDNNL", pkgConfig: nil, apt: ["libdnnl-dev"]),
        // libpng and libjpeg report errors with longjmp; Swift cannot call setjmp, so the
        // decoders that need it live in this small C target and return error codes instead.
        .target(name: "CImageCodecs", dependencies: ["CPNG", "CJPEG", "CTIFF"]),

        // Small shared pieces every module may use: atomic file writes, SplitMix64, CRC-32, zip reading.
        .target(name: "KdadSupport"),

        // Image decode/encode and transforms.
        .target(name: "KdadImage", dependencies: ["CImageCodecs", "CTIFF", "KdadSupport"]),
        // zstd-compressed record shards.
        .target(name: "KdadShards", dependencies: ["CZstd", "KdadSupport"]),
        // Weight files: safetensors, PyTorch .pth (legacy pickle and zip).
        .target(name: "KdadWeights", dependencies: ["KdadSupport"]),
        // SIMD micro-kernels (AVX2+FMA with runtime dispatch, portable fallback) for KdadTensor.
        .target(name: "CKernels"),
        // Tensor, autograd, operators, optimisers.
        .target(name: "KdadTensor", dependencies: ["COpenBLAS", "CDNNL", "CKernels", "KdadWeights", "KdadSupport"]),
        // Network layers, backbones (EfficientNet-Lite, ResNet family) and their weight loading.
        .target(name: "KdadNN", dependencies: ["KdadTensor", "KdadWeights", "KdadImage"]),
        // Distillation methods, one folder each (model, loss, anomaly map), and the training loop.
        .target(name: "KdadMethods", dependencies: ["KdadTensor", "KdadNN", "KdadWeights"]),
        // Detection metrics (AUROC, PRO, F1-max) and unsupervised thresholds (quantile, Gamma fit).
        .target(name: "KdadMetrics"),
        // Manifests, stage graph, resumable runner, ingest and resize stages.
        .target(name: "KdadPipeline", dependencies: [
            "KdadSupport", "KdadImage", "KdadShards", "CZstd", "KdadTensor", "KdadNN", "KdadWeights", "KdadMethods", "KdadMetrics",
            .product(name: "Yams", package: "Yams"),
        ]),

        .executableTarget(name: "kdad", dependencies: [
            "KdadImage", "KdadShards", "KdadWeights", "KdadTensor", "KdadNN", "KdadMethods", "KdadMetrics", "KdadPipeline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Test-only helpers: locating ../shared, temporary directories, the built kdad binary.
        .target(name: "KdadTestSupport", path: "Sources/KdadTestSupport"),
        .testTarget(name: "KdadSupportTests", dependencies: ["KdadSupport", "KdadTestSupport"]),
        .testTarget(name: "KdadImageTests", dependencies: ["KdadImage", "KdadTestSupport"]),
        .testTarget(name: "KdadShardsTests", dependencies: ["KdadShards", "KdadTestSupport"]),
        .testTarget(name: "KdadWeightsTests", dependencies: ["KdadWeights", "KdadTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "KdadTensorTests", dependencies: ["KdadTensor", "KdadWeights", "KdadTestSupport"]),
        .testTarget(name: "KdadNNTests", dependencies: ["KdadNN", "KdadTestSupport"]),
        .testTarget(name: "KdadMethodsTests", dependencies: ["KdadMethods", "KdadTestSupport"]),
        .testTarget(name: "KdadMetricsTests", dependencies: ["KdadMetrics", "KdadTestSupport"]),
        .testTarget(name: "KdadPipelineTests", dependencies: ["KdadPipeline", "KdadTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
