import Foundation
import IPNBus
import MediaWire

/// Lossless delivery, up to a bound, for a consumer whose output is slower than the stream at times
/// (a recorder on a slow disk): a thread keeps draining the bus into memory while the consumer
/// writes. Past the bound (bytes or seconds of media) it falls back to dropping, loudly, and a video
/// stream resumes only at its next keyframe. The publisher is never held back.
public final class ConsumerBuffer: Sendable {
    public struct Bound: Sendable, Equatable {
        public var bytes: Int?
        public var seconds: Double?
        public init(bytes: Int? = nil, seconds: Double? = nil) { self.bytes = bytes; self.seconds = seconds }

        /// "10s", "2.5s", "512KiB", "256MiB", "64MB", "1GiB".
        public init?(_ text: String) {
            let t = text.lowercased()
            func number(_ suffix: String) -> Double? { t.hasSuffix(suffix) ? Double(t.dropLast(suffix.count)) : nil }
            if let s = number("s") { self.init(seconds: s) }
            else if let k = number("kib") ?? number("kb") ?? number("k") { self.init(bytes: Int(k * 1024)) }
            else if let m = number("mib") ?? number("mb") ?? number("m") { self.init(bytes: Int(m * 1_048_576)) }
            else if let g = number("gib") ?? number("gb") ?? number("g") { self.init(bytes: Int(g * 1_073_741_824)) }
            else { return nil }
        }
    }

    private let bound: Bound
    private let warn: @Sendable (String) -> Void
    /// Shared by the draining thread and the reader; `bell` rings when the queue stops being empty
    /// or the draining ends in an error (the reader then looks again; a spare ring costs one look).
    private let state = Locked(State())
    private let bell = DispatchSemaphore(value: 0)

    private struct State {
        var queue: [MediaEvent] = []
        var head = 0
        var bytes = 0
        var stopped = false
        var failure: IPNError?
        var needsKeyframe: Set<UInt32> = []
        var audioGap: Set<UInt32> = []
        var overflowing = false
        var videoStreams: Set<UInt32> = []
        var dropped = 0
        var peakBytes = 0
        /// The consumer's counts, copied after each of its events (the consumer is the draining thread's).
        var gaps = 0
        var malformed = 0

        var isEmpty: Bool { head == queue.count }

        var span: Double {
            let frames = queue[head...].compactMap { e -> Int64? in if case .frame(let h, _, _) = e { return h.dts } else { return nil } }
            guard let first = frames.first, let last = frames.last else { return 0 }
            return (Double(last) - Double(first)) / 1e9  // the publisher's numbers: no integer difference to overflow
        }

        func over(_ bound: Bound, adding n: Int) -> Bool {
            if let b = bound.bytes, bytes + n > b { return true }
            if let s = bound.seconds, span > s { return true }
            return false
        }
    }

    /// Frames this buffer had to drop because the bound was reached.
    public var dropped: Int { state.withLock { $0.dropped } }
    public var peakBytes: Int { state.withLock { $0.peakBytes } }
    /// Messages lost before this buffer (the bus dropped them for its consumer).
    public var gaps: Int { state.withLock { $0.gaps } }
    /// Messages its consumer skipped as malformed (`MediaConsumer.malformed`).
    public var malformed: Int { state.withLock { $0.malformed } }

    /// The consumer belongs to the buffer's thread from now on.
    public init(_ consumer: sending MediaConsumer, bound: Bound, warn: @escaping @Sendable (String) -> Void) {
        self.bound = bound
        self.warn = warn
        Thread.detachNewThread(owning: consumer) { [self] consumer in self.drain(consumer) }
    }

    deinit { stop() }

    public func stop() {
        state.withLock { $0.stopped = true }
    }

    private func drain(_ consumer: MediaConsumer) {
        while true {
            if state.withLock({ $0.stopped }) { return }
            let event: MediaEvent?
            do { event = try consumer.next(timeout: 0.2) } catch {
                state.withLock { $0.failure = error }
                bell.signal()
                return
            }
            let gaps = consumer.gaps, malformed = consumer.malformed
            guard let event else {
                state.withLock { $0.gaps = gaps; $0.malformed = malformed }
                continue
            }
            let (wasEmpty, startedOverflowing) = state.withLock { s -> (Bool, Bool) in
                s.gaps = gaps
                s.malformed = malformed
                let wasEmpty = s.isEmpty
                var startedOverflowing = false
                switch event {
                case .streamAdded(let id, _, let d):
                    if d.kind == .video && !d.allKeyframes { s.videoStreams.insert(id) }
                    s.queue.append(event)
                case .endOfStream:
                    s.queue.append(event)
                case .frame(let h, let payload, let discontinuity):
                    let isVideo = s.videoStreams.contains(h.stream)
                    if s.over(bound, adding: payload.count) {
                        if !s.overflowing {
                            s.overflowing = true
                            startedOverflowing = true
                        }
                        s.dropped += 1
                        if isVideo { s.needsKeyframe.insert(h.stream) } else { s.audioGap.insert(h.stream) }
                    } else if isVideo && s.needsKeyframe.contains(h.stream) && !h.flags.contains(.keyframe) {
                        s.dropped += 1  // undecodable without the frames dropped before it
                    } else {
                        s.needsKeyframe.remove(h.stream)
                        let gap = s.audioGap.remove(h.stream) != nil
                        if s.overflowing && s.needsKeyframe.isEmpty { s.overflowing = false }
                        s.queue.append(.frame(h, payload: payload, discontinuity: discontinuity || gap || h.flags.contains(.discontinuity)))
                        s.bytes += payload.count
                        s.peakBytes = max(s.peakBytes, s.bytes)
                    }
                }
                return (wasEmpty && !s.isEmpty, startedOverflowing)
            }
            if startedOverflowing {
                warn("WARNING: the output is slower than the stream and the buffer (\(describeBound)) is full: dropping frames until it catches up")
            }
            if wasEmpty { bell.signal() }
        }
    }

    private var describeBound: String {
        [bound.bytes.map { "\($0 / 1_048_576) MiB" }, bound.seconds.map { "\($0) s" }].compactMap { $0 }.joined(separator: " / ")
    }

    /// The next buffered event; nil after `timeout` seconds without one.
    public func next(timeout: Double) throws(IPNError) -> MediaEvent? {
        let deadline = DispatchTime.now() + timeout
        while true {
            let taken = state.withLock { s -> Result<MediaEvent, IPNError>? in
                if s.isEmpty { return s.failure.map { .failure($0) } }
                let e = s.queue[s.head]
                s.head += 1
                if case .frame(_, let payload, _) = e { s.bytes -= payload.count }
                if s.head > 1024 && s.head * 2 > s.queue.count { s.queue.removeFirst(s.head); s.head = 0 }
                return .success(e)
            }
            if let taken { return try taken.get() }
            if bell.wait(timeout: deadline) == .timedOut { return nil }
        }
    }
}
