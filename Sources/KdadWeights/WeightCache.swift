import Foundation

/// Where fetched teacher weights live: `$KDAD_WEIGHTS`, else `~/.cache/kdad/weights`.
/// `scripts/fetch-weights.sh` fills it; this type only finds files and says how to fetch missing ones.
public enum WeightCache {
    /// Models `scripts/fetch-weights.sh` knows, by identifier, with their file names in the cache.
    public static let knownModels: [String: (file: String, fetchArgument: String)] = [
        "efficientnet-lite0": ("efficientnet-lite0.pth", "lite0"),
        "efficientnet-lite1": ("efficientnet-lite1.pth", "lite1"),
        "efficientnet-lite2": ("efficientnet-lite2.pth", "lite2"),
    ]

    /// The cache directory.
    public static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let path = environment["KDAD_WEIGHTS"], !path.isEmpty {
            return URL(fileURLWithPath: path, isDirectory: true)
        }
        let home = environment["HOME"].map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        return home.appendingPathComponent(".cache/kdad/weights", isDirectory: true)
    }

    /// The cached file of `model` (e.g. `"efficientnet-lite0"`), or an error naming the command that fetches it.
    public static func url(for model: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        guard let known = knownModels[model] else {
            throw WeightFileError(kind: .missing, key: model,
                                  reason: "unknown model; known: \(knownModels.keys.sorted().joined(separator: ", "))")
        }
        let url = directory(environment: environment).appendingPathComponent(known.file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw WeightFileError(kind: .missing, file: url.path, key: model,
                                  reason: "weights not in the cache; fetch them with: scripts/fetch-weights.sh \(known.fetchArgument)")
        }
        return url
    }
}
