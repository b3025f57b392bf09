import Foundation
import IPNBus
import MediaWire

/// The receiving half of `mediajack view`: a thread that keeps draining the bus and decoding, so the
/// bus never waits for the screen, and keeps only the newest picture for the window to show at its
/// own pace. A picture replaced before it was shown counts as dropped.
public final class LiveViewer: @unchecked Sendable {
    public enum State: String, Sendable {
        case waitingForPublisher = "waiting for a publisher"
        case waitingForKeyframe = "waiting for a keyframe"
        case playing = "playing"
        case ended = "stream ended, waiting for a publisher"
    }

    /// The newest decoded picture, I420 in one buffer (Y, then U, then V, tightly packed).
    public struct Picture: Sendable {
        public let width: Int
        public let height: Int
        public let bytes: [UInt8]
        /// Capture wall-clock time (ns since the epoch), for the latency to the screen.
        public let captureTime: Int64
        public let serial: Int
    }

    public struct Counters: Sendable {
        public var decoded = 0
        /// Pictures replaced before they were shown, frames skipped waiting for a keyframe, and gaps
        /// the bus reported (this viewer fell behind and the bus dropped for it).
        public var dropped = 0
        public var gaps = 0
        public var streams = 0
        /// Frames the decoder could not decode (skipped; decoding resumes at the next keyframe).
        public var corrupt = 0
    }

    private let consumer: MediaConsumer
    private let wanted: UInt32?
    private let report: @Sendable (String) -> Void
    private let lock = NSLock()
    private var latest: Picture?
    private var shownSerial = 0
    private var state = State.waitingForPublisher
    private var description: StreamDescription?
    private var counters = Counters()
    private var failure: (any Error)?
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    public init(bus: String, stream: UInt32?, report: @escaping @Sendable (String) -> Void) throws(IPNError) {
        consumer = try MediaConsumer(bus: bus, description: "mediajack view")
        wanted = stream
        self.report = report
        Thread.detachNewThread { [self] in run(); finished.signal() }
    }

    /// Stops the receiving thread and waits for it.
    public func stop() {
        lock.withLock { stopped = true }
        finished.wait()
    }

    /// What the window shows now: the newest picture (nil when there is none), the state and the stream.
    public func current() -> (picture: Picture?, state: State, stream: StreamDescription?, counters: Counters) {
        lock.withLock { (latest, state, description, counters) }
    }

    /// The window showed picture `serial`.
    public func shown(_ serial: Int) { lock.withLock { shownSerial = max(shownSerial, serial) } }

    /// The error that ended the receiving thread, if any.
    public var error: (any Error)? { lock.withLock { failure } }

    private func set(_ s: State) {
        let changed = lock.withLock { () -> Bool in defer { state = s }; return state != s }
        if changed { report(s.rawValue) }
    }

    private func run() {
        var decoder: VideoDecoder?
        var choice = VideoStreamChoice(wanted: wanted)
        var serial = 0
        /// Shows `id`, or the next live stream when it cannot be shown; false when none can.
        func show(_ id: UInt32, _ d: StreamDescription) -> Bool {
            var candidate: (id: UInt32, description: StreamDescription)? = (id, d)
            while let (id, d) = candidate {
                do {
                    decoder = try VideoDecoder(d)
                    lock.withLock { description = d; counters.streams += 1 }
                    report("showing stream \(id): \(d.codec) \(d.width ?? 0)x\(d.height ?? 0)")
                    set(.waitingForKeyframe)
                    return true
                } catch {
                    report("cannot show stream \(id): \(error)")
                    choice.drop(id)
                    candidate = choice.next()
                }
            }
            decoder = nil
            return false
        }
        report("\(State.waitingForPublisher.rawValue)")
        do {
            while !lock.withLock({ stopped }) {
                guard let event = try consumer.next(timeout: 0.2) else { continue }
                switch event {
                case .streamAdded(let id, _, let d):
                    if choice.added(id, d) { _ = show(id, d) }
                case .frame(let h, let payload, let discontinuity):
                    guard h.stream == choice.current, let decoder else { continue }
                    if discontinuity { lock.withLock { counters.gaps = consumer.gaps } }
                    let skippedBefore = decoder.skipped, corruptBefore = decoder.corrupt
                    do {
                        try payload.withUnsafeBytes { b in
                            try decoder.decode(b, keyframe: h.flags.contains(.keyframe), discontinuity: discontinuity) { p in
                                serial += 1
                                let picture = Picture(width: p.width, height: p.height, bytes: p.packed, captureTime: h.captureTime, serial: serial)
                                lock.withLock {
                                    if let old = latest, old.serial > shownSerial { counters.dropped += 1 }
                                    latest = picture
                                    counters.decoded += 1
                                }
                            }
                        }
                    } catch {
                        // A frame that cannot be decoded or converted is skipped; the stream goes on.
                        lock.withLock { counters.corrupt += 1 }
                    }
                    if decoder.corrupt > corruptBefore { lock.withLock { counters.corrupt += decoder.corrupt - corruptBefore } }
                    if decoder.skipped > skippedBefore {
                        lock.withLock { counters.dropped += decoder.skipped - skippedBefore }
                        set(.waitingForKeyframe)
                    } else if !decoder.needsKeyframe {
                        set(.playing)
                    }
                case .endOfStream(let id):
                    guard choice.ended(id) else { continue }
                    decoder = nil
                    // Another publisher's video still live on the bus: show that one (from its next keyframe).
                    if !(choice.next().map { show($0.id, $0.description) } ?? false) { set(.ended) }
                }
            }
        } catch {
            lock.withLock { failure = error }
            report("the bus went away: \(error)")
        }
    }
}
