import XCTest
@testable import KdadWeights

final class KdadWeightsSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
