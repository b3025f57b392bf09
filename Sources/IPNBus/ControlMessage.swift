import CIPNSys
import Foundation

/// Messages on the control channel between a node and its bus host (one SOCK_SEQPACKET datagram
/// each, JSON, descriptors in SCM_RIGHTS). Data never travels here: only joins, options, pool
/// announcements, membership notices and status. Wire version: `ControlMessage.version`.
enum ControlMessage: Codable, Equatable {
    static let version = 2
    static let maximumSize = 256 << 10

    enum Intent: String, Codable { case bind, connect, stat, remove, setOptions }

    struct Hello: Codable, Equatable {
        var version: Int
        var intent: Intent
        /// The policy the client asks for (nil: any).
        var policy: String?
        var wantReceive: Bool
        var wantSend: Bool
        var wantMembership: Bool
        var description: String
        /// Proof that this client spawned the host (creator gets the manage right).
        var creatorToken: String?
        /// The bus file the client looked up: the host checks it is still its own.
        var device: UInt64
        var inode: UInt64
        var persistent: Bool?
        var busDescription: String?
        /// Opaque to the host: handed to the policy with the joining node (e.g. "join=next-keyframe").
        var policyParameters: String?
    }

    struct Join: Codable, Equatable {
        var wantReceive: Bool
        var wantSend: Bool
        var wantMembership: Bool
        var description: String
        var policyParameters: String?
    }

    /// Sent with four descriptors when a node joins: inbox, outbox, node wake eventfd, host doorbell.
    struct Welcome: Codable, Equatable {
        var node: UInt32
        var rights: Rights
        var canReceive: Bool
        var canSend: Bool
        var joined: Bool
        var options: BusOptions
        var queueLength: Int
        var inlineCapacity: Int
    }

    struct Failure: Codable, Equatable {
        enum Code: String, Codable {
            case permissionDenied, policyMismatch, busFull, notABus, badRequest, busGone, busExists
            /// The hello came without a descriptor of the bus file: the client did not prove it can reach the path.
            case unreachable
        }
        var code: Code
        var message: String
        var missing: Rights?
        var busPolicy: String?
    }

    case hello(Hello)
    case join(Join)
    case shutdown(read: Bool, write: Bool)
    case setDescription(String)
    /// Node → host, with the pool memfd.
    case poolCreated(size: Int)
    case statRequest
    case welcome(Welcome)
    case failure(Failure)
    case status(BusStatus)
    case done
    /// Host → receiver, with a read-only descriptor of `sender`'s pool.
    case poolAvailable(sender: UInt32, size: Int)
    /// Host → receiver: `sender` left; unmap its pool once the inbox read cursor reaches `after`.
    case poolRetired(sender: UInt32, after: UInt64)
    /// IPN's out-of-band numnodes notice.
    case membership(readers: Int, writers: Int)
    /// Host → node: the bus is being removed.
    case closing(reason: String)

    func encoded() -> [UInt8] {
        (try? [UInt8](JSONEncoder().encode(self))) ?? []
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(IPNError) -> ControlMessage {
        do {
            return try JSONDecoder().decode(ControlMessage.self, from: Data(bytes))
        } catch {
            throw .protocolViolation("malformed control message (\(bytes.count) bytes)")
        }
    }
}

/// One end of a control channel: sends and receives whole control messages with descriptors.
struct ControlChannel {
    let fd: Int32

    /// Sends a message; with `nonBlocking`, a full socket buffer reports false instead of waiting.
    @discardableResult
    func send(_ message: ControlMessage, fds: [Int32] = [], nonBlocking: Bool = false) throws(IPNError) -> Bool {
        let bytes = message.encoded()
        let n = bytes.withUnsafeBytes { b in
            fds.withUnsafeBufferPointer { f in
                ipnSendFDs(fd, b.baseAddress, b.count, f.baseAddress, Int32(f.count), nonBlocking ? Int32(MSG_DONTWAIT) : 0)
            }
        }
        if n < 0 {
            let e = Sys.lastErrno
            if e == .wouldBlock { return false }
            if e == .connectionReset || e == .brokenPipe { throw .busGone(path: "") }
            throw .system(call: "sendmsg", errno: e)
        }
        return true
    }

    /// What one non-blocking or blocking read of the channel found.
    enum Read {
        case message(ControlMessage, [Int32])
        case wouldBlock
        case closed
    }

    /// Receives one message (descriptors it carried are the caller's to close).
    ///
    /// A peer that closed with a message of ours unread (a host refusing a connection before reading its
    /// hello) makes the kernel report ECONNRESET once, ahead of what that peer sent before closing, which is
    /// still queued (the reason for the refusal): the read goes on after the first reset.
    func receive(nonBlocking: Bool = false, afterReset: Bool = false) throws(IPNError) -> Read {
        // Peek at the datagram's size first: the data path calls this often with nothing queued,
        // and must not pay for a large buffer each time.
        var probe: UInt8 = 0
        let peeked = recv(fd, &probe, 1, Int32(MSG_PEEK | MSG_TRUNC) | (nonBlocking ? Int32(MSG_DONTWAIT) : 0))
        if peeked < 0 {
            let e = Sys.lastErrno
            if e == .wouldBlock { return .wouldBlock }
            if e == .connectionReset { return afterReset ? .closed : try receive(nonBlocking: nonBlocking, afterReset: true) }
            if e != .interrupted { throw .system(call: "recv", errno: e) }
        }
        var buffer = [UInt8](repeating: 0, count: min(ControlMessage.maximumSize, max(1, peeked) + 1))
        var fds = [Int32](repeating: -1, count: 8)
        var nfds: Int32 = 0
        var truncated: Int32 = 0
        let n = buffer.withUnsafeMutableBytes { b in
            fds.withUnsafeMutableBufferPointer { f in
                ipnRecvFDs(fd, b.baseAddress, b.count, f.baseAddress, 8, &nfds, &truncated, Int32(MSG_DONTWAIT))
            }
        }
        let received = Array(fds.prefix(Int(nfds)))
        if n < 0 {
            let e = Sys.lastErrno
            if e == .wouldBlock { return .wouldBlock }
            if e == .connectionReset { return afterReset ? .closed : try receive(nonBlocking: nonBlocking, afterReset: true) }
            throw .system(call: "recvmsg", errno: e)
        }
        if n == 0 { received.forEach(Sys.close); return .closed }
        // Descriptors beyond what fits were closed by the kernel (MSG_CTRUNC): the message itself is kept.
        if truncated == Int32(IPN_TRUNCATED_DATA) {
            received.forEach(Sys.close)
            throw .protocolViolation("control message larger than \(ControlMessage.maximumSize) bytes")
        }
        let decoded = buffer.withUnsafeBytes { b in
            Result { () throws(IPNError) in try ControlMessage.decode(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
        }
        switch decoded {
        case .success(let message): return .message(message, received)
        case .failure(let error):
            received.forEach(Sys.close)
            throw error
        }
    }
}
