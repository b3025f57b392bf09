import Foundation
import IPNBus
import MediaWire

/// The JPEG pictures of one video stream, for browsers on the MJPEG fallback, made on a thread of
/// their own so that the work never delays the bus reader or the fMP4 viewers. MJPEG frames pass as
/// they are; anything else is decoded frame by frame (an H.264 decoder needs every one) and only the
/// newest picture is encoded: when the thread falls behind, JPEG viewers get fewer pictures, nobody
/// else notices. Past `backlogLimit` frames waiting, the waiting ones are dropped and decoding starts
/// again at the next keyframe.
public final class JPEGFeed: Sendable {
    public struct Counters: Sendable {
        /// Pictures handed out.
        public var made = 0
        /// Frames dropped unseen because the thread was behind by more than the backlog limit.
        public var dropped = 0
        /// Frames that could not be decoded or encoded (corrupt data, a decoder error), skipped.
        public var failures = 0
        public init() {}
    }

    public static let backlogLimit = 64

    private let passesThrough: Bool
    private let picture: @Sendable ([UInt8]) -> Void
    /// What the feeding threads and the feed's thread share. `bell` rings when the queue stops being
    /// empty and at `stop()` (a spare ring costs the feed's thread one look).
    private let shared = Locked(Shared())
    private let bell = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    private struct Shared {
        var queue: [(FrameHeader, [UInt8], Bool)] = []
        var counters = Counters()
        var stopping = false
        var lastSequence: UInt64?
        var restart = false
    }

    /// `picture` gets each JPEG picture, on the feed's thread (or, for MJPEG, on the caller's). The
    /// thread runs until `stop()`, which its owner must call.
    public init(_ d: StreamDescription, picture: @escaping @Sendable ([UInt8]) -> Void) {
        let maker = JPEGMaker(d)
        passesThrough = maker.passesThrough
        self.picture = picture
        if !passesThrough {
            // The maker (its decoder and encoder) is the feed's thread's alone.
            Thread.detachNewThread(owning: maker) { [self] maker in run(maker); finished.signal() }
        } else {
            finished.signal()
        }
    }

    deinit { stop() }

    public var statistics: Counters { shared.withLock { $0.counters } }

    /// Hands over one frame; never waits. A frame that does not follow the last one offered (the
    /// feed was idle while nobody watched as JPEG, or the bus dropped frames) restarts decoding at a keyframe.
    public func offer(_ h: FrameHeader, payload: [UInt8], discontinuity: Bool) {
        if passesThrough {
            shared.withLock { $0.counters.made += 1 }
            picture(payload)
            return
        }
        let wake = shared.withLock { s -> Bool in
            guard !s.stopping else { return false }
            let gap = discontinuity || s.restart || s.lastSequence.map { h.sequence != $0 &+ 1 } ?? false
            s.lastSequence = h.sequence
            s.restart = false
            if s.queue.count >= Self.backlogLimit {
                s.counters.dropped += s.queue.count + 1
                s.queue.removeAll()
                s.restart = true
                return false
            }
            s.queue.append((h, payload, gap))
            return s.queue.count == 1
        }
        if wake { bell.signal() }
    }

    /// Ends the thread; no picture is handed out after this returns.
    public func stop() {
        let first = shared.withLock { s -> Bool in
            guard !s.stopping else { return false }
            s.stopping = true
            s.queue.removeAll()
            return true
        }
        if first { bell.signal() }
        finished.wait()
        finished.signal()  // a second stop (deinit) returns at once
    }

    private func run(_ maker: JPEGMaker) {
        while true {
            let batch: [(FrameHeader, [UInt8], Bool)]? = shared.withLock { s in
                if s.stopping { return [] }
                if s.queue.isEmpty { return nil }
                defer { s.queue.removeAll(keepingCapacity: true) }
                return s.queue
            }
            guard let batch else { bell.wait(); continue }
            if batch.isEmpty { return }
            // Every frame is decoded; only the newest picture of the batch is encoded.
            var newest: [UInt8]?
            var failures = 0
            for (i, (h, payload, gap)) in batch.enumerated() {
                do {
                    if let jpeg = try maker.make(h, payload, discontinuity: gap, encode: i == batch.count - 1) { newest = jpeg }
                } catch {
                    failures += 1
                }
            }
            let delivered: Bool = shared.withLock { s in
                s.counters.failures += failures
                if newest != nil && !s.stopping { s.counters.made += 1; return true }
                return false
            }
            if delivered, let newest { picture(newest) }
        }
    }
}

/// Decodes frames of one video stream and encodes pictures to JPEG (libavcodec's MJPEG encoder,
/// full range), one at a time, on the caller's thread: `JPEGFeed`'s work, and the benchmark's.
public final class JPEGMaker {
    public let description: StreamDescription
    private var decoder: VideoDecoder?
    private var encoder: VideoEncoder?
    private var index: Int64 = 0

    public init(_ d: StreamDescription) { description = d }

    /// MJPEG frames are JPEG pictures already.
    public var passesThrough: Bool { description.codec == "mjpeg" }

    /// Decodes one frame; with `encode`, returns the picture it gave as JPEG (nil when the decoder
    /// held it back or is waiting for a keyframe).
    public func make(_ h: FrameHeader, _ payload: [UInt8], discontinuity: Bool, encode: Bool = true) throws -> [UInt8]? {
        if passesThrough { return payload }
        if decoder == nil { decoder = try VideoDecoder(description, fullRange: true) }
        var out: [UInt8]?
        try payload.withUnsafeBytes { b in
            try decoder!.decode(b, keyframe: h.flags.contains(.keyframe), discontinuity: discontinuity) { p in
                guard encode else { return }
                if encoder.map({ $0.width != p.width || $0.height != p.height }) ?? true {
                    encoder = try VideoEncoder(codec: .mjpeg, width: p.width, height: p.height, fps: 25, gop: 1, bitrate: 8_000_000)
                }
                index += 1
                let packets = try encoder!.encode(index: index) { p.copy(into: $0) }
                if let last = packets.last { out = last.bytes }
            }
        }
        return out
    }
}
