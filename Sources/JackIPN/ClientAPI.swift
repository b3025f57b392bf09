import CIPNSys
import CJackAPI
import Foundation
import Glibc
import MediaWire

// The JACK client API (jack/jack.h): clients, callbacks, time. Declarations are the system headers'; each
// function here implements one, with JACK's documented return values.

func client(_ c: OpaquePointer?) -> JackClient? {
    guard let c else { return nil }
    return Unmanaged<JackClient>.fromOpaque(UnsafeRawPointer(c)).takeUnretainedValue()
}

@_cdecl("ipnjack_client_open")
public func ipnjack_client_open(_ name: UnsafePointer<CChar>?, _ options: Int32, _ status: UnsafeMutablePointer<Int32>?,
                         _ server: UnsafePointer<CChar>?) -> OpaquePointer? {
    signal(SIGPIPE, SIG_IGN)
    let wanted = name.map { String(cString: $0) } ?? ""
    do {
        // JACK's rule: start a server unless the program says JackNoStartServer or the user JACK_NO_START_SERVER.
        let start = options & Int32(JackNoStartServer.rawValue) == 0 && getenv("JACK_NO_START_SERVER") == nil
        let c = try JackClient(name: wanted, exact: options & Int32(JackUseExactName.rawValue) != 0, startServer: start,
                               server: server.map { String(cString: $0) })
        status?.pointee = Int32(bitPattern: c.openStatus)
        return OpaquePointer(Unmanaged.passRetained(c).toOpaque())
    } catch {
        guard case .status(let s, let why) = error else { return nil }
        status?.pointee = Int32(bitPattern: s)
        JackLog.error("cannot open client \"\(wanted)\": \(why)")
        return nil
    }
}

@_cdecl("jack_client_close")
public func ipnjack_client_close(_ c: OpaquePointer?) -> Int32 {
    guard let c, let cl = client(c) else { return -1 }
    cl.close()
    Unmanaged<JackClient>.fromOpaque(UnsafeRawPointer(c)).release()
    return 0
}

@_cdecl("jack_activate") public func ipnjack_activate(_ c: OpaquePointer?) -> Int32 { client(c)?.activate() ?? -1 }
@_cdecl("jack_deactivate") public func ipnjack_deactivate(_ c: OpaquePointer?) -> Int32 { client(c)?.deactivate() ?? -1 }

@_cdecl("jack_get_client_name")
public func ipnjack_get_client_name(_ c: OpaquePointer?) -> UnsafeMutablePointer<CChar>? { client(c)?.cName }

@_cdecl("jack_client_name_size") public func ipnjack_client_name_size() -> Int32 { Int32(JackWire.clientNameSize) }
@_cdecl("jack_port_name_size") public func ipnjack_port_name_size() -> Int32 { Int32(JackWire.portNameSize) }
@_cdecl("jack_port_type_size") public func ipnjack_port_type_size() -> Int32 { 32 }
@_cdecl("jack_get_sample_rate") public func ipnjack_get_sample_rate(_ c: OpaquePointer?) -> jack_nframes_t { jack_nframes_t(client(c)?.rate ?? 0) }
@_cdecl("jack_get_buffer_size") public func ipnjack_get_buffer_size(_ c: OpaquePointer?) -> jack_nframes_t { jack_nframes_t(client(c)?.period ?? 0) }
@_cdecl("jack_is_realtime") public func ipnjack_is_realtime(_ c: OpaquePointer?) -> Int32 { 1 }
@_cdecl("jack_cpu_load") public func ipnjack_cpu_load(_ c: OpaquePointer?) -> Float { 0 }
@_cdecl("jack_get_version_string") public func ipnjack_get_version_string() -> UnsafePointer<CChar>? { UnsafePointer(versionString) }
nonisolated(unsafe) let versionString: UnsafeMutablePointer<CChar> = strdup("1.9.21 (jackd-ipn)")

@_cdecl("jack_free") public func ipnjack_free(_ p: UnsafeMutableRawPointer?) { free(p) }

@_cdecl("jack_set_buffer_size")
public func ipnjack_set_buffer_size(_ c: OpaquePointer?, _ n: jack_nframes_t) -> Int32 {
    // The period is the server's (jackd-ipn --period); a program may only ask for what it is.
    guard let cl = client(c) else { return -1 }
    if Int(n) == cl.period { return 0 }
    JackLog.error("the period is jackd-ipn's (\(cl.period) frames: start it with --period \(n)); jack_set_buffer_size cannot change it")
    return -1
}

@_cdecl("jack_set_freewheel")
public func ipnjack_set_freewheel(_ c: OpaquePointer?, _ onoff: Int32) -> Int32 {
    if onoff == 0 { return 0 }
    JackLog.notImplemented("jack_set_freewheel")
    return -1
}

// MARK: callbacks (set before jack_activate, as JACK requires)

/// Keeps a callback and its argument in `slot`: before jack_activate, as JACK allows (-1 after it, or for no client).
private func setCallback<Callback>(_ c: OpaquePointer?, _ slot: ReferenceWritableKeyPath<JackClient, (Callback, UnsafeMutableRawPointer?)?>,
                                   _ cb: Callback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active else { return -1 }
    cl[keyPath: slot] = cb.map { ($0, arg) }
    return 0
}

@_cdecl("jack_set_process_callback")
public func ipnjack_set_process_callback(_ c: OpaquePointer?, _ cb: JackProcessCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active, cl.processThread == nil else { return -1 }
    cl.process = cb.map { ($0, arg) }
    return 0
}

@_cdecl("jack_on_shutdown")
public func ipnjack_on_shutdown(_ c: OpaquePointer?, _ cb: JackShutdownCallback?, _ arg: UnsafeMutableRawPointer?) {
    client(c)?.shutdown = cb.map { ($0, arg) }
}

@_cdecl("jack_on_info_shutdown")
public func ipnjack_on_info_shutdown(_ c: OpaquePointer?, _ cb: JackInfoShutdownCallback?, _ arg: UnsafeMutableRawPointer?) {
    client(c)?.infoShutdown = cb.map { ($0, arg) }
}

@_cdecl("jack_set_port_connect_callback")
public func ipnjack_set_port_connect_callback(_ c: OpaquePointer?, _ cb: JackPortConnectCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.portConnect, cb, arg)
}

@_cdecl("jack_set_port_registration_callback")
public func ipnjack_set_port_registration_callback(_ c: OpaquePointer?, _ cb: JackPortRegistrationCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.portRegistration, cb, arg)
}

@_cdecl("jack_set_client_registration_callback")
public func ipnjack_set_client_registration_callback(_ c: OpaquePointer?, _ cb: JackClientRegistrationCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.clientRegistration, cb, arg)
}

@_cdecl("jack_set_graph_order_callback")
public func ipnjack_set_graph_order_callback(_ c: OpaquePointer?, _ cb: JackGraphOrderCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.graphOrder, cb, arg)
}

@_cdecl("jack_set_xrun_callback")
public func ipnjack_set_xrun_callback(_ c: OpaquePointer?, _ cb: JackXRunCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.xrun, cb, arg)
}

/// Ports are never renamed on jackd-ipn (jack_port_rename fails), so the callback is accepted and never called.
@_cdecl("jack_set_port_rename_callback")
public func ipnjack_set_port_rename_callback(_ c: OpaquePointer?, _ cb: JackPortRenameCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active else { return -1 }
    return 0
}

/// Called when any client sets or removes a property (MetadataAPI.swift), on the notification thread.
@_cdecl("jack_set_property_change_callback")
public func ipnjack_set_property_change_callback(_ c: OpaquePointer?, _ cb: JackPropertyChangeCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.propertyChange, cb, arg)
}

@_cdecl("jack_set_thread_init_callback")
public func ipnjack_set_thread_init_callback(_ c: OpaquePointer?, _ cb: JackThreadInitCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.threadInit, cb, arg)
}

@_cdecl("jack_set_latency_callback")
public func ipnjack_set_latency_callback(_ c: OpaquePointer?, _ cb: JackLatencyCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    setCallback(c, \.latency, cb, arg)
}

/// jack2 calls it at once with the current rate (jack_midisine prints it at start-up), and we do too: the
/// rate never changes afterwards.
@_cdecl("jack_set_sample_rate_callback")
public func ipnjack_set_sample_rate_callback(_ c: OpaquePointer?, _ cb: JackSampleRateCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active else { return -1 }
    if let cb { _ = cb(jack_nframes_t(cl.rate), arg) }
    return 0
}

/// The period never changes; JACK calls it once at activation, and a program that sets it still learns the size.
@_cdecl("jack_set_buffer_size_callback")
public func ipnjack_set_buffer_size_callback(_ c: OpaquePointer?, _ cb: JackBufferSizeCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active else { return -1 }
    if let cb { _ = cb(jack_nframes_t(cl.period), arg) }
    return 0
}

@_cdecl("jack_set_freewheel_callback")
public func ipnjack_set_freewheel_callback(_ c: OpaquePointer?, _ cb: JackFreewheelCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active else { return -1 }
    return 0  // freewheeling never starts on jackd-ipn
}

@_cdecl("jack_set_error_function")
public func ipnjack_set_error_function(_ f: (@convention(c) (UnsafePointer<CChar>?) -> Void)?) { JackLog.errorFunction = f }

@_cdecl("jack_set_info_function")
public func ipnjack_set_info_function(_ f: (@convention(c) (UnsafePointer<CChar>?) -> Void)?) { JackLog.infoFunction = f }

// MARK: time

@_cdecl("jack_get_time") public func ipnjack_get_time() -> jack_time_t { ipn_monotonic_ns() / 1000 }

@_cdecl("jack_last_frame_time")
public func ipnjack_last_frame_time(_ c: OpaquePointer?) -> jack_nframes_t {
    jack_nframes_t(truncatingIfNeeded: client(c)?.frameClock.now.frame ?? 0)
}

@_cdecl("jack_frame_time")
public func ipnjack_frame_time(_ c: OpaquePointer?) -> jack_nframes_t {
    guard let now = client(c)?.frameClock.now else { return 0 }
    let since = (ipn_monotonic_ns() / 1000) &- now.usecs
    return jack_nframes_t(truncatingIfNeeded: now.frame &+ since &* UInt64(now.rate) / 1_000_000)
}

@_cdecl("jack_frames_since_cycle_start")
public func ipnjack_frames_since_cycle_start(_ c: OpaquePointer?) -> jack_nframes_t {
    guard let now = client(c)?.frameClock.now else { return 0 }
    return jack_nframes_t(truncatingIfNeeded: ((ipn_monotonic_ns() / 1000) &- now.usecs) &* UInt64(now.rate) / 1_000_000)
}

/// The current period: its first frame, when it started and when the next one will (µs, jack_get_time's
/// clock), and its length in µs, as the server's clock gives them.
@_cdecl("jack_get_cycle_times")
public func ipnjack_get_cycle_times(_ c: OpaquePointer?, _ frames: UnsafeMutablePointer<jack_nframes_t>?, _ usecs: UnsafeMutablePointer<jack_time_t>?,
                                    _ next: UnsafeMutablePointer<jack_time_t>?, _ periodUsecs: UnsafeMutablePointer<Float>?) -> Int32 {
    guard let cl = client(c) else { return -1 }
    let now = cl.frameClock.now
    guard now.usecs != 0 else { return -1 }  // no period yet
    let length = Float(cl.period) * 1_000_000 / Float(now.rate)
    frames?.pointee = jack_nframes_t(truncatingIfNeeded: now.frame)
    usecs?.pointee = now.usecs
    next?.pointee = now.usecs + UInt64(length)
    periodUsecs?.pointee = length
    return 0
}

@_cdecl("jack_frames_to_time")
public func ipnjack_frames_to_time(_ c: OpaquePointer?, _ frames: jack_nframes_t) -> jack_time_t {
    guard let now = client(c)?.frameClock.now else { return 0 }
    let delta = Int64(Int32(bitPattern: frames &- jack_nframes_t(truncatingIfNeeded: now.frame)))
    return jack_time_t(Int64(now.usecs) + delta * 1_000_000 / Int64(now.rate))
}

@_cdecl("jack_time_to_frames")
public func ipnjack_time_to_frames(_ c: OpaquePointer?, _ t: jack_time_t) -> jack_nframes_t {
    guard let now = client(c)?.frameClock.now else { return 0 }
    let delta = Int64(bitPattern: t &- now.usecs)
    return jack_nframes_t(truncatingIfNeeded: Int64(now.frame) + delta * Int64(now.rate) / 1_000_000)
}

@_cdecl("jack_get_max_delayed_usecs") public func ipnjack_get_max_delayed_usecs(_ c: OpaquePointer?) -> Float { 0 }
@_cdecl("jack_get_xrun_delayed_usecs") public func ipnjack_get_xrun_delayed_usecs(_ c: OpaquePointer?) -> Float { 0 }
@_cdecl("jack_reset_max_delayed_usecs") public func ipnjack_reset_max_delayed_usecs(_ c: OpaquePointer?) {}

