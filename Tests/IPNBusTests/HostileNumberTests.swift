import CIPNSys
import Foundation
import Glibc
import IPNTestSupport
import MediaWire
import XCTest
@testable import IPNBus

/// Every number that crosses a process boundary is hostile (issue 14): sequence numbers, lengths,
/// positions, times, stream numbers, cursors, the sizes in a host's welcome. A node that writes what it
/// likes into its shared memory, or a process posing as a host, makes no receiver trap: what is malformed
/// is dropped and counted, never trusted.
///
/// The fuzz runs from one seed, so every run is the same run; the slots are drawn twice, once to predict
/// what the host and the receivers must count (by the rules of docs/bus-protocol.md and
/// docs/media-wire-format.md), once to write them.
final class HostileNumberTests: DirectoryTestCase {
    static let seed: UInt64 = 14

    /// What `ipn recv --summary` prints last (the gap count is a UInt64: it may saturate).
    struct RecvSummary: Decodable {
        var messages: Int, bytes: Int, senders: Int, outOfOrder: Int
        var sequenceGaps: UInt64, droppedByHost: UInt64, lapped: UInt64, malformed: UInt64
    }

    /// Runs blocking work (a raw node writing a million slots) on a thread of its own, so the tasks that
    /// collect the children's output keep running.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Waits until the host has taken every slot the node wrote (forwarded or refused); its count of refused ones.
    static func refusedOnceTaken(_ total: Int, by node: UInt32?, on path: String) throws -> Int {
        var seen: BusStatus.NodeStatus?
        try TestSupport.waitUntil("the host has taken all \(total) slots of the raw node",
                                  lastSeen: { seen.map { "\($0.sentMessages) forwarded, \($0.rejected) refused" } ?? "no such node" }) {
            seen = try Bus.status(path).nodes.first { $0.id == node }
            return seen.map { Int($0.sentMessages + $0.rejected) == total } ?? false
        }
        return Int(seen!.rejected)
    }

    /// Sequence 0 then 2^64 - 1 (and again) once killed every `ipn recv` on the bus with an arithmetic
    /// overflow in its gap count. A million slots later, both receivers are alive and have counted every
    /// message exactly as predicted, and the host refused exactly the malformed ones.
    ///
    /// Before the fix, `ipn recv` traps at the fourth message (its gap sum passes 2^64) and both exit on a
    /// signal; the summary's `malformed` field does not exist either.
    func testAMillionHostileSlotsFromARawNodeKillNoReceiver() async throws {
        let path = dir + "/bus"
        let holder = IPNSocket(policy: "hub")
        holder.options.lossless = true  // every slot the host takes reaches every receiver: exact accounting
        holder.options.mtu = 1 << 16
        holder.options.queueLength = 256
        try holder.bind(path)
        let o = holder.options
        let fuzz = HubFuzz(seed: Self.seed, total: 1_000_000, mtu: o.mtu, inlineCapacity: o.inlineCapacity,
                           room: MessageRing.slotStride(inlineCapacity: o.inlineCapacity) - SlotHeader.size,
                           poolCapacity: SenderPool.totalSize(capacity: o.effectivePoolBytes) - SenderPool.headerSize)
        let expected = fuzz.expectation()
        XCTAssertLessThan(expected.hexBytes, 16 << 20, "the hex receiver's output fits what the test collects")
        let count = "\(expected.accepted)"
        let ((refused, hex), summary) = try await TestSupport.with("ipn", ["recv", path, "--summary", "--quiet", "--count", count, "--timeout", "30"]) { _ in
            let (refused, hex) = try await TestSupport.with("ipn", ["recv", path, "--hex", "--count", count, "--timeout", "30"]) { _ in
                try TestSupport.waitUntil("both receivers are on the bus") { (try? Bus.status(path).readers) == 2 }
                let evil = IPNSocket()
                evil.description = "raw node"
                try evil.shutdown(.read)
                try evil.connect(path)
                try await HostileNumberTests.onThread { try fuzz.write(through: RawSlotWriter(socket: evil)) }
                return (try HostileNumberTests.refusedOnceTaken(fuzz.total, by: evil.nodeID, on: path), false)
            }
            return ((refused, hex), false)
        }
        XCTAssertEqual(refused, expected.rejected, "the host refused exactly the malformed slots")
        XCTAssertEqual(summary.exitCode, 0, "ipn recv --summary lived through them: \(summary)")
        XCTAssertEqual(hex.exitCode, 0, "ipn recv --hex lived through them: exit \(hex.exitCode.map(String.init) ?? "-"), signal \(hex.signal.map(String.init) ?? "-"), \(hex.standardError)")
        let line = try XCTUnwrap(summary.standardOutput.split(separator: "\n").last, "\(summary)")
        let s = try JSONDecoder().decode(RecvSummary.self, from: Data(line.utf8))
        XCTAssertEqual(s.messages, expected.accepted, "every message the host took arrived")
        XCTAssertEqual(s.bytes, expected.bytes)
        XCTAssertEqual(s.senders, 1)
        XCTAssertEqual(s.outOfOrder, expected.outOfOrder, "sequence numbers that go back, repeat or leap 2^63 and more are counted out of order")
        XCTAssertEqual(s.sequenceGaps, expected.gaps, "the numbers skipped by the others are counted as gaps (saturating)")
        XCTAssertEqual(s.droppedByHost, 0, "lossless: nothing dropped")
        XCTAssertEqual(s.lapped, 0)
        XCTAssertEqual(s.malformed, 0, "the host let no malformed slot through")
        XCTAssertEqual(hex.standardOutput.utf8.count, expected.hexBytes, "every message printed whole, as hex, one a line")
        XCTAssertNoThrow(try holder.status(), "the host lives")
    }

    /// A raw publisher on a media bus: frames of its own streams with every header field drawn (sequence
    /// numbers past Int64, negative and extreme times and durations, any flags), among what the bus must
    /// refuse, a description with a sample rate no C int holds among them. Two recorders (Matroska, which
    /// keeps the PCM and encodes the raw pictures once; MPEG-TS, which also encodes the PCM to AAC) live
    /// through it, end with the streams, and report the frames whose times no file can hold.
    ///
    /// 200,000 messages, not a million: every frame a recorder takes is muxed into a file on this
    /// machine. Before the fix the description kills both recorders (`Int32(sampleRate)` traps while the
    /// file is reopened for the new stream), and so would a picture with sequence number 2^63.
    func testHostileFramesFromARawPublisherKillNoRecorder() async throws {
        PolicyRegistry.register(MediaPolicy.self)
        let path = dir + "/media"
        let holder = IPNSocket(policy: "media")
        holder.options.lossless = true  // the recorders get every frame the policy routes to them
        holder.options.mtu = 1 << 16
        holder.options.queueLength = 256
        try holder.bind(path)
        let fuzz = MediaFuzz(seed: Self.seed, total: 200_000)
        let refusals = fuzz.refusals()
        let mkvFile = dir + "/hostile.mkv", tsFile = dir + "/hostile.ts"
        let ((refused, ts), mkv) = try await TestSupport.with("mediajack", ["record", path, mkvFile], timeout: 120) { _ in
            let (refused, ts) = try await TestSupport.with("mediajack", ["record", path, tsFile], timeout: 120) { _ in
                try TestSupport.waitUntil("both recorders are on the bus") { (try? Bus.status(path).readers) == 2 }
                let evil = IPNSocket()
                evil.description = "raw publisher"
                try evil.shutdown(.read)  // a receiver that never reads would hold a lossless bus
                try evil.connect(path)
                try await HostileNumberTests.onThread { try fuzz.write(through: RawSlotWriter(socket: evil)) }
                return (try HostileNumberTests.refusedOnceTaken(fuzz.total, by: evil.nodeID, on: path), false)
            }
            return ((refused, ts), false)
        }
        XCTAssertEqual(refused, refusals, "the host refused exactly what is not a well-formed message of a stream the sender owns")
        for (name, r) in [("Matroska", mkv), ("MPEG-TS", ts)] {
            XCTAssertEqual(r.exitCode, 0, "the \(name) recorder lived through it and ended with the streams: \(r)")
            XCTAssertTrue(r.standardOutput.contains("recorded"), "\(name): \(r)")
            XCTAssertTrue(r.standardOutput.contains("frames skipped for times that cannot be written"),
                          "the \(name) recorder reports the frames it could not write: \(r.standardOutput)")
        }
        XCTAssertEqual(try holder.status().policyStatistics["streams"], "0", "the host lives; both streams ended")
    }

    /// This test is the host: it writes a receiver's inbox as a process posing as one could (any kind,
    /// length, sender, position, sequence, flags; now and then an impossible write cursor), a million
    /// slots in batches, and the receiver reads them with `withNextMessage`. Each slot is delivered as
    /// written, or counted: malformed (an unknown kind, a length past the slot, a reference to no pool or
    /// outside it), lapped (a reference below what the sender reclaimed); the next delivery carries a gap.
    /// An impossible cursor is a protocol violation. Exactly as predicted, slot by slot.
    ///
    /// Before the fix a malformed slot was dropped uncounted (only a gap), and a reference to a pool the
    /// receiver does not have was counted as lapped: the counts do not add up (and `malformed` does not exist).
    func testAMillionHostileInboxSlotsAreDeliveredOrCountedNeverTrusted() throws {
        let path = dir + "/bus"
        let holder = IPNSocket(policy: "hub")
        holder.options.mtu = 1 << 16
        try holder.bind(path)
        let sender = IPNSocket(), receiver = IPNSocket()
        try sender.shutdown(.read)
        try sender.connect(path)
        try receiver.shutdown(.write)
        try receiver.connect(path)
        // One real pool message maps the sender's pool into the receiver; then the sender has reused the
        // first half of it (a reader of a reference below that has been lapped).
        try sender.send(length: 4096) { $0.initializeMemory(as: UInt8.self, repeating: 7) }
        XCTAssertEqual(try receiver.receive(timeout: TestSupport.patience)?.bytes.count, 4096)
        let owner = try XCTUnwrap(sender.nodeID)
        let pool = try XCTUnwrap(receiver.peerPools[owner]?.pool)
        let reclaimed = UInt64(pool.capacity / 2)
        try XCTUnwrap(sender.pool).reclaim(upTo: reclaimed)
        // From here on nobody sends, so the real host writes nothing into the receiver's inbox.
        let inbox = try XCTUnwrap(receiver.inbox)
        let inline = receiver.inlineCapacity, room = inbox.slotStride - SlotHeader.size, poolCapacity = UInt64(pool.capacity)
        var rng = HostileNumbers(seed: Self.seed)
        var write = receiver.inboxRead
        var predicted = (delivered: 0, malformed: 0, lapped: 0, violations: 0)
        var delivered = 0, violations = 0, mismatches = 0
        var firstMismatch = ""
        var gapOwed = false
        let total = 1_000_000
        var written = 0
        while written < total {
            // Expected deliveries of this batch, in order: (length, sequence, sender, after a gap).
            var wanted: [(Int, UInt64, UInt32, Bool)] = []
            let batch = min(total - written, 1 + rng.below(inbox.capacity))
            for _ in 0..<batch {
                let kind: UInt32 = rng.chance(0.1) ? rng.pick([2, 3, 7, .max, 1 << 31] as [UInt32]) : UInt32(rng.below(2))
                let from: UInt32 = rng.chance(0.7) ? owner : rng.u32()
                let anyInline = UInt32(rng.below(inline + 1)), anyPool = UInt32(rng.below(4096))
                let inlineLengths: [UInt32] = [0, 1, UInt32(inline - 1), UInt32(inline), UInt32(inline + 1), UInt32(room + 1), .max, 1 << 31, anyInline]
                let poolLengths: [UInt32] = [0, 1, 64, UInt32(poolCapacity), UInt32(poolCapacity + 1), .max, 1 << 31, anyPool]
                let length = rng.pick(kind == 0 ? inlineLengths : poolLengths)
                let lap = UInt64(rng.below(3)), near = UInt64(rng.below(256))
                let positions: [UInt64] = [reclaimed &+ near &- 128, poolCapacity &* lap &+ poolCapacity &- near, near]
                let position = rng.chance(0.5) ? rng.u64() : rng.pick(positions)
                let sequence = rng.u64(), flags = rng.u32()
                let slot = inbox.slot(write)
                slot.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
                slot.storeBytes(of: kind, toByteOffset: 4, as: UInt32.self)
                slot.storeBytes(of: from, toByteOffset: 8, as: UInt32.self)
                slot.storeBytes(of: flags, toByteOffset: 12, as: UInt32.self)
                slot.storeBytes(of: sequence, toByteOffset: 16, as: UInt64.self)
                slot.storeBytes(of: position, toByteOffset: 24, as: UInt64.self)
                write += 1
                // The rules a receiver applies (docs/bus-protocol.md §3.2, §3.4, §3.6).
                let good: Bool
                if kind == 0 {
                    good = Int(length) <= inline
                    if !good { predicted.malformed += 1 }
                } else if kind == 1 && from == owner && pool.isValid(position: position, length: Int(length)) {
                    good = position >= reclaimed
                    if !good { predicted.lapped += 1 }
                } else {
                    good = false
                    predicted.malformed += 1
                }
                if good {
                    wanted.append((Int(length), sequence, from, gapOwed || flags & 1 != 0))
                    predicted.delivered += 1
                    gapOwed = false
                } else {
                    gapOwed = true
                }
            }
            written += batch
            if rng.chance(0.002) {
                // A write cursor no host could have written: more than a queue ahead, or behind the reader.
                let ahead = rng.chance(0.5), far = UInt64(rng.below(1000))
                let bad = ahead ? receiver.inboxRead &+ UInt64(inbox.capacity) &+ 1 &+ far : receiver.inboxRead &- 1 &- far
                inbox.write.store(bad, ordering: .sequentiallyConsistent)
                predicted.violations += 1
                do {
                    _ = try receiver.withNextMessage(nonBlocking: true) { _ in 0 }
                } catch IPNError.protocolViolation(let what) where what == "inbox cursors corrupted" {
                    violations += 1
                } catch {
                    // Anything else is a violation not counted: the assertion below names the difference.
                }
            }
            inbox.write.store(write, ordering: .sequentiallyConsistent)
            var next = 0
            while let got = try receiver.withNextMessage(nonBlocking: true, { v in (v.bytes.count, v.sequence, v.sender, v.afterGap) }) {
                if next < wanted.count, wanted[next] == got {
                    delivered += 1
                } else {
                    mismatches += 1
                    if firstMismatch.isEmpty { firstMismatch = "slot \(written - batch + next): got \(got), wanted \(next < wanted.count ? "\(wanted[next])" : "nothing")" }
                }
                next += 1
            }
            if next != wanted.count && firstMismatch.isEmpty { firstMismatch = "batch ending at \(written): \(next) delivered, \(wanted.count) wanted" }
            if next != wanted.count { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0, "every slot delivered as written: \(firstMismatch)")
        XCTAssertEqual(delivered, predicted.delivered)
        XCTAssertEqual(receiver.malformed, UInt64(predicted.malformed), "malformed slots are counted")
        XCTAssertEqual(receiver.lapped, UInt64(predicted.lapped), "lapped references are counted as lapped, and only those")
        XCTAssertEqual(violations, predicted.violations, "an impossible write cursor is a protocol violation")
        XCTAssertGreaterThan(predicted.delivered, 0)
        XCTAssertGreaterThan(predicted.malformed, 0)
        XCTAssertGreaterThan(predicted.lapped, 0)
        XCTAssertGreaterThan(predicted.violations, 0)
    }

    /// Any process can listen on a bus's abstract address. One that welcomes a node with a queue of 3
    /// slots (not a power of two), of none, of 2^62, or with Int.max inline bytes a slot, gets a
    /// protocol violation from `ipn recv`, which exits with an error.
    ///
    /// Before the fix each of these traps in the node: the ring's precondition (3, 0) or the overflow
    /// of its size (2^62 slots, Int.max bytes).
    func testImpossibleNumbersInAWelcomeAreAProtocolViolationNotACrash() async throws {
        let path = dir + "/fake"
        // What a host is, to a node: a socket file at the path, and a listener on the abstract address made
        // from the file's device and inode.
        let file = ipn_seqpacket_socket()
        defer { close(file) }
        XCTAssertEqual(ipn_bind_path(file, path), 0)
        guard case .socket(let address, _, _, _) = try BusAddress.lookup(path) else { return XCTFail("no socket file at \(path)") }
        let listener = ipn_seqpacket_socket()
        defer { close(listener) }
        XCTAssertEqual(ipn_bind_abstract(listener, address.abstractName), 0)
        XCTAssertEqual(listen(listener, 8), 0)
        let cases: [(what: String, queue: Int, inline: Int)] = [
            ("a queue of 3 slots", 3, 2048), ("a queue of no slot", 0, 2048),
            ("a queue of 2^62 slots", 1 << 62, 2048), ("Int.max inline bytes", 64, Int.max),
        ]
        for c in cases {
            let (_, recv) = try await TestSupport.with("ipn", ["recv", path, "--count", "1"]) { _ in
                try HostileNumberTests.welcome(on: listener, queue: c.queue, inline: c.inline)
                return ((), false)
            }
            XCTAssertEqual(recv.exitCode, 1, "\(c.what): an error, not a crash: \(recv)")
            XCTAssertTrue(recv.standardError.contains("protocol violation"), "\(c.what): \(recv.standardError)")
        }
    }

    /// Accepts one node, reads its hello and welcomes it with these numbers and four real descriptors.
    static func welcome(on listener: Int32, queue: Int, inline: Int) throws {
        let limit = Int32(TestSupport.patience * 1000)
        guard ipn_poll_readable(listener, limit) == 1 else { throw IPNError.protocolViolation("no node connected") }
        let fd = ipn_accept(listener)
        guard fd >= 0 else { throw IPNError.system(call: "accept", errno: Sys.lastErrno) }
        defer { close(fd) }
        let channel = ControlChannel(fd: fd)
        guard ipn_poll_readable(fd, limit) == 1, case .message(.hello(let hello), _) = try channel.receive(nonBlocking: true) else {
            throw IPNError.protocolViolation("the node said no hello")
        }
        XCTAssertEqual(hello.intent, .connect)
        let size = MessageRing.byteSize(capacity: 64, inlineCapacity: 2048)
        let inbox = try SharedMemory(creating: "fake-inbox", size: size), outbox = try SharedMemory(creating: "fake-outbox", size: size)
        let wake = try Sys.newEventFD(), doorbell = try Sys.newEventFD()
        defer { Sys.close(wake); Sys.close(doorbell) }
        let w = ControlMessage.Welcome(node: 1, rights: .all, canReceive: true, canSend: true, joined: true, options: BusOptions(),
                                       queueLength: queue, inlineCapacity: inline)
        try channel.send(.welcome(w), fds: [inbox.fd, outbox.fd, wake, doorbell])
        // The node hangs up once it has judged the welcome (it exits either way).
        _ = ipn_poll_readable(fd, limit)
    }

    /// A million media and audio-bus messages, built from valid ones with hostile numbers and cut or
    /// garbled bytes, through the decoders every consumer uses. Whatever they accept is something a
    /// consumer can use as it is: a description's sizes and rates fit the C ints they become (and there is
    /// at least one channel to divide by), a frame's payload starts inside the message, an audio
    /// message holds all the samples its header counts.
    ///
    /// Before the fix `MediaMessage.decode` accepted descriptions with any number (a sample rate of 2^40,
    /// channels 0): the first of those fails the check.
    func testAMillionHostileMediaMessagesDecodeIntoWhatConsumersCanUseOrAreRefused() throws {
        var rng = HostileNumbers(seed: Self.seed)
        var accepted = 0, refused = 0, problems = 0
        var firstProblem = ""
        func problem(_ text: String) { problems += 1; if firstProblem.isEmpty { firstProblem = text } }
        func int32(_ v: Int?) -> Bool { v.map { Int32(exactly: $0) != nil } ?? true }
        for i in 0..<1_000_000 {
            var bytes: [UInt8]
            switch rng.below(100) {
            case 0..<5:  // a description, every number drawn (an extreme one half the time)
                func number() -> Int? { rng.chance(0.2) ? nil : Int(truncatingIfNeeded: rng.chance(0.5) ? rng.u64() : UInt64(rng.below(100_000))) }
                let (w, h, n, d, r, c) = (number(), number(), number(), number(), number(), number())
                let desc = StreamDescription(kind: rng.chance(0.5) ? .video : .audio, codec: "synthetic", width: w, height: h,
                                             frameRate: n.map { ($0, d ?? 1) }, sampleRate: r, channels: c, allKeyframes: rng.chance(0.5))
                bytes = MediaMessage.encodeDescription(stream: rng.u32(), epoch: rng.u32(), desc)
            case 5..<45:
                let stream = rng.u32(), payload = rng.below(100)
                bytes = MediaFuzz.hostileFrame(stream, payload: payload, &rng)
            case 45..<80:  // an audio bus message: any kind, index, rate, channels, frames; any body
                let kind = rng.pick([.mix, .period, .report, .clientLeft] as [AudioBusMessage.Kind])
                let h = AudioBusMessage.Header(kind: kind, index: rng.u64(), rate: rng.u32(),
                                               channels: UInt16(truncatingIfNeeded: rng.u64()), frames: rng.u32())
                let body = rng.below(4096)
                bytes = AudioBusMessage.encode(h, body: [UInt8](repeating: 0, count: body))
                if rng.chance(0.3) { bytes[5] = UInt8(truncatingIfNeeded: rng.next()) }  // any kind byte
            default:  // a prefix, then anything, of any length
                let n = rng.below(120), kind = UInt8(rng.below(7))
                let prefix: [UInt8] = rng.chance(0.5) ? MediaMessage.magic + [1, kind, 0, 0] : []
                bytes = prefix + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if rng.chance(0.1) && !bytes.isEmpty { bytes.removeLast(rng.below(bytes.count)) }  // cut short
            if rng.chance(0.05) && !bytes.isEmpty { bytes[rng.below(bytes.count)] ^= UInt8(truncatingIfNeeded: rng.next() | 1) }  // one byte garbled
            switch try? MediaMessage.decode(bytes) {
            case .description(_, _, let d)?:
                accepted += 1
                let sizes = int32(d.width) && int32(d.height)
                let rates = int32(d.frameRateNumerator) && int32(d.frameRateDenominator) && int32(d.sampleRate)
                let rate: Int = d.sampleRate ?? 1, channels: Int = d.channels ?? 1
                if !(sizes && rates && rate > 0 && channels > 0 && channels <= 64) { problem("message \(i): a description consumers cannot use was accepted: \(d)") }
            case .frame(_, let offset)?:
                accepted += 1
                if offset > bytes.count { problem("message \(i): a frame whose payload starts at \(offset) of \(bytes.count) bytes") }
            case nil: refused += 1
            case _?: accepted += 1
            }
            if let h = try? bytes.withUnsafeBytes({ try AudioBusMessage.decodeHeader($0) }), h.kind == .mix || h.kind == .period {
                accepted += 1
                if h.size > bytes.count || h.channels == 0 { problem("message \(i): an audio message of \(bytes.count) bytes claims \(h.size)") }
            }
        }
        XCTAssertEqual(problems, 0, "what the decoders accept, consumers can use: \(firstProblem)")
        XCTAssertGreaterThan(accepted, 0)
        XCTAssertGreaterThan(refused, 0)
    }
}
