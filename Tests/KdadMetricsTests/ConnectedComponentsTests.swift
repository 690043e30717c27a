import XCTest
@testable import KdadMetrics

final class ConnectedComponentsTests: XCTestCase {
    func testDiagonalTouchIsOneRegion() throws {
        // X . .
        // . X .     three pixels touching only at corners: one region under 8-connectivity.
        // . . X
        let mask = [true, false, false, false, true, false, false, false, true]
        let components = try connectedComponents(mask: mask, width: 3, height: 3)
        XCTAssertEqual(components.regionSizes, [3])
        XCTAssertEqual(components.labels, [1, 0, 0, 0, 1, 0, 0, 0, 1])
    }

    func testSeparatedRegionsAndSizes() throws {
        // X X . . X
        // . . . . X      left pair (2), right column (3), bottom-left pixel (1): separated by a gap.
        // X . . . X
        let mask: [Bool] = [true, true, false, false, true,
                            false, false, false, false, true,
                            true, false, false, false, true]
        let components = try connectedComponents(mask: mask, width: 5, height: 3)
        // Numbered by first pixel in row-major order: pair (starts at 0), column (at 4), single (at 10).
        XCTAssertEqual(components.regionSizes, [2, 3, 1])
        XCTAssertEqual(components.labels, [1, 1, 0, 0, 2, 0, 0, 0, 0, 2, 3, 0, 0, 0, 2])
    }

    func testUShapeJoinsThroughBottom() throws {
        // X . X
        // X . X    the two arms meet only through the bottom row: one region of 7.
        // X X X
        let mask: [Bool] = [true, false, true, true, false, true, true, true, true]
        XCTAssertEqual(try connectedComponents(mask: mask, width: 3, height: 3).regionSizes, [7])
    }

    func testEmptyAndFullMasks() throws {
        XCTAssertEqual(try connectedComponents(mask: [Bool](repeating: false, count: 6), width: 3, height: 2).regionCount, 0)
        XCTAssertEqual(try connectedComponents(mask: [Bool](repeating: true, count: 6), width: 2, height: 3).regionSizes, [6])
    }

    func testMatchesBruteForceOnRandomMasks() throws {
        var generator = SeededGenerator(seed: 11)
        for trial in 0..<30 {
            let width = 1 + Int(generator.next() % 20), height = 1 + Int(generator.next() % 20)
            let mask = (0..<width * height).map { _ in generator.next() % 100 < 30 }
            let fast = try connectedComponents(mask: mask, width: width, height: height)
            let slow = bruteForceRegions(mask: mask, width: width, height: height)
            // Same partition: two defect pixels share a fast label iff they share a brute-force label.
            var fastToSlow: [Int32: Int] = [:], slowToFast: [Int: Int32] = [:]
            for index in mask.indices where mask[index] {
                XCTAssertNotEqual(fast.labels[index], 0)
                XCTAssertEqual(fastToSlow[fast.labels[index], default: slow[index]], slow[index], "trial \(trial)")
                XCTAssertEqual(slowToFast[slow[index], default: fast.labels[index]], fast.labels[index], "trial \(trial)")
                fastToSlow[fast.labels[index]] = slow[index]
                slowToFast[slow[index]] = fast.labels[index]
            }
            XCTAssertEqual(fast.regionCount, Set(slow.filter { $0 >= 0 }).count)
            XCTAssertEqual(fast.regionSizes.reduce(0, +), mask.filter { $0 }.count)
        }
    }

    func testGeometryErrorsAndGrayMasks() {
        XCTAssertThrowsMetricsError(try connectedComponents(mask: [true, false, true], width: 2, height: 2),
                                    .invalidGeometry(what: "ground-truth mask", width: 2, height: 2, pixelCount: 3))
        // MTD masks: white = defect, anti-aliased edges; defect = value > 127.
        XCTAssertEqual(defectMask(fromGray: [0, 127, 128, 255]), [false, false, true, true])
    }
}
