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
            XCTAssertTrue(TestSupport.eventually { Bus.listIfLive(path) })
            let member = IPNSocket()
            try member.connect(path)
            kill(creator, SIGKILL)
            XCTAssertTrue(TestSupport.eventually { (try? Bus.status(path).nodes.count) == 1 }, "creator's node left")
            // Still a working bus: a second member can talk to the first.
            let other = IPNSocket()
            try other.connect(path)
            try other.send(Array("still here".utf8))
            XCTAssertEqual(try member.receive(timeout: 5)?.bytes, Array("still here".utf8))
            member.close()
            other.close()
            XCTAssertTrue(TestSupport.eventually { (try? BusAddress.lookup(path)) == .missing }, "the bus file goes with the last node")
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
        XCTAssertTrue(TestSupport.eventually { !TestSupport.isAlive(hostPID) })
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
        XCTAssertEqual(unlink(path), 0)  // as `rm -rf` of the directory would
        usleep(1_500_000)
        XCTAssertTrue(TestSupport.isAlive(hostPID), "a node is still on it: the bus lives on for it")
        first.close()
        XCTAssertTrue(TestSupport.eventually { !TestSupport.isAlive(hostPID) }, "nobody can reach it any more: the host ends")
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
        XCTAssertTrue(TestSupport.eventually { !TestSupport.isAlive(status.hostPID) }, "the host ends")
    }

    func testAManagerCanMakeALiveBusPersistent() async throws {
        let path = dir + "/bus"
        let creator = IPNSocket()
        try creator.bind(path)
        let set = try await TestSupport.run("ipn", ["set", path, "--persistent", "--description", "kept"])
        XCTAssertEqual(set.exitCode, 0, "\(set)")
        creator.close()
        usleep(200_000)
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
        XCTAssertTrue(TestSupport.eventually { (try? IPNSocket().connect(path)) != nil }, "a freed place can be taken again")
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
