import ArgumentParser

// Filled in by the pipeline work.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a job's pipeline: only the stages whose inputs changed.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
