import CJackAPI
import Foundation
import Glibc
import MediaWire

// The JACK port API (jack/jack.h): ports, connections, latency, uuids.

/// A NULL-terminated array of C strings in one malloc'd block, as jack_get_ports answers (freed with jack_free).
func cStringArray(_ names: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?>? {
    guard !names.isEmpty else { return nil }
    let pointers = (names.count + 1) * MemoryLayout<UnsafePointer<CChar>?>.stride
    let bytes = names.reduce(0) { $0 + $1.utf8.count + 1 }
    guard let block = malloc(pointers + bytes) else { return nil }
    let table = block.bindMemory(to: UnsafePointer<CChar>?.self, capacity: names.count + 1)
    var text = (block + pointers).assumingMemoryBound(to: CChar.self)
    for (i, n) in names.enumerated() {
        let u = Array(n.utf8CString)
        text.update(from: u, count: u.count)
        table[i] = UnsafePointer(text)
        text += u.count
    }
    table[names.count] = nil
    return table
}

@_cdecl("jack_port_register")
public func ipnjack_port_register(_ c: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ type: UnsafePointer<CChar>?,
                           _ flags: UInt, _ bufferSize: UInt) -> OpaquePointer? {
    guard let cl = client(c), let name else { return nil }
    let t = type.map { String(cString: $0) } ?? JackWire.audioType
    return cl.register(String(cString: name), type: t, flags: UInt32(truncatingIfNeeded: flags))?.handle
}

@_cdecl("jack_port_unregister")
public func ipnjack_port_unregister(_ c: OpaquePointer?, _ p: OpaquePointer?) -> Int32 {
    guard let cl = client(c), let port = JackPort.from(p) else { return -1 }
    return cl.unregister(port) ? 0 : -1
}

@_cdecl("jack_port_get_buffer")
public func ipnjack_port_get_buffer(_ p: OpaquePointer?, _ frames: jack_nframes_t) -> UnsafeMutableRawPointer? {
    guard let port = JackPort.from(p) else { return nil }
    return port.isAudio ? UnsafeMutableRawPointer(port.buffer) : port.midi.handle
}

@_cdecl("jack_port_name") public func ipnjack_port_name(_ p: OpaquePointer?) -> UnsafePointer<CChar>? { JackPort.from(p).map { UnsafePointer($0.cName) } }
@_cdecl("jack_port_short_name") public func ipnjack_port_short_name(_ p: OpaquePointer?) -> UnsafePointer<CChar>? { JackPort.from(p).map { UnsafePointer($0.cShortName) } }
@_cdecl("jack_port_type") public func ipnjack_port_type(_ p: OpaquePointer?) -> UnsafePointer<CChar>? { JackPort.from(p).map { UnsafePointer($0.cType) } }
@_cdecl("jack_port_flags") public func ipnjack_port_flags(_ p: OpaquePointer?) -> Int32 { Int32(bitPattern: JackPort.from(p)?.info.flags ?? 0) }
@_cdecl("jack_port_uuid") public func ipnjack_port_uuid(_ p: OpaquePointer?) -> jack_uuid_t { JackPort.from(p).map { JackWire.UUID.port($0.info.id) } ?? 0 }
@_cdecl("jack_port_type_id") public func ipnjack_port_type_id(_ p: OpaquePointer?) -> jack_port_type_id_t { JackPort.from(p)?.isAudio == false ? 1 : 0 }

@_cdecl("jack_port_is_mine")
public func ipnjack_port_is_mine(_ c: OpaquePointer?, _ p: OpaquePointer?) -> Int32 {
    guard let cl = client(c), let port = JackPort.from(p) else { return 0 }
    // By owner, as JACK does: a port is its client's from registration on, also in the registration callback,
    // which may run before jack_port_register has returned.
    return port.info.name.hasPrefix(cl.name + ":") ? 1 : 0
}

@_cdecl("jack_port_by_name")
public func ipnjack_port_by_name(_ c: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> OpaquePointer? {
    guard let cl = client(c), let name else { return nil }
    return cl.port(named: String(cString: name))?.handle
}

@_cdecl("jack_port_by_id")
public func ipnjack_port_by_id(_ c: OpaquePointer?, _ id: jack_port_id_t) -> OpaquePointer? {
    guard let cl = client(c) else { return nil }
    if let p = cl.port(id: id) { return p.handle }
    // Not seen yet: ask the server for every port and keep the one with this id.
    for n in cl.portsMatching(nil, type: nil, flags: 0) {
        if let p = cl.port(named: n), p.info.id == id { return p.handle }
    }
    return nil
}

@_cdecl("jack_get_ports")
public func ipnjack_get_ports(_ c: OpaquePointer?, _ pattern: UnsafePointer<CChar>?, _ type: UnsafePointer<CChar>?,
                       _ flags: UInt) -> UnsafeMutablePointer<UnsafePointer<CChar>?>? {
    guard let cl = client(c) else { return nil }
    return cStringArray(cl.portsMatching(pattern.map { String(cString: $0) }, type: type.map { String(cString: $0) },
                                         flags: UInt32(truncatingIfNeeded: flags)))
}

@_cdecl("jack_port_get_all_connections")
public func ipnjack_port_get_all_connections(_ c: OpaquePointer?, _ p: OpaquePointer?) -> UnsafeMutablePointer<UnsafePointer<CChar>?>? {
    guard let cl = client(c), let port = JackPort.from(p) else { return nil }
    return cStringArray(cl.connections(of: port.info.name))
}

@_cdecl("jack_port_get_connections")
public func ipnjack_port_get_connections(_ p: OpaquePointer?) -> UnsafeMutablePointer<UnsafePointer<CChar>?>? {
    guard let port = JackPort.from(p) else { return nil }
    return cStringArray(port.client.connections(of: port.info.name))
}

@_cdecl("jack_port_connected")
public func ipnjack_port_connected(_ p: OpaquePointer?) -> Int32 {
    guard let port = JackPort.from(p) else { return 0 }
    return Int32(port.client.connections(of: port.info.name).count)
}

@_cdecl("jack_port_connected_to")
public func ipnjack_port_connected_to(_ p: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Int32 {
    guard let port = JackPort.from(p), let name else { return 0 }
    return port.client.connections(of: port.info.name).contains(String(cString: name)) ? 1 : 0
}

@_cdecl("jack_connect")
public func ipnjack_connect(_ c: OpaquePointer?, _ source: UnsafePointer<CChar>?, _ destination: UnsafePointer<CChar>?) -> Int32 {
    guard let cl = client(c), let source, let destination else { return -1 }
    return cl.connect(String(cString: source), String(cString: destination))
}

@_cdecl("jack_disconnect")
public func ipnjack_disconnect(_ c: OpaquePointer?, _ source: UnsafePointer<CChar>?, _ destination: UnsafePointer<CChar>?) -> Int32 {
    guard let cl = client(c), let source, let destination else { return -1 }
    return cl.connect(String(cString: source), String(cString: destination), "disconnect")
}

@_cdecl("jack_port_disconnect")
public func ipnjack_port_disconnect(_ c: OpaquePointer?, _ p: OpaquePointer?) -> Int32 {
    guard let cl = client(c), let port = JackPort.from(p) else { return -1 }
    for other in cl.connections(of: port.info.name) {
        let (s, d) = port.isInput ? (other, port.info.name) : (port.info.name, other)
        guard cl.connect(s, d, "disconnect") == 0 else { return -1 }
    }
    return 0
}

@_cdecl("jack_port_get_aliases")
public func ipnjack_port_get_aliases(_ p: OpaquePointer?, _ aliases: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    guard let port = JackPort.from(p), let aliases else { return 0 }
    // The caller gives two buffers of jack_port_name_size() bytes.
    let known = port.aliases
    for (i, a) in known.prefix(2).enumerated() {
        guard let dst = aliases[i] else { continue }
        _ = a.withCString { strncpy(dst, $0, JackWire.portNameSize - 1) }
        dst[JackWire.portNameSize - 1] = 0
    }
    return Int32(min(2, known.count))
}

@_cdecl("jack_port_set_name")
public func ipnjack_port_set_name(_ p: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Int32 {
    JackLog.notImplemented("jack_port_set_name")
    return -1
}

@_cdecl("jack_port_rename")
public func ipnjack_port_rename(_ c: OpaquePointer?, _ p: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> Int32 {
    JackLog.notImplemented("jack_port_rename")
    return -1
}

/// Any client may name any port by up to two aliases (jack_lsp -A lists them; a port is found by them too).
@_cdecl("jack_port_set_alias")
public func ipnjack_port_set_alias(_ p: OpaquePointer?, _ alias: UnsafePointer<CChar>?) -> Int32 {
    guard let port = JackPort.from(p), let alias else { return -1 }
    return port.client.alias(port, String(cString: alias), set: true)
}

@_cdecl("jack_port_unset_alias")
public func ipnjack_port_unset_alias(_ p: OpaquePointer?, _ alias: UnsafePointer<CChar>?) -> Int32 {
    guard let port = JackPort.from(p), let alias else { return -1 }
    return port.client.alias(port, String(cString: alias), set: false)
}

// Input monitoring is for ports flagged JackPortCanMonitor (a card's own monitoring); no port on jackd-ipn is.
// As JACK's API says for such ports, a request changes nothing and the port never monitors its input.
@_cdecl("jack_port_request_monitor_by_name")
public func ipnjack_port_request_monitor_by_name(_ c: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ onoff: Int32) -> Int32 {
    guard let cl = client(c), let name, cl.port(named: String(cString: name)) != nil else { return -1 }
    return 0
}
@_cdecl("jack_port_request_monitor") public func ipnjack_port_request_monitor(_ p: OpaquePointer?, _ onoff: Int32) -> Int32 { 0 }
@_cdecl("jack_port_ensure_monitor") public func ipnjack_port_ensure_monitor(_ p: OpaquePointer?, _ onoff: Int32) -> Int32 { 0 }
@_cdecl("jack_port_monitoring_input") public func ipnjack_port_monitoring_input(_ p: OpaquePointer?) -> Int32 { 0 }

// MARK: latency: a port's range is what its owner set; the card's ports say one period.

@_cdecl("jack_port_get_latency_range")
public func ipnjack_port_get_latency_range(_ p: OpaquePointer?, _ mode: jack_latency_callback_mode_t, _ range: UnsafeMutablePointer<jack_latency_range_t>?) {
    guard let port = JackPort.from(p), let range else { return }
    range.pointee = port.latency[mode == JackCaptureLatency ? 0 : 1]
}

@_cdecl("jack_port_set_latency_range")
public func ipnjack_port_set_latency_range(_ p: OpaquePointer?, _ mode: jack_latency_callback_mode_t, _ range: UnsafeMutablePointer<jack_latency_range_t>?) {
    guard let port = JackPort.from(p), let range else { return }
    port.latency[mode == JackCaptureLatency ? 0 : 1] = range.pointee
}

@_cdecl("jack_port_get_latency") public func ipnjack_port_get_latency(_ p: OpaquePointer?) -> jack_nframes_t { JackPort.from(p)?.info.latency ?? 0 }
@_cdecl("jack_port_get_total_latency")
public func ipnjack_port_get_total_latency(_ c: OpaquePointer?, _ p: OpaquePointer?) -> jack_nframes_t { JackPort.from(p)?.info.latency ?? 0 }
@_cdecl("jack_recompute_total_latencies") public func ipnjack_recompute_total_latencies(_ c: OpaquePointer?) -> Int32 { 0 }
@_cdecl("jack_recompute_total_latency") public func ipnjack_recompute_total_latency(_ c: OpaquePointer?, _ p: OpaquePointer?) -> Int32 { 0 }

// MARK: uuids, as jack2 makes them (JackWire.UUID): a port's from its id, a client's from its node on the bus.

@_cdecl("jack_uuid_unparse")
public func ipnjack_uuid_unparse(_ u: jack_uuid_t, _ buf: UnsafeMutablePointer<CChar>?) {
    guard let buf else { return }
    _ = "\(u)".withCString { strncpy(buf, $0, 36) }
    buf[36] = 0
}

@_cdecl("jack_uuid_empty")
public func ipnjack_uuid_empty(_ u: jack_uuid_t) -> Int32 { u == 0 ? 1 : 0 }

@_cdecl("jack_uuid_parse")
public func ipnjack_uuid_parse(_ s: UnsafePointer<CChar>?, _ u: UnsafeMutablePointer<jack_uuid_t>?) -> Int32 {
    guard let s, let v = UInt64(String(cString: s)) else { return -1 }
    u?.pointee = v
    return 0
}

@_cdecl("jack_get_uuid_for_client_name")
public func ipnjack_get_uuid_for_client_name(_ c: OpaquePointer?, _ name: UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>? {
    guard let cl = client(c), let name else { return nil }
    var r = JackWire.Request(op: "client-uuid"); r.name = String(cString: name)
    guard let uuid = cl.ask(r)?.uuid else { return nil }
    return strdup("\(uuid)")  // the caller frees it with jack_free
}

@_cdecl("jack_get_client_name_by_uuid")
public func ipnjack_get_client_name_by_uuid(_ c: OpaquePointer?, _ uuid: UnsafePointer<CChar>?) -> UnsafeMutablePointer<CChar>? {
    guard let cl = client(c), let uuid, let subject = UInt64(String(cString: uuid)) else { return nil }
    var r = JackWire.Request(op: "client-name"); r.subject = subject
    guard let name = cl.ask(r)?.name else { return nil }
    return strdup(name)
}

@_cdecl("jack_client_get_uuid")
public func ipnjack_client_get_uuid(_ c: OpaquePointer?) -> UnsafeMutablePointer<CChar>? {
    guard let cl = client(c) else { return nil }
    return strdup("\(cl.uuid)")
}
