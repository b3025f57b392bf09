import CAlsaPlugin
import Foundation
import Glibc

/// The ioplug callbacks: each finds its IPNPCM through `private_data`.
private func pcm(_ io: UnsafeMutablePointer<snd_pcm_ioplug_t>?) -> IPNPCM {
    Unmanaged<IPNPCM>.fromOpaque(io!.pointee.private_data!).takeUnretainedValue()
}

/// Each PCM gets its own callback table, freed with its ioplug in `close` (nothing reads it after).
private func makeCallbacks() -> UnsafeMutablePointer<snd_pcm_ioplug_callback_t> {
    let c = UnsafeMutablePointer<snd_pcm_ioplug_callback_t>.allocate(capacity: 1)
    c.initialize(to: snd_pcm_ioplug_callback_t())
    c.pointee.start = { pcm($0).start() }
    c.pointee.stop = { pcm($0).stop() }
    c.pointee.pointer = { pcm($0).pointer() }
    c.pointee.transfer = { io, areas, offset, size in pcm(io).transfer(areas!, offset: Int(offset), size: Int(size)) }
    c.pointee.hw_params = { io, _ in pcm(io).hwParams() }
    c.pointee.prepare = { pcm($0).prepare() }
    c.pointee.delay = { io, delay in
        let d = pcm(io).delay()
        if d < 0 { return Int32(d) }
        delay!.pointee = d
        return 0
    }
    c.pointee.poll_revents = { io, _, _, revents in pcm(io).pollRevents(revents!) }
    c.pointee.close = { io in
        let p = Unmanaged<IPNPCM>.fromOpaque(io!.pointee.private_data!)
        p.takeUnretainedValue().close()
        p.release()
        free(UnsafeMutableRawPointer(mutating: io!.pointee.name))
        UnsafeMutablePointer(mutating: io!.pointee.callback)?.deallocate()
        io!.deallocate()
        return 0
    }
    return c
}

/// Called by the C entry point `_snd_pcm_ipn_open` with the configured bus.
@_cdecl("ipn_pcm_plugin_open")
public func ipnPCMPluginOpen(_ pcmp: UnsafeMutablePointer<OpaquePointer?>?, _ name: UnsafePointer<CChar>?, _ bus: UnsafePointer<CChar>?,
                             _ lookahead: Int32, _ stream: snd_pcm_stream_t, _ mode: Int32) -> Int32 {
    let busPath = String(cString: bus!)
    let io = UnsafeMutablePointer<snd_pcm_ioplug_t>.allocate(capacity: 1)
    io.initialize(to: snd_pcm_ioplug_t())
    let state: IPNPCM
    do {
        state = try IPNPCM(io: io, bus: busPath, playback: stream == SND_PCM_STREAM_PLAYBACK, lookahead: Int(lookahead))
    } catch {
        FileHandle.standardError.write(Data("ALSA ipn: \(error)\n".utf8))
        io.deallocate()
        return -ENODEV
    }
    io.pointee.version = cap_ioplug_version()
    io.pointee.name = UnsafePointer(strdup("IPN audio bus \(busPath)"))
    io.pointee.flags = cap_flag_monotonic()
    io.pointee.mmap_rw = 0
    io.pointee.poll_fd = state.wake
    io.pointee.poll_events = UInt32(POLLIN)
    io.pointee.callback = UnsafePointer(makeCallbacks())
    io.pointee.private_data = Unmanaged.passRetained(state).toOpaque()
    var r = snd_pcm_ioplug_create(io, name, stream, mode)
    if r < 0 {
        state.close()
        Unmanaged<IPNPCM>.fromOpaque(io.pointee.private_data!).release()
        free(UnsafeMutableRawPointer(mutating: io.pointee.name))
        UnsafeMutablePointer(mutating: io.pointee.callback)?.deallocate()
        io.deallocate()
        return r
    }
    // What the server runs: its rate; any of three formats and 1-8 channels, converted here.
    // Memory-mapped access too (ioplug keeps the mapped buffer and hands it to `transfer`): alsa-lib's rate
    // converter, which `plug:` puts in front for any other rate, works on mmap access only.
    var access: [UInt32] = [SND_PCM_ACCESS_MMAP_INTERLEAVED, SND_PCM_ACCESS_MMAP_NONINTERLEAVED,
                            SND_PCM_ACCESS_RW_INTERLEAVED, SND_PCM_ACCESS_RW_NONINTERLEAVED].map(\.rawValue)
    var formats: [UInt32] = [SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_FLOAT_LE].map { UInt32(bitPattern: $0.rawValue) }
    let period = UInt32(state.serverPeriod)
    r = snd_pcm_ioplug_set_param_list(io, Int32(SND_PCM_IOPLUG_HW_ACCESS), UInt32(access.count), &access)
    if r >= 0 { r = snd_pcm_ioplug_set_param_list(io, Int32(SND_PCM_IOPLUG_HW_FORMAT), UInt32(formats.count), &formats) }
    if r >= 0 { r = snd_pcm_ioplug_set_param_minmax(io, Int32(SND_PCM_IOPLUG_HW_CHANNELS), 1, 8) }
    if r >= 0 { r = snd_pcm_ioplug_set_param_minmax(io, Int32(SND_PCM_IOPLUG_HW_RATE), UInt32(state.server.rate), UInt32(state.server.rate)) }
    // The buffer holds at least three server periods (of the smallest frame, 2 bytes): room for the
    // period being sent, the next one, and the application's write.
    // Periods of at least 4 KiB (1024 frames of 16-bit stereo): alsa-lib's rate converter (`plug:` at another
    // rate) converts whole periods, so its ratio is the ratio of the two period sizes, each rounded to a frame;
    // with a program that takes the smallest period offered (ffmpeg), 16 frames played 44.1 kHz 0.3 % sharp.
    if r >= 0 { r = snd_pcm_ioplug_set_param_minmax(io, Int32(SND_PCM_IOPLUG_HW_PERIOD_BYTES), 4096, 1 << 20) }
    if r >= 0 { r = snd_pcm_ioplug_set_param_minmax(io, Int32(SND_PCM_IOPLUG_HW_BUFFER_BYTES), period * 2 * 3, 4 << 20) }
    if r >= 0 { r = snd_pcm_ioplug_set_param_minmax(io, Int32(SND_PCM_IOPLUG_HW_PERIODS), 2, 1024) }
    if r < 0 {
        snd_pcm_ioplug_delete(io)
        return r
    }
    pcmp!.pointee = io.pointee.pcm
    return 0
}
