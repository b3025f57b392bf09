/// Options of one bus (IPN's pre-bind network options), fixed when the bus is created except
/// `persistent` and `description`, which a node with the manage right may change later.
///
/// Defaults follow the original IPN where they make sense (MTU 1514, 64 nodes, lossy, mode
/// 0777 & ~umask) and deliberately differ where IPN's users suffered: the per-node queue is 64
/// messages, not 8, and every drop is counted.
public struct BusOptions: Codable, Sendable, Equatable {
    public var policy: String = "hub"
    /// Largest message in bytes (IPN_SO_MTU).
    public var mtu: Int = 1514
    /// Per-node queue depth in messages (IPN_SO_MSGPOOLSIZE); rounded up to a power of two.
    public var queueLength: Int = 64
    /// Maximum number of nodes (IPN_SO_NUMNODES).
    public var maxNodes: Int = 64
    /// Senders are held back instead of receivers losing messages (IPN_FLAG_LOSSLESS).
    public var lossless: Bool = false
    /// The bus stays up with no node on it, until removed.
    public var persistent: Bool = false
    /// Permission bits of the bus file (IPN_SO_MODE); nil means 0777 & ~umask.
    public var mode: UInt32? = nil
    public var description: String = ""
    /// Bytes of each sender's shared pool for large messages; nil picks max(8 MiB, 4 × MTU).
    public var poolBytes: Int? = nil
    /// Seconds a learned MAC address lives without traffic (switch policy).
    public var macAgeSeconds: Int = 30
    /// Largest number of MAC addresses the switch policy remembers.
    public var macTableSize: Int = 4096
    /// Messages up to this size travel inline in the rings (copied once more, but with no pool
    /// bookkeeping); nil is `inlineLimit`. Audio buses raise it to hold a whole period.
    public var inlineBytes: Int? = nil
    /// Every frame starts with a 10-byte virtio-net header (IFF_VNET_HDR): TAP and grabbed interfaces
    /// then pass whole GSO segments (up to 64 KiB) instead of MTU-sized frames, and the switch policy
    /// reads the Ethernet header after it. Only interface nodes, cables and vnet-aware clients belong
    /// on such a bus. Needs an MTU of at least 65550.
    public var vnetHeader: Bool = false

    public init() {}

    public static let maximumMTU = 256 << 20
    /// A 64 KiB GSO segment, its Ethernet header and the 10-byte virtio-net header.
    public static let vnetMinimumMTU = 65536 + 14 + 10
    public static let vnetHeaderSize = 10
    /// Messages up to this size travel inline in the rings by default; larger ones use the sender's pool.
    public static let inlineLimit = 2048

    public var inlineCapacity: Int { min(mtu, inlineBytes ?? Self.inlineLimit) }
    public var effectiveQueueLength: Int { Self.powerOfTwo(atLeast: queueLength) }
    public var effectivePoolBytes: Int { poolBytes ?? max(8 << 20, 4 * mtu) }

    static func powerOfTwo(atLeast n: Int) -> Int {
        var p = 1
        while p < n { p <<= 1 }
        return p
    }

    /// Checks every field a user may set; the error names the field and the allowed range.
    public func validate() throws(IPNError) {
        guard PolicyRegistry.names.contains(policy) else { throw .unknownPolicy(policy) }
        try validateLimits()
    }

    /// Checks the numbers and sizes only. A node checks the options a host welcomes it with this way (a
    /// node need not know the bus's policy): they size its mappings and index its rings, and they come
    /// from another process.
    public func validateLimits() throws(IPNError) {
        guard (1...Self.maximumMTU).contains(mtu) else { throw .invalidOption("MTU \(mtu) outside 1...\(Self.maximumMTU)") }
        guard (1...65536).contains(queueLength) else { throw .invalidOption("queue length \(queueLength) outside 1...65536") }
        guard (1...4096).contains(maxNodes) else { throw .invalidOption("maximum nodes \(maxNodes) outside 1...4096") }
        if let mode, mode & ~0o777 != 0 { throw .invalidOption("mode \(String(mode, radix: 8)) has bits outside 0777") }
        guard description.utf8.count <= 128 else { throw .invalidOption("description longer than 128 bytes") }
        if let poolBytes, poolBytes < mtu || poolBytes > 1 << 34 {
            throw .invalidOption("pool of \(poolBytes) bytes must hold at least one MTU (\(mtu)) and at most 16 GiB")
        }
        guard macAgeSeconds >= 1 else { throw .invalidOption("MAC age must be at least 1 second") }
        guard macTableSize >= 16 else { throw .invalidOption("MAC table size must be at least 16") }
        if vnetHeader && mtu < Self.vnetMinimumMTU { throw .invalidOption("a bus with virtio-net headers needs an MTU of at least \(Self.vnetMinimumMTU)") }
        if let inlineBytes, !(64...65536).contains(inlineBytes) { throw .invalidOption("inline size \(inlineBytes) outside 64...65536") }
    }
}
