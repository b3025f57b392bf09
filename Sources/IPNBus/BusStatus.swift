/// What `ipn stat` shows: the bus, its options and every node with its counters.
public struct BusStatus: Codable, Sendable, Equatable {
    public struct NodeStatus: Codable, Sendable, Equatable {
        public var id: UInt32
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
        /// Rights from the file mode at join time.
        public var rights: Rights
        /// `bound` (manages the bus), `member` (in the data flow) or both.
        public var role: String
        public var canSend: Bool
        public var canReceive: Bool
        public var description: String
        /// Messages waiting in this node's inbox, and its capacity.
        public var queued: Int
        public var queueLength: Int
        public var dropped: UInt64
        public var rejected: UInt64
        public var sentMessages: UInt64
        public var sentBytes: UInt64
        public var deliveredMessages: UInt64
        public var deliveredBytes: UInt64
        /// This sender's messages the host found already overwritten in its pool (a lossy bus whose host fell
        /// a whole pool behind): routed to nobody, every receiver's next message flagged as after a gap.
        public var overwritten: UInt64 = 0
    }

    public var path: String
    public var policy: String
    public var options: BusOptions
    public var hostPID: Int32
    public var uptimeSeconds: Double
    public var readers: Int
    public var writers: Int
    public var nodes: [NodeStatus]
    public var policyStatistics: [String: String]
    /// Connections the host closed before any request: the file granted the peer no right, or its uid already
    /// had as many connections waiting to say hello as one uid may.
    public var refusedConnections: UInt64 = 0
    /// Times the host ran out of descriptors and stopped accepting until its next tick.
    public var acceptPauses: UInt64 = 0
    /// The host's log of nodes it threw off for what they wrote into shared memory (impossible ring
    /// cursors), newest last, at most `Host.evictionLog` of them: "node ID (pid PID): reason". The host's
    /// own output goes nowhere (it runs detached), so this is where the reason stays.
    public var evictions: [String]? = nil
}
