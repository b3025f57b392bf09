import CIPNSys
import Glibc
import SystemPackage

/// Every raw system call IPNBus makes goes through here: -1 becomes a typed `IPNError.system`.
enum Sys {
    @discardableResult
    static func check(_ call: String, _ result: Int32) throws(IPNError) -> Int32 {
        if result < 0 { throw .system(call: call, errno: Errno(rawValue: errno)) }
        return result
    }

    static var lastErrno: Errno { Errno(rawValue: errno) }

    static func close(_ fd: Int32) { if fd >= 0 { _ = Glibc.close(fd) } }

    /// fstat(2) of an open descriptor.
    static func fileSize(_ fd: Int32) throws(IPNError) -> Int {
        var st = stat()
        try check("fstat", fstat(fd, &st))
        return Int(st.st_size)
    }

    /// Opens the same file again read-only through /proc, giving a descriptor that can never be
    /// mapped writable. Used to hand a sender's pool to receivers.
    static func reopenReadOnly(_ fd: Int32) throws(IPNError) -> Int32 {
        try check("open(/proc/self/fd, O_RDONLY)", open("/proc/self/fd/\(fd)", O_RDONLY | O_CLOEXEC))
    }

    static func newEventFD() throws(IPNError) -> Int32 { try check("eventfd", ipn_eventfd()) }
    static func newSeqpacketSocket() throws(IPNError) -> Int32 { try check("socket", ipn_seqpacket_socket()) }

    static func setNonBlocking(_ fd: Int32, _ on: Bool) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK))
    }
}
