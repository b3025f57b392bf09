/// The audio bus wire format (docs/audio-bus.md), version 1: what jackd-ipn and its clients exchange on
/// a bus with the `mixer` policy. Every message starts with a 32-byte header; samples are interleaved
/// 32-bit float, little-endian, at the server's rate and channel count.
///
///   0  "IPNA"            4  version (1)     5  kind           6  reserved (2)
///   8  period index (UInt64): the server's period this audio is for
///  16  rate (UInt32)    20  channels (UInt16)  22 reserved (2)  24  frames (UInt32)
///  28  target (UInt32): the node a server's message to one JACK client is for (0 otherwise)
///  32  samples: frames × channels Float32 (JACK messages: see `JackWire`)
public enum AudioBusMessage {
    public static let magic: [UInt8] = [0x49, 0x50, 0x4E, 0x41]  // "IPNA"
    public static let version: UInt8 = 1
    public static let headerSize = 32

    public enum Kind: UInt8, Sendable {
        /// Server → every client: the mix of period `index`.
        case mix = 1
        /// Client → server: the client's audio for period `index`.
        case period = 2
        /// Server → the bus's policy: a JSON report shown by `ipn stat` / `jackd-ipn stat`.
        case report = 3
        /// Bus → server: a client left (its node id in `index`), so its slot is freed at once.
        case clientLeft = 4
        /// JACK client → server: a request (JSON after the header; `index` is the request's number).
        case jackRequest = 5
        /// Server → one JACK client (`target`): the answer to request `index` (JSON).
        case jackReply = 6
        /// Server → every JACK client: something in the graph changed (JSON).
        case jackEvent = 7
        /// Server → one JACK client (`target`): run period `index`; `channels` input ports' `frames` samples each.
        case process = 8
        /// JACK client → server: period `index` done; `channels` output ports' `frames` samples each.
        case processed = 9
        /// Bus → every JACK client: the server left.
        case serverGone = 10
    }

    public struct Header: Sendable, Equatable {
        public var kind: Kind
        public var index: UInt64
        public var rate: UInt32
        public var channels: UInt16
        public var frames: UInt32
        public var target: UInt32
        public init(kind: Kind, index: UInt64, rate: UInt32, channels: UInt16, frames: UInt32, target: UInt32 = 0) {
            self.kind = kind; self.index = index; self.rate = rate; self.channels = channels; self.frames = frames; self.target = target
        }
        /// Bytes of the whole message.
        public var size: Int { AudioBusMessage.headerSize + Int(frames) * Int(channels) * 4 }
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notAudio, unsupportedVersion(UInt8), unknownKind(UInt8), truncated(Int), badShape
        public var description: String {
            switch self {
            case .notAudio: return "not an audio bus message (no IPNA prefix)"
            case .unsupportedVersion(let v): return "audio bus version \(v) is not supported (this is version \(AudioBusMessage.version))"
            case .unknownKind(let k): return "unknown audio bus message kind \(k)"
            case .truncated(let n): return "truncated audio bus message (\(n) bytes)"
            case .badShape: return "audio bus message with impossible channels or frames"
            }
        }
    }

    public static func decodeHeader(_ b: UnsafeRawBufferPointer) throws(DecodeError) -> Header {
        guard b.count >= headerSize else { throw .truncated(b.count) }
        guard b[0] == magic[0], b[1] == magic[1], b[2] == magic[2], b[3] == magic[3] else { throw .notAudio }
        guard b[4] == version else { throw .unsupportedVersion(b[4]) }
        guard let kind = Kind(rawValue: b[5]) else { throw .unknownKind(b[5]) }
        let h = Header(kind: kind, index: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                       rate: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt32.self)),
                       channels: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 20, as: UInt16.self)),
                       frames: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: UInt32.self)),
                       target: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 28, as: UInt32.self)))
        switch kind {
        case .mix, .period:
            guard h.channels >= 1, h.channels <= 64, h.frames <= 1 << 20 else { throw .badShape }
            guard b.count >= h.size else { throw .truncated(b.count) }
        case .process, .processed:
            // Ports, not channels: a client may have none of a direction.
            guard h.channels <= 256, h.frames <= 1 << 14 else { throw .badShape }
            guard b.count >= h.size else { throw .truncated(b.count) }
        default: break
        }
        return h
    }

    public static func writeHeader(_ h: Header, into out: UnsafeMutableRawBufferPointer) {
        for i in 0..<4 { out[i] = magic[i] }
        out[4] = version
        out[5] = h.kind.rawValue
        out[6] = 0; out[7] = 0
        out.storeBytes(of: h.index.littleEndian, toByteOffset: 8, as: UInt64.self)
        out.storeBytes(of: h.rate.littleEndian, toByteOffset: 16, as: UInt32.self)
        out.storeBytes(of: h.channels.littleEndian, toByteOffset: 20, as: UInt16.self)
        out.storeBytes(of: UInt16(0), toByteOffset: 22, as: UInt16.self)
        out.storeBytes(of: h.frames.littleEndian, toByteOffset: 24, as: UInt32.self)
        out.storeBytes(of: h.target.littleEndian, toByteOffset: 28, as: UInt32.self)
    }

    /// A header-only message (report and clientLeft carry their own bytes after it).
    public static func encode(_ h: Header, body: [UInt8] = []) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: headerSize + body.count)
        out.withUnsafeMutableBytes { writeHeader(h, into: $0) }
        out.replaceSubrange(headerSize..., with: body)
        return out
    }
}
