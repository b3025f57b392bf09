import CIPNSys
import Foundation
import IPNTestSupport
import MediaWire
@testable import IPNBus

/// A reproducible source of hostile numbers (SplitMix64): half the time one of the values that break
/// arithmetic (the ends of the range, around the sign bit, around 2^32), else any value. A fixed seed
/// makes every run the same run.
struct HostileNumbers: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static let extremes: [UInt64] = [0, 1, 2, .max, .max - 1, 1 << 63, (1 << 63) - 1, (1 << 63) + 1,
                                      1 << 32, (1 << 32) - 1, (1 << 32) + 1, 1 << 31, (1 << 31) - 1]

    /// Any 64-bit value, an extreme one half the time.
    mutating func u64() -> UInt64 { next() & 1 == 0 ? pick(Self.extremes) : next() }
    /// Int64.min, -1, 0, Int64.max and their neighbours half the time.
    mutating func i64() -> Int64 { Int64(bitPattern: u64()) }
    mutating func u32() -> UInt32 { UInt32(truncatingIfNeeded: u64()) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) * 0x1p-53 < p }
}

/// A joined node that writes its outbox by hand, as any process on the bus can: whatever header and
/// bytes it likes, published the way docs/bus-protocol.md §3.3 says (slot first, then the write cursor,
/// the doorbell when the ring was empty), waiting for room like a blocking sender does (arm, re-check,
/// sleep until the host signals).
struct RawSlotWriter {
    let socket: IPNSocket

    struct Stalled: Error, CustomStringConvertible {
        var description: String { "the host took nothing from the raw node's full outbox for \(TestSupport.patience) s" }
    }

    /// Bytes of payload a slot holds.
    var room: Int { socket.outbox!.slotStride - SlotHeader.size }

    /// Writes one slot with these header fields, taken as they are (any kind, any length); `fill` writes
    /// the payload as far as the slot holds it.
    func write(length: UInt32, kind: UInt32, sequence: UInt64, poolPosition: UInt64 = 0, sender: UInt32 = 0, flags: UInt32 = 0,
               _ fill: (UnsafeMutableRawBufferPointer) -> Void = { _ in }) throws {
        let outbox = socket.outbox!
        try waitForRoom(outbox)
        let slot = outbox.slot(socket.outboxWrite)
        fill(UnsafeMutableRawBufferPointer(start: slot + SlotHeader.size, count: min(Int(length), room)))
        slot.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
        slot.storeBytes(of: kind, toByteOffset: 4, as: UInt32.self)
        slot.storeBytes(of: sender, toByteOffset: 8, as: UInt32.self)
        slot.storeBytes(of: flags, toByteOffset: 12, as: UInt32.self)
        slot.storeBytes(of: sequence, toByteOffset: 16, as: UInt64.self)
        slot.storeBytes(of: poolPosition, toByteOffset: 24, as: UInt64.self)
        let old = socket.outboxWrite
        socket.outboxWrite += 1
        if outbox.publish(from: old, to: socket.outboxWrite) { _ = ipn_eventfd_signal(socket.doorbellFD) }
    }

    /// Writes one inline slot holding `bytes` (a message as a well-behaved sender would, but any sequence).
    func write(_ bytes: [UInt8], sequence: UInt64) throws {
        try write(length: UInt32(bytes.count), kind: SlotHeader.Kind.inline.rawValue, sequence: sequence) { out in
            bytes.withUnsafeBytes { b in if b.count > 0 { out.baseAddress!.copyMemory(from: b.baseAddress!, byteCount: min(b.count, out.count)) } }
        }
    }

    private func waitForRoom(_ outbox: MessageRing) throws {
        var deadline = Date().addingTimeInterval(TestSupport.patience)
        var seen = outbox.read.load(ordering: .sequentiallyConsistent)
        while socket.outboxWrite &- outbox.read.load(ordering: .sequentiallyConsistent) >= UInt64(outbox.capacity) {
            if outbox.armProducerWait(producerWrite: socket.outboxWrite) { continue }
            try socket.waitForWake(timeoutMilliseconds: 1000)
            // The limit is on the host making no progress at all, not on the whole run.
            let now = outbox.read.load(ordering: .sequentiallyConsistent)
            if now != seen { seen = now; deadline = Date().addingTimeInterval(TestSupport.patience) }
            if Date() >= deadline { throw Stalled() }
        }
    }
}

/// The hub fuzz: slots a raw sender writes onto a hub bus, and what the host and every receiver must
/// make of them. Drawn twice from one seed: once to predict (`expectation`), once to write.
struct HubFuzz: Sendable {
    let seed: UInt64
    let total: Int
    let mtu: Int
    let inlineCapacity: Int
    /// Payload bytes a ring slot holds (a longer length points past the slot).
    let room: Int
    let poolCapacity: Int
    /// Real pool messages (IPNSocket.send) spread over the run; the first slot is one (it creates the pool).
    static let poolSends = 64
    /// The first sequence numbers: enough for any wrong sum or difference of them to overflow.
    static let prefix: [UInt64] = [0, .max, 0, .max, 1, .max - 1, 1 << 63, (1 << 63) - 1, 0, .max]

    struct Slot {
        var length: UInt32, kind: UInt32, sequence: UInt64, position: UInt64, fill: UInt64
        var bySend = false
    }

    func slot(_ i: Int, _ rng: inout HostileNumbers) -> Slot {
        let sequence = i < Self.prefix.count ? Self.prefix[i] : rng.u64()
        let fill = rng.next()
        if i % (total / Self.poolSends) == 0 {
            return Slot(length: UInt32(inlineCapacity + 1 + rng.below(2048)), kind: 1, sequence: sequence, position: 0, fill: fill, bySend: true)
        }
        if i < Self.prefix.count { return Slot(length: UInt32(rng.below(9)), kind: 0, sequence: sequence, position: 0, fill: fill) }
        let cap = UInt32(inlineCapacity), poolCap = UInt64(poolCapacity)
        switch rng.below(100) {
        case 0..<55:  // well-formed inline (small, so the hex receiver's output stays small)
            return Slot(length: rng.chance(1.0 / 5000) ? cap : UInt32(rng.below(9)), kind: 0, sequence: sequence, position: rng.u64(), fill: fill)
        case 55..<80:  // inline, longer than the inline size, the slot, the MTU
            let any = cap + 1 + UInt32(rng.below(1 << 20))
            let length = rng.pick([cap + 1, UInt32(room + 1), UInt32(mtu), UInt32(mtu + 1), .max, .max - 1, 1 << 31, any] as [UInt32])
            return Slot(length: length, kind: 0, sequence: sequence, position: rng.u64(), fill: fill)
        case 80..<95:  // a kind that does not exist
            let any = 2 + UInt32(rng.below(1000))
            let kind = rng.pick([2, 3, 7, .max, 1 << 31, any] as [UInt32])
            return Slot(length: rng.u32(), kind: kind, sequence: sequence, position: rng.u64(), fill: fill)
        default:  // a reference into the sender's pool, anywhere, of any length
            let small = UInt32(rng.below(65))
            let length = rng.pick([0, 1, 2, 63, 64, small, UInt32(mtu + 1), UInt32(poolCapacity), UInt32(poolCapacity + 1), .max, 1 << 31] as [UInt32])
            let lap = UInt64(rng.below(4)), back = UInt64(rng.below(130))
            let position = rng.chance(0.5) ? rng.u64() : poolCap &* lap &+ poolCap &- back
            return Slot(length: length, kind: 1, sequence: sequence, position: position, fill: fill)
        }
    }

    /// What the host does with a slot (docs/bus-protocol.md §3.6): a known kind, within the MTU, an inline
    /// one within the inline size, a pool one within one lap of the sender's pool.
    func accepted(_ s: Slot) -> Bool {
        if s.bySend { return true }
        guard s.kind <= 1, Int(s.length) <= mtu else { return false }
        if s.kind == 0 { return Int(s.length) <= inlineCapacity }
        let length = UInt64(s.length), cap = UInt64(poolCapacity)
        return length <= cap && s.position <= UInt64.max - length && s.position % cap + length <= cap
    }

    struct Expectation: Equatable {
        var accepted = 0, rejected = 0, bytes = 0, hexBytes = 0, outOfOrder = 0
        var gaps: UInt64 = 0
    }

    /// The draw without writing: what the host refuses, and what `ipn recv` must count of the rest (its
    /// rule for sequence numbers is the one `ipn recv --help` states).
    func expectation() -> Expectation {
        var rng = HostileNumbers(seed: seed)
        var e = Expectation()
        var last: UInt64?
        for i in 0..<total {
            let s = slot(i, &rng)
            guard accepted(s) else { e.rejected += 1; continue }
            e.accepted += 1
            e.bytes += Int(s.length)
            e.hexBytes += 2 * Int(s.length) + 1
            if let prev = last {
                let ahead = s.sequence &- prev
                if ahead >= 1 && ahead < 1 << 63 {
                    let (sum, overflow) = e.gaps.addingReportingOverflow(ahead - 1)
                    e.gaps = overflow ? .max : sum
                } else {
                    e.outOfOrder += 1
                }
            }
            last = s.sequence
        }
        return e
    }

    /// Writes every slot: by hand, or (the pool messages) through the socket's own send with the drawn
    /// sequence number.
    func write(through writer: RawSlotWriter) throws {
        var rng = HostileNumbers(seed: seed)
        for i in 0..<total {
            let s = slot(i, &rng)
            if s.bySend {
                writer.socket.sequence = s.sequence
                try writer.socket.send(length: Int(s.length)) { $0.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: s.fill)) }
                continue
            }
            try writer.write(length: s.length, kind: s.kind, sequence: s.sequence, poolPosition: s.position,
                             sender: UInt32(truncatingIfNeeded: s.fill), flags: UInt32(truncatingIfNeeded: s.fill >> 32)) { out in
                withUnsafeBytes(of: s.fill) { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(out.count))) }
            }
        }
    }
}

/// The media fuzz: messages a raw publisher writes onto a media bus, and how many the host must refuse.
/// It owns an audio and a raw video stream (described first, ended last); in between come frames of
/// them with every header field drawn (sequence, times, flags, target), interleaved with what the bus
/// must refuse: frames of undescribed streams, garbage, truncated frames, wrong versions and kinds,
/// descriptions with numbers out of their range, replay requests, end of streams it does not own, slots
/// the ring itself refuses.
struct MediaFuzz: Sendable {
    let seed: UInt64
    let total: Int
    static let audio: UInt32 = 0x7A_0001, video: UInt32 = 0x7A_0002
    static let audioDescription = StreamDescription(kind: .audio, codec: "pcm_s16le", sampleRate: 48000, channels: 2, sampleFormat: "s16",
                                                    timeBase: (1, 48000), allKeyframes: true)
    static let videoDescription = StreamDescription(kind: .video, codec: "rawvideo", width: 32, height: 32, pixelFormat: "yuv420p",
                                                    frameRate: (25, 1), timeBase: (1, 25), allKeyframes: true)
    /// One 32x32 I420 picture (a frame of it fits a ring slot: 72 + 1536 bytes).
    static let picture = 32 * 32 * 3 / 2

    /// One message: its bytes (or, for a slot the ring refuses, its raw header), and whether the host
    /// refuses it. The slot's sequence number is drawn for each, whatever it holds.
    struct Slot {
        var bytes: [UInt8] = []
        var raw: (length: UInt32, kind: UInt32)?
        var refused = false
        var sequence: UInt64 = 0
    }

    static func frame(_ h: FrameHeader, payload: Int, fill: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: MediaMessage.frameHeaderSize + payload)
        out.withUnsafeMutableBytes { b in
            MediaMessage.writeFrameHeader(h, into: b)
            withUnsafeBytes(of: fill) { f in
                UnsafeMutableRawBufferPointer(rebasing: b[MediaMessage.frameHeaderSize...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: f.prefix(payload)))
            }
        }
        return out
    }

    /// A description of a stream nobody owns yet with one number out of its range.
    static func outOfRange(_ stream: UInt32, _ rng: inout HostileNumbers) -> [UInt8] {
        var d = audioDescription
        let huge = rng.pick([-1, 0, Int.max, Int.min, 1 << 40, Int(Int32.max) + 1])
        switch rng.below(4) {
        case 0: d.sampleRate = huge
        case 1: d.channels = rng.pick([0, -1, 65, Int.max, 1 << 31])
        case 2: d.kind = .video; d.width = rng.pick([-1, 32769, Int.max, Int.min, 1 << 40])
        default: d.kind = .video; d.frameRateNumerator = rng.pick([-1, Int.max, Int.min, Int(Int32.max) + 1]); d.frameRateDenominator = 1
        }
        return MediaMessage.encodeDescription(stream: stream, epoch: 1, d)
    }

    /// A frame of `stream` with every field drawn.
    static func hostileFrame(_ stream: UInt32, payload: Int, _ rng: inout HostileNumbers) -> [UInt8] {
        let h = FrameHeader(stream: stream, flags: FrameFlags(rawValue: rng.u32()), sequence: rng.u64(), pts: rng.i64(), dts: rng.i64(),
                            captureTime: rng.i64(), duration: rng.i64(), epoch: rng.u32(), target: rng.u32())
        return frame(h, payload: payload, fill: rng.next())
    }

    func slot(_ i: Int, _ rng: inout HostileNumbers) -> Slot {
        var s = message(i, &rng)
        s.sequence = rng.u64()
        return s
    }

    private func message(_ i: Int, _ rng: inout HostileNumbers) -> Slot {
        let ms: Int64 = 1_000_000
        switch i {
        case 0: return Slot(bytes: MediaMessage.encodeDescription(stream: Self.audio, epoch: 1, Self.audioDescription))
        case 1: return Slot(bytes: MediaMessage.encodeDescription(stream: Self.video, epoch: 1, Self.videoDescription))
        // A well-behaved start: the file begins at this keyframe, audio follows it.
        case 2: return Slot(bytes: Self.frame(FrameHeader(stream: Self.video, flags: .keyframe, sequence: 0, pts: 1000 * ms, dts: 1000 * ms,
                                                          captureTime: 0, duration: 40 * ms, epoch: 1), payload: Self.picture, fill: 1))
        case 3: return Slot(bytes: Self.frame(FrameHeader(stream: Self.audio, flags: .keyframe, sequence: 0, pts: 1000 * ms, dts: 1000 * ms,
                                                          captureTime: 0, duration: 20 * ms, epoch: 1), payload: 1024, fill: 2))
        // Times no container takes: a negative duration (audio, then video), decoding after showing.
        case 4: return Slot(bytes: Self.frame(FrameHeader(stream: Self.audio, flags: .keyframe, sequence: 1, pts: 1020 * ms, dts: 1020 * ms,
                                                          captureTime: 0, duration: -1, epoch: 1), payload: 1024, fill: 3))
        case 5: return Slot(bytes: Self.frame(FrameHeader(stream: Self.video, flags: .keyframe, sequence: 1, pts: 1040 * ms, dts: 1040 * ms,
                                                          captureTime: 0, duration: -1, epoch: 1), payload: Self.picture, fill: 4))
        case 6: return Slot(bytes: Self.frame(FrameHeader(stream: Self.video, flags: .keyframe, sequence: 2, pts: 1080 * ms, dts: 2000 * ms,
                                                          captureTime: 0, duration: 40 * ms, epoch: 1), payload: Self.picture, fill: 5))
        // A new stream whose sample rate fits no C int.
        case 7:
            var d = Self.audioDescription
            d.sampleRate = 1 << 40
            return Slot(bytes: MediaMessage.encodeDescription(stream: 0x8000_0007, epoch: 1, d), refused: true)
        // A picture whose sequence number is no Int64.
        case 8: return Slot(bytes: Self.frame(FrameHeader(stream: Self.video, flags: .keyframe, sequence: 1 << 63, pts: 1120 * ms, dts: 1120 * ms,
                                                          captureTime: 0, duration: 40 * ms, epoch: 1), payload: Self.picture, fill: 6))
        case total - 2: return Slot(bytes: MediaMessage.encodeEndOfStream(stream: Self.audio, epoch: 1))
        case total - 1: return Slot(bytes: MediaMessage.encodeEndOfStream(stream: Self.video, epoch: 1))
        default: break
        }
        let magic = MediaMessage.magic
        switch rng.below(100) {
        case 0..<40:
            let payload = rng.below(1025)
            return Slot(bytes: Self.hostileFrame(Self.audio, payload: payload, &rng))
        case 40..<60:
            let payload = rng.chance(0.5) ? Self.picture : rng.below(Self.picture)
            return Slot(bytes: Self.hostileFrame(Self.video, payload: payload, &rng))
        case 60..<70:  // a stream nobody described (ids from 2^31 up are nobody's here)
            let stream = rng.u32() | 0x8000_0000, payload = rng.below(200)
            return Slot(bytes: Self.hostileFrame(stream, payload: payload, &rng), refused: true)
        case 70..<80:  // not media: no IPNM prefix
            let count = rng.below(200)
            var bytes: [UInt8] = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if !bytes.isEmpty { bytes[0] = UInt8(rng.below(0x49)) }
            return Slot(bytes: bytes, refused: true)
        case 80..<85:  // a frame cut short of its 72-byte header
            let cut = rng.below(64)
            let rest: [UInt8] = (0..<cut).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            return Slot(bytes: magic + [1, 2, 0, 0] + rest, refused: true)
        case 85..<90:  // another version, or a kind that does not exist
            let version = UInt8(2 + rng.below(254)), kind = UInt8(6 + rng.below(250))
            let prefix: [UInt8] = rng.chance(0.5) ? [version, 2, 0, 0] : [1, rng.chance(0.5) ? 0 : kind, 0, 0]
            return Slot(bytes: magic + prefix + [UInt8](repeating: 0, count: 64 + rng.below(64)), refused: true)
        case 90..<94:
            let stream = rng.u32() | 0x8000_0000
            return Slot(bytes: Self.outOfRange(stream, &rng), refused: true)
        case 94..<97:  // only the bus asks for replays
            let since: Int64? = rng.chance(0.5) ? rng.i64() : nil
            return Slot(bytes: MediaMessage.encodeReplayRequest(stream: Self.audio, target: rng.u32(), since: since), refused: true)
        case 97..<99:  // the end of a stream it does not own
            return Slot(bytes: MediaMessage.encodeEndOfStream(stream: rng.u32() | 0x8000_0000, epoch: rng.u32()), refused: true)
        default:  // what the ring itself refuses: a kind that does not exist, a length past the inline size
            let raw: (UInt32, UInt32) = rng.chance(0.5) ? (rng.u32(), rng.pick([2, 3, .max] as [UInt32])) : (rng.pick([2049, 1 << 20, .max] as [UInt32]), 0)
            return Slot(raw: (length: raw.0, kind: raw.1), refused: true)
        }
    }

    /// How many messages the host must refuse (the ring's checks, then the media policy's).
    func refusals() -> Int {
        var rng = HostileNumbers(seed: seed)
        return (0..<total).reduce(0) { n, i in n + (slot(i, &rng).refused ? 1 : 0) }
    }

    func write(through writer: RawSlotWriter) throws {
        var rng = HostileNumbers(seed: seed)
        for i in 0..<total {
            let s = slot(i, &rng)
            if let raw = s.raw {
                try writer.write(length: raw.length, kind: raw.kind, sequence: s.sequence)
            } else {
                try writer.write(s.bytes, sequence: s.sequence)
            }
        }
    }
}
