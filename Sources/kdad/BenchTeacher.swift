import ArgumentParser

// Filled in by the teacher-network work.
struct BenchTeacher: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "teacher", abstract: "Teacher forward throughput.")
    func run() async throws { throw ValidationError("not implemented yet") }
}
