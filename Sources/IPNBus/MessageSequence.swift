import Atomics
import Foundation

extension IPNSocket {
    /// The messages of this node as an `async` sequence. A dedicated thread receives (the data path
    /// stays synchronous) and ends when the consumer stops iterating or the bus goes away.
    /// Do not use the socket elsewhere while iterating.
    public var messages: AsyncThrowingStream<Message, any Error> {
        let (stream, continuation) = AsyncThrowingStream<Message, any Error>.makeStream(bufferingPolicy: .bufferingOldest(1024))
        let stopped = ManagedAtomic(false)
        continuation.onTermination = { _ in stopped.store(true, ordering: .relaxed) }
        let socket = self
        Thread.detachNewThread {
            while !stopped.load(ordering: .relaxed) {
                do {
                    if let m = try socket.receive(timeout: 0.1) { continuation.yield(m) }
                } catch {
                    continuation.finish(throwing: error)
                    return
                }
            }
            continuation.finish()
        }
        return stream
    }
}
