import Foundation
import Glibc

/// What our libjack and jackd-ipn say to each other on a `mixer` bus (docs/audio-bus.md, "JACK clients"):
/// requests and answers as JSON after the audio header, graph events, and each period's process call.
public enum JackWire {
    /// JACK's port flags (jack/types.h, `JackPortFlags`).
    public enum PortFlag {
        public static let isInput: UInt32 = 0x1, isOutput: UInt32 = 0x2, isPhysical: UInt32 = 0x4, canMonitor: UInt32 = 0x8, isTerminal: UInt32 = 0x10
    }
    /// JACK's status bits (jack/types.h, `JackStatus`).
    public enum Status {
        public static let failure: UInt32 = 0x01, invalidOption: UInt32 = 0x02, nameNotUnique: UInt32 = 0x04, serverStarted: UInt32 = 0x08, serverFailed: UInt32 = 0x10,
                          serverError: UInt32 = 0x20, noSuchClient: UInt32 = 0x40, versionError: UInt32 = 0x400
    }
    public static let audioType = "32 bit float mono audio"
    public static let midiType = "8 bit raw midi"
    /// JACK's limits as jack2 answers jack_client_name_size and jack_port_name_size (with the NUL): a client
    /// name of up to 64 bytes, a full port name ("client:port") of up to 320.
    public static let clientNameSize = 65, portNameSize = 321

    public struct Request: Codable, Sendable {
        /// open, close, register, unregister, alias, activate, deactivate, connect, disconnect, transport, ports, port,
        /// connections, client-uuid, client-name; metadata: set-property, get-property, get-properties,
        /// get-all-properties, remove-property, remove-properties, remove-all-properties
        public var op: String
        public var name: String?
        public var exact: Bool?
        public var type: String?
        public var flags: UInt32?
        public var source: String?
        public var destination: String?
        public var pattern: String?
        public var typePattern: String?
        /// activate: whether the client has a process callback (one without is never called).
        public var processes: Bool?
        /// Metadata: the subject (a client's or a port's uuid), the key and the value (its type in `type`).
        public var subject: UInt64?
        public var key: String?
        public var value: String?
        public init(op: String) { self.op = op }
    }

    /// One metadata property (jack/metadata.h): `type` empty or nil is text/plain.
    public struct Property: Codable, Sendable, Equatable {
        public var subject: UInt64
        public var key: String
        public var value: String
        public var type: String?
        public init(subject: UInt64, key: String, value: String, type: String?) {
            self.subject = subject; self.key = key; self.value = value; self.type = type
        }
    }

    /// JACK's uuids, as jack2 makes them: a type in the high 32 bits (1 a port, 2 a client), then the number.
    public enum UUID {
        public static func port(_ id: UInt32) -> UInt64 { 1 << 32 | UInt64(id) }
        public static func client(_ node: UInt32) -> UInt64 { 2 << 32 | UInt64(node) }
    }

    /// jack_property_change_t
    public enum PropertyChange { public static let created = 0, changed = 1, deleted = 2 }

    public struct PortInfo: Codable, Sendable, Equatable {
        public var id: UInt32
        public var name: String
        public var type: String
        public var flags: UInt32
        public var aliases: [String]
        public var latency: UInt32
        public init(id: UInt32, name: String, type: String, flags: UInt32, aliases: [String] = [], latency: UInt32 = 0) {
            self.id = id; self.name = name; self.type = type; self.flags = flags; self.aliases = aliases; self.latency = latency
        }
    }

    public struct Reply: Codable, Sendable {
        public var error: String?
        public var status: UInt32?
        public var name: String?
        public var rate: Int?
        public var period: Int?
        public var port: PortInfo?
        public var ports: [PortInfo]?
        public var names: [String]?
        /// open, client-uuid: the client's uuid.
        public var uuid: UInt64?
        public var properties: [Property]?
        /// remove-properties: how many were removed.
        public var count: Int?
        public init() {}
        public static func failure(_ why: String, status: UInt32 = Status.failure) -> Reply {
            var r = Reply(); r.error = why; r.status = status; return r
        }
    }

    public struct Event: Codable, Sendable {
        /// registered, unregistered (ports), aliased (a port's aliases changed), client-registered,
        /// client-unregistered, connected, disconnected, graph, xrun, shutdown, property (metadata changed)
        public var event: String
        public var port: PortInfo?
        /// The client of client-registered and client-unregistered.
        public var client: String?
        public var source: String?
        public var destination: String?
        public var sourceID: UInt32?
        public var destinationID: UInt32?
        public var reason: String?
        /// property: the subject, the key (nil: all of the subject's, or with subject 0 everybody's) and the change.
        public var subject: UInt64?
        public var key: String?
        public var change: Int?
        public init(event: String) { self.event = event }
        public init(event: String, client: String) { self.event = event; self.client = client }
    }

    /// After a process call's ports: JACK's transport for that period (rolling 0/1, frame), little-endian UInt32s.
    public static let transportBytes = 8
    public static func writeTransport(rolling: Bool, frame: UInt32, into out: UnsafeMutableRawBufferPointer, at offset: Int) {
        out.storeBytes(of: UInt32(rolling ? 1 : 0).littleEndian, toByteOffset: offset, as: UInt32.self)
        out.storeBytes(of: frame.littleEndian, toByteOffset: offset + 4, as: UInt32.self)
    }
    public static func readTransport(_ b: UnsafeRawBufferPointer, at offset: Int) -> (rolling: Bool, frame: UInt32)? {
        guard b.count >= offset + transportBytes else { return nil }
        return (UInt32(littleEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) != 0,
                UInt32(littleEndian: b.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
    }

    public static func encode<T: Encodable>(_ kind: AudioBusMessage.Kind, index: UInt64, target: UInt32 = 0, _ body: T) -> [UInt8] {
        let json = (try? JSONEncoder().encode(body)).map { [UInt8]($0) } ?? []
        return AudioBusMessage.encode(.init(kind: kind, index: index, rate: 0, channels: 0, frames: 0, target: target), body: json)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer) -> T? {
        guard bytes.count > AudioBusMessage.headerSize else { return nil }
        return try? JSONDecoder().decode(type, from: Data(bytes[AudioBusMessage.headerSize...]))
    }
}

/// Where a JACK server's bus is, as JACK finds its server by name: `default` unless `JACK_DEFAULT_SERVER` or
/// the program (`-s NAME`, `JackServerName`) names another. A name with a `/` is a bus path as it is.
/// Otherwise the bus is NAME in the user's own directory: `$XDG_RUNTIME_DIR/jack-ipn`, or `/tmp/jack-ipn-UID`,
/// which must be the user's own (mode 700) so no other user can put a server of theirs in its place.
public enum JackServerPath {
    public static func serverName(_ given: String?) -> String {
        if let given, !given.isEmpty { return given }
        if let env = getenv("JACK_DEFAULT_SERVER"), let s = String(validatingCString: env), !s.isEmpty { return s }
        return "default"
    }

    public static var directory: String {
        if let x = getenv("XDG_RUNTIME_DIR"), let s = String(validatingCString: x), s.hasPrefix("/") { return s + "/jack-ipn" }
        return "/tmp/jack-ipn-\(getuid())"
    }

    public enum PathError: Error, CustomStringConvertible {
        case unsafeDirectory(String, String)
        public var description: String {
            switch self {
            case .unsafeDirectory(let d, let why): return "\(d): \(why); a JACK server's directory must be yours alone (mode 700). Remove it, or set JACK_DEFAULT_SERVER to a bus path"
            }
        }
    }

    /// The bus of server `name`. `create`: make the user's directory when missing (the server does).
    public static func bus(_ name: String?, create: Bool = false) throws(PathError) -> String {
        let n = serverName(name)
        if n.contains("/") { return n }
        let dir = directory
        if create { _ = mkdir(dir, 0o700) }
        var st = stat()
        if lstat(dir, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFDIR else { throw .unsafeDirectory(dir, "not a directory") }
            guard st.st_uid == getuid() else { throw .unsafeDirectory(dir, "owned by uid \(st.st_uid), not by you (uid \(getuid()))") }
            guard st.st_mode & 0o022 == 0 else { throw .unsafeDirectory(dir, "others may write in it") }
        }
        return dir + "/" + n
    }
}

/// A MIDI port's period on the wire: in the same slot an audio port's samples take (frames × 4 bytes), a
/// count, then each event as its time (frame in the period), its size and its bytes, padded to 4; events in
/// time order. What does not fit is left out and counted by whoever writes it.
public enum JackMidiSlot {
    /// Bytes an event takes in a slot.
    public static func cost(_ size: Int) -> Int { 8 + (size + 3) & ~3 }

    /// Empty slot.
    public static func clear(_ slot: UnsafeMutableRawBufferPointer) {
        slot.storeBytes(of: UInt32(0), toByteOffset: 0, as: UInt32.self)
    }

    /// Each event of a slot (at most `count` claims that fit in it): (time, bytes).
    public static func forEach(_ slot: UnsafeRawBufferPointer, _ body: (UInt32, UnsafeRawBufferPointer) -> Void) {
        guard slot.count >= 4 else { return }
        let count = Int(UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        var at = 4
        for _ in 0..<count {
            guard at + 8 <= slot.count else { return }
            let time = UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            let size = Int(UInt32(littleEndian: slot.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
            guard size > 0, at + cost(size) <= slot.count else { return }  // a lying size ends the slot
            body(time, UnsafeRawBufferPointer(rebasing: slot[(at + 8)..<(at + 8 + size)]))
            at += cost(size)
        }
    }

    /// Writes events into a slot (they must be in time order); returns how many did not fit.
    public struct Writer {
        let slot: UnsafeMutableRawBufferPointer
        var at = 4, count: UInt32 = 0
        public private(set) var lost = 0
        public init(_ slot: UnsafeMutableRawBufferPointer) { self.slot = slot; JackMidiSlot.clear(slot) }
        public mutating func add(time: UInt32, _ bytes: UnsafeRawBufferPointer) {
            guard !bytes.isEmpty, at + JackMidiSlot.cost(bytes.count) <= slot.count else { lost += 1; return }
            slot.storeBytes(of: time.littleEndian, toByteOffset: at, as: UInt32.self)
            slot.storeBytes(of: UInt32(bytes.count).littleEndian, toByteOffset: at + 4, as: UInt32.self)
            UnsafeMutableRawBufferPointer(rebasing: slot[(at + 8)..<(at + 8 + bytes.count)]).copyMemory(from: bytes)
            at += JackMidiSlot.cost(bytes.count)
            count += 1
            slot.storeBytes(of: count.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
    }
}
