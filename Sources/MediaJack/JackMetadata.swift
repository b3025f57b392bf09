import MediaWire

/// JACK's metadata (jack/metadata.h) as jackd-ipn keeps it: properties of clients and ports, by uuid, in the
/// order they were set. They live as long as the server, and a port's or client's go with it, as in jack2.
/// Any client may set or remove any property (jack2's rule); a bus holds at most `limit` of them, so one
/// client cannot fill the server's memory.
struct JackMetadata {
    static let limit = 4096
    private var bySubject: [UInt64: [JackWire.Property]] = [:]
    private var subjects: [UInt64] = []
    private var count = 0

    typealias Change = JackWire.PropertyChange

    static func event(_ subject: UInt64, _ key: String?, _ change: Int) -> JackWire.Event {
        var e = JackWire.Event(event: "property")
        e.subject = subject; e.key = key; e.change = change
        return e
    }

    mutating func handle(_ r: JackWire.Request) -> (JackWire.Reply, [JackWire.Event]) {
        var reply = JackWire.Reply()
        switch r.op {
        case "set-property":
            guard let subject = r.subject, let key = r.key, !key.isEmpty, let value = r.value else {
                return (.failure("set-property: a subject, a key and a value"), [])
            }
            let p = JackWire.Property(subject: subject, key: key, value: value, type: r.type.flatMap { $0.isEmpty ? nil : $0 })
            if let i = bySubject[subject]?.firstIndex(where: { $0.key == key }) {
                bySubject[subject]![i] = p
                return (reply, [Self.event(subject, key, Change.changed)])
            }
            guard count < Self.limit else { return (.failure("jackd-ipn keeps at most \(Self.limit) properties"), []) }
            if bySubject[subject] == nil { subjects.append(subject) }
            bySubject[subject, default: []].append(p)
            count += 1
            return (reply, [Self.event(subject, key, Change.created)])
        case "get-property":
            guard let subject = r.subject, let key = r.key, let p = bySubject[subject]?.first(where: { $0.key == key }) else {
                return (.failure("no property \(r.key ?? "") of \(r.subject ?? 0)"), [])
            }
            reply.properties = [p]
        case "get-properties":
            reply.properties = r.subject.flatMap { bySubject[$0] } ?? []
        case "get-all-properties":
            reply.properties = subjects.flatMap { bySubject[$0] ?? [] }
        case "remove-property":
            guard let subject = r.subject, let key = r.key, let i = bySubject[subject]?.firstIndex(where: { $0.key == key }) else {
                return (.failure("no property \(r.key ?? "") of \(r.subject ?? 0)"), [])
            }
            bySubject[subject]!.remove(at: i)
            count -= 1
            if bySubject[subject]!.isEmpty { forget(subject) }
            return (reply, [Self.event(subject, key, Change.deleted)])
        case "remove-properties":
            guard let subject = r.subject else { return (.failure("remove-properties: a subject"), []) }
            let (n, events) = removeAll(of: subject)
            reply.count = n
            return (reply, events)
        case "remove-all-properties":
            let had = count > 0
            bySubject = [:]; subjects = []; count = 0
            return (reply, had ? [Self.event(0, nil, Change.deleted)] : [])
        default:
            return (.failure("unknown metadata request \(r.op)"), [])
        }
        return (reply, [])
    }

    /// Removes every property of `subject` (a port or client that went): how many, and the event saying so.
    mutating func removeAll(of subject: UInt64) -> (Int, [JackWire.Event]) {
        guard let n = bySubject[subject]?.count else { return (0, []) }
        forget(subject)
        count -= n
        return (n, [Self.event(subject, nil, Change.deleted)])
    }

    private mutating func forget(_ subject: UInt64) {
        bySubject[subject] = nil
        subjects.removeAll { $0 == subject }
    }

    static let operations: Set<String> = ["set-property", "get-property", "get-properties", "get-all-properties",
                                          "remove-property", "remove-properties", "remove-all-properties"]
    /// What a node with no client may ask (jack_get_property and friends take no client).
    static let queries: Set<String> = ["get-property", "get-properties", "get-all-properties"]
}
