import Foundation

/// Moves a value that is not `Sendable` (a socket, a consumer, a decoder) to exactly one other
/// thread. `sending` makes the compiler check that the giver keeps no reference to it; the receiver
/// takes it out once. The value is never shared: it changes owner.
public final class Handoff<Value>: Sendable {
    private let slot: Locked<Value?>

    public init(_ value: consuming sending Value) { slot = Locked(Optional(value)) }

    /// The value, the first time; nil after.
    public func take() -> sending Value? { slot.withLock { $0.take() } }
}

extension Thread {
    /// Starts a thread that owns `value` from now on (see `Handoff`).
    public static func detachNewThread<Value>(owning value: consuming sending Value, _ body: @escaping @Sendable (consuming Value) -> Void) {
        let handoff = Handoff(value)
        Thread.detachNewThread { body(handoff.take()!) }
    }
}
