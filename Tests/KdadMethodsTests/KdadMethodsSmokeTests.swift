import XCTest
@testable import KdadMethods

final class KdadMethodsSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
