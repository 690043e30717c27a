import XCTest
@testable import KdadTensor

final class KdadTensorSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
