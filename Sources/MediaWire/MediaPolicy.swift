import IPNBus

/// The frame-aware media policy (`--policy media`), through the bus core's `Policy` protocol.
///
/// It knows streams and frames (MediaMessage) and serves each consumer so that what it gets is
/// always decodable:
/// - a publisher owns the streams it described; frames for a stream it does not own are rejected;
/// - a consumer joining mid-stream gets every stream description, then the publisher's cached GOP
///   (the policy asks the publisher to replay it to that one consumer), then live frames; one that
///   asked for `next keyframe` waits for the next live keyframe instead;
/// - when a video frame is dropped for a consumer (its queue was full), that consumer gets nothing
///   more of that stream until the next keyframe, never an undecodable frame; audio periods are
///   dropped whole and the next one arrives flagged (the bus's gap flag);
/// - a publisher that leaves or dies ends its streams: every consumer gets end-of-stream.
public final class MediaPolicy: Policy {
    public static let name = "media"
    /// Join parameter: skip the cached GOP, start at the next live keyframe.
    public static let joinAtNextKeyframe = "join=next-keyframe"

    /// How a consumer is served a stream. `replaying`: its replay has begun; the publisher sends it paced,
    /// with the live frames that come meanwhile at its tail, so live frames are held back from it until the
    /// replay's end, keyframes too (starting live there would drop the rest of the replay: a gap).
    enum Serving: Equatable { case live, awaitingKeyframe, awaitingReplay, replaying }

    struct Stream {
        var owner: UInt32
        var epoch: UInt32
        var isVideo: Bool
        var allKeyframes: Bool
        var description: [UInt8]
        /// pts of the last live keyframe (video): where a replayed GOP starts.
        var lastKeyframe: Int64?
    }

    struct Consumer {
        var receivesMedia = true
        var joinAtNextKeyframe = false
        var serving: [UInt32: Serving] = [:]
        var withheld: UInt64 = 0
        /// Live audio periods withheld per stream while waiting for its replay.
        var audioWaits: [UInt32: Int] = [:]
    }

    private var streams: [UInt32: Stream] = [:]
    private var consumers: [UInt32: Consumer] = [:]
    private var rejected: UInt64 = 0
    private var lastRejection = ""

    public init(options: BusOptions) {}

    public func nodeJoined(_ node: PolicyNode, actions: inout Recipients) -> Bool {
        var consumer = Consumer()
        consumer.joinAtNextKeyframe = node.parameters.split(separator: " ").contains { $0 == Self.joinAtNextKeyframe }
        // Audio is replayed from where the replayed video starts, so a late joiner starts in sync.
        let replayedVideo = consumer.joinAtNextKeyframe ? [] :
            streams.values.filter { $0.isVideo && !$0.allKeyframes }.compactMap(\.lastKeyframe)
        let audioSince = replayedVideo.min()
        for (id, s) in streams.sorted(by: { $0.key < $1.key }) {
            actions.inject(s.description, to: node.id)
            if s.isVideo && !s.allKeyframes && !consumer.joinAtNextKeyframe {
                consumer.serving[id] = .awaitingReplay
                actions.inject(MediaMessage.encodeReplayRequest(stream: id, target: node.id), to: s.owner)
            } else if s.isVideo {
                consumer.serving[id] = .awaitingKeyframe
            } else if let since = audioSince {
                consumer.serving[id] = .awaitingReplay
                actions.inject(MediaMessage.encodeReplayRequest(stream: id, target: node.id, since: since), to: s.owner)
            }
        }
        consumers[node.id] = consumer
        return true
    }

    public func nodeLeft(_ node: PolicyNode, actions: inout Recipients) {
        consumers[node.id] = nil
        for (id, s) in streams where s.owner == node.id {
            actions.injectToAllReceivers(MediaMessage.encodeEndOfStream(stream: id, epoch: s.epoch))
            streams[id] = nil
        }
    }

    private func reject(_ reason: String) -> RouteVerdict {
        rejected += 1
        lastRejection = reason
        return .reject(reason: reason)
    }

    public func route(_ message: PolicyMessage, into recipients: inout Recipients) -> RouteVerdict {
        let decoded: MediaMessage
        do { decoded = try MediaMessage.decode(message.bytes) } catch { return reject("\(error)") }
        let sender = message.sender
        switch decoded {
        case .description(let id, let epoch, let d):
            if let s = streams[id], s.owner != sender { return reject("stream \(id) belongs to node \(s.owner)") }
            let isNew = streams[id] == nil || streams[id]!.epoch != epoch
            streams[id] = Stream(owner: sender, epoch: epoch, isVideo: d.kind == .video, allKeyframes: d.allKeyframes,
                                 description: Array(message.bytes))
            for r in recipients.receivers where r != sender && (consumers[r]?.receivesMedia ?? true) {
                if isNew && d.kind == .video { consumers[r]?.serving[id] = .awaitingKeyframe }
                recipients.add(r)
            }
        case .endOfStream(let id, _):
            guard let s = streams[id], s.owner == sender else { return reject("end of stream \(id) from a node that does not own it") }
            streams[id] = nil
            for r in recipients.receivers where r != sender && (consumers[r]?.receivesMedia ?? true) { recipients.add(r) }
        case .replayRequest:
            return reject("replay requests come from the bus, not from nodes")
        case .consumerOptions(let receives, let nextKeyframe):
            consumers[sender, default: Consumer()].receivesMedia = receives
            consumers[sender]!.joinAtNextKeyframe = nextKeyframe
            if nextKeyframe {
                for (id, state) in consumers[sender]!.serving where state == .awaitingReplay || state == .replaying {
                    consumers[sender]!.serving[id] = .awaitingKeyframe
                }
            }
        case .frame(let h, _):
            guard let s = streams[h.stream] else { return reject("frame for undescribed stream \(h.stream)") }
            guard s.owner == sender else { return reject("frame for stream \(h.stream), which node \(sender) does not own") }
            if s.isVideo && h.flags.contains(.keyframe) && !h.flags.contains(.replay) { streams[h.stream]!.lastKeyframe = h.pts }
            routeFrame(h, stream: s, from: sender, empty: message.bytes.count <= MediaMessage.frameHeaderSize, into: &recipients)
        }
        return .deliver
    }

    private func routeFrame(_ h: FrameHeader, stream s: Stream, from sender: UInt32, empty: Bool, into recipients: inout Recipients) {
        let replayed = h.flags.contains(.replay)
        for r in recipients.receivers where r != sender {
            guard var c = consumers[r], c.receivesMedia else { continue }
            if replayed && h.target != r { continue }
            if replayed && empty {
                // The publisher had nothing to replay: video waits for a live keyframe, audio goes live.
                if c.serving[h.stream] == .awaitingReplay { c.serving[h.stream] = s.isVideo ? .awaitingKeyframe : .live }
                consumers[r] = c
                continue
            }
            guard s.isVideo else {
                switch c.serving[h.stream] ?? .live {
                case .awaitingReplay, .replaying:
                    if replayed {
                        recipients.add(r)
                        c.serving[h.stream] = h.flags.contains(.replayEnd) ? .live : .replaying
                        c.audioWaits[h.stream] = nil
                    } else {
                        c.withheld += 1
                        // A replay that never began (its request was lost): after ~50 periods, go live.
                        if c.serving[h.stream] == .awaitingReplay {
                            c.audioWaits[h.stream, default: 0] += 1
                            if c.audioWaits[h.stream]! > 50 { c.serving[h.stream] = .live; c.audioWaits[h.stream] = nil }
                        }
                    }
                    consumers[r] = c
                case .live, .awaitingKeyframe:
                    if !replayed { recipients.add(r) }
                }
                continue
            }
            switch c.serving[h.stream] ?? .live {
            case .live:
                if replayed { continue }  // a replay for a consumer that is already live: never twice
                recipients.add(r)
            case .awaitingKeyframe:
                if !replayed && h.flags.contains(.keyframe) {
                    c.serving[h.stream] = .live
                    recipients.add(r)
                } else { c.withheld += 1 }
            case .awaitingReplay:
                if replayed {
                    recipients.add(r)
                    c.serving[h.stream] = h.flags.contains(.replayEnd) ? .live : .replaying
                } else if h.flags.contains(.keyframe) {
                    c.serving[h.stream] = .live  // no replay began before a live keyframe: start here
                    recipients.add(r)
                } else { c.withheld += 1 }
            case .replaying:
                if replayed {
                    recipients.add(r)
                    if h.flags.contains(.replayEnd) { c.serving[h.stream] = .live }
                } else { c.withheld += 1 }  // it reaches this consumer at the replay's tail
            }
            consumers[r] = c
        }
    }

    public func messageDropped(_ message: PolicyMessage, for node: UInt32) {
        guard case .frame(let h, _)? = try? MediaMessage.decode(message.bytes), streams[h.stream]?.isVideo == true else { return }
        // Whatever was dropped, the next frame this consumer can decode is a keyframe.
        consumers[node]?.serving[h.stream] = .awaitingKeyframe
    }

    public func messageLost(from sender: UInt32, for node: UInt32) {
        // Which stream it was is unknown: every video stream of that sender restarts at a keyframe.
        guard consumers[node] != nil else { return }
        for (id, s) in streams where s.owner == sender && s.isVideo && consumers[node]!.serving[id] != .awaitingReplay {
            consumers[node]!.serving[id] = .awaitingKeyframe
        }
    }

    public func tick(now: UInt64) {}

    public var statistics: [String: String] {
        var s: [String: String] = ["streams": "\(streams.count)", "rejectedMessages": "\(rejected)"]
        if !lastRejection.isEmpty { s["lastRejection"] = lastRejection }
        for (id, st) in streams { s["stream.\(id)"] = "owner node \(st.owner), epoch \(st.epoch), \(st.isVideo ? "video" : "audio")" }
        for (node, c) in consumers where c.withheld > 0 { s["node.\(node).withheldFrames"] = "\(c.withheld)" }
        return s
    }
}
