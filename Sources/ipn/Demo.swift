import ArgumentParser
import Foundation
import IPNBus

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a bus at work, with nothing to set up.",
        discussion: """
            Creates a hub bus in a temporary directory, joins three receivers, sends small and large (4 MiB, \
            zero-copy) messages from one sender, then prints what each receiver got and the bus status.
            """)

    @Option(help: "Messages to send.") var count = 2000

    func run() throws {
        // Ctrl-C or SIGTERM ends the sending early; the receivers' counts and the bus status still print.
        StopSignal.install()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ipn-demo-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/bus"
        do {
            let manager = IPNSocket(policy: "hub")
            manager.options.mtu = 8 << 20
            manager.options.queueLength = 256
            manager.options.description = "ipn demo"
            try manager.bind(path)
            print("created hub bus \(path) (mtu 8 MiB, queue 256)")

            let receivers = (0..<3).map { i -> IPNSocket in
                let r = IPNSocket()
                r.description = "demo receiver \(i)"
                return r
            }
            for r in receivers { try r.shutdown(.write); try r.connect(path) }
            let sender = IPNSocket()
            sender.description = "demo sender"
            try sender.shutdown(.read)
            try sender.connect(path)

            let results = ResultsBox(count: receivers.count)
            let group = DispatchGroup()
            for (i, r) in receivers.enumerated() {
                group.enter()
                Thread.detachNewThread {
                    var messages = 0, bytes = 0, large = 0
                    while let m = try? r.receive(timeout: 5), m.bytes != Array("end".utf8) {
                        messages += 1; bytes += m.bytes.count
                        if m.bytes.count > 2048 { large += 1 }
                    }
                    results.set(i, "receiver \(i): \(messages) messages, \(bytes) bytes, \(large) large (read in place from the sender's pool), \(r.droppedByHost) dropped")
                    group.leave()
                }
            }
            let start = Date()
            var sent = 0
            for i in 0..<count where !StopSignal.requested {
                sent += 1
                let size = i % 100 == 99 ? 4 << 20 : 64 + i % 1400
                try sender.send(length: size) { b in b.initializeMemory(as: UInt8.self, repeating: UInt8(i & 0xff)) }
            }
            try sender.send(Array("end".utf8))
            group.wait()
            print(String(format: "sent %d messages in %.3f s", sent + 1, Date().timeIntervalSince(start)))
            results.lines.forEach { print($0) }
            let s = try manager.status()
            print("bus status: \(s.nodes.count) nodes, \(s.readers) readers, \(s.writers) writers, host pid \(s.hostPID)")
            for n in s.nodes {
                print("  node \(n.id) \(n.description): rights \(n.rights.letters), sent \(n.sentMessages), delivered \(n.deliveredMessages), dropped \(n.dropped)")
            }
        } catch {
            throw fail(error)
        }
    }
}

final class ResultsBox: Sendable {
    private let storage: Locked<[String]>
    init(count: Int) { storage = Locked(Array(repeating: "", count: count)) }
    func set(_ i: Int, _ s: String) { storage.withLock { $0[i] = s } }
    var lines: [String] { storage.withLock { $0 } }
}
