import Foundation

/// Flags of a frame on the bus.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let keyframe = FrameFlags(rawValue: 1)
    /// Something was lost before this frame (a dropped period, a driver sequence gap).
    public static let discontinuity = FrameFlags(rawValue: 2)
    public static let endOfStream = FrameFlags(rawValue: 4)
    /// Part of a GOP replayed for one late joiner (`target`).
    public static let replay = FrameFlags(rawValue: 8)
    /// The last frame of a replay.
    public static let replayEnd = FrameFlags(rawValue: 16)
}

/// The fixed header of a frame: one timestamped access unit of a stream.
public struct FrameHeader: Sendable, Equatable {
    public var stream: UInt32
    public var flags: FrameFlags
    /// The publisher's frame count in this stream.
    public var sequence: UInt64
    /// Presentation and decode times, nanoseconds on CLOCK_MONOTONIC.
    public var pts: Int64
    public var dts: Int64
    /// Wall-clock time of capture, nanoseconds since the Unix epoch.
    public var captureTime: Int64
    public var duration: Int64
    /// Increases each time the publisher of this stream (re)starts.
    public var epoch: UInt32
    /// For replayed frames: the only node that gets it; 0 for everyone.
    public var target: UInt32

    public init(stream: UInt32, flags: FrameFlags, sequence: UInt64, pts: Int64, dts: Int64, captureTime: Int64,
                duration: Int64, epoch: UInt32, target: UInt32 = 0) {
        self.stream = stream; self.flags = flags; self.sequence = sequence; self.pts = pts; self.dts = dts
        self.captureTime = captureTime; self.duration = duration; self.epoch = epoch; self.target = target
    }
}

/// The media wire format, version 1 (docs/media-wire-format.md). Every message starts with the
/// 8-byte prefix "IPNM", version, kind, 2 reserved bytes; all integers little-endian.
public enum MediaMessage: Sendable, Equatable {
    case description(stream: UInt32, epoch: UInt32, StreamDescription)
    /// A frame; `payloadOffset` is where its bytes start in the message.
    case frame(FrameHeader, payloadOffset: Int)
    case endOfStream(stream: UInt32, epoch: UInt32)
    /// From the bus to a publisher: replay `stream` to `target`: a video stream's cached GOP, an audio
    /// stream's periods from `since` (the replayed video keyframe's pts, so the joiner starts in sync).
    case replayRequest(stream: UInt32, target: UInt32, since: Int64?)
    /// From a consumer to the bus: how it wants to be served.
    case consumerOptions(receivesMedia: Bool, joinAtNextKeyframe: Bool)

    public static let magic: [UInt8] = [0x49, 0x50, 0x4E, 0x4D]  // "IPNM"
    public static let version: UInt8 = 1
    public static let prefixSize = 8
    public static let frameHeaderSize = 72

    enum Kind: UInt8 { case description = 1, frame = 2, endOfStream = 3, replayRequest = 4, consumerOptions = 5 }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notMedia, unsupportedVersion(UInt8), unknownKind(UInt8), truncated(Int), badDescription
        public var description: String {
            switch self {
            case .notMedia: return "not a media message (no IPNM prefix)"
            case .unsupportedVersion(let v): return "media wire version \(v) is not supported (this is version \(MediaMessage.version))"
            case .unknownKind(let k): return "unknown media message kind \(k)"
            case .truncated(let n): return "truncated media message (\(n) bytes)"
            case .badDescription: return "malformed stream description (or a number out of its range)"
            }
        }
    }

    // MARK: decoding

    public static func decode(_ b: UnsafeRawBufferPointer) throws(DecodeError) -> MediaMessage {
        guard b.count >= prefixSize else { throw .truncated(b.count) }
        guard b[0] == magic[0], b[1] == magic[1], b[2] == magic[2], b[3] == magic[3] else { throw .notMedia }
        guard b[4] == version else { throw .unsupportedVersion(b[4]) }
        guard let kind = Kind(rawValue: b[5]) else { throw .unknownKind(b[5]) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        func i64(_ o: Int) -> Int64 { Int64(littleEndian: b.loadUnaligned(fromByteOffset: o, as: Int64.self)) }
        switch kind {
        case .description:
            guard b.count >= 16 else { throw .truncated(b.count) }
            guard let d = try? JSONDecoder().decode(StreamDescription.self, from: Data(b[16...])), d.isWithinLimits else { throw .badDescription }
            return .description(stream: u32(8), epoch: u32(12), d)
        case .frame:
            guard b.count >= frameHeaderSize else { throw .truncated(b.count) }
            let h = FrameHeader(stream: u32(8), flags: FrameFlags(rawValue: u32(12)), sequence: u64(16), pts: i64(24),
                                dts: i64(32), captureTime: i64(40), duration: i64(48), epoch: u32(56), target: u32(60))
            return .frame(h, payloadOffset: frameHeaderSize)
        case .endOfStream:
            guard b.count >= 16 else { throw .truncated(b.count) }
            return .endOfStream(stream: u32(8), epoch: u32(12))
        case .replayRequest:
            guard b.count >= 16 else { throw .truncated(b.count) }
            return .replayRequest(stream: u32(8), target: u32(12), since: b.count >= 24 ? i64(16) : nil)
        case .consumerOptions:
            guard b.count >= 10 else { throw .truncated(b.count) }
            return .consumerOptions(receivesMedia: b[8] != 0, joinAtNextKeyframe: b[9] != 0)
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> MediaMessage {
        let r = bytes.withUnsafeBytes { b in Result { () throws(DecodeError) in try decode(b) } }
        return try r.get()
    }

    // MARK: encoding

    static func prefix(_ kind: Kind) -> [UInt8] { magic + [version, kind.rawValue, 0, 0] }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    public static func encodeDescription(stream: UInt32, epoch: UInt32, _ d: StreamDescription) -> [UInt8] {
        prefix(.description) + le(stream) + le(epoch) + ((try? [UInt8](JSONEncoder().encode(d))) ?? [])
    }

    public static func encodeEndOfStream(stream: UInt32, epoch: UInt32) -> [UInt8] {
        prefix(.endOfStream) + le(stream) + le(epoch)
    }

    public static func encodeReplayRequest(stream: UInt32, target: UInt32, since: Int64? = nil) -> [UInt8] {
        prefix(.replayRequest) + le(stream) + le(target) + (since.map { le($0) } ?? [])
    }

    public static func encodeConsumerOptions(receivesMedia: Bool, joinAtNextKeyframe: Bool) -> [UInt8] {
        prefix(.consumerOptions) + [receivesMedia ? 1 : 0, joinAtNextKeyframe ? 1 : 0]
    }

    /// Writes the 72-byte frame header at the start of `out` (which holds the payload after it).
    public static func writeFrameHeader(_ h: FrameHeader, into out: UnsafeMutableRawBufferPointer) {
        let p = prefix(.frame)
        for i in 0..<prefixSize { out[i] = p[i] }
        out.storeBytes(of: h.stream.littleEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: h.flags.rawValue.littleEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: h.sequence.littleEndian, toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: h.pts.littleEndian, toByteOffset: 24, as: Int64.self)
        out.storeBytes(of: h.dts.littleEndian, toByteOffset: 32, as: Int64.self)
        out.storeBytes(of: h.captureTime.littleEndian, toByteOffset: 40, as: Int64.self)
        out.storeBytes(of: h.duration.littleEndian, toByteOffset: 48, as: Int64.self)
        out.storeBytes(of: h.epoch.littleEndian, toByteOffset: 56, as: UInt32.self)
        out.storeBytes(of: h.target.littleEndian, toByteOffset: 60, as: UInt32.self)
        out.storeBytes(of: UInt64(0), toByteOffset: 64, as: UInt64.self)
    }
}
