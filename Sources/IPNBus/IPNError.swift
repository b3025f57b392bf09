import SystemPackage

/// Everything a user or a peer can cause on an IPN bus, in words a user can act on.
///
/// The cases mirror the errors of the original AF_IPN (EACCES, ECONNREFUSED, EOVERFLOW, EPROTO...),
/// but name the cause instead of leaving the reader to decode an errno.
public enum IPNError: Error, Equatable, Sendable, CustomStringConvertible {
    case notABus(path: String)
    case noSuchBus(path: String)
    case staleBus(path: String)
    case busExists(path: String)
    case permissionDenied(path: String, missing: Rights)
    /// A directory on the way to the bus cannot be searched by this user: the bus is private to others.
    case unreachable(path: String)
    case unknownPolicy(String)
    case policyMismatch(path: String, bus: String, requested: String)
    case mtuExceeded(size: Int, mtu: Int)
    case busGone(path: String)
    case refused(path: String, reason: String)
    case notConnected
    case alreadyConnected
    case shutDown(direction: String)
    case wouldBlock
    case invalidOption(String)
    case protocolViolation(String)
    case hostFailed(path: String, reason: String)
    case system(call: String, errno: Errno)
    /// A privilege the operation needs (e.g. CAP_NET_ADMIN for a TAP).
    case missingCapability(String, needed: String)
    case noSuchInterface(String)

    public var description: String {
        switch self {
        case .notABus(let p): return "\(p) is not an IPN bus (it exists but is not a socket file)"
        case .noSuchBus(let p): return "no bus at \(p) (create it with `ipn create \(p)` or bind it)"
        case .staleBus(let p): return "\(p) is a stale bus file: the host that served it is gone (bind or `ipn create` recreates it, `ipn rm` removes it)"
        case .busExists(let p): return "a bus already exists at \(p)"
        case .permissionDenied(let p, let missing) where missing.isEmpty:
            return "permission denied on \(p): you have no right on it (this needs one of r, w or x)"
        case .permissionDenied(let p, let missing): return "permission denied on \(p): no \(missing) right"
        case .unreachable(let p):
            return "permission denied on \(p): you cannot reach it (a directory above it does not grant you search (x) permission)"
        case .unknownPolicy(let n): return "unknown policy '\(n)' (known: \(PolicyRegistry.names.joined(separator: ", ")))"
        case .policyMismatch(let p, let bus, let req): return "bus \(p) uses the \(bus) policy, not \(req)"
        case .mtuExceeded(let s, let m): return "message of \(s) bytes exceeds the bus MTU of \(m) bytes"
        case .busGone(let p): return "bus \(p) is gone (its host ended or the bus was removed)"
        case .refused(let p, let r): return "bus \(p) refused the request: \(r)"
        case .notConnected: return "the socket is not connected to a bus"
        case .alreadyConnected: return "the socket is already bound or connected"
        case .shutDown(let d): return "this node cannot \(d): that side is shut down (or the right is missing)"
        case .wouldBlock: return "the operation would block (lossless bus with a full queue)"
        case .invalidOption(let m): return "invalid option: \(m)"
        case .protocolViolation(let m): return "protocol violation: \(m)"
        case .hostFailed(let p, let r): return "could not start the host of bus \(p): \(r)"
        case .system(let call, let e): return "\(call) failed: \(e.description) (errno \(e.rawValue))"
        case .missingCapability(let c, let needed): return "\(needed) needs \(c) (run as root or grant it: setcap cap_net_admin,cap_net_raw+ep)"
        case .noSuchInterface(let n): return "no network interface named \(n) (see `ip link`)"
        }
    }
}
