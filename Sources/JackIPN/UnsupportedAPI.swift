import CJackAPI
import Glibc

// Parts of JACK's API that jackd-ipn does not serve: internal clients (jack/intclient.h: a client loaded into
// the server as a shared object) and sessions (jack/session.h, deprecated by JACK itself). Each says so once on
// standard error and answers JACK's failure value (a session notification finds no client to tell), so the
// programs that import them (jack_load, jack_unload, jack_test, jack_session_notify,
// jack_simple_session_client) start and fail cleanly.

private let noSuchClient = JackStatus(rawValue: JackFailure.rawValue | JackNoSuchClient.rawValue)

/// jack_internal_client_load's body (its variadic entry is in C).
@_cdecl("ipnjack_internal_client_load")
public func ipnjack_internal_client_load(_ status: UnsafeMutablePointer<jack_status_t>?) -> jack_intclient_t {
    JackLog.notImplemented("jack_internal_client_load (jackd-ipn has no internal clients)")
    status?.pointee = noSuchClient
    return 0
}

@_cdecl("jack_internal_client_handle")
public func ipnjack_internal_client_handle(_ c: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ status: UnsafeMutablePointer<jack_status_t>?) -> jack_intclient_t {
    JackLog.notImplemented("jack_internal_client_handle (jackd-ipn has no internal clients)")
    status?.pointee = noSuchClient
    return 0
}

@_cdecl("jack_internal_client_unload")
public func ipnjack_internal_client_unload(_ c: OpaquePointer?, _ handle: jack_intclient_t) -> jack_status_t {
    JackLog.notImplemented("jack_internal_client_unload (jackd-ipn has no internal clients)")
    return noSuchClient
}

@_cdecl("jack_get_internal_client_name")
public func ipnjack_get_internal_client_name(_ c: OpaquePointer?, _ handle: jack_intclient_t) -> UnsafeMutablePointer<CChar>? {
    JackLog.notImplemented("jack_get_internal_client_name (jackd-ipn has no internal clients)")
    return nil
}

@_cdecl("jack_set_session_callback")
public func ipnjack_set_session_callback(_ c: OpaquePointer?, _ cb: JackSessionCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    JackLog.notImplemented("jack_set_session_callback (JACK sessions)")
    return -1
}

@_cdecl("jack_session_reply")
public func ipnjack_session_reply(_ c: OpaquePointer?, _ event: UnsafeMutablePointer<jack_session_event_t>?) -> Int32 {
    JackLog.notImplemented("jack_session_reply (JACK sessions)")
    return -1
}

/// Frees an event as JACK's API says (its strings and itself); jackd-ipn never makes one.
@_cdecl("jack_session_event_free")
public func ipnjack_session_event_free(_ event: UnsafeMutablePointer<jack_session_event_t>?) {
    guard let event else { return }
    free(UnsafeMutableRawPointer(mutating: event.pointee.session_dir))
    free(UnsafeMutableRawPointer(mutating: event.pointee.client_uuid))
    free(event.pointee.command_line)
    free(event)
}

/// No client on jackd-ipn takes part in sessions (jack_set_session_callback fails), so none answers: the list
/// is empty (its one entry has no uuid), as jack2 answers when no client has a session callback.
@_cdecl("jack_session_notify")
public func ipnjack_session_notify(_ c: OpaquePointer?, _ target: UnsafePointer<CChar>?, _ type: jack_session_event_type_t,
                                   _ path: UnsafePointer<CChar>?) -> UnsafeMutablePointer<jack_session_command_t>? {
    guard client(c) != nil else { return nil }
    let list = calloc(1, MemoryLayout<jack_session_command_t>.stride)!.bindMemory(to: jack_session_command_t.self, capacity: 1)
    return list
}

/// Frees a command list as JACK's API says (each entry's strings, up to the one with no uuid, then the list).
@_cdecl("jack_session_commands_free")
public func ipnjack_session_commands_free(_ cmds: UnsafeMutablePointer<jack_session_command_t>?) {
    guard let cmds else { return }
    var i = 0
    while let uuid = cmds[i].uuid {
        free(UnsafeMutableRawPointer(mutating: uuid))
        free(UnsafeMutableRawPointer(mutating: cmds[i].client_name))
        free(UnsafeMutableRawPointer(mutating: cmds[i].command))
        i += 1
    }
    free(cmds)
}
