import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire
import NIOCore
import NIOPosix

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a bus's video to web browsers: a page that plays it live, many viewers at once.",
        discussion: """
            Open http://HOST:PORT/ in a browser. H.264 (and raw pictures, encoded once to H.264 here) play \
            through Media Source Extensions as fragmented MP4, one fragment per frame. The page plays 0.1 s \
            behind the newest data (?edge=S to change it) and shows its delay from capture to screen: about \
            75 ms at 720p30 in Chromium. Sound on the bus (AAC, or PCM encoded once to AAC here) is muxed \
            in; the page starts muted (browsers' autoplay rules) and a click turns it on. An audio publisher \
            that comes or goes restarts the browsers' stream at the next keyframe, with or without sound. \
            Each browser starts at the latest keyframe. Browsers without MSE or H.264, MJPEG sources, and \
            pages opened with ?mjpeg get multipart JPEG instead, made on a thread of its own. When the \
            publisher leaves, pages show "stream ended" and pick the stream up again when it returns.

            Started before the bus exists, it serves the page and waits for a publisher to create the bus, saying \
            so (--no-wait fails at once instead).

            The bus is never held back: a browser that falls --max-backlog behind (8 MiB unless told) is \
            disconnected, and its page reconnects at the latest keyframe.

            Endpoints: / (the page), /status.json, /stream.mp4, /stream.mjpeg.

            Examples:
              # http://127.0.0.1:8080/ on this machine only
              mediajack serve /tmp/cam
              # every interface: the LAN can watch
              mediajack serve /tmp/cam --listen 0.0.0.0:8080
              # any free port (printed), the picture alone
              mediajack serve /tmp/cam --listen 127.0.0.1:0 --no-audio
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Option(help: "Address and port to listen on (port 0: any free port).") var listen = "127.0.0.1:8080"
    @Option(help: "Video stream id to serve (default: the first video stream).") var stream: UInt32?
    @Option(name: .customLong("audio-stream"), help: "Audio stream id to play with it (default: the first AAC or 16-bit PCM audio stream).")
    var audioStream: UInt32?
    @Flag(name: .customLong("no-audio"), help: "Serve the picture only, even when the bus carries sound.") var noAudio = false
    @Option(name: .customLong("max-backlog"), help: "Cut off a viewer this far behind (bytes queued for it: 512KiB, 8MiB, ...).")
    var maxBacklog = "8MiB"
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of serving the page and waiting for one to appear.")
    var noWait = false

    func validate() throws {
        if noAudio && audioStream != nil { throw ValidationError("--audio-stream and --no-audio contradict each other") }
        guard let b = ConsumerBuffer.Bound(maxBacklog)?.bytes, b >= 64 << 10 else {
            throw ValidationError("--max-backlog must be a size of at least 64KiB, e.g. 512KiB or 8MiB")
        }
        guard Self.split(listen) != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080") }
    }

    static func split(_ address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() throws {
        installStopHandlers()
        PolicyRegistry.register(MediaPolicy.self)
        let say = { (line: String) in FileHandle.standardError.write(Data("mediajack: \(line)\n".utf8)) }
        let (host, port) = Self.split(listen)!
        do throws(any Error) {
            let makeConsumer = { () throws(IPNError) in try MediaConsumer(bus: bus, description: "mediajack serve http://\(listen)/") }
            // --no-wait fails before listening; otherwise the page is up (showing "waiting") while the bus is awaited.
            var joined: MediaConsumer? = nil
            if noWait { joined = try makeConsumer() }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let hub = ServeHub(busPath: bus, backlogLimit: ConsumerBuffer.Bound(maxBacklog)!.bytes!, eventLoop: group.next())
            defer { try? group.syncShutdownGracefully() }
            let server: any Channel
            do { server = try startHTTPServer(hub: hub, host: host, port: port, group: group) } catch {
                let why = (error as? IOError).map { String(cString: strerror($0.errnoCode)) } ?? "\(error)"
                throw MediaError.unsupported("cannot listen on \(listen): \(why)")
            }
            let bound = server.localAddress?.port ?? port
            // Unbuffered: a script waits for this line to learn the port.
            FileHandle.standardOutput.write(Data("serving \(bus) on http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/\n".utf8))
            let consumer = try joined ?? joinWaitingForBus(bus, noWait: false, makeConsumer)
            let deadline = duration.map { Date().addingTimeInterval($0) }
            var feed: LiveFeed?
            var pictures: JPEGFeed?  // the MJPEG fallback's, on a thread of its own
            var jpeg = JPEGFeed.Counters()
            var choice = VideoStreamChoice(wanted: stream)
            // Audio streams live on the bus, oldest first: the first one browsers can take goes with the picture.
            var sounds: [(stream: UInt32, description: StreamDescription)] = []
            var frames = 0, failures = 0, cutOff = 0
            var line = ProgressLine()
            func sound() -> (stream: UInt32, description: StreamDescription)? {
                noAudio ? nil : sounds.first { s in audioStream.map { s.stream == $0 } ?? LiveFeed.carriesAudio(s.description) }
            }
            func stopFeeds() {
                feed?.finish()
                feed = nil
                pictures?.stop()  // no picture of this stream reaches the hub after this
                if let p = pictures?.statistics { jpeg.made += p.made; jpeg.dropped += p.dropped; jpeg.failures += p.failures }
                pictures = nil
            }
            func serve(_ id: UInt32, _ d: StreamDescription) {
                stopFeeds()
                do {
                    let f = try LiveFeed(stream: id, d, audio: sound())
                    feed = f
                    pictures = JPEGFeed(d) { hub.publish(jpeg: $0) }
                    hub.started(f)
                    var how = f.offersMP4 ? (d.codec == "rawvideo" ? "MSE, encoded once to H.264" : "MSE") + "; MJPEG for browsers without it"
                        : "MJPEG only" + (f.mp4Refusal.map { ": MP4 cannot carry \($0)" } ?? "")
                    if let a = f.audioStream { how += "; with sound from stream \(a)" + (sound()?.description.codec == "aac" ? "" : ", encoded to AAC") }
                    if let why = f.audioRefusal { how += "; no sound: MP4 cannot carry \(why)" }
                    say("serving stream \(id): \(d.codec) \(d.width ?? 0)x\(d.height ?? 0) (\(how))")
                } catch {
                    hub.ended()  // nobody may keep watching the stream this one replaced
                    choice.drop(id)
                    say("cannot serve stream \(id): \(error)")
                }
            }
            while !stopRequested && deadline.map({ Date() < $0 }) ?? true {
                let c = hub.counters
                if c.cutOff > cutOff {
                    cutOff = c.cutOff
                    say("a viewer fell more than \(maxBacklog) behind and was cut off (\(cutOff) so far); its page reconnects at a keyframe")
                }
                line.show("\(feed == nil ? "waiting for a publisher" : "live")  \(frames) frames  \(c.clients) watching  \(c.served) served  \(c.cutOff) cut off")
                guard let event = try consumer.next(timeout: 0.2) else { continue }
                switch event {
                case .streamAdded(let id, _, let d) where d.kind == .audio:
                    // Described anew, it keeps its place (the oldest sound goes with the picture).
                    if let i = sounds.firstIndex(where: { $0.stream == id }) { sounds[i] = (id, d) } else { sounds.append((id, d)) }
                    // Sound arrived for a picture served without it (or described anew): start again with it.
                    if let f = feed, f.offersMP4, sound()?.stream == id, f.audioStream == nil || f.audioStream == id {
                        say("audio stream \(id) (\(d.codec)) joins the picture: browsers start again at the next keyframe")
                        serve(f.stream, f.description)
                    }
                case .streamAdded(let id, _, let d):
                    if choice.added(id, d) { serve(id, d) }
                case .frame(let h, let payload, _) where h.stream == feed?.audioStream:
                    do { hub.publish(feed!, fragments: try feed!.addAudio(h, payload: payload)) } catch {
                        failures += 1
                        if failures <= 5 { say("audio frame \(h.sequence) of stream \(h.stream) skipped: \(error)") }
                    }
                case .endOfStream(let id) where sounds.contains(where: { $0.stream == id }):
                    sounds.removeAll { $0.stream == id }
                    if let f = feed, f.audioStream == id {
                        say("audio stream \(id) ended: browsers start again at the next keyframe" + (sound() == nil ? ", without sound" : ""))
                        serve(f.stream, f.description)
                    }
                case .frame(let h, let payload, let discontinuity):
                    guard let f = feed, h.stream == f.stream else { continue }
                    do {
                        if hub.wantsJPEG { pictures?.offer(h, payload: payload, discontinuity: discontinuity) }
                        hub.publish(f, fragments: try f.add(h, payload: payload))
                        frames += 1
                    } catch {
                        failures += 1
                        if failures <= 5 { say("frame \(h.sequence) of stream \(h.stream) skipped: \(error)") }
                    }
                case .endOfStream(let id):
                    guard choice.ended(id) else { continue }
                    stopFeeds()
                    hub.ended()
                    say("stream \(id) ended")
                    // Another publisher's video still live on the bus: serve that one from its next keyframe.
                    if let next = choice.next() { serve(next.id, next.description) } else { say("waiting for a publisher") }
                }
            }
            line.end()
            stopFeeds()
            hub.ended()
            try? server.close().wait()
            let c = hub.counters
            print("served \(frames) frames to \(c.served) viewer connection(s); \(c.cutOff) cut off as too slow"
                  + (jpeg.made > 0 ? "; \(jpeg.made) JPEG pictures made, \(jpeg.dropped) frames skipped by the JPEG path, \(jpeg.failures) undecodable" : ""))
        } catch {
            throw fail(error)
        }
    }
}
