import CMedia
import MediaWire

/// One video stream from the bus made ready for browsers, once for every viewer: a live fragmented
/// MP4 (H.264 as it comes, raw pictures encoded once; with an audio stream of the bus muxed in, PCM
/// encoded to AAC) for Media Source Extensions. It keeps what a joining browser needs to start at
/// once: the init segment and the fragments since the last keyframe. (The MJPEG fallback's pictures
/// come from a `JPEGFeed`, on a thread of their own.)
public final class LiveFeed {
    public struct Fragment: Sendable {
        public let bytes: [UInt8]
        public let keyframe: Bool
    }

    public let stream: UInt32
    public let description: StreamDescription
    /// The audio stream muxed into the MP4 with the video, if any.
    public private(set) var audioStream: UInt32?
    /// Why the audio stream offered is not in the MP4 (a codec MP4 or MSE cannot take), if it is not.
    public private(set) var audioRefusal: String?
    /// The MP4 init segment (ftyp + moov), once the first keyframe was written.
    public private(set) var initialization: [UInt8]?
    /// The MIME type with its RFC 6381 codec ("video/mp4; codecs=\"avc1.64001e\""), for isTypeSupported.
    public private(set) var mime: String?
    /// When the picture at MP4 time zero was captured, wall clock (ns since the Unix epoch): a page
    /// adds a frame's media time to it for the frame's capture time, and so measures its delay.
    public private(set) var captureTimeAtZero: Int64?
    private var captureOffset: Int64?
    /// Fragments from the last keyframe on: a joining browser gets these first.
    public private(set) var sinceKeyframe: [Fragment] = []

    private var mp4: Recorder?
    private var made: [Fragment] = []

    /// Whether browsers can play this stream through Media Source Extensions (fragmented MP4).
    public static func carriesMP4(_ d: StreamDescription) -> Bool { d.kind == .video && (d.codec == "h264" || d.codec == "rawvideo") }

    /// Why this stream is served as JPEG only (a raw layout libswscale or the encoder refused), if it is.
    public private(set) var mp4Refusal: String?

    /// Whether browsers get this stream as fMP4 (Media Source Extensions); else JPEG only.
    public var offersMP4: Bool { mp4 != nil }

    /// A joiner is sent the fragments since the last keyframe; past this much (a very long GOP, or a
    /// source that never sends another keyframe) the history is dropped and joiners wait for the next one.
    public static let historyLimit = 32 << 20
    private var historyBytes = 0

    /// `audio`: an audio stream of the bus to mux into the MP4 (PCM is encoded to AAC; AAC as it comes).
    public init(stream: UInt32, _ d: StreamDescription, audio: (stream: UInt32, description: StreamDescription)? = nil) throws(MediaError) {
        guard d.kind == .video else { throw .unsupported("stream \(stream) is \(d.kind.rawValue), not video") }
        self.stream = stream
        description = d
        guard Self.carriesMP4(d) else { return }
        let recorder = try Recorder(liveMP4: { [unowned self] chunk in
            switch chunk {
            case .initialization(let bytes):
                initialization = bytes
                mime = Self.mime(initialization: bytes)
            case .fragment(let bytes, let keyframe):
                made.append(Fragment(bytes: bytes, keyframe: keyframe))
            }
        })
        guard recorder.add(stream: stream, d) else { mp4Refusal = recorder.rejectedStreams.joined(separator: ", "); return }
        mp4 = recorder
        if let audio {
            if !Self.carriesAudio(audio.description) {
                audioRefusal = "\(audio.description.codec) (browsers take AAC in MP4; PCM is encoded to it)"
            } else if recorder.add(stream: audio.stream, audio.description) {
                audioStream = audio.stream
            } else {
                audioRefusal = recorder.rejectedStreams.joined(separator: ", ")
            }
        }
    }

    /// Whether an audio stream can go into the browsers' MP4: AAC as it is, 16-bit PCM encoded to AAC.
    public static func carriesAudio(_ d: StreamDescription) -> Bool { d.kind == .audio && (d.codec == "aac" || d.codec == "pcm_s16le") }

    /// Feeds one frame of the audio stream. Returns the MP4 fragments it made (none before the first
    /// video keyframe: the MP4 starts there, with the audio from that instant).
    public func addAudio(_ h: FrameHeader, payload: [UInt8]) throws -> [Fragment] {
        guard let audioStream, h.stream == audioStream else { return [] }
        return try mux(audioStream, h, payload)
    }

    deinit { finish() }

    /// Feeds one frame of the stream. Returns the MP4 fragments it made (usually one; none before the
    /// first keyframe, and none for a stream served as JPEG only).
    public func add(_ h: FrameHeader, payload: [UInt8]) throws -> [Fragment] {
        let fragments = try mux(stream, h, payload)
        // Capture and presentation times of one publisher's frames are a fixed distance apart.
        if captureOffset == nil && h.captureTime > 0 { captureOffset = h.captureTime &- h.pts }
        if captureTimeAtZero == nil, let zero = mp4?.startTime, let captureOffset { captureTimeAtZero = zero &+ captureOffset }
        return fragments
    }

    /// Writes one frame of stream `id` into the MP4 and returns the fragments that made, kept for joiners.
    private func mux(_ id: UInt32, _ h: FrameHeader, _ payload: [UInt8]) throws -> [Fragment] {
        guard let mp4 else { return [] }
        defer { made.removeAll() }
        _ = try payload.withUnsafeBytes { b throws(MediaError) in try mp4.write(stream: id, h, payload: b) }
        return keep(made)
    }

    /// Adds fragments to the joiners' history (from the last video keyframe on) and returns them.
    private func keep(_ fragments: [Fragment]) -> [Fragment] {
        for f in fragments {
            if f.keyframe { sinceKeyframe.removeAll(keepingCapacity: true); historyBytes = 0 }
            // Without a keyframe at its head, the history is no use to a joiner.
            guard f.keyframe || !sinceKeyframe.isEmpty else { continue }
            sinceKeyframe.append(f)
            historyBytes += f.bytes.count
            if historyBytes > Self.historyLimit { sinceKeyframe.removeAll(); historyBytes = 0 }
        }
        return fragments
    }

    /// "video/mp4; codecs=\"avc1.PPCCLL\"" from the avcC box of the init segment (profile, constraints,
    /// level), with ", mp4a.40.N" (the AAC object type from the esds box) when there is an audio track.
    static func mime(initialization bytes: [UInt8]) -> String? {
        // avcC: version, then profile, constraint flags, level.
        guard let avcC = find("avcC", in: bytes), avcC + 4 <= bytes.count else { return nil }
        var codecs = "avc1.\(hex(bytes[avcC + 1]))\(hex(bytes[avcC + 2]))\(hex(bytes[avcC + 3]))"
        if find("mp4a", in: bytes) != nil {
            // The AudioSpecificConfig's first 5 bits are the object type (2: AAC-LC); LC when it cannot be read.
            codecs += ", mp4a.40.\(audioObjectType(bytes) ?? 2)"
        }
        return "video/mp4; codecs=\"\(codecs)\""
    }

    /// The offset just past the first occurrence of a box type `name` in `bytes`.
    private static func find(_ name: String, in bytes: [UInt8]) -> Int? {
        let tag = Array(name.utf8)
        guard bytes.count > 8 else { return nil }
        for i in 4..<(bytes.count - 4) where bytes[i] == tag[0] && bytes[i + 1] == tag[1] && bytes[i + 2] == tag[2] && bytes[i + 3] == tag[3] {
            return i + 4
        }
        return nil
    }

    /// The object type in the esds box's DecoderSpecificInfo (tag 5) of the audio track.
    private static func audioObjectType(_ bytes: [UInt8]) -> Int? {
        guard let esds = find("esds", in: bytes), esds >= 8 else { return nil }
        // The box's own size bounds the descriptors (its 4 bytes come before the type).
        let size = bytes[(esds - 8)..<(esds - 4)].reduce(0) { $0 << 8 | Int($1) }
        let end = min(bytes.count, esds - 8 + size)
        var i = esds + 4  // version and flags
        while i < end {
            let tag = bytes[i]
            i += 1
            var length = 0
            for _ in 0..<4 where i < end {  // expandable size: 7 bits a byte, high bit "more"
                let b = bytes[i]; i += 1
                length = length << 7 | Int(b & 0x7f)
                if b & 0x80 == 0 { break }
            }
            switch tag {
            case 3: i += 3  // ES_Descriptor: ES_ID and flags, then nested descriptors
            case 4: i += 13  // DecoderConfigDescriptor: object type, stream type, buffer size, bitrates
            case 5: return i < end ? Int(bytes[i] >> 3) : nil
            default: i += length
            }
        }
        return nil
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }

    /// Ends the MP4 (nothing more is written).
    public func finish() {
        mp4?.abandon()
        mp4 = nil
    }
}
