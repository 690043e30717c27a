import XCTest
@testable import KdadNN

final class KdadNNSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
