import Foundation
import IPNBus

/// The `mixer` policy: a star around one server (jackd-ipn). A node that joins with the parameter
/// `mixer=server` is the server; what it sends goes to every other node (the mix), what anyone else
/// sends goes to the server alone (its audio for a period). Without a server, clients' audio is dropped
/// and counted. The server's reports are kept here and shown by `ipn stat`.
public final class MixerPolicy: Policy {
    public static let name = "mixer"
    public static let serverParameter = "mixer=server"
    /// A JACK client (our libjack): it gets requests' answers, graph events and its own process calls, not mixes.
    public static let jackParameter = "mixer=jack"

    private var server: UInt32?
    private var clients: Set<UInt32> = []
    private var jackClients: Set<UInt32> = []
    private var report: [String: String] = [:]
    private var droppedWithoutServer: UInt64 = 0
    private var rejected: UInt64 = 0

    public init(options: BusOptions) {}

    public func nodeJoined(_ node: PolicyNode, actions: inout Recipients) -> Bool {
        if node.parameters.split(separator: " ").contains(where: { $0 == Self.serverParameter }) {
            guard server == nil else { return false }  // one clock per bus
            server = node.id
            report = [:]
        } else {
            clients.insert(node.id)
            if node.parameters.split(separator: " ").contains(where: { $0 == Self.jackParameter }) { jackClients.insert(node.id) }
        }
        return true
    }

    public func nodeLeft(_ node: PolicyNode, actions: inout Recipients) {
        if node.id == server {
            server = nil
            report = ["server": "gone"]
            for id in jackClients {
                actions.inject(AudioBusMessage.encode(.init(kind: .serverGone, index: 0, rate: 0, channels: 0, frames: 0, target: id)), to: id)
            }
        } else {
            clients.remove(node.id)
            jackClients.remove(node.id)
            if let server {
                actions.inject(AudioBusMessage.encode(.init(kind: .clientLeft, index: UInt64(node.id), rate: 0, channels: 0, frames: 0)), to: server)
            }
        }
    }

    public func route(_ message: PolicyMessage, into recipients: inout Recipients) -> RouteVerdict {
        let header: AudioBusMessage.Header
        do { header = try AudioBusMessage.decodeHeader(message.bytes) } catch {
            rejected += 1
            return .reject(reason: "\(error)")
        }
        if message.sender == server {
            switch header.kind {
            case .mix:
                // Mixes are for ALSA-side clients; JACK clients get their own process calls.
                for id in recipients.receivers where id != message.sender && !jackClients.contains(id) { recipients.add(id) }
            case .jackReply, .process:
                guard jackClients.contains(header.target) else { return .deliver }  // it left meanwhile
                recipients.add(header.target)
            case .jackEvent:
                for id in recipients.receivers where jackClients.contains(id) { recipients.add(id) }
            case .report:
                if let decoded = try? JSONDecoder().decode([String: String].self, from: Data(message.bytes[AudioBusMessage.headerSize...])) {
                    report = decoded
                }
            case .period, .clientLeft, .jackRequest, .processed, .serverGone:
                rejected += 1
                return .reject(reason: "the server sends mixes, reports and JACK answers only")
            }
            return .deliver
        }
        let jack = jackClients.contains(message.sender)
        guard header.kind == .period || (jack && (header.kind == .jackRequest || header.kind == .processed)) else {
            rejected += 1
            return .reject(reason: jack ? "JACK clients send requests and processed periods only" : "clients send periods only")
        }
        guard let server else {
            droppedWithoutServer += 1
            return .deliver
        }
        recipients.add(server)
        return .deliver
    }

    public func tick(now: UInt64) {}

    public var statistics: [String: String] {
        var s = report
        s["server"] = server.map { "node \($0)" } ?? (report["server"] ?? "none")
        s["nodes"] = "\(clients.count)"
        if droppedWithoutServer > 0 { s["dropped without server"] = "\(droppedWithoutServer)" }
        if rejected > 0 { s["rejected"] = "\(rejected)" }
        return s
    }
}
