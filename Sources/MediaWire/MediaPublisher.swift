import Atomics
import CIPNSys
import Glibc
import IPNBus

/// Publishes streams onto a media bus: describes them, sends timestamped frames, and answers the
/// bus's replay requests from its GOP cache so late joiners start at a keyframe at once.
///
/// Frames of streams whose every frame is a keyframe (raw video, PCM) are not cached: a late joiner
/// simply starts with the next one.
///
/// Not `Sendable`: one thread owns a publisher.
public final class MediaPublisher {
    public let socket: IPNSocket
    /// Stream numbers are unique within this process (several publishers may share one).
    private static let nextIndex = ManagedAtomic<UInt32>(0)
    private var descriptions: [UInt32: StreamDescription] = [:]
    private var sequences: [UInt32: UInt64] = [:]
    public let epoch: UInt32
    /// Per compressed video stream: the frames since its last keyframe (header, payload). Per audio
    /// stream: the last `audioHistory` nanoseconds of periods.
    private var gop: [UInt32: [(FrameHeader, [UInt8])]] = [:]
    public var audioHistory: Int64 = 5_000_000_000
    public private(set) var replaysServed = 0

    /// A replay to one late joiner in progress: what it still has to get, oldest first. A long GOP (a camera
    /// with a keyframe every 10 s has 250 frames cached) sent at once would overflow the joiner's queue, and
    /// the drop would cost it everything until the next keyframe; so a replay goes out paced (`sendReplays`),
    /// and the live frames published meanwhile (which the bus holds back from the joiner until its
    /// replay ends) join its tail. It ends, flagged, once it has caught up with the live stream.
    private struct ReplaySession {
        var stream: UInt32
        var target: UInt32
        var pending: [(FrameHeader, [UInt8])]
        var next = 0
        var isDone: Bool { next >= pending.count }
    }
    private var sessions: [ReplaySession] = []
    /// Replayed frames go out at most `replayBurst` per 20 ms (a quarter of the joiner's queue: up to 800
    /// frames/s on the default queue), whenever the publisher publishes or services requests. Paced in time,
    /// not per frame published: a publisher catching up after a stall publishes many frames at once, and its
    /// joiner's queue must not take a burst of replay with each.
    public var replayBurst: Int { max(4, (socket.busOptions?.effectiveQueueLength ?? 64) / 4) }
    static let replayInterval: Int64 = 20_000_000
    private var replayCredit = 0.0
    private var replayCreditAt: Int64 = 0

    /// Joins the media bus at `path`. With `creating`, a missing bus (or a stale file) is created with these
    /// options first, so a publisher may start before anyone else; without, there must be a bus.
    public init(bus path: String, description: String = "publisher", creating options: BusOptions? = nil) throws(IPNError) {
        socket = IPNSocket()
        socket.description = description
        if let options { try Self.join(socket, path, creating: options) } else { try socket.connect(path) }
        guard socket.busOptions?.policy == MediaPolicy.name else {
            throw .policyMismatch(path: path, bus: socket.busOptions?.policy ?? "?", requested: MediaPolicy.name)
        }
        epoch = UInt32(truncatingIfNeeded: ipn_monotonic_ns() / 1_000_000)
        try socket.send(MediaMessage.encodeConsumerOptions(receivesMedia: false, joinAtNextKeyframe: false))
    }

    /// Joins `path`, creating the bus when there is none. The creator is one node: the socket that binds
    /// (bringing the host up) is the one that joins, as IPN's bind-then-connect. A second socket bound only to
    /// keep the new bus up would be a node of its own, a member in `ipn stat` beside the publisher.
    private static func join(_ socket: IPNSocket, _ path: String, creating options: BusOptions) throws(IPNError) {
        do throws(IPNError) {
            try socket.connect(path)
            return
        } catch .noSuchBus, .staleBus, .busGone {
            // No bus, a file its host left behind, or a bus ending as we came: bring one up below.
        }
        PolicyRegistry.register(MediaPolicy.self)  // bind checks the options it creates the bus with
        socket.options = options
        socket.options.policy = MediaPolicy.name
        do throws(IPNError) {
            // Creates the bus, or (a publisher that started at the same moment was first) binds the one it made.
            try socket.bind(path)
        } catch .permissionDenied {
            // That bus is someone else's and this user may not manage it: join it like any publisher.
            try socket.connect(path)
            return
        }
        try socket.connect()
    }

    /// Declares a stream; returns its id (unique on the bus: derived from this process's pid).
    public func addStream(_ d: StreamDescription) throws(IPNError) -> UInt32 {
        // The bus would refuse it (and every frame of the stream after it): say so here instead.
        guard d.isWithinLimits else { throw .invalidOption("stream description with a number out of its range: \(d)") }
        let index = Self.nextIndex.wrappingIncrementThenLoad(ordering: .relaxed)
        let id = (UInt32(truncatingIfNeeded: getpid()) << 8) | (index & 0xff)
        descriptions[id] = d
        try socket.send(MediaMessage.encodeDescription(stream: id, epoch: epoch, d))
        return id
    }

    /// Publishes one frame: `payloadLength` bytes written in place by `fill` (zero-copy for large ones).
    public func publish(stream: UInt32, flags: FrameFlags, pts: Int64, dts: Int64? = nil, duration: Int64, captureTime: Int64? = nil,
                        payloadLength: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws(IPNError) {
        try serviceRequests()
        guard let d = descriptions[stream] else { throw .invalidOption("stream \(stream) was not added") }
        var flags = flags
        if d.allKeyframes { flags.insert(.keyframe) }
        let sequence = sequences[stream, default: 0]
        sequences[stream] = sequence + 1
        let header = FrameHeader(stream: stream, flags: flags, sequence: sequence, pts: pts, dts: dts ?? pts,
                                 captureTime: captureTime ?? Self.wallClock(), duration: duration, epoch: epoch)
        let cacheGOP = d.kind == .video && !d.allKeyframes
        let cacheAudio = d.kind == .audio && audioHistory > 0
        var cached: [UInt8] = []
        try socket.send(length: MediaMessage.frameHeaderSize + payloadLength) { out in
            MediaMessage.writeFrameHeader(header, into: out)
            let payload = UnsafeMutableRawBufferPointer(rebasing: out[MediaMessage.frameHeaderSize...])
            fill(payload)
            if cacheGOP || cacheAudio { cached = Array(payload) }
        }
        if cacheGOP {
            if flags.contains(.keyframe) { gop[stream] = [] }
            gop[stream, default: []].append((header, cached))
        } else if cacheAudio {
            gop[stream, default: []].append((header, cached))
            // Audio is replayed from where the replayed video starts: keep it back to the oldest cached
            // keyframe, however long the GOP, and `audioHistory` at least.
            var horizon = header.pts &- audioHistory
            for (id, frames) in gop where descriptions[id]?.kind == .video { if let k = frames.first?.0.pts, k < horizon { horizon = k } }
            if let first = gop[stream]!.firstIndex(where: { $0.0.pts >= horizon }), first > 64 { gop[stream]!.removeFirst(first) }
        }
        if cacheGOP || cacheAudio {
            for i in sessions.indices where sessions[i].stream == stream { sessions[i].pending.append((header, cached)) }
        }
        try sendReplays()
    }

    /// Ends a stream (consumers finalise their files). A late joiner still being replayed this stream's GOP gets
    /// the rest of its replay first, at the replay's pace: ended at once, it would lose the GOP's tail.
    public func endStream(_ stream: UInt32) throws(IPNError) {
        while sessions.contains(where: { $0.stream == stream }) {
            try sendReplays()
            if sessions.contains(where: { $0.stream == stream }) { usleep(UInt32(Self.replayInterval / 1000)) }
        }
        try socket.send(MediaMessage.encodeEndOfStream(stream: stream, epoch: epoch))
        descriptions[stream] = nil
        gop[stream] = nil
        sessions.removeAll { $0.stream == stream }
    }

    /// Answers replay requests the bus sent (non-blocking). Called before every frame.
    public func serviceRequests() throws(IPNError) {
        while let m = try socket.receive(nonBlocking: true) {
            guard m.sender == 0, case .replayRequest(let stream, let target, let since)? = try? MediaMessage.decode(m.bytes) else { continue }
            var frames = gop[stream] ?? []
            if let since { frames = frames.filter { $0.0.pts &+ $0.0.duration > since } }
            if frames.isEmpty, descriptions[stream] != nil {
                // Nothing to replay: say so with an empty replay end, so the consumer is not kept waiting.
                let marker = FrameHeader(stream: stream, flags: [.replay, .replayEnd], sequence: 0, pts: 0, dts: 0, captureTime: 0,
                                         duration: 0, epoch: epoch, target: target)
                try socket.send(length: MediaMessage.frameHeaderSize) { MediaMessage.writeFrameHeader(marker, into: $0) }
                continue
            }
            guard !frames.isEmpty else { continue }
            // A second request for the same joiner (it asked again) starts its replay afresh.
            sessions.removeAll { $0.stream == stream && $0.target == target }
            sessions.append(ReplaySession(stream: stream, target: target, pending: frames))
            replaysServed += 1
        }
        try sendReplays()
    }

    /// Sends what the pace allows of the replays in progress, oldest session first; the frame that empties a
    /// session is flagged as its end.
    private func sendReplays() throws(IPNError) {
        guard !sessions.isEmpty else { replayCreditAt = 0; return }
        let burst = Double(replayBurst), now = Self.monotonic()
        // A replay starts with a full burst (the joiner gets its keyframe at once); then `burst` per interval.
        replayCredit = replayCreditAt == 0 ? burst : min(burst, replayCredit + Double(now - replayCreditAt) / Double(Self.replayInterval) * burst)
        replayCreditAt = now
        for i in sessions.indices {
            while replayCredit >= 1, !sessions[i].isDone {
                var h = sessions[i].pending[sessions[i].next].0
                let payload = sessions[i].pending[sessions[i].next].1
                sessions[i].next += 1
                replayCredit -= 1
                h.flags.insert(.replay)
                if sessions[i].isDone { h.flags.insert(.replayEnd) }
                h.target = sessions[i].target
                try socket.send(length: MediaMessage.frameHeaderSize + payload.count) { out in
                    MediaMessage.writeFrameHeader(h, into: out)
                    payload.withUnsafeBytes { p in
                        if p.count > 0 { (out.baseAddress! + MediaMessage.frameHeaderSize).copyMemory(from: p.baseAddress!, byteCount: p.count) }
                    }
                }
            }
            // What was sent is let go (the payloads stay shared with the cache while it holds them).
            if sessions[i].next > 256 { sessions[i].pending.removeFirst(sessions[i].next); sessions[i].next = 0 }
        }
        sessions.removeAll { $0.isDone }
    }

    public static func wallClock() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    public static func monotonic() -> Int64 { Int64(ipn_monotonic_ns()) }
}
