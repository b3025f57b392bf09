import Atomics

/// A sender's pool of shared memory for large messages: the zero-copy data path.
///
/// The sender writes a payload once into its pool and sends only (position, length); every receiver
/// reads it through its own read-only mapping. Positions are free-running byte counters; a message
/// never wraps (the allocator skips to the next lap instead). Before overwriting, the sender raises
/// `reclaimed` past the bytes it is about to reuse, so a reader checks `position >= reclaimed` after
/// reading: a lapped reader sees that and counts a drop instead of returning torn bytes (a seqlock
/// over the whole pool). On a lossless bus the host publishes `released` (nothing below it is still
/// queued for anyone) and the sender waits for it instead of overwriting.
struct SenderPool {
    static let headerSize = 4096
    static let reclaimedOffset = 0
    static let releasedOffset = 64
    static let senderWaitingOffset = 128

    let base: UnsafeMutableRawPointer
    /// Bytes available for payloads.
    let capacity: Int

    init(base: UnsafeMutableRawPointer, totalSize: Int) {
        self.base = base
        self.capacity = totalSize - Self.headerSize
    }

    static func totalSize(capacity: Int) -> Int { headerSize + ((capacity + 4095) & ~4095) }

    private func atomic(_ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }
    var reclaimed: UnsafeAtomic<UInt64> { atomic(Self.reclaimedOffset) }
    var released: UnsafeAtomic<UInt64> { atomic(Self.releasedOffset) }
    var senderWaiting: UnsafeAtomic<UInt64> { atomic(Self.senderWaitingOffset) }

    /// Where a message of `length` bytes goes after `next`: the same lap if it fits, else the next.
    func placement(next: UInt64, length: Int) -> UInt64 {
        let cap = UInt64(capacity)
        let offset = next % cap
        return offset + UInt64(length) <= cap ? next : (next - offset + cap)
    }

    /// Bytes of payload at `position`; the caller validated bounds with `isValid`.
    func bytes(at position: UInt64, length: Int) -> UnsafeMutableRawPointer {
        base + Self.headerSize + Int(position % UInt64(capacity))
    }

    /// A reference is well-formed when it lies within one lap of the pool.
    func isValid(position: UInt64, length: Int) -> Bool {
        guard length >= 0, length <= capacity, position <= UInt64.max - UInt64(length) else { return false }
        return position % UInt64(capacity) + UInt64(length) <= UInt64(capacity)
    }

    /// Reader: true while the bytes at `position` have not been reused by the sender.
    func isIntact(position: UInt64) -> Bool {
        // The payload loads before this call must not move after the check (weakly ordered CPUs).
        atomicMemoryFence(ordering: .acquiring)
        return position >= reclaimed.load(ordering: .sequentiallyConsistent)
    }

    /// Writer: announce that bytes below `position` are about to be overwritten, before writing them.
    func reclaim(upTo position: UInt64) {
        guard position > reclaimed.load(ordering: .relaxed) else { return }
        reclaimed.store(position, ordering: .sequentiallyConsistent)
        // The payload stores that follow must not move before the announcement.
        atomicMemoryFence(ordering: .releasing)
    }
}
