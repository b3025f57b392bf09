import CIPNSys
import Glibc

/// The host's view of one connection: a node on the bus, a manager (bound), or a passing client
/// asking for status. Owns the node's rings, wake-up eventfd and (read-only) pool descriptor.
final class HostNode {
    let id: UInt32
    let control: ControlChannel
    let pid: Int32
    let uid: UInt32
    let gid: UInt32
    let groups: [UInt32]

    var greeted = false
    let acceptedAt = ipn_monotonic_ns()
    var rights: Rights = []
    var isBound = false
    var joined = false
    var canSend = false
    var canReceive = false
    var wantMembership = false
    var description = ""
    var policyParameters = ""

    // Data plane, present once joined.
    var inboxMemory: SharedMemory?
    var outboxMemory: SharedMemory?
    var inbox: MessageRing?
    var outbox: MessageRing?
    var wakeFD: Int32 = -1
    /// Host-local inbox write cursor, the part of it already published, and the last read cursor seen.
    var inboxWrite: UInt64 = 0
    var inboxPublished: UInt64 = 0
    var inboxReadSeen: UInt64 = 0
    var outboxRead: UInt64 = 0
    /// Messages were dropped for this node; flag the next one it gets.
    var gapPending = false
    /// On a lossless bus this node's next message waits for a full receiver.
    var heldBack = false
    /// The recipients the policy chose for the held-back head of the outbox (outbox index, node ids).
    var heldRoute: (index: UInt64, ids: [UInt32])?
    /// Why one of this node's ring cursors is impossible, once the host found one: the node is dropped
    /// after the pass with this reason, and nothing more is delivered to it meanwhile.
    var corruption: String?

    // The node's own pool of large messages (it is a sender).
    var poolMemory: SharedMemory?
    var pool: SenderPool?
    var poolReadOnlyFD: Int32 = -1
    /// End of the newest pool message taken from this node's outbox.
    var poolDrainedEnd: UInt64 = 0
    /// Pools of other nodes this node has a descriptor for.
    var knownPools = Set<UInt32>()
    /// Lossless only: pool messages in this node's inbox, oldest first (inbox index, sender, position).
    var poolRefs: [(index: UInt64, sender: UInt32, position: UInt64)] = []
    var poolRefsHead = 0

    // Counters.
    var dropped: UInt64 = 0
    var rejected: UInt64 = 0
    var overwritten: UInt64 = 0
    var sentMessages: UInt64 = 0
    var sentBytes: UInt64 = 0
    var deliveredMessages: UInt64 = 0
    var deliveredBytes: UInt64 = 0

    init(id: UInt32, fd: Int32, pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.id = id
        self.control = ControlChannel(fd: fd)
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    var isMember: Bool { isBound || joined }
    var policyNode: PolicyNode { PolicyNode(id: id, canReceive: canReceive, canSend: canSend, parameters: policyParameters) }

    /// Messages waiting in the inbox (by the node's cursor, clamped if the node scribbled on it).
    var queued: Int {
        guard let inbox else { return 0 }
        let r = inbox.read.load(ordering: .relaxed)
        return inbox.validatedOccupancy(write: inboxWrite, read: r) ?? 0
    }

    func status() -> BusStatus.NodeStatus {
        let role = [isBound ? "bound" : nil, joined ? "member" : nil].compactMap { $0 }.joined(separator: "+")
        return .init(id: id, pid: pid, uid: uid, gid: gid, rights: rights, role: role.isEmpty ? "client" : role,
                     canSend: canSend, canReceive: canReceive, description: description,
                     queued: queued, queueLength: inbox?.capacity ?? 0, dropped: dropped, rejected: rejected,
                     sentMessages: sentMessages, sentBytes: sentBytes,
                     deliveredMessages: deliveredMessages, deliveredBytes: deliveredBytes, overwritten: overwritten)
    }

    /// Releases everything; the connection's descriptor is closed by the caller's epoll bookkeeping.
    func close() {
        Sys.close(wakeFD)
        wakeFD = -1
        Sys.close(poolReadOnlyFD)
        poolReadOnlyFD = -1
        inbox = nil; outbox = nil; pool = nil
        inboxMemory = nil; outboxMemory = nil; poolMemory = nil
        Sys.close(control.fd)
    }
}
