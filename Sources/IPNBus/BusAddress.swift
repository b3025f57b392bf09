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

    /// What is at `path`, following symbolic links as `connect(2)` would.
    public static func lookup(_ path: String) throws(IPNError) -> Lookup {
        var st = stat()
        if stat(path, &st) != 0 {
            let e = Sys.lastErrno
            if e == .noSuchFileOrDirectory || e == .notDirectory { return .missing }
            if e == .permissionDenied { throw .unreachable(path: path) }
            throw .system(call: "stat(\(path))", errno: e)
        }
        return found(path, st)
    }

    private static func found(_ path: String, _ st: stat) -> Lookup {
        guard st.st_mode & S_IFMT == S_IFSOCK else { return .notASocket }
        return .socket(BusAddress(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino)),
                       mode: UInt32(st.st_mode & 0o777), owner: st.st_uid, group: st.st_gid)
    }

    /// A descriptor of the bus file itself (`O_PATH`), and what it is. Opening it needs search permission on
    /// every directory above the file, as `connect(2)` to the path would, and no permission on the file: a
    /// client sends it with its hello, and the host compares its device and inode with its own, so only
    /// those who can reach the path can join, however they learned the abstract address.
    static func openProof(_ path: String) throws(IPNError) -> (fd: Int32, lookup: Lookup) {
        let fd = ipn_open_path_only(path)
        if fd < 0 {
            let e = Sys.lastErrno
            if e == .noSuchFileOrDirectory || e == .notDirectory { return (-1, .missing) }
            if e == .permissionDenied { throw .unreachable(path: path) }
            throw .system(call: "open(\(path))", errno: e)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = Sys.lastErrno
            Sys.close(fd)
            throw .system(call: "fstat(\(path))", errno: e)
        }
        let lookup = found(path, st)
        guard case .socket = lookup else { Sys.close(fd); return (-1, lookup) }
        return (fd, lookup)
    }

    /// Whether `fd` is a descriptor of the file at `device`/`inode` (the host's check of a client's proof).
    static func isProof(_ fd: Int32, device: UInt64, inode: UInt64) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }

    /// The path a symbolic link at `path` leads to (the path itself when it is not a link): a bus bound through
    /// a link is created, and found stale, where the link points.
    public static func resolvingLink(_ path: String) -> String {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFLNK, let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
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
