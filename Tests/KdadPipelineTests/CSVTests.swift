import XCTest
@testable import KdadPipeline

final class CSVTests: XCTestCase {
    func testFieldsAreQuotedOnlyWhenTheyWouldBreakARow() {
        XCTAssertEqual(CSV.field(nil), "")
        XCTAssertEqual(CSV.field("exp1/a.png"), "exp1/a.png")
        XCTAssertEqual(CSV.field("a,b"), "\"a,b\"")
        XCTAssertEqual(CSV.field("say \"hi\""), "\"say \"\"hi\"\"\"")
        XCTAssertEqual(CSV.field("line\nbreak"), "\"line\nbreak\"")
        XCTAssertEqual(CSV.field("carriage\rreturn"), "\"carriage\rreturn\"")
        // "\r\n" is a single Swift Character, equal to neither "\r" nor "\n": must still be quoted.
        XCTAssertEqual(CSV.field("windows\r\nname.png"), "\"windows\r\nname.png\"")
    }
}
