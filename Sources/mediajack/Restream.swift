import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct Restream: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a media bus's streams on to a server or an HLS directory, reconnecting when the server goes away.",
        discussion: """
            Compressed streams are remuxed, not re-encoded (raw pictures are encoded once to H.264, PCM to \
            AAC where the format needs it, and video the format cannot carry, such as an MJPEG camera into \
            FLV or MPEG-TS, is decoded and encoded to H.264; --encode h264 re-encodes all video, e.g. to \
            lower its --bitrate). It joins at a keyframe. When the server goes away it keeps \
            draining the bus (the publisher is never held back) and reconnects with backoff, 1 s doubling to \
            30 s, starting again at a keyframe. The format comes from the URL: rtmp:// → flv, udp:// srt:// \
            tcp:// → mpegts, rtp:// → MPEG-TS over RTP, *.m3u8 → hls. Started before the bus exists, it says so \
            and waits for a publisher to create it (--no-wait fails at once instead).

            Examples:
              mediajack restream /tmp/cam rtmp://live.example.com/app/KEY
              mediajack restream /tmp/cam 'udp://239.1.1.1:5000?ttl=1'        # multicast TS on the LAN
              mediajack restream /tmp/cam 'srt://relay.example.com:9000'
              mediajack restream /tmp/cam /var/www/live/index.m3u8 --segment 2
              mediajack restream /tmp/cam rtmp://live.example.com/app/KEY --encode h264 --bitrate 2500000
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "Where to: rtmp://, udp://, srt://, tcp://, rtp:// URL or an .m3u8 playlist path.") var url: String
    @Option(help: "flv, mpegts, hls or rtp (default: from the URL).") var format: String?
    @Option(help: "Which streams: kinds (video, audio) and/or stream ids, comma separated.") var streams = ""
    @Option(help: "HLS segment length in seconds.") var segment = 2.0
    @Option(help: "copy: remux compressed video as it is (default; what the format cannot carry, such as MJPEG in FLV or MPEG-TS, is encoded to H.264 anyway), or h264: re-encode all video.")
    var encode = "copy"
    @Option(help: "H.264 bitrate in bits per second when encoding.") var bitrate = 4_000_000
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(name: .customLong("until-end"), help: "Exit when the bus's streams end (else wait for a publisher).") var untilEnd = false
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of waiting for one to appear.")
    var noWait = false

    func validate() throws {
        if let format { guard ["flv", "mpegts", "hls", "rtp", "rtp_mpegts"].contains(format) else { throw ValidationError("--format must be flv, mpegts, hls or rtp") } }
        guard segment >= 0.5 else { throw ValidationError("--segment must be at least 0.5 s") }
        guard ["copy", "h264"].contains(encode) else { throw ValidationError("--encode must be copy or h264") }
        guard (100_000...100_000_000).contains(bitrate) else { throw ValidationError("--bitrate must be 100000...100000000") }
    }

    func run() throws {
        installStopHandlers()
        PolicyRegistry.register(MediaPolicy.self)
        var s = Restreamer.Settings(url: url)
        s.format = format
        s.streams = Set(streams.split(separator: ",").map(String.init))
        s.segmentSeconds = segment
        s.encodeVideo = encode == "h264"
        s.videoBitrate = bitrate
        let say = { (line: String) in FileHandle.standardError.write(Data("mediajack: \(line)\n".utf8)) }
        do {
            if url.lowercased().hasSuffix(".m3u8") {
                let directory = (url as NSString).deletingLastPathComponent
                try FileManager.default.createDirectory(atPath: directory.isEmpty ? "." : directory, withIntermediateDirectories: true)
            }
            let restreamer = try Restreamer(s)
            let consumer = try joinWaitingForBus(bus, noWait: noWait) { () throws(IPNError) in
                try MediaConsumer(bus: bus, description: "mediajack restream \(url)")
            }
            let deadline = duration.map { Date().addingTimeInterval($0) }
            var line = ProgressLine()
            var hadStreams = false
            while !stopRequested && deadline.map({ Date() < $0 }) ?? true {
                guard let event = try consumer.next(timeout: 0.2) else { continue }
                if case .streamAdded = event { hadStreams = true }
                restreamer.handle(event, report: say)
                let p = restreamer.progress
                line.show(String(format: "%@  %d frames  %.1f MB  %d reconnects  %d missed", p.connected ? "sending" : "waiting",
                                 p.frames, Double(p.bytes) / 1e6, p.reconnects, p.missed))
                if untilEnd, hadStreams, case .endOfStream = event, !restreamer.hasLiveStreams { break }
            }
            line.end()
            try restreamer.finish()  // a trailer that could not be written (an HLS playlist's end) fails the command
            let p = restreamer.progress
            print("restreamed \(p.frames) frames (\(p.bytes) bytes) to \(url); \(p.connections) connection(s), \(p.reconnects) reconnect(s), \(p.missed) frames missed while disconnected, \(consumer.gaps) gaps (places where the bus dropped frames for this restream)")
        } catch {
            throw fail(error)
        }
    }
}
