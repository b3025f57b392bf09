import CMedia
import Glibc

/// An ALSA PCM (any name alsa-lib knows: `hw:1,0`, `plughw:…`, `default`) opened for interleaved
/// capture or playback with negotiated rate, channels, sample format, period and buffer sizes, and
/// monotonic timestamps. Not `Sendable`: one thread owns a PCM (hand it over with `sending`).
public final class AlsaPCM {
    public enum Direction: Sendable { case capture, playback }
    public enum SampleFormat: String, Sendable, CaseIterable {
        case s16, s32, flt
        var alsa: snd_pcm_format_t {
            switch self { case .s16: SND_PCM_FORMAT_S16_LE; case .s32: SND_PCM_FORMAT_S32_LE; case .flt: SND_PCM_FORMAT_FLOAT_LE }
        }
        public var bytes: Int { self == .s16 ? 2 : 4 }
        /// The libavcodec PCM codec carrying this format.
        public var codec: String { self == .s16 ? "pcm_s16le" : self == .s32 ? "pcm_s32le" : "pcm_f32le" }
        public var alsaName: String { self == .s16 ? "S16_LE" : self == .s32 ? "S32_LE" : "FLOAT_LE" }
    }

    /// What was asked for; the device may give something near it.
    public struct Request: Sendable {
        public var rate = 48_000
        public var channels = 2
        public var format = SampleFormat.s16
        /// Frames per period, and periods in the buffer.
        public var period = 960
        public var periods = 4
        /// Exact rate/channels: fail rather than take a near value (capture keeps what the user asked).
        public var exact = false
        public init() {}
    }

    public let name: String
    public let direction: Direction
    let pcm: OpaquePointer
    public private(set) var rate = 0
    public private(set) var channels = 0
    public private(set) var format = SampleFormat.s16
    public private(set) var period = 0
    public private(set) var bufferFrames = 0
    public var frameBytes: Int { channels * format.bytes }

    public init(_ name: String, _ direction: Direction, _ request: Request) throws(DeviceError) {
        self.name = name
        self.direction = direction
        var handle: OpaquePointer?
        let r = snd_pcm_open(&handle, name, direction == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK, 0)
        if r < 0 {
            if r == -EBUSY { throw .busy(device: "alsa:\(name)", holders: AlsaPCM.holders(name)) }
            if r == -ENOENT || r == -ENODEV { throw .notFound("alsa:\(name)") }
            throw .alsa(device: "alsa:\(name)", call: "snd_pcm_open", code: r)
        }
        pcm = handle!
        do { try configure(request) } catch { snd_pcm_close(pcm); throw error }
    }

    deinit { snd_pcm_close(pcm) }

    private func check(_ call: String, _ r: Int32) throws(DeviceError) {
        if r < 0 { throw .alsa(device: "alsa:\(name)", call: call, code: r) }
    }

    private func configure(_ q: Request) throws(DeviceError) {
        var hwp: OpaquePointer?
        snd_pcm_hw_params_malloc(&hwp)
        guard let hw = hwp else { throw .io(device: "alsa:\(name)", "out of memory") }
        defer { snd_pcm_hw_params_free(hw) }
        try check("snd_pcm_hw_params_any", snd_pcm_hw_params_any(pcm, hw))
        try check("set_access", snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED))
        if snd_pcm_hw_params_test_format(pcm, hw, q.format.alsa) != 0 {
            throw .cannotDo(device: "alsa:\(name)", request: "sample format \(q.format.alsaName)", offers: offers(hw))
        }
        try check("set_format", snd_pcm_hw_params_set_format(pcm, hw, q.format.alsa))
        format = q.format
        if q.exact && (snd_pcm_hw_params_test_channels(pcm, hw, UInt32(q.channels)) != 0 || snd_pcm_hw_params_test_rate(pcm, hw, UInt32(q.rate), 0) != 0) {
            throw .cannotDo(device: "alsa:\(name)", request: "\(q.channels) channels at \(q.rate) Hz", offers: offers(hw))
        }
        var ch = UInt32(q.channels)
        if snd_pcm_hw_params_set_channels_near(pcm, hw, &ch) < 0 {
            throw .cannotDo(device: "alsa:\(name)", request: "\(q.channels) channels", offers: offers(hw))
        }
        channels = Int(ch)
        var rt = UInt32(q.rate)
        var dir: Int32 = 0
        if snd_pcm_hw_params_set_rate_near(pcm, hw, &rt, &dir) < 0 {
            throw .cannotDo(device: "alsa:\(name)", request: "\(q.rate) Hz", offers: offers(hw))
        }
        rate = Int(rt)
        // The period scales with the rate the device gave, so its duration is what was asked.
        var periodFrames = snd_pcm_uframes_t(q.period * rate / max(1, q.rate))
        try check("set_period_size_near", snd_pcm_hw_params_set_period_size_near(pcm, hw, &periodFrames, &dir))
        var bufferSize = periodFrames * snd_pcm_uframes_t(max(2, q.periods))
        try check("set_buffer_size_near", snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &bufferSize))
        try check("snd_pcm_hw_params", snd_pcm_hw_params(pcm, hw))
        snd_pcm_hw_params_get_period_size(hw, &periodFrames, &dir)
        snd_pcm_hw_params_get_buffer_size(hw, &bufferSize)
        period = Int(periodFrames)
        bufferFrames = Int(bufferSize)

        var swp: OpaquePointer?
        snd_pcm_sw_params_malloc(&swp)
        guard let sw = swp else { throw .io(device: "alsa:\(name)", "out of memory") }
        defer { snd_pcm_sw_params_free(sw) }
        try check("snd_pcm_sw_params_current", snd_pcm_sw_params_current(pcm, sw))
        _ = snd_pcm_sw_params_set_tstamp_mode(pcm, sw, SND_PCM_TSTAMP_ENABLE)
        _ = snd_pcm_sw_params_set_tstamp_type(pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC)
        _ = snd_pcm_sw_params_set_avail_min(pcm, sw, periodFrames)
        if direction == .playback {
            // Start once half the buffer is queued: a cushion against the first scheduling hiccup.
            _ = snd_pcm_sw_params_set_start_threshold(pcm, sw, bufferSize / 2)
            // ALSA zeroes what has been played, so a device that plays past the last written sample (to the
            // end of its period, or in an underrun) plays silence, never a lap-old stale buffer.
            var boundary: snd_pcm_uframes_t = 0
            _ = snd_pcm_sw_params_get_boundary(sw, &boundary)
            _ = snd_pcm_sw_params_set_silence_threshold(pcm, sw, 0)
            _ = snd_pcm_sw_params_set_silence_size(pcm, sw, boundary)
        }
        try check("snd_pcm_sw_params", snd_pcm_sw_params(pcm, sw))
        try check("snd_pcm_prepare", snd_pcm_prepare(pcm))
    }

    /// What the device can do, for errors.
    private func offers(_ hw: OpaquePointer) -> [String] {
        var minRate: UInt32 = 0, maxRate: UInt32 = 0, minCh: UInt32 = 0, maxCh: UInt32 = 0
        var dir: Int32 = 0
        snd_pcm_hw_params_get_rate_min(hw, &minRate, &dir)
        snd_pcm_hw_params_get_rate_max(hw, &maxRate, &dir)
        snd_pcm_hw_params_get_channels_min(hw, &minCh)
        snd_pcm_hw_params_get_channels_max(hw, &maxCh)
        let formats = SampleFormat.allCases.filter { snd_pcm_hw_params_test_format(pcm, hw, $0.alsa) == 0 }.map(\.alsaName)
        return ["formats: \(formats.isEmpty ? "none this program uses" : formats.joined(separator: ", "))",
                "rates: \(minRate)...\(maxRate) Hz", "channels: \(minCh)...\(maxCh)",
                "(a plughw: or plug: device converts anything)"]
    }

    /// The result of one read or write.
    public enum Transfer {
        case frames(Int)
        /// An overrun (capture) or underrun (playback), or a stall (the driver's wait for the device timed
        /// out); the PCM was recovered and the samples around it are lost.
        case xrun
    }

    /// Transfers in a row that timed out in the driver ("DMA or IRQ trouble", EIO) and were recovered by
    /// restarting the PCM (each is reported as an xrun). A device that keeps timing out with nothing moving
    /// in between is gone.
    private var stallsInARow = 0
    static let stallsBeforeGivingUp = 3

    /// Whether the device is running (its clock moves the pointer).
    public var isRunning: Bool { snd_pcm_state(pcm) == SND_PCM_STATE_RUNNING }

    /// Reads up to `frames` frames into `buffer` (blocking). Recovers xruns; throws when the device fails.
    public func read(into buffer: UnsafeMutableRawPointer, frames: Int) throws(DeviceError) -> Transfer {
        let n = snd_pcm_readi(pcm, buffer, snd_pcm_uframes_t(frames))
        return try settle(Int(n), "snd_pcm_readi")
    }

    /// Writes `frames` frames (blocking until there is room). Recovers xruns.
    public func write(_ buffer: UnsafeRawPointer, frames: Int) throws(DeviceError) -> Transfer {
        let n = snd_pcm_writei(pcm, buffer, snd_pcm_uframes_t(frames))
        return try settle(Int(n), "snd_pcm_writei")
    }

    private func settle(_ n: Int, _ call: String) throws(DeviceError) -> Transfer {
        if n >= 0 {
            if n > 0 { stallsInARow = 0 }
            return .frames(n)
        }
        let code = Int32(n)
        if code == -EAGAIN || code == -EINTR { return .frames(0) }
        // EIO: the driver waited for the device longer than its timeout. A virtual card on a stalled (emulated,
        // overloaded) machine does that and runs on once restarted; a dead one keeps doing it.
        if code == -EIO && stallsInARow + 1 < AlsaPCM.stallsBeforeGivingUp {
            stallsInARow += 1
            let r = snd_pcm_prepare(pcm)
            if r < 0 { throw .gone(device: "alsa:\(name)", "\(call): \(String(cString: snd_strerror(code))), then snd_pcm_prepare: \(String(cString: snd_strerror(r)))") }
            if direction == .capture { _ = snd_pcm_start(pcm) }
            return .xrun
        }
        if code == -EPIPE || code == -ESTRPIPE {
            let r = snd_pcm_recover(pcm, code, 1)
            if r < 0 { throw .alsa(device: "alsa:\(name)", call: "snd_pcm_recover", code: r) }
            if direction == .capture { _ = snd_pcm_start(pcm) }
            return .xrun
        }
        if code == -EIO {
            throw .gone(device: "alsa:\(name)", "\(call): \(String(cString: snd_strerror(code))) (\(AlsaPCM.stallsBeforeGivingUp) times in a row with nothing transferred)")
        }
        if code == -ENODEV || code == -EBADFD {
            throw .gone(device: "alsa:\(name)", "\(call): \(String(cString: snd_strerror(code)))")
        }
        throw .alsa(device: "alsa:\(name)", call: call, code: code)
    }

    /// Frames queued but not yet played (playback) or captured but not yet read (capture).
    public func delay() -> Int {
        var d: snd_pcm_sframes_t = 0
        return snd_pcm_delay(pcm, &d) == 0 ? Int(d) : 0
    }

    /// (frames available, monotonic ns of that measurement), or nil without timestamps.
    public func timestamp() -> (available: Int, at: Int64)? {
        var avail: snd_pcm_uframes_t = 0
        var ts = timespec()
        guard snd_pcm_htimestamp(pcm, &avail, &ts) == 0, ts.tv_sec != 0 || ts.tv_nsec != 0 else { return nil }
        return (Int(avail), Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }

    /// Plays out what is queued, then stops.
    public func drain() { _ = snd_pcm_drain(pcm) }

    /// Processes that have the card behind a hw: name open.
    static func holders(_ name: String) -> [DeviceHolders.Holder] {
        guard name.hasPrefix("hw:") || name.hasPrefix("plughw:") else { return [] }
        let spec = name.split(separator: ":", maxSplits: 1)[1].split(separator: ",")
        guard let cardSpec = spec.first else { return [] }
        let card = Int32(cardSpec) ?? snd_card_get_index(String(cardSpec))
        guard card >= 0 else { return [] }
        let device = spec.count > 1 ? Int(spec[1]) ?? 0 : 0
        var found: [DeviceHolders.Holder] = []
        for suffix in ["c", "p"] {
            for h in DeviceHolders.of("/dev/snd/pcmC\(card)D\(device)\(suffix)") where !found.contains(h) { found.append(h) }
        }
        return found
    }
}
