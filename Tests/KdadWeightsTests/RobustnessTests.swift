import Foundation
import XCTest
@testable import KdadWeights

/// Damaged files must give a typed error (or, if the damage is harmless, a result), never a crash.
final class RobustnessTests: XCTestCase {
    private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    private func assertOnlyTypedErrors(_ data: Data, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            switch WeightFiles.detectFormat(data) {
            case .safetensors: _ = try SafeTensors.decode(data)
            case .pytorchLegacy, .pytorchZip: _ = try PyTorchCheckpoint.decode(data)
            case nil: break
            }
        } catch is WeightFileError {
        } catch {
            XCTFail("\(label): untyped error \(error)", file: file, line: line)
        }
    }

    /// Every cut in the first 600 bytes (where the structure is) and every 13th after it.
    private func cutPoints(_ count: Int) -> [Int] {
        Array(0..<min(600, count)) + Array(stride(from: 600, to: count, by: 13))
    }

    func testTruncatedFixturesAreAlwaysRejectedWithTypedErrors() throws {
        for name in ["checkpoint-legacy.pth", "checkpoint-zip.pth", "expected.safetensors"] {
            let data = try Data(contentsOf: fixtures.appendingPathComponent(name))
            for length in cutPoints(data.count) {
                let prefix = data.prefix(length)
                do {
                    switch WeightFiles.detectFormat(prefix) {
                    case .safetensors: _ = try SafeTensors.decode(prefix)
                    case .pytorchLegacy, .pytorchZip: _ = try PyTorchCheckpoint.decode(prefix)
                    case nil: continue
                    }
                    XCTFail("\(name) cut to \(length) of \(data.count) bytes was accepted")
                } catch is WeightFileError {
                } catch {
                    XCTFail("\(name) cut to \(length): untyped error \(error)")
                }
            }
        }
    }

    func testEverySingleByteCorruptionOfTheLegacyFixtureFailsCleanlyOrDecodes() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-legacy.pth"))
        for position in cutPoints(data.count) {
            var damaged = data
            damaged[position] ^= 0xFF
            assertOnlyTypedErrors(damaged, "byte \(position)")
        }
    }

    func testEverySingleByteCorruptionOfTheSafetensorsHeaderFailsCleanlyOrDecodes() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("expected.safetensors"))
        let headerEnd = 8 + data.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        for position in 0..<headerEnd {
            for pattern: UInt8 in [0xFF, 0x10] {
                var damaged = data
                damaged[position] ^= pattern
                assertOnlyTypedErrors(damaged, "byte \(position) ^ \(pattern)")
            }
        }
    }

    func testEverySingleByteCorruptionOfTheZipFixtureFailsCleanlyOrDecodes() throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("checkpoint-zip.pth"))
        for position in cutPoints(data.count) + Array(max(600, data.count - 1500)..<data.count) { // and the whole central directory
            var damaged = data
            damaged[position] ^= 0xFF
            assertOnlyTypedErrors(damaged, "byte \(position)")
        }
    }
}
