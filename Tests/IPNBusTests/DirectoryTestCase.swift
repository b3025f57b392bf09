import IPNTestSupport
import XCTest

/// A test case with a fresh, world-traversable directory for its buses, removed (buses included)
/// after each test.
class DirectoryTestCase: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestSupport.makeDirectory(name) }
    override func tearDown() { TestSupport.removeDirectory(dir) }
}
