import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish a source onto a media bus (creating the bus if needed).",
        discussion: """
            Sources: test:video (a moving picture with the frame number and capture time as a block barcode), \
            test:audio (48 kHz stereo, 20 ms periods: a 997 Hz tone on the left, the sample counter on the right), file:PATH (any file libavformat reads, its \
            packets passed through untouched and paced in real time; --loop repeats it). Test video is encoded \
            once (--encode h264 or mjpeg) or published raw (--encode none, I420).
            """)

    @Argument(help: "Source: test:video, test:audio or file:PATH.") var source: String
    @Argument(help: "Path of the bus.") var bus: String
    @Option(help: "h264, mjpeg or none.") var encode = "h264"
    @Option(help: "Picture size WxH.") var size = "640x360"
    @Option(help: "Frames per second.") var fps = 25
    @Option(help: "Keyframe interval in frames.") var gop = 50
    @Option(help: "Bitrate in bits per second (h264).") var bitrate = 1_500_000
    @Option(help: "x264 preset (ultrafast ... veryslow): speed against size.") var preset = "veryfast"
    @Option(name: .customLong("pixel-format"), help: "Raw pictures (--encode none): yuv420p or yuyv422.") var pixelFormat = "yuv420p"
    @Option(help: "Stop after this many frames (or audio periods).") var frames: Int?
    @Flag(help: "file: sources start again at their end.") var loop = false

    func validate() throws {
        guard ["h264", "mjpeg", "none"].contains(encode) else { throw ValidationError("--encode must be h264, mjpeg or none") }
        let parts = size.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 192, parts[1] >= 64, parts[0] % 2 == 0, parts[1] % 2 == 0 else {
            throw ValidationError("--size must be WIDTHxHEIGHT, even, at least 192x64 (the barcode needs 48 blocks of 4 pixels)")
        }
        guard (1...240).contains(fps) else { throw ValidationError("--fps must be 1...240") }
        guard ["yuv420p", "yuyv422"].contains(pixelFormat) else { throw ValidationError("--pixel-format must be yuv420p or yuyv422") }
        guard gop >= 1 else { throw ValidationError("--gop must be at least 1") }
        let presets = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
        guard presets.contains(preset) else { throw ValidationError("--preset must be one of \(presets.joined(separator: ", "))") }
    }

    func run() throws {
        installStopHandlers()
        let parts = size.split(separator: "x").compactMap { Int($0) }
        do {
            // Room for the largest raw picture (YUYV: 2 bytes a pixel) plus the frame header.
            let holder = try ensureMediaBus(bus, mtu: max(1 << 20, parts[0] * parts[1] * 2 + 4096))
            defer { withExtendedLifetime(holder) {} }
            let publisher = try MediaPublisher(bus: bus, description: "mediajack publish \(source)")
            var line = ProgressLine()
            switch source {
            case "test:video":
                var s = TestSource.VideoSettings()
                s.width = parts[0]; s.height = parts[1]; s.fps = fps; s.gop = gop; s.bitrate = bitrate; s.preset = preset
                s.pixelFormat = pixelFormat
                s.encode = encode == "none" ? nil : VideoEncoder.Codec(rawValue: encode)
                let p = try TestSource.runVideo(s, on: publisher, frameLimit: frames, shouldStop: { stopRequested.load(ordering: .relaxed) }) { p in
                    line.show(String(format: "%.1f s  %d frames  %.1f MB", p.seconds, p.frames, Double(p.bytes) / 1e6))
                }
                line.end()
                print("published \(p.frames) frames (\(p.bytes) bytes) in \(String(format: "%.1f", p.seconds)) s")
            case "test:audio":
                let n = try TestSource.runAudio(on: publisher, periodLimit: frames, shouldStop: { stopRequested.load(ordering: .relaxed) })
                print("published \(n) audio periods")
            case let s where s.hasPrefix("file:"):
                let file = try FileSource(path: String(s.dropFirst(5)))
                let n = try file.run(on: publisher, loop: loop, shouldStop: { stopRequested.load(ordering: .relaxed) })
                print("published \(n) packets from \(file.path)")
            default:
                throw MediaError.unknownSource(source)
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }
}
