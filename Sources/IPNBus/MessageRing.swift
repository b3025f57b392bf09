import Atomics

/// One message slot's header in a `MessageRing`. Layout is the wire format between processes
/// (docs/bus-protocol.md): 32 bytes, little-endian, followed by the inline payload.
public struct SlotHeader: Sendable, Equatable {
    public enum Kind: UInt32, Sendable { case inline = 0, pool = 1 }
    public var length: UInt32
    public var kind: Kind
    /// Node (port) number of the sender, filled by the host; a sender's value is ignored.
    public var sender: UInt32
    /// Bit 0: messages were lost for this receiver just before this one.
    public var flags: UInt32
    /// The sender's own message sequence number (counts every message it sent).
    public var sequence: UInt64
    /// For pool messages: the byte position in the sender's pool.
    public var poolPosition: UInt64

    static let size = 32
    static let flagGap: UInt32 = 1

    init(length: UInt32, kind: Kind, sender: UInt32, flags: UInt32, sequence: UInt64, poolPosition: UInt64) {
        self.length = length; self.kind = kind; self.sender = sender; self.flags = flags
        self.sequence = sequence; self.poolPosition = poolPosition
    }

    /// Reads a header; nil when the kind is not one we know (a malformed slot).
    init?(at p: UnsafeRawPointer) {
        guard let kind = Kind(rawValue: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) else { return nil }
        self.length = p.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
        self.kind = kind
        self.sender = p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        self.flags = p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        self.sequence = p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        self.poolPosition = p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }

    func store(at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: length, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: sender, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: flags, toByteOffset: 12, as: UInt32.self)
        p.storeBytes(of: sequence, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: poolPosition, toByteOffset: 24, as: UInt64.self)
    }
}

/// A single-producer single-consumer ring of fixed-size message slots in shared memory.
///
/// Every node has two: an outbox (the node produces, the host consumes) and an inbox (the host
/// produces, the node consumes). Cursors are free-running 64-bit counters on their own cache lines.
/// Wake-ups follow one rule in both directions: a producer that makes an empty ring non-empty
/// signals the consumer; a consumer that frees space while the producer has flagged itself waiting
/// signals the producer. Stores and loads of the cursors are sequentially consistent, which is what
/// makes "store mine, then read theirs" race-free on both sides.
///
/// The peer's cursor is never trusted: `validatedOccupancy` reports a corrupt ring instead of
/// indexing with it.
struct MessageRing {
    static let headerSize = 256
    static let writeOffset = 0
    static let readOffset = 64
    static let producerWaitingOffset = 128
    static let dropsOffset = 192

    let base: UnsafeMutableRawPointer
    let capacity: Int
    let slotStride: Int

    static func slotStride(inlineCapacity: Int) -> Int {
        (SlotHeader.size + inlineCapacity + 63) & ~63
    }
    static func byteSize(capacity: Int, inlineCapacity: Int) -> Int {
        headerSize + capacity * slotStride(inlineCapacity: inlineCapacity)
    }

    init(base: UnsafeMutableRawPointer, capacity: Int, inlineCapacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "ring capacity must be a power of two")
        self.base = base
        self.capacity = capacity
        self.slotStride = Self.slotStride(inlineCapacity: inlineCapacity)
    }

    private func atomic(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }
    var write: UnsafeAtomic<UInt64> { atomic(Self.writeOffset) }
    var read: UnsafeAtomic<UInt64> { atomic(Self.readOffset) }
    var producerWaiting: UnsafeAtomic<UInt64> { atomic(Self.producerWaitingOffset) }
    /// Messages the host dropped for this ring's consumer (inbox only), for in-band visibility.
    var drops: UnsafeAtomic<UInt64> { atomic(Self.dropsOffset) }

    func slot(_ index: UInt64) -> UnsafeMutableRawPointer {
        base + Self.headerSize + Int(index & UInt64(capacity - 1)) * slotStride
    }

    /// Occupancy W - R, or nil when the cursors are inconsistent (a peer scribbled on them).
    func validatedOccupancy(write w: UInt64, read r: UInt64) -> Int? {
        guard w >= r, w - r <= UInt64(capacity) else { return nil }
        return Int(w - r)
    }

    // MARK: producer side

    /// Index of the next free slot, or nil when full (or corrupt).
    func reserve(producerWrite w: UInt64) -> UInt64? {
        let r = read.load(ordering: .sequentiallyConsistent)
        guard let used = validatedOccupancy(write: w, read: r), used < capacity else { return nil }
        return w
    }

    /// Publishes slots up to `newWrite`. Returns true when the consumer may be asleep (the ring was
    /// empty before), so it must be signalled.
    func publish(from oldWrite: UInt64, to newWrite: UInt64) -> Bool {
        write.store(newWrite, ordering: .sequentiallyConsistent)
        let r = read.load(ordering: .sequentiallyConsistent)
        return r == oldWrite
    }

    // MARK: consumer side

    /// Number of slots ready to read, or nil when the producer's cursor is corrupt.
    func available(consumerRead r: UInt64) -> Int? {
        let w = write.load(ordering: .sequentiallyConsistent)
        return validatedOccupancy(write: w, read: r)
    }

    /// Frees slots up to `newRead`. Returns true when the producer flagged itself waiting for space,
    /// so it must be signalled (the flag is cleared here).
    func release(to newRead: UInt64) -> Bool {
        read.store(newRead, ordering: .sequentiallyConsistent)
        if producerWaiting.load(ordering: .sequentiallyConsistent) != 0 {
            return producerWaiting.exchange(0, ordering: .sequentiallyConsistent) != 0
        }
        return false
    }

    /// Producer: announce that we wait for space. Returns true if space appeared meanwhile.
    func armProducerWait(producerWrite w: UInt64) -> Bool {
        producerWaiting.store(1, ordering: .sequentiallyConsistent)
        let r = read.load(ordering: .sequentiallyConsistent)
        return w &- r < UInt64(capacity)
    }
}
