import ArgumentParser
import Foundation
import KdadPipeline

/// `kdad status MANIFEST`: each stage's state without running anything.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each stage of a job: done, stale or partial.")

    @Argument(help: "The job manifest (YAML).")
    var manifest: String

    func run() async throws {
        let runner = try loadRunner(manifest)
        print("job \(runner.job.name): work dir \(runner.job.workDirectory.path)")
        if let holder = WorkDirectoryLock.currentHolder(workDirectory: runner.job.workDirectory) {
            print("a run is in progress: \(holder)")
        }
        let states: [(stage: String, state: StageState)]
        do { states = try runner.status() } catch { exitWithMessage("\(error)", code: 1) }
        let width = states.map(\.stage.count).max() ?? 0
        for (stage, state) in states {
            print("  \(stage.padding(toLength: width, withPad: " ", startingAt: 0))  \(state)")
        }
    }
}
