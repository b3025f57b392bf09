import CMedia
import Glibc
import MediaWire

/// `file:PATH`: any file libavformat reads, published as a camera-like live feed: its compressed
/// packets are passed through untouched, paced in real time by their timestamps, optionally looped.
public final class FileSource {
    let context: UnsafeMutablePointer<AVFormatContext>
    public let path: String

    public init(path: String) throws(MediaError) {
        self.path = path
        var ctx: UnsafeMutablePointer<AVFormatContext>?
        let r = avformat_open_input(&ctx, path, nil, nil)
        guard r >= 0, let ctx else { throw .input(path: path, reason: MediaError.text(r)) }
        context = ctx
        guard avformat_find_stream_info(ctx, nil) >= 0 else {
            var c: UnsafeMutablePointer<AVFormatContext>? = ctx
            avformat_close_input(&c)
            throw .input(path: path, reason: "no stream information")
        }
    }

    deinit {
        var c: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&c)
    }

    /// The description of file stream `i`, or nil for kinds the bus does not carry (subtitles, data).
    func describe(_ i: Int) -> StreamDescription? {
        let st = context.pointee.streams[i]!
        let par = st.pointee.codecpar.pointee
        let codec = String(cString: avcodec_get_name(par.codec_id))
        let extradata = par.extradata.map { Array(UnsafeBufferPointer(start: $0, count: Int(par.extradata_size))) } ?? []
        let tb = (Int(st.pointee.time_base.num), Int(st.pointee.time_base.den))
        switch par.codec_type {
        case AVMEDIA_TYPE_VIDEO:
            let intraOnly = avcodec_descriptor_get(par.codec_id).map { $0.pointee.props & Int32(AV_CODEC_PROP_INTRA_ONLY) != 0 } ?? false
            let fr = st.pointee.avg_frame_rate
            return StreamDescription(kind: .video, codec: codec, width: Int(par.width), height: Int(par.height),
                                     pixelFormat: av_get_pix_fmt_name(AVPixelFormat(par.format)).map { String(cString: $0) },
                                     frameRate: fr.den > 0 ? (Int(fr.num), Int(fr.den)) : nil, timeBase: tb,
                                     extradata: extradata, allKeyframes: intraOnly)
        case AVMEDIA_TYPE_AUDIO:
            return StreamDescription(kind: .audio, codec: codec, sampleRate: Int(par.sample_rate), channels: Int(par.ch_layout.nb_channels),
                                     sampleFormat: av_get_sample_fmt_name(AVSampleFormat(par.format)).map { String(cString: $0) },
                                     timeBase: tb, extradata: extradata, allKeyframes: true)
        default:
            return nil
        }
    }

    /// Publishes the file's audio and video until it ends (or forever with `loop`), paced in real time.
    /// Returns the number of packets published.
    public func run(on publisher: MediaPublisher, loop: Bool, shouldStop: () -> Bool) throws -> Int {
        var ids: [Int: UInt32] = [:]
        for i in 0..<Int(context.pointee.nb_streams) {
            if let d = describe(i) { ids[i] = try publisher.addStream(d) }
        }
        guard !ids.isEmpty else { throw MediaError.unsupported("\(path) has no audio or video stream") }
        guard let packet = av_packet_alloc() else { throw MediaError.unsupported("out of memory") }
        defer { var p: UnsafeMutablePointer<AVPacket>? = packet; av_packet_free(&p) }
        let ns = AVRational(num: 1, den: 1_000_000_000)
        let start = MediaPublisher.monotonic()
        var first: Int64?
        var loopOffset: Int64 = 0
        var lastEnd: Int64 = 0
        var published = 0
        while !shouldStop() {
            let r = av_read_frame(context, packet)
            if r == cm_error_eof() || r < 0 {
                guard loop, lastEnd > 0 else { break }
                loopOffset = lastEnd  // the next lap continues the timeline
                guard av_seek_frame(context, -1, 0, AVSEEK_FLAG_BACKWARD) >= 0 else { break }
                continue
            }
            defer { av_packet_unref(packet) }
            let index = Int(packet.pointee.stream_index)
            guard let id = ids[index] else { continue }
            let tb = context.pointee.streams[index]!.pointee.time_base
            // Packets come in decode order: pace by dts, keep pts (B-frames make them differ).
            let rawDTS = packet.pointee.dts != cm_no_pts() ? packet.pointee.dts : packet.pointee.pts
            let rawPTS = packet.pointee.pts != cm_no_pts() ? packet.pointee.pts : rawDTS
            guard rawDTS != cm_no_pts() else { continue }
            let t = av_rescale_q(rawDTS, tb, ns)
            if first == nil { first = t }
            let position = t - first! + loopOffset
            let ptsOffset = av_rescale_q(rawPTS, tb, ns) - t
            let duration = av_rescale_q(packet.pointee.duration, tb, ns)
            lastEnd = max(lastEnd, position + duration)
            let due = start + position
            while MediaPublisher.monotonic() < due && !shouldStop() {
                usleep(UInt32(min(10_000, max(100, (due - MediaPublisher.monotonic()) / 1000))))
                try publisher.serviceRequests()
            }
            let flags: FrameFlags = packet.pointee.flags & cm_packet_flag_key() != 0 ? .keyframe : []
            let bytes = UnsafeRawBufferPointer(start: packet.pointee.data, count: Int(packet.pointee.size))
            try publisher.publish(stream: id, flags: flags, pts: start + position + ptsOffset, dts: start + position, duration: duration,
                                  payloadLength: bytes.count) { out in
                if bytes.count > 0 { out.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            }
            published += 1
        }
        for id in ids.values { try publisher.endStream(id) }
        return published
    }
}
