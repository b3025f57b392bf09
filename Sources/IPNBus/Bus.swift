import Foundation
import Glibc

/// Operations on a bus by path that need no membership: status, removal, listing, options.
public enum Bus {
    /// Status of the bus at `path` (needs any right on it).
    public static func status(_ path: String) throws(IPNError) -> BusStatus {
        let path = BusAddress.absolute(path)
        guard case .status(let s) = try request(path: path, intent: .stat) else {
            throw .protocolViolation("unexpected reply to stat")
        }
        return s
    }

    /// Removes the bus at `path` (needs the manage right): every node is told, the host ends and
    /// the file goes. A stale file left by a crashed host is simply unlinked.
    public static func remove(_ path: String) throws(IPNError) {
        let path = BusAddress.absolute(path)
        do {
            _ = try request(path: path, intent: .remove)
            // Wait (briefly) for the host to take the file away, so a following create succeeds.
            for _ in 0..<200 {
                if case .missing = try BusAddress.lookup(path) { return }
                usleep(5_000)
            }
        } catch .staleBus {
            guard unlink(path) == 0 else { throw .system(call: "unlink(\(path))", errno: Sys.lastErrno) }
        }
    }

    /// Changes the options a manager may change on a live bus.
    public static func set(_ path: String, persistent: Bool? = nil, description: String? = nil) throws(IPNError) {
        _ = try request(path: BusAddress.absolute(path), intent: .setOptions, persistent: persistent, busDescription: description)
    }

    /// One entry of `list`.
    public struct Entry: Sendable {
        public var path: String
        /// nil when the bus is stale or this process may not look at it.
        public var status: BusStatus?
        public var problem: String?
    }

    /// The buses (socket files) in a directory, each with its status when it can be read.
    public static func list(directory: String) throws(IPNError) -> [Entry] {
        let dir = BusAddress.absolute(directory)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted() } catch {
            throw .system(call: "opendir(\(dir))", errno: Sys.lastErrno)
        }
        var entries: [Entry] = []
        for name in names {
            let p = dir == "/" ? "/" + name : dir + "/" + name
            guard case .socket = try BusAddress.lookup(p) else { continue }
            do {
                entries.append(Entry(path: p, status: try status(p), problem: nil))
            } catch .staleBus {
                entries.append(Entry(path: p, status: nil, problem: "stale (no host)"))
            } catch {
                // Plain Unix sockets that are not buses land here too.
                entries.append(Entry(path: p, status: nil, problem: "\(error)"))
            }
        }
        return entries
    }

    static func request(path: String, intent: ControlMessage.Intent, persistent: Bool? = nil,
                        busDescription: String? = nil) throws(IPNError) -> ControlMessage {
        let (channel, address, proof) = try IPNSocket.openControl(path: path)
        defer { Sys.close(channel.fd); Sys.close(proof) }
        let hello = ControlMessage.Hello(version: ControlMessage.version, intent: intent, policy: nil, wantReceive: false,
                                         wantSend: false, wantMembership: false, description: "", creatorToken: nil,
                                         device: address.device, inode: address.inode, persistent: persistent,
                                         busDescription: busDescription)
        do {
            try channel.send(.hello(hello), fds: [proof])
        } catch .busGone {
            // The host may have refused this connection before reading anything: its reason is queued.
        }
        while true {
            switch try channel.receive() {
            case .wouldBlock: continue
            case .closed: throw .busGone(path: path)
            case .message(let m, let fds):
                fds.forEach(Sys.close)
                if case .failure(let f) = m { throw IPNSocket.error(for: f, path: path) }
                return m
            }
        }
    }
}
