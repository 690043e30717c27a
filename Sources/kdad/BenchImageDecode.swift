import ArgumentParser

// Filled in by the image I/O work.
struct BenchImageDecode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decode", abstract: "Image decode throughput.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
