import CMedia
import MediaWire

/// One video stream from the bus made ready for browsers, once for every viewer: a live fragmented
/// MP4 (H.264 as it comes, raw pictures encoded once) for Media Source Extensions, and JPEG pictures
/// for the MJPEG fallback (MJPEG as it comes, anything else decoded and encoded once, only while
/// someone watches that way). It keeps what a joining browser needs to start at once: the init
/// segment and the fragments since the last keyframe.
public final class LiveFeed {
    public struct Fragment: Sendable {
        public let bytes: [UInt8]
        public let keyframe: Bool
    }

    public let stream: UInt32
    public let description: StreamDescription
    /// The MP4 init segment (ftyp + moov), once the first keyframe was written.
    public private(set) var initialization: [UInt8]?
    /// The MIME type with its RFC 6381 codec ("video/mp4; codecs=\"avc1.64001e\""), for isTypeSupported.
    public private(set) var mime: String?
    /// Fragments from the last keyframe on: a joining browser gets these first.
    public private(set) var sinceKeyframe: [Fragment] = []
    /// The last JPEG picture (while JPEG is produced).
    public private(set) var latestJPEG: [UInt8]?

    private var mp4: Recorder?
    private var made: [Fragment] = []
    private var decoder: VideoDecoder?
    private var jpegEncoder: VideoEncoder?
    private var jpegIndex: Int64 = 0

    /// Whether browsers can play this stream through Media Source Extensions (fragmented MP4).
    public static func carriesMP4(_ d: StreamDescription) -> Bool { d.kind == .video && (d.codec == "h264" || d.codec == "rawvideo") }

    /// Why this stream is served as JPEG only (a raw layout libswscale or the encoder refused), if it is.
    public private(set) var mp4Refusal: String?
    /// JPEG pictures that could not be made (a corrupt frame, a decoder error), counted and skipped.
    public private(set) var jpegFailures = 0

    /// Whether browsers get this stream as fMP4 (Media Source Extensions); else JPEG only.
    public var offersMP4: Bool { mp4 != nil }

    /// A joiner is sent the fragments since the last keyframe; past this much (a very long GOP, or a
    /// source that never sends another keyframe) the history is dropped and joiners wait for the next one.
    public static let historyLimit = 32 << 20
    private var historyBytes = 0

    public init(stream: UInt32, _ d: StreamDescription) throws(MediaError) {
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
        if recorder.add(stream: stream, d) { mp4 = recorder } else { mp4Refusal = recorder.rejectedStreams.joined(separator: ", ") }
    }

    deinit { finish() }

    /// Feeds one frame of the stream. Returns the MP4 fragments it made (usually one; none before the
    /// first keyframe), and a JPEG picture when `jpeg` asks for one. Only the MP4 can throw: a JPEG
    /// that cannot be made is counted and skipped, never at the MP4 viewers' expense.
    public func add(_ h: FrameHeader, payload: [UInt8], discontinuity: Bool, jpeg: Bool) throws -> (fragments: [Fragment], jpeg: [UInt8]?) {
        var fragments: [Fragment] = []
        var mp4Failure: (any Error)?
        if let mp4 {
            do { _ = try payload.withUnsafeBytes { b throws(MediaError) in try mp4.write(stream: stream, h, payload: b) } } catch { mp4Failure = error }
            fragments = made
            made.removeAll()
            for f in fragments {
                if f.keyframe { sinceKeyframe.removeAll(keepingCapacity: true); historyBytes = 0 }
                // Without a keyframe at its head, the history is no use to a joiner.
                guard f.keyframe || !sinceKeyframe.isEmpty else { continue }
                sinceKeyframe.append(f)
                historyBytes += f.bytes.count
                if historyBytes > Self.historyLimit { sinceKeyframe.removeAll(); historyBytes = 0 }
            }
        }
        var picture: [UInt8]?
        if jpeg {
            do { picture = try makeJPEG(h, payload, discontinuity) } catch { jpegFailures += 1 }
        } else {
            decoder = nil
            latestJPEG = nil
        }
        if let mp4Failure { throw mp4Failure }  // after the JPEG: one path failing never costs the other
        return (fragments, picture)
    }

    private func makeJPEG(_ h: FrameHeader, _ payload: [UInt8], _ discontinuity: Bool) throws -> [UInt8]? {
        if description.codec == "mjpeg" { latestJPEG = payload; return payload }
        if decoder == nil { decoder = try VideoDecoder(description, fullRange: true) }
        var out: [UInt8]?
        try payload.withUnsafeBytes { b in
            try decoder!.decode(b, keyframe: h.flags.contains(.keyframe), discontinuity: discontinuity) { p in
                if jpegEncoder.map({ $0.width != p.width || $0.height != p.height }) ?? true {
                    jpegEncoder = try VideoEncoder(codec: .mjpeg, width: p.width, height: p.height, fps: 25, gop: 1, bitrate: 8_000_000)
                }
                jpegIndex += 1
                let packets = try jpegEncoder!.encode(index: jpegIndex) { p.copy(into: $0) }
                if let last = packets.last { out = last.bytes }
            }
        }
        if let out { latestJPEG = out }
        return out
    }

    /// "video/mp4; codecs=\"avc1.PPCCLL\"" from the avcC box of the init segment (profile, constraints, level).
    static func mime(initialization bytes: [UInt8]) -> String? {
        let tag: [UInt8] = Array("avcC".utf8)
        guard bytes.count > 12 else { return nil }
        for i in 0..<(bytes.count - 8) where bytes[i] == tag[0] && Array(bytes[i..<(i + 4)]) == tag {
            let p = bytes[i + 5], c = bytes[i + 6], l = bytes[i + 7]
            return "video/mp4; codecs=\"avc1.\(hex(p))\(hex(c))\(hex(l))\""
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
