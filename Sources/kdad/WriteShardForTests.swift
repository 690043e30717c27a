import ArgumentParser

// Filled in by the shards work: writes a shard slowly so a test can kill the process mid-write.
struct WriteShardForTests: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write-shard", abstract: "Write a test shard slowly.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
