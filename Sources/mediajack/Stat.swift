import ArgumentParser
import IPNBus

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Streams, consumers, drops of a media bus.")
    @Argument(help: "Path of the bus.") var bus: String

    func run() throws {
        do {
            let s = try Bus.status(bus)
            print("bus \(s.path): policy \(s.policy), \(s.readers) readers, \(s.writers) writers")
            for (k, v) in s.policyStatistics.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
            for n in s.nodes {
                print("  node \(n.id) pid \(n.pid) \(n.description): lag \(n.queued) of \(n.queueLength) messages queued, delivered \(n.deliveredMessages), dropped \(n.dropped), rejected \(n.rejected)")
            }
        } catch {
            throw fail(error)
        }
    }
}
