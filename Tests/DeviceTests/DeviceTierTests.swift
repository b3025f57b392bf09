import Foundation
import IPNTestSupport
import MediaJack
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

    func testDevicesListsTheVividCameraTheLoopbackCardAndTheVirtualWebcam() async throws {
        let r = try await vm()
        let list = r.text("devices.txt")
        XCTAssertTrue(list.contains("v4l2:/dev/video0  vivid  driver vivid"), list)
        XCTAssertTrue(list.contains("YUYV 640x360 @ 1,2,4,5,10,12.5,15,25,30,40 fps"), list)
        XCTAssertTrue(list.contains("NV12 1280x720 @"), list)
        XCTAssertTrue(list.contains("does not publish"), "formats we cannot publish are summarised: \(list)")
        XCTAssertTrue(list.contains("alsa:hw:Loopback,0"), list)
        XCTAssertTrue(list.contains("capture+playback"), list)
        // The v4l2loopback device, idle: listed as a free virtual webcam, not as a camera.
        XCTAssertTrue(list.contains("/dev/video10  IPN camera  free: mediajack webcam BUS /dev/video10"), list)
        XCTAssertFalse(list.contains("v4l2:/dev/video10"), "a loopback is no camera: \(list)")
    }

    func testNegotiationWithoutARequestPicksTheLargestRawSizeAt30FpsAndSaysSo() async throws {
        let r = try await vm()
        let log = r.text("auto.log")
        // vivid has no compressed format; its largest raw size that reaches 30 fps is 640x360.
        XCTAssertTrue(log.contains("YUYV 640x360 at 30 fps (largest raw size at 30 fps)"), log)
    }

    func testEveryStepOfTheScenariosHappened() async throws {
        let r = try await vm()
        XCTAssertNil(r.failure)
        XCTAssertEqual(r.text("waits.log"), "", "steps the scenarios waited for in vain")
    }

    func testVividYUYVPublishedRawIsRecordedWithALateJoiner() async throws {
        let r = try await vm()
        let published = try XCTUnwrap(r.published("pubA.log"), r.text("pubA.log"))
        XCTAssertEqual(published.frames, 60, r.text("pubA.log"))
        for file in ["a1.mkv", "a2.mkv"] {
            try await r.assertDecodesCleanly(file)
            let s = try await r.videoStream(file)
            XCTAssertEqual(s["codec_name"], "rawvideo")
            XCTAssertEqual(s["pix_fmt"], "yuyv422")
            XCTAssertEqual(s["width"], "640")
            XCTAssertEqual(s["height"], "360")
        }
        // The first recorder was there from the start: every frame the publisher sent, or a reported loss.
        let first = try await r.assertEveryPublishedFrameIsRecorded("a1.mkv", recorder: "recA1.log", published: published.frames)
        // The late one joined while the publisher was held mid-stream: the same pictures from there on.
        let late = try await r.frameHashes("a2.mkv")
        XCTAssertEqual(r.status("recA2.log"), 0, r.text("recA2.log"))
        XCTAssertTrue(late.count >= 1 && late.count < first.count, "the late joiner joined mid-stream: \(late.count) of \(first.count) frames")
        r.assertLateJoiner(late, follows: first, logs: ["recA1.log", "recA2.log"])
        // vivid draws a moving picture: consecutive frames differ.
        XCTAssertEqual(Set(first).count, first.count, "every captured frame is a new picture")
    }

    func testVividNV12At720pEncodedOnceIsRecordedWithALateJoinerFromTheCachedGOP() async throws {
        let r = try await vm()
        XCTAssertTrue(r.text("pubB.log").contains("NV12 1280x720 at 5 fps (as requested)"), r.text("pubB.log"))
        let published = try XCTUnwrap(r.published("pubB.log"), r.text("pubB.log"))
        XCTAssertEqual(published.frames, 40, r.text("pubB.log"))
        for file in ["b1.mkv", "b2.mkv"] {
            try await r.assertDecodesCleanly(file)
            let s = try await r.videoStream(file)
            XCTAssertEqual(s["codec_name"], "h264")
            XCTAssertEqual(s["width"], "1280")
            XCTAssertEqual(s["height"], "720")
        }
        let first = try await r.assertEveryPublishedFrameIsRecorded("b1.mkv", recorder: "recB1.log", published: published.frames)
        let late = try await r.frameHashes("b2.mkv")
        // It joined mid-GOP: the file starts at that GOP's keyframe, replayed from the publisher's cache, and
        // runs to the end with nothing lost or repeated.
        XCTAssertEqual(r.status("recB2.log"), 0, r.text("recB2.log"))
        XCTAssertTrue(late.count >= 10 && late.count < 40 && late.count % 10 == 0, "the late joiner starts at a keyframe: \(late.count) frames")
        r.assertLateJoiner(late, follows: first, logs: ["recB1.log", "recB2.log"])
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
        // It joined once the stream was ready and read until serve ended: a live stream from a keyframe on.
        let pictures = try await r.frameHashes("served.mp4")
        XCTAssertGreaterThanOrEqual(pictures.count, 2, r.text("serveS.log"))
        XCTAssertGreaterThan(Set(pictures).count, pictures.count * 9 / 10, "vivid's moving picture: frames differ")
        // The HLS restream, there from the start: the whole stream, playable from its playlist.
        XCTAssertEqual(r.status("restreamS.log"), 0, r.text("restreamS.log"))
        XCTAssertTrue(r.text("hls/live.m3u8").contains("#EXT-X-ENDLIST"), r.text("hls/live.m3u8"))
        try await r.assertDecodesCleanly("hls/live.m3u8")
        let restreamed = try await r.frameHashes("hls/live.m3u8")
        let published = try XCTUnwrap(r.published("pubS2.log"), r.text("pubS2.log"))
        // Every frame the publisher sent is in the playlist, unless the restream reported the bus dropping some.
        let gaps = try XCTUnwrap(r.number(in: "restreamS.log", /(\d+) gaps \(places/), r.text("restreamS.log"))
        if gaps == 0 {
            XCTAssertEqual(restreamed.count, published.frames, "no loss was reported, so none may be missing: \(r.text("restreamS.log"))")
        } else {
            XCTAssertLessThan(restreamed.count, published.frames, "a loss was reported, so frames must be missing: \(r.text("restreamS.log"))")
        }
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
        // The publisher captured from before the tone started until after it ended: all of its 4 s are in the
        // recording, or the publisher reported an overrun.
        let xruns = try XCTUnwrap(r.number(in: "pubS.log", /; (\d+) xruns/), r.text("pubS.log"))
        XCTAssertGreaterThan(tone.seconds, xruns == 0 ? 3.9 : 0.5, "the tone is in the recording: \(r.text("pubS.log"))")
        XCTAssertEqual(tone.frequency, 997, accuracy: 2)
        let want = Signal(reference.left(), rate: 48_000).active().rmsDecibels
        XCTAssertEqual(tone.rmsDecibels, want, accuracy: 0.5, "level through the card and the bus")
    }

    func testACaptureOverrunIsRecoveredAndCounted() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("pubX.log"), 0, r.text("pubX.log"))
        let log = r.text("pubX.log")
        // Stopped until the driver said it overran (its 80 ms buffer full): the source counted it, recovered and
        // went on.
        XCTAssertFalse(r.text("waits.log").contains("overrun"), r.text("waits.log"))
        let xruns = r.number(in: "pubX.log", /; (\d+) xruns/) ?? 0
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
        // The recording stopped while the stream still played (see the scenario): all of it is judged.
        let heard = zip(captured.left(), captured.right()).filter { $0.0 != 0 || $0.1 != 0 }.map(\.1)
        XCTAssertGreaterThan(heard.count, 48_000, "at least a second of the stream was heard: \(r.text("play.log"))")
        let overruns = r.count("overrun!!!", in: "arecord.log")
        var breaks = 0, repeats = 0
        for (a, b) in zip(heard, heard.dropFirst()) where b &- a != 1 {
            if b &- a > 1 { breaks += 1 } else { repeats += 1 }
        }
        // Samples may be lost only where the player or the recorder said so (late periods skipped, xruns,
        // gaps on the bus, arecord's overruns); nothing silent. Samples may repeat only where the player said
        // the device ran dry without an underrun (a virtual card whose timer stalled replays a buffer).
        let reported = r.playerLosses("play.log") + overruns
        let dry = r.count("reported no underrun", in: "play.log")
        XCTAssertLessThanOrEqual(repeats, dry, "samples repeated or out of order without a report: \(r.text("play.log"))")
        XCTAssertLessThanOrEqual(breaks, reported, "samples lost without a report: \(r.text("play.log")) \(r.text("arecord.log"))")
    }

    func testPlayResamplesWhenTheDeviceRunsAtAnotherRate() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("play44.log"), 0, r.text("play44.log"))
        XCTAssertTrue(r.text("play44.log").contains("2 ch at 44100 Hz (resampled)"), r.text("play44.log"))
        let captured = try await r.samples("played44.wav")
        let tone = Signal(captured.left(), rate: 44_100).active()
        XCTAssertGreaterThan(tone.seconds, 0.5, "the tone was heard: \(r.text("play44.log"))")
        XCTAssertEqual(tone.frequency, 997, accuracy: 3)
    }

    func testAJackProgramOnTheCardClockedServerIsHeardFromTheCard() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("jcard.log"), 0, r.text("jcard.log"))
        let card = try await r.samples("jack-card.wav")
        // jack_simple_client: 240 Hz on the left, 720 Hz on the right, through snd-aloop.
        XCTAssertEqual(Signal(card.left(), rate: 48_000).active().frequency, 240, accuracy: 1, r.text("jackd-stat.txt"))
        XCTAssertEqual(Signal(card.right(), rate: 48_000).active().frequency, 720, accuracy: 2)
    }

    func testJackMidiPlaysOnTheCardClockedServer() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("jmidi-connect.log"), 0, r.text("jmidi-connect.log"))
        XCTAssertEqual(r.status("jmidi.log"), 0, r.text("jmidi.log"))
        let notes = Signal(try await r.samples("jack-midi.wav").left(), rate: 48_000)
        // Note 60 for half of each second (midisine: 523.25 Hz), silence for the other half.
        XCTAssertEqual(notes.active().frequency, 523.25, accuracy: 2, r.text("jsine.log"))
        let loud = notes.samples.filter { abs(Int($0)) > 1000 }.count
        XCTAssertGreaterThan(loud, 48_000, "the note sounds about half of the 3 s")
        XCTAssertLessThan(loud, 96_000, "and is off the other half: note-offs arrive on the card's clock too")
    }

    // MARK: the bus as a webcam (v4l2loopback)

    func testTheWebcamIsACaptureDeviceWhileFedAndAnOutputOneBefore() async throws {
        let r = try await vm()
        // exclusive_caps=1: what Chromium needs to list it as a camera.
        let idle = r.text("wcaps-idle.txt"), fed = r.text("wcaps-fed.txt")
        XCTAssertTrue(idle.contains("Driver name      : v4l2 loopback"), idle)
        XCTAssertTrue(idle.contains("Video Output") && !idle.contains("Video Capture"), idle)
        XCTAssertTrue(fed.contains("Video Capture") && !fed.contains("Video Output"), fed)
        XCTAssertTrue(fed.contains("IPN camera"), "the card label the README's modprobe line gives: \(fed)")
    }

    func testTheNextProducerGetsTheDeviceBackWhenTheWebcamEnds() async throws {
        let r = try await vm()
        let after = r.text("wcaps-after.txt")
        XCTAssertTrue(after.contains("Video Output") && !after.contains("Video Capture"), "open to a producer again: \(after)")
        // And the next producer fed it: the origin's example below runs a second webcam on the same device.
        XCTAssertTrue(r.text("webcamV.log").contains("webcam /dev/video10 (IPN camera): 320x180 yuyv422 at 10 fps"), r.text("webcamV.log"))
    }

    func testAFedLoopbackOrARealCameraIsRefusedWithTheReason() async throws {
        let r = try await vm()
        let fed = r.text("werr-fed.log"), real = r.text("werr-real.log")
        XCTAssertEqual(r.status("werr-fed.log"), 1, fed)
        XCTAssertTrue(fed.contains("/dev/video10: is already fed by another producer (open in pid "), fed)
        XCTAssertTrue(fed.contains("(mediajack)): stop it, or use another loopback device"), "names who feeds it: \(fed)")
        XCTAssertEqual(r.status("werr-real.log"), 1, real)
        XCTAssertTrue(real.contains("/dev/video0: is not a v4l2loopback device (driver \"vivid\""), real)
        XCTAssertTrue(real.contains("modprobe v4l2loopback exclusive_caps=1"), "says how to make a virtual one: \(real)")
    }

    func testAReaderBeforeAnyPublisherGetsThePlaceholderPicture() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("wplace.log"), 0, r.text("wplace.log"))
        let yuyv = r.bytes("wplace.yuv")
        let size = 320 * 180 * 2
        XCTAssertEqual(yuyv.count, 5 * size, "5 pictures of the device's format (320x180 YUYV)")
        guard yuyv.count >= size else { return }
        let luma = stride(from: 0, to: size, by: 2).map { Int(yuyv[$0]) }
        XCTAssertEqual(luma.reduce(0, +) / luma.count, 40, accuracy: 6, "the placeholder's dark grey")
        XCTAssertGreaterThan(luma.filter { $0 > 200 }.count, 100, "with its light state line (\"waiting for a publisher\")")
    }

    func testTwoUnmodifiedReadersAtOnceSeeThePublishersPicturesAdvance() async throws {
        let r = try await vm()
        XCTAssertEqual(r.text("wr-overlap.txt").split(separator: "\n").count, 2,
                       "each mmap reader was still reading when dd ended: \(r.text("wr-overlap.txt"))")
        let readers = [("wr1", "ffmpeg -f v4l2", "gray", 200), ("wr2", "dd (read) beside ffmpeg", "yuv", 15),
                       ("wr4", "GStreamer v4l2src", "gray", 100), ("wr5", "dd (read) beside GStreamer", "yuv", 15)]
        for (name, reader, ext, count) in readers {
            XCTAssertEqual(r.status(name + ".log"), 0, "\(reader): \(r.text(name + ".log"))")
            XCTAssertEqual(r.text(name + ".log"), "", "\(reader) met no error")
            let numbers = r.barcodes(name + "." + ext, width: 320, height: 180, yuyv: ext == "yuv")
            XCTAssertEqual(numbers.count, count, "\(reader): \(count) pictures")
            let read = numbers.compactMap { $0 }
            // The publisher publishes until the readers are done: a barcode in every picture but the first ones
            // (a reader may open while the webcam still waits for the first keyframe).
            XCTAssertGreaterThanOrEqual(read.count, count - 3, "\(reader): the test picture's frame number in each: \(numbers)")
            // v4l2loopback 0.12.7 hands an mmap reader that starts mid-stream buffers regardless of which it has
            // queued (v4l2loopback issues 60, 304): on a loaded machine its first pictures can repeat one or be one
            // older (GStreamer under two CPU hogs read 369, 368, 369, 370, ...). From the fourth picture on: never
            // backwards; before it, at most one frame back.
            let settled = Array(read.dropFirst(3))
            XCTAssertEqual(settled, settled.sorted(), "\(reader): never backwards: \(read)")
            for (a, b) in zip(read.prefix(4), read.prefix(4).dropFirst()) {
                XCTAssertGreaterThanOrEqual(Int(b) + 1, Int(a), "\(reader): at most one frame back as it starts: \(read)")
            }
            XCTAssertGreaterThan((read.last ?? 0), (read.first ?? 0), "\(reader): the picture advances: \(read)")
        }
        XCTAssertTrue(r.text("webcam.log").contains("wrote "), r.text("webcam.log"))
    }

    func testTheWebcamsSoundIsAMicrophoneOnTheLoopbackCard() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("wpubA.log"), 0, r.text("wpubA.log"))
        let tone = Signal(try await r.samples("wa.wav").left(), rate: 48_000).active()
        XCTAssertGreaterThan(tone.seconds, 2, "the publisher's 3 s tone was heard: \(r.text("webcam.log"))")
        XCTAssertEqual(tone.frequency, 997, accuracy: 3)
        XCTAssertTrue(r.text("webcam.log").contains("audio: played "), r.text("webcam.log"))
    }

    func testAPublisherAtAnotherSizeKeepsTheReadersFormat() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("wpub2.log"), 0, r.text("wpub2.log"))
        // The reader ran from the first publisher's end until the webcam had shown the second one; then it was
        // stopped (SIGINT: ffmpeg's status 255).
        XCTAssertTrue([0, 255].contains(r.status("wr3.log") ?? -1), "status \(String(describing: r.status("wr3.log")))")
        let errors = r.text("wr3.log").split(separator: "\n").filter { !$0.hasPrefix("Exiting normally, received signal") }
        XCTAssertEqual(errors, [], "the reader across both publishers met no error")
        let watched = r.bytes("wr3.gray"), size = 320 * 180
        XCTAssertEqual(watched.count % size, 0, "whole pictures, all in the device's one format")
        XCTAssertGreaterThanOrEqual(watched.count / size, 10, "the reader kept receiving")
        let distinct = Set(stride(from: 0, to: watched.count - size + 1, by: size).map { Array(watched[$0..<($0 + size)]) })
        XCTAssertGreaterThan(distinct.count, 10, "the second publisher's moving picture reached the reader, not only placeholders")
        XCTAssertTrue(r.text("webcam.log").contains("h264 640x360"), r.text("webcam.log"))
        XCTAssertEqual(r.status("webcam.log"), 0, r.text("webcam.log"))
    }

    /// v4l2-compliance on the fed device. v4l2loopback 0.12.7 fails the same 5 of its 45 checks whatever feeds
    /// it (ffmpeg too): they are the module's, listed in the README. Anything else is ours.
    func testV4L2ComplianceFindsNothingButTheModulesOwnFailures() async throws {
        let r = try await vm()
        let log = r.text("wcompliance.log")
        XCTAssertTrue(log.contains("Total for v4l2 loopback device /dev/video10"), log)
        let known = ["test for unlimited opens", "test VIDIOC_ENUM_FMT/FRAMESIZES/FRAMEINTERVALS", "test VIDIOC_G/S_PARM",
                     "test VIDIOC_G_FMT", "test VIDIOC_REQBUFS/CREATE_BUFS/QUERYBUF"]
        let failing = log.split(separator: "\n").filter { $0.hasSuffix(": FAIL") }.map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: ": FAIL", with: "") }
        XCTAssertEqual(Set(failing).subtracting(known), [], "failures beyond v4l2loopback's own: \(log)")
    }

    /// The product's origin: the same image from a camera viewed (through the webcam), recorded and restreamed.
    func testOneCameraIsRecordedWatchedThroughTheWebcamAndRestreamedAtOnce() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("pubV.log"), 0, r.text("pubV.log"))
        try await r.assertDecodesCleanly("v.mkv")
        let recorded = try await r.frameHashes("v.mkv")
        XCTAssertGreaterThanOrEqual(recorded.count, 40, "the recording has the camera's frames: \(r.text("recV.log"))")
        XCTAssertEqual(r.status("restreamV.log"), 0, r.text("restreamV.log"))
        try await r.assertDecodesCleanly("hlsV/live.m3u8")
        XCTAssertEqual(r.status("wrV.log"), 0, r.text("wrV.log"))
        let watched = r.bytes("wrV.gray")
        XCTAssertEqual(watched.count, 10 * 320 * 180, "the reader got 10 pictures of the camera")
        // vivid's picture moves: the pictures the reader got are not all the same.
        let size = 320 * 180
        let distinct = Set(stride(from: 0, to: watched.count - size + 1, by: size).map { Array(watched[$0..<($0 + size)]) })
        XCTAssertGreaterThan(distinct.count, 1, "the camera's moving picture, not a still placeholder")
    }

    func testJackdIPNClockedByTheCardCarriesAudioBothWaysIntact() async throws {
        let r = try await vm()
        XCTAssertEqual(r.status("cardout-play.log"), 0, r.text("cardout-play.log"))
        XCTAssertEqual(r.status("busin-play.log"), 0, r.text("busin-play.log"))
        XCTAssertTrue(r.text("jackd-stat.txt").contains("driver: alsa"), r.text("jackd-stat.txt"))
        // Every sample arrives in order, except at places the product reported: the server's xruns and late
        // client periods (jackd-ipn stat), and the ALSA programs' own under- and overruns.
        let stat = r.text("jackd-stat.txt")
        let reported = (r.number(in: "jackd-stat.txt", /xruns: (\d+) late client periods/) ?? 0)
            + (r.number(in: "jackd-stat.txt", /late client periods, (\d+) server/) ?? 0)
            + ["cardout-play.log", "cardout-rec.log", "busin-play.log", "busin-rec.log"].reduce(0) { $0 + r.count("run!!!", in: $1) }
        XCTAssertNotNil(r.number(in: "jackd-stat.txt", /xruns: (\d+) late client periods/), stat)
        // aplay → plugin → bus → jackd-ipn → hw:Loopback,0,5 → hw:Loopback,1,5 → arecord.
        try await r.assertContains("card-out.wav", "noise-out.wav", breaksAtMost: reported, context: stat)
        // aplay → hw:Loopback,1,5 → hw:Loopback,0,5 → jackd-ipn → bus → plugin → arecord.
        try await r.assertContains("bus-in.wav", "noise-in.wav", breaksAtMost: reported, context: stat)
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

/// The VM run: writes the guest script, boots the VM once, and gives the tests its files.
struct VMRun: Sendable {
    let dir: String
    /// Why the VM run did not finish, if it did not (each test still checks what its scenarios wrote).
    var failure: String? = nil

    static func start(in dir: String) async throws -> VMRun {
        var run = VMRun(dir: dir)
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
        // Each step has a limit of its own; the whole run gets room for an emulated CPU on a busy machine
        // (about 3.5 minutes on an idle 2-core one).
        let outcome = try await TestSupport.runTool("/usr/bin/env", ["IPN_VM_TIMEOUT=1500", "/bin/bash", script, dir, "sh", "scenarios.sh"])
        try outcome.standardOutput.write(toFile: dir + "/vm-output.txt", atomically: true, encoding: .utf8)
        if outcome.exitCode != 0 {
            run.failure = "the device VM failed (\(outcome.exitCode.map(String.init) ?? "signal")): \(outcome.standardError.suffix(3000)) \(outcome.standardOutput.suffix(3000))"
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

    /// A file's bytes (empty when it was not written).
    func bytes(_ name: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: dir + "/" + name) ?? Data()) }

    /// The test picture's frame number in each picture of a raw gray file, nil where it cannot be read.
    /// `yuyv`: the file holds YUYV 4:2:2 pictures (what `dd` reads from the webcam), whose luma is every other byte.
    func barcodes(_ name: String, width: Int, height: Int, yuyv: Bool = false) -> [UInt32?] {
        let raw = bytes(name), size = width * height
        let b = yuyv ? stride(from: 0, to: raw.count, by: 2).map { raw[$0] } : raw
        return stride(from: 0, to: b.count - size + 1, by: size).map { o in
            b[o..<(o + size)].withUnsafeBytes { TestPattern.read(luma: $0, stride: width, width: width, height: height)?.frame }
        }
    }

    /// The exit status a scenario recorded for `name` (its .status file).
    func status(_ name: String) -> Int32? {
        Int32(text(name + ".status").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Every frame decodes without an error. The frames keep the file's own time base on the way to the null
    /// output: with ffmpeg's default (one tick per nominal frame), two captured frames closer than a frame
    /// interval (a camera's timestamps on a stalled emulated CPU) land on one tick and are reported as "non
    /// monotonically increasing dts", an error about the machine's speed, not about the file.
    func assertDecodesCleanly(_ name: String, line: UInt = #line) async throws {
        let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-enc_time_base", "-1", "-f", "null", "-"])
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

    /// The first number `pattern` captures in a scenario's file.
    func number(in name: String, _ pattern: Regex<(Substring, Substring)>) -> Int? {
        text(name).firstMatch(of: pattern).flatMap { Int($0.1) }
    }

    /// How often `needle` occurs in a scenario's file.
    func count(_ needle: String, in name: String) -> Int { text(name).components(separatedBy: needle).count - 1 }

    /// `mediajack publish`'s closing line: frames published, and frames the driver lost (sequence gaps).
    func published(_ log: String) -> (frames: Int, lostByDriver: Int)? {
        guard let m = text(log).firstMatch(of: /published (\d+) frames .*; (\d+) lost by the driver/),
              let frames = Int(m.1), let lost = Int(m.2) else { return nil }
        return (frames, lost)
    }

    /// The places `mediajack play` reported losing sound: late periods skipped, xruns, gaps on the bus.
    func playerLosses(_ log: String) -> Int {
        guard let m = text(log).firstMatch(of: /; (\d+) skipped as late, (\d+) xruns, (\d+) gaps/) else { return 0 }
        return [m.1, m.2, m.3].compactMap { Int($0) }.reduce(0, +)
    }

    /// The accounting of a recording that was on the bus before the publisher's first frame: every frame the
    /// publisher sent is in the file, unless the recorder reported a loss (gaps on the bus, frames its buffer
    /// dropped), and then the file must be short. Nothing lost silently, nothing invented. Returns the frames.
    func assertEveryPublishedFrameIsRecorded(_ file: String, recorder log: String, published: Int, line: UInt = #line) async throws -> [String] {
        XCTAssertEqual(status(log), 0, text(log), line: line)
        let frames = try await frameHashes(file)
        let gaps = number(in: log, /; (\d+) gaps/)
        XCTAssertNotNil(gaps, "the recorder's closing line: \(text(log))", line: line)
        let dropped = number(in: log, /, (\d+) dropped/) ?? 0
        let recordedLine = number(in: log, /recorded (\d+) frames/)
        XCTAssertEqual(recordedLine, frames.count, "the recorder's count and the file's: \(text(log))", line: line)
        if gaps == 0 && dropped == 0 {
            XCTAssertEqual(frames.count, published, "no loss was reported, so every published frame is in \(file): \(text(log))", line: line)
        } else {
            XCTAssertLessThan(frames.count, published, "a loss was reported, so \(file) must be short of frames: \(text(log))", line: line)
        }
        return frames
    }

    /// A late joiner's pictures follow the first recorder's: a suffix when neither reported a loss, else in the
    /// same order with nothing added.
    func assertLateJoiner(_ late: [String], follows first: [String], logs: [String], line: UInt = #line) {
        let lossless = logs.allSatisfy { number(in: $0, /; (\d+) gaps/) == 0 && (number(in: $0, /, (\d+) dropped/) ?? 0) == 0 }
        if lossless {
            XCTAssertEqual(Array(first.suffix(late.count)), late, "the late joiner has the same pictures from where it joined", line: line)
        } else {
            var it = first.makeIterator()
            let inOrder = late.allSatisfy { picture in while let f = it.next() { if f == picture { return true } }; return false }
            XCTAssertTrue(inOrder, "the late joiner's pictures are the first recorder's, in order", line: line)
        }
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

    /// `recording` holds the samples of `played` in order, unchanged, except at no more than `breaksAtMost`
    /// places (where the product reported a loss): there, samples may be missing or silence added, and the rest
    /// must follow in order again. Nothing invented, nothing lost silently.
    func assertContains(_ recording: String, _ played: String, breaksAtMost allowed: Int, context: String = "", line: UInt = #line) async throws {
        var want = try await samples(played).samples
        let got = try await samples(recording).samples
        while want.last == 0 { want.removeLast() }  // the silence after the noise (a driver may keep the last partial period)
        want.removeFirst((want.firstIndex { $0 != 0 } ?? 0) & ~1)  // the silence before it (the recorder's start)
        let key = 64
        // Where want[i..<i+key] next occurs in got at or after `from` (stereo frames: even offsets).
        func find(_ i: Int, from: Int, within: Int = Int.max) -> Int? {
            guard i + key <= want.count else { return nil }
            var o = from & ~1
            while o + key <= min(got.count, from &+ within) {
                if got[o] == want[i] && got[o..<(o + key)].elementsEqual(want[i..<(i + key)]) { return o }
                o += 2
            }
            return nil
        }
        guard var j = find(0, from: 0) else {
            let heard = got.filter { $0 != 0 }.count
            return XCTFail("the start of \(played) is not in \(recording) (\(got.count / 2) frames recorded, \(heard / 2) of them not silent)\n\(context)", line: line)
        }
        var i = 0, breaks = 0
        while i < want.count {
            while i < want.count && j < got.count && got[j] == want[i] { i += 1; j += 1 }
            guard i < want.count else { break }
            breaks += 1
            guard breaks <= allowed else { break }
            // Resume where the played samples show up again: further on in both, in order.
            var resumed = false
            var skip = i & ~1
            while !resumed && skip + key <= want.count {
                // (Losses come in periods: looking again every 512 frames finds the next one, within 4 s.)
                if let at = find(skip, from: j & ~1, within: 4 * 48_000 * 2) { i = skip; j = at; resumed = true } else { skip += 1024 }
            }
            if !resumed { break }
        }
        XCTAssertLessThanOrEqual(breaks, allowed, "\(played) arrives in \(recording) with \(breaks > allowed ? "more than \(allowed)" : "\(breaks)") breaks, \(allowed) reported\n\(context)", line: line)
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
        run() { n=$1; shift; timeout -k 5 120 "$@" > "$n" 2>&1; echo $? > "$n.status"; }
        # start NAME CMD...: the same, in the background.
        start() { n=$1; shift; ( timeout -k 5 120 "$@" > "$n" 2>&1; echo $? > "$n.status" ) & }
        # Steps are ordered by what the product and the drivers report, never by sleeping.
        # waitfor SECONDS WHAT CMD...: until CMD succeeds (polled); past the limit, WHAT goes into waits.log (the
        # tests show it) and the scenario goes on to fail on its own checks.
        waitfor() { lim=$1; what=$2; shift 2; i=0
            until "$@" > /dev/null 2>&1; do i=$((i+1)); if [ $i -gt $((lim * 20)) ]; then echo "did not happen in $lim s: $what" >> waits.log; return 1; fi; sleep 0.05; done; }
        # node BUS TEXT: a node whose line in `ipn stat` has TEXT is on the bus.
        node() { ipn stat "$1" | grep -q -- "$2"; }
        # sent BUS TEXT N: that node has sent N messages or more.
        sent() { ipn stat "$1" | awk -v t="$2" -v n="$3" 'index($0, t) { split($9, m, "/"); if (m[1] + 0 >= n + 0) ok = 1 } END { exit !ok }'; }
        sentnow() { ipn stat "$1" | awk -v t="$2" 'index($0, t) { split($9, m, "/"); print m[1] + 0; exit }'; }
        # pcm DIR SUB STATE: the loopback card's substream is in STATE (RUNNING, XRUN), as the driver says.
        pcm() { grep -q "state: $3" "/proc/asound/Loopback/pcm$1/sub$2/status"; }
        # grown FILE FROM BYTES: FILE has grown by BYTES since it was FROM bytes long.
        grown() { [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge $(($2 + $3)) ]; }
        size() { stat -c %s "$1" 2>/dev/null || echo 0; }
        ended() { [ -s "$1.status" ]; }
        : > waits.log

        run devices.txt mediajack devices

        echo "== vivid YUYV 640x360 raw, a recorder from the start and one joining late"
        ipn create /run/camA --policy media --mtu 1000000 --queue 32 --persistent
        start recA1.log mediajack record /run/camA a1.mkv --keep-raw --lossless-buffer 30s
        waitfor 60 "the first recorder joined /run/camA" node /run/camA "record a1.mkv"
        start pubA.log mediajack publish v4l2:/dev/video0 /run/camA --pixel-format yuyv422 --size 640x360 --fps 10 --frames 60
        # The late joiner joins while the publisher is held still mid-stream (the camera goes on: the driver
        # drops what nobody takes, and the publisher counts it).
        waitfor 60 "the camera's publisher sent 20 frames on /run/camA" sent /run/camA publish 20
        pkill -STOP -f '^mediajack publish v4l2:/dev/video0 /run/camA'
        start recA2.log mediajack record /run/camA a2.mkv --keep-raw --lossless-buffer 30s
        waitfor 60 "the late recorder joined /run/camA" node /run/camA "record a2.mkv"
        pkill -CONT -f '^mediajack publish v4l2:/dev/video0 /run/camA'
        wait

        echo "== vivid NV12 1280x720 encoded once to H.264, a late joiner served from the GOP cache"
        ipn create /run/camB --policy media --mtu 4000000 --queue 32 --persistent
        start recB1.log mediajack record /run/camB b1.mkv --lossless-buffer 30s
        waitfor 60 "the first recorder joined /run/camB" node /run/camB "record b1.mkv"
        start pubB.log mediajack publish v4l2:/dev/video0 /run/camB --pixel-format nv12 --size 1280x720 --fps 5 --encode h264 --preset ultrafast --gop 10 --frames 40
        waitfor 60 "the encoding publisher sent 15 messages on /run/camB" sent /run/camB publish 15
        pkill -STOP -f '^mediajack publish v4l2:/dev/video0 /run/camB'
        start recB2.log mediajack record /run/camB b2.mkv --lossless-buffer 30s
        waitfor 60 "the late recorder joined /run/camB" node /run/camB "record b2.mkv"
        pkill -CONT -f '^mediajack publish v4l2:/dev/video0 /run/camB'
        wait

        echo "== a real camera served to a browser client and restreamed to HLS: raw YUYV encoded to H.264"
        ip link set lo up
        ipn create /run/camS --policy media --mtu 1000000 --queue 32 --persistent
        mkdir -p hls
        start serveS.log mediajack serve /run/camS --listen 127.0.0.1:8090
        start restreamS.log mediajack restream /run/camS hls/live.m3u8 --segment 2 --until-end
        waitfor 60 "serve joined /run/camS" node /run/camS "serve"
        waitfor 60 "restream joined /run/camS" node /run/camS "restream"
        start pubS2.log mediajack publish v4l2:/dev/video0 /run/camS --pixel-format yuyv422 --size 320x180 --fps 15 --frames 90
        # A client as a page is one: once status.json says the stream can be joined; it reads until serve ends.
        waitfor 60 "serve's status.json said ready" sh -c "curl -s http://127.0.0.1:8090/status.json | grep -q '\\"ready\\":true'"
        start curlS.log curl -s -N http://127.0.0.1:8090/stream.mp4 -o served.mp4
        waitfor 120 "the served camera's publisher ended" ended pubS2.log
        waitfor 120 "the HLS restream finished" ended restreamS.log
        pkill -INT -f '^mediajack serve /run/camS'
        wait

        echo "== negotiation and errors"
        run auto.log mediajack publish v4l2:/dev/video0 /run/camC --frames 3
        run unsupported.log mediajack publish v4l2:/dev/video0 /run/camC --pixel-format MJPG
        run badsize.log mediajack publish v4l2:/dev/video0 /run/camC --pixel-format nv12 --size 1000x1000 --fps 30
        ipn create /run/camD --policy media --mtu 1000000 --persistent
        start holder.log mediajack publish v4l2:/dev/video0 /run/camD
        waitfor 60 "the holder streams from the camera" sent /run/camD publish 2
        pgrep -f '^mediajack publish v4l2:/dev/video0 /run/camD' | head -1 > busy-holder.pid
        run busy.log mediajack publish v4l2:/dev/video0 /run/camE --frames 3
        pkill -INT -f '^mediajack publish v4l2:/dev/video0 /run/camD'
        wait

        echo "== sound: a tone into the loopback, published from its capture side"
        ipn create /run/snd --policy media --mtu 1000000 --persistent
        start recS.log mediajack record /run/snd s1.mkv
        waitfor 60 "the recorder joined /run/snd" node /run/snd "record s1.mkv"
        # A generous buffer (320 ms): the emulated machine's timer may stall (see the player below).
        start pubS.log mediajack publish alsa:hw:Loopback,1,0 /run/snd --periods 16
        waitfor 60 "the publisher's capture runs" pcm 1c 0 RUNNING
        run tone.log aplay -D hw:Loopback,0,0 tone.wav
        n=$(sentnow /run/snd publish); waitfor 60 "the publisher captured on after the tone" sent /run/snd publish $((n + 25))
        pkill -INT -f '^mediajack publish alsa:hw:Loopback,1,0'
        wait

        echo "== sound: an overrun (the source stopped until the driver overran) is recovered"
        start pubX.log mediajack publish alsa:hw:Loopback,1,1 /run/sndx --frames 150 --period 480 --periods 8
        waitfor 60 "the publisher's capture runs" pcm 1c 1 RUNNING
        pkill -STOP -f '^mediajack publish alsa:hw:Loopback,1,1'
        waitfor 60 "the driver reported the overrun" pcm 1c 1 XRUN
        pkill -CONT -f '^mediajack publish alsa:hw:Loopback,1,1'
        wait

        echo "== sound: play from the bus into the loopback, captured with arecord"
        ipn create /run/snd2 --policy media --mtu 1000000 --persistent
        # A generous device buffer (500 ms): an emulated CPU's timer can stall longer than a short one, and
        # snd-aloop then moves its pointer a whole lap without an xrun (seen with 100 ms: a buffer played twice).
        start play.log mediajack play /run/snd2 alsa:hw:Loopback,0,2 --latency 500 --until-end
        waitfor 60 "play joined /run/snd2" node /run/snd2 "play"
        start arecord.log arecord -D hw:Loopback,1,2 -f S16_LE -r 48000 -c 2 played.wav
        waitfor 60 "arecord's capture runs" pcm 1c 2 RUNNING
        start pubT.log mediajack publish test:audio /run/snd2 --frames 300
        # The recording ends while the stream still plays, so what is judged is the flow, never how a device
        # stops (snd-aloop leaves part of its last timer tick of the capture ring unwritten when the playback
        # stops: arecord then reads a tick of its own buffer's previous lap).
        waitfor 60 "test:audio's publisher sent 250 periods" sent /run/snd2 publish 250
        pkill -INT -f '^arecord -D hw:Loopback,1,2'
        wait

        echo "== sound: play resampled to 44.1 kHz"
        ipn create /run/snd3 --policy media --mtu 1000000 --persistent
        start play44.log mediajack play /run/snd3 alsa:hw:Loopback,0,3 --rate 44100 --latency 500 --until-end
        waitfor 60 "play joined /run/snd3" node /run/snd3 "play"
        start arecord44.log arecord -D hw:Loopback,1,3 -f S16_LE -r 44100 -c 2 played44.wav
        waitfor 60 "arecord's capture runs" pcm 1c 3 RUNNING
        run pubT44.log mediajack publish test:audio /run/snd3 --frames 150
        waitfor 60 "play ended with the stream" ended play44.log
        s=$(size played44.wav); waitfor 60 "arecord recorded on after the player ended" grown played44.wav "$s" 88200
        pkill -INT -f '^arecord -D hw:Loopback,1,3'
        wait

        echo "== sound: a busy device"
        start arecordbusy.log arecord -q -D hw:Loopback,1,4 -f S16_LE -r 48000 -c 2 /dev/null
        waitfor 60 "arecord holds hw:Loopback,1,4" pcm 1c 4 RUNNING
        run alsabusy.log mediajack publish alsa:hw:Loopback,1,4 /run/snd4 --frames 5
        pkill -f '^arecord -q -D hw:Loopback,1,4'   # held for as long as the check took, however slow
        wait

        echo "== jackd-ipn clocked by the card: the bus to the card and the card to the bus"
        export HOME="$PWD"
        start jackd.log jackd-ipn --bus /run/jbus --driver alsa:hw:Loopback,0,5 --period 1024 --periods 12
        # Serving means mixing: the server's node is on the bus before its clock runs (the plugin gives up on
        # a server that sends no mix for 2 s).
        waitfor 60 "jackd-ipn mixes on /run/jbus" sh -c "jackd-ipn stat /run/jbus | grep -Eq 'mixes: [1-9]'"
        # aplay -> plugin -> bus -> jackd-ipn -> hw:Loopback,0,5 -> hw:Loopback,1,5 -> arecord
        start cardout-rec.log arecord -D hw:Loopback,1,5 -f S16_LE -r 48000 -c 2 card-out.wav
        waitfor 60 "arecord's capture of the card runs" pcm 1c 5 RUNNING
        run cardout-play.log aplay -D ipn:BUS=/run/jbus,LOOKAHEAD=8 noise-out.wav
        s=$(size card-out.wav); waitfor 60 "the card's recording went on after aplay ended" grown card-out.wav "$s" 192000
        pkill -INT -f '^arecord -D hw:Loopback,1,5'
        waitfor 60 "arecord of the card ended" ended cardout-rec.log
        # aplay -> hw:Loopback,1,5 -> hw:Loopback,0,5 -> jackd-ipn -> bus -> plugin -> arecord
        start busin-rec.log arecord -D ipn:BUS=/run/jbus -B 1000000 -f S16_LE -r 48000 -c 2 bus-in.wav
        waitfor 60 "arecord on the bus records" grown bus-in.wav 0 48044
        run busin-play.log aplay -D hw:Loopback,1,5 noise-in.wav
        s=$(size bus-in.wav); waitfor 60 "the bus's recording went on after aplay ended" grown bus-in.wav "$s" 192000
        pkill -INT -f '^arecord -D ipn:BUS=/run/jbus'
        waitfor 60 "arecord on the bus ended" ended busin-rec.log
        # A JACK program on the card-clocked server: jack_simple_client's tones played by the card, recorded from it.
        export XDG_RUNTIME_DIR=/run/tmp JACK_DEFAULT_SERVER=/run/jbus
        start jsimple.log ipn-jack jack_simple_client
        waitfor 60 "jack_simple_client plays to the card" sh -c "ipn-jack jack_lsp -c | grep -qx '   jack_simple_client:output2'"
        run jcard.log arecord -D hw:Loopback,1,5 -f S16_LE -r 48000 -c 2 -d 2 jack-card.wav
        pkill -INT -f 'jack_simple_client'
        waitfor 60 "jack_simple_client ended" ended jsimple.log
        # MIDI on the card's clock: jack_midiseq's note 60 played by jack_midisine, heard from the card.
        start jseq.log ipn-jack jack_midiseq seq 48000 0 60 24000
        start jsine.log ipn-jack jack_midisine
        waitfor 60 "the MIDI clients' ports are up" sh -c "ipn-jack jack_lsp | grep -qx seq:out && ipn-jack jack_lsp | grep -qx midisine:audio_out"
        run jmidi-connect.log sh -c "ipn-jack jack_connect seq:out midisine:midi_in && ipn-jack jack_connect midisine:audio_out system:playback_1"
        run jmidi.log arecord -D hw:Loopback,1,5 -f S16_LE -r 48000 -c 2 -d 3 jack-midi.wav
        pkill -INT -f 'jack_midiseq seq'; pkill -INT -f 'jack_midisine'
        waitfor 60 "the MIDI clients ended" sh -c "[ -s jseq.log.status ] && [ -s jsine.log.status ]"
        unset XDG_RUNTIME_DIR JACK_DEFAULT_SERVER
        run jackd-stat.txt jackd-ipn stat /run/jbus
        pkill -INT jackd-ipn
        wait

        echo "== the bus as a webcam (v4l2loopback /dev/video10): before a publisher, two readers at once, another size"
        v4l2-ctl -d /dev/video10 -D > wcaps-idle.txt 2>&1
        ipn create /run/camW --policy media --mtu 4000000 --persistent
        start webcam.log mediajack webcam /run/camW /dev/video10 --size 320x180 --fps 10 --audio alsa:hw:Loopback,0,6
        waitfor 60 "the webcam feeds /dev/video10" grep -q "webcam /dev/video10" webcam.log
        v4l2-ctl -d /dev/video10 -D > wcaps-fed.txt 2>&1
        # Devices that cannot take this producer: one already fed, a real camera.
        run werr-fed.log mediajack webcam /run/camW /dev/video10 --size 320x180 --fps 10
        run werr-real.log mediajack webcam /run/camW /dev/video0 --size 320x180 --fps 10
        # A reader before any publisher: the placeholder picture, at the device's rate.
        run wplace.log v4l2-ctl -d /dev/video10 --stream-mmap --stream-count=5 --stream-to=wplace.yuv
        start wpub1.log mediajack publish test:video /run/camW --encode h264 --preset ultrafast --size 320x180 --fps 10
        waitfor 60 "the webcam shows the publisher's picture" grep -q "playing" webcam.log
        # Two readers at once, one coming and going while the other reads. v4l2loopback 0.12.7 has one set of
        # buffers for all readers, and an mmap reader's VIDIOC_REQBUFS (as it starts and as it stops) unmarks them:
        # another mmap reader with a picture waiting at that moment fails (EINVAL, v4l2loopback issue 459; the
        # webcam re-marks them before each picture, which narrows that window but cannot close it). dd reads with
        # read() and never calls it, so each mmap reader below reads on, whatever the timing.
        start wr1.log ffmpeg -v error -f v4l2 -i /dev/video10 -frames:v 200 -f rawvideo -pix_fmt gray wr1.gray
        waitfor 60 "ffmpeg reads the webcam" grown wr1.gray 0 57600
        run wr2.log dd if=/dev/video10 of=wr2.yuv bs=115200 count=15 status=none
        ended wr1.log || echo "ffmpeg was reading when dd ended" > wr-overlap.txt
        waitfor 120 "ffmpeg read 200 pictures from the webcam" ended wr1.log
        start wr4.log gst-launch-1.0 -q v4l2src device=/dev/video10 num-buffers=100 ! videoconvert ! video/x-raw,format=GRAY8 ! filesink location=wr4.gray
        waitfor 60 "GStreamer reads the webcam" grown wr4.gray 0 57600
        run wr5.log dd if=/dev/video10 of=wr5.yuv bs=115200 count=15 status=none
        ended wr4.log || echo "GStreamer was reading when dd ended" >> wr-overlap.txt
        waitfor 120 "GStreamer read 100 pictures from the webcam" ended wr4.log
        # --audio: the bus's sound into snd-aloop's playback side, heard on its capture side (a microphone).
        start wa-rec.log arecord -D hw:Loopback,1,6 -f S16_LE -r 48000 -c 2 wa.wav
        waitfor 60 "arecord of the webcam's sound runs" pcm 1c 6 RUNNING
        run wpubA.log mediajack publish test:audio /run/camW --frames 150
        s=$(size wa.wav); waitfor 60 "arecord recorded on after the sound ended" grown wa.wav "$s" 192000
        pkill -INT -f '^arecord -D hw:Loopback,1,6'
        # The first publisher published while both read; it ends now (SIGINT: a clean end of stream).
        pkill -INT -f '^mediajack publish test:video /run/camW'
        waitfor 120 "the first publisher ended" ended wpub1.log
        run wcompliance.log v4l2-compliance -d /dev/video10
        # A reader across the end of one publisher and a second one at another size: it keeps its format.
        start wr3.log ffmpeg -v error -f v4l2 -i /dev/video10 -frames:v 1100 -f rawvideo -pix_fmt gray wr3.gray
        run wpub2.log mediajack publish test:video /run/camW --encode h264 --preset ultrafast --size 640x360 --fps 10 --frames 30
        waitfor 60 "the webcam showed the second publisher" grep -q "h264 640x360" webcam.log
        pkill -INT -f '^ffmpeg -v error -f v4l2 -i /dev/video10 -frames:v 1100'
        waitfor 60 "the reader across the two publishers ended" ended wr3.log
        pkill -INT -f '^mediajack webcam /run/camW'
        wait
        # The producer gone, the device takes the next one (v4l2loopback issue 442: not after a write without STREAMON).
        v4l2-ctl -d /dev/video10 -D > wcaps-after.txt 2>&1

        echo "== the origin's example: one camera published once, recorded, watched through the webcam and restreamed at once"
        ipn create /run/camV --policy media --mtu 1000000 --queue 32 --persistent
        mkdir -p hlsV
        start recV.log mediajack record /run/camV v.mkv --keep-raw --lossless-buffer 30s
        start webcamV.log mediajack webcam /run/camV /dev/video10 --size 320x180 --fps 10
        start restreamV.log mediajack restream /run/camV hlsV/live.m3u8 --segment 2 --until-end
        waitfor 60 "the recorder joined /run/camV" node /run/camV "record v.mkv"
        waitfor 60 "the webcam joined /run/camV" node /run/camV "mediajack webcam"
        waitfor 60 "restream joined /run/camV" node /run/camV "restream"
        waitfor 60 "the webcam feeds /dev/video10" grep -q "webcam /dev/video10" webcamV.log
        start pubV.log mediajack publish v4l2:/dev/video0 /run/camV --pixel-format yuyv422 --size 320x180 --fps 10 --frames 50
        waitfor 60 "the webcam shows the camera" grep -q "playing" webcamV.log
        run wrV.log ffmpeg -v error -f v4l2 -i /dev/video10 -frames:v 10 -f rawvideo -pix_fmt gray wrV.gray
        waitfor 120 "the camera's publisher ended" ended pubV.log
        waitfor 120 "the restream finished" ended restreamV.log
        waitfor 120 "the recorder finished" ended recV.log
        pkill -INT -f '^mediajack webcam /run/camV'
        wait

        echo "== vivid disconnects mid-stream (last: the device is gone afterwards)"
        ipn create /run/camG --policy media --mtu 1000000 --queue 32 --persistent
        start recGone.log mediajack record /run/camG gone.mkv --keep-raw --lossless-buffer 30s
        waitfor 60 "the recorder joined /run/camG" node /run/camG "record gone.mkv"
        start pubGone.log mediajack publish v4l2:/dev/video0 /run/camG --pixel-format yuyv422 --size 320x180 --fps 10
        waitfor 60 "the publisher sent 12 frames on /run/camG" sent /run/camG publish 12
        v4l2-ctl -d /dev/video0 --set-ctrl disconnect=1 > disconnect.log 2>&1
        wait
        echo "== done"
        """
    }
}
