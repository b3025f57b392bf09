import Foundation
import MediaWire

/// `mediajack restream`: the bus's streams sent on to a server or a directory, remuxed without
/// re-encoding (raw pictures are encoded once to H.264, PCM to AAC where the format needs it). It joins
/// at a keyframe; when the server goes away it keeps draining the bus (the publisher is never held
/// back) and reconnects with backoff (1 s, doubling to 30 s), starting again at the next keyframe.
public final class Restreamer {
    public struct Settings: Sendable {
        public var url: String
        /// A libavformat muxer (flv, mpegts, hls, rtp_mpegts); nil infers it from the URL.
        public var format: String?
        /// Which streams: kinds ("video", "audio") and/or stream ids; empty takes all.
        public var streams: Set<String> = []
        /// HLS segment length in seconds.
        public var segmentSeconds = 2.0
        /// Re-encode compressed video to H.264 (else it is remuxed; what the format cannot carry is encoded anyway).
        public var encodeVideo = false
        /// H.264 bitrate when encoding.
        public var videoBitrate = 4_000_000
        public init(url: String) { self.url = url }
    }

    public struct Progress: Sendable {
        public var frames = 0
        public var bytes = 0
        public var connections = 0
        public var reconnects = 0
        /// Frames that arrived while there was no connection.
        public var missed = 0
        public var connected = false
        public init() {}
    }

    /// The muxer for a URL: rtmp → flv, udp/srt/tcp → mpegts, rtp → MPEG-TS over RTP, .m3u8 → hls.
    public static func inferFormat(_ url: String) -> String? {
        let lower = url.lowercased()
        if lower.hasPrefix("rtmp://") || lower.hasPrefix("rtmps://") { return "flv" }
        if lower.hasPrefix("udp://") || lower.hasPrefix("srt://") || lower.hasPrefix("tcp://") { return "mpegts" }
        if lower.hasPrefix("rtp://") { return "rtp_mpegts" }
        if lower.hasSuffix(".m3u8") { return "hls" }
        return nil
    }

    let settings: Settings
    let format: String
    public private(set) var progress = Progress()
    private var live: [UInt32: StreamDescription] = [:]
    private var output: Recorder?
    private var retryAt = Date.distantPast
    private var backoff = 1.0
    private var wroteSinceConnect = false

    public init(_ s: Settings) throws(MediaError) {
        guard let f = s.format ?? Self.inferFormat(s.url) else {
            throw .unsupported("cannot tell the format of \(s.url): give --format flv|mpegts|hls|rtp")
        }
        settings = s
        format = f == "rtp" ? "rtp_mpegts" : f
    }

    private func wanted(_ id: UInt32, _ d: StreamDescription) -> Bool {
        settings.streams.isEmpty || settings.streams.contains(d.kind.rawValue) || settings.streams.contains(String(id))
    }

    private var options: [String: String] {
        var o: [String: String] = ["rw_timeout": "5000000"]  // a stalled server is an error after 5 s, not a hang
        switch format {
        case "mpegts" where settings.url.lowercased().hasPrefix("udp://"): o["pkt_size"] = "1316"
        case "hls":
            o["hls_time"] = String(settings.segmentSeconds)
            o["hls_list_size"] = "6"
            o["hls_flags"] = "delete_segments+independent_segments"
        case "flv": o["flvflags"] = "no_duration_filesize"
        default: break
        }
        return o
    }

    /// Feeds one event from the bus. `report` gets one line per connection change.
    public func handle(_ event: MediaEvent, report: (String) -> Void) {
        switch event {
        case .streamAdded(let id, _, let d):
            guard wanted(id, d) else { return }
            live[id] = d
            if let output, !output.hasStarted { output.add(stream: id, d) }
        case .endOfStream(let id):
            guard live.removeValue(forKey: id) != nil else { return }
            if live.isEmpty, let output {
                self.output = nil
                progress.connected = false
                do {
                    try output.finish()
                    report("the streams ended; \(settings.url) finished (waiting for a publisher)")
                } catch {
                    report("the streams ended; \(error) (waiting for a publisher)")
                }
            }
        case .frame(let h, let payload, let discontinuity):
            guard live[h.stream] != nil else { return }
            if output == nil {
                guard Date() >= retryAt else { progress.missed += 1; return }
                connect(report: report)
            }
            guard let output else { progress.missed += 1; return }
            do {
                let wrote = try payload.withUnsafeBytes { b in try output.write(stream: h.stream, h, payload: b, discontinuity: discontinuity) }
                if wrote {
                    if !progress.connected {
                        progress.connected = true
                        progress.connections += 1
                        report("sending to \(settings.url) (\(format))")
                    }
                    progress.frames += 1
                    progress.bytes += payload.count
                    wroteSinceConnect = true
                    backoff = 1
                }
            } catch {
                lost(error, report: report)
            }
        }
    }

    private func connect(report: (String) -> Void) {
        do {
            let r = try Recorder(path: settings.url, format: format, options: options)
            r.transcodesVideo = settings.encodeVideo
            r.videoBitrate = settings.videoBitrate
            for (id, d) in live.sorted(by: { $0.key < $1.key }) { r.add(stream: id, d) }
            if progress.connections == 0 {
                if !r.encodedStreams.isEmpty { report("encoding here: \(r.encodedStreams.joined(separator: ", "))") }
                if !r.rejectedStreams.isEmpty { report("not sent (\(format) cannot carry them): \(r.rejectedStreams.joined(separator: ", "))") }
            }
            output = r
            wroteSinceConnect = false
        } catch {
            lost(error, report: report)
        }
    }

    private func lost(_ error: any Error, report: (String) -> Void) {
        if progress.connected || output != nil { progress.reconnects += 1 }
        output?.abandon()  // no trailer into a broken connection
        output = nil
        progress.connected = false
        retryAt = Date().addingTimeInterval(backoff)
        report("\(settings.url): \(error); retrying in \(Int(backoff)) s")
        backoff = min(30, backoff * 2)
    }

    /// Whether any selected stream is live on the bus.
    public var hasLiveStreams: Bool { !live.isEmpty }

    /// Finishes the output (writes the trailer: an HLS playlist gets its end); throws what that met.
    public func finish() throws(MediaError) {
        let finishing = output
        output = nil
        try finishing?.finish()
    }
}
