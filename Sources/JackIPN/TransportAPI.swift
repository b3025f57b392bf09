import CJackAPI
import Glibc

// JACK's transport (jack/transport.h). jackd-ipn keeps no transport yet: it is always stopped at frame 0,
// and what would move it says so once and fails (docs/audio-bus.md).

@_cdecl("jack_transport_query")
public func ipnjack_transport_query(_ c: OpaquePointer?, _ pos: UnsafeMutablePointer<jack_position_t>?) -> jack_transport_state_t {
    if let pos {
        memset(pos, 0, MemoryLayout<jack_position_t>.size)
        let now = client(c)?.frameClock.now
        pos.pointee.frame_rate = jack_nframes_t(now?.rate ?? 0)
        pos.pointee.usecs = now?.usecs ?? 0
    }
    return JackTransportStopped
}

@_cdecl("jack_get_current_transport_frame")
public func ipnjack_get_current_transport_frame(_ c: OpaquePointer?) -> jack_nframes_t { 0 }

@_cdecl("jack_transport_start")
public func ipnjack_transport_start(_ c: OpaquePointer?) { JackLog.notImplemented("jack_transport_start") }

@_cdecl("jack_transport_stop")
public func ipnjack_transport_stop(_ c: OpaquePointer?) { JackLog.notImplemented("jack_transport_stop") }

@_cdecl("jack_transport_locate")
public func ipnjack_transport_locate(_ c: OpaquePointer?, _ frame: jack_nframes_t) -> Int32 {
    JackLog.notImplemented("jack_transport_locate")
    return -1
}

@_cdecl("jack_transport_reposition")
public func ipnjack_transport_reposition(_ c: OpaquePointer?, _ pos: UnsafePointer<jack_position_t>?) -> Int32 {
    JackLog.notImplemented("jack_transport_reposition")
    return -1
}

@_cdecl("jack_set_timebase_callback")
public func ipnjack_set_timebase_callback(_ c: OpaquePointer?, _ conditional: Int32, _ cb: JackTimebaseCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    JackLog.notImplemented("jack_set_timebase_callback")
    return -1
}

@_cdecl("jack_release_timebase")
public func ipnjack_release_timebase(_ c: OpaquePointer?) -> Int32 { -1 }

@_cdecl("jack_set_sync_callback")
public func ipnjack_set_sync_callback(_ c: OpaquePointer?, _ cb: JackSyncCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    JackLog.notImplemented("jack_set_sync_callback")
    return -1
}

@_cdecl("jack_set_sync_timeout")
public func ipnjack_set_sync_timeout(_ c: OpaquePointer?, _ timeout: jack_time_t) -> Int32 { 0 }
