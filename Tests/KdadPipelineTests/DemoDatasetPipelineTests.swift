import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// The pipeline `kdad demo-data` writes beside the archive: the whole job, valid for the standard stage
/// registry, each stage reading the one before it. (No stage runs here: the timed demo run is
/// `scripts/demo.sh`, measured in Docs/quickstart.md.)
final class DemoDatasetPipelineTests: XCTestCase {
    func testFullJobPipelineParsesWithTheStandardRegistryAndNamesTheWholeChain() throws {
        let root = try makeTemporaryDirectory("kdad-demo-full")
        let summary = try DemoDataset.write(to: root, images: 14, side: 16, lots: 1, nights: 1, seed: 2, pipeline: .fullJob)
        // Through the manifest, as `kdad run` loads it (also resolves the pipeline file and the inputs).
        let runner = try PipelineRunner.load(manifest: summary.manifest)
        let direct = try PipelineDefinition.load(contentsOf: root.appendingPathComponent("pipeline.yaml"), registry: .standard)
        for pipeline in [runner.pipeline, direct] {
            let kinds = pipeline.stages.map(\.kind)
            XCTAssertEqual(kinds, ["ingest", "resize", "features", "train", "score", "evaluate", "threshold", "report"])
            XCTAssertEqual(kinds, DemoPipeline.fullJob.stageKinds)
            // A chain up to the scores: every stage reads the one before it; evaluate and threshold
            // both read the scores, and the report reads the threshold.
            XCTAssertEqual(pipeline.stages.first?.dependsOn, [])
            let byName = Dictionary(uniqueKeysWithValues: pipeline.stages.map { ($0.name, $0) })
            let chain = pipeline.stages.prefix(while: { $0.kind != "evaluate" })
            for (previous, stage) in zip(chain, chain.dropFirst()) {
                XCTAssertEqual(stage.dependsOn, [previous.name], stage.name)
            }
            XCTAssertEqual(byName["evaluate"]?.dependsOn, ["score"])
            XCTAssertEqual(byName["threshold"]?.dependsOn, ["score"])
            XCTAssertEqual(byName["report"]?.dependsOn, ["threshold"])
            XCTAssertEqual(pipeline.downstream(of: "ingest"), pipeline.stages.map(\.name))
        }

        // The choices Docs/quickstart.md measures, as the stages will read them.
        let stage = { (kind: String) throws -> StageDefinition in try XCTUnwrap(direct.stages.first { $0.kind == kind }, kind) }
        let resize = try stage("resize"), features = try stage("features"), train = try stage("train"), score = try stage("score")
        XCTAssertEqual(resize.int("size"), DemoPipeline.inputSide)
        XCTAssertNil(resize.params["crop"]?.intValue, "no crop: defects may lie near the edge")
        XCTAssertEqual(features.string("teacher"), "efficientnet-lite0")
        XCTAssertEqual(features.strings("layers"), DemoPipeline.teacherLayers)
        XCTAssertEqual(Set(features.strings("roles")), ["train", "val", "score"], "train trains, val picks the best epoch, score is scored")
        XCTAssertEqual(train.string("method"), DemoPipeline.method)
        XCTAssertEqual(train.int("epochs"), DemoPipeline.epochs)
        XCTAssertEqual(score.int("border_ignore"), DemoPipeline.borderIgnore)
        XCTAssertLessThan(score.int("border_ignore") * 2, resize.int("size"), "the image score must see the middle of the image")
        // The teacher layers exist in Lite0 and are listed shallow to deep (methods need non-decreasing strides).
        let known = FeaturesStage.layerNames
        let positions = try features.strings("layers").map { try XCTUnwrap(known.firstIndex(of: $0), $0) }
        XCTAssertEqual(positions, positions.sorted())
        XCTAssertTrue(direct.stages.map(\.name).contains("evaluate"))
    }

    func testTheWrittenPipelineIsTheOneAskedFor() throws {
        for pipeline in DemoPipeline.allCases {
            let root = try makeTemporaryDirectory("kdad-demo-pipeline-\(pipeline.rawValue)")
            _ = try DemoDataset.write(to: root, images: 7, side: 8, lots: 1, nights: 1, seed: 1, pipeline: pipeline)
            let text = try String(contentsOf: root.appendingPathComponent("pipeline.yaml"), encoding: .utf8)
            XCTAssertEqual(text, pipeline.text)
            let loaded = try PipelineDefinition.load(contentsOf: root.appendingPathComponent("pipeline.yaml"))
            XCTAssertEqual(loaded.stages.map(\.kind), pipeline.stageKinds, pipeline.rawValue)
        }
        // The test fixtures keep the fast two-stage pipeline unless they ask for more.
        let root = try makeTemporaryDirectory("kdad-demo-pipeline-default")
        _ = try DemoDataset.write(to: root, images: 7, side: 8, lots: 1, nights: 1, seed: 1)
        XCTAssertEqual(try String(contentsOf: root.appendingPathComponent("pipeline.yaml"), encoding: .utf8), DemoPipeline.ingestAndResize.text)
    }

    /// `kdad demo-data` (what scripts/demo.sh runs) writes the full job, not the test fixture's pipeline.
    func testDemoDataCommandWritesTheFullJob() throws {
        let kdad = builtProductsDirectory.appendingPathComponent("kdad")
        guard FileManager.default.isExecutableFile(atPath: kdad.path) else { return XCTFail("built kdad not found at \(kdad.path)") }
        let root = try makeTemporaryDirectory("kdad-demo-cli")
        let process = Process()
        process.executableURL = kdad
        process.arguments = ["demo-data", root.path, "--images", "7", "--side", "8", "--lots", "1", "--nights", "1", "--folder"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(try String(contentsOf: root.appendingPathComponent("pipeline.yaml"), encoding: .utf8), DemoPipeline.fullJob.text)
    }
}
