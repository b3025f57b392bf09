import CIPNSys
import Glibc

/// Where a bus lives: its path, and the abstract socket address its host listens on.
///
/// The host listens on an abstract Unix address derived from the bus file's device and inode, so a
/// process with only the `r` right (which cannot `connect(2)` to the socket file itself) can still
/// reach the host; the host then checks its credentials against the file. The file stays the single
/// source of truth: `chmod`/`chown` on it change who may join.
public struct BusAddress: Sendable, Equatable {
    public let path: String
    public let device: UInt64
    public let inode: UInt64

    public var abstractName: String { Self.abstractName(device: device, inode: inode) }

    static func abstractName(device: UInt64, inode: UInt64) -> String { "ipn-bus/\(device)/\(inode)" }

    /// What is at a path.
    public enum Lookup: Sendable, Equatable {
        case missing
        case notASocket
        case socket(BusAddress, mode: UInt32, owner: UInt32, group: UInt32)
    }

    public static func lookup(_ path: String) throws(IPNError) -> Lookup {
        var st = stat()
        if lstat(path, &st) != 0 {
            let e = Sys.lastErrno
            if e == .noSuchFileOrDirectory || e == .notDirectory { return .missing }
            if e == .permissionDenied { throw .permissionDenied(path: path, missing: []) }
            throw .system(call: "lstat(\(path))", errno: e)
        }
        guard st.st_mode & S_IFMT == S_IFSOCK else { return .notASocket }
        return .socket(BusAddress(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino)),
                       mode: UInt32(st.st_mode & 0o777), owner: st.st_uid, group: st.st_gid)
    }

    /// Absolute form of a user's path (the host may outlive the caller's working directory).
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buf, buf.count) != nil else { return path }
        let cwd = String(cString: buf)
        return cwd == "/" ? "/" + path : cwd + "/" + path
    }

    /// Opens a control connection to the host; nil when nobody listens (a stale bus file).
    func connectHost() throws(IPNError) -> Int32? {
        let fd = try Sys.newSeqpacketSocket()
        if ipn_connect_abstract(fd, abstractName) != 0 {
            let e = Sys.lastErrno
            Sys.close(fd)
            if e == .connectionRefused || e == .noSuchFileOrDirectory { return nil }
            throw .system(call: "connect(\(path))", errno: e)
        }
        return fd
    }
}
