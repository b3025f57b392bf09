import CIPNSys
import Glibc
import MediaWire

/// `test:video` and `test:audio`: synthetic sources paced in real time, no device needed.
public enum TestSource {
    public struct VideoSettings: Sendable {
        public var width = 640
        public var height = 360
        public var fps = 25
        public var gop = 50
        public var bitrate = 1_500_000
        public var preset = "veryfast"
        public var encode: VideoEncoder.Codec? = .h264
        /// Raw pictures (no encoding): "yuv420p" (I420) or "yuyv422" (packed, as webcams send).
        public var pixelFormat = "yuv420p"
        public init() {}
    }

    /// What a running source reports.
    public struct Progress: Sendable {
        public var frames = 0
        public var bytes = 0
        public var seconds = 0.0
    }

    /// Publishes the test picture until `shouldStop` says so or `frameLimit` frames were sent.
    public static func runVideo(_ s: VideoSettings, on publisher: MediaPublisher, frameLimit: Int?,
                                shouldStop: () -> Bool, progress: (Progress) -> Void) throws -> Progress {
        let encoder = try s.encode.map { try VideoEncoder(codec: $0, width: s.width, height: s.height, fps: s.fps, gop: s.gop, bitrate: s.bitrate, preset: s.preset) }
        let description = StreamDescription(
            kind: .video, codec: s.encode?.rawValue ?? "rawvideo", width: s.width, height: s.height,
            pixelFormat: s.encode == .mjpeg ? "yuvj420p" : (s.encode == nil ? s.pixelFormat : "yuv420p"), frameRate: (s.fps, 1), timeBase: (1, s.fps),
            extradata: encoder?.extradata ?? [], allKeyframes: s.encode != .h264)
        let stream = try publisher.addStream(description)
        let interval = 1_000_000_000 / Int64(s.fps)
        let start = MediaPublisher.monotonic()
        var captures: [Int64: (Int64, Int64)] = [:]  // frame index → (monotonic, wall) capture times
        var p = Progress()
        var n: Int64 = 0
        let lumaSize = s.width * s.height
        var luma = [UInt8](repeating: 0, count: s.encode == nil && s.pixelFormat == "yuyv422" ? lumaSize : 0)
        func publishPacket(_ packet: VideoEncoder.Packet) throws {
            let (mono, wall) = captures.removeValue(forKey: packet.index) ?? (start + packet.index * interval, MediaPublisher.wallClock())
            try publisher.publish(stream: stream, flags: packet.keyframe ? .keyframe : [], pts: mono, duration: interval,
                                  captureTime: wall, payloadLength: packet.bytes.count) { out in
                packet.bytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            p.frames += 1
            p.bytes += packet.bytes.count
        }
        while !shouldStop() && frameLimit.map({ Int(n) < $0 }) ?? true {
            let due = start + n * interval
            while true {
                let now = MediaPublisher.monotonic()
                if now >= due { break }
                usleep(UInt32(min(20_000, (due - now) / 1000 + 1)))
                try publisher.serviceRequests()
            }
            // A synthetic camera's sensor ticks regularly: frames are stamped with their scheduled time,
            // even when this process runs late under load (as a camera's driver stamps the exposure).
            let mono = due
            let wall = MediaPublisher.wallClock() - (MediaPublisher.monotonic() - due)
            let stamp = TestPattern.Stamp(frame: UInt32(truncatingIfNeeded: n), captureMilliseconds: UInt64(wall / 1_000_000))
            if let encoder {
                captures[n] = (mono, wall)
                let packets = try encoder.encode(index: n) { TestPattern.drawI420(stamp, into: $0, width: s.width, height: s.height) }
                for packet in packets { try publishPacket(packet) }
            } else if s.pixelFormat == "yuyv422" {
                // Packed Y0 U Y1 V: draw the luma once, then interleave it with neutral chroma.
                luma.withUnsafeMutableBufferPointer { TestPattern.drawLuma(stamp, into: $0.baseAddress!, stride: s.width, width: s.width, height: s.height) }
                try publisher.publish(stream: stream, flags: .keyframe, pts: mono, duration: interval, captureTime: wall,
                                      payloadLength: lumaSize * 2) { out in
                    let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    for i in 0..<lumaSize { o[2 * i] = luma[i]; o[2 * i + 1] = 128 }
                }
                p.frames += 1
                p.bytes += lumaSize * 2
            } else {
                try publisher.publish(stream: stream, flags: .keyframe, pts: mono, duration: interval, captureTime: wall,
                                      payloadLength: lumaSize * 3 / 2) { out in
                    let base = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    TestPattern.drawLuma(stamp, into: base, stride: s.width, width: s.width, height: s.height)
                    memset(base + lumaSize, 128, lumaSize / 2)
                }
                p.frames += 1
                p.bytes += lumaSize * 3 / 2
            }
            n += 1
            p.seconds = Double(MediaPublisher.monotonic() - start) / 1e9
            progress(p)
        }
        if let encoder { for packet in try encoder.flush() { try publishPacket(packet) } }
        try publisher.endStream(stream)
        return p
    }

    /// `test:audio`: 48 kHz stereo s16, 20 ms periods, paced in real time. The left channel is a 997 Hz
    /// tone; the right channel is the sample counter (sample number modulo 65536, as Int16), so a test
    /// can find every lost or repeated sample after recording.
    public static func runAudio(on publisher: MediaPublisher, periodLimit: Int?, shouldStop: () -> Bool) throws -> Int {
        let rate = 48_000, channels = 2, period = 960
        let stream = try publisher.addStream(StreamDescription(kind: .audio, codec: "pcm_s16le", sampleRate: rate, channels: channels,
                                                               sampleFormat: "s16", timeBase: (1, rate), allKeyframes: true))
        let start = MediaPublisher.monotonic()
        let periodNs = Int64(period) * 1_000_000_000 / Int64(rate)
        var n = 0
        while !shouldStop() && periodLimit.map({ n < $0 }) ?? true {
            let due = start + Int64(n) * periodNs
            while MediaPublisher.monotonic() < due { usleep(2000); try publisher.serviceRequests() }
            let first = n * period
            try publisher.publish(stream: stream, flags: .keyframe, pts: due, duration: periodNs, payloadLength: period * channels * 2) { out in
                let samples = out.bindMemory(to: Int16.self)
                for i in 0..<period {
                    let v = Int16(16383 * sin(2 * Double.pi * 997 * Double(first + i) / Double(rate)))
                    samples[i * channels] = v.littleEndian
                    samples[i * channels + 1] = Int16(truncatingIfNeeded: first + i).littleEndian
                }
            }
            n += 1
        }
        try publisher.endStream(stream)
        return n
    }
}
