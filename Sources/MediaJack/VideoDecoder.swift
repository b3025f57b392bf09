import CMedia
import MediaWire

/// Decodes one video stream from the bus (H.264, MJPEG, raw pictures in any layout libav knows) with
/// libavcodec and hands out I420 pictures (converted with libswscale when the decoder gives another
/// layout). Before the first keyframe, and after a lost frame until the next one, nothing is decoded:
/// a picture built on missing references would be garbage.
public final class VideoDecoder {
    /// One decoded picture in I420 (Y, U, V planes with their strides); valid only inside the callback.
    public struct Picture {
        public let width: Int
        public let height: Int
        public let planes: [(UnsafePointer<UInt8>, Int)]
        /// The `index` given with the frame this picture was decoded from (a decoder may hold frames back
        /// and reorder them), nil when the decoder lost track.
        public let index: Int64?

        /// One contiguous I420 copy (Y, then U, then V, tightly packed): the decoder reuses its buffers.
        public var packed: [UInt8] {
            let cw = (width + 1) / 2, ch = (height + 1) / 2
            return [UInt8](unsafeUninitializedCapacity: width * height + 2 * cw * ch) { out, count in
                let base = out.baseAddress!
                copy(into: [(base, width), (base + width * height, cw), (base + width * height + cw * ch, cw)])
                count = width * height + 2 * cw * ch
            }
        }

        /// Copies the three planes into `planes` (pointer and stride each, e.g. an encoder's frame).
        public func copy(into planes: [(UnsafeMutablePointer<UInt8>, Int)]) {
            for (i, ((src, srcStride), (dst, dstStride))) in zip(self.planes, planes).enumerated() {
                let w = i == 0 ? width : (width + 1) / 2, rows = i == 0 ? height : (height + 1) / 2
                for y in 0..<rows { (dst + y * dstStride).update(from: src + y * srcStride, count: w) }
            }
        }
    }

    let core: CodecCore
    var context: UnsafeMutablePointer<AVCodecContext> { core.context }
    public let description: StreamDescription
    /// The output layout: I420 with video range (16-235, what displays expect) or full range (JPEG's).
    private let target: AVPixelFormat
    /// The output size; nil keeps each picture's own.
    private let size: (width: Int, height: Int)?
    private var converter: OpaquePointer?
    private var converterInput: (Int32, Int32, Int32, Int32, Int32) = (-1, 0, 0, 0, 0)
    private var converted: UnsafeMutablePointer<AVFrame>?
    /// Waiting for a keyframe (at the start, and after a discontinuity).
    public private(set) var needsKeyframe = true
    /// Frames skipped while waiting for a keyframe, and frames the decoder rejected as corrupt.
    public private(set) var skipped = 0
    public private(set) var corrupt = 0

    /// `fullRange`: pictures in JPEG's full range (0-255), for a JPEG encoder; else video range.
    /// `size`: scale every picture to this size (an encoder's), e.g. when the stream's size changes.
    public init(_ d: StreamDescription, fullRange: Bool = false, size: (width: Int, height: Int)? = nil) throws(MediaError) {
        target = fullRange ? AV_PIX_FMT_YUVJ420P : AV_PIX_FMT_YUV420P
        self.size = size
        guard d.kind == .video else { throw .unsupported("stream is \(d.kind.rawValue), not video") }
        guard let codec = avcodec_find_decoder_by_name(d.codec) else { throw .unsupported("this libavcodec cannot decode \(d.codec)") }
        core = try CodecCore(codec)
        description = d
        let ctx = core.context
        ctx.pointee.width = Int32(d.width ?? 0)
        ctx.pointee.height = Int32(d.height ?? 0)
        if let pf = d.pixelFormat { ctx.pointee.pix_fmt = av_get_pix_fmt(pf) }
        if d.codec == "rawvideo", let pf = d.pixelFormat {
            ctx.pointee.codec_tag = avcodec_pix_fmt_to_codec_tag(av_get_pix_fmt(pf))
        }
        // Slice threads only: frame threads would add a frame of delay per thread; slices (a zerolatency x264
        // stream has one per encoder thread) decode in parallel with none.
        ctx.pointee.thread_type = FF_THREAD_SLICE
        ctx.pointee.thread_count = 0
        core.setExtradata(d.extradata)
        try MediaError.check("avcodec_open2(\(d.codec))", avcodec_open2(ctx, codec, nil))
    }

    deinit {
        sws_freeContext(converter)
        av_frame_free(&converted)
    }

    /// Decodes one frame's payload; `body` gets each picture the decoder has ready (usually one).
    /// `keyframe` and `discontinuity` come from the bus: after a discontinuity decoding waits for a keyframe.
    public func decode(_ payload: UnsafeRawBufferPointer, keyframe: Bool, discontinuity: Bool, index: Int64? = nil,
                       _ body: (Picture) throws -> Void) throws {
        if discontinuity && !description.allKeyframes { needsKeyframe = true }
        if needsKeyframe {
            guard keyframe || description.allKeyframes else { skipped += 1; return }
            avcodec_flush_buffers(context)
            needsKeyframe = false
        }
        guard payload.count > 0 else { return }
        let packet = core.packet
        try MediaError.check("av_new_packet", av_new_packet(packet, Int32(payload.count)))
        packet.pointee.data.update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
        if keyframe { packet.pointee.flags |= cm_packet_flag_key() }
        packet.pointee.pts = index ?? cm_no_pts()
        let sent = avcodec_send_packet(context, packet)
        av_packet_unref(packet)
        // A corrupt packet is the decoder's to skip: the stream goes on, from the next keyframe.
        if sent < 0 && sent != cm_error_again() { corrupt += 1; needsKeyframe = !description.allKeyframes; return }
        try receive(body)
    }

    /// The pictures the decoder still holds (at the end of a stream).
    public func drain(_ body: (Picture) throws -> Void) throws {
        guard !needsKeyframe else { return }
        _ = avcodec_send_packet(context, nil)
        try receive(body)
        avcodec_flush_buffers(context)
    }

    private func receive(_ body: (Picture) throws -> Void) throws {
        let frame = core.frame
        while true {
            let r = avcodec_receive_frame(context, frame)
            if r == cm_error_again() || r == cm_error_eof() { break }
            if r < 0 { corrupt += 1; break }
            defer { av_frame_unref(frame) }
            try body(try picture(frame))
        }
    }

    /// The frame itself when it is in the output layout and range already, else converted (libswscale
    /// also maps full range to video range and back).
    private func picture(_ f: UnsafeMutablePointer<AVFrame>) throws(MediaError) -> Picture {
        let w = f.pointee.width, h = f.pointee.height
        let format = f.pointee.format
        let ow = Int32(size?.width ?? Int(w)), oh = Int32(size?.height ?? Int(h))
        let stamp = f.pointee.best_effort_timestamp
        let index = stamp == cm_no_pts() ? nil : stamp
        if format == target.rawValue && (ow, oh) == (w, h) {
            return Picture(width: Int(w), height: Int(h), planes: (0..<3).map { (UnsafePointer(cm_frame_plane(f, Int32($0))!), Int(cm_frame_stride(f, Int32($0)))) },
                           index: index)
        }
        if converter == nil || converterInput != (format, w, h, ow, oh) {
            sws_freeContext(converter)
            converter = sws_getContext(w, h, AVPixelFormat(rawValue: format), ow, oh, target, Int32(SWS_BILINEAR), nil, nil, nil)
            guard converter != nil else { throw .unsupported("libswscale cannot convert \(String(cString: av_get_pix_fmt_name(AVPixelFormat(rawValue: format)))) pictures") }
            av_frame_free(&converted)
            converted = av_frame_alloc()
            guard let c = converted else { throw .unsupported("out of memory") }
            c.pointee.format = target.rawValue
            c.pointee.width = ow
            c.pointee.height = oh
            try MediaError.check("av_frame_get_buffer", av_frame_get_buffer(c, 0))
            converterInput = (format, w, h, ow, oh)
        }
        let c = converted!
        try MediaError.check("sws_scale_frame", sws_scale_frame(converter, c, f))
        return Picture(width: Int(ow), height: Int(oh), planes: (0..<3).map { (UnsafePointer(cm_frame_plane(c, Int32($0))!), Int(cm_frame_stride(c, Int32($0)))) },
                       index: index)
    }
}
