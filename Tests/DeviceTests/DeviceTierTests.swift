import Foundation
import IPNTestSupport
import XCTest

/// The device tier: Debian's kernel under qemu (scripts/vm/run) with the real `vivid` V4L2 capture driver
/// and the real `snd-aloop` ALSA card, running the binaries built here. One boot runs every scenario
/// (about a minute); each test then checks its part of the results with ffprobe/ffmpeg on this side.
///
/// Run alone: `swift test --filter DeviceTests` (or `scripts/test-devices`).
final class DeviceTierTests: XCTestCase {
    /// The shared directory of the VM run (removed after the tests unless IPN_KEEP_DEVICE_TIER is set).
    static let directory = Result { try TestSupport.makeDirectory("devicetier") }
    /// The one VM run every test here reads (started by the first test that needs it).
    /// IPN_DEVICE_TIER_RESULTS=DIR checks the results a kept run left in DIR again, without booting.
    static let run = Task {
        if let kept = ProcessInfo.processInfo.environment["IPN_DEVICE_TIER_RESULTS"] { return VMRun(dir: kept) }
        return try await VMRun.start(in: directory.get())
    }

    override class func tearDown() {
        if ProcessInfo.processInfo.environment["IPN_KEEP_DEVICE_TIER"] == nil, case .success(let dir) = directory {
            TestSupport.removeDirectory(dir)
        }
        super.tearDown()
    }

    func vm() async throws -> VMRun { try await Self.run.value }

    // MARK: cameras

    func testDevicesListsTheVividCameraAndTheLoopbackCard() async throws {
        let r = try await vm()
        let list = r.text("devices.txt")
        XCTAssertTrue(list.contains("v4l2:/dev/video0  vivid  driver vivid"), list)
        XCTAssertTrue(list.contains("YUYV 640x360 @ 1,2,4,5,10,12.5,15,25,30,40 fps"), list)
        XCTAssertTrue(list.contains("NV12 1280x720 @"), list)
        XCTAssertTrue(list.contains("does not publish"), "formats we cannot publish are summarised: \(list)")
        XCTAssertTrue(list.contains("alsa:hw:Loopback,0"), list)
        XCTAssertTrue(list.contains("capture+playback"), list)
    }

    func testNegotiationWithoutARequestPicksTheLargestRawSizeAt30FpsAndSaysSo() async throws {
        let r = try await vm()
        let log = r.text("auto.log")
        // vivid has no compressed format; its largest raw size that reaches 30 fps is 640x360.
        XCTAssertTrue(log.contains("YUYV 640x360 at 30 fps (largest raw size at 30 fps)"), log)
    }

    func testVividYUYVPublishedRawIsRecordedWithALateJoiner() async throws {
        let r = try await vm()
        XCTAssertTrue(r.text("pubA.log").contains("published 100 frames"), r.text("pubA.log"))
        for (file, log) in [("a1.mkv", "recA1.log"), ("a2.mkv", "recA2.log")] {
            XCTAssertEqual(r.status(log), 0, r.text(log))
            try await r.assertDecodesCleanly(file)
            let s = try await r.videoStream(file)
            XCTAssertEqual(s["codec_name"], "rawvideo")
            XCTAssertEqual(s["pix_fmt"], "yuyv422")
            XCTAssertEqual(s["width"], "640")
            XCTAssertEqual(s["height"], "360")
            let rate = try await r.measuredFrameRate(file)
            XCTAssertEqual(rate, 25, accuracy: 25 * 0.05, "\(file): \(rate) fps")
        }
        // The first recorder was there from the start: every frame the publisher sent.
        let first = try await r.frameHashes("a1.mkv")
        XCTAssertEqual(first.count, 100)
        // The late one has the same pictures from where it joined on: a suffix, nothing lost or repeated.
        let late = try await r.frameHashes("a2.mkv")
        XCTAssertGreaterThan(late.count, 20)
        XCTAssertLessThan(late.count, 95)
        XCTAssertEqual(Array(first.suffix(late.count)), late)
        // vivid draws a moving picture: consecutive frames differ.
        XCTAssertEqual(Set(first).count, first.count, "every captured frame is a new picture")
    }

    func testVividNV12At720pEncodedOnceIsRecordedWithALateJoinerFromTheCachedGOP() async throws {
        let r = try await vm()
        XCTAssertTrue(r.text("pubB.log").contains("NV12 1280x720 at 10 fps (as requested)"), r.text("pubB.log"))
        XCTAssertTrue(r.text("pubB.log").contains("published 80 frames"), r.text("pubB.log"))
        for file in ["b1.mkv", "b2.mkv"] {
            try await r.assertDecodesCleanly(file)
            let s = try await r.videoStream(file)
            XCTAssertEqual(s["codec_name"], "h264")
            XCTAssertEqual(s["width"], "1280")
            XCTAssertEqual(s["height"], "720")
            let rate = try await r.measuredFrameRate(file)
            XCTAssertEqual(rate, 10, accuracy: 10 * 0.05, "\(file): \(rate) fps")
        }
        let first = try await r.frameHashes("b1.mkv")
        XCTAssertEqual(first.count, 80)
        let late = try await r.frameHashes("b2.mkv")
        // It joined mid-GOP (its start on an emulated CPU takes a while): the file starts at that GOP's keyframe,
        // replayed from the publisher's cache, and runs to the end with nothing lost or repeated.
        XCTAssertEqual(r.status("recB2.log"), 0, r.text("recB2.log"))
        XCTAssertTrue(late.count >= 20 && late.count < 80 && late.count % 20 == 0, "the late joiner starts at a keyframe: \(late.count) frames")
        XCTAssertEqual(Array(first.suffix(late.count)), late)
        XCTAssertTrue(r.text("recB2.log").contains("joined mid-stream"), "frames came from the cached GOP: \(r.text("recB2.log"))")
    }

    func testARealCameraIsServedToABrowserClientAndRestreamedToHLS() async throws {
        let r = try await vm()
        XCTAssertTrue(r.text("pubS2.log").contains("published 90 frames"), r.text("pubS2.log"))
        XCTAssertTrue(r.text("serveS.log").contains("MSE, encoded once to H.264"), r.text("serveS.log"))
        XCTAssertEqual(r.status("serveS.log"), 0, r.text("serveS.log"))
        // What a browser gets: fMP4 from a keyframe, H.264 encoded once from the camera's YUYV.
        try await r.assertDecodesCleanly("served.mp4")
        let served = try await r.videoStream("served.mp4")
        XCTAssertEqual(served["codec_name"], "h264")
        XCTAssertEqual(served["width"], "320")
        XCTAssertEqual(served["height"], "180")
        let pictures = try await r.frameHashes("served.mp4")
        XCTAssertGreaterThan(pictures.count, 20, "3 s of the live stream")
        XCTAssertGreaterThan(Set(pictures).count, pictures.count * 9 / 10, "vivid's moving picture: frames differ")
        // The HLS restream, there from the start: the whole stream, playable from its playlist.
        XCTAssertEqual(r.status("restreamS.log"), 0, r.text("restreamS.log"))
        XCTAssertTrue(r.text("hls/live.m3u8").contains("#EXT-X-ENDLIST"), r.text("hls/live.m3u8"))
        try await r.assertDecodesCleanly("hls/live.m3u8")
        let restreamed = try await r.frameHashes("hls/live.m3u8")
        XCTAssertGreaterThanOrEqual(restreamed.count, 85, "the restream has the camera's 90 frames, or nearly (the driver may lose one)")
        let rate = try await r.measuredFrameRate("hls/live.m3u8")
        XCTAssertEqual(rate, 15, accuracy: 15 * 0.05, "HLS at the camera's rate: \(rate) fps")
    }

    func testAnUnsupportedRequestFailsWithWhatTheCameraOffers() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("unsupported.log"), 1)
        let log = r.text("unsupported.log")
        XCTAssertTrue(log.contains("/dev/video0 cannot do MJPG"), log)
        XCTAssertTrue(log.contains("YUYV 640x360 @"), log)
        XCTAssertEqual(r.status("badsize.log"), 1)
        XCTAssertTrue(r.text("badsize.log").contains("cannot do nv12 1000x1000 at 30 fps"), r.text("badsize.log"))
    }

    func testABusyCameraSaysWhoHoldsIt() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("busy.log"), 1)
        let log = r.text("busy.log")
        let holder = r.text("busy-holder.pid").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(log.contains("/dev/video0 is busy: in use by pid \(holder) (mediajack)"), log)
    }

    func testACameraThatDisconnectsEndsTheStreamCleanly() async throws {
        let r = try await vm()
        // vivid's "Disconnect" control behaves like pulling a USB camera out.
        XCTAssertEqual(r.status("pubGone.log"), 1)
        let log = r.text("pubGone.log")
        XCTAssertTrue(log.contains("/dev/video0 went away"), log)
        XCTAssertEqual(r.status("recGone.log"), 0, r.text("recGone.log"))
        try await r.assertDecodesCleanly("gone.mkv")
        let frames = try await r.frameHashes("gone.mkv")
        XCTAssertGreaterThan(frames.count, 10, "what was captured before the disconnect is in the file")
    }

    // MARK: sound

    func testAToneIntoTheLoopbackIsPublishedFromItsCaptureSideAndRecorded() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("pubS.log"), 0, r.text("pubS.log"))
        XCTAssertTrue(r.text("pubS.log").contains("capture S16_LE 2 ch at 48000 Hz"), r.text("pubS.log"))
        try await r.assertDecodesCleanly("s1.mkv")
        let reference = try await r.samples("tone.wav")
        let recorded = try await r.samples("s1.mkv")
        let tone = Signal(recorded.left(), rate: 48_000).active()
        XCTAssertGreaterThan(tone.seconds, 2.5, "the tone is in the recording")
        XCTAssertEqual(tone.frequency, 997, accuracy: 2)
        let want = Signal(reference.left(), rate: 48_000).active().rmsDecibels
        XCTAssertEqual(tone.rmsDecibels, want, accuracy: 0.5, "level through the card and the bus")
    }

    func testACaptureOverrunIsRecoveredAndCounted() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("pubX.log"), 0, r.text("pubX.log"))
        let log = r.text("pubX.log")
        // Stopped for a second with a 80 ms buffer: the driver overran; the source recovered and went on.
        let xruns = Int(log.firstMatch(of: /; (\d+) xruns/)?.1 ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(xruns, 1, log)
        XCTAssertTrue(log.contains("published 150 periods"), log)
    }

    func testPlayFromTheBusIntoTheLoopbackArrivesIntact() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("play.log"), 0, r.text("play.log"))
        let captured = try await r.samples("played.wav")
        // Left: the 997 Hz tone. Right: test:audio's sample counter, so every lost or repeated sample shows.
        let tone = Signal(captured.left(), rate: 48_000).active()
        XCTAssertEqual(tone.frequency, 997, accuracy: 2)
        let counter = captured.right()
        let heard = zip(captured.left(), counter).filter { $0.0 != 0 || $0.1 != 0 }.map(\.1)
        XCTAssertGreaterThan(heard.count, 48_000 * 2, "at least two seconds of the stream were heard")
        var breaks = 0
        for (a, b) in zip(heard, heard.dropFirst()) where b &- a != 1 { breaks += 1 }
        XCTAssertEqual(breaks, 0, "samples lost or repeated between the bus and the card")
    }

    func testPlayResamplesWhenTheDeviceRunsAtAnotherRate() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("play44.log"), 0, r.text("play44.log"))
        XCTAssertTrue(r.text("play44.log").contains("2 ch at 44100 Hz (resampled)"), r.text("play44.log"))
        let captured = try await r.samples("played44.wav")
        let tone = Signal(captured.left(), rate: 44_100).active()
        XCTAssertGreaterThan(tone.seconds, 1.5)
        XCTAssertEqual(tone.frequency, 997, accuracy: 3)
    }

    func testJackdIPNClockedByTheCardCarriesAudioBothWaysIntact() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("cardout-play.log"), 0, r.text("cardout-play.log"))
        XCTAssertEqual(r.status("busin-play.log"), 0, r.text("busin-play.log"))
        XCTAssertTrue(r.text("jackd-stat.txt").contains("driver: alsa"), r.text("jackd-stat.txt"))
        // (The emulated CPU and debug binaries get 8 periods of write-ahead: LOOKAHEAD=8.)
        // aplay → plugin → bus → jackd-ipn → hw:Loopback,0,5 → hw:Loopback,1,5 → arecord.
        try await r.assertContains("card-out.wav", "noise-out.wav", context: r.text("jackd-stat.txt"))
        // aplay → hw:Loopback,1,5 → hw:Loopback,0,5 → jackd-ipn → bus → plugin → arecord.
        try await r.assertContains("bus-in.wav", "noise-in.wav", context: r.text("jackd-stat.txt"))
    }

    func testABusySoundDeviceSaysWhoHoldsIt() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("alsabusy.log"), 1)
        let log = r.text("alsabusy.log")
        XCTAssertTrue(log.contains("alsa:hw:Loopback,1,4 is busy: in use by pid"), log)
        XCTAssertTrue(log.contains("(arecord)"), log)
    }
}

/// Interleaved stereo s16 samples.
struct Stereo {
    var samples: [Int16]
    func left() -> [Int16] { stride(from: 0, to: samples.count - 1, by: 2).map { samples[$0] } }
    func right() -> [Int16] { stride(from: 1, to: samples.count, by: 2).map { samples[$0] } }
}

/// A mono signal and what a test measures on it.
struct Signal {
    var samples: [Int16]
    var rate: Int
    init(_ samples: [Int16], rate: Int) { self.samples = samples; self.rate = rate }

    /// From the first to the last sample above -40 dBFS.
    func active() -> Signal {
        let threshold: Int16 = 328
        guard let a = samples.firstIndex(where: { abs(Int($0)) > threshold }),
              let b = samples.lastIndex(where: { abs(Int($0)) > threshold }) else { return Signal([], rate: rate) }
        // Trim 10 ms at both ends (fade-in of the loopback start, the last partial period).
        let margin = rate / 100
        return Signal(b - a > 4 * margin ? Array(samples[(a + margin)...(b - margin)]) : [], rate: rate)
    }

    var seconds: Double { Double(samples.count) / Double(rate) }

    /// From the rising zero crossings, interpolated between samples.
    var frequency: Double {
        var crossings: [Double] = []
        for i in 1..<max(1, samples.count) where samples[i - 1] < 0 && samples[i] >= 0 {
            let a = Double(samples[i - 1]), b = Double(samples[i])
            crossings.append(Double(i - 1) + (-a) / (b - a))
        }
        guard crossings.count > 2 else { return 0 }
        return Double(crossings.count - 1) / ((crossings.last! - crossings.first!) / Double(rate))
    }

    var rmsDecibels: Double {
        guard !samples.isEmpty else { return -200 }
        let power = samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(samples.count)
        return 10 * log10(power / (32768.0 * 32768.0))
    }
}

/// The VM run: writes the guest script, boots the VM once, and gives the tests its files.
struct VMRun: Sendable {
    let dir: String

    static func start(in dir: String) async throws -> VMRun {
        let run = VMRun(dir: dir)
        // The tone the sound tests play into the card, made here with ffmpeg (997 Hz, -6 dB of full scale's 1/8).
        let tone = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=frequency=997:sample_rate=48000:duration=4",
                                                                     "-af", "volume=-6dB", "-ac", "2", "-c:a", "pcm_s16le", dir + "/tone.wav"])
        guard tone.exitCode == 0 else { throw VMError.setup("ffmpeg could not make the tone: \(tone)") }
        // Noise for jackd-ipn's round trips through the card: every sample checkable. A second of silence before
        // it: the recorder on the other side may start late on an emulated CPU.
        for (name, seed) in [("noise-out.wav", 11), ("noise-in.wav", 12)] {
            let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=2:c=white:r=48000:a=0.3:seed=\(seed)", "-af", "adelay=delays=1000:all=1,apad=pad_dur=0.5",
                                                                     "-ac", "2", "-c:a", "pcm_s16le", dir + "/" + name])
            guard r.exitCode == 0 else { throw VMError.setup("ffmpeg could not make noise: \(r)") }
        }
        // ALSA in the guest reads $HOME/.asoundrc: the ipn PCM, with the plugin built here.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let sample = try String(contentsOfFile: repository + "/samples/asoundrc", encoding: .utf8)
        try ("pcm_type.ipn { lib \"\(TestSupport.productsDirectory)/libasound_module_pcm_ipn.so\" }\n" + sample)
            .write(toFile: dir + "/.asoundrc", atomically: true, encoding: .utf8)
        try guestScript(products: TestSupport.productsDirectory).write(toFile: dir + "/scenarios.sh", atomically: true, encoding: .utf8)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/vm/run").path
        // Each step has its own limit inside; the whole run gets room for a slow emulated CPU.
        let outcome = try await TestSupport.runTool("/usr/bin/env", ["IPN_VM_TIMEOUT=480", "/bin/bash", script, dir, "sh", "scenarios.sh"])
        try outcome.standardOutput.write(toFile: dir + "/vm-output.txt", atomically: true, encoding: .utf8)
        guard outcome.exitCode == 0 else {
            throw VMError.setup("the device VM failed (\(outcome.exitCode.map(String.init) ?? "signal")): \(outcome.standardError.suffix(3000)) \(outcome.standardOutput.suffix(3000))")
        }
        return run
    }

    enum VMError: Error, CustomStringConvertible {
        case setup(String)
        var description: String { switch self { case .setup(let s): return s } }
    }

    /// A file the scenarios wrote; a note instead when it is missing (the assertion then shows it).
    func text(_ name: String) -> String {
        (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "<\(name) was not written>"
    }

    /// The exit status a scenario recorded for `name` (its .status file).
    func status(_ name: String) -> Int32? {
        Int32(text(name + ".status").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func assertDecodesCleanly(_ name: String, line: UInt = #line) async throws {
        let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-f", "null", "-"])
        XCTAssertEqual(r.exitCode, 0, "\(r)", line: line)
        XCTAssertEqual(r.standardError, "", "decoding \(name) reported errors", line: line)
    }

    func videoStream(_ name: String) async throws -> [String: String] {
        let r = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries",
                                                                   "stream=codec_name,pix_fmt,width,height", "-of", "compact", dir + "/" + name])
        return Dictionary(r.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").dropFirst().compactMap { kv -> (String, String)? in
            let p = kv.split(separator: "=", maxSplits: 1)
            return p.count == 2 ? (String(p[0]), String(p[1])) : nil
        }, uniquingKeysWith: { a, _ in a })
    }

    /// Frames per second from the packet timestamps: (count - 1) / (last - first).
    func measuredFrameRate(_ name: String) async throws -> Double {
        let r = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                                                                   "-of", "csv=p=0", dir + "/" + name])
        let times = r.standardOutput.split(separator: "\n").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: ", "))) }.sorted()
        guard times.count > 2, let first = times.first, let last = times.last, last > first else { return 0 }
        return Double(times.count - 1) / (last - first)
    }

    /// The MD5 of every decoded picture, in order.
    func frameHashes(_ name: String) async throws -> [String] {
        let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-map", "0:v", "-fps_mode", "passthrough",
                                                                  "-f", "framemd5", "-"])
        return r.standardOutput.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    /// The first audio stream decoded to interleaved stereo s16 at its own rate.
    func samples(_ name: String) async throws -> Stereo {
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-map", "0:a:0", "-f", "s16le", "-ac", "2", "-"])
        return Stereo(samples: bytes.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) })
    }

    /// `recording` holds every sample of `played`, in order, unchanged.
    func assertContains(_ recording: String, _ played: String, context: String = "", line: UInt = #line) async throws {
        var want = try await samples(played).samples
        let got = try await samples(recording).samples
        while want.last == 0 { want.removeLast() }  // the silence after the noise (a driver may keep the last partial period)
        // The silence before it gives the recorder time to start; the noise itself must arrive whole.
        want.removeFirst((want.firstIndex { $0 != 0 } ?? 0) & ~1)
        let key = Array(want[4000..<4064])
        var at: Int?
        var o = 0
        while o + 64 <= got.count { if got[o] == key[0] && Array(got[o..<(o + 64)]) == key { at = o - 4000; break }; o += 2 }
        guard let at, at >= 0, at + want.count <= got.count else {
            let heard = got.filter { $0 != 0 }.count
            return XCTFail("\(played) is not in \(recording) (\(got.count / 2) frames recorded, \(heard / 2) of them not silent; "
                           + (at.map { "the noise starts at frame \($0 / 2) and runs past the end" } ?? "its start is not there") + ")\n\(context)", line: line)
        }
        let bad = zip(got[at..<(at + want.count)], want).filter { $0.0 != $0.1 }.count
        XCTAssertEqual(bad, 0, "\(bad) samples of \(played) differ in \(recording)\n\(context)", line: line)
    }

    /// Every scenario, in one shell script the guest runs in the shared directory. Each records its
    /// output in NAME.log and its exit status in NAME.log.status.
    static func guestScript(products b: String) -> String {
        """
        #!/bin/sh
        B='\(b)'
        export PATH="$B:$PATH"
        # run NAME CMD...: runs in the foreground, output and status recorded. Every step has its own time
        # limit (status 124 when it ran out), so one stuck step costs its scenario, never the whole run.
        run() { n=$1; shift; timeout -k 5 90 "$@" > "$n" 2>&1; echo $? > "$n.status"; }
        # start NAME CMD...: the same, in the background.
        start() { n=$1; shift; ( timeout -k 5 90 "$@" > "$n" 2>&1; echo $? > "$n.status" ) & }
        waitbus() { i=0; until ipn stat "$1" > /dev/null 2>&1; do i=$((i+1)); [ $i -gt 200 ] && return 1; sleep 0.05; done; }
        # waitfile FILE [SECONDS]: until FILE is not empty (10 s at most unless told).
        waitfile() { i=0; until [ -s "$1" ]; do i=$((i+1)); [ $i -gt $((${2:-10} * 20)) ] && return 1; sleep 0.05; done; }

        run devices.txt mediajack devices

        echo "== vivid YUYV 640x360 raw, a recorder from the start and one joining late"
        ipn create /run/camA --policy media --mtu 1000000 --queue 32 --persistent
        start recA1.log mediajack record /run/camA a1.mkv --keep-raw
        sleep 0.5
        start pubA.log mediajack publish v4l2:/dev/video0 /run/camA --pixel-format yuyv422 --size 640x360 --fps 25 --frames 100
        sleep 2
        start recA2.log mediajack record /run/camA a2.mkv --keep-raw
        wait

        echo "== vivid NV12 1280x720 encoded once to H.264, a late joiner served from the GOP cache"
        ipn create /run/camB --policy media --mtu 4000000 --queue 32 --persistent
        start recB1.log mediajack record /run/camB b1.mkv
        sleep 0.5
        start pubB.log mediajack publish v4l2:/dev/video0 /run/camB --pixel-format nv12 --size 1280x720 --fps 10 --encode h264 --preset ultrafast --gop 20 --frames 80
        # The late joiner is started mid-GOP, 2.5 s in, with 5.5 s to spare: an emulated CPU starts programs slowly.
        waitfile pubB.log
        sleep 2.5
        start recB2.log mediajack record /run/camB b2.mkv
        wait

        echo "== a real camera served to a browser client and restreamed to HLS: raw YUYV encoded to H.264"
        ip link set lo up
        ipn create /run/camS --policy media --mtu 1000000 --queue 32 --persistent
        mkdir -p hls
        start serveS.log mediajack serve /run/camS --listen 127.0.0.1:8090
        start restreamS.log mediajack restream /run/camS hls/live.m3u8 --segment 1 --until-end
        waitfile serveS.log
        # (Small and slow: three H.264 encoders share the emulated CPU here, serve's, restream's and nothing else.)
        start pubS2.log mediajack publish v4l2:/dev/video0 /run/camS --pixel-format yuyv422 --size 320x180 --fps 15 --frames 90
        # A client as a page is one: once status.json says the stream can be joined.
        i=0; until curl -s http://127.0.0.1:8090/status.json | grep -q '"ready":true'; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1; done
        run curlS.log curl -s -N --max-time 3 http://127.0.0.1:8090/stream.mp4 -o served.mp4
        waitfile pubS2.log.status 30
        pkill -INT -f '^mediajack serve /run/camS'
        wait

        echo "== negotiation and errors"
        run auto.log mediajack publish v4l2:/dev/video0 /run/camC --frames 3
        run unsupported.log mediajack publish v4l2:/dev/video0 /run/camC --pixel-format MJPG
        run badsize.log mediajack publish v4l2:/dev/video0 /run/camC --pixel-format nv12 --size 1000x1000 --fps 30
        start holder.log mediajack publish v4l2:/dev/video0 /run/camD --frames 150
        holder=$!
        sleep 2
        pgrep -f '^mediajack publish v4l2:/dev/video0 /run/camD' | head -1 > busy-holder.pid
        run busy.log mediajack publish v4l2:/dev/video0 /run/camE --frames 3
        wait

        echo "== sound: a tone into the loopback, published from its capture side"
        ipn create /run/snd --policy media --mtu 1000000 --persistent
        start recS.log mediajack record /run/snd s1.mkv
        start pubS.log mediajack publish alsa:hw:Loopback,1,0 /run/snd --frames 250
        waitfile pubS.log
        aplay -q -D hw:Loopback,0,0 tone.wav
        wait

        echo "== sound: an overrun (the source stopped for a second) is recovered"
        start pubX.log mediajack publish alsa:hw:Loopback,1,1 /run/sndx --frames 150 --period 480 --periods 8
        waitfile pubX.log
        sleep 0.5
        pkill -STOP -f '^mediajack publish alsa:hw:Loopback,1,1'
        sleep 1
        pkill -CONT -f '^mediajack publish alsa:hw:Loopback,1,1'
        wait

        echo "== sound: play from the bus into the loopback, captured with arecord"
        ipn create /run/snd2 --policy media --mtu 1000000 --persistent
        start play.log mediajack play /run/snd2 alsa:hw:Loopback,0,2 --until-end
        waitbus /run/snd2
        sleep 1
        start arecord.log arecord -q -D hw:Loopback,1,2 -f S16_LE -r 48000 -c 2 -d 5 played.wav
        sleep 0.3
        run pubT.log mediajack publish test:audio /run/snd2 --frames 200
        wait

        echo "== sound: play resampled to 44.1 kHz"
        ipn create /run/snd3 --policy media --mtu 1000000 --persistent
        start play44.log mediajack play /run/snd3 alsa:hw:Loopback,0,3 --rate 44100 --until-end
        sleep 1
        start arecord44.log arecord -q -D hw:Loopback,1,3 -f S16_LE -r 44100 -c 2 -d 4 played44.wav
        sleep 0.3
        run pubT44.log mediajack publish test:audio /run/snd3 --frames 150
        wait

        echo "== sound: a busy device"
        start arecordbusy.log arecord -q -D hw:Loopback,1,4 -f S16_LE -r 48000 -c 2 -d 60 /dev/null
        i=0; until grep -q RUNNING /proc/asound/Loopback/pcm1c/sub4/status 2>/dev/null || [ $i -gt 100 ]; do i=$((i+1)); sleep 0.05; done
        run alsabusy.log mediajack publish alsa:hw:Loopback,1,4 /run/snd4 --frames 5
        pkill -f '^arecord -q -D hw:Loopback,1,4'   # held for as long as the check took, however slow
        wait

        echo "== jackd-ipn clocked by the card: the bus to the card and the card to the bus"
        export HOME="$PWD"
        # Emulated CPU (TCG) and debug binaries: a roomy period.
        start jackd.log jackd-ipn --bus /run/jbus --driver alsa:hw:Loopback,0,5 --period 1024 --periods 12
        waitfile jackd.log
        sleep 2
        # Recordings of 7 s for 3.5 s of sound: an emulated CPU may start a program late.
        start cardout-rec.log arecord -q -D hw:Loopback,1,5 -f S16_LE -r 48000 -c 2 -d 7 card-out.wav
        sleep 0.3
        run cardout-play.log aplay -q -D ipn:BUS=/run/jbus,LOOKAHEAD=8 noise-out.wav
        sleep 4
        start busin-rec.log arecord -q -D ipn:BUS=/run/jbus -B 1000000 -f S16_LE -r 48000 -c 2 -d 7 bus-in.wav
        sleep 0.3
        run busin-play.log aplay -q -D hw:Loopback,1,5 noise-in.wav
        sleep 4
        run jackd-stat.txt jackd-ipn stat /run/jbus
        pkill -INT jackd-ipn
        wait

        echo "== vivid disconnects mid-stream (last: the device is gone afterwards)"
        ipn create /run/camG --policy media --mtu 1000000 --queue 32 --persistent
        start recGone.log mediajack record /run/camG gone.mkv --keep-raw
        sleep 0.5
        start pubGone.log mediajack publish v4l2:/dev/video0 /run/camG --pixel-format yuyv422 --size 320x180 --fps 25
        waitfile pubGone.log   # it has the device (an emulated CPU may take seconds to start it)
        sleep 2
        v4l2-ctl -d /dev/video0 --set-ctrl disconnect=1 > disconnect.log 2>&1
        wait
        echo "== done"
        """
    }
}
