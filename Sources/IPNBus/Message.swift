/// One message received from a bus, or an out-of-band membership notice.
public struct Message: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case data
        /// IPN's numnodes notice: how many nodes may now receive and send.
        case membership(readers: Int, writers: Int)
    }
    public var kind: Kind
    public var bytes: [UInt8]
    /// The sending node's id on this bus (unique for the bus's lifetime).
    public var sender: UInt32
    /// The sender's own count of messages it sent; consecutive unless it lost some on the way.
    public var sequence: UInt64
    /// Messages were lost for this receiver just before this one (slow receiver or lapped pool).
    public var afterGap: Bool
}

/// A message read in place from shared memory, valid only inside `IPNSocket.withNextMessage`.
public struct MessageView {
    public let bytes: UnsafeRawBufferPointer
    public let sender: UInt32
    public let sequence: UInt64
    public let afterGap: Bool
}
