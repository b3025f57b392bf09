import Foundation
import Glibc
import CIPNSys
import IPNTestSupport
import XCTest
@testable import IPNBus

/// What reaches whom: hub fan-out across processes, order, large zero-copy messages, the switch.
final class DeliveryTests: DirectoryTestCase {

    func testHubDeliversEveryMessageToEveryOtherNodeInOrder() async throws {
        let path = dir + "/bus"
        let manager = IPNSocket(policy: "hub")
        manager.options.queueLength = 4096
        try manager.bind(path)
        let count = 2000
        let outcomes = try await withThrowingTaskGroup(of: TestSupport.Outcome.self) { group in
            for _ in 0..<3 {
                group.addTask { try await TestSupport.run("ipn", ["recv", path, "--count", "\(count)", "--quiet", "--summary", "--timeout", "20"]) }
            }
            try TestSupport.waitUntil("the three receivers are on the bus", lastSeen: { "\((try? Bus.status(path).readers) ?? -1) readers" }) {
                (try? Bus.status(path).readers) == 3
            }
            let sender = IPNSocket()
            try sender.connect(path)
            for i in 0..<count {
                try sender.send(length: 100 + i % 1000) { b in b.initializeMemory(as: UInt8.self, repeating: UInt8(i & 0xff)) }
            }
            var all: [TestSupport.Outcome] = []
            for try await o in group { all.append(o) }
            XCTAssertNil(try sender.receive(nonBlocking: true), "the hub never echoes to the sender")
            return all
        }
        for o in outcomes {
            let s = try XCTUnwrap(TestSupport.summary(o), "\(o)")
            XCTAssertEqual(s["messages"], count)
            XCTAssertEqual(s["sequenceGaps"], 0)
            XCTAssertEqual(s["outOfOrder"], 0)
            XCTAssertEqual(s["droppedByHost"], 0)
        }
    }

    func testLargeMessagesReachEveryReceiverFromAReadOnlyPool() throws {
        let path = dir + "/bus"
        let manager = IPNSocket(policy: "hub")
        manager.options.mtu = 64 << 20
        manager.options.poolBytes = 160 << 20
        try manager.bind(path)
        let receivers = [IPNSocket(), IPNSocket()]
        for r in receivers { try r.connect(path) }
        let sender = IPNSocket()
        try sender.connect(path)
        let size = 64 << 20
        for round in 0..<3 {
            try sender.send(length: size) { b in
                for i in stride(from: 0, to: b.count, by: 4096) { b.storeBytes(of: UInt32(i) &+ UInt32(round), toByteOffset: i, as: UInt32.self) }
            }
            for r in receivers {
                let ok = try r.withNextMessage(timeout: 10) { view -> Bool in
                    guard view.bytes.count == size else { return false }
                    for i in stride(from: 0, to: size, by: 4096) where view.bytes.load(fromByteOffset: i, as: UInt32.self) != UInt32(i) &+ UInt32(round) {
                        return false
                    }
                    return true
                }
                XCTAssertEqual(ok, true, "round \(round): the 64 MiB message arrived intact")
            }
        }
        // Receivers hold the sender's pool read-only: they cannot map it writable.
        let pool = try XCTUnwrap(receivers[0].peerPools.values.first)
        XCTAssertEqual(ipn_access_mode(pool.memory.fd), O_RDONLY)
        let writable = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, pool.memory.fd, 0)
        XCTAssertEqual(writable, MAP_FAILED, "a receiver must not be able to alter what others read")
        XCTAssertEqual(errno, EACCES)
        XCTAssertEqual(mprotect(pool.memory.base, 4096, PROT_READ | PROT_WRITE), -1)
    }

    func testSwitchLearnsAddressesAndUnicastsBetweenTwoNodesOnly() throws {
        let path = dir + "/switch"
        let a = IPNSocket(policy: "switch"), b = IPNSocket(), c = IPNSocket()
        try a.bind(path)
        try a.connect()
        try b.connect(path)
        try c.connect(path)
        let macA: [UInt8] = [0x02, 0, 0, 0, 0, 0xa], macB: [UInt8] = [0x02, 0, 0, 0, 0, 0xb]
        let broadcast = [UInt8](repeating: 0xff, count: 6)
        func frame(to: [UInt8], from: [UInt8], _ tag: UInt8) -> [UInt8] { to + from + [0x08, 0x00, tag] }

        try a.send(frame(to: broadcast, from: macA, 1))  // ARP-like broadcast: flooded
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes.last, 1)
        XCTAssertEqual(try c.receive(timeout: 5)?.bytes.last, 1)
        try b.send(frame(to: macA, from: macB, 2))  // A is known now: unicast
        XCTAssertEqual(try a.receive(timeout: 5)?.bytes.last, 2)
        try a.send(frame(to: macB, from: macA, 3))
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes.last, 3)
        XCTAssertNil(try c.receive(timeout: 0.3), "a third node does not see unicast between two others")
        XCTAssertNil(try a.receive(nonBlocking: true))

        try c.send([1, 2, 3])  // a runt frame: rejected and counted, the bus goes on
        try a.send(frame(to: macB, from: macA, 4))
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes.last, 4)
        let s = try a.status()
        XCTAssertEqual(s.policyStatistics["runtFrames"], "1")
        XCTAssertEqual(s.nodes.first { $0.id == c.nodeID }?.rejected, 1)
        XCTAssertEqual(s.policyStatistics["macEntries"], "2")

        b.close()  // B leaves: its address is forgotten, frames to it are flooded again
        try TestSupport.waitUntil("the switch forgets the address of the node that left (1 MAC entry)") {
            (try? a.status().policyStatistics["macEntries"]) == "1"
        }
        try a.send(frame(to: macB, from: macA, 5))
        XCTAssertEqual(try c.receive(timeout: 5)?.bytes.last, 5)
    }

    func testMembershipNoticesTellWhoListens() throws {
        let path = dir + "/bus"
        let publisher = IPNSocket()
        publisher.wantsMembership = true
        try publisher.bind(path)
        try publisher.shutdown(.read)
        try publisher.connect()
        XCTAssertEqual(try publisher.receive(timeout: 5)?.kind, .membership(readers: 0, writers: 1))
        let viewer = IPNSocket()
        try viewer.shutdown(.write)
        try viewer.connect(path)
        XCTAssertEqual(try publisher.receive(timeout: 5)?.kind, .membership(readers: 1, writers: 1))
        viewer.close()
        XCTAssertEqual(try publisher.receive(timeout: 5)?.kind, .membership(readers: 0, writers: 1))
    }

    func testAsyncSequenceAndPollableDescriptor() async throws {
        let path = dir + "/bus"
        let a = IPNSocket(), b = IPNSocket()
        try a.bind(path); try a.connect()
        try b.connect(path)
        XCTAssertEqual(ipn_poll_readable(b.pollDescriptor, 0), 0, "nothing to read yet")
        try a.send([42])
        XCTAssertEqual(ipn_poll_readable(b.pollDescriptor, 5000), 1, "poll(2) wakes on a message")
        XCTAssertEqual(try b.receive(nonBlocking: true)?.bytes, [42])
        XCTAssertNil(try b.receive(nonBlocking: true))
        try a.send([43]); try a.send([44])
        var got: [UInt8] = []
        for try await m in b.messages {
            got += m.bytes
            if got.count == 2 { break }
        }
        XCTAssertEqual(got, [43, 44])
    }
}
