import CIPNSys
import IPNBus

/// A client of jackd-ipn on one `mixer` bus: learns the server's format from its first mix, receives
/// mixes in place (zero-copy) and sends its own audio for a period.
///
/// Not `Sendable`: one thread owns a client.
public final class AudioBusClient {
    public let socket: IPNSocket
    public let path: String
    public private(set) var rate = 0
    public private(set) var channels = 0
    /// Frames in one server period.
    public private(set) var period = 0
    /// The last mix index received.
    public private(set) var lastIndex: UInt64 = 0
    /// Mixes lost on the way (this client was too slow to take them).
    public private(set) var gaps = 0
    /// Messages that were not a well-formed mix (only the server's mixes reach a client): skipped, counted.
    public private(set) var malformed = 0

    public enum ClientError: Error, CustomStringConvertible {
        case noServer(path: String, seconds: Double)
        public var description: String {
            switch self {
            case .noServer(let p, let s): return "no jackd-ipn is serving \(p) (no mix within \(s) s; start `jackd-ipn --bus \(p)`)"
            }
        }
    }

    /// Joins `bus`; waits up to `timeout` seconds for the server's first mix.
    public init(bus path: String, description: String = "audio client", receive: Bool = true, timeout: Double = 2) throws {
        self.path = path
        socket = IPNSocket()
        socket.description = description
        try socket.connect(path)
        guard socket.busOptions?.policy == MixerPolicy.name else {
            throw IPNError.policyMismatch(path: path, bus: socket.busOptions?.policy ?? "?", requested: MixerPolicy.name)
        }
        let deadline = ipn_monotonic_ns() + UInt64(timeout * 1e9)
        while ipn_monotonic_ns() < deadline {
            let remaining = Double(deadline - min(deadline, ipn_monotonic_ns())) / 1e9
            if try nextMix(timeout: remaining, { _, _ in }) { return }
        }
        throw ClientError.noServer(path: path, seconds: timeout)
    }

    /// Waits for the next mix and reads it in place: (its period index, its interleaved samples).
    /// false on timeout. Throws `IPNError.busGone` when the bus (and so the server) is gone.
    public func nextMix(nonBlocking: Bool = false, timeout: Double? = nil,
                        _ body: (UInt64, UnsafeBufferPointer<Float>) -> Void) throws(IPNError) -> Bool {
        while true {
            let got: Bool? = try socket.withNextMessage(nonBlocking: nonBlocking, timeout: timeout) { view in
                if view.afterGap { gaps += 1 }
                guard let h = try? AudioBusMessage.decodeHeader(view.bytes), h.kind == .mix else { malformed += 1; return false }
                rate = Int(h.rate); channels = Int(h.channels); period = Int(h.frames)
                lastIndex = h.index
                let samples = UnsafeRawBufferPointer(rebasing: view.bytes[AudioBusMessage.headerSize..<h.size])
                samples.withMemoryRebound(to: Float.self) { body(h.index, $0) }
                return true
            }
            guard let got else { return false }
            if got { return true }
        }
    }

    /// Sends this client's audio for period `index`: `fill` writes frames × channels interleaved floats.
    public func send(index: UInt64, frames: Int, nonBlocking: Bool = true, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) throws(IPNError) {
        let h = AudioBusMessage.Header(kind: .period, index: index, rate: UInt32(rate), channels: UInt16(channels), frames: UInt32(frames))
        try socket.send(length: h.size, nonBlocking: nonBlocking) { out in
            AudioBusMessage.writeHeader(h, into: out)
            let body = UnsafeMutableRawBufferPointer(rebasing: out[AudioBusMessage.headerSize...])
            body.withMemoryRebound(to: Float.self) { fill($0) }
        }
    }
}
