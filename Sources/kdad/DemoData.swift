import ArgumentParser

// Filled in by the pipeline work.
struct DemoData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo-data", abstract: "Write a small seeded demo archive and its manifest.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
