/// IPN_BROADCAST: every message goes to every receiving node except its sender.
public final class HubPolicy: Policy {
    public static let name = "hub"
    public init(options: BusOptions) {}
    public func nodeJoined(_ node: PolicyNode, actions: inout Recipients) -> Bool { true }
    public func nodeLeft(_ node: PolicyNode, actions: inout Recipients) {}
    public func route(_ message: PolicyMessage, into recipients: inout Recipients) -> RouteVerdict {
        recipients.addAllReceivers(except: message.sender)
        return .deliver
    }
    public func tick(now: UInt64) {}
    public var statistics: [String: String] { [:] }
}
