import CIPNSys

/// IPN_VDESWITCH: an Ethernet switch. Learns source MAC → node, unicasts to known destinations,
/// floods broadcast, multicast and unknown destinations to every receiving node but the sender,
/// forgets a node's addresses when it leaves and ages entries (30 s by default, like kvde_switch).
///
/// Unlike kvde_switch it never sends a frame back to the node it came from (no hairpin), bounds
/// its table, and rejects runt frames with a counter instead of silently.
public final class SwitchPolicy: Policy {
    public static let name = "switch"
    static let ethernetHeader = 14

    private var table: MacTable
    /// Where the Ethernet header starts (after a virtio-net header on vnet buses).
    private let offset: Int
    private var runts: UInt64 = 0
    private var unicast: UInt64 = 0
    private var flooded: UInt64 = 0
    private var now: UInt64 = ipn_monotonic_ns()
    private var framesSinceClock = 0

    public init(options: BusOptions) {
        table = MacTable(capacity: options.macTableSize, ageSeconds: options.macAgeSeconds)
        offset = options.vnetHeader ? BusOptions.vnetHeaderSize : 0
    }

    public func nodeJoined(_ node: PolicyNode, actions: inout Recipients) -> Bool { true }
    public func nodeLeft(_ node: PolicyNode, actions: inout Recipients) { table.forget(node: node.id) }

    @inline(__always)
    static func mac(_ b: UnsafeRawBufferPointer, at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<6 { v = (v << 8) | UInt64(b[offset + i]) }
        return v
    }

    public func route(_ message: PolicyMessage, into recipients: inout Recipients) -> RouteVerdict {
        let b = message.bytes
        guard b.count >= offset + Self.ethernetHeader else {
            runts += 1
            return .reject(reason: "runt frame of \(b.count) bytes (an Ethernet header is 14\(offset > 0 ? ", after a 10-byte virtio-net header" : ""))")
        }
        // Reading the clock costs more than routing; once per 64 frames is plenty for 1 s aging.
        framesSinceClock += 1
        if framesSinceClock >= 64 { framesSinceClock = 0; now = ipn_monotonic_ns() }
        let destination = Self.mac(b, at: offset)
        let source = Self.mac(b, at: offset + 6)
        if b[offset + 6] & 1 == 0 { table.learn(source, on: message.sender, now: now) }
        if b[offset] & 1 == 0, let port = table.lookup(destination, now: now) {
            if port != message.sender, recipients.receivers.contains(port) { recipients.add(port) }
            unicast += 1
        } else {
            recipients.addAllReceivers(except: message.sender)
            flooded += 1
        }
        return .deliver
    }

    public func tick(now: UInt64) {
        self.now = now
        table.age(now: now)
    }

    public var statistics: [String: String] {
        ["macEntries": "\(table.count)", "macRefused": "\(table.refused)", "runtFrames": "\(runts)",
         "unicastFrames": "\(unicast)", "floodedFrames": "\(flooded)"]
    }

    /// The learned table (for `ipn stat` and tests).
    public var macTable: MacTable { table }
}
