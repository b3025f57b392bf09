import CJackAPI
import Foundation
import Glibc
import MediaWire

// JACK's metadata (jack/metadata.h): properties of clients and ports, kept by jackd-ipn for as long as it runs
// (JackMetadata on the server's side). The getters take no client: they ask through one this process has open.

@_cdecl("jack_set_property")
public func ipnjack_set_property(_ c: OpaquePointer?, _ subject: jack_uuid_t, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?,
                                 _ type: UnsafePointer<CChar>?) -> Int32 {
    guard let cl = client(c), let key, let value else { return -1 }
    var r = JackWire.Request(op: "set-property")
    r.subject = subject; r.key = String(cString: key); r.value = String(cString: value); r.type = type.map { String(cString: $0) }
    return metadataRequest(cl, r) == nil ? -1 : 0
}

@_cdecl("jack_get_property")
public func ipnjack_get_property(_ subject: jack_uuid_t, _ key: UnsafePointer<CChar>?, _ value: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                 _ type: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    value?.pointee = nil
    type?.pointee = nil
    guard let key, let cl = anyOpenClient() else { return -1 }
    var r = JackWire.Request(op: "get-property"); r.subject = subject; r.key = String(cString: key)
    guard let p = cl.ask(r)?.properties?.first else { return -1 }
    value?.pointee = strdup(p.value)
    type?.pointee = p.type.map { strdup($0) }
    return 0
}

@_cdecl("jack_get_properties")
public func ipnjack_get_properties(_ subject: jack_uuid_t, _ desc: UnsafeMutablePointer<jack_description_t>?) -> Int32 {
    guard let desc, let cl = anyOpenClient() else { return -1 }
    var r = JackWire.Request(op: "get-properties"); r.subject = subject
    guard let list = cl.ask(r)?.properties else { return -1 }
    fill(desc, subject: subject, list)
    return Int32(list.count)
}

@_cdecl("jack_get_all_properties")
public func ipnjack_get_all_properties(_ descs: UnsafeMutablePointer<UnsafeMutablePointer<jack_description_t>?>?) -> Int32 {
    guard let descs, let cl = anyOpenClient(), let list = cl.ask(JackWire.Request(op: "get-all-properties"))?.properties else { return -1 }
    var subjects: [UInt64] = []
    var bySubject: [UInt64: [JackWire.Property]] = [:]
    for p in list {
        if bySubject[p.subject] == nil { subjects.append(p.subject) }
        bySubject[p.subject, default: []].append(p)
    }
    // The caller frees the array with free() and each description with jack_free_description.
    let array = malloc(max(1, subjects.count) * MemoryLayout<jack_description_t>.stride)!.bindMemory(to: jack_description_t.self, capacity: max(1, subjects.count))
    for (i, s) in subjects.enumerated() { fill(array + i, subject: s, bySubject[s]!) }
    descs.pointee = array
    return Int32(subjects.count)
}

@_cdecl("jack_free_description")
public func ipnjack_free_description(_ desc: UnsafeMutablePointer<jack_description_t>?, _ freeItself: Int32) {
    guard let desc else { return }
    if let props = desc.pointee.properties {
        for i in 0..<Int(desc.pointee.property_cnt) {
            free(UnsafeMutableRawPointer(mutating: props[i].key))
            free(UnsafeMutableRawPointer(mutating: props[i].data))
            free(UnsafeMutableRawPointer(mutating: props[i].type))
        }
        free(props)
    }
    desc.pointee.properties = nil
    desc.pointee.property_cnt = 0
    if freeItself != 0 { free(desc) }
}

@_cdecl("jack_remove_property")
public func ipnjack_remove_property(_ c: OpaquePointer?, _ subject: jack_uuid_t, _ key: UnsafePointer<CChar>?) -> Int32 {
    guard let cl = client(c), let key else { return -1 }
    var r = JackWire.Request(op: "remove-property"); r.subject = subject; r.key = String(cString: key)
    return metadataRequest(cl, r) == nil ? -1 : 0
}

@_cdecl("jack_remove_properties")
public func ipnjack_remove_properties(_ c: OpaquePointer?, _ subject: jack_uuid_t) -> Int32 {
    guard let cl = client(c) else { return -1 }
    var r = JackWire.Request(op: "remove-properties"); r.subject = subject
    return metadataRequest(cl, r).map { Int32($0.count ?? 0) } ?? -1
}

@_cdecl("jack_remove_all_properties")
public func ipnjack_remove_all_properties(_ c: OpaquePointer?) -> Int32 {
    guard let cl = client(c) else { return -1 }
    return metadataRequest(cl, JackWire.Request(op: "remove-all-properties")) == nil ? -1 : 0
}

/// The answer, or nil after saying why on standard error (as jack2 does for a failed metadata change).
private func metadataRequest(_ cl: JackClient, _ r: JackWire.Request) -> JackWire.Reply? {
    guard let reply = cl.ask(r) else { return nil }
    if let e = reply.error { JackLog.error("\(r.op): \(e)"); return nil }
    return reply
}

private func anyOpenClient() -> JackClient? {
    let c = JackClient.opened.withLock { $0.first }
    if c == nil { JackLog.error("JACK metadata is kept by the server: open a client first") }
    return c
}

/// `desc` describes `subject` with copies of `list` (freed by jack_free_description).
private func fill(_ desc: UnsafeMutablePointer<jack_description_t>, subject: UInt64, _ list: [JackWire.Property]) {
    desc.pointee.subject = subject
    desc.pointee.property_cnt = UInt32(list.count)
    desc.pointee.property_size = UInt32(list.count)
    guard !list.isEmpty else { desc.pointee.properties = nil; return }
    let props = malloc(list.count * MemoryLayout<jack_property_t>.stride)!.bindMemory(to: jack_property_t.self, capacity: list.count)
    for (i, p) in list.enumerated() {
        props[i] = jack_property_t(key: UnsafePointer(strdup(p.key)), data: UnsafePointer(strdup(p.value)), type: p.type.map { UnsafePointer(strdup($0)) })
    }
    desc.pointee.properties = props
}
