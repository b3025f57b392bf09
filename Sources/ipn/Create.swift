import ArgumentParser
import Foundation
import Glibc
import IPNBus
import MediaWire

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a bus at PATH (IPN bind).",
        discussion: """
            Without --persistent the bus lives as long as this command runs (it holds the bus, like a \
            switch daemon; Ctrl-C ends it once the other nodes have left). With --persistent the command \
            returns at once and the bus stays until `ipn rm PATH`.

            Policies: hub (every message to every other node), switch (Ethernet frames, MAC learning), \
            media (timestamped frames: late joiners start at a keyframe, slow consumers drop to the next one),             mixer (audio: a star around one jackd-ipn server, which mixes every client's periods).
            """)

    @Argument(help: "Path of the bus file to create.") var path: String
    @Option(help: "Delivery policy: hub, switch, media or mixer.") var policy = "hub"
    @Option(help: "Permission bits of the bus file, octal (r receive, w send, x manage). Default 0777 & ~umask.")
    var mode: String?
    @Flag(help: "Keep the bus up with no node on it, until `ipn rm`.") var persistent = false
    @Option(help: "Largest message in bytes (default 1514; up to 256 MiB).") var mtu = 1514
    @Option(help: "Per-node queue depth in messages (rounded up to a power of two).") var queue = 64
    @Option(name: .customLong("max-nodes"), help: "Largest number of nodes.") var maxNodes = 64
    @Flag(help: "Hold senders back instead of dropping for slow receivers.") var lossless = false
    @Option(help: "A description shown by `ipn stat`.") var description = ""
    @Option(name: .customLong("mac-age"), help: "Seconds a learned MAC address lives (switch policy).") var macAge = 30
    @Flag(name: .customLong("vnet-hdr"), help: "Frames carry a virtio-net header, so TAP and grabbed interfaces pass whole 64 KiB GSO segments (switch policy; interface nodes and cables only; raises the MTU to 65560).")
    var vnetHeader = false

    func run() throws {
        PolicyRegistry.register(MediaPolicy.self)
        PolicyRegistry.register(MixerPolicy.self)
        var options = BusOptions()
        options.policy = policy
        options.mtu = vnetHeader ? max(mtu, BusOptions.vnetMinimumMTU) : mtu
        options.vnetHeader = vnetHeader
        options.queueLength = queue
        options.maxNodes = maxNodes
        options.lossless = lossless
        options.persistent = persistent
        options.description = description
        options.macAgeSeconds = macAge
        if let mode { options.mode = try parseMode(mode) }
        let socket = IPNSocket(policy: policy)
        socket.options = options
        do {
            try socket.bind(path)
            let status = try socket.status()
            if status.options != options && status.nodes.count > 1 {
                print("joined existing bus \(path) (policy \(status.policy))")
            }
            print("bus \(path): policy \(status.policy), mtu \(status.options.mtu), mode \(String(status.options.mode ?? 0, radix: 8)), host pid \(status.hostPID)\(persistent ? ", persistent" : "")")
        } catch {
            throw fail(error)
        }
        if persistent { return }
        print("holding the bus; press Ctrl-C to end it")
        fflush(nil)  // the line reaches a pipe now, not at exit
        waitForStopSignal()
        // Used after the wait, so an optimised build keeps the node (the bus's hold) until Ctrl-C: a node
        // released after its last use would leave the bus at once.
        socket.close()
    }
}

/// Blocks until SIGINT or SIGTERM (no handler race: the wait is on the eventfd the handler signals).
func waitForStopSignal() {
    installNetworkStopHandlers()
    while !StopSignal.requested { _ = try? StopSignal.wait(for: []) }
}
