import CMedia

/// Encodes raw I420 pictures once (H.264 through libx264, or MJPEG), so N consumers never encode N
/// times. Zero-latency settings: no B-frames, SPS/PPS repeated before every keyframe so a joiner
/// (or an MPEG-TS file) can start at any keyframe.
public final class VideoEncoder {
    public enum Codec: String, Sendable { case h264, mjpeg }
    public struct Packet {
        public var bytes: [UInt8]
        /// The frame index (encoder time base = 1/fps).
        public var index: Int64
        public var keyframe: Bool
    }

    let core: CodecCore
    var context: UnsafeMutablePointer<AVCodecContext> { core.context }
    var frame: UnsafeMutablePointer<AVFrame> { core.frame }
    public let codec: Codec
    public let width: Int
    public let height: Int

    public init(codec: Codec, width: Int, height: Int, fps: Int, gop: Int, bitrate: Int, preset: String = "veryfast") throws(MediaError) {
        guard let c = avcodec_find_encoder_by_name(codec == .h264 ? "libx264" : "mjpeg") else {
            throw .unsupported("this libavcodec has no \(codec == .h264 ? "libx264" : "mjpeg") encoder")
        }
        core = try CodecCore(c)
        let ctx = core.context, f = core.frame
        self.codec = codec; self.width = width; self.height = height
        ctx.pointee.width = Int32(width)
        ctx.pointee.height = Int32(height)
        ctx.pointee.time_base = AVRational(num: 1, den: Int32(fps))
        ctx.pointee.framerate = AVRational(num: Int32(fps), den: 1)
        ctx.pointee.pix_fmt = codec == .h264 ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_YUVJ420P
        ctx.pointee.gop_size = Int32(gop)
        ctx.pointee.max_b_frames = 0
        ctx.pointee.bit_rate = Int64(bitrate)
        ctx.pointee.flags |= cm_codec_flag_global_header()
        if codec == .h264 {
            cm_set_option(ctx.pointee.priv_data, "preset", preset)
            cm_set_option(ctx.pointee.priv_data, "tune", "zerolatency")
            cm_set_option(ctx.pointee.priv_data, "x264-params", "repeat-headers=1:keyint=\(gop):min-keyint=\(gop):scenecut=0")
        } else {
            ctx.pointee.qmin = 2; ctx.pointee.qmax = 8
        }
        try MediaError.check("avcodec_open2(\(codec.rawValue))", avcodec_open2(ctx, c, nil))
        f.pointee.format = ctx.pointee.pix_fmt.rawValue
        f.pointee.width = Int32(width)
        f.pointee.height = Int32(height)
        try MediaError.check("av_frame_get_buffer", av_frame_get_buffer(f, 0))
    }

    /// Codec extradata (SPS/PPS for H.264), for the stream description.
    public var extradata: [UInt8] { core.extradata }

    /// Gives the picture planes to `draw` (Y, U, V with their strides), then encodes it as frame `index`.
    public func encode(index: Int64, draw: (_ planes: [(UnsafeMutablePointer<UInt8>, Int)]) -> Void) throws(MediaError) -> [Packet] {
        try MediaError.check("av_frame_make_writable", av_frame_make_writable(frame))
        draw((0..<3).map { (cm_frame_plane(frame, Int32($0))!, Int(cm_frame_stride(frame, Int32($0)))) })
        frame.pointee.pts = index
        try MediaError.check("avcodec_send_frame", avcodec_send_frame(context, frame))
        return try drain()
    }

    /// Flushes delayed packets at the end of a stream.
    public func flush() throws(MediaError) -> [Packet] {
        _ = avcodec_send_frame(context, nil)
        return try drain()
    }

    private func drain() throws(MediaError) -> [Packet] {
        try core.drain { p in Packet(bytes: CodecCore.bytes(p), index: p.pointee.pts, keyframe: p.pointee.flags & cm_packet_flag_key() != 0) }
    }

}
