import ArgumentParser
import Atomics
import Foundation
import Glibc
import IPNBus
import MediaJack
import MediaWire

@main
struct MediaJackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediajack",
        abstract: "Timestamped media frames on an IPN bus: publish sources; record, view, serve and restream them, joining and leaving mid-stream.",
        discussion: """
            A media bus is an IPN bus with the `media` policy: late joiners start at a keyframe (the publisher \
            replays its cached GOP to them), slow consumers skip to the next keyframe instead of getting \
            undecodable frames, and a publisher that leaves ends its streams.

            Examples:
              ipn create /tmp/cam --policy media --mtu 16777216 --persistent
              mediajack publish test:video /tmp/cam --encode h264 --size 1280x720 --fps 30 &
              mediajack record /tmp/cam out.mkv --duration 10
              mediajack view /tmp/cam                                   # a window
              mediajack serve /tmp/cam --listen 127.0.0.1:8080          # a page for browsers
              mediajack restream /tmp/cam rtmp://live.example.com/app/KEY
              mediajack stat /tmp/cam
            """,
        subcommands: [Publish.self, Record.self, Play.self, View.self, WebcamCommand.self, Serve.self, Restream.self, Stat.self, List.self, Devices.self, Demo.self])

    static func main() {
        // Summaries and per-event lines reach a pipe or a log as they are printed, not at exit.
        StandardOutput.flushEveryLine()
        main(nil)
    }
}

/// Whether SIGINT/SIGTERM came: long-running commands finish cleanly (recorders write their trailer, every
/// command prints its summary).
var stopRequested: Bool { StopSignal.requested }

func installStopHandlers() {
    MediaLibrary.quiet()
    StopSignal.install()
}

func fail(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("mediajack: \(error)\n".utf8))
    return ExitCode(1)
}

/// The options `publish` creates a missing bus with: the media policy, an MTU for the source's largest
/// message, deep queues.
func mediaBusOptions(mtu: Int) -> BusOptions {
    var options = BusOptions()
    options.policy = MediaPolicy.name
    options.mtu = mtu
    options.queueLength = 256
    return options
}

/// Readers start before their writer: joins the bus at `path` with `join`, and when there is no bus there
/// yet waits for one to appear, saying so once on stderr; with `noWait` (`--no-wait`) fails at once instead.
func joinWaitingForBus<T>(_ path: String, noWait: Bool, _ join: () throws(IPNError) -> T) throws -> T {
    PolicyRegistry.register(MediaPolicy.self)
    if noWait { return try join() }
    let joined = try BusArrival.join(path, waiting: {
        FileHandle.standardError.write(Data("mediajack: waiting for a bus at \(path) (--no-wait to fail instead)\n".utf8))
    }, join)
    guard let joined else { throw StoppedWaiting(path: path) }
    return joined
}

/// Ctrl-C or SIGTERM before the bus a reader waited for appeared: it did nothing, and says so.
struct StoppedWaiting: Error, CustomStringConvertible {
    var path: String
    var description: String { "stopped while waiting for a bus at \(path); nothing was read" }
}

/// A progress line on a terminal, nothing otherwise.
struct ProgressLine {
    let enabled = isatty(STDERR_FILENO) != 0
    var last = Date.distantPast
    mutating func show(_ text: @autoclosure () -> String) {
        guard enabled, Date().timeIntervalSince(last) > 0.5 else { return }
        last = Date()
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text())".utf8))
    }
    func end() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}
