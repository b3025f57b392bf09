import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// The life of a bus: created by the first bind, named by its file, gone with its last node.
final class BusLifecycleTests: DirectoryTestCase {

    func testBindCreatesASocketFileWithTheRequestedMode() throws {
        let bus = IPNSocket(policy: "hub")
        bus.options.mode = 0o640
        try bus.bind(dir + "/bus")
        var st = stat()
        XCTAssertEqual(lstat(dir + "/bus", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFSOCK)
        XCTAssertEqual(st.st_mode & 0o777, 0o640)
        XCTAssertEqual(bus.rights, .all, "the creator holds every right")
    }

    func testBusOutlivesItsCreatorAndVanishesWithItsLastNode() async throws {
        let path = dir + "/bus"
        // The creator is a separate process holding the bus; it is killed while a member remains.
        let (_, _) = try await TestSupport.with("ipn", ["create", path]) { creator in
            try TestSupport.waitUntil("the creator's bus answers") { Bus.listIfLive(path) }
            let member = IPNSocket()
            try member.connect(path)
            kill(creator, SIGKILL)
            try TestSupport.waitUntil("the killed creator's node has left (1 node remains)") { (try? Bus.status(path).nodes.count) == 1 }
            // Still a working bus: a second member can talk to the first.
            let other = IPNSocket()
            try other.connect(path)
            try other.send(Array("still here".utf8))
            XCTAssertEqual(try member.receive(timeout: 5)?.bytes, Array("still here".utf8))
            member.close()
            other.close()
            try TestSupport.waitUntil("the bus file goes with the last node") { (try? BusAddress.lookup(path)) == .missing }
            return ((), false)
        }
    }

    func testStaleBusFileIsReportedAndRecoveredByBind() throws {
        let path = dir + "/bus"
        let first = IPNSocket()
        first.options.persistent = true
        try first.bind(path)
        let hostPID = try first.status().hostPID
        first.close()
        kill(hostPID, SIGKILL)
        try TestSupport.waitUntil("the killed host \(hostPID) is gone") { !TestSupport.isAlive(hostPID) }
        XCTAssertThrowsError(try IPNSocket().connect(path)) { error in
            XCTAssertEqual(error as? IPNError, .staleBus(path: path))
            XCTAssertTrue("\(error)".contains("stale"))
        }
        let again = IPNSocket()
        try again.bind(path)
        XCTAssertNotEqual(try again.status().hostPID, hostPID)
        try again.connect()
        XCTAssertTrue(again.isConnected)
    }

    func testAPersistentBusWhoseFileIsDeletedEndsOnceNobodyIsOnIt() throws {
        let path = dir + "/bus"
        let first = IPNSocket()
        first.options.persistent = true
        try first.bind(path)
        try first.connect()
        let hostPID = try first.status().hostPID
        let unlinkedAt = try first.status().uptimeSeconds
        XCTAssertEqual(unlink(path), 0)  // as `rm -rf` of the directory would
        // The host looks for its file once a second (on its tick). Its own clock, asked through the node's
        // connection, tells when it has run more than a tick since the file went: from then on it has
        // seen the file gone, whatever the machine's speed.
        try TestSupport.waitUntil("the host's uptime passes \(unlinkedAt + 3) s (it has looked for its file since the unlink)",
                                  lastSeen: { "\((try? first.status().uptimeSeconds) ?? -1) s" }) {
            try first.status().uptimeSeconds >= unlinkedAt + 3
        }
        XCTAssertTrue(TestSupport.isAlive(hostPID), "a node is still on it: the bus lives on for it")
        first.close()
        try TestSupport.waitUntil("nobody can reach the bus any more: its host \(hostPID) ends") { !TestSupport.isAlive(hostPID) }
    }

    func testPersistentBusStaysWithoutNodesUntilRemoved() async throws {
        let path = dir + "/bus"
        let create = try await TestSupport.run("ipn", ["create", path, "--persistent", "--policy", "switch", "--mode", "0660"])
        XCTAssertEqual(create.exitCode, 0, "\(create)")
        let status = try Bus.status(path)
        XCTAssertEqual(status.policy, "switch")
        XCTAssertEqual(status.nodes.count, 0)
        XCTAssertTrue(status.options.persistent)
        let listing = try await TestSupport.run("ipn", ["ls", dir])
        XCTAssertTrue(listing.standardOutput.contains("bus  switch  0 nodes"), "\(listing)")
        let rm = try await TestSupport.run("ipn", ["rm", path])
        XCTAssertEqual(rm.exitCode, 0, "\(rm)")
        XCTAssertEqual(try BusAddress.lookup(path), .missing)
        try TestSupport.waitUntil("the removed bus's host \(status.hostPID) ends") { !TestSupport.isAlive(status.hostPID) }
    }

    func testAManagerCanMakeALiveBusPersistent() async throws {
        let path = dir + "/bus"
        let creator = IPNSocket()
        try creator.bind(path)
        let set = try await TestSupport.run("ipn", ["set", path, "--persistent", "--description", "kept"])
        XCTAssertEqual(set.exitCode, 0, "\(set)")
        creator.close()
        // The host has seen the creator leave once the bus reports no node; a bus that is not persistent
        // would have ended instead (and this wait times out, saying what it last saw).
        try TestSupport.waitUntil("the creator's node has left the still-living bus", lastSeen: { "\(Result { try Bus.status(path).nodes.count })" }) {
            (try? Bus.status(path).nodes.count) == 0
        }
        let status = try Bus.status(path)
        XCTAssertTrue(status.options.persistent)
        XCTAssertEqual(status.options.description, "kept")
        XCTAssertEqual(status.nodes.count, 0, "the bus outlived its last node")
    }

    func testABusRefusesNodesBeyondItsSize() throws {
        let path = dir + "/small"
        let bus = IPNSocket()
        bus.options.maxNodes = 2
        try bus.bind(path)
        try bus.connect()
        let second = IPNSocket()
        try second.connect(path)
        XCTAssertThrowsError(try IPNSocket().connect(path)) { error in
            XCTAssertTrue("\(error)".contains("is full (2 nodes)"), "\(error)")
        }
        second.close()
        try TestSupport.waitUntil("a freed place can be taken again") { (try? IPNSocket().connect(path)) != nil }
    }

    func testErrorsNameTheirCause() async throws {
        let path = dir + "/bus"
        let bus = IPNSocket(policy: "hub")
        try bus.bind(path)
        XCTAssertThrowsError(try IPNSocket(policy: "switch").connect(path)) { error in
            XCTAssertTrue("\(error)".contains("uses the hub policy"), "\(error)")
        }
        _ = FileManager.default.createFile(atPath: dir + "/plain", contents: Data("x".utf8))
        XCTAssertThrowsError(try IPNSocket().connect(dir + "/plain")) { XCTAssertEqual($0 as? IPNError, .notABus(path: self.dir + "/plain")) }
        XCTAssertThrowsError(try IPNSocket().connect(dir + "/nothing")) { XCTAssertEqual($0 as? IPNError, .noSuchBus(path: self.dir + "/nothing")) }
        let node = IPNSocket()
        try node.connect(path)
        XCTAssertThrowsError(try node.send([UInt8](repeating: 0, count: 1515))) {
            XCTAssertEqual($0 as? IPNError, .mtuExceeded(size: 1515, mtu: 1514))
        }
        let unknown = try await TestSupport.run("ipn", ["create", dir + "/other", "--policy", "ring"])
        XCTAssertEqual(unknown.exitCode, 1)
        XCTAssertTrue(unknown.standardError.contains("unknown policy 'ring'"), "\(unknown)")
        let missing = try await TestSupport.run("ipn", ["stat", dir + "/nothing"])
        XCTAssertTrue(missing.standardError.contains("no bus at"), "\(missing)")
    }

    func testShutdownMakesANodeSendOnlyOrReceiveOnly() throws {
        let path = dir + "/bus"
        let a = IPNSocket(), b = IPNSocket()
        try a.bind(path)
        try a.connect()
        try b.connect(path)
        try b.shutdown(.write)
        XCTAssertThrowsError(try b.send([1])) { XCTAssertEqual($0 as? IPNError, .shutDown(direction: "send")) }
        try a.send([7])
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes, [7])
        try a.shutdown(.read)
        try b.shutdown(.read)
        let status = try a.status()
        XCTAssertEqual(status.readers, 0)
        XCTAssertEqual(status.writers, 1)
    }
}

extension Bus {
    /// True once a live host answers at `path`.
    static func listIfLive(_ path: String) -> Bool { (try? status(path)) != nil }
}
