import ArgumentParser

// Filled in by the pipeline work.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show each stage of a job: done, stale or partial.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
