import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the streams of a media bus into a file (.mkv, .mp4 or .ts).",
        discussion: """
            Compressed streams are remuxed without re-encoding. Joining mid-stream, the file starts at a keyframe \
            (the publisher replays its GOP). The file is finalised on Ctrl-C/SIGTERM, at end of stream and at \
            --duration. A progress line shows on a terminal.

            The file goes to disk as it is recorded: its header at once, then everything up to each keyframe, and \
            at least every second. What a recorder killed mid-way (kill -9, a crash) leaves behind:
              .mkv  plays up to about a second before the kill (no index at the end:
                    seeking is slower, and the duration shows once read through)
              .mp4  written fragmented (index up front, a fragment per GOP or second):
                    plays up to its last fragment, about a second before the kill
              .ts   plays up to about a second before the kill

            Started before the bus exists, it says so and waits for a publisher to create it (--no-wait fails \
            at once instead).

            If writing fails (a full disk, an I/O error), recording stops, the file is cut back to its last whole \
            cluster or fragment, which plays, and the command exits 1 naming the cause; so does a file that could \
            not be finished (its trailer or last flush failed).
            """)

    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "Output file: .mkv, .mp4 or .ts.") var output: String
    @Option(help: "Stop after this many seconds of media.") var duration: Double?
    @Flag(name: .customLong("keep-raw"), help: "Store raw video as it comes (lossless, .mkv only) instead of encoding it to H.264.") var keepRaw = false
    @Option(help: "Which streams to record: kinds (video, audio) and/or stream ids as `mediajack ls` shows them, comma separated.")
    var streams = "video,audio"
    @Flag(help: "Wait for the next live keyframe instead of the replayed GOP (same as --join next-keyframe).") var nextKeyframe = false
    @Option(help: "Where a late recorder starts: cached-gop (the publisher replays it; default) or next-keyframe.") var join = "cached-gop"
    @Option(help: "Start a new file every this many seconds (cut at a keyframe): OUT-000.mkv, OUT-001.mkv, ...") var segment: Double?
    @Flag(help: "Keep recording when the publisher ends: a publisher that comes back continues the file (same parameters) or starts a new segment.")
    var follow = false
    @Option(name: .customLong("lossless-buffer"),
            help: "Never lose a frame while the output lags by less than this (e.g. 10s or 256MiB); past it, drop loudly until the next keyframe.")
    var losslessBuffer: String?
    @Flag(name: .customLong("no-wait"), help: "Fail at once when there is no bus at the path, instead of waiting for one to appear.")
    var noWait = false

    func validate() throws {
        guard ["cached-gop", "next-keyframe"].contains(join) else { throw ValidationError("--join must be cached-gop or next-keyframe") }
        if let losslessBuffer, ConsumerBuffer.Bound(losslessBuffer) == nil {
            throw ValidationError("--lossless-buffer takes seconds (10s) or a size (256MiB, 1GiB), not '\(losslessBuffer)'")
        }
        if keepRaw && !output.lowercased().hasSuffix(".mkv") { throw ValidationError("--keep-raw needs a .mkv output (MP4 and MPEG-TS cannot hold raw video)") }
    }

    func run() throws {
        installStopHandlers()
        PolicyRegistry.register(MediaPolicy.self)
        let kinds = Set(streams.split(separator: ",").map(String.init))
        do {
            // A recorder started before its publisher waits for the bus; the file is made once there is one.
            func consumer() throws -> MediaConsumer {
                try joinWaitingForBus(bus, noWait: noWait) { () throws(IPNError) in
                    try MediaConsumer(bus: bus, joinAtNextKeyframe: nextKeyframe || join == "next-keyframe", description: "mediajack record \(output)")
                }
            }
            // With a lossless buffer the consumer belongs to the buffer's thread; this one reads the buffer.
            let source: Source
            if let bound = losslessBuffer.flatMap(ConsumerBuffer.Bound.init) {
                source = .buffered(ConsumerBuffer(try consumer(), bound: bound) { FileHandle.standardError.write(Data("mediajack: \($0)\n".utf8)) })
            } else {
                source = .direct(try consumer())
            }
            defer { source.buffer?.stop() }
            let recorder = try SegmentedRecorder(output: output, segmentSeconds: segment, keepRawVideo: keepRaw)
            var line = ProgressLine()
            var open: Set<UInt32> = []
            var ended = false
            var replayed = 0
            // A failure ends the progress line before the error is printed (a write that failed, the bus gone).
            do {
                while !stopRequested && !ended {
                    let next: MediaEvent?
                    switch source {
                    case .buffered(let buffer): next = try buffer.next(timeout: 0.2)
                    case .direct(let consumer): next = try consumer.next(timeout: 0.2)
                    }
                    // Nothing came for a while: what was written still reaches the disk on time.
                    guard let event = next else { try recorder.flushIfDue(); continue }
                    switch event {
                    case .streamAdded(let id, _, let d):
                        if kinds.contains(d.kind.rawValue) || kinds.contains(String(id)) {
                            if try recorder.add(stream: id, d) { open.insert(id) } else {
                                FileHandle.standardError.write(Data("mediajack: \(output) cannot hold the \(d.kind.rawValue) stream (\(d.codec)); skipping it\n".utf8))
                            }
                        }
                    case .frame(let h, let payload, let discontinuity):
                        guard open.contains(h.stream) else { continue }
                        // Replayed frames a file starts with (not ones skipped while waiting for a keyframe).
                        if try recorder.write(stream: h.stream, h, bytes: payload, discontinuity: discontinuity), h.flags.contains(.replay) { replayed += 1 }
                        if let duration, recorder.duration >= duration { ended = true }
                    case .endOfStream(let id):
                        open.remove(id)
                        recorder.endOfStream(id)
                        if open.isEmpty && !follow { ended = true }
                    }
                    line.show(String(format: "%.1f s  %d frames  %d gaps  %.1f MB", recorder.duration, recorder.frames, source.gaps,
                                     Double(recorder.bytes) / 1e6))
                }
            } catch {
                line.end()
                throw error
            }
            line.end()
            // Recorded only once the trailer, the last flush and the close all succeeded.
            try recorder.finish()
            var summary = "recorded \(recorder.frames) frames, \(String(format: "%.2f", recorder.duration)) s, \(recorder.bytes) bytes into \(recorder.files.joined(separator: ", ")); \(source.gaps) gaps"
            if let b = source.buffer { summary += "; buffer peak \(b.peakBytes) bytes, \(b.dropped) dropped" }
            if replayed > 0 { summary += "; joined mid-stream: \(replayed) frames replayed from the publisher's cache" }
            // What the publisher sent that could not be used: said, never silent.
            if recorder.invalidTimestamps > 0 { summary += "; \(recorder.invalidTimestamps) frames skipped for times that cannot be written" }
            if source.malformed > 0 { summary += "; \(source.malformed) malformed messages skipped" }
            print(summary)
        } catch {
            throw fail(error)
        }
    }

    /// Where `record` reads its events: the consumer itself, or a lossless buffer draining it on its own thread.
    private enum Source {
        case direct(MediaConsumer)
        case buffered(ConsumerBuffer)

        var buffer: ConsumerBuffer? { if case .buffered(let b) = self { b } else { nil } }
        /// The consumer's gaps, read on this thread (a buffer keeps its own copy of its consumer's count).
        var gaps: Int {
            switch self {
            case .direct(let consumer): consumer.gaps
            case .buffered(let buffer): buffer.gaps
            }
        }
        var malformed: Int {
            switch self {
            case .direct(let consumer): consumer.malformed
            case .buffered(let buffer): buffer.malformed
            }
        }
    }
}
