import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct Play: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play an audio stream from a media bus on a sound device, with a bounded latency.",
        discussion: """
            Joins the bus, takes its first audio stream (or --stream ID), decodes it (PCM, AAC, ...), converts \
            it to the device's rate and channels with libswresample, and plays it. Audio older than twice \
            --latency is skipped, so the sound stays live. When the stream ends the player waits for the next \
            one, unless --until-end. Started before the bus exists, it says so and waits for a publisher to create \
            it (--no-wait fails at once instead).

            Examples:
              mediajack play /tmp/cam alsa:default
              mediajack play /tmp/cam alsa:hw:1,0 --rate 44100 --latency 60
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "alsa:DEVICE (hw:1,0, plughw:1,0, default, ...).") var device: String
    @Option(help: "Stream id to play (default: the first audio stream).") var stream: UInt32?
    @Option(help: "Device sample rate (default: the stream's; a different one is resampled).") var rate: Int?
    @Option(help: "Device channels (default: the stream's).") var channels: Int?
    @Option(help: "Latency bound in milliseconds (device buffer; older audio is skipped).") var latency = 100
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Flag(name: .customLong("until-end"), help: "Exit when the stream ends.") var untilEnd = false
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of waiting for one to appear.")
    var noWait = false

    func validate() throws {
        guard device.hasPrefix("alsa:"), device.count > 5 else { throw ValidationError("the device must be alsa:NAME, e.g. alsa:default or alsa:hw:1,0") }
        guard (5...5000).contains(latency) else { throw ValidationError("--latency must be 5...5000 ms") }
        if let rate { guard (1000...768_000).contains(rate) else { throw ValidationError("--rate must be 1000...768000") } }
    }

    func run() throws {
        installStopHandlers()
        var s = AudioPlayer.Settings()
        s.device = String(device.dropFirst(5))
        s.rate = rate; s.channels = channels; s.latencyMilliseconds = latency; s.stream = stream; s.untilEnd = untilEnd
        var line = ProgressLine()
        do {
            let consumer = try joinWaitingForBus(bus, noWait: noWait) { () throws(IPNError) in
                try MediaConsumer(bus: bus, description: "mediajack play alsa:\(s.device)")
            }
            let deadline = duration.map { Date().addingTimeInterval($0) }  // from the join on, not the wait for the bus
            let p = try AudioPlayer.run(consumer, s, report: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) },
                                        shouldStop: { stopRequested || deadline.map { Date() >= $0 } ?? false }) { p in
                line.show(String(format: "%.1f s played  latency %.0f ms  %d late skipped  %d xruns", Double(p.framesPlayed) / Double(rate ?? 48_000),
                                 p.latencyMilliseconds, p.skippedLate, p.xruns))
            }
            line.end()
            print("played \(p.framesPlayed) frames from \(p.periodsReceived) periods; \(p.skippedLate) skipped as late, \(p.xruns) xruns, \(p.gaps) gaps")
        } catch {
            line.end()
            throw fail(error)
        }
    }
}
