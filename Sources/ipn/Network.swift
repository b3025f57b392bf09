import ArgumentParser
import Foundation
import Glibc
import IPNBus

/// SIGINT/SIGTERM stop the long-running network commands cleanly: they print their counters.
func installNetworkStopHandlers() {
    StopSignal.install()
    signal(SIGPIPE, SIG_IGN)
}

/// `ipn tap` and `ipn grab`: attach, say so, move frames until Ctrl-C, print the counters.
func attach(bus: String, interface: String, kind: InterfaceNode.Kind) throws {
    installNetworkStopHandlers()
    do {
        let node = try InterfaceNode(bus: bus, interface: interface, kind: kind)
        let say = { (line: String) in FileHandle.standardError.write(Data("ipn: \(line)\n".utf8)) }
        say("\(node.interface) \(kind == .grab ? "grabbed onto" : "attached to") \(bus)")
        if kind == .grab && node.socket.busOptions?.vnetHeader != true {
            say("note: on a bus without --vnet-hdr, TCP from a peer with offloads (a veth in a namespace) needs them off there: "
                + "ethtool -K PEER tso off gso off tx off")
        }
        try node.run { StopSignal.requested }
        print("\(node.interface): \(node.framesToBus) frames to the bus, \(node.framesFromBus) from it, \(node.dropped) dropped")
    } catch {
        throw fail(error)
    }
}

struct Tap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a TAP interface and attach it to a bus as a node (IPN_CONN_NETDEV).",
        discussion: """
            Frames the kernel sends on the interface go onto the bus through its policy; frames the policy \
            delivers to this node go to the kernel. The interface goes away when this command ends, unless \
            --persistent. Needs CAP_NET_ADMIN and the bus's manage right (x); a missing bus is created with \
            the switch policy. Runs until Ctrl-C.

            The bus is reachable from this network namespace; move the interface elsewhere with \
            `ip link set IFNAME netns NS` and it keeps working.

            Examples:
              ipn create /tmp/lan --policy switch --persistent
              ipn tap /tmp/lan tap0 &
              ip addr add 10.0.0.1/24 dev tap0
            """)
    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "Interface name (15 characters at most; empty lets the kernel choose).") var interface: String
    @Flag(help: "Keep the interface when the attachment ends.") var persistent = false

    func validate() throws {
        guard interface.utf8.count <= 15 else { throw ValidationError("interface names have at most 15 characters") }
    }

    func run() throws { try attach(bus: bus, interface: interface, kind: .tap(persistent: persistent)) }
}

struct Grab: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach an existing interface to a bus like a bridge port (IPN_JOIN_NETDEV).",
        discussion: """
            What the interface receives goes onto the bus; what the bus delivers to this node is transmitted \
            on it (never echoed back). Needs CAP_NET_RAW and the bus's manage right (x). Runs until Ctrl-C.

            Example (a namespace reaches the bus through a veth pair):
              ip link add vbus type veth peer name vns
              ip link set vns netns blue; ip link set vbus up
              ipn grab /tmp/lan vbus
            """)
    @Argument(help: "Path of the bus.") var bus: String
    @Argument(help: "An existing interface (veth end, NIC).") var interface: String

    func run() throws { try attach(bus: bus, interface: interface, kind: .grab) }
}

struct CableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cable",
        abstract: "Join two buses with a cable: one node on each, forwarding both ways.",
        discussion: """
            Two switch buses joined by a cable learn each other's stations through it. Ending the command \
            (Ctrl-C) unplugs the cable. Between machines, use the VDE plugin (README: VDE and qemu).

            Example:
              ipn cable /tmp/lan-a /tmp/lan-b
            """)
    @Argument(help: "Path of one bus.") var busA: String
    @Argument(help: "Path of the other bus.") var busB: String

    func run() throws {
        installNetworkStopHandlers()
        do {
            let cable = try Cable(busA, busB)
            FileHandle.standardError.write(Data("ipn: cable between \(busA) and \(busB)\n".utf8))
            try cable.run { StopSignal.requested }
            print("cable: \(cable.framesAtoB) frames \(busA) → \(busB), \(cable.framesBtoA) back, \(cable.dropped) dropped")
        } catch {
            throw fail(error)
        }
    }
}
