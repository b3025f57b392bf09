import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// `ipn create PATH` without `--persistent`: the command holds the bus for as long as it runs, as the README's
/// first example promises. (An optimised build once released the command's node right after its last use, so
/// the bus ended at once; scripts/test runs these against the release build.)
final class CreateCommandTests: DirectoryTestCase {

    func testCreateHoldsItsBusUntilInterrupted() async throws {
        let path = dir + "/bus"
        let (_, outcome) = try await TestSupport.with("ipn", ["create", path]) { creator in
            let holds = { (try? Bus.status(path).nodes.contains { $0.pid == creator }) == true }
            try TestSupport.waitUntil("ipn create shows as a node of its bus", holds)
            // A whole other program joins, works and leaves; the creator's node is still there afterwards.
            let sent = try await TestSupport.run("ipn", ["send", path], input: "hello\n")
            XCTAssertEqual(sent.exitCode, 0, "\(sent)")
            let stat = try await TestSupport.run("ipn", ["stat", path])
            XCTAssertEqual(stat.exitCode, 0, "the bus ended while ipn create was running: \(stat)")
            XCTAssertTrue(holds(), "ipn create's node left its bus while the command was running: \(stat)")
            kill(creator, SIGINT)
            try TestSupport.waitUntil("Ctrl-C on ipn create ends its bus") { (try? BusAddress.lookup(path)) == .missing }
            return ((), false)
        }
        XCTAssertTrue(outcome.standardOutput.contains("holding the bus"), "\(outcome)")
    }
}
