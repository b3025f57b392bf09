import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// Ctrl-C and SIGTERM end a command the way its own end would, with everything it printed written out. The
/// tests read a child's output through a pipe, as `ipn recv BUS > file` or `| tee` would: block-buffered
/// unless the command flushes it.
final class CleanStopTests: DirectoryTestCase {

    func testRecvEndedBySIGTERMHasWrittenEveryMessageItWasDelivered() async throws {
        let path = dir + "/bus"
        let manager = IPNSocket(policy: "hub")
        try manager.bind(path)
        let count = 20  // well within a node's queue (64): all of them are delivered, none dropped
        let (_, recv) = try await TestSupport.with("ipn", ["recv", path, "--summary"]) { pid in
            func node() -> BusStatus.NodeStatus? { (try? Bus.status(path))?.nodes.first { $0.pid == pid } }
            try TestSupport.waitUntil("ipn recv (pid \(pid)) is on the bus as a receiver") { node()?.canReceive == true }
            let sender = IPNSocket()
            try sender.shutdown(.read)
            try sender.connect(path)
            for i in 0..<count { try sender.send(Array("message \(i)".utf8)) }
            // Delivered: in ipn recv's queue or already printed by it; from here on nothing may be lost.
            try TestSupport.waitUntil("the bus has delivered the \(count) messages to ipn recv",
                                      lastSeen: { "\(node()?.deliveredMessages ?? 0) delivered" }) {
                node()?.deliveredMessages == UInt64(count)
            }
            kill(pid, SIGTERM)
            return ((), false)
        }
        // Without the fix this fails: stdout into a pipe was block-buffered and SIGTERM killed the process
        // with it unwritten (signal 15, no output at all).
        XCTAssertEqual(recv.exitCode, 0, "SIGTERM ends ipn recv cleanly: \(recv)")
        let lines = recv.standardOutput.split(separator: "\n").map(String.init)
        XCTAssertEqual(Array(lines.prefix(count)), (0..<count).map { "message \($0)" },
                       "every message delivered before SIGTERM is in the output, in order: \(recv)")
        XCTAssertEqual(TestSupport.summary(recv)?["messages"], count, "and the summary follows them: \(recv)")
    }
}
