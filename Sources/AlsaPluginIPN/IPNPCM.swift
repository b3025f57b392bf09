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
final class IPNPCM: @unchecked Sendable {
    let io: UnsafeMutablePointer<snd_pcm_ioplug_t>
    let client: AudioBusClient
    let isPlayback: Bool
    let bus: String
    let wake: Int32
    let lock = NSLock()
    /// Periods ahead of the last mix that playback is sent for (the server's write-ahead): the slack a
    /// client has to be late by before the server misses its audio.
    let lookahead: UInt64

    var serverChannels: Int { client.channels }
    var serverPeriod: Int { client.period }

    // Guarded by `lock`.
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


    init(io: UnsafeMutablePointer<snd_pcm_ioplug_t>, bus: String, playback: Bool, lookahead: Int) throws {
        self.io = io
        self.lookahead = UInt64(max(1, lookahead))
        self.bus = bus
        isPlayback = playback
        client = try AudioBusClient(bus: bus, description: "alsa \(playback ? "playback" : "capture") (pid \(getpid()))", timeout: 2)
        wake = ipn_eventfd()
        guard wake >= 0 else { throw IPNError.invalidOption("eventfd failed: \(String(cString: strerror(errno)))") }
        // A plain pthread, joined in close(): when the application exits right after snd_pcm_close,
        // nothing of the worker is still running.
        let context = Unmanaged.passRetained(self).toOpaque()
        let r = pthread_create(&worker, nil, { context in
            let pcm = Unmanaged<IPNPCM>.fromOpaque(context!).takeRetainedValue()
            pcm.follow()
            return nil
        }, context)
        if r != 0 {
            Unmanaged<IPNPCM>.fromOpaque(context).release()
            throw IPNError.invalidOption("cannot start the worker thread: \(String(cString: strerror(r)))")
        }
    }

    private var worker = pthread_t()

    /// The worker: one step per server period, until closed or the server is gone.
    private func follow() {
        // Like a JACK client's process thread: real-time when the user may (root, rtprio limits), quietly
        // normal otherwise. It sleeps between periods, so it never starves the machine.
        var param = sched_param(sched_priority: 60)
        _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
        var lastMix = ipn_monotonic_ns()
        while true {
            lock.lock(); let stop = stopping; lock.unlock()
            if stop { return }
            do {
                let got = try client.nextMix(timeout: 0.2) { index, samples in step(index, samples) }
                let now = ipn_monotonic_ns()
                if got { lastMix = now } else if now - lastMix > 800_000_000 { fail(-ENODEV); return }
            } catch {
                fail(-ENODEV)
                return
            }
        }
    }

    private func fail(_ code: Int32) {
        lock.lock()
        if failure == 0 { failure = code }
        lock.unlock()
        FileHandle.standardError.write(Data("ALSA ipn: the jackd-ipn serving \(bus) is gone\n".utf8))
        signal()
    }

    private func signal() { _ = ipn_eventfd_signal(wake) }

    /// One server period: playback sends what the application wrote; capture keeps the mix.
    private func step(_ index: UInt64, _ mix: UnsafeBufferPointer<Float>) {
        lock.lock()
        defer { lock.unlock(); signal() }
        guard running, let fifo, capacity > 0 else { return }
        let p = serverPeriod, ch = serverChannels
        if (client.rate, ch, p) != shape {
            // A restarted server with another rate, channel count or period: this PCM's buffer no longer fits.
            if failure == 0 { failure = -ENODEV }
            return
        }
        if isPlayback {
            // Never move more than the application can tell apart (the pointer wraps at the buffer size).
            let limit = capacity - 1 - Int(hwPtr - lastReported)
            let n = max(0, min(count, p, limit))
            guard n > 0 else {
                if count == 0 { underruns += 1 }
                nextSend = 0  // nothing to play: the next audio anchors afresh
                return
            }
            // Consecutive periods go to consecutive server periods, so the stream stays whole; only when
            // this client fell behind the clock is it anchored again (that gap is its underrun).
            // Behind the clock, or far ahead of it (a restarted server counts from 0 again): anchor afresh.
            if nextSend <= index || nextSend > index + lookahead + 1 { nextSend = index + lookahead }
            let start = head
            try? client.send(index: nextSend, frames: p) { out in
                var from = start
                for f in 0..<p {
                    for c in 0..<ch { out[f * ch + c] = f < n ? fifo[from * ch + c] : 0 }
                    if f < n { from = (from + 1) % capacity }
                }
            }
            nextSend += 1
            head = (head + n) % capacity
            count -= n
            hwPtr += UInt64(n)
        } else {
            guard count + p < capacity, Int(hwPtr - lastReported) + p < capacity else { overruns += 1; return }
            var to = (head + count) % capacity
            for f in 0..<p {
                for c in 0..<ch { fifo[to * ch + c] = mix[f * ch + c] }
                to = (to + 1) % capacity
            }
            count += p
            hwPtr += UInt64(p)
        }
    }

    // MARK: ioplug callbacks (called by alsa-lib with its own lock held)

    /// The server's shape when the buffer was made: a mix of another shape means another server.
    var shape = (rate: 0, channels: 0, period: 0)

    func hwParams() -> Int32 {
        lock.lock(); defer { lock.unlock() }
        guard Int(io.pointee.buffer_size) >= 3 * serverPeriod else {
            FileHandle.standardError.write(Data("ALSA ipn: a buffer of \(io.pointee.buffer_size) frames is too small: at least 3 server periods (\(3 * serverPeriod) frames)\n".utf8))
            return -EINVAL
        }
        fifo?.deallocate()
        shape = (client.rate, serverChannels, serverPeriod)
        capacity = Int(io.pointee.buffer_size)
        fifo = .allocate(capacity: capacity * serverChannels)
        head = 0; count = 0
        return 0
    }

    func prepare() -> Int32 {
        lock.lock(); defer { lock.unlock() }
        head = 0; count = 0; hwPtr = 0; lastReported = 0; running = false; nextSend = 0
        return failure
    }

    func start() -> Int32 { lock.lock(); running = true; lock.unlock(); return 0 }
    func stop() -> Int32 { lock.lock(); running = false; lock.unlock(); return 0 }

    func pointer() -> snd_pcm_sframes_t {
        lock.lock(); defer { lock.unlock() }
        if failure != 0 { return snd_pcm_sframes_t(failure) }
        lastReported = hwPtr
        return snd_pcm_sframes_t(hwPtr % UInt64(max(1, capacity)))
    }

    func delay() -> snd_pcm_sframes_t {
        lock.lock(); defer { lock.unlock() }
        return snd_pcm_sframes_t(isPlayback ? count + Int(lookahead) * serverPeriod : count)
    }

    /// Converts between the application's areas and the float FIFO.
    func transfer(_ areas: UnsafePointer<snd_pcm_channel_area_t>, offset: Int, size: Int) -> snd_pcm_sframes_t {
        lock.lock(); defer { lock.unlock() }
        if failure != 0 { return snd_pcm_sframes_t(failure) }
        guard let fifo else { return -snd_pcm_sframes_t(EBADFD) }
        let appChannels = Int(io.pointee.channels)
        let format = io.pointee.format
        let ch = serverChannels
        if isPlayback {
            let n = min(size, capacity - count)
            var to = (head + count) % capacity
            for f in 0..<n {
                for c in 0..<ch {
                    let source = appChannels == 1 ? 0 : c
                    fifo[to * ch + c] = source < appChannels ? Self.read(areas + source, offset + f, format) : 0
                }
                to = (to + 1) % capacity
            }
            count += n
            return snd_pcm_sframes_t(n)
        } else {
            let n = min(size, count)
            for f in 0..<n {
                for a in 0..<appChannels {
                    Self.write(a < ch ? fifo[head * ch + a] : 0, areas + a, offset + f, format)
                }
                head = (head + 1) % capacity
            }
            count -= n
            return snd_pcm_sframes_t(n)
        }
    }

    func pollRevents(_ revents: UnsafeMutablePointer<UInt16>) -> Int32 {
        lock.lock(); defer { lock.unlock() }
        // After a failure the descriptor stays readable, so every later poll reports it at once.
        if failure != 0 { revents.pointee = UInt16(POLLERR); return 0 }
        _ = ipn_eventfd_drain(wake)
        let period = Int(io.pointee.period_size)
        let ready = isPlayback ? capacity - count >= period : count >= period
        revents.pointee = ready ? UInt16(isPlayback ? POLLOUT : POLLIN) : 0
        return 0
    }

    func close() {
        lock.lock(); stopping = true; lock.unlock()
        pthread_join(worker, nil)
        client.socket.close()
        Glibc.close(wake)
        lock.lock(); fifo?.deallocate(); fifo = nil; lock.unlock()
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
