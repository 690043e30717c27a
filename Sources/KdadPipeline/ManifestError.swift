import Foundation

/// A problem in a job manifest or pipeline file, located precisely enough to fix without guessing:
/// `manifests/mtd.yaml:7:3: unknown key 'inptus' in 'job' (did you mean 'inputs'?)`.
public struct ManifestError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file as the user named it (relative paths stay relative, so messages match what they typed).
    public let file: String
    /// 1-based line and column; 0 when the problem is about the file as a whole.
    public let line: Int
    public let column: Int
    /// Dotted key path of the offending node, e.g. `job.inputs[0].root`; empty for the whole file.
    public let keyPath: String
    /// What is wrong, in words.
    public let reason: String

    public init(file: String, line: Int, column: Int, keyPath: String, reason: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.reason = reason
    }

    public var description: String {
        line > 0 ? "\(file):\(line):\(column): \(reason)" : "\(file): \(reason)"
    }
}

/// Levenshtein distance, used to suggest the key the user probably meant.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = Array(repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// The closest candidate within a distance that still looks like a typo (not a different word).
func closestMatch(to word: String, among candidates: [String]) -> String? {
    var best: (candidate: String, distance: Int)?
    for candidate in candidates.sorted() {
        let distance = editDistance(word, candidate)
        if best == nil || distance < best!.distance { best = (candidate, distance) }
    }
    guard let best else { return nil }
    let limit = max(1, min(3, best.candidate.count / 3 + 1))
    return best.distance <= limit ? best.candidate : nil
}
