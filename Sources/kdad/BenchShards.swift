import ArgumentParser

// Filled in by the shards work.
struct BenchShards: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shards", abstract: "Shard write/read throughput.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
