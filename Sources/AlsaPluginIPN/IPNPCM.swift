import CAlsaPlugin
import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// One PCM opened by an unmodified ALSA application on a jackd-ipn bus (`aplay -D ipn:BUS=/path`).
///
/// A worker thread follows the server's clock: at every mix it sends the next period of what the
/// application wrote (playback, tagged `lookahead` periods ahead) or stores the mix for the
/// application to read (capture), advances the hardware pointer and wakes the application's poll
/// through an eventfd. Samples are kept as the server's interleaved floats; the application's format
/// (S16_LE, S32_LE, FLOAT_LE, 1-8 channels, interleaved or not) is converted in `transfer`.
///
/// Two owners, no shared object: alsa-lib's callbacks (the application's threads, serialised by
/// alsa-lib's own lock) own the `IPNPCM`; the worker thread owns the `Worker` and its bus client.
/// What they share is `Core`: its constants and one `Shared` behind a lock (`Locked`).
final class IPNPCM {
    let io: UnsafeMutablePointer<snd_pcm_ioplug_t>
    let core: Core
    var isPlayback: Bool { core.isPlayback }
    var wake: Int32 { core.wake }
    var lookahead: UInt64 { core.lookahead }

    /// The server's shape as the worker last saw it (from its bus client's latest mix).
    var server: Shape { core.state.withLock { $0.server } }
    var serverChannels: Int { server.channels }
    var serverPeriod: Int { server.period }

    struct Shape: Equatable { var rate = 0, channels = 0, period = 0 }

    struct Shared {
        var fifo: UnsafeMutablePointer<Float>?
        var capacity = 0       // frames
        var head = 0           // next frame to read
        var count = 0          // frames held
        var hwPtr: UInt64 = 0
        var lastReported: UInt64 = 0
        var running = false
        var failure: Int32 = 0
        var stopping = false
        var underruns = 0, overruns = 0
        /// The server period the next playback period goes to (0: anchor at the next mix).
        var nextSend: UInt64 = 0
        /// The server's shape when the buffer was made: a mix of another shape means another server.
        var shape = Shape()
        /// The server's shape now (the worker copies it from every mix).
        var server = Shape()
    }

    /// What the application's side and the worker share.
    final class Core: Sendable {
        let isPlayback: Bool
        let bus: String
        let wake: Int32
        /// Periods ahead of the last mix that playback is sent for (the server's write-ahead): the slack a
        /// client has to be late by before the server misses its audio.
        let lookahead: UInt64
        let state: Locked<Shared>

        init(isPlayback: Bool, bus: String, wake: Int32, lookahead: UInt64, server: Shape) {
            self.isPlayback = isPlayback; self.bus = bus; self.wake = wake; self.lookahead = lookahead
            state = Locked(Shared(server: server))
        }

        func signal() { _ = ipn_eventfd_signal(wake) }

        func fail(_ code: Int32) {
            state.withLock { if $0.failure == 0 { $0.failure = code } }
            FileHandle.standardError.write(Data("ALSA ipn: the jackd-ipn serving \(bus) is gone\n".utf8))
            signal()
        }
    }

    init(io: UnsafeMutablePointer<snd_pcm_ioplug_t>, bus: String, playback: Bool, lookahead: Int) throws {
        self.io = io
        let client = try AudioBusClient(bus: bus, description: "alsa \(playback ? "playback" : "capture") (pid \(getpid()))", timeout: 2)
        let wake = ipn_eventfd()
        guard wake >= 0 else { throw IPNError.invalidOption("eventfd failed: \(String(cString: strerror(errno)))") }
        core = Core(isPlayback: playback, bus: bus, wake: wake, lookahead: UInt64(max(1, lookahead)),
                    server: Shape(rate: client.rate, channels: client.channels, period: client.period))
        // A plain pthread, joined in close(): when the application exits right after snd_pcm_close,
        // nothing of the worker is still running. The worker (and its client) is the thread's alone:
        // it is released, and the client's socket closed, when the thread ends.
        let context = Unmanaged.passRetained(Worker(core: core, client: client)).toOpaque()
        let r = pthread_create(&worker, nil, { context in
            let worker = Unmanaged<Worker>.fromOpaque(context!).takeRetainedValue()
            worker.follow()
            return nil
        }, context)
        if r != 0 {
            Unmanaged<Worker>.fromOpaque(context).release()
            Glibc.close(wake)
            throw IPNError.invalidOption("cannot start the worker thread: \(String(cString: strerror(r)))")
        }
    }

    private var worker = pthread_t()

    /// The worker thread's side: follows the server's clock through its own bus client.
    final class Worker {
        let core: Core
        let client: AudioBusClient

        /// One period of playback, copied out of the FIFO (the FIFO is the shared state's; this is the thread's).
        private var scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)

        init(core: Core, client: AudioBusClient) { self.core = core; self.client = client }

        deinit { scratch.deallocate() }

        /// One step per server period, until closed or the server is gone.
        func follow() {
            defer {
                if client.malformed > 0 {
                    FileHandle.standardError.write(Data("ALSA ipn: \(client.malformed) malformed messages from \(core.bus) were skipped\n".utf8))
                }
            }
            // Like a JACK client's process thread: real-time when the user may (root, rtprio limits), quietly
            // normal otherwise. It sleeps between periods, so it never starves the machine.
            var param = sched_param(sched_priority: 60)
            _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
            var lastMix = ipn_monotonic_ns()
            while true {
                if core.state.withLock({ $0.stopping }) { return }
                do {
                    let got = try client.nextMix(timeout: 0.2) { index, samples in step(index, samples) }
                    let now = ipn_monotonic_ns()
                    if got { lastMix = now } else if now - lastMix > 800_000_000 { core.fail(-ENODEV); return }
                } catch {
                    core.fail(-ENODEV)
                    return
                }
            }
        }

        /// One server period: playback sends what the application wrote; capture keeps the mix.
        private func step(_ index: UInt64, _ mix: UnsafeBufferPointer<Float>) {
            defer { core.signal() }
            let server = Shape(rate: client.rate, channels: client.channels, period: client.period)
            let isPlayback = core.isPlayback, lookahead = core.lookahead
            if scratch.count < server.period * server.channels {
                scratch.deallocate()
                scratch = .allocate(capacity: server.period * server.channels)
            }
            let scratch = scratch
            core.state.withLock { s in
                s.server = server
                guard s.running, let fifo = s.fifo, s.capacity > 0 else { return }
                let p = server.period, ch = server.channels
                if server != s.shape {
                    // A restarted server with another rate, channel count or period: this PCM's buffer no longer fits.
                    if s.failure == 0 { s.failure = -ENODEV }
                    return
                }
                if isPlayback {
                    // Never move more than the application can tell apart (the pointer wraps at the buffer size).
                    let limit = s.capacity - 1 - Int(s.hwPtr - s.lastReported)
                    let n = max(0, min(s.count, p, limit))
                    guard n > 0 else {
                        if s.count == 0 { s.underruns += 1 }
                        s.nextSend = 0  // nothing to play: the next audio anchors afresh
                        return
                    }
                    // Consecutive periods go to consecutive server periods, so the stream stays whole; only when
                    // this client fell behind the clock is it anchored again (that gap is its underrun).
                    // Behind the clock, or far ahead of it (a restarted server counts from 0 again): anchor afresh.
                    // The index is the server's number, any 64-bit value: distances wrap, never trap.
                    let ahead = Int64(bitPattern: s.nextSend &- index)
                    if ahead <= 0 || ahead > Int64(lookahead) + 1 { s.nextSend = index &+ lookahead }
                    var from = s.head
                    for f in 0..<p {
                        for c in 0..<ch { scratch[f * ch + c] = f < n ? fifo[from * ch + c] : 0 }
                        if f < n { from = (from + 1) % s.capacity }
                    }
                    try? client.send(index: s.nextSend, frames: p) { out in
                        for i in 0..<(p * ch) { out[i] = scratch[i] }
                    }
                    s.nextSend &+= 1
                    s.head = (s.head + n) % s.capacity
                    s.count -= n
                    s.hwPtr += UInt64(n)
                } else {
                    guard s.count + p < s.capacity, Int(s.hwPtr - s.lastReported) + p < s.capacity else { s.overruns += 1; return }
                    var to = (s.head + s.count) % s.capacity
                    for f in 0..<p {
                        for c in 0..<ch { fifo[to * ch + c] = mix[f * ch + c] }
                        to = (to + 1) % s.capacity
                    }
                    s.count += p
                    s.hwPtr += UInt64(p)
                }
            }
        }
    }

    // MARK: ioplug callbacks (called by alsa-lib with its own lock held)

    func hwParams() -> Int32 {
        let bufferSize = Int(io.pointee.buffer_size)
        return core.state.withLock { s in
            let server = s.server
            guard bufferSize >= 3 * server.period else {
                FileHandle.standardError.write(Data("ALSA ipn: a buffer of \(bufferSize) frames is too small: at least 3 server periods (\(3 * server.period) frames)\n".utf8))
                return -EINVAL
            }
            s.fifo?.deallocate()
            s.shape = server
            s.capacity = bufferSize
            s.fifo = .allocate(capacity: s.capacity * server.channels)
            s.head = 0; s.count = 0
            return 0
        }
    }

    /// Once the server is gone the PCM is disconnected, as a card pulled out is: alsa-lib then answers every
    /// call with ENODEV ("No such device"), and every callback here returns it. (A negative pointer would
    /// instead read as an xrun, with an overrun length computed from nothing.)
    private func disconnected() -> Bool {
        guard core.state.withLock({ $0.failure != 0 }) else { return false }
        snd_pcm_ioplug_set_state(io, SND_PCM_STATE_DISCONNECTED)
        return true
    }

    func prepare() -> Int32 {
        if disconnected() { return -ENODEV }
        core.state.withLock { s in
            s.head = 0; s.count = 0; s.hwPtr = 0; s.lastReported = 0; s.running = false; s.nextSend = 0
        }
        return 0
    }

    func start() -> Int32 {
        if disconnected() { return -ENODEV }
        core.state.withLock { $0.running = true }
        return 0
    }

    func stop() -> Int32 { core.state.withLock { $0.running = false }; return 0 }

    func pointer() -> snd_pcm_sframes_t {
        // Disconnected: the last position reported stays (the state carries the error).
        let gone = disconnected()
        return core.state.withLock { s in
            if !gone { s.lastReported = s.hwPtr }
            return snd_pcm_sframes_t(s.lastReported % UInt64(max(1, s.capacity)))
        }
    }

    /// Frames between the application and the listener, or -ENODEV once the server is gone.
    func delay() -> snd_pcm_sframes_t {
        if disconnected() { return -snd_pcm_sframes_t(ENODEV) }
        let isPlayback = isPlayback, lookahead = lookahead
        return core.state.withLock { s in
            snd_pcm_sframes_t(isPlayback ? s.count + Int(lookahead) * s.server.period : s.count)
        }
    }

    /// Converts between the application's areas and the float FIFO.
    func transfer(_ areas: UnsafePointer<snd_pcm_channel_area_t>, offset: Int, size: Int) -> snd_pcm_sframes_t {
        let appChannels = Int(io.pointee.channels)
        let format = io.pointee.format
        let isPlayback = isPlayback
        if disconnected() { return -snd_pcm_sframes_t(ENODEV) }
        return core.state.withLock { s in
            guard let fifo = s.fifo else { return -snd_pcm_sframes_t(EBADFD) }
            let ch = s.server.channels
            if isPlayback {
                let n = min(size, s.capacity - s.count)
                var to = (s.head + s.count) % s.capacity
                for f in 0..<n {
                    for c in 0..<ch {
                        let source = appChannels == 1 ? 0 : c
                        fifo[to * ch + c] = source < appChannels ? Self.read(areas + source, offset + f, format) : 0
                    }
                    to = (to + 1) % s.capacity
                }
                s.count += n
                return snd_pcm_sframes_t(n)
            } else {
                let n = min(size, s.count)
                for f in 0..<n {
                    for a in 0..<appChannels {
                        Self.write(a < ch ? fifo[s.head * ch + a] : 0, areas + a, offset + f, format)
                    }
                    s.head = (s.head + 1) % s.capacity
                }
                s.count -= n
                return snd_pcm_sframes_t(n)
            }
        }
    }

    func pollRevents(_ revents: UnsafeMutablePointer<UInt16>) -> Int32 {
        let period = Int(io.pointee.period_size)
        let isPlayback = isPlayback, wake = wake
        // After a failure the descriptor stays readable, so every later poll reports it at once.
        if disconnected() { revents.pointee = UInt16(POLLERR); return 0 }
        let events: UInt16 = core.state.withLock { s in
            _ = ipn_eventfd_drain(wake)
            let ready = isPlayback ? s.capacity - s.count >= period : s.count >= period
            return ready ? UInt16(isPlayback ? POLLOUT : POLLIN) : 0
        }
        revents.pointee = events
        return 0
    }

    /// Stops the worker and waits for it (its bus client leaves the bus as the thread ends).
    func close() {
        core.state.withLock { $0.stopping = true }
        pthread_join(worker, nil)
        Glibc.close(wake)
        core.state.withLock { s in s.fifo?.deallocate(); s.fifo = nil }
    }

    static func read(_ area: UnsafePointer<snd_pcm_channel_area_t>, _ frame: Int, _ format: snd_pcm_format_t) -> Float {
        let p = cap_area_address(area, snd_pcm_uframes_t(frame))!
        switch format {
        case SND_PCM_FORMAT_S16_LE: return Float(Int16(littleEndian: p.load(as: Int16.self))) / 32768
        case SND_PCM_FORMAT_S32_LE: return Float(Double(Int32(littleEndian: p.load(as: Int32.self))) / 2_147_483_648)
        default: return p.load(as: Float.self)
        }
    }

    static func write(_ v: Float, _ area: UnsafePointer<snd_pcm_channel_area_t>, _ frame: Int, _ format: snd_pcm_format_t) {
        let p = cap_area_address(area, snd_pcm_uframes_t(frame))!
        let x = max(-1, min(1, v))
        switch format {
        case SND_PCM_FORMAT_S16_LE: p.storeBytes(of: Int16(max(-32768, min(32767, (x * 32768).rounded()))).littleEndian, as: Int16.self)
        case SND_PCM_FORMAT_S32_LE: p.storeBytes(of: Int32(max(-2_147_483_648, min(2_147_483_647, (Double(x) * 2_147_483_648).rounded()))).littleEndian, as: Int32.self)
        default: p.storeBytes(of: x, as: Float.self)
        }
    }
}
