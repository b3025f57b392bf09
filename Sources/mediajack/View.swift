import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct View: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a bus's video live in a window (SDL2), and hear its audio if asked.",
        discussion: """
            Joins the bus like any consumer: it starts at a keyframe, and it never slows the bus (a thread \
            drains and decodes; the window shows the newest picture at its own pace). Until a picture can \
            be shown it says why ("waiting for a publisher", "waiting for a keyframe"); when the publisher \
            leaves it keeps the last picture dimmed under "stream ended" and picks the stream up again when \
            a publisher comes back. Started before the bus exists, it says "waiting for a bus" until a publisher \
            creates it (--no-wait fails at once instead).

            Keys: f fullscreen, o overlay (resolution, fps, dropped pictures, latency from capture to \
            screen), q or Esc quit.

            Examples:
              mediajack view /tmp/cam
              mediajack view /tmp/cam --audio alsa:default
              mediajack view /tmp/cam --stream 1 --fullscreen
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Option(help: "Video stream id (default: the first video stream).") var stream: UInt32?
    @Option(help: "Also play the bus's first audio stream on alsa:DEVICE.") var audio: String?
    @Flag(help: "Start fullscreen.") var fullscreen = false
    @Flag(name: .customLong("no-overlay"), help: "Start with the overlay hidden.") var noOverlay = false
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of opening the window and waiting for one to appear.")
    var noWait = false

    func validate() throws {
        if let audio { guard audio.hasPrefix("alsa:"), audio.count > 5 else { throw ValidationError("--audio must be alsa:NAME, e.g. alsa:default") } }
    }

    func run() throws {
        PolicyRegistry.register(MediaPolicy.self)
        let say: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("mediajack: \($0)\n".utf8)) }
        do {
            // SDL waits until the window manager maps the window, with no time limit. Until the window is up,
            // Ctrl-C and SIGTERM keep their default action (nothing to save yet), and a wait of more than 5 s is said.
            let slowWindow = DispatchWorkItem {
                say("the window is not shown yet: waiting for the window manager to map it (Ctrl-C ends)")
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + 5, execute: slowWindow)
            let window = try ViewerWindow(title: "mediajack view \(bus)", fullscreen: fullscreen, report: say)
            slowWindow.cancel()
            installStopHandlers()
            // Started before its bus, the window is up at once and says it waits ("waiting for a bus").
            let path = bus
            let waiting: (@Sendable () -> Void)? = noWait ? nil : { @Sendable in say("waiting for a bus at \(path) (--no-wait to fail instead)") }
            let viewer = try LiveViewer(bus: bus, stream: stream, report: say, whenWaitingForBus: waiting)
            defer { viewer.stop() }
            if !window.hasFont { say("no font found (install fonts-dejavu-core): the overlay and state lines are not drawn") }
            if noOverlay { window.toggleOverlay() }
            var sound: BackgroundAudio?  // started once the viewer is on the bus
            let deadline = duration.map { Date().addingTimeInterval($0) }
            var fitted: StreamDescription?
            var drawn: (serial: Int, state: LiveViewer.State, at: Date)? = nil
            while !stopRequested && deadline.map({ Date() < $0 }) ?? true {
                let input = window.handleEvents(timeout: 0.005)
                if input == .quit { break }
                if let e = viewer.error { throw e }
                let now = viewer.current()
                if sound == nil, let audio, now.state != .waitingForBus { sound = BackgroundAudio(bus: bus, device: String(audio.dropFirst(5)), say: say) }
                if let d = now.stream, d != fitted, let w = d.width, let h = d.height {
                    window.fit(width: w, height: h)
                    fitted = d
                }
                // Drawn when something changed (a picture, the state, the window), and twice a second for the overlay.
                let serial = now.picture?.serial ?? 0
                if input == .none, let drawn, drawn.serial == serial, drawn.state == now.state, Date().timeIntervalSince(drawn.at) < 0.5 { continue }
                if let p = now.picture { viewer.shown(p.serial) }
                let s = window.stats
                var lines: [String] = []
                if let d = now.stream {
                    lines.append("\(d.width ?? 0)x\(d.height ?? 0) \(d.codec)  \(String(format: "%.0f", s.fps)) fps")
                    lines.append("dropped \(now.counters.dropped)  latency \(String(format: "%.0f", s.latencyMilliseconds)) ms")
                }
                window.draw(now.picture, status: now.state == .playing ? nil : now.state.rawValue, overlayLines: lines)
                drawn = (serial, now.state, Date())
            }
            sound?.stop()
            let c = viewer.current().counters
            print("showed \(window.stats.shown) pictures of \(c.decoded) decoded from \(c.streams) stream(s); \(c.dropped) dropped, \(c.gaps) gaps, \(c.corrupt) undecodable")
            if let p50 = window.stats.latency(percentile: 0.5), let p99 = window.stats.latency(percentile: 0.99) {
                print(String(format: "capture to screen: %.0f ms median, %.0f ms at the 99th percentile", p50, p99))
            }
        } catch {
            throw fail(error)
        }
    }
}

