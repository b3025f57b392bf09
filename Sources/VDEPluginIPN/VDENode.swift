import CIPNSys
import Glibc
import IPNBus

/// One VDE connection (`vde_plug ipn:///path`, `qemu -nic vde,sock=ipn:///path`) as a node of the bus.
///
/// The descriptor VDE polls is an epoll set holding the bus socket's own descriptor and an eventfd that
/// stays readable while frames taken off the bus wait here, so a reader woken once can take several
/// frames one `vde_recv` at a time, and a spurious wake-up never blocks.
final class VDENode {
    let socket: IPNSocket
    let epoll: Int32
    let pending: Int32
    private var queue: [[UInt8]] = []
    private var head = 0

    init(path: String, description: String) throws {
        socket = IPNSocket()
        socket.description = "vde \(description)"
        try socket.connect(path)
        if socket.busOptions?.vnetHeader == true {
            socket.close()
            throw IPNError.refused(path: path, reason: "its frames carry virtio-net headers (--vnet-hdr): only interface nodes and cables belong there")
        }
        epoll = ipn_epoll_create()
        pending = ipn_eventfd()
        guard epoll >= 0, pending >= 0 else { throw IPNError.invalidOption("epoll/eventfd failed") }
        _ = ipn_epoll_add(epoll, socket.pollDescriptor, 1)
        _ = ipn_epoll_add(epoll, pending, 2)
    }

    deinit {
        socket.close()
        close(epoll)
        close(pending)
    }

    func receive(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        do {
            // Take more off the bus only when what was taken is handed over, and at most 64 at a time:
            // a slow reader leaves frames on the bus, where the bus's own flow control applies.
            if head == queue.count {
                queue.removeAll(keepingCapacity: true); head = 0
                while queue.count < 64, let _ = try socket.withNextMessage(nonBlocking: true, { view in queue.append(Array(view.bytes)) }) {}
            }
        } catch {
            errno = EPIPE
            return 0  // the bus is gone: VDE treats 0 as the end of the connection
        }
        guard head < queue.count else {
            _ = ipn_eventfd_drain(pending)
            errno = EAGAIN
            return -1
        }
        let frame = queue[head]
        head += 1
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0; _ = ipn_eventfd_drain(pending) } else { _ = ipn_eventfd_signal(pending) }
        // The frame's length is the sender's; VDE's buffer is the caller's: copy what fits, and nothing
        // (no pointer of an empty array to unwrap) for an empty frame.
        let n = max(0, min(frame.count, capacity))
        if n > 0 { frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: n) } }
        return n
    }

    func send(_ bytes: UnsafeRawBufferPointer) -> Int {
        do {
            try socket.send(bytes, nonBlocking: true)
            return bytes.count
        } catch .wouldBlock {
            return bytes.count  // a full lossless queue drops, as a switch port would
        } catch .mtuExceeded {
            errno = EMSGSIZE
            return -1
        } catch {
            errno = EPIPE
            return -1
        }
    }
}

@_cdecl("ipn_vde_node_open")
public func ipnVDENodeOpen(_ path: UnsafePointer<CChar>?, _ description: UnsafePointer<CChar>?, _ code: UnsafeMutablePointer<Int32>?) -> UnsafeMutableRawPointer? {
    do {
        let node = try VDENode(path: String(cString: path!), description: String(cString: description!))
        return Unmanaged.passRetained(node).toOpaque()
    } catch {
        let text = "vdeplug ipn: \(error)\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
        code?.pointee = ENOENT
        return nil
    }
}

@_cdecl("ipn_vde_node_recv")
public func ipnVDENodeRecv(_ node: UnsafeMutableRawPointer?, _ buffer: UnsafeMutableRawPointer?, _ length: Int) -> Int {
    Unmanaged<VDENode>.fromOpaque(node!).takeUnretainedValue().receive(into: buffer!, capacity: length)
}

@_cdecl("ipn_vde_node_send")
public func ipnVDENodeSend(_ node: UnsafeMutableRawPointer?, _ buffer: UnsafeRawPointer?, _ length: Int) -> Int {
    Unmanaged<VDENode>.fromOpaque(node!).takeUnretainedValue().send(UnsafeRawBufferPointer(start: buffer, count: length))
}

@_cdecl("ipn_vde_node_fd")
public func ipnVDENodeFD(_ node: UnsafeMutableRawPointer?) -> Int32 {
    Unmanaged<VDENode>.fromOpaque(node!).takeUnretainedValue().epoll
}

@_cdecl("ipn_vde_node_close")
public func ipnVDENodeClose(_ node: UnsafeMutableRawPointer?) {
    Unmanaged<VDENode>.fromOpaque(node!).release()
}
