import CIPNSys
import Foundation
import Glibc

/// The host of one bus: what the AF_IPN kernel module was, as a user-space process.
///
/// Spawned by the first `bind` of a path, it owns the bus file, listens for nodes on the bus's
/// abstract address, checks each node's credentials against the file's mode, and moves messages:
/// it drains every sender's outbox ring, asks the policy for recipients, and writes each message
/// (inline bytes, or a reference into the sender's pool) into each recipient's inbox ring. One
/// thread, one epoll; no syscall per message while everyone is busy. It exits when the last node
/// leaves unless the bus is persistent.
public final class Host {
    let path: String
    var options: BusOptions
    let creatorToken: String?
    var creatorTokenUsed = false
    let policy: any Policy
    let started = ipn_monotonic_ns()

    private var listenFD: Int32 = -1
    private var pathFD: Int32 = -1
    private var epollFD: Int32 = -1
    private(set) var doorbellFD: Int32 = -1
    private var device: UInt64 = 0
    private var inode: UInt64 = 0

    private var connections: [UInt32: HostNode] = [:]
    /// Joined nodes in join order; the hot loop walks this array.
    private var members: [HostNode] = []
    private var recipients: Recipients
    private var nextID: UInt32 = 1
    private var everHadMember = false
    private var terminating = false
    private var lastTick = ipn_monotonic_ns()

    static let listenToken: UInt64 = 0
    static let doorbellToken: UInt64 = 1
    static let tokenBase: UInt64 = 16
    static let batch = 256
    static let startupGrace: UInt64 = 10_000_000_000
    static let helloTimeout: UInt64 = 5_000_000_000
    /// Connections of one uid that may wait to say hello at once: one user cannot fill the host's
    /// descriptor table and starve another.
    static let ungreetedPerUser = 32

    /// Connections not yet greeted, per uid.
    private var ungreeted: [UInt32: Int] = [:]
    private var refusedConnections: UInt64 = 0
    private var acceptPauses: UInt64 = 0
    private var acceptPaused = false

    public init(path: String, options: BusOptions, creatorToken: String?) throws(IPNError) {
        try options.validate()
        self.path = path
        self.options = options
        self.creatorToken = creatorToken
        self.policy = try PolicyRegistry.make(options.policy, options: options)
        self.recipients = Recipients(capacity: options.maxNodes + 1)
    }

    public enum StartResult { case listening, alreadyExists }

    /// Creates the bus file and starts listening.
    public func start() throws(IPNError) -> StartResult {
        let fd = try Sys.newSeqpacketSocket()
        let oldMask = umask(0o777)  // the file appears with no permission at all, then gets its mode
        let bound = ipn_bind_path(fd, path)
        let bindErrno = Sys.lastErrno
        umask(oldMask)
        if bound != 0 {
            Sys.close(fd)
            if bindErrno == .addressInUse { return .alreadyExists }
            throw .system(call: "bind(\(path))", errno: bindErrno)
        }
        pathFD = fd
        let mode = options.mode ?? (0o777 & ~UInt32(oldMask))
        options.mode = mode
        try Sys.check("chmod(\(path))", chmod(path, mode_t(mode)))
        guard case .socket(let address, _, _, _) = try BusAddress.lookup(path) else {
            throw .hostFailed(path: path, reason: "the bus file vanished while it was being created")
        }
        device = address.device
        inode = address.inode
        listenFD = try Sys.newSeqpacketSocket()
        try Sys.check("bind(abstract)", ipn_bind_abstract(listenFD, address.abstractName))
        try Sys.check("listen", listen(listenFD, 128))
        Sys.setNonBlocking(listenFD, true)
        doorbellFD = try Sys.newEventFD()
        epollFD = try Sys.check("epoll_create", ipn_epoll_create())
        try Sys.check("epoll_ctl", ipn_epoll_add(epollFD, listenFD, Self.listenToken))
        try Sys.check("epoll_ctl", ipn_epoll_add(epollFD, doorbellFD, Self.doorbellToken))
        return .listening
    }

    /// The bus file no longer exists as the one this host created.
    private func fileIsGone() -> Bool {
        guard case .socket(let address, _, _, _)? = try? BusAddress.lookup(path) else { return true }
        return address.device != device || address.inode != inode
    }

    /// Serves the bus until it ends. Returns the process exit status.
    public func run() -> Int32 {
        var tokens = [UInt64](repeating: 0, count: 64)
        while !terminating {
            let moreWork = forwardMessages()
            let now = ipn_monotonic_ns()
            if now &- lastTick >= 1_000_000_000 {
                lastTick = now
                policy.tick(now: now)
                // A client that connects and never says hello does not hold a connection forever.
                for node in connections.values where !node.greeted && now - node.acceptedAt > Self.helloTimeout { drop(node) }
                if acceptPaused {
                    acceptPaused = false
                    _ = ipn_epoll_add(epollFD, listenFD, Self.listenToken)
                }
                if !everHadMember && !options.persistent && now - started > Self.startupGrace { break }
                // A persistent bus whose file was deleted (rm -rf of its directory) can never be reached
                // again: its address comes from that file. With nobody left on it, it ends.
                if options.persistent && connections.isEmpty && fileIsGone() { break }
            }
            let n = ipn_epoll_wait(epollFD, &tokens, 64, moreWork ? 0 : 1000)
            if n < 0 { if errno == EINTR { continue }; break }
            for i in 0..<Int(n) {
                switch tokens[i] {
                case Self.listenToken: acceptAll()
                case Self.doorbellToken: _ = ipn_eventfd_drain(doorbellFD)
                default:
                    let id = UInt32(tokens[i] - Self.tokenBase)
                    if let node = connections[id] { serviceControl(node) }
                }
            }
        }
        shutdownBus(reason: "bus ended")
        return 0
    }

    // MARK: connections

    private func acceptAll() {
        while true {
            let fd = ipn_accept(listenFD)
            if fd < 0 {
                let e = Sys.lastErrno
                if e == .tooManyOpenFiles || e == .tooManyOpenFilesInSystem || e == .noMemory || e == .noBufferSpace {
                    // Out of descriptors: the listening socket stays readable, so watching it would spin. Stop
                    // until the next tick, when timed-out or departed connections may have freed some.
                    acceptPaused = true
                    acceptPauses &+= 1
                    _ = ipn_epoll_remove(epollFD, listenFD)
                }
                return
            }
            var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
            guard ipn_peer_credentials(fd, &pid, &uid, &gid) == 0 else { Sys.close(fd); continue }
            var groups = [UInt32](repeating: 0, count: 256)
            let ng = ipn_peer_groups(fd, &groups, 256)
            let gids = [gid] + (ng > 0 ? Array(groups.prefix(Int(ng))) : [])
            // Refused before it costs anything: a peer the file grants no right at all (it could do nothing
            // here), unless the creator may still be on its way, and a uid with too many silent connections.
            let creatorPending = creatorToken != nil && !creatorTokenUsed
            let noRight = !creatorPending && (rights(uid: uid, gids: gids).map(\.isEmpty) ?? true)
            if noRight || ungreeted[uid, default: 0] >= Self.ungreetedPerUser {
                refusedConnections &+= 1
                let why = noRight ? "no right on \(path)" : "too many connections of uid \(uid) waiting to say hello"
                _ = try? ControlChannel(fd: fd).send(.failure(.init(code: noRight ? .permissionDenied : .busFull, message: why,
                                                                    missing: noRight ? [] : nil, busPolicy: nil)),
                                                     nonBlocking: true)
                Sys.close(fd)
                continue
            }
            ungreeted[uid, default: 0] += 1
            let node = HostNode(id: nextID, fd: fd, pid: pid, uid: uid, gid: gid, groups: Array(gids.dropFirst()))
            nextID &+= 1
            connections[node.id] = node
            _ = ipn_epoll_add(epollFD, fd, UInt64(node.id) + Self.tokenBase)
        }
    }

    /// The node has said hello (or left without): it no longer counts against its uid's silent connections.
    private func greeted(_ node: HostNode) {
        guard !node.greeted else { return }
        node.greeted = true
        if let n = ungreeted[node.uid] { ungreeted[node.uid] = n > 1 ? n - 1 : nil }
    }

    private func serviceControl(_ node: HostNode) {
        let message: ControlMessage
        let fds: [Int32]
        do {
            switch try node.control.receive(nonBlocking: true) {
            case .wouldBlock: return
            case .closed: return drop(node)
            case .message(let m, let f): (message, fds) = (m, f)
            }
        } catch {
            fail(node, .badRequest, "\(error)")
            drop(node)
            return
        }
        handle(message, fds: fds, from: node)
    }

    private func fail(_ node: HostNode, _ code: ControlMessage.Failure.Code, _ text: String,
                      missing: Rights? = nil, busPolicy: String? = nil) {
        _ = try? node.control.send(.failure(.init(code: code, message: text, missing: missing, busPolicy: busPolicy)),
                                   nonBlocking: true)
    }

    private func currentFileRights(for node: HostNode) -> Rights? {
        rights(uid: node.uid, gids: [node.gid] + node.groups)
    }

    /// What the bus file grants these credentials now; nil when the file is no longer this bus's.
    private func rights(uid: UInt32, gids: [UInt32]) -> Rights? {
        guard case .socket(let a, let mode, let owner, let group) = try? BusAddress.lookup(path),
              a.device == device, a.inode == inode else { return nil }
        return Rights.granted(mode: mode, owner: owner, group: group, uid: uid, gids: gids)
    }

    private func handle(_ message: ControlMessage, fds: [Int32], from node: HostNode) {
        // Only a pool announcement hands over a descriptor; any other a peer attached is closed, so a
        // node cannot exhaust the host's descriptors.
        var adopted: Int32 = -1
        defer { for fd in fds where fd != adopted { Sys.close(fd) } }
        switch message {
        case .hello(let hello) where !node.greeted:
            greet(node, hello, proof: fds.first)
        case .join(let j) where node.greeted && node.isBound && !node.joined:
            node.policyParameters = String((j.policyParameters ?? "").utf8.prefix(256)) ?? ""
            join(node, wantReceive: j.wantReceive, wantSend: j.wantSend, membership: j.wantMembership, description: j.description)
        case .shutdown(let read, let write) where node.joined:
            if read { node.canReceive = false }
            if write {
                // What it sent before shutting down still goes out.
                if !options.lossless { while forward(from: node) {} }
                publishInboxes()
                node.canSend = false
            }
            rebuildReceivers()
            announceMembership()
            _ = try? node.control.send(.done, nonBlocking: true)
        case .setDescription(let d) where node.greeted:
            node.description = String(d.utf8.prefix(128)) ?? ""
        case .poolCreated(let size) where node.joined && node.canSend && node.pool == nil && fds.count == 1:
            adopted = fds[0]
            adoptPool(node, fd: fds[0], size: size)
        case .statRequest where node.greeted:
            _ = try? node.control.send(.status(status()), nonBlocking: true)
        default:
            fail(node, .badRequest, "unexpected control message in this state")
            drop(node)
        }
    }

    private func greet(_ node: HostNode, _ hello: ControlMessage.Hello, proof: Int32?) {
        greeted(node)
        node.description = String(hello.description.utf8.prefix(128)) ?? ""
        node.policyParameters = String((hello.policyParameters ?? "").utf8.prefix(256)) ?? ""
        guard hello.version == ControlMessage.version else {
            fail(node, .badRequest, "control protocol version \(hello.version) is not \(ControlMessage.version)")
            return drop(node)
        }
        guard hello.device == device, hello.inode == inode, var rights = currentFileRights(for: node) else {
            fail(node, .busGone, "the bus file \(path) was removed or replaced")
            return drop(node)
        }
        // The abstract address is public (/proc/net/unix); the path may not be. Every request, whatever its
        // intent, proves the client can reach the path: a descriptor of the bus file, sent with the hello.
        guard let proof, BusAddress.isProof(proof, device: device, inode: inode) else {
            fail(node, .unreachable, "\(path) is not reachable by this client: the hello must carry a descriptor of the bus file (open it with O_PATH)")
            return drop(node)
        }
        if let token = hello.creatorToken, token == creatorToken, !creatorTokenUsed {
            creatorTokenUsed = true
            rights = .all
        }
        node.rights = rights
        if let wanted = hello.policy, wanted != options.policy, hello.intent == .bind || hello.intent == .connect {
            fail(node, .policyMismatch, "bus \(path) uses the \(options.policy) policy, not \(wanted)", busPolicy: options.policy)
            return drop(node)
        }
        switch hello.intent {
        case .stat:
            guard !rights.isEmpty else {
                fail(node, .permissionDenied, "no right on \(path)", missing: [])
                return drop(node)
            }
            _ = try? node.control.send(.status(status()))
            drop(node)
        case .remove, .setOptions:
            guard rights.contains(.manage) else {
                fail(node, .permissionDenied, "removing or changing \(path) needs the manage right", missing: .manage)
                return drop(node)
            }
            if hello.intent == .remove {
                removeBusFile()
                _ = try? node.control.send(.done)
                drop(node)
                terminating = true
                return
            }
            if let p = hello.persistent { options.persistent = p }
            if let d = hello.busDescription { options.description = String(d.utf8.prefix(128)) ?? "" }
            _ = try? node.control.send(.done)
            drop(node)
        case .bind:
            guard rights.contains(.manage) else {
                fail(node, .permissionDenied, "binding the existing bus \(path) needs the manage right", missing: .manage)
                return drop(node)
            }
            node.isBound = true
            everHadMember = true
            let welcome = ControlMessage.Welcome(node: node.id, rights: rights, canReceive: false, canSend: false, joined: false,
                                                 options: options, queueLength: options.effectiveQueueLength,
                                                 inlineCapacity: options.inlineCapacity)
            _ = try? node.control.send(.welcome(welcome))
        case .connect:
            join(node, wantReceive: hello.wantReceive, wantSend: hello.wantSend, membership: hello.wantMembership,
                 description: hello.description)
        }
    }

    private func join(_ node: HostNode, wantReceive: Bool, wantSend: Bool, membership: Bool, description: String) {
        // Rights are checked at join time against the file as it is now (IPN checks at connect).
        let rights = currentFileRights(for: node).map { node.isBound ? $0.union(node.rights) : $0 } ?? []
        let canReceive = wantReceive && rights.contains(.receive)
        let canSend = wantSend && rights.contains(.send)
        guard canReceive || canSend else {
            var missing: Rights = []
            if wantReceive { missing.insert(.receive) }
            if wantSend { missing.insert(.send) }
            fail(node, .permissionDenied, "joining \(path) needs the receive (r) or send (w) right", missing: missing)
            return node.isBound ? () : drop(node)
        }
        guard members.count < options.maxNodes else {
            fail(node, .busFull, "bus \(path) is full (\(options.maxNodes) nodes)")
            return node.isBound ? () : drop(node)
        }
        let queue = options.effectiveQueueLength
        let outboxCapacity = max(queue, 64)
        let inline = options.inlineCapacity
        do {
            let inboxMemory = try SharedMemory(creating: "ipn-inbox", size: MessageRing.byteSize(capacity: queue, inlineCapacity: inline))
            let outboxMemory = try SharedMemory(creating: "ipn-outbox", size: MessageRing.byteSize(capacity: outboxCapacity, inlineCapacity: inline))
            let wake = try Sys.newEventFD()
            node.inboxMemory = inboxMemory
            node.outboxMemory = outboxMemory
            node.inbox = MessageRing(base: inboxMemory.base, capacity: queue, inlineCapacity: inline)
            node.outbox = MessageRing(base: outboxMemory.base, capacity: outboxCapacity, inlineCapacity: inline)
            node.wakeFD = wake
        } catch {
            fail(node, .badRequest, "the host could not allocate the node's rings: \(error)")
            return drop(node)
        }
        node.rights = rights
        node.canReceive = canReceive
        node.canSend = canSend
        node.wantMembership = membership
        if !description.isEmpty { node.description = String(description.utf8.prefix(128)) ?? "" }
        recipients.injections.removeAll()
        guard policy.nodeJoined(node.policyNode, actions: &recipients) else {
            fail(node, .busFull, "the \(options.policy) policy refused the node")
            return drop(node)
        }
        node.joined = true
        everHadMember = true
        members.append(node)
        rebuildReceivers()
        deliverInjections()
        let welcome = ControlMessage.Welcome(node: node.id, rights: rights, canReceive: canReceive, canSend: canSend, joined: true,
                                             options: options, queueLength: queue, inlineCapacity: inline)
        _ = try? node.control.send(.welcome(welcome),
                                   fds: [node.inboxMemory!.fd, node.outboxMemory!.fd, node.wakeFD, doorbellFD])
        announceMembership()
    }

    private func adoptPool(_ node: HostNode, fd: Int32, size: Int) {
        do {
            // The size is checked before mapping: a node must not make the host (and every receiver)
            // populate an arbitrarily large mapping.
            let allowed = SenderPool.totalSize(capacity: options.effectivePoolBytes)
            let actual = try Sys.fileSize(fd)
            guard actual == allowed else {
                Sys.close(fd)
                throw IPNError.protocolViolation("pool of \(actual) bytes, this bus's pools are \(allowed) bytes")
            }
            let memory = try SharedMemory(adopting: fd, writable: true, expectedMinimum: allowed, requireSealed: true)
            // The sender and the host have their writable mappings; from now on nobody else can have one,
            // not a receiver that reopens its read-only descriptor through /proc/self/fd.
            try memory.sealAgainstNewWriters()
            let ro = try Sys.reopenReadOnly(memory.fd)
            node.poolMemory = memory
            node.pool = SenderPool(base: memory.base, totalSize: memory.size)
            node.poolReadOnlyFD = ro
            node.poolDrainedEnd = node.pool!.reclaimed.load(ordering: .relaxed)
            _ = try? node.control.send(.done, nonBlocking: true)
        } catch {
            fail(node, .badRequest, "pool rejected: \(error)")
            drop(node)
        }
    }

    /// Removes a connection; the node leaves the bus (IPN predelport/delport) and its memory is freed.
    private func drop(_ node: HostNode) {
        guard connections.removeValue(forKey: node.id) != nil else { return }
        greeted(node)
        let wasMember = node.isMember
        _ = ipn_epoll_remove(epollFD, node.control.fd)
        if node.joined {
            // What the node published before it left is delivered: leaving loses nothing.
            if node.canSend, !options.lossless {
                var rounds = 0
                while forward(from: node), rounds < 1024 { rounds += 1 }
                publishInboxes()
            }
            node.joined = false
            members.removeAll { $0 === node }
            rebuildReceivers()
            recipients.injections.removeAll()
            policy.nodeLeft(node.policyNode, actions: &recipients)
            deliverInjections()
            if node.pool != nil {
                for m in members where m.knownPools.remove(node.id) != nil {
                    _ = try? m.control.send(.poolRetired(sender: node.id, after: m.inboxWrite), nonBlocking: true)
                }
            }
            announceMembership()
        }
        node.close()
        if wasMember, !options.persistent, !connections.values.contains(where: { $0.isMember }) {
            terminating = true
            removeBusFile()  // at once, so a binder arriving now creates a new bus instead of joining this one
        }
    }

    private func rebuildReceivers() {
        recipients.receivers = members.filter { $0.canReceive }.map(\.id)
    }

    private func announceMembership() {
        let readers = members.filter(\.canReceive).count
        let writers = members.filter(\.canSend).count
        for m in members where m.wantMembership {
            _ = try? m.control.send(.membership(readers: readers, writers: writers), nonBlocking: true)
        }
    }

    /// Ends the bus: tells every node, removes the bus file if it is still ours, closes everything.
    private func shutdownBus(reason: String) {
        for node in connections.values {
            _ = try? node.control.send(.closing(reason: reason), nonBlocking: true)
            node.close()
        }
        connections.removeAll()
        members.removeAll()
        removeBusFile()
        Sys.close(listenFD)
        Sys.close(pathFD)
    }

    /// Unlinks the bus file if it is still this bus's (never a newer bus at the same path).
    private func removeBusFile() {
        if case .socket(let a, _, _, _) = try? BusAddress.lookup(path), a.device == device, a.inode == inode {
            unlink(path)
        }
    }

    func status() -> BusStatus {
        BusStatus(path: path, policy: options.policy, options: options, hostPID: getpid(),
                  uptimeSeconds: Double(ipn_monotonic_ns() - started) / 1e9,
                  readers: members.filter(\.canReceive).count, writers: members.filter(\.canSend).count,
                  nodes: connections.values.filter(\.isMember).sorted { $0.id < $1.id }.map { $0.status() },
                  policyStatistics: policy.statistics, refusedConnections: refusedConnections, acceptPauses: acceptPauses,
                  evictions: evictions.isEmpty ? nil : evictions)
    }

    // MARK: the data path

    /// One pass over every sender's outbox. Returns true when work is left (do not sleep).
    private func forwardMessages() -> Bool {
        var moreWork = false
        for sender in members where sender.canSend || sender.outbox != nil {
            if forward(from: sender) { moreWork = true }
        }
        publishInboxes()
        if options.lossless { updatePoolReleases() }
        // A node found corrupt during the pass is dropped now, outside the loops, and told why. The next pass
        // comes at once: a sender may have been held back for it. (Nodes found while dropping these wait for it.)
        if !pendingDrops.isEmpty { moreWork = true }
        let corrupt = pendingDrops
        pendingDrops.removeAll()
        for node in corrupt where connections[node.id] === node {  // not one that left meanwhile (its descriptor is closed)
            let reason = node.corruption ?? "ring cursors corrupted"
            evictions.append("node \(node.id) (pid \(node.pid)): \(reason)")
            if evictions.count > Self.evictionLog { evictions.removeFirst(evictions.count - Self.evictionLog) }
            fail(node, .badRequest, reason)
            drop(node)
        }
        return moreWork
    }

    private var pendingDrops: [HostNode] = []
    /// Why nodes were thrown off, newest last (shown by `ipn stat`).
    private var evictions: [String] = []
    static let evictionLog = 16

    /// A node made a ring cursor impossible: it is dropped after this pass with `reason` (the first found).
    private func markCorrupt(_ node: HostNode, _ reason: String) {
        guard node.corruption == nil else { return }
        node.corruption = reason
        pendingDrops.append(node)
    }

    /// Why a receiver's inbox read cursor is impossible, or nil when it is not: a node reads only what the
    /// host wrote to it, and the host never writes more than a queue ahead of what it read.
    private func impossibleInboxRead(_ read: UInt64, of node: HostNode, _ inbox: MessageRing) -> String? {
        if read > node.inboxWrite {
            return "ring cursors corrupted: inbox read cursor \(read) is beyond the \(node.inboxWrite) messages written to it"
        }
        if node.inboxWrite - read > UInt64(inbox.capacity) {
            return "ring cursors corrupted: inbox read cursor \(read) is more than a queue (\(inbox.capacity)) behind the \(node.inboxWrite) messages written to it"
        }
        return nil
    }

    /// Loads a receiver's inbox read cursor into `inboxReadSeen`. nil when the node made it impossible: it
    /// is then marked for dropping, and holds nobody back meanwhile.
    private func reloadInboxRead(_ node: HostNode, _ inbox: MessageRing) -> UInt64? {
        let read = inbox.read.load(ordering: .sequentiallyConsistent)
        if let reason = impossibleInboxRead(read, of: node, inbox) {
            markCorrupt(node, reason)
            return nil
        }
        node.inboxReadSeen = read
        return read
    }

    /// Makes what this pass wrote into inboxes visible, waking receivers whose inbox was empty.
    private func publishInboxes() {
        for receiver in members where receiver.inboxWrite != receiver.inboxPublished {
            if receiver.inbox!.publish(from: receiver.inboxPublished, to: receiver.inboxWrite) {
                _ = ipn_eventfd_signal(receiver.wakeFD)
            }
            receiver.inboxPublished = receiver.inboxWrite
        }
    }

    /// Drains up to `batch` messages of one sender. Returns true if more are waiting.
    private func forward(from sender: HostNode) -> Bool {
        guard let outbox = sender.outbox else { return false }
        var read = sender.outboxRead
        guard let available = outbox.available(consumerRead: read) else {
            let written = outbox.write.load(ordering: .sequentiallyConsistent)
            markCorrupt(sender, "ring cursors corrupted: outbox write cursor \(written) with \(read) messages read from it (a queue holds \(outbox.capacity))")
            return false
        }
        if available == 0 { return false }
        let mtu = options.mtu
        let inlineCapacity = options.inlineCapacity
        var taken = 0
        sender.heldBack = false
        while taken < min(available, Self.batch) {
            let slot = outbox.slot(read)
            guard sender.canSend, let header = SlotHeader(at: slot), Int(header.length) <= mtu else {
                sender.rejected += 1
                read += 1; taken += 1
                continue
            }
            let length = Int(header.length)
            let bytes: UnsafeRawBufferPointer
            switch header.kind {
            case .inline:
                guard length <= inlineCapacity else { sender.rejected += 1; read += 1; taken += 1; continue }
                bytes = UnsafeRawBufferPointer(start: slot + SlotHeader.size, count: length)
            case .pool:
                guard let pool = sender.pool, pool.isValid(position: header.poolPosition, length: length) else {
                    sender.rejected += 1; read += 1; taken += 1; continue
                }
                // A lossy bus's sender does not wait for the host: if the host fell a whole pool behind, these
                // bytes are no longer the message, and no policy may route on them.
                guard pool.isIntact(position: header.poolPosition) else {
                    lostToOverwrite(sender, end: header.poolPosition &+ UInt64(length), recipients: nil)
                    read += 1; taken += 1; continue
                }
                bytes = UnsafeRawBufferPointer(start: pool.bytes(at: header.poolPosition, length: length), count: length)
            }
            recipients.reset()
            if let held = sender.heldRoute, held.index == read {
                // Routed already when it was held back: a policy must see each message once.
                for id in held.ids { recipients.add(id) }
            } else if case .reject = policy.route(PolicyMessage(sender: sender.id, bytes: bytes), into: &recipients) {
                sender.rejected += 1; read += 1; taken += 1
                if header.kind == .pool { sender.poolDrainedEnd = header.poolPosition &+ UInt64(length) }
                continue
            }
            if header.kind == .pool, let pool = sender.pool, !pool.isIntact(position: header.poolPosition) {
                // Overwritten while the policy read it: the policy saw bytes nobody will receive, and is told
                // that each recipient lost the message (so, say, a viewer waits for the next keyframe).
                lostToOverwrite(sender, end: header.poolPosition &+ UInt64(length), recipients: recipients)
                read += 1; taken += 1; continue
            }
            if options.lossless && !allHaveRoom(recipients) {
                sender.heldRoute = (read, Array(recipients.ids.prefix(recipients.count)))
                sender.heldBack = true
                break
            }
            sender.heldRoute = nil
            for i in 0..<recipients.count {
                guard let receiver = connections[recipients.ids[i]] else { continue }
                if !deliver(header, bytes: bytes, from: sender, to: receiver) {
                    policy.messageDropped(PolicyMessage(sender: sender.id, bytes: bytes), for: receiver.id)
                }
            }
            if !recipients.injections.isEmpty { deliverInjections() }
            if header.kind == .pool { sender.poolDrainedEnd = header.poolPosition &+ UInt64(length) }
            sender.sentMessages += 1
            sender.sentBytes += UInt64(length)
            read += 1; taken += 1
        }
        if read != sender.outboxRead {
            sender.outboxRead = read
            if outbox.release(to: read) { _ = ipn_eventfd_signal(sender.wakeFD) }
        }
        if sender.heldBack { return false }
        // Re-read the producer's cursor after publishing ours: a message published meanwhile did not
        // ring the doorbell (the sender saw a non-empty ring), so this pass must not sleep on it.
        return (outbox.available(consumerRead: read) ?? 0) > 0
    }

    /// A pool message the sender overwrote before the host could deliver it: nobody gets it, and every
    /// receiver that might have (the recipients, when routed; else everyone) sees a gap before its next one.
    private func lostToOverwrite(_ sender: HostNode, end: UInt64, recipients: Recipients?) {
        sender.overwritten += 1
        sender.poolDrainedEnd = end
        let lostFor: [HostNode]
        if let recipients {
            lostFor = (0..<recipients.count).compactMap { connections[recipients.ids[$0]] }
        } else {
            lostFor = members.filter { $0.canReceive && $0 !== sender }
        }
        for receiver in lostFor {
            receiver.gapPending = true
            policy.messageLost(from: sender.id, for: receiver.id)
        }
    }

    /// Lossless: every recipient must have a free inbox slot; those without one are asked to ring the
    /// doorbell when they free one. A recipient whose read cursor is impossible (beyond what was written
    /// to it, e.g. 2^63) is marked for dropping and holds nobody back: it would never free a slot, and
    /// every sender routed to it would wait forever.
    private func allHaveRoom(_ recipients: Recipients) -> Bool {
        var ok = true
        for i in 0..<recipients.count {
            guard let r = connections[recipients.ids[i]], let inbox = r.inbox, r.corruption == nil else { continue }
            let capacity = UInt64(inbox.capacity)
            guard r.inboxWrite &- r.inboxReadSeen >= capacity else { continue }
            guard let read = reloadInboxRead(r, inbox) else { continue }
            guard r.inboxWrite &- read >= capacity else { continue }
            // Full: arm, then read again, so a release after this read rings the doorbell.
            inbox.producerWaiting.store(1, ordering: .sequentiallyConsistent)
            guard let again = reloadInboxRead(r, inbox) else { continue }
            if r.inboxWrite &- again >= capacity { ok = false }
        }
        return ok
    }

    /// Delivers what the policy originated (sender 0, inline). Too large or no room: counted as a drop.
    private func deliverInjections() {
        let injections = recipients.injections
        recipients.injections.removeAll(keepingCapacity: true)
        for (id, bytes) in injections {
            guard let receiver = connections[id], receiver.joined else { continue }
            guard bytes.count <= options.inlineCapacity else { receiver.dropped += 1; continue }
            policySequence += 1
            let header = SlotHeader(length: UInt32(bytes.count), kind: .inline, sender: 0, flags: 0,
                                    sequence: policySequence, poolPosition: 0)
            bytes.withUnsafeBytes { b in _ = deliver(header, bytes: b, from: nil, to: receiver) }
        }
    }

    private var policySequence: UInt64 = 0

    /// Writes one message into a receiver's inbox. Returns false when it had to be dropped.
    @inline(__always) @discardableResult
    private func deliver(_ header: SlotHeader, bytes: UnsafeRawBufferPointer, from sender: HostNode?, to receiver: HostNode) -> Bool {
        guard let inbox = receiver.inbox, receiver.corruption == nil else { return false }
        let capacity = UInt64(inbox.capacity)
        if receiver.inboxWrite &- receiver.inboxReadSeen >= capacity {
            guard let r = reloadInboxRead(receiver, inbox) else { return false }
            if receiver.inboxWrite &- r >= capacity {
                receiver.dropped += 1
                receiver.gapPending = true
                inbox.drops.wrappingIncrement(ordering: .relaxed)
                return false
            }
        }
        if header.kind == .pool, let sender, !receiver.knownPools.contains(sender.id) {
            let sent = (try? receiver.control.send(.poolAvailable(sender: sender.id, size: sender.poolMemory!.size),
                                                   fds: [sender.poolReadOnlyFD], nonBlocking: true)) ?? false
            guard sent else {
                receiver.dropped += 1
                receiver.gapPending = true
                return false
            }
            receiver.knownPools.insert(sender.id)
        }
        let slot = inbox.slot(receiver.inboxWrite)
        SlotHeader(length: header.length, kind: header.kind, sender: sender?.id ?? 0,
                   flags: receiver.gapPending ? SlotHeader.flagGap : 0,
                   sequence: header.sequence, poolPosition: header.poolPosition).store(at: slot)
        if header.kind == .inline {
            (slot + SlotHeader.size).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        } else if options.lossless, let sender {
            receiver.poolRefs.append((receiver.inboxWrite, sender.id, header.poolPosition))
        }
        receiver.gapPending = false
        receiver.inboxWrite += 1
        receiver.deliveredMessages += 1
        receiver.deliveredBytes += UInt64(bytes.count)
        return true
    }

    /// Lossless buses: tell each sender how far its pool may be reused (nothing queued below it).
    private func updatePoolReleases() {
        var oldest: [UInt32: UInt64] = [:]
        for receiver in members where !receiver.poolRefs.isEmpty {
            // Arm first, then read: a release after our read then rings the doorbell (no lost wake-up).
            receiver.inbox!.producerWaiting.store(1, ordering: .sequentiallyConsistent)
            let read = receiver.inbox!.read.load(ordering: .sequentiallyConsistent)
            // A cursor beyond what was written would release pool bytes still queued for it: drop the node.
            if let reason = impossibleInboxRead(read, of: receiver, receiver.inbox!) {
                markCorrupt(receiver, reason)
                continue
            }
            while receiver.poolRefsHead < receiver.poolRefs.count, receiver.poolRefs[receiver.poolRefsHead].index < read {
                receiver.poolRefsHead += 1
            }
            if receiver.poolRefsHead > 1024 && receiver.poolRefsHead * 2 > receiver.poolRefs.count {
                receiver.poolRefs.removeFirst(receiver.poolRefsHead)
                receiver.poolRefsHead = 0
            }
            if receiver.poolRefsHead == receiver.poolRefs.count {
                receiver.poolRefs.removeAll(keepingCapacity: true)
                receiver.poolRefsHead = 0
                continue
            }
            for i in receiver.poolRefsHead..<receiver.poolRefs.count {
                let ref = receiver.poolRefs[i]
                oldest[ref.sender] = min(oldest[ref.sender] ?? .max, ref.position)
            }
        }
        for sender in members {
            guard let pool = sender.pool else { continue }
            let released = oldest[sender.id] ?? sender.poolDrainedEnd
            if pool.released.load(ordering: .relaxed) != released {
                pool.released.store(released, ordering: .sequentiallyConsistent)
                if pool.senderWaiting.exchange(0, ordering: .sequentiallyConsistent) != 0 {
                    _ = ipn_eventfd_signal(sender.wakeFD)
                }
            }
        }
    }
}
