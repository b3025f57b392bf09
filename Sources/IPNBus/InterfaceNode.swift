import CIPNSys
import Glibc
import SystemPackage

/// A bus node backed by a network interface, like IPN's IPN_CONN_NETDEV and IPN_JOIN_NETDEV: a TAP it
/// creates (frames the kernel sends on it go onto the bus; frames the policy delivers to this node go to
/// the kernel), or an existing interface it grabs like a bridge port (what the interface receives goes
/// onto the bus; what the bus delivers is transmitted on it; its own transmissions never come back).
///
/// Needs the bus's manage right (`x`), as IPN did, and CAP_NET_ADMIN (TAP) or CAP_NET_RAW (grab); the
/// error names whichever is missing. A bus that does not exist is created with the `switch` policy.
public final class InterfaceNode {
    public enum Kind: Sendable, Equatable {
        /// Create a TAP (kept after the node ends when persistent).
        case tap(persistent: Bool)
        /// Attach an existing interface (a veth end, a NIC).
        case grab
    }

    public let socket: IPNSocket
    public let kind: Kind
    /// The interface's name (for a TAP, the one the kernel gave when none was asked for).
    public let interface: String
    let fd: Int32

    /// Frames from the interface onto the bus, and from the bus onto the interface.
    public private(set) var framesToBus: UInt64 = 0
    public private(set) var framesFromBus: UInt64 = 0
    /// Frames lost: larger than the bus MTU, the bus refused them, or the interface would not take them.
    public private(set) var dropped: UInt64 = 0
    /// Reads that found the link down.
    public private(set) var linkDown: UInt64 = 0

    public init(bus path: String, interface name: String, kind: Kind, policy: String = "switch") throws(IPNError) {
        self.kind = kind
        let what = kind == .grab ? "grabbing \(name)" : "creating the TAP \(name.isEmpty ? "interface" : name)"
        // An existing bus says whether its frames carry virtio-net headers (no membership needed to ask).
        let vnet = (try? Bus.status(path).options.vnetHeader) ?? false
        // The device first: without the capability there is nothing to attach, and the bus is not touched.
        switch kind {
        case .tap(let persistent):
            var buffer = [CChar](repeating: 0, count: 16)
            for (i, c) in name.utf8.prefix(15).enumerated() { buffer[i] = CChar(bitPattern: c) }
            let r = vnet ? ipn_tap_open_vnet(&buffer, persistent ? 1 : 0) : ipn_tap_open(&buffer, persistent ? 1 : 0)
            if r == -EPERM || r == -EACCES { throw .missingCapability("CAP_NET_ADMIN", needed: what) }
            if r < 0 { throw .system(call: "TUNSETIFF (\(what))", errno: Errno(rawValue: -r)) }
            fd = r
            interface = String(cString: buffer)
            _ = ipn_interface_up(interface)
        case .grab:
            let r = ipn_packet_open(name)
            if r == -ENODEV { throw .noSuchInterface(name) }
            if r == -EPERM || r == -EACCES { throw .missingCapability("CAP_NET_RAW", needed: what) }
            if r < 0 { throw .system(call: "AF_PACKET socket (\(what))", errno: Errno(rawValue: -r)) }
            if vnet, ipn_packet_vnet(r) < 0 { close(r); throw .system(call: "PACKET_VNET_HDR (\(what))", errno: Sys.lastErrno) }
            fd = r
            interface = name
        }
        socket = IPNSocket(policy: nil)
        socket.options.policy = policy
        socket.description = kind == .grab ? "grab \(interface)" : "tap \(interface)"
        do {
            // bind: creates a missing bus, and on an existing one requires the manage right.
            try socket.bind(path)
            try socket.connect()
        } catch {
            close(fd)
            if case .permissionDenied = error { throw IPNError.permissionDenied(path: path, missing: .manage) }
            throw error
        }
        if (socket.busOptions?.vnetHeader ?? false) != vnet {
            socket.close()
            close(fd)
            throw .refused(path: path, reason: "the bus was recreated with other frame headers while attaching; try again")
        }
    }

    deinit {
        socket.close()
        close(fd)
    }

    /// Moves frames both ways until `shouldStop` (checked at least every 200 ms) or the bus goes away.
    public func run(shouldStop: () -> Bool) throws(IPNError) {
        let capacity = 65536 + 64  // a GSO segment with its headers
        let frame = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        defer { frame.deallocate() }
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: socket.pollDescriptor, events: Int16(POLLIN), revents: 0)]
        while !shouldStop() {
            fds[0].revents = 0; fds[1].revents = 0
            let n = poll(&fds, 2, 200)
            if n < 0 && errno != EINTR { throw .system(call: "poll", errno: Sys.lastErrno) }
            // Interface → bus.
            for _ in 0..<256 {
                var outgoing: Int32 = 0
                let got: Int = kind == .grab ? ipn_packet_recv(fd, frame, capacity, &outgoing) : {
                    let r = read(fd, frame, capacity)
                    return r < 0 ? -Int(errno) : r
                }()
                if got == -Int(EAGAIN) || got == 0 { break }
                if got < 0 {
                    if got == -Int(EINTR) { continue }
                    // The link went down (ip link set down, a cable pulled): wait for it to come back.
                    if got == -Int(ENETDOWN) || got == -Int(ENXIO) || got == -Int(EIO) { linkDown += 1; break }
                    throw .system(call: "reading \(interface)", errno: Errno(rawValue: Int32(-got)))
                }
                if outgoing != 0 { continue }  // what we (or the host) transmitted on a grabbed interface
                guard got <= capacity else { dropped += 1; continue }  // MSG_TRUNC: longer than we can hold
                do {
                    try socket.send(UnsafeRawBufferPointer(start: frame, count: got), nonBlocking: true)
                    framesToBus += 1
                } catch .wouldBlock {
                    dropped += 1
                } catch .mtuExceeded {
                    dropped += 1
                }
            }
            // Bus → interface.
            while let _ = try socket.withNextMessage(nonBlocking: true, { view in
                let w = view.bytes.count > 0 ? Glibc.write(fd, view.bytes.baseAddress!, view.bytes.count) : 0
                if w == view.bytes.count { framesFromBus += 1 } else { dropped += 1 }
            }) {}
        }
    }
}
