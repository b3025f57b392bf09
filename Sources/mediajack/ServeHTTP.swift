import Foundation
import MediaJack
import MediaWire
import NIOCore
import NIOHTTP1
import NIOPosix

/// `mediajack serve`'s HTTP side (SwiftNIO): the page, its status, and the two live streams.
///   GET /             the player page
///   GET /status.json  what is on the bus: {"state", "streams": [{id, kind, codec, width, height, mime?, audio?, captureMsAtZero?}], "clients"}
///   GET /stream.mp4   fragmented MP4 from a keyframe on, for Media Source Extensions (503 before one)
///   GET /stream.mjpeg multipart JPEG pictures, for browsers without MSE and for MJPEG sources
final class ServeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let hub: ServeHub
    private var request: HTTPRequestHead?
    /// The request being answered is a HEAD: headers only.
    private var answeringHead = false

    init(hub: ServeHub) { self.hub = hub }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break
        case .end:
            guard let head = request else { return }
            request = nil
            route(head, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
        answeringHead = head.method == .HEAD
        guard head.method == .GET || head.method == .HEAD else {
            return respond(context, .methodNotAllowed, type: "text/plain", Array("only GET\n".utf8))
        }
        switch path {
        case "/", "/index.html":
            respond(context, .ok, type: "text/html; charset=utf-8", Array(servePageHTML.utf8))
        case "/status.json":
            respond(context, .ok, type: "application/json", status())
        case "/stream.mp4", "/stream.mjpeg":
            let kind: ServeHub.Kind = path == "/stream.mp4" ? .mp4 : .mjpeg
            let unavailable = hub.snapshot.unavailable(for: kind, bus: hub.busPath)
            if head.method == .HEAD {
                // What a GET would start with, without joining.
                return unavailable == nil ? respond(context, .ok, type: kind.contentType, [], head: true)
                    : respond(context, .serviceUnavailable, type: "text/plain", [], retry: true, head: true)
            }
            if unavailable != nil || !hub.join(context.channel, kind: kind, version: head.version) {
                respond(context, .serviceUnavailable, type: "text/plain", Array("\(unavailable ?? "waiting for the next keyframe")\n".utf8), retry: true)
            }
        case "/favicon.ico":
            respond(context, .noContent, type: "text/plain", [])
        default:
            respond(context, .notFound, type: "text/plain", Array("no such page: \(path) (try /)\n".utf8))
        }
    }

    private func status() -> [UInt8] {
        let s = hub.snapshot
        var streams: [[String: Any]] = []
        if let id = s.stream, let d = s.description {
            var entry: [String: Any] = ["id": id, "kind": d.kind.rawValue, "codec": d.codec, "width": d.width ?? 0, "height": d.height ?? 0]
            if let n = d.frameRateNumerator, let den = d.frameRateDenominator, den > 0 { entry["fps"] = Double(n) / Double(den) }
            if let mime = s.mime { entry["mime"] = mime }
            // mse: this stream comes as fMP4; ready: it can be joined now (its first keyframe was seen).
            entry["mse"] = s.offersMP4
            // audio: the id of the audio stream muxed into the fMP4 (AAC), when there is sound.
            if let a = s.audio { entry["audio"] = a }
            // captureMsAtZero: when the picture at the fMP4's time zero was captured (ms since the Unix
            // epoch): the page's delay from capture to screen is its display time minus that plus media time.
            if let zero = s.captureMsAtZero { entry["captureMsAtZero"] = zero }
            entry["ready"] = s.unavailable(for: s.offersMP4 ? .mp4 : .mjpeg, bus: hub.busPath) == nil
            streams.append(entry)
        }
        let body: [String: Any] = ["bus": hub.busPath, "state": s.stream == nil ? "waiting" : "live", "streams": streams, "clients": hub.clientCount]
        return Array((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }

    /// A whole response; `head`: answering a HEAD request (the headers only, no length).
    private func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, type: String, _ body: [UInt8],
                         retry: Bool = false, head isHead: Bool = false) {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "Content-Type", value: type)
        if !isHead { head.headers.add(name: "Content-Length", value: String(body.count)) }
        head.headers.add(name: "Cache-Control", value: "no-store")
        if retry { head.headers.add(name: "Retry-After", value: "1") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !body.isEmpty && !answeringHead { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)  // a malformed request or a reset connection ends that client only
    }
}

/// Listens on `host:port`; returns the bound channel (closing it stops the server).
func startHTTPServer(hub: ServeHub, host: String, port: Int, group: MultiThreadedEventLoopGroup) throws -> any Channel {
    try ServerBootstrap(group: group)
        .serverChannelOption(.backlog, value: 64)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        // A small kernel buffer per viewer: a stalled browser shows up in our own backlog within a
        // second or so (and is cut off there), instead of hiding megabytes of stale video in the kernel.
        .childChannelOption(.socketOption(.so_sndbuf), value: 256 << 10)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(ServeHTTPHandler(hub: hub))
            }
        }
        .bind(host: host, port: port).wait()
}
