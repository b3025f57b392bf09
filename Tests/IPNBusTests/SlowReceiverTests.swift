import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// A slow receiver loses messages (counted) on a lossy bus and holds senders back on a lossless one.
final class SlowReceiverTests: DirectoryTestCase {

    func testStoppedReceiverNeitherSlowsTheSenderNorOtherReceivers() async throws {
        let path = dir + "/bus"
        let manager = IPNSocket(policy: "hub")
        manager.options.queueLength = 2048  // half a second of slack for the healthy receiver on a busy machine
        try manager.bind(path)
        let count = 6000
        let (stoppedSummary, healthy) = try await TestSupport.with("ipn", ["recv", path, "--count", "\(count)", "--quiet", "--summary", "--timeout", "20"]) { _ in
            let (_, stopped) = try await TestSupport.with("ipn", ["recv", path, "--quiet", "--summary", "--timeout", "1"]) { stoppedPID in
                try TestSupport.waitUntil("both receivers are on the bus") { (try? Bus.status(path).readers) == 2 }
                kill(stoppedPID, SIGSTOP)
                // Paced well below what the healthy receiver sustains; a held-back sender would never finish.
                let send = try await TestSupport.run("ipn", ["send", path, "--size", "200", "--count", "\(count)", "--rate", "4000"])
                XCTAssertEqual(send.exitCode, 0, "\(send)")
                let status = try Bus.status(path)
                let stoppedNode = try XCTUnwrap(status.nodes.first { $0.pid == stoppedPID })
                XCTAssertEqual(stoppedNode.dropped, UInt64(count - 2048), "every message the stopped node could not hold is counted")
                XCTAssertEqual(stoppedNode.queued, 2048)
                kill(stoppedPID, SIGCONT)
                return ((), false)
            }
            return (TestSupport.summary(stopped) ?? [:], false)
        }
        // The other receiver is judged by accounting, not by keeping up: on a lossy bus it loses only what
        // its own queue could not hold (a busy machine may stall it too), and then the host counts it and
        // the receiver sees the gap. Nothing it lost is silent, nothing it got is out of order.
        let h = try XCTUnwrap(TestSupport.summary(healthy), "\(healthy)")
        XCTAssertEqual((h["messages"] ?? 0) + (h["droppedByHost"] ?? 0), count, "every message reached the other receiver or was counted as dropped: \(h)")
        XCTAssertEqual(h["outOfOrder"], 0, "\(h)")
        XCTAssertEqual(h["sequenceGaps"] == 0, h["droppedByHost"] == 0, "its losses, if any, are seen as gaps: \(h)")
        XCTAssertEqual(stoppedSummary["messages"], 2048, "after SIGCONT the stopped one resumes with what its queue held")
        XCTAssertEqual(stoppedSummary["droppedByHost"], count - 2048)
    }

    func testLosslessBusHoldsTheSenderBackInsteadOfDropping() throws {
        let path = dir + "/bus"
        let receiver = IPNSocket(policy: "hub")
        receiver.options.lossless = true
        receiver.options.queueLength = 8
        try receiver.bind(path)
        try receiver.connect()
        let sender = IPNSocket()
        try sender.connect(path)
        var accepted = 0
        /// Sends without blocking until refused; the count sent.
        func fill() -> Int {
            var n = 0
            while n < 10_000 {
                do throws(IPNError) {
                    try sender.send([UInt8((accepted + n) & 0xff)], nonBlocking: true)
                    n += 1
                } catch {
                    XCTAssertEqual(error, .wouldBlock)
                    break
                }
            }
            return n
        }
        accepted = fill()
        // The host moves what it can from the outbox into the receiver's queue meanwhile; once the queue is
        // full (the host says so) nothing moves any more, and the outbox takes what room that freed.
        try TestSupport.waitUntil("the host has filled the receiver's queue (8 of 8)",
                                  lastSeen: { "\((try? receiver.status().nodes.first { $0.id == receiver.nodeID }?.queued).flatMap { $0 } ?? -1) queued" }) {
            try receiver.status().nodes.first { $0.id == receiver.nodeID }?.queued == 8
        }
        accepted += fill()
        XCTAssertEqual(accepted, 8 + 64, "the receiver's queue and the sender's outbox fill, then the sender is held")
        XCTAssertEqual(fill(), 0, "and stays held")
        // A blocking sender waits until the receiver catches up, and nothing is lost.
        let s = sender
        let done = DispatchSemaphore(value: 0)
        let first = accepted
        let progress = TestSupport.ThreadProgress()
        Thread.detachNewThread {
            progress.started()
            for i in first..<(first + 500) { try? s.send([UInt8(i & 0xff)]); progress.step() }
            done.signal()
        }
        // Held back: the sending thread sleeps in epoll_wait(2) (waiting for room) before any of its 500
        // messages went out. A sender that is not held back finishes (or drops) instead, and this fails.
        try TestSupport.waitUntil("the blocking sender sleeps in epoll_wait with none of its messages sent",
                                  lastSeen: { "\(progress.steps) sent, in syscall \(progress.syscall.map(String.init) ?? "-")" }) {
            progress.isWaitingInEpoll
        }
        XCTAssertEqual(progress.steps, 0, "the blocking sender is held back")
        for i in 0..<(accepted + 500) {
            let m = try XCTUnwrap(try receiver.receive(timeout: 10), "message \(i)")
            XCTAssertEqual(m.bytes, [UInt8(i & 0xff)])
            XCTAssertFalse(m.afterGap)
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(try receiver.status().nodes.map(\.dropped).reduce(0, +), 0)
    }

    func testLosslessPoolIsNotReusedBeforeEveryoneRead() throws {
        let path = dir + "/bus"
        let receiver = IPNSocket(policy: "hub")
        receiver.options.lossless = true
        receiver.options.mtu = 1 << 20
        receiver.options.poolBytes = 3 << 20
        try receiver.bind(path)
        try receiver.connect()
        let sender = IPNSocket()
        try sender.connect(path)
        let s = sender
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for i in 0..<40 { try? s.send(length: 1 << 20) { $0.initializeMemory(as: UInt8.self, repeating: UInt8(i)) } }
            done.signal()
        }
        for i in 0..<40 {
            let ok = try receiver.withNextMessage(timeout: 10) { v in v.bytes.count == 1 << 20 && v.bytes.allSatisfy { $0 == UInt8(i) } }
            XCTAssertEqual(ok, true, "message \(i) intact")
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(receiver.lapped, 0)
    }

    func testWhatTheSenderOverwroteBeforeTheHostRoutedItIsLostForEveryoneAndCounted() throws {
        let path = dir + "/bus"
        let sender = IPNSocket(policy: "hub")
        sender.options.mtu = 1 << 20
        sender.options.poolBytes = 1 << 20  // four 256 KiB messages
        try sender.bind(path)
        try sender.connect()
        let receiver = IPNSocket()
        try receiver.shutdown(.write)
        try receiver.connect(path)
        let length = 256 << 10
        func fill(_ i: Int) -> (UnsafeMutableRawBufferPointer) -> Void { { $0.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: i)) } }
        try sender.send(length: length, fill(0))  // the pool exists from here on
        XCTAssertEqual(try receiver.withNextMessage(timeout: 30) { $0.bytes.allSatisfy { $0 == 0 } }, true)
        // The host stops (as a lagging host would); the lossy sender does not wait for it, and fills its outbox
        // with 16 pools' worth of messages: only the last few are still in the pool when the host goes on.
        let host = try sender.status().hostPID
        XCTAssertEqual(kill(host, SIGSTOP), 0)
        var sent = 1
        do {
            while true { try sender.send(length: length, nonBlocking: true, fill(sent)); sent += 1 }
        } catch .wouldBlock {
        } catch {
            kill(host, SIGCONT)
            throw error
        }
        XCTAssertEqual(kill(host, SIGCONT), 0)
        XCTAssertGreaterThan(sent, 8, "the outbox took more than two pools' worth")
        try TestSupport.waitUntil("the host took every message from the sender's outbox", lastSeen: { "\((try? sender.status().nodes) ?? [])" }) {
            guard let n = try sender.status().nodes.first(where: { $0.id == sender.nodeID }) else { return false }
            return n.sentMessages + n.overwritten == UInt64(sent)
        }
        var received: [Int] = []
        var flagged = 0
        while let (value, intact, gap) = try receiver.withNextMessage(nonBlocking: true, { v in
            (Int(v.bytes[0]), v.bytes.count == length && v.bytes.allSatisfy { $0 == v.bytes[0] }, v.afterGap)
        }) {
            XCTAssertTrue(intact, "message \(value) arrived as it was written")
            received.append(value)
            if gap { flagged += 1 }
        }
        let overwritten = try XCTUnwrap(try sender.status().nodes.first { $0.id == sender.nodeID }).overwritten
        XCTAssertGreaterThan(overwritten, 0, "the host found messages overwritten")
        XCTAssertEqual(Int(overwritten) + received.count, sent - 1, "every message is received or counted as overwritten: \(received)")
        XCTAssertEqual(receiver.lapped, 0, "no reference to overwritten bytes reached the receiver")
        XCTAssertEqual(received, Array((sent - received.count)..<sent).map { $0 & 0xff }, "the newest ones arrive, in order")
        XCTAssertFalse(received.isEmpty, "what was still in the pool arrived")
        XCTAssertEqual(flagged, 1, "the first message after the loss is flagged as after a gap")
    }
}
