/// A node as a delivery policy sees it.
public struct PolicyNode: Sendable, Hashable {
    public let id: UInt32
    public let canReceive: Bool
    public let canSend: Bool
    /// What the node asked of the policy when it joined (`IPNSocket.policyParameters`).
    public let parameters: String
}

/// One message offered to a policy: its sender and its bytes (readable only during `route`).
public struct PolicyMessage {
    public let sender: UInt32
    public let bytes: UnsafeRawBufferPointer
}

/// Where a message goes: filled by a policy, read by the host. Preallocated and reused, so routing
/// allocates nothing.
public struct Recipients {
    public private(set) var ids: [UInt32]
    public private(set) var count = 0
    /// Every node that may currently receive, in join order (for flooding).
    public internal(set) var receivers: [UInt32] = []

    init(capacity: Int) { ids = [UInt32](repeating: 0, count: capacity) }

    /// Messages a policy originates itself (IPN's welcome/goodbye messages from postnewport and
    /// predelport): delivered inline, from sender 0 (the bus), at most the bus's inline size each.
    public internal(set) var injections: [(node: UInt32, bytes: [UInt8])] = []

    mutating func reset() { count = 0 }

    /// Sends `bytes` from the bus itself to one node.
    public mutating func inject(_ bytes: [UInt8], to node: UInt32) { injections.append((node, bytes)) }

    /// Sends `bytes` from the bus itself to every receiving node (but `except`).
    public mutating func injectToAllReceivers(_ bytes: [UInt8], except: UInt32? = nil) {
        for id in receivers where id != except { inject(bytes, to: id) }
    }

    public mutating func add(_ id: UInt32) {
        guard count < ids.count else { return }
        ids[count] = id
        count += 1
    }

    /// Every receiving node but `sender` (IPN's broadcast).
    public mutating func addAllReceivers(except sender: UInt32) {
        for id in receivers where id != sender { add(id) }
    }
}

/// What a policy decided about a message.
public enum RouteVerdict: Equatable, Sendable {
    case deliver
    /// The message is malformed for this policy; it is counted against the sender and dropped.
    case reject(reason: String)
}

/// A delivery policy: IPN's protocol plug-in (`struct ipn_protocol`) as a Swift protocol.
///
/// The host calls the hooks on its one thread, in IPN's order: `nodeJoined` before a node can
/// receive, `nodeLeft` after it can no longer; `route` for every message (IPN's handlemsg) decides
/// its recipients; `tick` runs about once a second for aging. Hooks must not block.
/// A policy's type is shared (`SendableMetatype`: the registry hands it to any thread); its
/// instances are not, they live on the host's thread.
public protocol Policy: AnyObject, SendableMetatype {
    /// The name users type (`--policy hub`).
    static var name: String { get }
    init(options: BusOptions)
    /// A node joined the data flow (IPN newport). Return false to refuse it. Messages injected into
    /// `actions` are delivered once the node is on the bus (IPN postnewport).
    func nodeJoined(_ node: PolicyNode, actions: inout Recipients) -> Bool
    /// A node left (IPN predelport/delport); injected messages go to the remaining nodes.
    func nodeLeft(_ node: PolicyNode, actions: inout Recipients)
    /// Decide the recipients of one message (IPN handlemsg).
    func route(_ message: PolicyMessage, into recipients: inout Recipients) -> RouteVerdict
    /// Periodic housekeeping; `now` is CLOCK_MONOTONIC in nanoseconds.
    func tick(now: UInt64)
    /// Counters and state worth showing in `ipn stat`.
    var statistics: [String: String] { get }
    /// A message routed to `node` was dropped because its queue was full (lossy buses).
    func messageDropped(_ message: PolicyMessage, for node: UInt32)
    /// A message of `sender` that `node` might have received is lost and its bytes are unknown (the sender
    /// overwrote them in its pool before the host could deliver them).
    func messageLost(from sender: UInt32, for node: UInt32)
}

extension Policy {
    public func messageDropped(_ message: PolicyMessage, for node: UInt32) {}
    public func messageLost(from sender: UInt32, for node: UInt32) {}
}

/// The built-in policies, by name.
public enum PolicyRegistry {
    private static let registered = Locked<[String: any Policy.Type]>([
        HubPolicy.name: HubPolicy.self,
        SwitchPolicy.name: SwitchPolicy.self,
    ])

    public static var names: [String] { registered.withLock { $0.keys.sorted() } }

    /// Adds a policy (any thread, any time; a host makes its policy when it starts).
    public static func register(_ type: any Policy.Type) { registered.withLock { $0[type.name] = type } }

    public static func make(_ name: String, options: BusOptions) throws(IPNError) -> any Policy {
        guard let t = registered.withLock({ $0[name] }) else { throw .unknownPolicy(name) }
        return t.init(options: options)
    }
}
