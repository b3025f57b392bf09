import CIPNSys
import CMedia
import Foundation
import Glibc
import MediaWire

/// Writes streams from a media bus into a file with libavformat (Matroska, MP4 or MPEG-TS by the
/// extension). Compressed streams are remuxed, never re-encoded. Timestamps come from the bus
/// (nanoseconds, CLOCK_MONOTONIC) relative to the first frame written, so audio and video stay in
/// sync. The file is valid from its first frame (a keyframe) and finalised by `finish()`.
///
/// A file is written to survive its recorder: the header goes to disk at once, then a whole Matroska
/// cluster or MP4 fragment at every GOP and at least every second (`FlushSchedule`); MP4 is written
/// fragmented, so it needs no index at the end. A recorder killed at any moment leaves a file that
/// plays up to about a second before. A write that fails (disk full) stops the recording and cuts the
/// file back to its last flush; `finish()` throws what the trailer, the last flush or the close met.
public final class Recorder {
    public let path: String
    let context: UnsafeMutablePointer<AVFormatContext>
    private var indexOf: [UInt32: Int32] = [:]
    private var started = false
    private var origin: Int64?
    private let packet: UnsafeMutablePointer<AVPacket>
    public private(set) var frames = 0
    public private(set) var bytes = 0
    public private(set) var skippedBeforeKeyframe = 0
    /// Frames dropped because their times cannot be written: decoded after they are shown, a negative
    /// duration, or times too far from the file's start to count. They come from the publisher (another
    /// process); the muxer would refuse them and end the recording, so they are counted and skipped.
    public private(set) var invalidTimestamps = 0
    /// Streams this container cannot store (e.g. PCM audio in MP4), skipped with a note.
    public private(set) var rejectedStreams: [String] = []
    /// Encoders for raw streams, by stream id, and the first pts of each (encoder frame index origin).
    private var encoders: [UInt32: VideoEncoder] = [:]
    private var rawFrames: [UInt32: [Int64: FrameHeader]] = [:]
    private var audioEncoders: [UInt32: AudioEncoder] = [:]
    private var converters: [UInt32: PictureConverter] = [:]
    /// Audio that arrived before the first video keyframe, until that keyframe decides where the file starts.
    private var pending: [(UInt32, FrameHeader, [UInt8])] = []
    private var pendingBytes = 0

    /// Store raw video as it comes (Matroska only) instead of encoding it to H.264.
    public let keepsRawVideo: Bool
    /// Re-encode compressed video to H.264 too (set before adding streams). Without it compressed
    /// video is remuxed, and only a codec the container cannot carry (MJPEG in FLV or MPEG-TS) is
    /// decoded and encoded to H.264.
    public var transcodesVideo = false
    /// H.264 bitrate when this recorder encodes (raw or transcoded video).
    public var videoBitrate = 4_000_000
    /// Decoders of the video streams this recorder transcodes, by stream id.
    private var decoders: [UInt32: VideoDecoder] = [:]
    /// Streams encoded here, in words ("mjpeg -> h264"), for the user.
    public private(set) var encodedStreams: [String] = []

    /// Options for the output protocol (avio_open2) and the muxer (avformat_write_header), e.g.
    /// `rw_timeout`, `hls_time`, `pkt_size`.
    public let options: [String: String]

    /// What a live fragmented-MP4 recorder hands out: the init segment once, then one fragment per frame.
    public enum LiveChunk {
        case initialization([UInt8])
        /// `keyframe`: it holds a video keyframe, where a joining viewer can start.
        case fragment([UInt8], keyframe: Bool)
    }
    /// Set for a live recorder: its bytes go here instead of a file.
    private let live: LiveOutput?

    /// The output is a file of its own (not a URL, not live, not a muxer that opens its own files
    /// such as HLS): it is flushed on `schedule`, and cut back to its last flush when writing fails.
    private let writesFile: Bool
    private var schedule = FlushSchedule()
    /// Video streams (by index) whose keyframes start a GOP: a flush goes before each. (Where every
    /// frame is a keyframe, as MJPEG or raw video, the schedule's second is enough.)
    private var gopStreams: Set<Int32> = []
    /// Why writing stopped: the file was closed at its last flush, and nothing more goes in.
    private var failure: MediaError?

    /// MP4 and QuickTime files are written fragmented: the index (moov) up front, then a fragment
    /// (moof+mdat) per GOP or second, so a file cut short plays up to its last fragment.
    static let fragmentedMP4 = "frag_keyframe+empty_moov+default_base_moof"

    /// A live fragmented MP4 in memory (init segment, then a moof+mdat per frame, as Media Source
    /// Extensions want it), handed to `output` as it is made; nothing is written anywhere else.
    public convenience init(liveMP4 output: @escaping (LiveChunk) -> Void) throws(MediaError) {
        try self.init(path: "live.mp4", format: "mp4", keepRawVideo: false,
                      options: ["movflags": "empty_moov+default_base_moof+frag_custom+skip_trailer"], live: LiveOutput(output))
    }

    /// `path` is a file or, with `format`, any URL libavformat can write (udp://, srt://, rtmp://, an
    /// HLS playlist).
    public convenience init(path: String, format: String? = nil, keepRawVideo: Bool = false, options: [String: String] = [:]) throws(MediaError) {
        try self.init(path: path, format: format, keepRawVideo: keepRawVideo, options: options, live: nil)
    }

    private init(path: String, format: String?, keepRawVideo: Bool, options: [String: String], live: LiveOutput?) throws(MediaError) {
        self.path = path
        keepsRawVideo = keepRawVideo
        self.live = live
        var ctx: UnsafeMutablePointer<AVFormatContext>?
        let r = avformat_alloc_output_context2(&ctx, nil, format, path)
        guard r >= 0, let ctx else {
            throw .output(path: path, reason: format.map { "libavformat has no '\($0)' muxer" }
                          ?? "unknown container for this file name (use .mkv, .mp4 or .ts)")
        }
        context = ctx
        packet = av_packet_alloc()
        let protocolName = avio_find_protocol_name(path).map { String(cString: $0) }
        writesFile = live == nil && protocolName == "file" && ctx.pointee.oformat.pointee.flags & cm_format_flag_nofile() == 0
        var options = options
        if writesFile, ["mp4", "mov", "ipod"].contains(String(cString: ctx.pointee.oformat.pointee.name)), options["movflags"] == nil {
            options["movflags"] = Recorder.fragmentedMP4
        }
        if writesFile {
            // A stream that stalls (a publisher paused, not gone) holds the others' frames in the
            // interleaving queue, out of reach of any flush: a second at most (FFmpeg's default is 10 s).
            ctx.pointee.max_interleave_delta = 1_000_000
        }
        self.options = options
    }

    deinit {
        // A live recorder's output is gone with its owner: close, never flush into it. An owner that
        // let go of a recorder without `finish()` is failing already, with an error of its own: the
        // file is finished as well as it can be, and what that meets has nowhere to go.
        if started { if live != nil { close() } else { try? finish() } }
        var p: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&p)
        avformat_free_context(context)
    }

    /// The bus time (pts, CLOCK_MONOTONIC ns) of the file's time zero, once the first frame was written.
    public var startTime: Int64? { origin }

    /// The header is written: no stream can be added any more.
    public var hasStarted: Bool { started || origin != nil }

    /// Adds a stream before the first frame is written. Returns false for what this container or
    /// this build cannot store (the stream is then skipped).
    @discardableResult
    public func add(stream id: UInt32, _ d: StreamDescription) -> Bool {
        guard !started, indexOf[id] == nil else { return false }
        let container = String(cString: context.pointee.oformat.pointee.name)
        if d.kind == .audio, d.codec == "pcm_s16le", ["mp4", "mpegts", "flv", "hls", "rtp_mpegts"].contains(container) {
            // MP4, MPEG-TS, FLV and HLS cannot hold PCM: encode it to AAC here.
            guard let encoder = try? AudioEncoder(sampleRate: d.sampleRate ?? 48_000, channels: d.channels ?? 2) else {
                rejectedStreams.append("audio \(d.codec) (no AAC encoder)")
                return false
            }
            var encoded = d
            encoded.codec = "aac"
            encoded.sampleFormat = "fltp"
            encoded.extradata = encoder.extradata
            guard addAsIs(stream: id, encoded) else { return false }
            audioEncoders[id] = encoder
            return true
        }
        let transcode = d.kind == .video && d.codec != "rawvideo" && (transcodesVideo || !canCarry(d.codec))
        if (d.codec == "rawvideo" && !keepsRawVideo) || transcode {
            // Raw pictures are encoded once here (H.264), so the file stays small and playable;
            // compressed ones are decoded first.
            // A picture of another size (a publisher back at a new size) is scaled to the encoder's.
            let decoder = transcode ? try? VideoDecoder(d, size: (d.width ?? 0, d.height ?? 0)) : nil
            // Frames per second from the stream's rate (30000/1001 is 30, 15/2 is 8), at most 1000: the encoder's
            // time base and GOP are C ints, and the rate is the publisher's word.
            let rate = (Double(d.frameRateNumerator ?? 25) / Double(max(1, d.frameRateDenominator ?? 1))).rounded()
            let fps = Int(min(1000, max(1, rate)))  // clamped as a Double: no conversion can trap
            guard let w = d.width, let h = d.height,
                  let format = transcode ? "yuv420p" : d.pixelFormat,
                  format == "yuv420p" || PictureConverter(pixelFormat: format, width: w, height: h) != nil,
                  decoder != nil || !transcode,
                  let encoder = try? VideoEncoder(codec: .h264, width: w, height: h, fps: fps, gop: 2 * fps, bitrate: videoBitrate) else {
                rejectedStreams.append(transcode ? "video \(d.codec) (cannot decode it to encode H.264)" : "raw video in \(d.pixelFormat ?? "an unknown format")")
                return false
            }
            if format != "yuv420p" { converters[id] = PictureConverter(pixelFormat: format, width: w, height: h) }
            var encoded = d
            encoded.codec = "h264"
            encoded.pixelFormat = "yuv420p"
            encoded.extradata = encoder.extradata
            encoded.allKeyframes = false
            guard addAsIs(stream: id, encoded) else { return false }
            encoders[id] = encoder
            decoders[id] = decoder
            encodedStreams.append("\(d.codec) -> h264")
            return true
        }
        return addAsIs(stream: id, d)
    }

    /// Adds a stream the container stores as it comes.
    private func addAsIs(stream id: UInt32, _ d: StreamDescription) -> Bool {
        guard let desc = avcodec_descriptor_get_by_name(d.codec),
              // 1: supported, 0: not; negative: this muxer cannot tell (MPEG-TS), so try.
              avformat_query_codec(context.pointee.oformat, desc.pointee.id, FF_COMPLIANCE_NORMAL) != 0 else {
            rejectedStreams.append("\(d.kind.rawValue) \(d.codec)")
            return false
        }
        guard let st = avformat_new_stream(context, nil) else { return false }
        let par = st.pointee.codecpar!
        par.pointee.codec_type = d.kind == .video ? AVMEDIA_TYPE_VIDEO : AVMEDIA_TYPE_AUDIO
        par.pointee.codec_id = desc.pointee.id
        if d.kind == .video {
            par.pointee.width = Int32(d.width ?? 0)
            par.pointee.height = Int32(d.height ?? 0)
            if let pf = d.pixelFormat { par.pointee.format = av_get_pix_fmt(pf).rawValue }
            if d.codec == "rawvideo", let pf = d.pixelFormat {
                // The fourcc tells readers the pixel layout (YUY2, NV12...); without it they assume RGB.
                par.pointee.codec_tag = avcodec_pix_fmt_to_codec_tag(av_get_pix_fmt(pf))
            }
            if let n = d.frameRateNumerator, let den = d.frameRateDenominator {
                st.pointee.avg_frame_rate = AVRational(num: Int32(n), den: Int32(den))
                st.pointee.r_frame_rate = st.pointee.avg_frame_rate
            }
            st.pointee.time_base = AVRational(num: 1, den: 90_000)
        } else {
            par.pointee.sample_rate = Int32(d.sampleRate ?? 48_000)
            av_channel_layout_default(&par.pointee.ch_layout, Int32(d.channels ?? 2))
            if let sf = d.sampleFormat { par.pointee.format = av_get_sample_fmt(sf).rawValue }
            st.pointee.time_base = AVRational(num: 1, den: par.pointee.sample_rate)
        }
        d.extradata.withUnsafeBufferPointer { e in _ = cm_set_extradata(par, e.baseAddress, Int32(e.count)) }
        indexOf[id] = st.pointee.index
        if d.kind == .video && !d.allKeyframes { gopStreams.insert(st.pointee.index) }
        return true
    }

    private func start() throws(MediaError) {
        var dictionary: OpaquePointer?
        defer { av_dict_free(&dictionary) }
        for (k, v) in options { av_dict_set(&dictionary, k, v, 0) }
        if let live {
            context.pointee.pb = cm_avio_writer(Unmanaged.passUnretained(live).toOpaque(), LiveOutput.write)
            guard context.pointee.pb != nil else { throw .output(path: path, reason: "out of memory") }
        } else if context.pointee.oformat.pointee.flags & cm_format_flag_nofile() == 0 {
            let r = avio_open2(&context.pointee.pb, path, AVIO_FLAG_WRITE, nil, &dictionary)
            guard r >= 0 else { throw .output(path: path, reason: MediaError.text(r)) }
        }
        if keepsRawVideo, String(cString: context.pointee.oformat.pointee.name) == "matroska" {
            // Raw video is stored the way AVI does it (a fourcc), which Matroska readers understand.
            cm_set_option(context.pointee.priv_data, "allow_raw_vfw", "1")
        }
        let r = avformat_write_header(context, &dictionary)
        guard r >= 0 else {
            // A header the disk would not take (a fragmented MP4 writes its moov here) is a failed write, not
            // streams the container refused.
            let writeError = (context.pointee.pb?.pointee.error ?? 0) < 0
            started = true
            close()  // the output opened above
            if writeError { throw .writeFailed(path: path, reason: MediaError.text(r), kept: nil) }
            throw .output(path: path, reason: "the container refused the streams: \(MediaError.text(r))")
        }
        started = true
        if let live {
            avio_flush(context.pointee.pb)
            live.output(.initialization(live.take()))
        }
        // The header goes to disk at once: a file whose recorder dies from here on is one a reader
        // recognises (an MP4's moov is in it; a Matroska file waits for its first cluster, the first frame).
        if writesFile { try flush() }
    }

    /// Ends the Matroska cluster or MP4 fragment in progress (av_write_frame with no packet) and hands
    /// libavformat's buffer to the kernel (avio_flush): a recorder killed after this leaves a file
    /// that plays up to here. Throws, having stopped the recording, when writing failed.
    private func flush() throws(MediaError) {
        guard let pb = context.pointee.pb else { return }
        let r = av_write_frame(context, nil)
        avio_flush(pb)
        let error = r < 0 ? r : pb.pointee.error
        guard error >= 0 else { throw stop(writing: error) }
        let point = FlushSchedule.Point(bytes: avio_seek(pb, 0, SEEK_CUR), frames: frames, seconds: duration)
        schedule.flushed(point, decodeEnd: decodeEnd, now: ipn_monotonic_ns())
    }

    /// Flushes the file when its schedule says so: the first frame at once, then at least every second
    /// of media or wall time. Called after every frame, and by an owner with nothing to write for a
    /// while (so a stream that stalls still has its last frames on disk). Throws what writing met.
    public func flushIfDue() throws(MediaError) {
        if let failure { throw failure }
        guard started, writesFile, schedule.isDue(frames: frames, decodeEnd: decodeEnd, now: ipn_monotonic_ns()) else { return }
        try flush()
    }

    /// Writing failed (disk full, an I/O error, a close that reported one): the recording stops here.
    /// The file is closed without a trailer (there is no room for one, or no trust in it) and cut back
    /// to its last flush, so it ends on a whole cluster or fragment and plays up to there.
    private func stop(writing code: Int32) -> MediaError {
        if started { close() }
        let cut = writesFile && schedule.cutBack(path)
        let last = schedule.last
        let error = MediaError.writeFailed(path: path, reason: MediaError.text(code), kept: cut ? (seconds: last.seconds, frames: last.frames) : nil)
        failure = error
        return error
    }

    /// Writes one frame. Frames before the first video keyframe are skipped, so the file starts
    /// decodable; returns whether the frame was written. `discontinuity`: this consumer lost frames
    /// before this one (a transcoding decoder then waits for a keyframe instead of bridging the gap).
    @discardableResult
    public func write(stream id: UInt32, _ h: FrameHeader, payload: UnsafeRawBufferPointer, discontinuity: Bool = false) throws(MediaError) -> Bool {
        if let failure { throw failure }
        if let decoder = decoders[id], let encoder = encoders[id] {
            return try transcode(stream: id, h, payload: payload, discontinuity: discontinuity || h.flags.contains(.discontinuity), decoder, encoder)
        }
        if let encoder = encoders[id] { return try encodeRaw(stream: id, h, payload: payload, encoder) }
        if let encoder = audioEncoders[id] {
            if origin == nil && hasVideo {
                // Until the file starts at a video keyframe, keep the raw periods (see `pending`).
                return try writePacket(stream: id, h, payload: payload)
            }
            return try writeAudio(stream: id, try encoder.encode(s16: payload, pts: h.pts), template: h)
        }
        return try writePacket(stream: id, h, payload: payload)
    }

    /// Headers of the frames inside a transcoding decoder, by index: a decoder may hold frames back
    /// and reorder them, and each picture is stamped with its own frame's time.
    private var decoding: [UInt32: [Int64: FrameHeader]] = [:]

    /// The index of each frame handed to a stream's decoder or encoder: this recorder's own count, the
    /// codec's timestamp and the key that finds the frame's header again. (Never the publisher's sequence
    /// number: another process's number, any 64-bit value, repeated when a publisher restarts.)
    private var decoderFrames: [UInt32: Int64] = [:]
    private var encoderFrames: [UInt32: Int64] = [:]

    private static func next(_ counts: inout [UInt32: Int64], _ id: UInt32) -> Int64 {
        let n = counts[id, default: 0]
        counts[id] = n + 1
        return n
    }

    /// Decodes one compressed frame and encodes the pictures the decoder gives back (a frame the
    /// decoder rejects is skipped; a picture of another size is scaled to the encoder's).
    private func transcode(stream id: UInt32, _ h: FrameHeader, payload: UnsafeRawBufferPointer, discontinuity: Bool,
                           _ decoder: VideoDecoder, _ encoder: VideoEncoder) throws(MediaError) -> Bool {
        let index = Self.next(&decoderFrames, id)
        decoding[id, default: [:]][index] = h
        let pictures = collect(stream: id) { body in
            try decoder.decode(payload, keyframe: h.flags.contains(.keyframe), discontinuity: discontinuity, index: index, body)
        }
        // Frames the decoder skipped or dropped never come back: keep only the latest few.
        if let held = decoding[id], held.count > 64 { decoding[id] = held.filter { $0.key > index - 64 } }
        return try encode(pictures, stream: id, encoder)
    }

    /// The decoded pictures `run` hands out, packed, each with its own frame's header.
    private func collect(stream id: UInt32, _ run: ((VideoDecoder.Picture) throws -> Void) throws -> Void) -> [([UInt8], FrameHeader)] {
        var pictures: [([UInt8], FrameHeader)] = []
        try? run { p in
            guard let i = p.index, var own = decoding[id]?.removeValue(forKey: i) else { return }
            own.dts = own.pts  // encoded without B-frames: decode order is display order
            pictures.append((p.packed, own))
        }
        return pictures
    }

    private func encode(_ pictures: [([UInt8], FrameHeader)], stream id: UInt32, _ encoder: VideoEncoder) throws(MediaError) -> Bool {
        var wrote = false
        for (picture, header) in pictures {
            let r = picture.withUnsafeBytes { b in Result { () throws(MediaError) in try encodeRaw(stream: id, header, payload: b, encoder) } }
            if try r.get() { wrote = true }
        }
        return wrote
    }

    /// Whether this container can store `codec` as it is (unknown to the muxer, e.g. MPEG-TS: try).
    private func canCarry(_ codec: String) -> Bool {
        guard let desc = avcodec_descriptor_get_by_name(codec) else { return false }
        let answer = avformat_query_codec(context.pointee.oformat, desc.pointee.id, FF_COMPLIANCE_NORMAL)
        if answer < 0, ["mpegts", "rtp_mpegts", "hls"].contains(String(cString: context.pointee.oformat.pointee.name)) {
            // MPEG-TS cannot say; it has stream types for these (MJPEG, for one, is not among them).
            return Self.transportStreamCodecs.contains(codec)
        }
        return answer != 0
    }

    static let transportStreamCodecs: Set<String> = ["h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "aac", "mp2", "mp3", "ac3", "eac3", "opus"]

    /// Encodes one raw I420 picture and writes what the encoder gives back.
    private func encodeRaw(stream id: UInt32, _ h: FrameHeader, payload: UnsafeRawBufferPointer, _ encoder: VideoEncoder) throws(MediaError) -> Bool {
        let w = encoder.width, hgt = encoder.height
        let converter = converters[id]
        guard payload.count >= converter?.pictureSize ?? (w * hgt * 3 / 2) else { return false }
        let index = Self.next(&encoderFrames, id)
        rawFrames[id, default: [:]][index] = h
        let packets = try encoder.encode(index: index) { planes in
            if let converter { return converter.convert(payload, into: planes) }
            let sizes = [(w, hgt, 0), (w / 2, hgt / 2, w * hgt), (w / 2, hgt / 2, w * hgt + w * hgt / 4)]
            for (plane, (pw, ph, offset)) in zip(planes, sizes) {
                for y in 0..<ph { (plane.0 + y * plane.1).update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset + y * pw, count: pw) }
            }
        }
        var wrote = false
        for p in packets {
            guard var original = rawFrames[id]?.removeValue(forKey: p.index) else { continue }
            original.flags = p.keyframe ? .keyframe : []
            let result = p.bytes.withUnsafeBytes { b in Result { () throws(MediaError) in try writePacket(stream: id, original, payload: b) } }
            if try result.get() { wrote = true }
        }
        return wrote
    }

    private func writeAudio(stream id: UInt32, _ packets: [AudioEncoder.Packet], template: FrameHeader) throws(MediaError) -> Bool {
        var wrote = false
        for p in packets {
            var h = template
            h.pts = p.pts; h.dts = p.pts; h.duration = p.duration; h.flags = .keyframe
            let r = p.bytes.withUnsafeBytes { b in Result { () throws(MediaError) in try writePacket(stream: id, h, payload: b) } }
            if try r.get() { wrote = true }
        }
        return wrote
    }

    private func writePacket(stream id: UInt32, _ h: FrameHeader, payload: UnsafeRawBufferPointer) throws(MediaError) -> Bool {
        if let failure { throw failure }
        guard let index = indexOf[id] else { return false }
        let st = context.pointee.streams[Int(index)]!
        let isVideo = st.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO
        if origin == nil {
            // The file begins with a video keyframe (or with anything, when there is no video).
            // Audio arriving first is kept (a few seconds at most): it may belong after that keyframe.
            if hasVideo && !(isVideo && h.flags.contains(.keyframe)) {
                if !isVideo && pendingBytes < 16 << 20 {
                    pending.append((id, h, Array(payload)))
                    pendingBytes += payload.count
                } else {
                    skippedBeforeKeyframe += 1
                }
                return false
            }
            try start()
            origin = min(h.pts, h.dts)  // with B-frames the first keyframe decodes before it shows
            let early = pending
            pending.removeAll()
            for (pid, ph, bytes) in early where ph.pts >= origin! {
                let r = bytes.withUnsafeBytes { b in Result { () throws(MediaError) in try write(stream: pid, ph, payload: b) } }
                _ = try r.get()
            }
            skippedBeforeKeyframe += early.filter { $0.1.pts < origin! }.count
        }
        // Times are the publisher's numbers: differences that overflow, or that the container's time base
        // cannot hold, make the frame one that cannot be written (counted), never a trap or a muxer error.
        let (relative, ptsOverflow) = h.pts.subtractingReportingOverflow(origin!)
        if !ptsOverflow && relative < 0 { return false }  // from before the file began
        let (relativeDTS, dtsOverflow) = h.dts.subtractingReportingOverflow(origin!)
        guard !ptsOverflow, !dtsOverflow, h.duration >= 0 else { invalidTimestamps += 1; return false }
        // Everything before a new GOP goes to disk first, so a file cut short ends on whole GOPs.
        if writesFile && gopStreams.contains(index) && h.flags.contains(.keyframe) && schedule.hasUnflushed(frames: frames) { try flush() }
        let ns = AVRational(num: 1, den: 1_000_000_000)
        let tb = st.pointee.time_base
        var pts = av_rescale_q(relative, ns, tb), dts = av_rescale_q(relativeDTS, ns, tb)
        let duration = av_rescale_q(h.duration, ns, tb)
        // Capture times jitter: two frames may land on one tick of the container's time base. Muxers
        // need rising decode times, so such a frame is nudged one tick later, never dropped.
        if let last = lastDecodeTick[index], dts <= last {
            dts = last &+ 1
            pts = max(pts, dts)
        }
        // av_rescale_q answers AV_NOPTS_VALUE (Int64.min) when the result does not fit.
        guard pts != cm_no_pts(), dts != cm_no_pts(), duration != cm_no_pts(), pts >= dts else { invalidTimestamps += 1; return false }
        lastDecodeTick[index] = dts
        let (end, endOverflow) = h.dts.addingReportingOverflow(h.duration)
        decodeEnd = max(decodeEnd, endOverflow ? .max : end)  // decode order: B-frames show later than they arrive
        guard av_new_packet(packet, Int32(payload.count)) >= 0 else { throw .output(path: path, reason: "out of memory") }
        if payload.count > 0 { packet.pointee.data.update(from: payload.baseAddress!.assumingMemoryBound(to: UInt8.self), count: payload.count) }
        packet.pointee.stream_index = index
        packet.pointee.pts = pts
        packet.pointee.dts = dts
        packet.pointee.duration = duration
        if h.flags.contains(.keyframe) { packet.pointee.flags |= cm_packet_flag_key() }
        // Live: one fragment per frame, handed out at once (no interleaving queue, no waiting for a GOP).
        var r = live == nil ? av_interleaved_write_frame(context, packet) : av_write_frame(context, packet)
        av_packet_unref(packet)
        if live != nil && r >= 0 { r = av_write_frame(context, nil) }  // frag_custom: this ends the fragment
        guard r >= 0 else {
            // The file itself failed (disk full, I/O error): stop, keeping what plays. Otherwise the
            // muxer refused this packet, or a connection broke (the restreamer reconnects).
            if writesFile, let pb = context.pointee.pb, pb.pointee.error < 0 { throw stop(writing: pb.pointee.error) }
            throw .output(path: path, reason: MediaError.text(r))
        }
        if let live {
            avio_flush(context.pointee.pb)
            live.output(.fragment(live.take(), keyframe: isVideo && h.flags.contains(.keyframe)))
        }
        frames += 1
        bytes += payload.count
        try flushIfDue()
        return true
    }

    private var hasVideo: Bool {
        (0..<Int(context.pointee.nb_streams)).contains { context.pointee.streams[$0]!.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO }
    }

    /// Seconds from the start of this file to the frame `h` (half its duration tolerated: capture
    /// timestamps jitter), nil before the file started.
    public func position(of h: FrameHeader) -> Double? {
        // In floating point: the frame's times are the publisher's, and may be anything.
        guard let origin else { return nil }
        let sinceOrigin = Double(h.dts) - Double(origin)
        return (sinceOrigin + Double(h.duration) / 2) / 1e9
    }

    /// Seconds of media written so far.
    public var duration: Double {
        guard let origin, decodeEnd > origin else { return 0 }
        return (Double(decodeEnd) - Double(origin)) / 1e9
    }
    private var decodeEnd: Int64 = 0
    private var lastDecodeTick: [Int32: Int64] = [:]

    /// Closes without a trailer (the connection behind it broke: writing more would only wait).
    public func abandon() {
        guard started else { return }
        close()
    }

    /// Closes the output; returns what closing it reported (avio_closep: its last flush, then close).
    @discardableResult
    private func close() -> Int32 {
        var r: Int32 = 0
        if live != nil { cm_avio_writer_free(&context.pointee.pb) }
        else if context.pointee.oformat.pointee.flags & cm_format_flag_nofile() == 0 {
            if let pb = context.pointee.pb {
                avio_flush(pb)
                r = pb.pointee.error  // avio_closep does not report a failed last flush in every FFmpeg
            }
            let closed = avio_closep(&context.pointee.pb)
            if r >= 0 { r = closed }
        }
        started = false
        return r
    }

    /// Writes what the encoders still hold and the trailer, and closes the file. Throws when any of it
    /// failed: the file is then cut back to its last flush (see `stop(writing:)`), and the owner must
    /// not call the recording finished. Safe to call twice (a failure is thrown again).
    public func finish() throws(MediaError) {
        if let failure { throw failure }
        guard started else { return }
        // An encoder that fails to drain leaves its last frames out; the file is finished all the same.
        let drained = Result { () throws(MediaError) in try drainEncoders() }
        if let failure { throw failure }  // writing failed meanwhile: the recording stopped there
        // av_write_trailer also flushes, and reports what the output met.
        let trailer = av_write_trailer(context)
        guard trailer >= 0 else { throw stop(writing: trailer) }
        let closed = close()
        guard closed >= 0 else {
            // The data reached the kernel; closing said it did not reach the disk (NFS, a quota): what
            // the file holds is not known.
            let error = MediaError.writeFailed(path: path, reason: MediaError.text(closed), kept: nil)
            failure = error
            throw error
        }
        try drained.get()
    }

    /// Hands what the encoders still hold to the file, before its trailer.
    private func drainEncoders() throws(MediaError) {
        for (id, encoder) in audioEncoders {
            _ = try writeAudio(stream: id, try encoder.flush(), template: FrameHeader(stream: id, flags: .keyframe, sequence: 0, pts: 0, dts: 0,
                                                                                      captureTime: 0, duration: 0, epoch: 0))
        }
        for (id, decoder) in decoders {
            // The pictures a transcoding decoder still holds go in before its encoder is flushed.
            guard let encoder = encoders[id] else { continue }
            _ = try encode(collect(stream: id) { body in try decoder.drain(body) }, stream: id, encoder)
        }
        for (id, encoder) in encoders {
            for p in try encoder.flush() {
                guard var original = rawFrames[id]?.removeValue(forKey: p.index) else { continue }
                original.flags = p.keyframe ? .keyframe : []  // as in encodeRaw: the encoder decides
                let r = p.bytes.withUnsafeBytes { b in Result { () throws(MediaError) in try writePacket(stream: id, original, payload: b) } }
                _ = try r.get()
            }
        }
    }
}

/// The bytes libavformat writes for a live recorder, collected until the recorder hands them out.
private final class LiveOutput {
    let output: (Recorder.LiveChunk) -> Void
    var pending: [UInt8] = []
    init(_ output: @escaping (Recorder.LiveChunk) -> Void) { self.output = output }

    func take() -> [UInt8] {
        let out = pending
        pending = []  // a fresh buffer: the handed-out bytes keep theirs (no copy either way)
        return out
    }

    static let write: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int32) -> Int32 = { opaque, bytes, length in
        let me = Unmanaged<LiveOutput>.fromOpaque(opaque!).takeUnretainedValue()
        if let bytes, length > 0 { me.pending.append(contentsOf: UnsafeBufferPointer(start: bytes, count: Int(length))) }
        return length
    }
}
