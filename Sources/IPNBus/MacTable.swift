/// The learning table of an Ethernet switch: source MAC → node, with aging and a hard size bound.
///
/// Bounded two ways so a flood of random source addresses cannot grow memory or push out real
/// stations: the whole table holds at most `capacity` entries, and one node may own at most a
/// quarter of them. When full, new addresses are simply not learned (their frames are flooded,
/// which is correct, only slower) until entries age out; known stations keep refreshing theirs.
public struct MacTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var node: UInt32
        public var expires: UInt64
    }

    public let capacity: Int
    public let perNodeLimit: Int
    public let ageNanoseconds: UInt64
    public private(set) var entries: [UInt64: Entry] = [:]
    private var perNode: [UInt32: Int] = [:]
    /// Addresses not learned because a bound was reached.
    public private(set) var refused: UInt64 = 0

    public init(capacity: Int, ageSeconds: Int) {
        self.capacity = capacity
        self.perNodeLimit = max(1, capacity / 4)
        self.ageNanoseconds = UInt64(ageSeconds) * 1_000_000_000
        entries.reserveCapacity(capacity)
    }

    public var count: Int { entries.count }

    /// Learns or refreshes `mac` on `node`; a station that moved is relearned at once.
    public mutating func learn(_ mac: UInt64, on node: UInt32, now: UInt64) {
        if var e = entries[mac] {
            if e.node != node {
                guard (perNode[node] ?? 0) < perNodeLimit else { refused += 1; return }
                perNode[e.node, default: 1] -= 1
                perNode[node, default: 0] += 1
                e.node = node
            }
            e.expires = now + ageNanoseconds
            entries[mac] = e
            return
        }
        guard entries.count < capacity, (perNode[node] ?? 0) < perNodeLimit else { refused += 1; return }
        entries[mac] = Entry(node: node, expires: now + ageNanoseconds)
        perNode[node, default: 0] += 1
    }

    /// The node a unicast address was learned on, if it has not expired.
    public func lookup(_ mac: UInt64, now: UInt64) -> UInt32? {
        guard let e = entries[mac], e.expires > now else { return nil }
        return e.node
    }

    /// Forgets every address learned on `node` (it left the bus).
    public mutating func forget(node: UInt32) {
        guard perNode[node] != nil else { return }
        entries = entries.filter { $0.value.node != node }
        perNode[node] = nil
    }

    /// Drops expired entries.
    public mutating func age(now: UInt64) {
        let expired = entries.filter { $0.value.expires <= now }
        for (mac, e) in expired {
            entries[mac] = nil
            perNode[e.node, default: 1] -= 1
            if perNode[e.node] == 0 { perNode[e.node] = nil }
        }
    }
}
