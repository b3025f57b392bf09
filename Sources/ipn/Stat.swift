import ArgumentParser
import Foundation
import IPNBus

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a bus: policy, options and every node with its counters.")

    @Argument(help: "Path of the bus.") var path: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let s: BusStatus
        do { s = try Bus.status(path) } catch { throw fail(error) }
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(s), as: UTF8.self))
            return
        }
        let o = s.options
        print("bus \(s.path)")
        print("  policy \(s.policy), mtu \(o.mtu), queue \(o.effectiveQueueLength), max nodes \(o.maxNodes), mode \(String(o.mode ?? 0, radix: 8))"
              + "\(o.lossless ? ", lossless" : ", lossy")\(o.persistent ? ", persistent" : "")")
        if !o.description.isEmpty { print("  description: \(o.description)") }
        print("  host pid \(s.hostPID), up \(String(format: "%.1f", s.uptimeSeconds)) s, \(s.readers) readers, \(s.writers) writers")
        for (k, v) in s.policyStatistics.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
        print("  connections refused: \(s.refusedConnections), accept paused (out of descriptors): \(s.acceptPauses)")
        for e in s.evictions ?? [] { print("  thrown off: \(e)") }
        print("  node  pid      uid    rights role          queue     dropped  rejected  sent(msg/bytes)        delivered(msg/bytes)  description")
        for n in s.nodes {
            let dir = (n.canReceive ? "r" : "-") + (n.canSend ? "w" : "-")
            print(String(format: "  %-5u %-8d %-6u %@/%@ %-13@ %4d/%-4d %9llu %9llu  %10llu/%-11llu %10llu/%-11llu %@",
                         n.id, n.pid, n.uid, n.rights.letters, dir, n.role, n.queued, n.queueLength, n.dropped, n.rejected,
                         n.sentMessages, n.sentBytes, n.deliveredMessages, n.deliveredBytes, n.description))
        }
        for n in s.nodes where n.overwritten > 0 {
            print("  node \(n.id): \(n.overwritten) messages overwritten in its pool before the host could route them (lost for everyone)")
        }
    }
}
