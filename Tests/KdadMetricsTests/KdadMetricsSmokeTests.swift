import XCTest
@testable import KdadMetrics

final class KdadMetricsSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
