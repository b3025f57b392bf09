import Glibc
import MediaWire

/// `mediajack play BUS alsa:DEVICE`: plays an audio stream from the bus on an ALSA device with a bounded
/// latency. The device may run at another rate or channel count (libswresample converts). Audio older
/// than the bound is skipped rather than played late, so a stalled player catches up to live at once.
public enum AudioPlayer {
    public struct Settings: Sendable {
        public var device = "default"
        /// Device rate and channels; nil takes the stream's.
        public var rate: Int?
        public var channels: Int?
        /// The bound, in milliseconds: the device buffer, and the oldest audio still played.
        public var latencyMilliseconds = 100
        public var stream: UInt32?
        /// Exit when the stream ends (else wait for the next one).
        public var untilEnd = false
        public init() {}
    }

    public struct Progress: Sendable {
        public var framesPlayed = 0
        public var periodsReceived = 0
        /// Periods skipped because they were older than the latency bound.
        public var skippedLate = 0
        public var xruns = 0
        /// Gaps the bus reported (the player was too slow to take frames).
        public var gaps = 0
        public var latencyMilliseconds = 0.0
        public init() {}
    }

    public static func run(bus: String, _ s: Settings, report: (String) -> Void, shouldStop: () -> Bool,
                           progress: (Progress) -> Void) throws -> Progress {
        try run(try MediaConsumer(bus: bus, description: "mediajack play alsa:\(s.device)"), s, report: report,
                shouldStop: shouldStop, progress: progress)
    }

    /// The same on a consumer already on the bus (one that waited for the bus to appear, say).
    public static func run(_ consumer: MediaConsumer, _ s: Settings, report: (String) -> Void, shouldStop: () -> Bool,
                           progress: (Progress) -> Void) throws -> Progress {
        var p = Progress()
        var playing: UInt32?
        var decoder: AudioDecoder?
        var pcm: AlsaPCM?
        let bound = Int64(s.latencyMilliseconds) * 1_000_000
        // When the last write returned and how much was queued then, while the device ran: a device that has
        // since played longer than that ran dry, whether or not its driver reports an underrun (a virtual card
        // whose timer stalled with the machine moves its pointer a whole lap and reports nothing: it replays a
        // buffer of old samples).
        var lastWrite: (at: Int64, queued: Int64)?
        while !shouldStop() {
            guard let event = try consumer.next(timeout: 0.2) else { continue }
            switch event {
            case .streamAdded(let id, _, let d):
                guard d.kind == .audio, playing == nil, s.stream.map({ $0 == id }) ?? true else { continue }
                let rate = s.rate ?? d.sampleRate ?? 48_000
                let channels = s.channels ?? d.channels ?? 2
                var q = AlsaPCM.Request()
                q.rate = rate
                q.channels = channels
                q.format = .s16
                q.period = max(32, rate * s.latencyMilliseconds / 4000)
                q.periods = 4
                let device = try AlsaPCM(s.device, .playback, q)
                let dec = try AudioDecoder(d, outputRate: device.rate, outputChannels: device.channels)
                report("playing stream \(id) (\(d.codec), \(d.channels ?? 0) ch at \(d.sampleRate ?? 0) Hz) on alsa:\(s.device): "
                       + "\(device.channels) ch at \(device.rate) Hz\(device.rate != (d.sampleRate ?? 0) ? " (resampled)" : ""), "
                       + "buffer \(device.bufferFrames * 1000 / device.rate) ms")
                pcm = device
                decoder = dec
                playing = id
            case .frame(let h, let payload, let discontinuity):
                guard h.stream == playing, let pcm, let decoder else { continue }
                p.periodsReceived += 1
                if discontinuity { p.gaps += 1 }
                let now = MediaPublisher.monotonic()
                // Older than the bound by the time it could be heard: skip it, stay live. (In floating point:
                // pts and duration are the publisher's numbers, and may be anything.)
                let queued = Int64(pcm.delay()) * 1_000_000_000 / Int64(pcm.rate)
                let heard = Double(now) + Double(queued), ends = Double(h.pts) + Double(h.duration)
                if heard - ends > 2 * Double(bound) { p.skippedLate += 1; continue }
                let periodNs = Int64(pcm.period) * 1_000_000_000 / Int64(pcm.rate)
                let ranDry = lastWrite.flatMap { w in now - w.at > w.queued + periodNs ? (now - w.at, w.queued) : nil }
                var underrunReported = false
                try payload.withUnsafeBytes { bytes in
                    try decoder.decode(bytes) { frames, samples in
                        var done = 0
                        while done < frames {
                            switch try pcm.write(samples.baseAddress! + done * pcm.channels, frames: frames - done) {
                            case .frames(let n): done += n
                            case .xrun: p.xruns += 1; underrunReported = true
                            }
                        }
                        p.framesPlayed += frames
                    }
                }
                if let (played, queued) = ranDry, !underrunReported {
                    p.xruns += 1
                    report("alsa:\(s.device): the device played \(played / 1_000_000) ms with \(queued / 1_000_000) ms queued and reported no underrun "
                           + "(its clock jumped: a stalled or virtual machine); it may have replayed old samples; counted as an xrun")
                }
                let written = MediaPublisher.monotonic(), queuedNow = Int64(pcm.delay()) * 1_000_000_000 / Int64(pcm.rate)
                lastWrite = pcm.isRunning ? (written, queuedNow) : nil
                let heardAt = written + queuedNow
                p.latencyMilliseconds = (Double(heardAt) - Double(h.pts)) / 1e6
                progress(p)
            case .endOfStream(let id):
                guard id == playing else { continue }
                pcm?.drain()
                lastWrite = nil
                report("stream \(id) ended")
                pcm = nil
                decoder = nil
                playing = nil
                if s.untilEnd { return p }
            }
        }
        pcm?.drain()
        return p
    }
}
