import CIPNSys
import Foundation
import Glibc

/// An IPN socket: `socket(AF_IPN, SOCK_RAW, protocol)` as a Swift object.
///
/// The verbs are IPN's: `bind` creates the bus if needed (bringing its host up) and grants the
/// manage right; `connect` joins the data flow; `shutdown` makes the node send-only or
/// receive-only; `send`/`receive` move whole messages. Rights come from the bus file's mode
/// against this process's real credentials, checked by the host. Joining without a right drops
/// that side; with neither, `connect` throws `.permissionDenied`.
///
/// Data moves through shared memory: small messages inline in two rings shared with the host,
/// large ones through this node's pool, which receivers map read-only. `pollDescriptor` becomes
/// readable when a message (or a control notice) is waiting, so a C event loop can wait on it.
///
/// One thread at a time may use a socket.
// Why @unchecked is safe: nothing here is locked; the contract is one thread at a time. A socket is
// handed to another thread only at a thread's start or through a semaphore/join (the `messages`
// thread, a benchmark's receivers), which orders every access before and after the hand-over; what
// the host process shares with it (rings, pool cursors) is read and written with atomics only.
public final class IPNSocket: @unchecked Sendable {
    public enum ShutdownDirection: Sendable { case read, write, both }

    /// The policy asked for (`nil` is IPN_ANY: join whatever the bus uses).
    public let requestedPolicy: String?
    /// Options used when `bind` creates the bus (IPN's pre-bind options).
    public var options = BusOptions()
    /// IPN_SO_DESCR.
    public var description = ""
    /// IPN_SO_WANT_OOB_NUMNODES: receive `.membership` notices when readers/writers change.
    public var wantsMembership = false
    /// Handed to the bus's policy when this node joins (e.g. "join=next-keyframe" for `media`).
    public var policyParameters = ""

    public private(set) var path: String?
    public private(set) var rights: Rights = []
    public private(set) var busOptions: BusOptions?
    public private(set) var nodeID: UInt32?
    public internal(set) var canSend = false
    public private(set) var canReceive = false
    public private(set) var isBound = false
    public private(set) var isConnected = false
    /// Messages lost because this node read a pool slot after its sender reused it.
    public internal(set) var lapped: UInt64 = 0
    /// Inbox slots discarded as malformed: an unknown kind, a length beyond the slot, a pool reference to
    /// no pool or outside it. A real host never writes one; whatever wrote it, the slot is skipped (the
    /// next message carries a gap), never trusted.
    public internal(set) var malformed: UInt64 = 0
    /// Why the bus went away, once it did.
    public private(set) var closedReason: String?

    var shutRead = false
    var shutWrite = false
    var control: ControlChannel?
    private var address: BusAddress?
    var replies: [ControlMessage] = []
    var events: [Message] = []

    var inboxMemory: SharedMemory?
    var outboxMemory: SharedMemory?
    var inbox: MessageRing?
    var outbox: MessageRing?
    var wakeFD: Int32 = -1
    var doorbellFD: Int32 = -1
    var epollFD: Int32 = -1
    var inboxRead: UInt64 = 0
    var inboxWriteSeen: UInt64 = 0
    var outboxWrite: UInt64 = 0
    var outboxReadSeen: UInt64 = 0
    var sequence: UInt64 = 0
    var inlineCapacity = 0

    var poolMemory: SharedMemory?
    var pool: SenderPool?
    var poolNext: UInt64 = 0
    var peerPools: [UInt32: (memory: SharedMemory, pool: SenderPool)] = [:]
    var retiring: [(sender: UInt32, after: UInt64)] = []
    var gapPending = false

    public init(policy: String? = nil) {
        requestedPolicy = policy
    }

    deinit { close() }

    /// Leaves the bus. The host frees this node's queues; a bus left empty ends (unless persistent).
    public func close() {
        if let control { Sys.close(control.fd) }
        control = nil
        Sys.close(wakeFD); wakeFD = -1
        Sys.close(doorbellFD); doorbellFD = -1
        Sys.close(epollFD); epollFD = -1
        inbox = nil; outbox = nil; pool = nil
        inboxMemory = nil; outboxMemory = nil; poolMemory = nil
        peerPools.removeAll()
        isConnected = false
        isBound = false
    }

    /// The descriptor to poll(2)/epoll for readability; then call `receive(nonBlocking: true)`
    /// until it returns nil.
    public var pollDescriptor: Int32 { epollFD >= 0 ? epollFD : (control?.fd ?? -1) }

    /// Messages the host dropped for this node because its queue was full.
    public var droppedByHost: UInt64 { inbox?.drops.load(ordering: .relaxed) ?? 0 }

    // MARK: bind / connect / shutdown

    /// Creates the bus at `path` if it does not exist (or is a stale file left by a crash) and
    /// takes the manage right; on an existing bus, needs `x`. Like IPN, a bound socket may then
    /// `connect()` to join the data flow.
    public func bind(_ path: String) throws(IPNError) {
        guard control == nil else { throw .alreadyConnected }
        try options.validate()
        if let requestedPolicy, requestedPolicy != options.policy { options.policy = requestedPolicy }
        let path = BusAddress.resolvingLink(BusAddress.absolute(path))
        guard path.utf8.count <= Int(ipn_max_path_length()) else {
            throw .invalidOption("bus path longer than \(ipn_max_path_length()) bytes: \(path)")
        }
        var lastError: IPNError = .noSuchBus(path: path)
        for _ in 0..<8 {
            var token: String?
            switch try BusAddress.lookup(path) {
            case .notASocket: throw .notABus(path: path)
            case .missing, .socket:
                if case .socket(let a, _, _, _) = try BusAddress.lookup(path), let fd = try a.connectHost() {
                    Sys.close(fd)  // live: join it below
                } else {
                    token = try HostLauncher.withDirectoryLock(for: path) { () throws(IPNError) -> String? in
                        switch try BusAddress.lookup(path) {
                        case .notASocket: throw .notABus(path: path)
                        case .socket(let a, _, _, _):
                            if let fd = try a.connectHost() { Sys.close(fd); return nil }
                            unlink(path)  // stale: its host is gone
                        case .missing: break
                        }
                        if case .started(let t) = try HostLauncher.launch(path: path, options: options) { return t }
                        return nil
                    }
                }
            }
            do {
                let reply = try handshake(path: path, intent: .bind, token: token)
                guard case .welcome(let w) = reply else { throw IPNError.protocolViolation("unexpected reply to bind") }
                rights = w.rights
                busOptions = w.options
                nodeID = w.node
                isBound = true
                self.path = path
                return
            } catch let e as IPNError {
                switch e {
                case .noSuchBus, .staleBus, .busGone: lastError = e; continue  // raced with a host ending
                default: throw e
                }
            } catch {
                throw .protocolViolation("\(error)")
            }
        }
        throw lastError
    }

    /// Joins the bus's data flow. Unbound sockets name the bus; bound ones join the bus they bound.
    public func connect(_ path: String? = nil) throws(IPNError) {
        guard !isConnected else { throw .alreadyConnected }
        let join = ControlMessage.Join(wantReceive: !shutRead, wantSend: !shutWrite, wantMembership: wantsMembership,
                                       description: description, policyParameters: policyParameters)
        let reply: ControlMessage
        if isBound {
            if let path, BusAddress.absolute(path) != self.path { throw .alreadyConnected }
            try control!.send(.join(join))
            reply = try awaitReply()
        } else {
            guard let path else { throw .notConnected }
            reply = try handshake(path: BusAddress.absolute(path), intent: .connect, token: nil)
        }
        guard case .welcome(let w) = reply, w.joined else { throw .protocolViolation("unexpected reply to connect") }
        try adoptDataPlane(w)
    }

    /// Shuts one direction down; not reversible (IPN `shutdown`). Before `connect` it decides which
    /// side the node joins with.
    public func shutdown(_ how: ShutdownDirection) throws(IPNError) {
        let read = how != .write, write = how != .read
        if read { shutRead = true }
        if write { shutWrite = true }
        guard isConnected else { return }
        if read { canReceive = false }
        if write { canSend = false }
        try control!.send(.shutdown(read: read, write: write))
        guard case .done = try awaitReply() else { throw .protocolViolation("unexpected reply to shutdown") }
    }

    /// The bus's status (`ipn stat`), asked over this socket's own connection.
    public func status() throws(IPNError) -> BusStatus {
        guard let control else { throw .notConnected }
        try control.send(.statRequest)
        guard case .status(let s) = try awaitReply() else { throw .protocolViolation("unexpected reply to stat") }
        return s
    }

    // MARK: handshake

    private func handshake(path: String, intent: ControlMessage.Intent, token: String?) throws(IPNError) -> ControlMessage {
        let (channel, address, proof) = try Self.openControl(path: path)
        defer { Sys.close(proof) }
        control = channel
        self.address = address
        // A new connection: an earlier attempt's host that ended (a retried bind, a connect that met an ending
        // bus) says nothing about this one, and would fail every send on it.
        closedReason = nil
        let hello = ControlMessage.Hello(version: ControlMessage.version, intent: intent, policy: requestedPolicy,
                                         wantReceive: !shutRead, wantSend: !shutWrite, wantMembership: wantsMembership,
                                         description: description, creatorToken: token,
                                         device: address.device, inode: address.inode, policyParameters: policyParameters)
        do {
            do {
                try channel.send(.hello(hello), fds: [proof])
            } catch .busGone {
                // The host may have refused this connection before reading anything: its reason is queued.
            }
            return try awaitReply()
        } catch {
            Sys.close(channel.fd)
            control = nil
            if case .busGone = error { throw .busGone(path: path) }  // the host ended as we arrived
            throw error
        }
    }

    /// Looks the bus up and connects to its host. Also returns the proof that this process can reach the path
    /// (a descriptor of the bus file, for the hello; the caller closes it).
    static func openControl(path: String) throws(IPNError) -> (ControlChannel, BusAddress, proof: Int32) {
        let (proof, lookup) = try BusAddress.openProof(path)
        switch lookup {
        case .missing: throw .noSuchBus(path: path)
        case .notASocket: throw .notABus(path: path)
        case .socket(let address, _, _, _):
            do throws(IPNError) {
                guard let fd = try address.connectHost() else { throw IPNError.staleBus(path: path) }
                return (ControlChannel(fd: fd), address, proof)
            } catch {
                Sys.close(proof)
                throw error
            }
        }
    }

    /// Waits for the host's answer to a request, handling notices that arrive meanwhile.
    func awaitReply() throws(IPNError) -> ControlMessage {
        while replies.isEmpty {
            try pumpControl(blocking: true)
        }
        let reply = replies.removeFirst()
        if case .failure(let f) = reply { throw Self.error(for: f, path: path ?? address?.path ?? "") }
        return reply
    }

    static func error(for f: ControlMessage.Failure, path: String) -> IPNError {
        switch f.code {
        case .permissionDenied: return .permissionDenied(path: path, missing: f.missing ?? [])
        case .policyMismatch: return .policyMismatch(path: path, bus: f.busPolicy ?? "?", requested: "the requested one")
        case .busGone: return .busGone(path: path)
        case .notABus: return .notABus(path: path)
        case .busExists: return .busExists(path: path)
        case .unreachable: return .unreachable(path: path)
        case .busFull, .badRequest: return .refused(path: path, reason: f.message)
        }
    }

    /// Reads control messages: pool descriptors, retirements, membership notices, replies.
    func pumpControl(blocking: Bool) throws(IPNError) {
        guard let control else { throw .notConnected }
        var block = blocking
        while true {
            let read = try control.receive(nonBlocking: !block)
            block = false
            switch read {
            case .wouldBlock: return
            case .closed:
                if closedReason == nil { closedReason = "the bus host ended" }
                if blocking && replies.isEmpty { throw .busGone(path: path ?? address?.path ?? "") }
                return
            case .message(let message, let fds):
                switch message {
                case .poolAvailable(let sender, _):
                    guard fds.count == 1 else { fds.forEach(Sys.close); continue }
                    let memory = try SharedMemory(adopting: fds[0], writable: false,
                                                  expectedMinimum: SenderPool.headerSize + 1, requireSealed: true)
                    peerPools[sender] = (memory, SenderPool(base: memory.base, totalSize: memory.size))
                case .poolRetired(let sender, let after):
                    retiring.append((sender, after))
                    retirePools()
                case .membership(let readers, let writers):
                    events.append(Message(kind: .membership(readers: readers, writers: writers), bytes: [],
                                          sender: 0, sequence: 0, afterGap: false))
                case .closing(let reason):
                    closedReason = reason
                default:
                    if case .welcome = message, !fds.isEmpty { pendingWelcomeFDs.append(fds) } else { fds.forEach(Sys.close) }
                    replies.append(message)
                }
            }
        }
    }

    func retirePools() {
        retiring.removeAll { r in
            guard inboxRead >= r.after else { return false }
            peerPools[r.sender] = nil
            return true
        }
    }

    private func adoptDataPlane(_ w: ControlMessage.Welcome) throws(IPNError) {
        var fds: [Int32] = []
        // The four descriptors arrive with the welcome; pumpControl keeps them for us.
        guard let taken = pendingWelcomeFDs.popLast(), taken.count == 4 else {
            throw .protocolViolation("welcome without its four descriptors")
        }
        fds = taken
        do throws(IPNError) {
            // The welcome's numbers size this node's mappings and index its rings. They come from another
            // process (any process can listen on a bus's abstract address), so they are checked before use:
            // what a real host sends, or a protocol violation, never a trap here.
            do { try w.options.validateLimits() } catch { throw .protocolViolation("welcome with impossible bus options: \(error)") }
            guard w.queueLength == w.options.effectiveQueueLength, w.inlineCapacity == w.options.inlineCapacity else {
                throw IPNError.protocolViolation("welcome with a queue of \(w.queueLength) and \(w.inlineCapacity) inline bytes, "
                                                 + "not what its options say (\(w.options.effectiveQueueLength), \(w.options.inlineCapacity))")
            }
            let inboxMemory = try SharedMemory(adopting: fds[0], writable: true,
                                               expectedMinimum: MessageRing.byteSize(capacity: w.queueLength, inlineCapacity: w.inlineCapacity),
                                               requireSealed: true)
            fds[0] = -1
            let outboxCapacity = max(w.queueLength, 64)
            let outboxMemory = try SharedMemory(adopting: fds[1], writable: true,
                                                expectedMinimum: MessageRing.byteSize(capacity: outboxCapacity, inlineCapacity: w.inlineCapacity),
                                                requireSealed: true)
            fds[1] = -1
            self.inboxMemory = inboxMemory
            self.outboxMemory = outboxMemory
            inbox = MessageRing(base: inboxMemory.base, capacity: w.queueLength, inlineCapacity: w.inlineCapacity)
            outbox = MessageRing(base: outboxMemory.base, capacity: outboxCapacity, inlineCapacity: w.inlineCapacity)
            wakeFD = fds[2]
            doorbellFD = fds[3]
            epollFD = try Sys.check("epoll_create", ipn_epoll_create())
            try Sys.check("epoll_ctl", ipn_epoll_add(epollFD, wakeFD, 1))
            try Sys.check("epoll_ctl", ipn_epoll_add(epollFD, control!.fd, 2))
        } catch {
            fds.forEach(Sys.close)
            throw error
        }
        inlineCapacity = w.inlineCapacity
        rights = w.rights
        busOptions = w.options
        nodeID = w.node
        canSend = w.canSend
        canReceive = w.canReceive
        isConnected = true
        if path == nil { path = address?.path }
    }
    private var pendingWelcomeFDs: [[Int32]] = []
}
