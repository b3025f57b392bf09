import ArgumentParser
import Foundation
import IPNBus
import MediaJack
import MediaWire
import Synchronization

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole product in one command, with no camera or sound card.",
        discussion: """
            Brings up a media bus in a temporary directory, publishes test:video (H.264) and test:audio, attaches \
            a recorder a second into the stream (it starts at a replayed keyframe) for a few seconds, then prints \
            what happened and the commands to attach more consumers from another terminal while it runs.
            """)

    @Option(help: "Seconds to record.") var seconds = 4.0
    @Option(help: "Where to write the recording (default: in the temporary directory).") var output: String?

    func run() throws {
        installStopHandlers()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mediajack-demo-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bus = dir + "/camera"
        let out = output ?? dir + "/recording.mkv"
        do {
            // The demo's own node on the bus: it creates it, keeps it up between its threads' publishers, and asks
            // for its status at the end.
            PolicyRegistry.register(MediaPolicy.self)
            let holder = IPNSocket(policy: MediaPolicy.name)
            holder.options = mediaBusOptions(mtu: 4 << 20)
            holder.description = "mediajack demo"
            try holder.bind(bus)
            print("media bus \(bus) is up (policy media)")
            // The commands name this very executable, so they work when it is not on PATH (swift run).
            let me = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
            print("attach more consumers from another terminal while the demo runs:")
            print("  \(me) record \(bus) /tmp/mine.mkv --duration 3")
            print("  \(me) stat \(bus)")
            print("  \(me) view \(bus)                                  # a window (needs a display)")
            print("  \(me) serve \(bus) --listen 127.0.0.1:8080         # then open http://127.0.0.1:8080/")
            let stop = ManagedFlag()
            let group = DispatchGroup()
            let videoReport = Box<String>("")
            let audioReport = Box<String>("")
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let publisher = try MediaPublisher(bus: bus, description: "demo test:video")
                    var s = TestSource.VideoSettings()
                    s.gop = 25
                    let p = try TestSource.runVideo(s, on: publisher, frameLimit: nil, shouldStop: { stop.value || stopRequested }) { _ in }
                    videoReport.value = "video publisher: \(p.frames) H.264 frames, \(p.bytes) bytes, 640x360 at 25 fps, GOP 25"
                } catch { videoReport.value = "video publisher failed: \(error)" }
            }
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let publisher = try MediaPublisher(bus: bus, description: "demo test:audio")
                    let n = try TestSource.runAudio(on: publisher, periodLimit: nil, shouldStop: { stop.value || stopRequested })
                    audioReport.value = "audio publisher: \(n) periods of 20 ms, 997 Hz, 48 kHz stereo"
                } catch { audioReport.value = "audio publisher failed: \(error)" }
            }
            Thread.sleep(forTimeInterval: 1.3)  // join mid-GOP on purpose
            print("recorder joins mid-stream and records \(seconds) s into \(out)")
            let consumer = try MediaConsumer(bus: bus, description: "demo recorder")
            let recorder = try Recorder(path: out)
            let deadline = Date().addingTimeInterval(seconds + 5)
            while recorder.duration < seconds && Date() < deadline && !stopRequested {
                guard let e = try consumer.next(timeout: 0.5) else { continue }
                switch e {
                case .streamAdded(let id, _, let d): recorder.add(stream: id, d)
                case .frame(let h, let payload, _):
                    _ = try payload.withUnsafeBytes { b throws(MediaError) in try recorder.write(stream: h.stream, h, payload: b) }
                case .endOfStream: break
                }
            }
            let finished = Result { () throws(MediaError) in try recorder.finish() }
            stop.value = true
            group.wait()
            try finished.get()
            print(videoReport.value)
            print(audioReport.value)
            print("recorder: \(recorder.frames) frames (\(recorder.skippedBeforeKeyframe) skipped before the first keyframe), \(consumer.gaps) gaps, \(recorder.bytes) bytes")
            FileSummary.describe(out).forEach { print($0) }
            if let s = try? holder.status() {
                print("bus: \(s.policyStatistics["rejectedMessages"] ?? "0") rejected messages, drops per node: " +
                      s.nodes.map { "\($0.description.isEmpty ? "holder" : $0.description)=\($0.dropped)" }.joined(separator: ", "))
            }
            print("check it yourself: ffprobe \(out)")
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }
}

final class ManagedFlag: Sendable {
    private let flag = Atomic(false)
    var value: Bool {
        get { flag.load(ordering: .acquiring) }
        set { flag.store(newValue, ordering: .releasing) }
    }
}

final class Box<T: Sendable>: Sendable {
    private let mutex: Locked<T>
    init(_ v: T) { mutex = Locked(v) }
    var value: T {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
