import Foundation
import IPNBus
import MediaWire

/// Lossless delivery, up to a bound, for a consumer whose output is slower than the stream at times
/// (a recorder on a slow disk): a thread keeps draining the bus into memory while the consumer
/// writes. Past the bound (bytes or seconds of media) it falls back to dropping, loudly, and a video
/// stream resumes only at its next keyframe. The publisher is never held back.
public final class ConsumerBuffer: @unchecked Sendable {
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

    private let consumer: MediaConsumer
    private let bound: Bound
    private let warn: @Sendable (String) -> Void
    private let lock = NSCondition()
    private var queue: [MediaEvent] = []
    private var head = 0
    private var bytes = 0
    private var stopped = false
    private var failure: IPNError?
    private var needsKeyframe: Set<UInt32> = []
    private var audioGap: Set<UInt32> = []
    private var overflowing = false
    private var videoStreams: Set<UInt32> = []
    /// Frames this buffer had to drop because the bound was reached.
    public private(set) var dropped = 0
    public private(set) var peakBytes = 0

    public init(_ consumer: MediaConsumer, bound: Bound, warn: @escaping @Sendable (String) -> Void) {
        self.consumer = consumer
        self.bound = bound
        self.warn = warn
        Thread.detachNewThread { [self] in self.drain() }
    }

    deinit { stop() }

    public func stop() {
        lock.lock(); stopped = true; lock.broadcast(); lock.unlock()
    }

    private var span: Double {
        let frames = queue[head...].compactMap { e -> Int64? in if case .frame(let h, _, _) = e { return h.dts } else { return nil } }
        guard let first = frames.first, let last = frames.last else { return 0 }
        return Double(last - first) / 1e9
    }

    private func over(adding n: Int) -> Bool {
        if let b = bound.bytes, bytes + n > b { return true }
        if let s = bound.seconds, span > s { return true }
        return false
    }

    private func drain() {
        while true {
            lock.lock()
            let done = stopped
            lock.unlock()
            if done { return }
            let event: MediaEvent?
            do { event = try consumer.next(timeout: 0.2) } catch {
                lock.lock(); failure = error; lock.broadcast(); lock.unlock()
                return
            }
            guard let event else { continue }
            lock.lock()
            switch event {
            case .streamAdded(let id, _, let d):
                if d.kind == .video && !d.allKeyframes { videoStreams.insert(id) }
                queue.append(event)
            case .endOfStream:
                queue.append(event)
            case .frame(let h, let payload, let discontinuity):
                let isVideo = videoStreams.contains(h.stream)
                if over(adding: payload.count) {
                    if !overflowing {
                        overflowing = true
                        warn("WARNING: the output is slower than the stream and the buffer (\(describeBound)) is full: dropping frames until it catches up")
                    }
                    dropped += 1
                    if isVideo { needsKeyframe.insert(h.stream) } else { audioGap.insert(h.stream) }
                } else if isVideo && needsKeyframe.contains(h.stream) && !h.flags.contains(.keyframe) {
                    dropped += 1  // undecodable without the frames dropped before it
                } else {
                    needsKeyframe.remove(h.stream)
                    let gap = audioGap.remove(h.stream) != nil
                    if overflowing && needsKeyframe.isEmpty { overflowing = false }
                    queue.append(.frame(h, payload: payload, discontinuity: discontinuity || gap || h.flags.contains(.discontinuity)))
                    bytes += payload.count
                    peakBytes = max(peakBytes, bytes)
                }
            }
            lock.broadcast()
            lock.unlock()
        }
    }

    private var describeBound: String {
        [bound.bytes.map { "\($0 / 1_048_576) MiB" }, bound.seconds.map { "\($0) s" }].compactMap { $0 }.joined(separator: " / ")
    }

    /// The next buffered event; nil after `timeout` seconds without one.
    public func next(timeout: Double) throws(IPNError) -> MediaEvent? {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while head == queue.count {
            if let failure { throw failure }
            if !lock.wait(until: deadline) { return nil }
        }
        let e = queue[head]
        head += 1
        if case .frame(_, let payload, _) = e { bytes -= payload.count }
        if head > 1024 && head * 2 > queue.count { queue.removeFirst(head); head = 0 }
        return e
    }

    public var gaps: Int { consumer.gaps }
}
