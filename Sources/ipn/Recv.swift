import ArgumentParser
import Foundation
import IPNBus

struct Recv: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive messages from a bus and print them.",
        discussion: """
            Each message prints as one line: text as is, or hex with --hex. --summary prints one JSON line \
            at the end with counts, sequence gaps per sender and drops, for scripts and tests.

            Ctrl-C or SIGTERM ends it cleanly: the messages the bus had already delivered to it are printed, \
            then the summary. Each line goes out as it is printed, also into a pipe or a file.

            Sequence numbers are what each sender wrote (the bus copies them unchecked), so they are compared \
            the way serial numbers are (RFC 1982): a number up to 2^63 - 1 ahead of the sender's last one follows \
            it, with the numbers between counted as gaps; any other (equal, behind, or 2^63 and more ahead) \
            counts as out of order. The gap count stops at 2^64 - 1.
            """)

    @Argument(help: "Path of the bus.") var path: String
    @Option(help: "Stop after this many messages.") var count: Int?
    @Option(help: "Stop after this many seconds without a message.") var timeout: Double?
    @Flag(help: "Print messages as hex.") var hex = false
    @Flag(help: "Do not print the messages.") var quiet = false
    @Flag(help: "Print a JSON summary at the end.") var summary = false
    @Flag(help: "Also print membership changes (readers/writers).") var membership = false
    @Option(help: "Node description shown by `ipn stat`.") var description = "ipn recv"
    @Flag(help: "Join receive-only (not counted as a writer). By default the node joins with every right the bus file grants.")
    var receiveOnly = false

    struct Summary: Codable {
        var messages = 0
        var bytes = 0
        var senders = 0
        /// Messages missing between consecutive sequence numbers of a sender (saturating at 2^64 - 1).
        var sequenceGaps: UInt64 = 0
        var outOfOrder = 0
        var droppedByHost: UInt64 = 0
        var lapped: UInt64 = 0
        /// Slots discarded as malformed (`IPNSocket.malformed`).
        var malformed: UInt64 = 0
        var firstSequence: UInt64?
        var lastSequence: UInt64?
    }

    func run() throws {
        StopSignal.install()
        let socket = IPNSocket()
        socket.description = description
        socket.wantsMembership = membership
        var s = Summary()
        var last: [UInt32: UInt64] = [:]
        do {
            if receiveOnly { try socket.shutdown(.write) }
            try socket.connect(path)
            if summary { FileHandle.standardError.write(Data("ipn recv: joined \(path) as node \(socket.nodeID ?? 0)\n".utf8)) }
            var stopping = false
            while count.map({ s.messages < $0 }) ?? true {
                guard let m = try next(socket, stopping: &stopping) else { break }
                if case .membership(let r, let w) = m.kind {
                    print("membership: \(r) readers, \(w) writers")
                    continue
                }
                s.messages += 1
                s.bytes += m.bytes.count
                if let prev = last[m.sender] {
                    // The sender chose both numbers: wrapping distance, saturating sum (a trap here would let
                    // any sender kill every receiver on the bus).
                    let ahead = m.sequence &- prev
                    if ahead >= 1 && ahead < 1 << 63 {
                        let (sum, overflow) = s.sequenceGaps.addingReportingOverflow(ahead - 1)
                        s.sequenceGaps = overflow ? .max : sum
                    } else {
                        s.outOfOrder += 1
                    }
                }
                last[m.sender] = m.sequence
                if s.firstSequence == nil { s.firstSequence = m.sequence }
                s.lastSequence = m.sequence
                if !quiet {
                    if hex { print(m.bytes.map { String(format: "%02x", $0) }.joined()) } else { print(String(decoding: m.bytes, as: UTF8.self)) }
                }
            }
        } catch {
            if summary { emit(&s, socket, last.count) }
            throw fail(error)
        }
        if summary { emit(&s, socket, last.count) }
    }

    /// The next message or notice; nil once `--timeout` seconds passed without one, or after SIGINT/SIGTERM
    /// once the messages the bus had already delivered to this node are taken (they are printed, not lost).
    private func next(_ socket: IPNSocket, stopping: inout Bool) throws(IPNError) -> Message? {
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while true {
            if let m = try socket.receive(nonBlocking: true) { return m }
            if stopping { return nil }
            // The bus's descriptor and the stop signal at once: a signal ends the wait whenever it comes.
            switch try StopSignal.wait(for: [socket.pollDescriptor], timeout: deadline.map { max(0, $0.timeIntervalSinceNow) }) {
            case .readable: continue
            case .timedOut: return try socket.receive(nonBlocking: true)  // one that came as time ran out still counts
            case .stopped: stopping = true
            }
        }
    }

    private func emit(_ s: inout Summary, _ socket: IPNSocket, _ senders: Int) {
        s.senders = senders
        s.droppedByHost = socket.droppedByHost
        s.lapped = socket.lapped
        s.malformed = socket.malformed
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        print(String(decoding: (try? encoder.encode(s)) ?? Data(), as: UTF8.self))
    }
}
