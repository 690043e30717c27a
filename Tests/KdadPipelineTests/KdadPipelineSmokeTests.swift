import XCTest
@testable import KdadPipeline

final class KdadPipelineSmokeTests: XCTestCase {
    func testModuleLoads() throws {}
}
