import CMedia
import MediaWire

/// Decodes one audio stream from the bus (PCM of any layout, AAC, Opus...) with libavcodec and
/// converts it with libswresample to interleaved s16 at the rate and channel count a device wants.
public final class AudioDecoder {
    let core: CodecCore
    var context: UnsafeMutablePointer<AVCodecContext> { core.context }
    var frame: UnsafeMutablePointer<AVFrame> { core.frame }
    var packet: UnsafeMutablePointer<AVPacket> { core.packet }
    private var resampler: OpaquePointer?
    private var resamplerInput: (format: Int32, rate: Int32, channels: Int32) = (-1, 0, 0)
    public let outputRate: Int
    public let outputChannels: Int
    private var output: [Int16] = []

    public init(_ d: StreamDescription, outputRate: Int, outputChannels: Int) throws(MediaError) {
        guard d.kind == .audio else { throw .unsupported("stream is \(d.kind.rawValue), not audio") }
        guard let codec = avcodec_find_decoder_by_name(d.codec) else { throw .unsupported("this libavcodec cannot decode \(d.codec)") }
        core = try CodecCore(codec)
        let ctx = core.context
        self.outputRate = outputRate
        self.outputChannels = outputChannels
        ctx.pointee.sample_rate = Int32(d.sampleRate ?? 48_000)
        av_channel_layout_default(&ctx.pointee.ch_layout, Int32(d.channels ?? 2))
        ctx.pointee.time_base = AVRational(num: 1, den: ctx.pointee.sample_rate)
        core.setExtradata(d.extradata)
        try MediaError.check("avcodec_open2(\(d.codec))", avcodec_open2(ctx, codec, nil))
    }

    deinit { swr_free(&resampler) }

    /// Decodes one frame's payload and hands the converted interleaved s16 samples to `body`
    /// (frame count, samples), possibly several times.
    public func decode(_ payload: UnsafeRawBufferPointer, _ body: (Int, UnsafeBufferPointer<Int16>) throws -> Void) throws {
        guard payload.count > 0 else { return }
        try MediaError.check("av_new_packet", av_new_packet(packet, Int32(payload.count)))
        packet.pointee.data.update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count)
        let sent = avcodec_send_packet(context, packet)
        av_packet_unref(packet)
        // A corrupt packet is skipped (its error is the decoder's), the stream goes on.
        if sent < 0 && sent != cm_error_again() { return }
        while true {
            let r = avcodec_receive_frame(context, frame)
            if r == cm_error_again() || r == cm_error_eof() { break }
            try MediaError.check("avcodec_receive_frame", r)
            try convert(frame, body)
            av_frame_unref(frame)
        }
    }

    private func convert(_ f: UnsafeMutablePointer<AVFrame>, _ body: (Int, UnsafeBufferPointer<Int16>) throws -> Void) throws {
        let input = (f.pointee.format, f.pointee.sample_rate, f.pointee.ch_layout.nb_channels)
        if resampler == nil || input != resamplerInput {
            swr_free(&resampler)
            var outLayout = AVChannelLayout()
            av_channel_layout_default(&outLayout, Int32(outputChannels))
            defer { av_channel_layout_uninit(&outLayout) }
            var inLayout = AVChannelLayout()
            av_channel_layout_default(&inLayout, input.2)
            defer { av_channel_layout_uninit(&inLayout) }
            try MediaError.check("swr_alloc_set_opts2", swr_alloc_set_opts2(&resampler, &outLayout, AV_SAMPLE_FMT_S16, Int32(outputRate),
                                                                             &inLayout, AVSampleFormat(rawValue: input.0), input.1, 0, nil))
            try MediaError.check("swr_init", swr_init(resampler))
            resamplerInput = input
        }
        let capacity = Int(swr_get_out_samples(resampler, f.pointee.nb_samples)) + 32
        if output.count < capacity * outputChannels { output = [Int16](repeating: 0, count: capacity * outputChannels) }
        let n = output.withUnsafeMutableBytes { out -> Int32 in
            var dst: UnsafeMutablePointer<UInt8>? = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return swr_convert(resampler, &dst, Int32(capacity), cm_frame_extended_data(f), f.pointee.nb_samples)
        }
        try MediaError.check("swr_convert", n)
        if n > 0 { try output.withUnsafeBufferPointer { try body(Int(n), UnsafeBufferPointer(rebasing: $0[..<(Int(n) * outputChannels)])) } }
    }
}
