import ArgumentParser
import Foundation
import KdadWeights

/// `kdad inspect-weights FILE`: what a weight file holds, whatever its format.
struct InspectWeights: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-weights",
        abstract: "List the tensors in a weight file.",
        discussion: """
        Reads safetensors, PyTorch zip checkpoints (torch >= 1.6) and legacy PyTorch checkpoints; the \
        format is detected from the file's first bytes. Prints each tensor's name, dtype, shape and \
        parameter count, then the totals. Teacher weights live in the weight cache \
        (${KDAD_WEIGHTS:-~/.cache/kdad/weights}), filled by scripts/fetch-weights.sh.
        """
    )

    @Argument(help: "A .safetensors or .pth file.", completion: .file())
    var file: String

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    struct Report: Codable {
        struct Tensor: Codable {
            var name: String
            var dtype: String
            var shape: [Int]
            var parameters: Int
        }
        var file: String
        var format: String
        var tensorCount: Int
        var parameterCount: Int
        var byteCount: Int
        var tensors: [Tensor]
        var metadata: [String: String]
    }

    func run() async throws {
        let url = URL(fileURLWithPath: file)
        let weights = try WeightFiles.read(contentsOf: url)
        let report = Report(
            file: url.path,
            format: weights.format.rawValue,
            tensorCount: weights.tensors.count,
            parameterCount: weights.parameterCount,
            byteCount: weights.tensors.reduce(0) { $0 + $1.data.count },
            tensors: weights.tensors.map { .init(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, parameters: $0.elementCount) },
            metadata: weights.metadata
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(table(report))
        }
    }

    private func table(_ report: Report) -> String {
        let nameWidth = min(max(4, report.tensors.map(\.name.count).max() ?? 0), 64)
        let shapes = report.tensors.map { "[" + $0.shape.map(String.init).joined(separator: ", ") + "]" }
        let shapeWidth = max(5, shapes.map(\.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : text + String(repeating: " ", count: width - text.count) }
        func padLeft(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
        var lines = [
            "file:       \(report.file)",
            "format:     \(report.format)",
            "tensors:    \(report.tensorCount)",
            "parameters: \(grouped(report.parameterCount)) (\(grouped(report.byteCount)) bytes)",
            "",
            "\(pad("name", nameWidth))  \(pad("dtype", 5))  \(pad("shape", shapeWidth))  \(padLeft("parameters", 12))",
        ]
        for (tensor, shape) in zip(report.tensors, shapes) {
            lines.append("\(pad(tensor.name, nameWidth))  \(pad(tensor.dtype, 5))  \(pad(shape, shapeWidth))  \(padLeft(grouped(tensor.parameters), 12))")
        }
        if !report.metadata.isEmpty {
            lines.append("")
            lines.append("metadata:")
            for key in report.metadata.keys.sorted() { lines.append("  \(key) = \(report.metadata[key] ?? "")") }
        }
        return lines.joined(separator: "\n")
    }

    /// 4694073 → "4,694,073".
    private func grouped(_ value: Int) -> String {
        let digits = Array(String(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return out
    }
}
