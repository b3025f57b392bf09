import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// The receiving half of `mediajack view`: a thread that keeps draining the bus and decoding, so the
/// bus never waits for the screen, and keeps only the newest picture for the window to show at its
/// own pace. A picture replaced before it was shown counts as dropped.
public final class LiveViewer: Sendable {
    public enum State: String, Sendable {
        case waitingForBus = "waiting for a bus"
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

    private let wanted: UInt32?
    /// How this viewer's node is named in `ipn stat`.
    private let consumerDescription: String
    private let report: @Sendable (String) -> Void
    /// What the receiving thread and the window share.
    private let shared = Locked(Shared())
    private let finished = DispatchSemaphore(value: 0)
    /// An eventfd `stop()` signals: it ends the receiving thread's wait for a bus that has not appeared.
    private let cancel: Int32 = ipn_eventfd()

    private struct Shared {
        var latest: Picture?
        var shownSerial = 0
        var state = State.waitingForPublisher
        var description: StreamDescription?
        var counters = Counters()
        var failure: (any Error)?
        var stopped = false
    }

    /// Joins `bus` and starts the receiving thread. With `whenWaitingForBus`, a viewer started before its bus
    /// starts anyway: its thread waits for the bus to appear (`BusArrival`; state `.waitingForBus`, which the
    /// window shows), calling `whenWaitingForBus` once as the wait begins; `stop()` ends that wait too.
    /// Without it, no bus at `bus` is an error here.
    public init(bus: String, stream: UInt32?, description: String = "mediajack view", report: @escaping @Sendable (String) -> Void,
                whenWaitingForBus: (@Sendable () -> Void)? = nil) throws(IPNError) {
        wanted = stream
        self.report = report
        self.consumerDescription = description
        do throws(IPNError) {
            let consumer = try MediaConsumer(bus: bus, description: description)
            // The consumer is the receiving thread's alone.
            Thread.detachNewThread(owning: consumer) { [self] consumer in run(consumer); finished.signal() }
        } catch {
            guard let whenWaitingForBus, Self.meansNoBusYet(error) else { throw error }
            shared.withLock { $0.state = .waitingForBus }
            Thread.detachNewThread { [self] in
                waitForBus(bus, whenWaitingForBus)
                finished.signal()
            }
        }
    }

    deinit { if cancel >= 0 { close(cancel) } }

    private static func meansNoBusYet(_ error: IPNError) -> Bool {
        switch error {
        case .noSuchBus, .staleBus, .busGone: true
        default: false
        }
    }

    /// Stops the receiving thread (or its wait for the bus) and waits for it.
    public func stop() {
        shared.withLock { $0.stopped = true }
        _ = ipn_eventfd_signal(cancel)
        finished.wait()
    }

    /// What the window shows now: the newest picture (nil when there is none), the state and the stream.
    public func current() -> (picture: Picture?, state: State, stream: StreamDescription?, counters: Counters) {
        shared.withLock { ($0.latest, $0.state, $0.description, $0.counters) }
    }

    /// The window showed picture `serial`.
    public func shown(_ serial: Int) { shared.withLock { $0.shownSerial = max($0.shownSerial, serial) } }

    /// The error that ended the receiving thread, if any.
    public var error: (any Error)? { shared.withLock { $0.failure } }

    private func set(_ s: State) {
        let changed = shared.withLock { shared -> Bool in defer { shared.state = s }; return shared.state != s }
        if changed { report(s.rawValue) }
    }

    /// The receiving thread of a viewer started before its bus: it waits for the bus, then receives. The consumer
    /// is made on this thread and stays on it.
    private func waitForBus(_ bus: String, _ waiting: () -> Void) {
        do {
            let joined = try BusArrival.join(bus, cancel: cancel, waiting: waiting) { () throws(IPNError) in
                try MediaConsumer(bus: bus, description: consumerDescription)
            }
            guard let consumer = joined else { return }  // stopped while it waited
            run(consumer)
        } catch {
            shared.withLock { $0.failure = error }
            report("cannot join the bus: \(error)")
        }
    }

    private func run(_ consumer: MediaConsumer) {
        var decoder: VideoDecoder?
        var choice = VideoStreamChoice(wanted: wanted)
        var serial = 0
        /// Shows `id`, or the next live stream when it cannot be shown; false when none can.
        func show(_ id: UInt32, _ d: StreamDescription) -> Bool {
            var candidate: (id: UInt32, description: StreamDescription)? = (id, d)
            while let (id, d) = candidate {
                do {
                    decoder = try VideoDecoder(d)
                    shared.withLock { $0.description = d; $0.counters.streams += 1 }
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
        shared.withLock { $0.state = .waitingForPublisher }  // on the bus now (a viewer that waited for it was waitingForBus)
        report("\(State.waitingForPublisher.rawValue)")
        do {
            while !shared.withLock({ $0.stopped }) {
                guard let event = try consumer.next(timeout: 0.2) else { continue }
                switch event {
                case .streamAdded(let id, _, let d):
                    if choice.added(id, d) { _ = show(id, d) }
                case .frame(let h, let payload, let discontinuity):
                    guard h.stream == choice.current, let decoder else { continue }
                    if discontinuity { let gaps = consumer.gaps; shared.withLock { $0.counters.gaps = gaps } }
                    let skippedBefore = decoder.skipped, corruptBefore = decoder.corrupt
                    do {
                        try payload.withUnsafeBytes { b in
                            try decoder.decode(b, keyframe: h.flags.contains(.keyframe), discontinuity: discontinuity) { p in
                                serial += 1
                                let picture = Picture(width: p.width, height: p.height, bytes: p.packed, captureTime: h.captureTime, serial: serial)
                                shared.withLock { s in
                                    if let old = s.latest, old.serial > s.shownSerial { s.counters.dropped += 1 }
                                    s.latest = picture
                                    s.counters.decoded += 1
                                }
                            }
                        }
                    } catch {
                        // A frame that cannot be decoded or converted is skipped; the stream goes on.
                        shared.withLock { $0.counters.corrupt += 1 }
                    }
                    if decoder.corrupt > corruptBefore { let n = decoder.corrupt - corruptBefore; shared.withLock { $0.counters.corrupt += n } }
                    if decoder.skipped > skippedBefore {
                        let n = decoder.skipped - skippedBefore
                        shared.withLock { $0.counters.dropped += n }
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
            shared.withLock { $0.failure = error }
            report("the bus went away: \(error)")
        }
    }
}
