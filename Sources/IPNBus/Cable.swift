import CIPNSys
import Glibc

/// A cable between two buses: one node on each, every frame one receives sent on the other. Two
/// switch buses joined by a cable learn each other's stations through it, like two switches.
public final class Cable {
    public let a: IPNSocket
    public let b: IPNSocket
    public private(set) var framesAtoB: UInt64 = 0
    public private(set) var framesBtoA: UInt64 = 0
    /// Frames the far bus refused (its MTU, or a full queue on a lossless bus).
    public private(set) var dropped: UInt64 = 0

    public init(_ pathA: String, _ pathB: String) throws(IPNError) {
        a = IPNSocket()
        b = IPNSocket()
        a.description = "cable to \(pathB)"
        b.description = "cable to \(pathA)"
        try a.connect(pathA)
        do { try b.connect(pathB) } catch { a.close(); throw error }
        if a.busOptions?.vnetHeader != b.busOptions?.vnetHeader {
            a.close(); b.close()
            throw .refused(path: pathB, reason: "one bus carries virtio-net headers (--vnet-hdr) and the other does not")
        }
    }

    deinit { a.close(); b.close() }

    /// Forwards both ways until `shouldStop` (checked at least every 200 ms) or either bus goes away.
    public func run(shouldStop: () -> Bool) throws(IPNError) {
        var fds = [pollfd(fd: a.pollDescriptor, events: Int16(POLLIN), revents: 0), pollfd(fd: b.pollDescriptor, events: Int16(POLLIN), revents: 0)]
        while !shouldStop() {
            fds[0].revents = 0; fds[1].revents = 0
            if poll(&fds, 2, 200) < 0 && errno != EINTR { throw .system(call: "poll", errno: Sys.lastErrno) }
            framesAtoB += try pass(from: a, to: b)
            framesBtoA += try pass(from: b, to: a)
        }
    }

    private func pass(from: IPNSocket, to: IPNSocket) throws(IPNError) -> UInt64 {
        var moved: UInt64 = 0
        var refused: UInt64 = 0
        while let _ = try from.withNextMessage(nonBlocking: true, { view in
            do {
                try to.send(view.bytes, nonBlocking: true)
                moved += 1
            } catch {
                refused += 1
            }
        }) {}
        dropped += refused
        return moved
    }
}
