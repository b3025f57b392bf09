import Foundation
import MediaJack
import MediaWire
import NIOCore
import NIOHTTP1
import Synchronization

/// The browsers watching one bus, and what a joining one needs: `mediajack serve`'s fan-out. The bus
/// thread hands each fragment (or JPEG picture) over once; every client gets it on its own channel. A
/// client that falls too far behind (a stalled tab, a slow link) is disconnected, never waited for:
/// its page reconnects and starts again at a keyframe.
final class ServeHub: Sendable {
    enum Kind: Sendable { case mp4, mjpeg }

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
        var initialization: [UInt8]?
        var mime: String?
        var sinceKeyframe: [LiveFeed.Fragment] = []
        var latestJPEG: [UInt8]?
    }

    private struct State {
        var clients: [ObjectIdentifier: Client] = [:]
        var feed = Snapshot()
        var served = 0
        var cutOff = 0
    }

    private let state = Mutex(State())
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
        let old = state.withLock { s -> [Client] in
            s.feed = Snapshot(stream: feed.stream, description: feed.description, offersMP4: feed.offersMP4)
            defer { s.clients.removeAll() }
            return Array(s.clients.values)
        }
        for c in old { Self.end(c.channel) }
    }

    /// The stream ended: responses end, the pages show "stream ended" and wait for the next one.
    func ended() {
        let old = state.withLock { s -> [Client] in
            s.feed = Snapshot()
            defer { s.clients.removeAll() }
            return Array(s.clients.values)
        }
        for c in old { Self.end(c.channel) }
    }

    func publish(_ feed: LiveFeed, fragments: [LiveFeed.Fragment], jpeg: [UInt8]?) {
        let targets = state.withLock { s -> [Client] in
            s.feed.initialization = feed.initialization
            s.feed.mime = feed.mime
            s.feed.sinceKeyframe = feed.sinceKeyframe
            s.feed.latestJPEG = feed.latestJPEG
            return Array(s.clients.values)
        }
        guard !targets.isEmpty else { return }
        // One buffer per fragment shared by every viewer, and one hop onto the event loop per frame
        // (not one per viewer): the cost of another viewer is a write, nothing more.
        let mp4 = fragments.map { ByteBuffer(bytes: $0.bytes) }
        let picture = jpeg.map { ByteBuffer(bytes: Self.part($0)) }
        eventLoop.execute { [self] in
            for c in targets {
                switch c.kind {
                case .mp4: for f in mp4 { send(f, to: c.channel) }
                case .mjpeg: if let picture { send(picture, to: c.channel) }
                }
            }
        }
    }

    // MARK: The HTTP side

    var snapshot: Snapshot { state.withLock { $0.feed } }

    /// Starts a stream response on `channel` (on its event loop) from the snapshot, then keeps it fed.
    /// Returns false when there is nothing to watch yet.
    func join(_ channel: any Channel, kind: Kind) -> Bool {
        let start: [[UInt8]]? = state.withLock { s in
            switch kind {
            case .mp4:
                guard let i = s.feed.initialization, !s.feed.sinceKeyframe.isEmpty else { return nil }
                s.clients[ObjectIdentifier(channel)] = Client(channel: channel, kind: kind)
                s.served += 1
                return [i] + s.feed.sinceKeyframe.map(\.bytes)
            case .mjpeg:
                guard s.feed.stream != nil else { return nil }
                s.clients[ObjectIdentifier(channel)] = Client(channel: channel, kind: kind)
                s.served += 1
                return s.feed.latestJPEG.map { [Self.part($0)] } ?? []
            }
        }
        guard let start else { return false }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: kind == .mp4 ? "video/mp4" : "multipart/x-mixed-replace; boundary=\(Self.boundary)")
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
        state.withLock { _ = $0.clients.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    private func send(_ bytes: ByteBuffer, to channel: any Channel) {
        let id = ObjectIdentifier(channel)
        enum Verdict { case gone, tooFar, send }
        let verdict = state.withLock { s -> Verdict in
            guard var c = s.clients[id] else { return .gone }  // left or cut off meanwhile
            c.inFlight += bytes.readableBytes
            s.clients[id] = c
            if c.inFlight > backlogLimit { s.clients.removeValue(forKey: id); s.cutOff += 1; return .tooFar }
            return .send
        }
        switch verdict {
        case .gone: return
        case .tooFar: channel.close(promise: nil); return
        case .send: break
        }
        let n = bytes.readableBytes
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(bytes))).whenComplete { [self] _ in
            state.withLock { s in s.clients[id]?.inFlight -= n }
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
