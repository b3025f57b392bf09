import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct WebcamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webcam",
        abstract: "Make a bus's video a webcam any V4L2 program opens (through a v4l2loopback device).",
        discussion: """
            Feeds a v4l2loopback device (the virtual-camera module OBS uses) with the bus's video, so any \
            number of unmodified camera programs (ffplay -f v4l2, GStreamer's v4l2src, OBS, a browser's \
            getUserMedia, a video-call app) watch it at once. The device keeps one format for its whole life \
            (--size, --fps, --pixel-format; by default the size and rate of a stream on the bus within 2 s of \
            the start, else 1280x720 at 30 fps); whatever is on the bus (H.264, MJPEG, raw, any size) is decoded and scaled to it. Pictures go \
            out at the device's rate: the newest one, repeated when the bus is slower, skipped when faster. \
            Before a publisher, and after one leaves, readers get a placeholder picture saying so; a publisher \
            that comes back, at any size, continues the picture.

            Set-up, once (Debian):
              sudo apt install v4l2loopback-dkms v4l2loopback-utils
              sudo modprobe v4l2loopback video_nr=10 exclusive_caps=1 card_label="IPN camera"
            (exclusive_caps=1: the device says "capture" only, which Chromium needs to list it.)

            Examples:
              mediajack webcam /tmp/cam /dev/video10
              mediajack webcam /tmp/cam /dev/video10 --size 1280x720 --fps 30 --audio alsa:hw:Loopback,0,0
              ffplay -f v4l2 /dev/video10        # any number of readers, at once
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "The v4l2loopback device, e.g. /dev/video10.") var device: String
    @Option(help: "Picture size WxH (default: a stream's on the bus within 2 s, else 1280x720).") var size: String?
    @Option(help: "Frames per second (default: a stream's on the bus within 2 s, else 30).") var fps: Int?
    @Option(name: .customLong("pixel-format"), help: "yuyv422 (default) or yuv420p.") var pixelFormat = "yuyv422"
    @Option(help: "Video stream id (default: the first video stream).") var stream: UInt32?
    @Option(help: "Also play the bus's first audio stream on alsa:DEVICE (e.g. snd-aloop's playback side: its capture side is then a microphone).")
    var audio: String?
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of waiting for one to appear.")
    var noWait = false

    func validate() throws {
        if let size {
            let p = size.split(separator: "x").compactMap { Int($0) }
            guard p.count == 2, (32...7680).contains(p[0]), (32...4320).contains(p[1]) else { throw ValidationError("--size must be WxH, 32x32...7680x4320, e.g. 1280x720") }
        }
        if let fps { guard (1...120).contains(fps) else { throw ValidationError("--fps must be 1...120") } }
        guard LoopbackOutput.PixelFormat(rawValue: pixelFormat) != nil else { throw ValidationError("--pixel-format must be yuyv422 or yuv420p") }
        if let audio { guard audio.hasPrefix("alsa:"), audio.count > 5 else { throw ValidationError("--audio must be alsa:NAME, e.g. alsa:hw:Loopback,0,0") } }
    }

    func run() throws {
        installStopHandlers()
        PolicyRegistry.register(MediaPolicy.self)
        let say: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("mediajack: \($0)\n".utf8)) }
        var s = Webcam.Settings()
        s.device = device
        if let size { let p = size.split(separator: "x").compactMap { Int($0) }; s.width = p[0]; s.height = p[1] }
        s.fps = fps
        s.pixelFormat = LoopbackOutput.PixelFormat(rawValue: pixelFormat)!
        s.stream = stream
        let path = bus
        let waiting: (@Sendable () -> Void)? = noWait ? nil : { @Sendable in say("waiting for a bus at \(path) (--no-wait to fail instead)") }
        var line = ProgressLine()
        let deadline = duration.map { Date().addingTimeInterval($0) }
        // The sound joins the bus once the device is open and the bus is there (as `view --audio` does).
        var sound: BackgroundAudio?
        do {
            let p = try Webcam.run(bus: bus, s, report: say, whenWaitingForBus: waiting,
                                   shouldStop: { stopRequested || deadline.map { Date() >= $0 } ?? false }) { p in
                if let audio, sound == nil, p.state != .waitingForBus {
                    sound = BackgroundAudio(bus: bus, device: String(audio.dropFirst(5)), say: say)
                }
                line.show("\(p.out) pictures out  \(p.repeated) repeated  \(p.skipped) skipped  \(p.late) late  \(p.readers) reader(s)  \(p.state.rawValue)")
            }
            line.end()
            sound?.stop()
            print("wrote \(p.out) pictures to \(device): \(p.repeated) repeated, \(p.skipped) skipped, \(p.placeholders) placeholders, \(p.late) late ticks")
        } catch {
            line.end()
            sound?.stop()
            throw fail(error)
        }
    }
}

