import ArgumentParser
import Foundation
import KdadPipeline

/// `kdad run MANIFEST`: brings a job's stages up to date, skipping unchanged ones and resuming
/// interrupted ones. Exit status 0 = everything requested is done; 1 = a stage failed; 2 = the
/// manifest or pipeline is invalid; 3 = another run holds the work dir.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job's pipeline: only the stages whose inputs changed.",
        discussion: """
        Each stage is skipped when the hash of its inputs, params and code version matches its last \
        completed run; an interrupted (killed) stage resumes from its last complete work unit and \
        produces the same result as an uninterrupted run.

        Examples:
          kdad run manifests/mtd.yaml
              run whatever is out of date
          kdad run manifests/mtd.yaml --stage score --force
              rescore with the trained student
          kdad run manifests/mtd.yaml --stage train --downstream
              retrain, then redo every stage after it
          kdad status manifests/mtd.yaml
              what is done, stale or partial

        Docs/operations.md covers nightly cron use, locking and recovery; Docs/manifest.md every key.
        """)

    @Argument(help: "The job manifest (YAML), e.g. manifests/mtd.yaml.")
    var manifest: String

    @Option(help: "Bring only this stage (and any out-of-date upstream stage) up to date.")
    var stage: String?

    @Flag(help: "With --stage: also run every stage downstream of it.")
    var downstream = false

    @Flag(help: "Rerun the selected stages even if nothing changed.")
    var force = false

    @Flag(help: "No progress or per-stage lines; errors only.")
    var quiet = false

    @Option(help: "Work units processed in parallel.")
    var jobs = 2

    func validate() throws {
        if downstream && stage == nil { throw ValidationError("--downstream needs --stage NAME") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() async throws {
        let runner = try loadRunner(manifest)
        let command = (["kdad"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        let options = RunOptions(stage: stage, downstream: downstream, force: force, jobs: jobs, command: command)
        do {
            try runner.run(options, progress: .automatic(quiet: quiet)) { line in
                if !quiet { print(line) }
            }
        } catch let error as PipelineError {
            if case .locked = error { exitWithMessage("\(error)", code: 3) }
            exitWithMessage("\(error)", code: 1)
        } catch {
            exitWithMessage("\(error)", code: 1)
        }
    }
}

/// Loads a manifest and its pipeline, exiting with status 2 and a `file:line:col:` message if invalid.
func loadRunner(_ manifest: String) throws -> PipelineRunner {
    let url = URL(fileURLWithPath: manifest)
    do {
        return try PipelineRunner.load(manifest: url, displayName: manifest)
    } catch let error as ManifestError {
        exitWithMessage("\(error)", code: 2)
    } catch {
        exitWithMessage("\(error)", code: 2)
    }
}

func exitWithMessage(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("kdad: error: \(message)\n".utf8))
    exit(code)
}
