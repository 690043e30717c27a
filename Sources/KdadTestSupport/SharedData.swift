import Foundation
import XCTest

/// Locates `../shared` (datasets and golden references) relative to the package root.
/// Tests that need it call `try SharedData.require("datasets/mtd")`, which skips with a printed
/// reason when it is absent (a developer checkout without shared/); CI always has it.
public enum SharedData {
    /// The package root, found from this source file's path (…/Sources/KdadTestSupport/SharedData.swift).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$KDAD_SHARED` if set, else `<package root>/../shared`.
    public static let root: URL = {
        if let env = ProcessInfo.processInfo.environment["KDAD_SHARED"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }()

    /// The URL of `relative` inside shared/, or an `XCTSkip` naming what is missing.
    public static func require(_ relative: String) throws -> URL {
        let url = root.appendingPathComponent(relative)
        guard FileManager.default.fileExists(atPath: url.path) else {
            let reason = "skipped: \(url.path) is absent (set KDAD_SHARED or place shared/ beside the package)"
            print(reason)
            throw XCTSkip(reason)
        }
        return url
    }
}

/// A fresh temporary directory, removed by the caller's `addTeardownBlock` if wanted.
public func makeTemporaryDirectory(_ label: String = "kdad-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(label)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The directory holding built products (the `kdad` executable), for tests that spawn a child process.
public var builtProductsDirectory: URL {
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
}
