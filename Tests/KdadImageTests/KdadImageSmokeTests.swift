import XCTest
@testable import KdadImage

final class KdadImageSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
