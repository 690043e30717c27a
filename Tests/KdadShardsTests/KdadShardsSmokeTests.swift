import XCTest
@testable import KdadShards

final class KdadShardsSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
