import Glibc
import MediaWire

/// `alsa:DEVICE` as a source: captures periods and publishes them as PCM frames stamped on the bus
/// clock. Timestamps follow the sample count, anchored to the driver's monotonic timestamps
/// (`snd_pcm_htimestamp`) and re-anchored after an xrun, which is flagged as a discontinuity.
public enum AlsaSource {
    public struct Progress: Sendable {
        public var periods = 0
        public var frames = 0
        public var xruns = 0
        public var seconds = 0.0
        /// Times the sample clock was re-anchored to the driver's timestamps (clock drift or xruns).
        public var reanchors = 0
        public init() {}
    }

    public static func run(device name: String, _ request: AlsaPCM.Request, on publisher: MediaPublisher, periodLimit: Int?,
                           report: (String) -> Void, shouldStop: () -> Bool, progress: (Progress) -> Void) throws -> Progress {
        var q = request
        q.exact = true
        let pcm = try AlsaPCM(name, .capture, q)
        report("alsa:\(name): capture \(pcm.format.alsaName) \(pcm.channels) ch at \(pcm.rate) Hz, period \(pcm.period) frames, buffer \(pcm.bufferFrames) frames")
        let stream = try publisher.addStream(StreamDescription(kind: .audio, codec: pcm.format.codec, sampleRate: pcm.rate, channels: pcm.channels,
                                                               sampleFormat: pcm.format.rawValue, timeBase: (1, pcm.rate), allKeyframes: true))
        defer { try? publisher.endStream(stream) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: pcm.period * pcm.frameBytes, alignment: 16)
        defer { buffer.deallocate() }
        let periodNs = Int64(pcm.period) * 1_000_000_000 / Int64(pcm.rate)
        let bufferNs = Int64(pcm.bufferFrames) * 1_000_000_000 / Int64(pcm.rate)
        var p = Progress()
        let start = MediaPublisher.monotonic()
        var anchor: Int64?          // bus time of sample `anchorFrame`
        var anchorFrame = 0
        var discontinuity = false
        while !shouldStop() && periodLimit.map({ p.periods < $0 }) ?? true {
            var got = 0
            while got < pcm.period {
                switch try pcm.read(into: buffer + got * pcm.frameBytes, frames: pcm.period - got) {
                case .frames(let n): got += n
                case .xrun:
                    p.xruns += 1
                    discontinuity = true
                    anchor = nil
                    got = 0  // a period torn by the overrun is dropped, not glued to later samples
                }
                if shouldStop() { break }
            }
            guard got == pcm.period else { break }
            // Where the first sample of this period was captured, by the driver's clock.
            let now = MediaPublisher.monotonic()
            let measured: Int64 = {
                guard let t = pcm.timestamp() else { return now - periodNs - Int64(pcm.delay()) * 1_000_000_000 / Int64(pcm.rate) }
                return t.at - Int64(t.available + pcm.period) * 1_000_000_000 / Int64(pcm.rate)
            }()
            var pts = anchor.map { $0 + Int64(p.frames - anchorFrame) * 1_000_000_000 / Int64(pcm.rate) } ?? measured
            // The driver's clock ran a buffer ahead of the samples read, yet it reported no overrun: its pointer
            // went a whole lap round the ring (a virtual card whose timer stalled with the machine). The samples
            // of that lap are lost; say so, flag the break, count it.
            if anchor != nil, measured - pts >= bufferNs - periodNs {
                p.xruns += 1
                discontinuity = true
                report("alsa:\(name): the device's clock ran \((measured - pts) / 1_000_000) ms ahead of the samples read without an overrun "
                       + "(its pointer lapped the \(bufferNs / 1_000_000) ms buffer): samples lost, counted as an xrun")
                anchor = nil
            }
            if anchor == nil || abs(pts - measured) > 20_000_000 {
                if anchor != nil { p.reanchors += 1 }
                anchor = measured
                anchorFrame = p.frames
                pts = measured
            }
            let bytes = pcm.period * pcm.frameBytes
            try publisher.publish(stream: stream, flags: discontinuity ? [.keyframe, .discontinuity] : .keyframe, pts: pts, duration: periodNs,
                                  captureTime: MediaPublisher.wallClock() - (now - pts), payloadLength: bytes) { out in
                out.baseAddress!.copyMemory(from: buffer, byteCount: bytes)
            }
            discontinuity = false
            p.periods += 1
            p.frames += pcm.period
            p.seconds = Double(MediaPublisher.monotonic() - start) / 1e9
            progress(p)
        }
        return p
    }
}
