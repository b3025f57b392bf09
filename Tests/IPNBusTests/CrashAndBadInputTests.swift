import CIPNSys
import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// Nodes that die mid-message and peers that send garbage hurt only themselves.
final class CrashAndBadInputTests: DirectoryTestCase {

    func testKillingNodesMidMessage200TimesLeaksNothingAndTearsNothing() async throws {
        let path = dir + "/bus"
        let watcher = IPNSocket(policy: "hub")
        watcher.options.mtu = 1 << 20
        watcher.options.queueLength = 1024
        try watcher.bind(path)
        try watcher.shutdown(.write)
        try watcher.connect()
        let host = try watcher.status().hostPID
        // What the bus host and this process (the watcher's rings) hold before the killing: every ring and
        // pool is a memfd, seen only in /proc (descriptors and mappings), never in /dev/shm.
        let hostBaseline = try TestSupport.resources(of: host, "the bus host")
        let selfBaseline = try TestSupport.resources(of: getpid(), "the test process")

        // The watcher checks every message it gets: generated messages carry their index in the first
        // 8 bytes and that index's low byte everywhere else, so a torn message cannot pass.
        // The watcher socket is used by the watching thread only until it ends (waited for below), then by
        // this test again: one user at a time.
        nonisolated(unsafe) let w = watcher
        struct Tally { var good = 0; var torn = 0; var stop = false }
        let tally = Locked(Tally())
        let watching = Thread {
            while !tally.withLock({ $0.stop }) {
                // What the zero-copy read returns counts; a read the sender lapped is discarded by the API.
                let intact = try? w.withNextMessage(timeout: 0.1) { v -> Bool in
                    guard v.bytes.count >= 8 else { return false }
                    let fill = UInt8(truncatingIfNeeded: v.bytes.load(as: UInt64.self))
                    return v.bytes.dropFirst(8).allSatisfy { $0 == fill }
                }
                switch intact {
                case true?: tally.withLock { $0.good += 1 }
                case false?: tally.withLock { $0.torn += 1 }
                default: break
                }
            }
        }
        watching.start()

        for round in 0..<200 {
            // Alternate senders of large (pool) and small (inline) messages, and receivers.
            let args: [String]
            switch round % 3 {
            case 0: args = ["send", path, "--size", "300000", "--count", "1000000"]
            case 1: args = ["send", path, "--size", "1000", "--count", "100000000"]
            default: args = ["recv", path, "--quiet"]
            }
            _ = try await TestSupport.with("ipn", args) { pid in
                try TestSupport.waitUntil("round \(round): ipn \(args[0]) (pid \(pid)) has joined the bus") {
                    (try? Bus.status(path).nodes.contains { $0.pid == pid }) == true
                }
                // Part of the scenario, not a wait for an event: the kill lands somewhere mid-stream, at a
                // different point each round. Whatever the machine's speed, the verdict is the same.
                usleep(useconds_t(1000 + (round * 7919) % 20000))
                return ((), true)  // SIGKILL
            }
        }
        try TestSupport.waitUntil("every killed node was removed (the watcher alone remains)",
                                  lastSeen: { "\((try? Bus.status(path).nodes.count) ?? -1) nodes" }) {
            (try? Bus.status(path).nodes.count) == 1
        }
        // No leak: the host is back to its baseline (descriptors of every kind, memfd mappings; the status
        // connections above are closed by the time it is), and so is
        // this process (memfd descriptors and mappings: the killed senders' pools the watcher mapped).
        // Shown failing by breaking Sources/IPNBus on purpose (not committed): without the close of
        // poolReadOnlyFD in HostNode.close() the host kept "descriptors: +37 /memfd:ipn-pool (deleted)";
        // without the munmap in SharedMemory.deinit it kept "mappings: +200 /memfd:ipn-inbox (deleted) ...,
        // +200 /memfd:ipn-outbox (deleted) ..., +24 /memfd:ipn-pool (deleted) ..." (its descriptors were all
        // closed: a count of descriptors, or of files in /dev/shm, saw nothing); without
        // `peerPools[r.sender] = nil` in IPNSocket.retirePools() this process kept "descriptors: +12
        // /memfd:ipn-pool (deleted); mappings: +12 /memfd:ipn-pool (deleted) 8392704 bytes".
        try TestSupport.waitForNoLeak("the bus host", pid: host, baseline: hostBaseline)
        try TestSupport.waitForNoLeak("the test process (the watcher)", pid: getpid(), baseline: selfBaseline, memfdOnly: true)
        tally.withLock { $0.stop = true }
        try TestSupport.waitUntil("the watcher thread ends") { !watching.isExecuting }
        let (good, torn) = tally.withLock { ($0.good, $0.torn) }
        XCTAssertGreaterThan(good, 200, "the watcher kept receiving throughout")
        XCTAssertEqual(torn, 0, "no torn message was ever delivered")
        // The bus still works.
        let a = IPNSocket()
        try a.connect(path)
        try a.send(length: 16) { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        XCTAssertNotNil(try watcher.receive(timeout: 5))
    }

    /// Connects to the bus's host directly, as a raw client that ignores the protocol.
    func rawClient(_ path: String) throws -> Int32 {
        guard case .socket(let address, _, _, _) = try BusAddress.lookup(path) else { throw IPNError.noSuchBus(path: path) }
        let fd = ipn_seqpacket_socket()
        XCTAssertEqual(ipn_connect_abstract(fd, address.abstractName), 0)
        return fd
    }

    func testMalformedTruncatedAndOversizedControlMessagesAreRejected() throws {
        let path = dir + "/bus"
        let a = IPNSocket(), b = IPNSocket()
        try a.bind(path); try a.connect()
        try b.connect(path)
        let payloads: [[UInt8]] = [
            Array("garbage".utf8),
            Array(#"{"hello":{"_0":{"version":1,"intent":"conn"#.utf8),  // truncated
            [UInt8](repeating: 0x7b, count: 300_000),  // oversized
            Array(#"{"join":{"_0":{"wantReceive":true,"wantSend":true,"wantMembership":false,"description":""}}}"#.utf8),  // out of order
            [],
        ]
        for p in payloads {
            let fd = try rawClient(path)
            // (The kernel itself may refuse the oversized one with EMSGSIZE: then the client is silent.)
            _ = p.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buf = [UInt8](repeating: 0, count: 4096)
            // The host answers with an error and closes the connection (a silent one after 5 s).
            var closed = false
            for _ in 0..<100 where !closed {
                guard ipn_poll_readable(fd, 10_000) == 1 else { break }
                let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) { closed = true }
            }
            XCTAssertTrue(closed, "the host hangs up on a bad client")
            close(fd)
        }
        try a.send([9])
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes, [9], "the bus keeps serving everyone else")
        XCTAssertEqual(try a.status().nodes.count, 2)
    }

    func testGarbageInANodesOwnRingIsRejectedAndCounted() throws {
        let path = dir + "/bus"
        let a = IPNSocket(), b = IPNSocket(), evil = IPNSocket()
        try a.bind(path); try a.connect()
        try b.connect(path)
        try evil.connect(path)
        // The evil node writes slots by hand: unknown kind, length over the MTU, a pool reference
        // without a pool.
        let outbox = try XCTUnwrap(evil.outbox)
        let bad: [(UInt32, UInt32, UInt64)] = [(10, 7, 0), (100_000, 0, 0), (100, 1, 12345)]
        for (i, (length, kind, position)) in bad.enumerated() {
            let slot = outbox.slot(UInt64(i))
            slot.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
            slot.storeBytes(of: kind, toByteOffset: 4, as: UInt32.self)
            slot.storeBytes(of: position, toByteOffset: 24, as: UInt64.self)
        }
        evil.outboxWrite = UInt64(bad.count)
        if outbox.publish(from: 0, to: UInt64(bad.count)) { _ = ipn_eventfd_signal(evil.doorbellFD) }
        try TestSupport.waitUntil("the host rejects and counts the 3 malformed slots") {
            (try? a.status().nodes.first { $0.id == evil.nodeID }?.rejected) == 3
        }
        XCTAssertNil(try b.receive(timeout: 0.2), "nothing malformed was delivered")

        // Corrupt cursors get the node thrown off; the others go on.
        outbox.write.store(UInt64.max / 2, ordering: .sequentiallyConsistent)
        _ = ipn_eventfd_signal(evil.doorbellFD)
        try TestSupport.waitUntil("the node with corrupt cursors is thrown off (2 nodes remain)") { (try? a.status().nodes.count) == 2 }
        try a.send([1])
        XCTAssertEqual(try b.receive(timeout: 5)?.bytes, [1])
    }

    /// On a lossless bus a node that claims to have read 2^63 messages (its inbox read cursor, in memory
    /// it shares with the host) is thrown off with the reason, which `ipn stat` keeps; the other receiver
    /// gets the next message. (A lossy bus dropped it already.)
    ///
    /// Before the fix the host took the cursor for a full queue: it held the message back for that node,
    /// and every sender with it, for ever; the healthy receiver's wait for message 8 fails.
    func testAnImpossibleInboxCursorOnALosslessBusGetsTheNodeThrownOffInsteadOfStallingEveryone() throws {
        let path = dir + "/lossless"
        let holder = IPNSocket(policy: "hub")
        holder.options.lossless = true
        holder.options.queueLength = 8
        try holder.bind(path)
        let sender = IPNSocket(), healthy = IPNSocket(), evil = IPNSocket()
        try sender.shutdown(.read)
        try sender.connect(path)
        try healthy.shutdown(.write)
        try healthy.connect(path)
        try evil.shutdown(.write)
        try evil.connect(path)
        // Both queues fill with 8 messages; the healthy receiver reads its 8, the other none.
        for i in 0..<8 { try sender.send([UInt8(i)]) }
        for i in 0..<8 { XCTAssertEqual(try healthy.receive(timeout: TestSupport.patience)?.bytes, [UInt8(i)]) }
        try XCTUnwrap(evil.inbox).read.store(1 << 63, ordering: .sequentiallyConsistent)
        try sender.send([8])
        XCTAssertEqual(try healthy.receive(timeout: TestSupport.patience)?.bytes, [8], "the impossible cursor held nobody back")
        let told = ipn_poll_readable(try XCTUnwrap(evil.control).fd, Int32(TestSupport.patience * 1000)) == 1
        XCTAssertTrue(told, "the host tells the node")
        let reason = "ring cursors corrupted: inbox read cursor 9223372036854775808 is beyond the 8 messages written to it"
        if told {
            XCTAssertThrowsError(try evil.awaitReply()) { error in
                XCTAssertEqual(error as? IPNError, .refused(path: path, reason: reason))
            }
        }
        let status = try holder.status()
        XCTAssertFalse(status.nodes.contains { $0.id == evil.nodeID }, "the node is off the bus")
        XCTAssertEqual(status.evictions, ["node \(evil.nodeID ?? 0) (pid \(getpid())): \(reason)"], "ipn stat keeps the reason")
    }

    func testAPoolReferenceNearTheEndOfTheCounterCannotCrashTheHost() throws {
        let path = dir + "/big"
        let a = IPNSocket(), evil = IPNSocket()
        a.options.mtu = 1 << 20
        try a.bind(path); try a.connect()
        try evil.connect(path)
        try evil.send(length: 100_000) { $0.initializeMemory(as: UInt8.self, repeating: 1) }  // creates its pool
        XCTAssertEqual(try a.receive(timeout: 5)?.bytes.count, 100_000)
        let outbox = try XCTUnwrap(evil.outbox)
        let slot = outbox.slot(evil.outboxWrite)
        SlotHeader(length: 100, kind: .pool, sender: 0, flags: 0, sequence: 1, poolPosition: UInt64.max - 99).store(at: slot)
        let old = evil.outboxWrite
        evil.outboxWrite += 1
        if outbox.publish(from: old, to: evil.outboxWrite) { _ = ipn_eventfd_signal(evil.doorbellFD) }
        try TestSupport.waitUntil("the pool reference near the counter's end is rejected and counted") {
            (try? a.status().nodes.first { $0.id == evil.nodeID }?.rejected) == 1
        }
        try evil.send([7])
        XCTAssertEqual(try a.receive(timeout: 5)?.bytes, [7], "the host is alive")
    }
}
