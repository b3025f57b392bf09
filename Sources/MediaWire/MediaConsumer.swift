import IPNBus

/// What a consumer sees on a media bus.
public enum MediaEvent: Sendable, Equatable {
    case streamAdded(stream: UInt32, epoch: UInt32, StreamDescription)
    /// A frame; `discontinuity` when anything of this consumer's input was lost before it.
    case frame(FrameHeader, payload: [UInt8], discontinuity: Bool)
    case endOfStream(stream: UInt32)
}

/// Joins a media bus and turns its messages into stream events. Counts what was lost.
///
/// Not `Sendable`: one thread owns a consumer (hand it to another with `sending`, e.g. to a `ConsumerBuffer`).
public final class MediaConsumer {
    public let socket: IPNSocket
    public private(set) var streams: [UInt32: StreamDescription] = [:]
    /// Messages lost for this consumer (full queue), as the bus flagged them.
    public private(set) var gaps = 0
    public private(set) var malformed = 0

    /// `joinAtNextKeyframe`: skip the cached GOP and wait for the next live keyframe.
    public init(bus path: String, joinAtNextKeyframe: Bool = false, description: String = "consumer") throws(IPNError) {
        socket = IPNSocket()
        socket.description = description
        // Said in the join itself, so no GOP replay is ever requested for this consumer.
        if joinAtNextKeyframe { socket.policyParameters = MediaPolicy.joinAtNextKeyframe }
        try socket.connect(path)
        guard socket.busOptions?.policy == MediaPolicy.name else {
            throw .policyMismatch(path: path, bus: socket.busOptions?.policy ?? "?", requested: MediaPolicy.name)
        }
    }

    /// The next event; nil after `timeout` seconds without one.
    public func next(timeout: Double? = nil) throws(IPNError) -> MediaEvent? {
        while true {
            guard let m = try socket.receive(timeout: timeout) else { return nil }
            guard case .data = m.kind else { continue }
            if m.afterGap { gaps += 1 }
            let decoded: MediaMessage
            do { decoded = try MediaMessage.decode(m.bytes) } catch { malformed += 1; continue }
            switch decoded {
            case .description(let id, let epoch, let d):
                streams[id] = d
                return .streamAdded(stream: id, epoch: epoch, d)
            case .frame(let h, let offset):
                if h.flags.contains(.replay) && m.bytes.count <= offset { continue }  // "nothing to replay" marker
                return .frame(h, payload: Array(m.bytes[offset...]), discontinuity: m.afterGap || h.flags.contains(.discontinuity))
            case .endOfStream(let id, _):
                return .endOfStream(stream: id)
            case .replayRequest, .consumerOptions:
                continue
            }
        }
    }
}
