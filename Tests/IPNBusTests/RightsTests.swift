import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// Rights come from the bus file's mode against the real credentials of the joining process,
/// taken from the socket (SO_PEERCRED), tested with real other users.
final class RightsTests: DirectoryTestCase {
    let stranger = TestSupport.Identity(uid: 4101, gid: 4101)
    let groupMember = TestSupport.Identity(uid: 4102, gid: 4102, groups: [4200])

    func makeBus(mode: UInt32, group: UInt32 = 0) throws -> (IPNSocket, String) {
        let path = dir + "/bus"
        let bus = IPNSocket(policy: "hub")
        bus.options.mode = mode
        try bus.bind(path)
        try bus.connect()
        if group != 0 { XCTAssertEqual(chown(path, 0, group), 0) }
        return (bus, path)
    }

    func testReadOnlyUserJoinsAsReceiverAndCannotSend() async throws {
        let (bus, path) = try makeBus(mode: 0o644)
        let (_, received) = try await TestSupport.with("ipn", ["recv", path, "--count", "2", "--summary"], as: stranger) { _ in
            try TestSupport.waitUntil("the stranger's receiver is on the bus (2 readers)") { (try? bus.status().readers) == 2 }
            let node = try XCTUnwrap(try bus.status().nodes.first { $0.uid == 4101 })
            XCTAssertEqual(node.rights, [.receive])
            XCTAssertTrue(node.canReceive)
            XCTAssertFalse(node.canSend, "joining without w shuts the send side down")
            try bus.send(Array("a".utf8))
            try bus.send(Array("b".utf8))
            return ((), false)
        }
        XCTAssertEqual(received.exitCode, 0, "\(received)")
        XCTAssertTrue(received.standardOutput.hasPrefix("a\nb\n"), "\(received)")

        let send = try await TestSupport.run("ipn", ["send", path], as: stranger, input: "x\n")
        XCTAssertEqual(send.exitCode, 1)
        XCTAssertTrue(send.standardError.contains("permission denied") && send.standardError.contains("send (w)"), "\(send)")
    }

    func testGroupRightsComeFromSupplementaryGroups() async throws {
        let (bus, path) = try makeBus(mode: 0o620, group: 4200)  // group may send, not receive
        let send = try await TestSupport.run("ipn", ["send", path], as: groupMember, input: "from the group\n")
        XCTAssertEqual(send.exitCode, 0, "\(send)")
        XCTAssertEqual(try bus.receive(timeout: 5)?.bytes, Array("from the group".utf8))
        let recv = try await TestSupport.run("ipn", ["recv", path, "--count", "1", "--receive-only"], as: groupMember)
        XCTAssertTrue(recv.standardError.contains("receive (r)"), "\(recv)")
    }

    func testNoRightAtAllIsRefusedWithAClearError() async throws {
        let (bus, path) = try makeBus(mode: 0o600)
        defer { withExtendedLifetime(bus) {} }
        let recv = try await TestSupport.run("ipn", ["recv", path, "--count", "1"], as: stranger)
        XCTAssertEqual(recv.exitCode, 1)
        XCTAssertTrue(recv.standardError.contains("permission denied on \(path)"), "\(recv)")
        let stat = try await TestSupport.run("ipn", ["stat", path], as: stranger)
        XCTAssertEqual(stat.exitCode, 1, "\(stat)")
    }

    func testManagingNeedsTheExecuteBit() async throws {
        let (bus, path) = try makeBus(mode: 0o666)
        let rm = try await TestSupport.run("ipn", ["rm", path], as: stranger)
        XCTAssertEqual(rm.exitCode, 1)
        XCTAssertTrue(rm.standardError.contains("manage (x)"), "\(rm)")
        XCTAssertNoThrow(try bus.status(), "the bus is still there")
        XCTAssertEqual(chmod(path, 0o667), 0)  // chmod on the file changes who may manage
        let rm2 = try await TestSupport.run("ipn", ["rm", path], as: stranger)
        XCTAssertEqual(rm2.exitCode, 0, "\(rm2)")
        XCTAssertThrowsError(try bus.receive(timeout: 5)) { XCTAssertEqual($0 as? IPNError, .busGone(path: path)) }
    }

    func testRightsFollowChmodForLaterJoins() async throws {
        let (bus, path) = try makeBus(mode: 0o600)
        defer { withExtendedLifetime(bus) {} }
        let before = try await TestSupport.run("ipn", ["send", path], as: stranger, input: "x\n")
        XCTAssertEqual(before.exitCode, 1)
        XCTAssertEqual(chmod(path, 0o602), 0)
        let after = try await TestSupport.run("ipn", ["send", path], as: stranger, input: "x\n")
        XCTAssertEqual(after.exitCode, 0, "\(after)")
    }

    func testRightsRule() {
        XCTAssertEqual(Rights.granted(mode: 0o750, owner: 10, group: 20, uid: 10, gids: [99]), .all)
        XCTAssertEqual(Rights.granted(mode: 0o750, owner: 10, group: 20, uid: 11, gids: [20]), [.receive, .manage])
        XCTAssertEqual(Rights.granted(mode: 0o754, owner: 10, group: 20, uid: 11, gids: [21]), [.receive])
        XCTAssertEqual(Rights.granted(mode: 0o070, owner: 10, group: 10, uid: 10, gids: [10]), [], "the owner class wins even when empty")
    }
}
