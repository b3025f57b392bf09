import Foundation
import IPNTestSupport
import MediaWire
import XCTest
@testable import IPNBus

/// The frame-aware policy on a real bus: late join, keyframe discipline, ownership, end of stream.
final class MediaPolicyTests: DirectoryTestCase {
    var path = ""
    override func setUpWithError() throws {
        PolicyRegistry.register(MediaPolicy.self)
        try super.setUpWithError()
        path = dir + "/media"
    }

    /// A compressed-looking video stream: a keyframe every `gop` frames, the frame number as payload.
    let video = StreamDescription(kind: .video, codec: "synthetic", width: 64, height: 32, frameRate: (25, 1), allKeyframes: false)

    func makeBus(queue: Int = 256) throws -> IPNSocket {
        let holder = IPNSocket(policy: "media")
        holder.options.queueLength = queue
        holder.options.mtu = 1 << 20
        try holder.bind(path)
        return holder
    }

    func publish(_ p: MediaPublisher, _ stream: UInt32, frames: Range<Int>, gop: Int) throws {
        for n in frames {
            try p.publish(stream: stream, flags: n % gop == 0 ? .keyframe : [], pts: Int64(n) * 40_000_000,
                          duration: 40_000_000, payloadLength: 3000) { b in
                b.initializeMemory(as: UInt8.self, repeating: 0)
                b.storeBytes(of: UInt64(n), as: UInt64.self)
            }
        }
    }

    func frames(_ c: MediaConsumer, count: Int) throws -> [(FrameHeader, UInt64, Bool)] {
        var out: [(FrameHeader, UInt64, Bool)] = []
        while out.count < count, let e = try c.next(timeout: 5) {
            if case .frame(let h, let payload, let disc) = e {
                out.append((h, payload.withUnsafeBytes { $0.load(as: UInt64.self) }, disc))
            }
        }
        return out
    }

    func testLateJoinerGetsTheDescriptionThenTheCachedGOPThenLiveFrames() throws {
        let holder = try makeBus()
        defer { holder.close() }
        let publisher = try MediaPublisher(bus: path)
        let stream = try publisher.addStream(video)
        try publish(publisher, stream, frames: 0..<25, gop: 10)
        let late = try MediaConsumer(bus: path)
        // The replay request reaches the publisher (and is answered) before its next frame.
        try TestSupport.waitUntil("the publisher has answered the late joiner's replay request") {
            try publisher.serviceRequests()
            return publisher.replaysServed == 1
        }
        try publish(publisher, stream, frames: 25..<30, gop: 10)
        guard case .streamAdded(let id, _, let d)? = try late.next(timeout: 5) else { return XCTFail("description first") }
        XCTAssertEqual(id, stream)
        XCTAssertEqual(d, video)
        let got = try frames(late, count: 10)
        XCTAssertEqual(got.map(\.1), Array(20..<30), "the cached GOP from the last keyframe, then live, in order")
        XCTAssertTrue(got[0].0.flags.contains(.keyframe), "its first frame is decodable at once")
        XCTAssertEqual(publisher.replaysServed, 1)
    }

    func testJoinAtNextKeyframeWaitsForTheNextLiveKeyframe() throws {
        let holder = try makeBus()
        defer { holder.close() }
        let publisher = try MediaPublisher(bus: path)
        let stream = try publisher.addStream(video)
        try publish(publisher, stream, frames: 0..<25, gop: 10)
        let late = try MediaConsumer(bus: path, joinAtNextKeyframe: true)
        try TestSupport.waitUntil("the late consumer is on the bus") { try holder.status().nodes.contains { $0.id == late.socket.nodeID } }
        try publish(publisher, stream, frames: 25..<35, gop: 10)
        let got = try frames(late, count: 5)
        XCTAssertEqual(got.map(\.1), Array(30..<35))
        XCTAssertTrue(got[0].0.flags.contains(.keyframe))
    }

    func testAConsumerThatFellBehindResumesAtAKeyframeNeverMidGOP() throws {
        let holder = try makeBus(queue: 8)
        defer { holder.close() }
        let publisher = try MediaPublisher(bus: path)
        let stream = try publisher.addStream(video)
        let slow = try MediaConsumer(bus: path)
        let healthy = try MediaConsumer(bus: path)
        _ = try slow.next(timeout: 5)
        _ = try healthy.next(timeout: 5)
        // 35 frames while `slow` reads nothing: its queue of 8 overflows mid-GOP. `healthy` keeps up.
        let h = healthy
        var healthyGot: [UInt64] = []
        for n in 0..<35 {
            try publish(publisher, stream, frames: n..<(n + 1), gop: 10)
            if case .frame(_, let p, _)? = try h.next(timeout: 5) { healthyGot.append(p.withUnsafeBytes { $0.load(as: UInt64.self) }) }
        }
        XCTAssertEqual(healthyGot, Array(0..<35), "the other consumer is unaffected")
        let queued = try frames(slow, count: 8)
        XCTAssertEqual(queued.map(\.1), Array(0..<8), "what its queue held")
        // It reads again: frames 35...39, the rest of the GOP it lost the start of, never reach it.
        try publish(publisher, stream, frames: 35..<56, gop: 10)
        let got = try frames(slow, count: 6)
        let resumed = try XCTUnwrap(got.first)
        XCTAssertTrue(resumed.2, "flagged as a discontinuity")
        XCTAssertTrue(resumed.0.flags.contains(.keyframe), "it resumes at a keyframe, never with an undecodable frame")
        XCTAssertEqual(resumed.1, 40)
        XCTAssertEqual(got.map(\.1), Array(40..<46))
        let stat = try holder.status()
        XCTAssertGreaterThan(stat.nodes.first { $0.id == slow.socket.nodeID }?.dropped ?? 0, 0, "drops are counted")
    }

    func testAPublisherLeavingEndsItsStreams() throws {
        let holder = try makeBus()
        defer { holder.close() }
        let consumer = try MediaConsumer(bus: path)
        var publisher: MediaPublisher? = try MediaPublisher(bus: path)
        let stream = try publisher!.addStream(video)
        try publish(publisher!, stream, frames: 0..<3, gop: 10)
        publisher = nil  // leaves the bus (as if it died)
        var events: [MediaEvent] = []
        while let e = try consumer.next(timeout: 2) {
            events.append(e)
            if case .endOfStream = e { break }
        }
        XCTAssertEqual(events.count, 5, "description, 3 frames, end of stream")
        XCTAssertEqual(events.last, .endOfStream(stream: stream))
    }

    func testFramesForAStreamTheSenderDoesNotOwnAndGarbageAreRejected() throws {
        let holder = try makeBus()
        defer { holder.close() }
        let consumer = try MediaConsumer(bus: path)
        let owner = try MediaPublisher(bus: path)
        let stream = try owner.addStream(video)
        let intruder = IPNSocket()
        try intruder.connect(path)
        var header = [UInt8](repeating: 0, count: MediaMessage.frameHeaderSize + 10)
        header.withUnsafeMutableBytes { b in
            MediaMessage.writeFrameHeader(FrameHeader(stream: stream, flags: .keyframe, sequence: 0, pts: 0, dts: 0,
                                                      captureTime: 0, duration: 0, epoch: 1), into: b)
        }
        try intruder.send(header)
        try intruder.send(Array("not media at all".utf8))
        try intruder.send(Array(header.prefix(20)))  // truncated
        try publish(owner, stream, frames: 0..<2, gop: 10)
        guard case .streamAdded? = try consumer.next(timeout: 5) else { return XCTFail() }
        let got = try frames(consumer, count: 2)
        XCTAssertEqual(got.map(\.1), [0, 1], "only the owner's frames arrive")
        let s = try holder.status()
        XCTAssertEqual(s.nodes.first { $0.id == intruder.nodeID }?.rejected, 3)
        XCTAssertEqual(s.policyStatistics["rejectedMessages"], "3")
        XCTAssertEqual(consumer.malformed, 0)
    }

    func testWireFormatRoundTrips() throws {
        let d = StreamDescription(kind: .audio, codec: "pcm_s16le", sampleRate: 48000, channels: 2, sampleFormat: "s16",
                                  timeBase: (1, 48000), allKeyframes: true)
        XCTAssertEqual(try MediaMessage.decode(MediaMessage.encodeDescription(stream: 7, epoch: 3, d)), .description(stream: 7, epoch: 3, d))
        XCTAssertEqual(try MediaMessage.decode(MediaMessage.encodeEndOfStream(stream: 7, epoch: 3)), .endOfStream(stream: 7, epoch: 3))
        let h = FrameHeader(stream: 9, flags: [.keyframe, .discontinuity], sequence: 42, pts: -5, dts: 6, captureTime: 7,
                            duration: 8, epoch: 2, target: 11)
        var bytes = [UInt8](repeating: 0xee, count: 100)
        bytes.withUnsafeMutableBytes { MediaMessage.writeFrameHeader(h, into: $0) }
        XCTAssertEqual(try MediaMessage.decode(bytes), .frame(h, payloadOffset: 72))
        XCTAssertThrowsError(try MediaMessage.decode(Array("IPNM".utf8) + [9, 2, 0, 0])) {
            XCTAssertEqual($0 as? MediaMessage.DecodeError, .unsupportedVersion(9))
        }
        XCTAssertThrowsError(try MediaMessage.decode(Array(bytes.prefix(40)))) {
            XCTAssertEqual($0 as? MediaMessage.DecodeError, .truncated(40))
        }
    }
}
