import Foundation
import MediaJack
import MediaWire
import NIOCore
import NIOHTTP1
import IPNBus

/// The browsers watching one bus, and what a joining one needs: `mediajack serve`'s fan-out. The bus
/// thread hands each fragment (or JPEG picture) over once; every client gets it on its own channel. A
/// client that falls too far behind (a stalled tab, a slow link) is disconnected, never waited for:
/// its page reconnects and starts again at a keyframe.
final class ServeHub: Sendable {
    enum Kind: Sendable {
        case mp4, mjpeg
        var contentType: String { self == .mp4 ? "video/mp4" : "multipart/x-mixed-replace; boundary=\(ServeHub.boundary)" }
    }

    /// Per-client bytes queued and not yet sent above which the client is cut off.
    let backlogLimit: Int
    static let boundary = "mjpegframe"

    struct Client {
        let channel: any Channel
        let kind: Kind
        /// Bytes written to the channel and not yet sent.
        var inFlight = 0
    }

    struct Snapshot: Sendable {
        var stream: UInt32?
        var description: StreamDescription?
        /// Browsers get this stream as fMP4 (else JPEG only).
        var offersMP4 = false
        /// The audio stream muxed into the MP4, if any.
        var audio: UInt32?
        var initialization: [UInt8]?
        var mime: String?
        var sinceKeyframe: [LiveFeed.Fragment] = []
        var latestJPEG: [UInt8]?
        /// Wall-clock capture time of MP4 time zero, milliseconds since the Unix epoch.
        var captureMsAtZero: Double?

        /// Why a viewer of `kind` cannot start now; nil when it can.
        func unavailable(for kind: Kind, bus: String) -> String? {
            guard stream != nil else { return "no video stream on \(bus) yet" }
            guard kind == .mp4 else { return nil }
            guard offersMP4 else { return "this stream (\(description?.codec ?? "?")) is served as /stream.mjpeg only" }
            return initialization == nil || sinceKeyframe.isEmpty ? "waiting for the next keyframe" : nil
        }
    }

    private struct State {
        var clients: [ObjectIdentifier: Client] = [:]
        var feed = Snapshot()
        var served = 0
        var cutOff = 0
    }

    private let state = Locked(State())
    let busPath: String

    /// The loop every viewer's channel runs on (the server has one).
    let eventLoop: any EventLoop

    init(busPath: String, backlogLimit: Int, eventLoop: any EventLoop) {
        self.busPath = busPath
        self.eventLoop = eventLoop
        self.backlogLimit = backlogLimit
    }

    var clientCount: Int { state.withLock { $0.clients.count } }
    var wantsJPEG: Bool { state.withLock { s in s.clients.values.contains { $0.kind == .mjpeg } } }
    var counters: (clients: Int, served: Int, cutOff: Int) { state.withLock { ($0.clients.count, $0.served, $0.cutOff) } }

    // MARK: The bus side

    /// A new stream replaces the old one: every client's response ends (its page starts again).
    func started(_ feed: LiveFeed) {
        reset(to: Snapshot(stream: feed.stream, description: feed.description, offersMP4: feed.offersMP4, audio: feed.audioStream))
    }

    /// The stream ended: responses end, the pages show "stream ended" and wait for the next one.
    func ended() { reset(to: Snapshot()) }

    private func reset(to snapshot: Snapshot) {
        let old = state.withLock { s -> [Client] in
            s.feed = snapshot
            defer { s.clients.removeAll() }
            return Array(s.clients.values)
        }
        for c in old { Self.end(c.channel) }
    }

    /// New fMP4 fragments (on the bus thread).
    func publish(_ feed: LiveFeed, fragments: [LiveFeed.Fragment]) {
        let targets = state.withLock { s -> [Client] in
            s.feed.initialization = feed.initialization
            s.feed.mime = feed.mime
            s.feed.sinceKeyframe = feed.sinceKeyframe
            s.feed.captureMsAtZero = feed.captureTimeAtZero.map { Double($0) / 1e6 }
            return s.clients.values.filter { $0.kind == .mp4 }
        }
        guard !targets.isEmpty, !fragments.isEmpty else { return }
        // One buffer per fragment shared by every viewer, and one hop onto the event loop per frame
        // (not one per viewer): the cost of another viewer is a write, nothing more.
        let mp4 = fragments.map { ByteBuffer(bytes: $0.bytes) }
        eventLoop.execute { [self] in send(targets.map { ($0, mp4) }) }
    }

    /// A new JPEG picture (on the JPEG feed's thread).
    func publish(jpeg: [UInt8]) {
        let targets = state.withLock { s -> [Client] in
            let viewers = s.clients.values.filter { $0.kind == .mjpeg }
            // Kept for the next JPEG viewer only while someone watches: else it could be stale when one comes.
            if !viewers.isEmpty { s.feed.latestJPEG = jpeg }
            return viewers
        }
        guard !targets.isEmpty else { return }
        let picture = ByteBuffer(bytes: Self.part(jpeg))
        eventLoop.execute { [self] in send(targets.map { ($0, [picture]) }) }
    }

    // MARK: The HTTP side

    var snapshot: Snapshot { state.withLock { $0.feed } }

    /// Starts a stream response on `channel` (on its event loop) from the snapshot, then keeps it fed.
    /// Returns false when there is nothing to watch yet.
    /// `version`: the request's; an HTTP/1.0 client gets its stream unchunked, ended by closing.
    func join(_ channel: any Channel, kind: Kind, version: HTTPVersion = .http1_1) -> Bool {
        let joined: (start: [[UInt8]], feed: Snapshot)? = state.withLock { s in
            guard s.feed.unavailable(for: kind, bus: busPath) == nil else { return nil }
            s.clients[ObjectIdentifier(channel)] = Client(channel: channel, kind: kind)
            s.served += 1
            switch kind {
            case .mp4: return ([s.feed.initialization!] + s.feed.sinceKeyframe.map(\.bytes), s.feed)
            case .mjpeg: return (s.feed.latestJPEG.map { [Self.part($0)] } ?? [], s.feed)
            }
        }
        guard let (start, feed) = joined else { return false }
        var head = HTTPResponseHead(version: version.minor == 0 ? .http1_0 : .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: kind.contentType)
        if kind == .mp4 {
            // What this very init segment holds (status.json may have been read before the stream changed).
            if let mime = feed.mime { head.headers.add(name: "X-Mediajack-Mime", value: mime) }
            if let zero = feed.captureMsAtZero { head.headers.add(name: "X-Mediajack-Capture-Ms-At-Zero", value: String(zero)) }
        }
        head.headers.add(name: "Cache-Control", value: "no-store")
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        // The start (init segment and a GOP) is not counted against the backlog: only falling behind is.
        for bytes in start { channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: bytes))), promise: nil) }
        channel.flush()
        channel.closeFuture.whenComplete { [self] _ in leave(channel) }
        return true
    }

    func leave(_ channel: any Channel) {
        state.withLock { s in
            s.clients.removeValue(forKey: ObjectIdentifier(channel))
            // Pictures stop being made with the last JPEG viewer: the next one must not start on a stale one.
            if !s.clients.values.contains(where: { $0.kind == .mjpeg }) { s.feed.latestJPEG = nil }
        }
    }

    /// Sends each client its buffers (on the event loop). Backlogs are counted under one lock for the
    /// whole frame; a client past the limit is cut off instead.
    private func send(_ deliveries: [(client: Client, buffers: [ByteBuffer])]) {
        var cut: [any Channel] = []
        let accepted = state.withLock { s -> [(any Channel, [ByteBuffer])] in
            deliveries.compactMap { d in
                let id = ObjectIdentifier(d.client.channel)
                guard var c = s.clients[id], !d.buffers.isEmpty else { return nil }  // left or cut off meanwhile
                c.inFlight += d.buffers.reduce(0) { $0 + $1.readableBytes }
                if c.inFlight > backlogLimit {
                    s.clients.removeValue(forKey: id)
                    s.cutOff += 1
                    cut.append(c.channel)
                    return nil
                }
                s.clients[id] = c
                return (c.channel, d.buffers)
            }
        }
        for channel in cut { channel.close(promise: nil) }
        for (channel, buffers) in accepted {
            let id = ObjectIdentifier(channel)
            for b in buffers {
                let n = b.readableBytes
                channel.write(HTTPServerResponsePart.body(.byteBuffer(b))).whenComplete { [self] _ in
                    state.withLock { s in s.clients[id]?.inFlight -= n }
                }
            }
            channel.flush()
        }
    }

    /// One part of a multipart/x-mixed-replace response.
    static func part(_ jpeg: [UInt8]) -> [UInt8] {
        Array("--\(boundary)\r\nContent-Type: image/jpeg\r\nContent-Length: \(jpeg.count)\r\n\r\n".utf8) + jpeg + Array("\r\n".utf8)
    }

    private static func end(_ channel: any Channel) {
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }
}
