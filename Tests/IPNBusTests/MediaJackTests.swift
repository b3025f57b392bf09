import Foundation
import Glibc
import IPNTestSupport
import MediaJack
import MediaWire
import XCTest
@testable import IPNBus

/// Real publishers and recorders as separate processes; every file checked with real ffprobe/ffmpeg.
final class MediaJackTests: DirectoryTestCase {
    var bus = ""
    var holder: IPNSocket?

    override func setUpWithError() throws {
        try TestSupport.require(tools: ["/usr/bin/ffprobe", "/usr/bin/ffmpeg"])
        PolicyRegistry.register(MediaPolicy.self)
        try super.setUpWithError()
        try makeBus(queue: 256)
    }

    /// (Re)creates the test's media bus at `bus`, held by `holder`.
    func makeBus(queue: Int) throws {
        holder?.close()
        bus = dir + "/cam\(queue)"
        let h = IPNSocket(policy: "media")
        h.options.mtu = 4 << 20
        h.options.queueLength = queue
        try h.bind(bus)
        holder = h
    }
    override func tearDown() {
        holder?.close()
        super.tearDown()
    }

    func tool(_ path: String, _ args: [String]) async throws -> TestSupport.Outcome {
        try await TestSupport.runTool(path, args)
    }

    /// `ffmpeg -v error -i FILE -f null -` prints nothing for a clean file.
    func assertDecodesCleanly(_ file: String, line: UInt = #line) async throws {
        let r = try await tool("/usr/bin/ffmpeg", ["-v", "error", "-i", file, "-enc_time_base", "-1", "-f", "null", "-"])
        XCTAssertEqual(r.exitCode, 0, "\(r)", line: line)
        XCTAssertEqual(r.standardError, "", "decoding \(file) reported errors", line: line)
    }

    func probe(_ file: String) async throws -> [[String: String]] {
        let r = try await tool("/usr/bin/ffprobe", ["-v", "error", "-count_frames", "-show_entries",
                                                   "stream=codec_type,codec_name,width,height,nb_read_frames,sample_rate", "-of", "compact", file])
        return r.standardOutput.split(separator: "\n").map { line in
            Dictionary(line.split(separator: "|").dropFirst().compactMap { kv -> (String, String)? in
                let p = kv.split(separator: "=", maxSplits: 1)
                return p.count == 2 ? (String(p[0]), String(p[1])) : nil
            }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Frame numbers read back from the barcode of every decoded picture.
    func barcodes(_ file: String, width: Int = 640, height: Int = 360) async throws -> [UInt32?] {
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", file, "-map", "0:v", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        let size = width * height
        return stride(from: 0, to: bytes.count - size + 1, by: size).map { o in
            bytes[o..<(o + size)].withUnsafeBytes { TestPattern.read(luma: $0, stride: width, width: width, height: height)?.frame }
        }
    }

    /// The report of the bus at `bus` on the node of process `pid` (nil while it is not on the bus).
    static func node(_ bus: String, _ pid: Int32) -> BusStatus.NodeStatus? { (try? Bus.status(bus))?.nodes.first { $0.pid == pid } }

    /// Waits until the node of process `pid` has been delivered `count` messages (it is on the bus and
    /// receiving: a stream description and frames).
    static func waitForDelivered(_ count: UInt64, on bus: String, to pid: Int32, _ who: String) throws {
        try TestSupport.waitUntil("\(who) (pid \(pid)) has been delivered \(count) messages",
                                  lastSeen: { "\(node(bus, pid).map { "\($0.deliveredMessages) delivered" } ?? "not on the bus")" }) {
            (node(bus, pid)?.deliveredMessages ?? 0) >= count
        }
    }

    /// Waits until the publisher of process `pid` has sent `count` messages.
    static func waitForSent(_ count: UInt64, on bus: String, by pid: Int32) throws {
        try TestSupport.waitUntil("the publisher (pid \(pid)) has sent \(count) messages",
                                  lastSeen: { "\(node(bus, pid).map { "\($0.sentMessages) sent" } ?? "not on the bus")" }) {
            (node(bus, pid)?.sentMessages ?? 0) >= count
        }
    }

    func assertConsecutive(_ n: [UInt32], _ what: String, line: UInt = #line) {
        guard let first = n.first else { return XCTFail("\(what): no frames", line: line) }
        XCTAssertEqual(n, Array(first..<(first + UInt32(n.count))), "\(what): consecutive frame numbers, none lost", line: line)
    }

    func testARecordingOfVideoAndAudioDecodesCleanlyWithTheExpectedStreams() async throws {
        let out = dir + "/out.mkv"
        let bus = self.bus
        async let video = TestSupport.run("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25", "--frames", "150"])
        async let audio = TestSupport.run("mediajack", ["publish", "test:audio", bus, "--frames", "300"])
        try TestSupport.waitForPolicy(bus, "streams", "2")
        let record = try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "3"])
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        XCTAssertTrue(record.standardOutput.contains("; 0 gaps"), "\(record)")
        _ = try await (video, audio)
        try await assertDecodesCleanly(out)
        let streams = try await probe(out)
        let v = try XCTUnwrap(streams.first { $0["codec_type"] == "video" }, "\(streams)")
        XCTAssertEqual(v["codec_name"], "h264")
        XCTAssertEqual(v["width"], "640")
        XCTAssertEqual(v["height"], "360")
        // --duration counts the stream's own time (its timestamps), not the machine's: 3 s of a 25 fps
        // stream are 75 frames (one more or less at the cut) however fast the machine ran.
        let frames = Int(v["nb_read_frames"] ?? "") ?? 0
        XCTAssertTrue((74...76).contains(frames), "3 s of stream time at 25 frames a second, got \(frames)")
        assertConsecutive(try await barcodes(out).compactMap { $0 }, "the recording")
        let a = try XCTUnwrap(streams.first { $0["codec_type"] == "audio" }, "\(streams)")
        XCTAssertEqual(a["codec_name"], "pcm_s16le")
        XCTAssertEqual(a["sample_rate"], "48000")
    }

    func testALateRecorderStartsAtTheCachedKeyframeWithConsecutiveFrames() async throws {
        let out = dir + "/late.mkv"
        let bus = self.bus
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "50", "--frames", "200"]) { publisher in
            // Past the second keyframe (frame 50) of a stream with a 2 s GOP: the recorder joins mid-GOP.
            try Self.waitForSent(60, on: bus, by: publisher)
            let record = try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "2"])
            return (record, true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        let numbers = try await barcodes(out)
        XCTAssertFalse(numbers.isEmpty)
        XCTAssertFalse(numbers.contains(nil), "every picture carries a readable barcode")
        let n = numbers.compactMap { $0 }
        XCTAssertEqual(n.first.map { $0 % 50 }, 0, "the file starts at a keyframe: the cached GOP's first frame (\(n.first ?? 0))")
        XCTAssertEqual(n, Array(n.first!..<(n.first! + UInt32(n.count))), "consecutive frame numbers")
        // It started from the cached GOP, not from the next keyframe: the recorder says how many frames came
        // from the publisher's cache, and they are the file's first ones, from the keyframe on.
        let replayed = record.standardOutput.firstMatch(of: /joined mid-stream: (\d+) frames replayed/).flatMap { Int($0.1) }
        let r = try XCTUnwrap(replayed, "the recorder reports the frames replayed from the cache: \(record)")
        XCTAssertTrue((1...50).contains(r), "at most one GOP replayed: \(r)")
        XCTAssertGreaterThanOrEqual(n.count, r, "the replayed frames are in the file")
    }

    /// Cameras with GOPs of 2 to 10 s and more are common. A recorder joining late in a long GOP gets the
    /// whole cached GOP, paced to fit its queue (the bus's default, 64), and the live frames that came
    /// meanwhile after it: its file is continuous from the replayed keyframe to the end. (Before: the GOP
    /// went out in one burst, overflowed the queue, and the file jumped from the replay to the next keyframe.)
    /// GOPs of 2, 10 and 30 s at 10 fps, each recorder joining 90 % into its GOP while its publisher is held
    /// still (which then catches up in a burst), all three at once.
    func testALateRecorderOfALongGOPGetsEveryFrameFromTheReplayedKeyframeOn() async throws {
        var holders: [IPNSocket] = []
        defer { holders.forEach { $0.close() } }
        for gop in [20, 100, 300] {
            let h = IPNSocket(policy: "media")
            h.options.mtu = 4 << 20  // the default queue
            try h.bind(dir + "/gop\(gop)")
            holders.append(h)
        }
        let dir = self.dir
        try await withThrowingTaskGroup(of: (Int, TestSupport.Outcome).self) { group in
            for gop in [20, 100, 300] {
                group.addTask {
                    let bus = dir + "/gop\(gop)"
                    // 100 frames after the GOP: 10 s in which the wait below must see the publisher past 90% of it,
                    // while three publishers encode (under two CPU hogs, one once ended its 30-frame tail unseen).
                    let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--preset", "ultrafast",
                                                                               "--fps", "10", "--gop", "\(gop)", "--frames", "\(gop + 100)"], timeout: 300) { publisher in
                        try await TestSupport.waitUntil("the publisher (gop \(gop)) has sent \(gop * 9 / 10) frames", seconds: 240,
                                                        lastSeen: { "\(Self.node(bus, publisher).map { "\($0.sentMessages) sent" } ?? "not on the bus"), process \(TestSupport.processState(publisher))" }) {
                            (Self.node(bus, publisher)?.sentMessages ?? 0) >= UInt64(gop * 9 / 10)
                        }
                        // Held still while the recorder joins, so that it joins mid-GOP however slow the machine (on
                        // its own, a publisher could reach its last frame first). Let go, it catches up at once: a
                        // burst of live frames while the replay goes on, which must not overflow the joiner either.
                        kill(publisher, SIGSTOP)
                        let (_, record) = try await TestSupport.with("mediajack", ["record", bus, dir + "/gop\(gop).mkv"], timeout: 240) { recorder in
                            try await TestSupport.waitUntil("the recorder (gop \(gop)) is on the bus", seconds: 120) { Self.node(bus, recorder) != nil }
                            kill(publisher, SIGCONT)
                            return ((), false)  // it records until the stream ends
                        }
                        return (record, false)
                    }
                    return (gop, record)
                }
            }
            for try await (gop, record) in group {
                XCTAssertEqual(record.exitCode, 0, "gop \(gop): \(record)")
                XCTAssertTrue(record.standardOutput.contains("; 0 gaps"), "gop \(gop): nothing lost on the bus: \(record.standardOutput)")
                let replayed = record.standardOutput.firstMatch(of: /joined mid-stream: (\d+) frames replayed/).flatMap { Int($0.1) } ?? 0
                let file = dir + "/gop\(gop).mkv"
                try await assertDecodesCleanly(file)
                let n = try await barcodes(file).compactMap { $0 }
                // The wait polls: on a starved machine (ThreadSanitizer under two CPU hogs) a publisher once went past
                // its first GOP before it was held (gop 20 leaves 0.2 s), and the recorder joined the next GOP. What must
                // hold either way: the file starts at the keyframe of the GOP it joined, replayed, and runs to the end.
                let keyframe = n.first ?? .max
                XCTAssertEqual(keyframe % UInt32(gop), 0, "gop \(gop): the file starts at a replayed keyframe: \(n.prefix(5))")
                XCTAssertEqual(n, Array(keyframe..<UInt32(gop + 100)), "gop \(gop): every frame from the replayed keyframe to the end, in order")
                XCTAssertGreaterThan(replayed, 0, "gop \(gop): the cached GOP was replayed: \(record.standardOutput)")
                if keyframe == 0 {
                    XCTAssertGreaterThanOrEqual(replayed, gop * 8 / 10, "gop \(gop): held 90 % into its GOP, most of it was replayed: \(record.standardOutput)")
                }
            }
        }
    }

    func testAPublisherKilledMidStreamLeavesAValidFile() async throws {
        let out = dir + "/killed.ts"
        let bus = self.bus
        let (recording, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { publisher in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            let (_, record) = try await TestSupport.with("mediajack", ["record", bus, out]) { recorder in
                try Self.waitForDelivered(25, on: bus, to: recorder, "the recorder")  // it is recording
                kill(publisher, SIGKILL)  // the recorder must see end of stream and finish on its own
                return ((), false)
            }
            return (record, false)
        }
        XCTAssertEqual(recording.exitCode, 0, "\(recording)")
        XCTAssertTrue(recording.standardOutput.contains("recorded"), "\(recording)")
        try await assertDecodesCleanly(out)
        let streams = try await probe(out)
        XCTAssertEqual(streams.first?["codec_name"], "h264")
    }

    func testAStoppedRecorderResumesAtAKeyframeWhileTheOthersSeeNoGap() async throws {
        try makeBus(queue: 32)  // short queues, so the stopped consumer overflows quickly
        let bus = self.bus, dir = self.dir
        let (recorders, publisher) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25", "--frames", "250"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            let (slowOutcome, healthyOutcome) = try await TestSupport.with("mediajack", ["record", bus, dir + "/healthy.mkv"]) { healthyPID in
                let (_, slow) = try await TestSupport.with("mediajack", ["record", bus, dir + "/slow.mkv"]) { slowPID in
                    // Both are recording before one is stopped.
                    try Self.waitForDelivered(25, on: bus, to: slowPID, "the recorder to be stopped")
                    try Self.waitForDelivered(25, on: bus, to: healthyPID, "the healthy recorder")
                    kill(slowPID, SIGSTOP)
                    // What a user sees meanwhile: the stopped consumer's lag and drops, once its queue overflowed.
                    var stat = ""
                    try await TestSupport.waitUntil("mediajack stat shows the stopped recorder's full queue and its drops",
                                                    lastSeen: { stat }) {
                        stat = try await TestSupport.run("mediajack", ["stat", bus]).standardOutput
                        let line = stat.split(separator: "\n").first { $0.contains("pid \(slowPID) ") } ?? ""
                        return line.contains("lag 32 of 32 messages queued") && !line.contains("dropped 0,")
                    }
                    kill(slowPID, SIGCONT)
                    return ((), false)  // both recorders end at the publisher's end of stream
                }
                return (slow, false)
            }
            return ((slowOutcome, healthyOutcome), false)
        }
        XCTAssertTrue(publisher.standardOutput.contains("published 250 frames"), "the publisher published every frame: \(publisher)")
        let (slow, healthy) = recorders
        XCTAssertEqual(healthy.exitCode, 0, "\(healthy)")
        XCTAssertEqual(slow.exitCode, 0, "\(slow)")
        XCTAssertTrue(healthy.standardOutput.contains("; 0 gaps"), "\(healthy)")
        XCTAssertFalse(slow.standardOutput.contains("; 0 gaps"), "the stopped recorder reports its loss: \(slow)")
        try await assertDecodesCleanly(dir + "/healthy.mkv")
        try await assertDecodesCleanly(dir + "/slow.mkv")
        let healthyFrames = try await barcodes(dir + "/healthy.mkv").compactMap { $0 }
        XCTAssertEqual(healthyFrames, Array(healthyFrames.first!..<(healthyFrames.first! + UInt32(healthyFrames.count))), "no gap for the other consumer")
        let slowFrames = try await barcodes(dir + "/slow.mkv").compactMap { $0 }
        let jump = try XCTUnwrap(zip(slowFrames, slowFrames.dropFirst()).first { $1 != $0 + 1 }, "the stopped recorder lost frames")
        XCTAssertEqual(jump.1 % 25, 0, "it resumed at a keyframe (frame \(jump.1)), never mid-GOP")
    }

    func testKilledConsumersLeaveNothingBehindOnTheBus() async throws {
        let dir = self.dir
        let bus = self.bus
        // Asked through the holder's own connection: a status request by path would open (and the host
        // later close) a connection of its own, which would blur the host's baseline.
        let holder = try XCTUnwrap(self.holder)
        let hostPID = try holder.status().hostPID
        @Sendable func node(_ pid: Int32) -> BusStatus.NodeStatus? { (try? holder.status())?.nodes.first { $0.pid == pid } }
        _ = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { publisher in
            // Steady state first: the publisher's pool exists once its first large frame went out.
            try TestSupport.waitUntil("the publisher has sent 10 messages") { (node(publisher)?.sentMessages ?? 0) > 10 }
            let baseline = try TestSupport.resources(of: hostPID, "the bus host")
            for i in 0..<10 {
                _ = try await TestSupport.with("mediajack", ["record", bus, dir + "/k\(i).mkv"]) { recorder in
                    // Killed once it holds its share of the bus: joined, mapped the publisher's pool, receiving.
                    try TestSupport.waitUntil("recorder \(i) (pid \(recorder)) receives frames") {
                        (node(recorder)?.deliveredMessages ?? 0) >= 2
                    }
                    return ((), true)
                }
            }
            // The host is back to what it held before: every descriptor (sockets, eventfds, the rings' and
            // pool's memfds) and every memfd mapping of the killed recorders released. Shown failing by
            // breaking Sources/IPNBus on purpose (not committed): without the munmap in SharedMemory.deinit
            // and the close of wakeFD in HostNode.close() the host kept "descriptors: +10
            // anon_inode:[eventfd]; mappings: +10 /memfd:ipn-inbox (deleted) 544768 bytes, +10
            // /memfd:ipn-outbox (deleted) 544768 bytes".
            try TestSupport.waitForNoLeak("the bus host", pid: hostPID, baseline: baseline)
            let remaining = try holder.status().nodes.count
            XCTAssertEqual(remaining, 2, "the holder and the publisher remain")
            return ((), true)
        }
    }

    func testCtrlCFinalisesAnMJPEGRecording() async throws {
        let bus = self.bus, out = dir + "/mjpeg.mkv"
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "mjpeg", "--size", "320x240"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            let (_, record) = try await TestSupport.with("mediajack", ["record", bus, out]) { recorder in
                try Self.waitForDelivered(25, on: bus, to: recorder, "the recorder")
                kill(recorder, SIGINT)  // what Ctrl-C does
                return ((), false)
            }
            return (record, true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        let v = try await probe(out).first { $0["codec_type"] == "video" }
        XCTAssertEqual(v?["codec_name"], "mjpeg")
        // Everything the recorder says it recorded is in the file (how much that is depends on when Ctrl-C came).
        let recorded = record.standardOutput.firstMatch(of: /recorded (\d+) frames/).flatMap { Int($0.1) }
        XCTAssertGreaterThan(recorded ?? 0, 0, "\(record)")
        XCTAssertEqual(Int(v?["nb_read_frames"] ?? ""), recorded, "\(record)")
        let numbers = try await barcodes(out, width: 320, height: 240).compactMap { $0 }
        XCTAssertEqual(numbers, Array(numbers.first!..<(numbers.first! + UInt32(numbers.count))), "every picture readable, in order")
    }

    func testRawYUYVPicturesAreEncodedOnceByTheRecorder() async throws {
        let bus = self.bus, out = dir + "/raw.mp4"
        let publish = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "none", "--pixel-format", "yuyv422",
                                                               "--size", "320x240", "--frames", "150"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            let record = try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "2"])
            XCTAssertEqual(record.exitCode, 0, "\(record)")
            let listing = try await TestSupport.run("mediajack", ["ls", (bus as NSString).deletingLastPathComponent])
            XCTAssertTrue(listing.standardOutput.contains("media  "), "\(listing)")
            XCTAssertTrue(listing.standardOutput.contains("video"), "\(listing)")
            return ((), true)
        }
        _ = publish
        try await assertDecodesCleanly(out)
        let v = try await probe(out).first { $0["codec_type"] == "video" }
        XCTAssertEqual(v?["codec_name"], "h264")
        let numbers = try await barcodes(out, width: 320, height: 240).compactMap { $0 }
        // 2 s of the stream's own time (--duration counts timestamps, not the machine's clock).
        XCTAssertTrue((49...51).contains(numbers.count), "2 s of stream time at 25 frames a second: \(numbers.count)")
        XCTAssertEqual(numbers, Array(numbers.first!..<(numbers.first! + UInt32(numbers.count))))
    }

    /// First packet time of each stream kind in a file, from ffprobe.
    func firstPacketTimes(_ file: String) async throws -> [String: Double] {
        var out: [String: Double] = [:]
        for kind in ["v", "a"] {
            let r = try await tool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", kind, "-show_entries", "packet=pts_time",
                                                       "-read_intervals", "%+#1", "-of", "csv=p=0", file])
            if let t = r.standardOutput.split(separator: "\n").first?.split(separator: ",").first.flatMap({ Double($0) }) { out[kind] = t }
        }
        return out
    }

    func testALateRecorderOfTwoPublishersStartsAudioAndVideoTogether() async throws {
        let bus = self.bus, out = dir + "/av.mkv"
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "50", "--frames", "250"]) { video in
            let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:audio", bus, "--frames", "500"]) { _ in
                try TestSupport.waitForPolicy(bus, "streams", "2")
                try Self.waitForSent(60, on: bus, by: video)  // past the second keyframe (frame 50): mid-GOP
                let record = try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "3"])
                return (record, true)
            }
            return (record, true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        let t = try await firstPacketTimes(out)
        let video = try XCTUnwrap(t["v"], "\(t)"), audio = try XCTUnwrap(t["a"], "\(t)")
        // Within one audio period (20 ms) and one frame interval (40 ms), though the video starts at the
        // replayed keyframe up to 2 s in the past.
        XCTAssertLessThanOrEqual(abs(audio - video), 0.06, "video starts at \(video) s, audio at \(audio) s")
        let numbers = try await barcodes(out).compactMap { $0 }
        XCTAssertEqual(numbers.first.map { $0 % 50 }, 0, "video starts at the cached keyframe")
    }

    func testABadSourceIsNamedForWhatItIs() async throws {
        let bus = dir + "/unused"
        let text = try await TestSupport.run("mediajack", ["publish", "file:/etc/passwd", bus])
        XCTAssertEqual(text.exitCode, 1, "\(text)")
        XCTAssertTrue(text.standardError.contains("cannot read /etc/passwd as media"), "\(text)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: bus), "a source that cannot be read leaves no bus behind")
        let nonsense = try await TestSupport.run("mediajack", ["publish", "nonsense:x", bus])
        XCTAssertEqual(nonsense.exitCode, 1, "\(nonsense)")
        for known in ["v4l2:", "alsa:", "file:", "test:video", "test:audio"] {
            XCTAssertTrue(nonsense.standardError.contains(known), "\(known) is among the sources listed: \(nonsense)")
        }
    }

    func testAFileIsPublishedLikeALiveCameraAndLoops() async throws {
        let bus = self.bus, input = dir + "/in.mp4", out = dir + "/from-file.mkv"
        // A real file with B-frames and AAC, made by ffmpeg itself.
        let make = try await tool("/usr/bin/ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi",
                                                     "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-g", "25",
                                                     "-pix_fmt", "yuv420p", "-c:a", "aac", input])
        XCTAssertEqual(make.exitCode, 0, "\(make)")
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "file:" + input, bus, "--loop"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "2")
            let record = try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "4.5"])
            return (record, true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        let streams = try await probe(out)
        let v = try XCTUnwrap(streams.first { $0["codec_type"] == "video" })
        XCTAssertEqual(v["codec_name"], "h264", "passed through, not re-encoded")
        let frames = Int(v["nb_read_frames"] ?? "") ?? 0
        // 4.5 s of the stream's own time (timestamps, which go on across loops), not of the machine's clock.
        XCTAssertTrue((108...116).contains(frames), "4.5 s of stream time of a looping 2 s file at 25 frames a second: \(frames) frames")
        XCTAssertEqual(streams.first { $0["codec_type"] == "audio" }?["codec_name"], "aac")
    }

    /// Records into a FIFO whose reader is stopped for 3 s: a disk that stalls.
    func recordThroughAStallingOutput(buffer: String) async throws -> (TestSupport.Outcome, [UInt32]) {
        try makeBus(queue: 16)
        let bus = self.bus, fifo = dir + "/out-\(buffer).ts", file = dir + "/stalled-\(buffer).ts"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25", "--frames", "175"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            let (record, _) = try await TestSupport.with("/bin/sh", ["-c", "exec cat \"$0\" > \"$1\"", fifo, file]) { reader in
                let (_, record) = try await TestSupport.with("mediajack", ["record", bus, fifo, "--lossless-buffer", buffer]) { _ in
                    // Recording reaches the "disk" before it stalls.
                    try TestSupport.waitUntil("the recording reaches the file through the FIFO") {
                        ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) > 0
                    }
                    kill(reader, SIGSTOP)  // the "disk" stalls for 3 s
                    // Part of the scenario: the stall's length. The stream goes on in real time meanwhile,
                    // so what piles up is 3 s of stream whatever the machine's speed.
                    try await Task.sleep(nanoseconds: 3_000_000_000)
                    kill(reader, SIGCONT)
                    return ((), false)  // the recorder ends at the publisher's end of stream
                }
                return (record, false)
            }
            return (record, false)
        }
        try await assertDecodesCleanly(file)
        return (record, try await barcodes(file).compactMap { $0 })
    }

    func testALosslessBufferRidesOutAStallingDisk() async throws {
        let (record, frames) = try await recordThroughAStallingOutput(buffer: "64MiB")
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        XCTAssertTrue(record.standardOutput.contains("; 0 gaps; buffer peak"), "\(record)")
        XCTAssertTrue(record.standardOutput.contains(" 0 dropped"), "\(record)")
        XCTAssertFalse(record.standardError.contains("WARNING"), "\(record)")
        XCTAssertEqual(frames, Array(frames.first!..<(frames.first! + UInt32(frames.count))), "not one frame lost")
        XCTAssertEqual(frames.last, 174, "up to the publisher's last frame")
    }

    func testPastItsBoundTheBufferDropsLoudlyAndResumesAtAKeyframe() async throws {
        let (record, frames) = try await recordThroughAStallingOutput(buffer: "1s")
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        XCTAssertTrue(record.standardError.contains("WARNING: the output is slower than the stream"), "\(record)")
        let jump = try XCTUnwrap(zip(frames, frames.dropFirst()).first { $1 != $0 + 1 }, "frames were dropped")
        XCTAssertEqual(jump.1 % 25, 0, "resumed at a keyframe (\(jump.1))")
    }

    func testSegmentsAreCutAtKeyframesWithoutLosingAFrame() async throws {
        let bus = self.bus, out = dir + "/seg.mkv"
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25", "--frames", "250"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            return (try await TestSupport.run("mediajack", ["record", bus, out, "--segment", "2", "--duration", "6"]), true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        var all: [UInt32] = []
        for i in 0..<3 {
            let file = dir + String(format: "/seg-%03d.mkv", i)
            try await assertDecodesCleanly(file)
            let frames = try await barcodes(file).compactMap { $0 }
            XCTAssertEqual(frames.first.map { $0 % 25 }, 0, "segment \(i) starts at a keyframe")
            // 2 s of the stream's own time per segment, cut at its timestamps.
            XCTAssertTrue((49...51).contains(frames.count), "segment \(i): 2 s of stream time, \(frames.count) frames")
            all += frames
        }
        XCTAssertEqual(all, Array(all.first!..<(all.first! + UInt32(all.count))), "no frame lost between segments")
    }

    func testAFollowingRecorderContinuesAnEqualComebackAndSegmentsAChangedOne() async throws {
        let bus = self.bus, out = dir + "/follow.mkv"
        let (_, record) = try await TestSupport.with("mediajack", ["record", bus, out, "--follow"]) { recorder in
            for size in ["640x360", "640x360", "320x240"] {  // the publisher ends and comes back, then changes
                let p = try await TestSupport.run("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25",
                                                                "--size", size, "--frames", "50"])
                XCTAssertEqual(p.exitCode, 0, "\(p)")
            }
            // The last publisher is gone and the recorder has taken everything it was delivered (its
            // queue is empty): Ctrl-C now loses nothing.
            try TestSupport.waitUntil("the recorder has read everything the last publisher sent",
                                            lastSeen: { "\((try? Bus.status(bus).nodes.map { "pid \($0.pid) queued \($0.queued)" }) ?? [])" }) {
                guard let nodes = try? Bus.status(bus).nodes, nodes.count == 2 else { return false }  // the holder and the recorder
                return nodes.first { $0.pid == recorder }?.queued == 0
            }
            kill(recorder, SIGINT)
            return ((), false)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        try await assertDecodesCleanly(dir + "/follow-001.mkv")
        let first = try await barcodes(out).compactMap { $0 }
        XCTAssertEqual(first, Array(0..<50) + Array(0..<50), "two epochs of equal parameters continue one file")
        let second = try await barcodes(dir + "/follow-001.mkv", width: 320, height: 240).compactMap { $0 }
        XCTAssertEqual(second, Array(0..<50), "changed parameters start a new segment")
    }

    func testMP4AndMPEGTSGetAACAudioEncodedFromPCM() async throws {
        let bus = self.bus, dir = self.dir
        _ = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { _ in
            let (_, _) = try await TestSupport.with("mediajack", ["publish", "test:audio", bus]) { _ in
                try TestSupport.waitForPolicy(bus, "streams", "2")
                async let mp4 = TestSupport.run("mediajack", ["record", bus, dir + "/av.mp4", "--duration", "2"])
                async let ts = TestSupport.run("mediajack", ["record", bus, dir + "/av.ts", "--duration", "2"])
                let (a, b) = try await (mp4, ts)
                XCTAssertEqual(a.exitCode, 0, "\(a)")
                XCTAssertEqual(b.exitCode, 0, "\(b)")
                return ((), true)
            }
            return ((), true)
        }
        for file in [dir + "/av.mp4", dir + "/av.ts"] {
            try await assertDecodesCleanly(file)
            let streams = try await probe(file)
            XCTAssertEqual(streams.first { $0["codec_type"] == "video" }?["codec_name"], "h264", file)
            XCTAssertEqual(streams.first { $0["codec_type"] == "audio" }?["codec_name"], "aac", file)
            let t = try await firstPacketTimes(file)
            XCTAssertLessThanOrEqual(abs((t["a"] ?? 99) - (t["v"] ?? 0)), 0.07, "\(file): \(t)")
        }
    }

    func testTheRecordedAudioCarriesEverySampleOfItsCounter() async throws {
        let bus = self.bus, out = dir + "/audio.mkv"
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:audio", bus, "--frames", "200"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            return (try await TestSupport.run("mediajack", ["record", bus, out, "--join", "next-keyframe"]), false)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        try await assertDecodesCleanly(out)
        let pcm = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", out, "-f", "s16le", "-"])
        let samples = pcm.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        let counter = stride(from: 1, to: samples.count, by: 2).map { UInt16(bitPattern: samples[$0]) }
        XCTAssertGreaterThan(counter.count, 48_000, "more than a second recorded")
        let breaks = zip(counter, counter.dropFirst()).filter { $1 != $0 &+ 1 }.count
        XCTAssertEqual(breaks, 0, "every sample, in order, none twice")
    }

    func testTheDemoRunsWithNoDeviceAndWritesAValidFile() async throws {
        let out = dir + "/demo.mkv"
        let demo = try await TestSupport.run("mediajack", ["demo", "--seconds", "2", "--output", out])
        XCTAssertEqual(demo.exitCode, 0, "\(demo)")
        XCTAssertTrue(demo.standardOutput.contains("mediajack record "), "it tells how to attach more consumers: \(demo)")
        try await assertDecodesCleanly(out)
        let kinds = try await probe(out).compactMap { $0["codec_name"] }.sorted()
        XCTAssertEqual(kinds, ["h264", "pcm_s16le"])
    }

    func testAConsumerPicksStreamsByKindOrId() async throws {
        let bus = self.bus, dir = self.dir
        _ = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { _ in
            _ = try await TestSupport.with("mediajack", ["publish", "test:audio", bus]) { _ in
                try TestSupport.waitForPolicy(bus, "streams", "2")
                let ls = try await TestSupport.run("mediajack", ["ls", dir])
                let audioID = try XCTUnwrap(ls.standardOutput.split(separator: "\n").first { $0.hasSuffix("audio") }?
                    .split(separator: ":").first?.trimmingCharacters(in: .whitespaces), "\(ls)")
                async let byID = TestSupport.run("mediajack", ["record", bus, dir + "/by-id.mkv", "--streams", audioID, "--duration", "1"])
                async let byKind = TestSupport.run("mediajack", ["record", bus, dir + "/by-kind.mkv", "--streams", "video", "--duration", "1"])
                let (a, b) = try await (byID, byKind)
                XCTAssertEqual(a.exitCode, 0, "\(a)")
                XCTAssertEqual(b.exitCode, 0, "\(b)")
                return ((), true)
            }
            return ((), true)
        }
        let audioOnly = try await probe(dir + "/by-id.mkv").compactMap { $0["codec_type"] }
        XCTAssertEqual(audioOnly, ["audio"])
        let videoOnly = try await probe(dir + "/by-kind.mkv").compactMap { $0["codec_type"] }
        XCTAssertEqual(videoOnly, ["video"])
    }
}
