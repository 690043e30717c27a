import XCTest
@testable import KdadSupport

final class KdadSupportSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
