import XCTest
import KdadTestSupport
@testable import KdadPipeline

/// A temporary job folder: images/ (empty files are enough for parsing), pipeline and manifest.
struct JobFolder {
    let root: URL

    init() throws {
        root = try makeTemporaryDirectory("kdad-manifest")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("images/lot1"), withIntermediateDirectories: true)
        try Data().write(to: root.appendingPathComponent("images/lot1/a.png"))
        try Data("image,split,label\nlot1/a.png,train,good\n".utf8).write(to: root.appendingPathComponent("labels.csv"))
        try write("pipeline.yaml", Self.pipeline)
    }

    static let pipeline = """
    pipeline:
      name: test
      stages:
        - name: ingest
          kind: ingest
        - name: resize
          kind: resize
          depends_on: ingest
          params:
            size: 64
    """

    static let manifest = """
    job:
      name: test
      pipeline: pipeline.yaml
      work_dir: work
      seed: 7
      inputs:
        - path: images
          include: "**/*.png"
      lots:
        component: 0
      labels:
        csv: labels.csv
      train:
        split: train
      score:
        glob: "**"
    """

    @discardableResult
    func write(_ name: String, _ text: String) throws -> URL {
        let url = root.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Loads `text` as a manifest named `name` and returns the error it must raise.
    func manifestError(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> ManifestError {
        let url = try write("job.yaml", text)
        do {
            _ = try JobManifest.load(contentsOf: url, displayName: "manifests/job.yaml")
        } catch let error as ManifestError {
            return error
        }
        XCTFail("manifest loaded without error", file: file, line: line)
        throw XCTSkip("no error")
    }

    func pipelineError(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> ManifestError {
        let url = try write("p.yaml", text)
        do {
            _ = try PipelineDefinition.load(contentsOf: url, displayName: "pipelines/p.yaml")
        } catch let error as ManifestError {
            return error
        }
        XCTFail("pipeline loaded without error", file: file, line: line)
        throw XCTSkip("no error")
    }
}

final class ManifestTests: XCTestCase {
    func testValidManifestResolvesPathsAgainstItsFolder() throws {
        let folder = try JobFolder()
        let url = try folder.write("job.yaml", JobFolder.manifest)
        let job = try JobManifest.load(contentsOf: url)
        XCTAssertEqual(job.name, "test")
        XCTAssertEqual(job.seed, 7)
        XCTAssertEqual(job.workDirectory.path, folder.root.appendingPathComponent("work").standardizedFileURL.path)
        XCTAssertEqual(job.inputs.first?.locations.first?.kind, .folder)
        XCTAssertEqual(job.lotRule, .component(0))
        XCTAssertEqual(job.train, .splits(["train"]))
        let pipeline = try PipelineDefinition.load(contentsOf: job.pipelineURL)
        XCTAssertEqual(pipeline.stages.map(\.name), ["ingest", "resize"])
        XCTAssertEqual(pipeline.stage(named: "resize")?.params["size"], .int(64))
        XCTAssertEqual(pipeline.stage(named: "resize")?.params["method"], .string("area"), "defaults are filled in")
    }

    func testUnknownKeyNamesFileLineKeyAndSuggestion() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "  inputs:", with: "  inptus:"))
        XCTAssertEqual(error.file, "manifests/job.yaml")
        XCTAssertEqual(error.line, 6)
        XCTAssertEqual(error.column, 3)
        XCTAssertEqual(error.keyPath, "job.inptus")
        XCTAssertEqual(error.description, "manifests/job.yaml:6:3: unknown key 'inptus' in 'job' (did you mean 'inputs'?)")
    }

    func testUnknownNestedKey() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "      include:", with: "      includes:"))
        XCTAssertEqual(error.line, 8)
        XCTAssertEqual(error.keyPath, "job.inputs[0].includes")
        XCTAssertTrue(error.description.hasPrefix("manifests/job.yaml:8:7: unknown key 'includes' in 'job.inputs[0]' (did you mean 'include'?)"), error.description)
    }

    func testWrongType() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "seed: 7", with: "seed: seven"))
        XCTAssertEqual(error.line, 5)
        XCTAssertEqual(error.keyPath, "job.seed")
        XCTAssertTrue(error.description.contains("manifests/job.yaml:5:9: 'job.seed' must be an integer, got a string"), error.description)

        let listError = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "  inputs:\n    - path: images\n      include: \"**/*.png\"\n", with: "  inputs: images\n"))
        XCTAssertEqual(listError.keyPath, "job.inputs")
        XCTAssertEqual(listError.line, 6)
        XCTAssertTrue(listError.description.contains("'job.inputs' must be a list, got a string"), listError.description)
    }

    func testMissingKey() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "  work_dir: work\n", with: ""))
        XCTAssertEqual(error.keyPath, "job.work_dir")
        XCTAssertEqual(error.line, 2, "points at the mapping that lacks the key")
        XCTAssertTrue(error.description.contains("manifests/job.yaml:2:3: missing required key 'work_dir' in 'job'"), error.description)
    }

    func testMissingFile() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "csv: labels.csv", with: "csv: labelz.csv"))
        XCTAssertEqual(error.keyPath, "job.labels.csv")
        XCTAssertEqual(error.line, 12)
        XCTAssertTrue(error.description.contains("manifests/job.yaml:12:10: file not found for 'job.labels.csv': labelz.csv"), error.description)

        let inputError = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "path: images", with: "path: imagez"))
        XCTAssertEqual(inputError.keyPath, "job.inputs[0].path")
        XCTAssertEqual(inputError.line, 7)
        XCTAssertTrue(inputError.description.contains("file not found for 'job.inputs[0].path': imagez"), inputError.description)
    }

    func testLotRegexNeedsCaptureGroupAndSplitNeedsCSV() throws {
        let folder = try JobFolder()
        let regex = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "component: 0", with: "regex: 'exp[0-9]+'"))
        XCTAssertEqual(regex.keyPath, "job.lots.regex")
        XCTAssertTrue(regex.description.contains("needs a capture group"), regex.description)

        let split = try folder.manifestError(JobFolder.manifest.replacingOccurrences(of: "  labels:\n    csv: labels.csv\n", with: ""))
        XCTAssertEqual(split.keyPath, "job.train.split")
        XCTAssertTrue(split.description.contains("needs 'labels.csv'"), split.description)
    }

    func testInvalidYAMLHasALine() throws {
        let folder = try JobFolder()
        let error = try folder.manifestError("job:\n  name: [unclosed\n  seed: 1\n")
        XCTAssertGreaterThan(error.line, 1)
        XCTAssertTrue(error.description.hasPrefix("manifests/job.yaml:"), error.description)
    }

    func testPipelineErrors() throws {
        let folder = try JobFolder()
        let kind = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "kind: resize", with: "kind: resise"))
        XCTAssertEqual(kind.keyPath, "pipeline.stages[1].kind")
        XCTAssertEqual(kind.description, "pipelines/p.yaml:7:13: unknown stage kind 'resise' in 'pipeline.stages[1].kind' (did you mean 'resize'?)")

        let param = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "size: 64", with: "sise: 64"))
        XCTAssertEqual(param.keyPath, "pipeline.stages[1].params.sise")
        XCTAssertEqual(param.line, 10)
        XCTAssertTrue(param.description.contains("unknown key 'sise' in 'pipeline.stages[1].params' (did you mean 'size'?)"), param.description)

        let type = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "size: 64", with: "size: big"))
        XCTAssertEqual(type.keyPath, "pipeline.stages[1].params.size")
        XCTAssertTrue(type.description.contains("pipelines/p.yaml:10:15: 'pipeline.stages[1].params.size' must be an integer in 8...4096"), type.description)

        let range = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "size: 64", with: "size: 2"))
        XCTAssertTrue(range.description.contains("must be an integer in 8...4096"), range.description)

        let dependency = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "depends_on: ingest", with: "depends_on: ingets"))
        XCTAssertEqual(dependency.line, 8)
        XCTAssertTrue(dependency.description.contains("depends on unknown stage 'ingets' (did you mean 'ingest'?)"), dependency.description)

        let missing = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "      kind: ingest\n", with: ""))
        XCTAssertEqual(missing.keyPath, "pipeline.stages[0].kind")
        XCTAssertEqual(missing.line, 4)
        XCTAssertTrue(missing.description.contains("missing required key 'kind' in 'pipeline.stages[0]'"), missing.description)

        let method = try folder.pipelineError(JobFolder.pipeline.replacingOccurrences(of: "size: 64", with: "method: bilinar"))
        XCTAssertTrue(method.description.contains("got 'bilinar' (did you mean 'bilinear'?)"), method.description)
    }

    func testRepositoryManifestAndPipelineAreValid() throws {
        _ = try SharedData.require("datasets/mtd/splits.csv")
        let url = SharedData.packageRoot.appendingPathComponent("manifests/mtd.yaml")
        let runner = try PipelineRunner.load(manifest: url)
        XCTAssertEqual(runner.job.name, "mtd")
        XCTAssertEqual(runner.pipeline.stages.map(\.kind), ["ingest", "resize", "features", "train", "score", "evaluate", "threshold", "report"])
        XCTAssertEqual(runner.job.train, .splits(["train"]))
        XCTAssertEqual(runner.job.score, .splits(["test"]))
    }
}
