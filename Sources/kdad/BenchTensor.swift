import ArgumentParser

// Filled in by the tensor engine work.
struct BenchTensor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tensor", abstract: "Conv2d and sgemm throughput.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
