import ArgumentParser

// Filled in by the weight-files work.
struct InspectWeights: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect-weights", abstract: "List the tensors in a weight file.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
