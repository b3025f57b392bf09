import CMedia

/// What every libavcodec encoder and decoder here owns: its context, a reusable frame and packet
/// (freed together), its extradata, and (encoders) the loop that collects the packets it has ready.
final class CodecCore {
    let context: UnsafeMutablePointer<AVCodecContext>
    let frame: UnsafeMutablePointer<AVFrame>
    let packet: UnsafeMutablePointer<AVPacket>

    init(_ codec: UnsafePointer<AVCodec>) throws(MediaError) {
        guard let ctx = avcodec_alloc_context3(codec) else { throw .unsupported("out of memory allocating a codec") }
        guard let f = av_frame_alloc(), let p = av_packet_alloc() else {
            var c: UnsafeMutablePointer<AVCodecContext>? = ctx
            avcodec_free_context(&c)
            throw .unsupported("out of memory allocating a codec")
        }
        context = ctx; frame = f; packet = p
    }

    deinit {
        var c: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&c)
        var f: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&f)
        var p: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&p)
    }

    /// Gives a decoder the stream's extradata (libav wants it padded and owns it from here).
    func setExtradata(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        context.pointee.extradata = av_mallocz(bytes.count + Int(AV_INPUT_BUFFER_PADDING_SIZE)).assumingMemoryBound(to: UInt8.self)
        bytes.withUnsafeBytes { context.pointee.extradata.update(from: $0.baseAddress!.assumingMemoryBound(to: UInt8.self), count: $0.count) }
        context.pointee.extradata_size = Int32(bytes.count)
    }

    /// Codec extradata (SPS/PPS for H.264, AudioSpecificConfig for AAC).
    var extradata: [UInt8] {
        guard let e = context.pointee.extradata, context.pointee.extradata_size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: e, count: Int(context.pointee.extradata_size)))
    }

    /// Every packet the encoder has ready, turned into `T` by `make` (which reads the packet).
    func drain<T>(_ make: (UnsafeMutablePointer<AVPacket>) -> T) throws(MediaError) -> [T] {
        var out: [T] = []
        while true {
            let r = avcodec_receive_packet(context, packet)
            if r == cm_error_again() || r == cm_error_eof() { break }
            try MediaError.check("avcodec_receive_packet", r)
            out.append(make(packet))
            av_packet_unref(packet)
        }
        return out
    }

    /// The bytes of a packet.
    static func bytes(_ p: UnsafeMutablePointer<AVPacket>) -> [UInt8] {
        Array(UnsafeBufferPointer(start: p.pointee.data, count: Int(p.pointee.size)))
    }
}
