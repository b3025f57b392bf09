import Foundation
import Glibc
import MediaWire

/// The JACK graph of one bus, as jackd-ipn keeps it: clients (our libjack on the bus), their ports, the
/// card's physical ports (`system:capture_N`, `system:playback_N`) and the connections. Each period the
/// server runs the active clients in graph order (`order`): a client's inputs are the sum of what the ports
/// connected to them hold this period, so what one client writes the next one reads in the same period.
///
/// Not `Sendable`: the server's period thread owns it. Buffers are made when a port is registered.
final class JackGraph {
    typealias Flag = JackWire.PortFlag

    final class Port {
        var info: JackWire.PortInfo
        let owner: UInt32  // the client's node id; 0 for the card ("system")
        /// This period's samples (audio ports; MIDI ports carry none yet).
        let buffer: UnsafeMutablePointer<Float>
        init(info: JackWire.PortInfo, owner: UInt32, frames: Int) {
            self.info = info; self.owner = owner
            buffer = .allocate(capacity: frames)
            buffer.initialize(repeating: 0, count: frames)
        }
        deinit { buffer.deallocate() }
        var isInput: Bool { info.flags & Flag.isInput != 0 }
        var isAudio: Bool { info.type == JackWire.audioType }
    }

    final class Client {
        let node: UInt32
        let name: String
        var active = false
        var processes = false
        /// An ALSA plugin application playing onto the bus (not a JACK program): its outputs are what it sent.
        var player = false
        var inputs: [UInt32] = []
        var outputs: [UInt32] = []
        var processed = 0, late = 0
        /// The period of a process call it has not answered yet: until it does, it is not called (and not
        /// waited for) again, so a client that stopped costs the others one wait, not one every period.
        var outstanding: UInt64?
        init(node: UInt32, name: String) { self.node = node; self.name = name }
    }

    let frames: Int
    let channels: Int
    /// Ports a client may have (each costs a period of samples in every process call).
    static let maxPortsPerClient = 64
    private(set) var ports: [UInt32: Port] = [:]
    private var byName: [String: UInt32] = [:]
    /// Source (an output port) → destinations (input ports).
    private(set) var connections: [UInt32: Set<UInt32>] = [:]
    private(set) var clients: [UInt32: Client] = [:]
    /// The active clients with a process callback, sources before the clients they feed.
    private(set) var order: [Client] = []
    private var nextPortID: UInt32 = 1
    /// JACK programs' clients now (not the ALSA players), and whether there ever was one.
    private(set) var jackClients = 0
    private(set) var everHadJackClients = false
    /// JACK's transport: rolling or stopped, and the frame it is at (moves a period each period it rolls).
    var transportRolling = false
    var transportFrame: UInt32 = 0
    /// JACK's metadata: properties of clients and ports.
    private(set) var metadata = JackMetadata()
    /// The card's ports, channel by channel.
    private(set) var captureIDs: [UInt32] = []
    private(set) var playbackIDs: [UInt32] = []

    init(frames: Int, channels: Int) {
        self.frames = frames
        self.channels = channels
        for c in 1...channels {
            captureIDs.append(addPort(owner: 0, name: "system:capture_\(c)", type: JackWire.audioType,
                                      flags: Flag.isOutput | Flag.isPhysical | Flag.isTerminal, latency: UInt32(frames)).info.id)
        }
        for c in 1...channels {
            playbackIDs.append(addPort(owner: 0, name: "system:playback_\(c)", type: JackWire.audioType,
                                       flags: Flag.isInput | Flag.isPhysical | Flag.isTerminal, latency: UInt32(frames)).info.id)
        }
    }

    @discardableResult
    private func addPort(owner: UInt32, name: String, type: String, flags: UInt32, latency: UInt32 = 0) -> Port {
        let p = Port(info: .init(id: nextPortID, name: name, type: type, flags: flags, latency: latency), owner: owner, frames: frames)
        nextPortID += 1
        ports[p.info.id] = p
        byName[name] = p.info.id
        return p
    }

    func port(named name: String) -> Port? {
        if let id = byName[name] { return ports[id] }
        // An alias names the port too.
        return ports.values.first { $0.info.aliases.contains(name) }
    }

    /// A request from node `node`; the answer, and the events every JACK client is told.
    func handle(_ r: JackWire.Request, from node: UInt32) -> (JackWire.Reply, [JackWire.Event]) {
        if r.op == "open" { return open(r, node: node) }
        if ["ports", "port", "connections", "client-uuid", "client-name"].contains(r.op) { return (query(r), []) }
        if JackMetadata.queries.contains(r.op) { return metadata.handle(r) }
        guard let client = clients[node] else { return (.failure("not an open client", status: JackWire.Status.noSuchClient), []) }
        if JackMetadata.operations.contains(r.op) { return metadata.handle(r) }
        switch r.op {
        case "close":
            return (JackWire.Reply(), remove(node))
        case "register":
            guard let short = r.name, !short.isEmpty, let type = r.type, let flags = r.flags else { return (.failure("register: name, type and flags"), []) }
            let full = "\(client.name):\(short)"
            guard full.utf8.count < JackWire.portNameSize else { return (.failure("port name too long: \(full)"), []) }
            guard client.inputs.count + client.outputs.count < Self.maxPortsPerClient else {
                return (.failure("a client has at most \(Self.maxPortsPerClient) ports on jackd-ipn"), [])
            }
            guard byName[full] == nil else { return (.failure("port \(full) exists"), []) }
            guard type == JackWire.audioType || type == JackWire.midiType else { return (.failure("unknown port type \(type)"), []) }
            let input = flags & Flag.isInput != 0
            guard input != (flags & Flag.isOutput != 0) else { return (.failure("a port is an input or an output"), []) }
            let p = addPort(owner: node, name: full, type: type, flags: flags & ~Flag.isPhysical)
            if input { client.inputs.append(p.info.id) } else { client.outputs.append(p.info.id) }
            var reply = JackWire.Reply(); reply.port = p.info
            var e = JackWire.Event(event: "registered"); e.port = p.info
            return (reply, [e])
        case "unregister":
            guard let name = r.name, let p = port(named: name), p.owner == node else { return (.failure("not a port of this client"), []) }
            return (JackWire.Reply(), removePort(p))
        case "alias":
            // Any client may alias any port (as in jack2): `destination` added (flags 1) or removed (flags 0).
            guard let name = r.name, let alias = r.destination, !alias.isEmpty, let p = port(named: name) else {
                return (.failure("alias: a port and a non-empty alias"), [])
            }
            if r.flags == 0 {
                guard let i = p.info.aliases.firstIndex(of: alias) else { return (.failure("\(p.info.name) has no alias \(alias)"), []) }
                p.info.aliases.remove(at: i)
            } else {
                guard alias.utf8.count < JackWire.portNameSize else { return (.failure("alias too long: \(alias)"), []) }
                guard p.info.aliases.count < 2 else { return (.failure("\(p.info.name) has two aliases already, JACK's most"), []) }
                guard port(named: alias) == nil else { return (.failure("\(alias) already names a port"), []) }
                p.info.aliases.append(alias)
            }
            var reply = JackWire.Reply(); reply.port = p.info
            var e = JackWire.Event(event: "aliased"); e.port = p.info
            return (reply, [e])
        case "transport":
            // start, stop, locate (to `flags`, a frame): from the next period on.
            switch r.name {
            case "start": transportRolling = true
            case "stop": transportRolling = false
            case "locate": transportFrame = r.flags ?? 0
            default: return (.failure("transport: start, stop or locate"), [])
            }
            return (JackWire.Reply(), [])
        case "activate":
            client.active = true
            client.outstanding = nil
            client.processes = r.processes ?? true
            reorder()
            return (JackWire.Reply(), [JackWire.Event(event: "graph")])
        case "deactivate":
            client.active = false
            var events: [JackWire.Event] = []
            for id in client.inputs + client.outputs { if let p = ports[id] { events += disconnectAll(p) } }
            reorder()
            return (JackWire.Reply(), events + [JackWire.Event(event: "graph")])
        case "connect", "disconnect":
            guard let s = r.source, let d = r.destination else { return (.failure("\(r.op): source and destination"), []) }
            guard let src = port(named: s) else { return (.failure("\(s) is not a port"), []) }
            guard let dst = port(named: d) else { return (.failure("\(d) is not a port"), []) }
            guard !src.isInput, dst.isInput else { return (.failure("\(s) must be an output and \(d) an input"), []) }
            guard src.info.type == dst.info.type else { return (.failure("\(s) and \(d) have different types"), []) }
            // As jack2: only an active client's ports connect (the card's always are).
            for owner in [src.owner, dst.owner] where owner != 0 && r.op == "connect" {
                guard clients[owner]?.active == true else { return (.failure("cannot connect ports owned by inactive clients; activate it first"), []) }
            }
            let connected = connections[src.info.id]?.contains(dst.info.id) ?? false
            if r.op == "connect" {
                // JACK says EEXIST, and jack_connect prints "already connected?" for a non-zero answer.
                guard !connected else { var e = JackWire.Reply.failure("already connected"); e.status = 17; return (e, []) }
                connections[src.info.id, default: []].insert(dst.info.id)
            } else {
                guard connected else { return (.failure("not connected"), []) }
                connections[src.info.id]?.remove(dst.info.id)
            }
            reorder()
            var e = JackWire.Event(event: r.op == "connect" ? "connected" : "disconnected")
            e.source = src.info.name; e.destination = dst.info.name
            e.sourceID = src.info.id; e.destinationID = dst.info.id
            return (JackWire.Reply(), [e, JackWire.Event(event: "graph")])
        default:
            return (.failure("unknown request \(r.op)"), [])
        }
    }

    private func open(_ r: JackWire.Request, node: UInt32) -> (JackWire.Reply, [JackWire.Event]) {
        guard clients[node] == nil else { return (.failure("this node already has a client"), []) }
        guard let wanted = r.name, !wanted.isEmpty, !wanted.contains(":") else {
            return (.failure("a client name is 1 to 63 bytes without ':'", status: JackWire.Status.failure | JackWire.Status.invalidOption), [])
        }
        guard wanted.utf8.count < JackWire.clientNameSize else { return (.failure("client name too long", status: JackWire.Status.failure | JackWire.Status.invalidOption), []) }
        let taken = Set(clients.values.map(\.name)).union(["system"])
        // alsa-NODE is what an ALSA player is called: a JACK program's client never takes such a name.
        func isPlayerName(_ n: String) -> Bool { n.hasPrefix("alsa-") && !n.dropFirst(5).isEmpty && n.dropFirst(5).allSatisfy(\.isNumber) }
        var name = wanted, status: UInt32 = 0
        if taken.contains(name) || isPlayerName(name) {
            if r.exact == true { return (.failure("client name \(wanted) is in use", status: JackWire.Status.failure | JackWire.Status.nameNotUnique), []) }
            // jack2's way: NAME-01, NAME-02, ... (the name shortened to leave room for the number).
            let base = String(decoding: Array(wanted.utf8.prefix(JackWire.clientNameSize - 5)), as: UTF8.self)
            var n = 1
            repeat { name = base + "-" + (n < 10 ? "0\(n)" : "\(n)"); n += 1 } while taken.contains(name)
            status |= JackWire.Status.nameNotUnique
        }
        clients[node] = Client(node: node, name: name)
        jackClients += 1
        everHadJackClients = true
        var reply = JackWire.Reply()
        reply.name = name; reply.status = status; reply.uuid = JackWire.UUID.client(node)
        return (reply, [JackWire.Event(event: "client-registered", client: name)])
    }

    /// An ALSA plugin application that plays onto the bus appears as a JACK client `alsa-NODE` whose outputs
    /// `out_1...` carry what it plays, connected to the card's playback ports (so it is heard as before); JACK
    /// programs can take it into their inputs too.
    func addPlayer(node: UInt32) -> [JackWire.Event] {
        guard clients[node] == nil else { return [] }
        let c = Client(node: node, name: "alsa-\(node)")
        c.active = true
        c.player = true
        clients[node] = c
        var events = [JackWire.Event(event: "client-registered", client: c.name)]
        for ch in 1...channels {
            let p = addPort(owner: node, name: "\(c.name):out_\(ch)", type: JackWire.audioType, flags: Flag.isOutput | Flag.isTerminal)
            c.outputs.append(p.info.id)
            var e = JackWire.Event(event: "registered"); e.port = p.info
            events.append(e)
            let to = playbackIDs[ch - 1]
            connections[p.info.id, default: []].insert(to)
            var k = JackWire.Event(event: "connected")
            k.source = p.info.name; k.destination = ports[to]?.info.name; k.sourceID = p.info.id; k.destinationID = to
            events.append(k)
        }
        reorder()
        return events + [JackWire.Event(event: "graph")]
    }

    /// A player's period: its interleaved samples into its output ports, or silence when it sent none.
    func takePlayer(_ node: UInt32, interleaved: UnsafePointer<Float>?) {
        guard let c = clients[node], c.player else { return }
        for (ch, id) in c.outputs.enumerated() {
            guard let port = ports[id] else { continue }
            if let interleaved {
                for f in 0..<frames { port.buffer[f] = interleaved[f * channels + ch] }
            } else {
                port.buffer.update(repeating: 0, count: frames)
            }
        }
    }

    /// A client that closed or left: its ports go, with their connections.
    func remove(_ node: UInt32) -> [JackWire.Event] {
        guard let c = clients.removeValue(forKey: node) else { return [] }
        if !c.player { jackClients -= 1 }
        var events: [JackWire.Event] = []
        for id in c.inputs + c.outputs { if let p = ports[id] { events += removePort(p) } }
        events += metadata.removeAll(of: JackWire.UUID.client(node)).1
        reorder()
        return events + [JackWire.Event(event: "client-unregistered", client: c.name), JackWire.Event(event: "graph")]
    }

    private func removePort(_ p: Port) -> [JackWire.Event] {
        var events = disconnectAll(p)
        ports[p.info.id] = nil
        byName[p.info.name] = nil
        connections[p.info.id] = nil
        if let c = clients[p.owner] {
            c.inputs.removeAll { $0 == p.info.id }
            c.outputs.removeAll { $0 == p.info.id }
        }
        var e = JackWire.Event(event: "unregistered"); e.port = p.info
        events.append(e)
        events += metadata.removeAll(of: JackWire.UUID.port(p.info.id)).1
        return events
    }

    private func disconnectAll(_ p: Port) -> [JackWire.Event] {
        var events: [JackWire.Event] = []
        func told(_ s: UInt32, _ d: UInt32) {
            var e = JackWire.Event(event: "disconnected")
            e.source = ports[s]?.info.name; e.destination = ports[d]?.info.name
            e.sourceID = s; e.destinationID = d
            events.append(e)
        }
        if p.isInput {
            for (s, ds) in connections where ds.contains(p.info.id) { connections[s]?.remove(p.info.id); told(s, p.info.id) }
        } else {
            for d in connections[p.info.id] ?? [] { told(p.info.id, d) }
            connections[p.info.id] = []
        }
        return events
    }

    /// Sources before what they feed (Kahn's order over client → client edges); a cycle's clients follow in
    /// the order they joined, each reading what the other wrote a period before.
    private func reorder() {
        let running = clients.values.filter(\.active).sorted { $0.node < $1.node }
        var feeds: [UInt32: Set<UInt32>] = [:], indegree: [UInt32: Int] = [:]
        for c in running { indegree[c.node] = 0 }
        for (s, ds) in connections {
            guard let from = ports[s]?.owner, indegree[from] != nil else { continue }
            for d in ds {
                guard let to = ports[d]?.owner, to != from, indegree[to] != nil else { continue }
                if feeds[from, default: []].insert(to).inserted { indegree[to]! += 1 }
            }
        }
        var result: [Client] = [], ready = running.filter { indegree[$0.node] == 0 }, placed = Set<UInt32>()
        while !ready.isEmpty || placed.count < running.count {
            if ready.isEmpty, let next = running.first(where: { !placed.contains($0.node) }) { ready = [next] }  // a cycle
            let c = ready.removeFirst()
            guard placed.insert(c.node).inserted else { continue }
            result.append(c)
            for to in (feeds[c.node] ?? []).sorted() {
                indegree[to]! -= 1
                if indegree[to] == 0, let t = clients[to] { ready.append(t) }
            }
        }
        order = result.filter(\.processes)
    }

    private func query(_ r: JackWire.Request) -> JackWire.Reply {
        var reply = JackWire.Reply()
        switch r.op {
        case "port":
            guard let name = r.name, let p = port(named: name) else { return .failure("no port \(r.name ?? "")") }
            reply.port = p.info
        case "client-uuid":
            guard let name = r.name, let c = clients.values.first(where: { $0.name == name }) else { return .failure("no client \(r.name ?? "")") }
            reply.uuid = JackWire.UUID.client(c.node)
        case "client-name":
            guard let uuid = r.subject, let c = clients.values.first(where: { JackWire.UUID.client($0.node) == uuid }) else {
                return .failure("no client with uuid \(r.subject ?? 0)")
            }
            reply.name = c.name
        case "connections":
            guard let name = r.name, let p = port(named: name) else { return .failure("no port \(r.name ?? "")") }
            let ids = p.isInput ? connections.filter { $0.value.contains(p.info.id) }.map(\.key) : Array(connections[p.info.id] ?? [])
            reply.names = ids.compactMap { ports[$0]?.info.name }.sorted { (byName[$0] ?? 0) < (byName[$1] ?? 0) }
        default:  // ports: JACK's order, which is registration order
            // JACK's semantics: POSIX extended regular expressions, matched anywhere in the name or type.
            guard let pattern = PosixRegex(r.pattern), let typePattern = PosixRegex(r.typePattern) else {
                return .failure("bad regular expression (or longer than \(PosixRegex.maxLength) bytes)")
            }
            let flags = r.flags ?? 0
            func matches(_ re: PosixRegex, _ s: String) -> Bool { re.matches(s) }
            reply.names = ports.values.sorted { $0.info.id < $1.info.id }
                .filter { $0.info.flags & flags == flags && matches(pattern, $0.info.name) && matches(typePattern, $0.info.type) }
                .map(\.info.name)
        }
        return reply
    }

    // MARK: the period

    /// The samples `client`'s input ports read this period, port after port, into `out`.
    func gatherInputs(of client: Client, into out: UnsafeMutablePointer<Float>) {
        for (i, id) in client.inputs.enumerated() {
            let dst = out + i * frames
            sum(into: dst, id)
        }
    }

    /// What input port `id` reads this period: the sum of every audio output connected to it (silence when
    /// none), or for a MIDI port every connected output's events, merged in time order.
    func sum(into dst: UnsafeMutablePointer<Float>, _ id: UInt32) {
        dst.update(repeating: 0, count: frames)
        guard let p = ports[id] else { return }
        if !p.isAudio {
            mergeMidi(into: UnsafeMutableRawBufferPointer(start: dst, count: frames * 4), id)
            return
        }
        for (s, ds) in connections where ds.contains(id) {
            guard let src = ports[s] else { continue }
            for f in 0..<frames { dst[f] += src.buffer[f] }
        }
    }

    private func mergeMidi(into slot: UnsafeMutableRawBufferPointer, _ id: UInt32) {
        var writer = JackMidiSlot.Writer(slot)
        var count = 0, only: Port?
        for (s, ds) in connections where ds.contains(id) { count += 1; only = ports[s] }
        if count == 1, let only {
            JackMidiSlot.forEach(UnsafeRawBufferPointer(start: only.buffer, count: frames * 4)) { writer.add(time: $0, $1) }
        } else if count > 1 {
            let sources = connections.compactMap { $0.value.contains(id) ? ports[$0.key] : nil }
            // The control path allocates; MIDI merges of several sources are rare and small.
            var events: [(UInt32, Int, [UInt8])] = []
            for (n, src) in sources.enumerated() {
                JackMidiSlot.forEach(UnsafeRawBufferPointer(start: src.buffer, count: frames * 4)) { events.append(($0, n, Array($1))) }
            }
            for e in events.sorted(by: { ($0.0, $0.1) < ($1.0, $1.1) }) { e.2.withUnsafeBytes { writer.add(time: e.0, $0) } }
        }
        midiLost += writer.lost
    }
    /// MIDI events that did not fit a port's period.
    private(set) var midiLost = 0

    /// A client's outputs for this period, port after port (its ports' order).
    func takeOutputs(of client: Client, from samples: UnsafePointer<Float>, ports count: Int) {
        for (i, id) in client.outputs.enumerated() where i < count {
            ports[id]?.buffer.update(from: samples + i * frames, count: frames)
        }
    }

    /// A client that missed this period: its outputs are silent for it (a MIDI port's slot says no events).
    func silenceOutputs(of client: Client) {
        for id in client.outputs { ports[id]?.buffer.update(repeating: 0, count: frames) }
    }
}

/// A POSIX extended regular expression (regcomp), as jack_get_ports takes them; nil or empty matches all.
final class PosixRegex {
    static let maxLength = 256
    private var re = regex_t()
    private let empty: Bool

    init?(_ pattern: String?) {
        guard let pattern, !pattern.isEmpty else { empty = true; return }
        empty = false
        guard pattern.utf8.count <= Self.maxLength, regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0 else { return nil }
    }
    deinit { if !empty { regfree(&re) } }

    func matches(_ s: String) -> Bool { empty || regexec(&re, s, 0, nil, 0) == 0 }
}
