import CJackAPI
import Glibc

// JACK's transport (jack/transport.h): jackd-ipn keeps one per bus, rolling or stopped at a frame, moved by
// any client; every client sees it in each period. No timebase master yet: positions carry frames only
// (no bars and beats), and what would set one says so once and fails.

@_cdecl("jack_transport_query")
public func ipnjack_transport_query(_ c: OpaquePointer?, _ pos: UnsafeMutablePointer<jack_position_t>?) -> jack_transport_state_t {
    let clock = client(c)?.frameClock
    let t = clock?.transportNow ?? (rolling: false, frame: 0)
    if let pos {
        memset(pos, 0, MemoryLayout<jack_position_t>.size)
        let now = clock?.now
        pos.pointee.frame = t.frame
        pos.pointee.frame_rate = jack_nframes_t(now?.rate ?? 0)
        pos.pointee.usecs = now?.usecs ?? 0
    }
    return t.rolling ? JackTransportRolling : JackTransportStopped
}

@_cdecl("jack_get_current_transport_frame")
public func ipnjack_get_current_transport_frame(_ c: OpaquePointer?) -> jack_nframes_t {
    guard let clock = client(c)?.frameClock else { return 0 }
    let t = clock.transportNow
    return t.rolling ? t.frame &+ ipnjack_frames_since_cycle_start(c) : t.frame
}

@_cdecl("jack_transport_start")
public func ipnjack_transport_start(_ c: OpaquePointer?) { _ = client(c)?.transport("start") }

@_cdecl("jack_transport_stop")
public func ipnjack_transport_stop(_ c: OpaquePointer?) { _ = client(c)?.transport("stop") }

@_cdecl("jack_transport_locate")
public func ipnjack_transport_locate(_ c: OpaquePointer?, _ frame: jack_nframes_t) -> Int32 { client(c)?.transport("locate", frame: frame) ?? -1 }

@_cdecl("jack_transport_reposition")
public func ipnjack_transport_reposition(_ c: OpaquePointer?, _ pos: UnsafePointer<jack_position_t>?) -> Int32 {
    guard let pos else { return -1 }
    return client(c)?.transport("locate", frame: pos.pointee.frame) ?? -1
}

@_cdecl("jack_set_timebase_callback")
public func ipnjack_set_timebase_callback(_ c: OpaquePointer?, _ conditional: Int32, _ cb: JackTimebaseCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    JackLog.notImplemented("jack_set_timebase_callback")
    return -1
}

@_cdecl("jack_release_timebase")
public func ipnjack_release_timebase(_ c: OpaquePointer?) -> Int32 { -1 }

/// Every client is always ready to roll: a sync callback would only ever be asked once and say yes.
@_cdecl("jack_set_sync_callback")
public func ipnjack_set_sync_callback(_ c: OpaquePointer?, _ cb: JackSyncCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    JackLog.notImplemented("jack_set_sync_callback")
    return -1
}

@_cdecl("jack_set_sync_timeout")
public func ipnjack_set_sync_timeout(_ c: OpaquePointer?, _ timeout: jack_time_t) -> Int32 { 0 }
