import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a source onto a media bus (creating the bus if needed).",
        discussion: """
            Sources:
              test:video        a moving picture with the frame number and capture time as a block barcode,
                                encoded once (--encode h264|mjpeg) or raw (--encode none, --pixel-format).
              test:audio        48 kHz stereo s16, 20 ms periods: a 997 Hz tone left, the sample counter right.
              file:PATH         any file libavformat reads, packets passed through untouched, paced in real
                                time (--loop repeats it).
              v4l2:/dev/videoN  a camera. Without --pixel-format/--size/--fps it takes the best the camera
                                offers (MJPEG/H.264 first, else the largest raw size at 30 fps) and says what it
                                chose; MJPEG and H.264 pass through, raw pictures go raw or --encode h264 once.
                                `mediajack devices` lists what each camera can do.
              alsa:DEVICE       a sound card's capture side: hw:1,0, plughw:1,0, default, any ALSA PCM name
                                (--rate, --channels, --sample-format, --period, --periods).

            Examples:
              mediajack publish v4l2:/dev/video0 /tmp/cam
              mediajack publish v4l2:/dev/video0 /tmp/cam --pixel-format nv12 --size 1280x720 --fps 10 --encode h264
              mediajack publish alsa:hw:1,0 /tmp/cam --rate 48000 --channels 2
            """)

    @Argument(help: "Source: test:video, test:audio, file:PATH, v4l2:/dev/videoN or alsa:DEVICE.") var source: String
    @Argument(help: "Path of the bus.") var bus: String
    @Option(help: "h264, mjpeg or none (default: h264 for test:video, none for cameras).") var encode: String?
    @Option(help: "Picture size WxH (test:video default 640x360; cameras: the best they offer).") var size: String?
    @Option(help: "Frames per second (test:video default 25; cameras: 30 or the closest they offer).") var fps: Double?
    @Option(help: "Keyframe interval in frames (when encoding).") var gop = 50
    @Option(help: "Bitrate in bits per second (h264).") var bitrate = 1_500_000
    @Option(help: "x264 preset (ultrafast ... veryslow): speed against size.") var preset = "veryfast"
    @Option(name: .customLong("pixel-format"),
            help: "test:video raw: yuv420p or yuyv422. Cameras: a fourcc or libav name (YUYV, NV12, MJPG, H264, yuyv422, nv12...).")
    var pixelFormat: String?
    @Option(help: "Camera mmap buffers.") var buffers = 4
    @Option(help: "alsa: sample rate in Hz.") var rate = 48_000
    @Option(help: "alsa: channels.") var channels = 2
    @Option(name: .customLong("sample-format"), help: "alsa: s16, s32 or flt.") var sampleFormat = "s16"
    @Option(help: "alsa: frames per period (each period is one frame on the bus).") var period = 960
    @Option(help: "alsa: periods in the capture buffer.") var periods = 4
    @Option(help: "Stop after this many frames (or audio periods).") var frames: Int?
    @Flag(help: "file: sources start again at their end.") var loop = false

    func validate() throws {
        if let encode { guard ["h264", "mjpeg", "none"].contains(encode) else { throw ValidationError("--encode must be h264, mjpeg or none") } }
        if let size {
            let parts = size.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] > 0, parts[1] > 0 else { throw ValidationError("--size must be WIDTHxHEIGHT, e.g. 1280x720") }
            if source == "test:video", parts[0] < 192 || parts[1] < 64 || parts[0] % 2 != 0 || parts[1] % 2 != 0 {
                throw ValidationError("test:video --size must be even and at least 192x64 (the barcode needs 48 blocks of 4 pixels)")
            }
        }
        if let fps { guard fps > 0, fps <= 240 else { throw ValidationError("--fps must be in (0, 240]") } }
        if source == "test:video", let fps, fps != fps.rounded() { throw ValidationError("test:video --fps must be a whole number") }
        if source == "test:video", let pixelFormat, !["yuv420p", "yuyv422"].contains(pixelFormat) {
            throw ValidationError("test:video --pixel-format must be yuv420p or yuyv422")
        }
        guard gop >= 1 else { throw ValidationError("--gop must be at least 1") }
        guard (2...32).contains(buffers) else { throw ValidationError("--buffers must be 2...32") }
        guard AlsaPCM.SampleFormat(rawValue: sampleFormat) != nil else { throw ValidationError("--sample-format must be s16, s32 or flt") }
        guard (1000...768_000).contains(rate), (1...32).contains(channels), period >= 16, periods >= 2 else {
            throw ValidationError("--rate 1000...768000, --channels 1...32, --period ≥ 16 frames, --periods ≥ 2")
        }
        let presets = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
        guard presets.contains(preset) else { throw ValidationError("--preset must be one of \(presets.joined(separator: ", "))") }
    }

    var sizeParts: (Int, Int)? {
        guard let size else { return nil }
        let p = size.split(separator: "x").compactMap { Int($0) }
        return (p[0], p[1])
    }

    func run() throws {
        installStopHandlers()
        let stop = { stopRequested }
        do {
            var line = ProgressLine()
            switch source {
            case "test:video":
                var s = TestSource.VideoSettings()
                if let (w, h) = sizeParts { s.width = w; s.height = h }
                s.fps = Int(fps ?? 25); s.gop = gop; s.bitrate = bitrate; s.preset = preset
                s.pixelFormat = pixelFormat ?? "yuv420p"
                let e = encode ?? "h264"
                s.encode = e == "none" ? nil : VideoEncoder.Codec(rawValue: e)
                // Room for the largest raw picture (YUYV: 2 bytes a pixel) plus the frame header.
                let publisher = try MediaPublisher(bus: bus, description: "mediajack publish \(source)",
                                                   creating: mediaBusOptions(mtu: max(1 << 20, s.width * s.height * 2 + 4096)))
                let p = try TestSource.runVideo(s, on: publisher, frameLimit: frames, shouldStop: stop) { p in
                    line.show(String(format: "%.1f s  %d frames  %.1f MB", p.seconds, p.frames, Double(p.bytes) / 1e6))
                }
                line.end()
                print("published \(p.frames) frames (\(p.bytes) bytes) in \(String(format: "%.1f", p.seconds)) s")
            case "test:audio":
                let publisher = try MediaPublisher(bus: bus, description: "mediajack publish \(source)", creating: mediaBusOptions(mtu: 1 << 20))
                let n = try TestSource.runAudio(on: publisher, periodLimit: frames, shouldStop: stop)
                print("published \(n) audio periods")
            case let s where s.hasPrefix("file:"):
                // The file is opened first: one that is not media leaves no bus behind.
                let file = try FileSource(path: String(s.dropFirst(5)))
                let publisher = try MediaPublisher(bus: bus, description: "mediajack publish \(source)", creating: mediaBusOptions(mtu: 16 << 20))
                let n = try file.run(on: publisher, loop: loop, shouldStop: stop)
                print("published \(n) packets from \(file.path)")
            case let s where s.hasPrefix("v4l2:"):
                try publishCamera(String(s.dropFirst(5)), line: &line, stop: stop)
            case let s where s.hasPrefix("alsa:"):
                try publishSound(String(s.dropFirst(5)), line: &line, stop: stop)
            default:
                throw MediaError.unknownSource(source)
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }

    func publishCamera(_ path: String, line: inout ProgressLine, stop: () -> Bool) throws {
        var s = V4L2Source.Settings()
        s.pixelFormat = pixelFormat
        if let (w, h) = sizeParts { s.width = w; s.height = h }
        s.fps = fps
        s.buffers = buffers
        s.encode = (encode ?? "none") == "none" ? nil : VideoEncoder.Codec(rawValue: encode!)
        s.gop = gop; s.bitrate = bitrate; s.preset = preset
        let opened = try V4L2Source.open(device: path, s)
        FileHandle.standardError.write(Data((opened.summary + "\n").utf8))
        let publisher = try MediaPublisher(bus: bus, description: "mediajack publish v4l2:\(path)",
                                           creating: mediaBusOptions(mtu: max(1 << 20, opened.maxFrameBytes + 4096)))
        var last = V4L2Source.Progress()
        do {
            last = try V4L2Source.run(opened, on: publisher, frameLimit: frames, shouldStop: stop) { p in
                last = p
                line.show(String(format: "%.1f s  %d frames  %.1f MB  %d lost", p.seconds, p.frames, Double(p.bytes) / 1e6, p.lost))
            }
        } catch {
            line.end()
            if last.frames > 0 {
                FileHandle.standardError.write(Data("published \(last.frames) frames before the error (\(last.lost) lost by the driver)\n".utf8))
            }
            throw error
        }
        line.end()
        print("published \(last.frames) frames (\(last.bytes) bytes) in \(String(format: "%.1f", last.seconds)) s; \(last.lost) lost by the driver")
    }

    func publishSound(_ name: String, line: inout ProgressLine, stop: () -> Bool) throws {
        var q = AlsaPCM.Request()
        q.rate = rate; q.channels = channels; q.format = AlsaPCM.SampleFormat(rawValue: sampleFormat)!
        q.period = period; q.periods = periods
        let publisher = try MediaPublisher(bus: bus, description: "mediajack publish alsa:\(name)", creating: mediaBusOptions(mtu: 1 << 20))
        var last = AlsaSource.Progress()
        let report = { (s: String) in FileHandle.standardError.write(Data((s + "\n").utf8)) }
        do {
            last = try AlsaSource.run(device: name, q, on: publisher, periodLimit: frames, report: report, shouldStop: stop) { p in
                last = p
                line.show(String(format: "%.1f s  %d periods  %d xruns", p.seconds, p.periods, p.xruns))
            }
        } catch {
            line.end()
            if last.periods > 0 { report("published \(last.periods) periods before the error (\(last.xruns) xruns)") }
            throw error
        }
        line.end()
        print("published \(last.periods) periods (\(last.frames) frames) in \(String(format: "%.1f", last.seconds)) s; \(last.xruns) xruns, \(last.reanchors) clock re-anchors")
    }
}
