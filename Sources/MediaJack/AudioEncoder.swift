import CMedia
import MediaWire

/// Encodes interleaved signed 16-bit PCM to AAC, for containers that cannot hold PCM (MP4,
/// MPEG-TS). Periods of any size go in; AAC frames of the encoder's size come out, timed from the
/// first sample's bus timestamp.
public final class AudioEncoder {
    let core: CodecCore
    var context: UnsafeMutablePointer<AVCodecContext> { core.context }
    var frame: UnsafeMutablePointer<AVFrame> { core.frame }
    public let sampleRate: Int
    public let channels: Int
    private var pending: [[Float]]
    private var samplesSent: Int64 = 0
    private var origin: Int64?

    public struct Packet {
        public var bytes: [UInt8]
        public var pts: Int64
        public var duration: Int64
    }

    public init(sampleRate: Int, channels: Int, bitrate: Int = 128_000) throws(MediaError) {
        // The rate and channels come from a stream description (another process's numbers, checked against
        // StreamDescription's ranges on the way in); checked again here, as they divide and size below.
        guard StreamDescription.sampleRateRange.contains(sampleRate), StreamDescription.channelRange.contains(channels) else {
            throw .unsupported("AAC of \(channels) channels at \(sampleRate) Hz")
        }
        guard let c = avcodec_find_encoder(AV_CODEC_ID_AAC) else { throw .unsupported("this libavcodec has no AAC encoder") }
        core = try CodecCore(c)
        let ctx = core.context
        self.sampleRate = sampleRate
        self.channels = channels
        pending = Array(repeating: [], count: channels)
        ctx.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
        ctx.pointee.sample_rate = Int32(sampleRate)
        av_channel_layout_default(&ctx.pointee.ch_layout, Int32(channels))
        ctx.pointee.bit_rate = Int64(bitrate)
        ctx.pointee.time_base = AVRational(num: 1, den: Int32(sampleRate))
        ctx.pointee.flags |= cm_codec_flag_global_header()
        try MediaError.check("avcodec_open2(aac)", avcodec_open2(ctx, c, nil))
    }

    public var extradata: [UInt8] { core.extradata }

    var frameSize: Int { max(1, Int(context.pointee.frame_size)) }

    /// Adds one period of interleaved s16 samples taken at `pts` (bus nanoseconds).
    public func encode(s16 payload: UnsafeRawBufferPointer, pts: Int64) throws(MediaError) -> [Packet] {
        if origin == nil { origin = pts }
        let samples = payload.count / 2 / channels
        let rate = Int64(sampleRate)
        var out: [Packet] = []
        // Keep the timeline: periods lost on the way become silence, so audio stays in sync with video. The
        // pts is the publisher's number: a jump that overflows, goes back, or spans a minute or more is not
        // filled; the silence goes in a frame at a time, so what is held stays small whatever the rate.
        let expected = origin! &+ Self.nanoseconds(samples: samplesSent + Int64(pending[0].count), rate: rate)
        let (late, overflow) = pts.subtractingReportingOverflow(expected)
        if !overflow && late > 0 && late < 60_000_000_000 {
            let missing = late / 1_000_000_000 * rate + late % 1_000_000_000 * rate / 1_000_000_000
            if missing > Int64(max(1, samples / 2)) {
                var silence = Int(missing)
                while silence > 0 {
                    let n = min(silence, frameSize)
                    for ch in 0..<channels { pending[ch].append(contentsOf: repeatElement(0, count: n)) }
                    silence -= n
                    while pending[0].count >= frameSize { out += try sendFrame(count: frameSize) }
                }
            }
        }
        for i in 0..<samples {
            for ch in 0..<channels {
                let v = Int16(littleEndian: payload.loadUnaligned(fromByteOffset: (i * channels + ch) * 2, as: Int16.self))
                pending[ch].append(Float(v) / 32768)
            }
        }
        while pending[0].count >= frameSize { out += try sendFrame(count: frameSize) }
        return out
    }

    /// Nanoseconds of `samples` at `rate`, without the overflow of `samples * 10^9` (reached after
    /// 2.2 days at 48 kHz).
    static func nanoseconds(samples: Int64, rate: Int64) -> Int64 {
        samples / rate * 1_000_000_000 + samples % rate * 1_000_000_000 / rate
    }

    /// Encodes what is left and drains the encoder.
    public func flush() throws(MediaError) -> [Packet] {
        var out: [Packet] = []
        if !pending[0].isEmpty { out += try sendFrame(count: pending[0].count) }
        _ = avcodec_send_frame(context, nil)
        out += try drain()
        return out
    }

    private func sendFrame(count: Int) throws(MediaError) -> [Packet] {
        av_frame_unref(frame)
        frame.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
        frame.pointee.sample_rate = Int32(sampleRate)
        frame.pointee.nb_samples = Int32(count)
        _ = av_channel_layout_copy(&frame.pointee.ch_layout, &context.pointee.ch_layout)
        try MediaError.check("av_frame_get_buffer", av_frame_get_buffer(frame, 0))
        for ch in 0..<channels {
            let plane = UnsafeMutableRawPointer(cm_frame_plane(frame, Int32(ch))!).assumingMemoryBound(to: Float.self)
            pending[ch].withUnsafeBufferPointer { plane.update(from: $0.baseAddress!, count: count) }
            pending[ch].removeFirst(count)
        }
        frame.pointee.pts = samplesSent
        samplesSent += Int64(count)
        try MediaError.check("avcodec_send_frame", avcodec_send_frame(context, frame))
        return try drain()
    }

    private func drain() throws(MediaError) -> [Packet] {
        let rate = Int64(sampleRate), origin = self.origin ?? 0
        return try core.drain { p in
            Packet(bytes: CodecCore.bytes(p), pts: origin &+ Self.nanoseconds(samples: p.pointee.pts, rate: rate),
                   duration: Self.nanoseconds(samples: Int64(p.pointee.duration), rate: rate))
        }
    }
}
