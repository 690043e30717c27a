import ArgumentParser
import Foundation
import KdadShards

/// Writes a shard slowly so a test can kill the process mid-write (SIGKILL after k records) and
/// check that nothing appears at the final path. Prints one line per step, flushed at once:
///   `temporary <path>`  after the header is written,
///   `record <i>`        after record i is appended (then sleeps --delay-ms),
///   `finished <path>`   after the shard is renamed into place.
/// Records are `ShardSyntheticData.testRecord(index:payloadBytes:seed:)`, so a test can check them.
struct WriteShardForTests: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write-shard", abstract: "Write a test shard slowly.")

    @Option(help: "Final path of the shard.") var output: String
    @Option(help: "Number of records.") var records: Int = 10
    @Option(help: "Bytes of random payload per record.") var recordBytes: Int = 4096
    @Option(help: "Milliseconds to sleep after each record (before finishing).") var delayMs: Int = 0
    @Option(help: "Seed of the record contents.") var seed: UInt64 = 1
    @Option(help: "zstd compression level.") var level: Int = 3

    func validate() throws {
        guard records >= 0 else { throw ValidationError("--records must be >= 0") }
        guard recordBytes >= 0 else { throw ValidationError("--record-bytes must be >= 0") }
        guard delayMs >= 0 else { throw ValidationError("--delay-ms must be >= 0") }
    }

    func run() async throws {
        let writer = try ShardWriter(url: URL(fileURLWithPath: output), compressionLevel: level)
        emit("temporary \(writer.temporaryURL.path)")
        for index in 0..<records {
            try writer.append(try ShardSyntheticData.testRecord(index: index, payloadBytes: recordBytes, seed: seed))
            emit("record \(index)")
            if delayMs > 0 { usleep(useconds_t(delayMs * 1000)) }
        }
        try writer.finish()
        emit("finished \(writer.url.path)")
    }

    private func emit(_ line: String) {
        // FileHandle writes go straight to the descriptor: no stdio buffer for a SIGKILL to lose.
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
