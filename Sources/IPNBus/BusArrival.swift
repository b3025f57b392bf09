import CIPNSys
import Glibc

/// A reader that starts before its writer: it joins the bus once the writer's first bind brings it up,
/// instead of failing because there is no bus at the path yet.
///
/// The wait is on an event, not a clock: inotify on the bus file's directory reports an entry of the bus
/// file's name created, moved in, or given its mode (the starting host's chmod), and only then is the join
/// tried again. A bus file is there a moment before its host listens; such a file looks stale, and is tried
/// again after a short backoff (10 ms, doubling to 1 s), which also covers a file a crashed host left
/// behind until a binder replaces it (that replacement is an event again).
public enum BusArrival {
    /// Runs `join`. When it fails because there is no bus at `path` yet (no file; a file whose host does not
    /// listen yet, or any more; a host ending as it arrived), calls `waiting` once and runs `join` again
    /// whenever the bus file's directory shows an entry of that name arriving, until `join` succeeds or fails
    /// another way. Returns nil when SIGINT or SIGTERM came first (`StopSignal`, which the caller installed),
    /// or `cancel` (an eventfd, say, that another thread signals) became readable. A directory that goes away
    /// while watched ends the wait with `.noSuchBus`.
    public static func join<T>(_ path: String, cancel: Int32? = nil, waiting: () -> Void,
                               _ join: () throws(IPNError) -> T) throws(IPNError) -> T? {
        do throws(IPNError) {
            return try join()
        } catch .noSuchBus, .staleBus, .busGone {
            // Not there yet: wait for it below.
        }
        let watch = try DirectoryWatch(for: BusAddress.absolute(path), cancel: cancel)
        defer { watch.close() }
        waiting()
        var backoff = 0.01
        while true {
            if StopSignal.requested { return nil }
            // Tried once more with the watch in place: a bus that came up between the first try and the watch
            // sends no event of its own.
            var timeout: Double? = nil
            do throws(IPNError) {
                return try join()
            } catch .noSuchBus, .busGone {
                // No bus file: the next one of that name is an event.
            } catch .staleBus {
                timeout = backoff  // its host may be about to listen: no event says when
                backoff = min(1, backoff * 2)
            }
            if try watch.wait(timeout: timeout) == .stopped { return nil }
        }
    }
}

/// An inotify watch on the directory of a bus path, waiting for an entry of the bus file's name.
private struct DirectoryWatch {
    enum Wake { case arrived, timedOut, stopped }

    let fd: Int32
    let cancel: Int32?
    let directory: String
    let name: [UInt8]
    let path: String

    /// `path` is absolute; `cancel` ends a wait when readable.
    init(for path: String, cancel: Int32?) throws(IPNError) {
        self.cancel = cancel
        let bytes = Array(path.utf8)
        let slash = bytes.lastIndex(of: UInt8(ascii: "/")) ?? 0
        self.path = path
        directory = slash == 0 ? "/" : String(decoding: bytes[..<slash], as: UTF8.self)
        name = Array(bytes[(slash + 1)...])
        fd = ipn_inotify_watch_directory(directory)
        if fd < 0 {
            let e = Sys.lastErrno
            // Watching needs read permission on the directory; a user who may only search it (0711) looks
            // again once a second instead (`wait`).
            guard e == .permissionDenied else { throw .system(call: "watching \(directory) for the bus \(path) (inotify)", errno: e) }
        }
    }

    func close() { Sys.close(fd) }

    /// Waits until an entry named like the bus file arrives, `timeout` seconds pass (nil: no limit) or a stop
    /// signal (or `cancel`) comes. Events about other entries are read and the wait goes on. Without a watch
    /// (a directory this user may not read), a second passing counts as an arrival.
    func wait(timeout: Double?) throws(IPNError) -> Wake {
        if fd < 0 {
            // No watch: every second is a reason to look again.
            switch try StopSignal.wait(for: cancel.map { [$0] } ?? [], timeout: min(timeout ?? 1, 1)) {
            case .stopped, .readable: return .stopped
            case .timedOut: return .arrived
            }
        }
        let deadline = timeout.map { ipn_monotonic_ns() + UInt64(max(0, $0) * 1e9) }
        while true {
            let left = deadline.map { d -> Double in
                let now = ipn_monotonic_ns()
                return now >= d ? 0 : Double(d - now) / 1e9
            }
            switch try StopSignal.wait(for: [fd] + (cancel.map { [$0] } ?? []), timeout: left) {
            case .stopped: return .stopped
            case .timedOut: return .timedOut
            case .readable(let ready) where ready == fd: if try readEvents() { return .arrived }
            case .readable: return .stopped  // cancelled
            }
        }
    }

    /// Reads every queued event; true when one names the bus file (or the kernel lost some: look again).
    private func readEvents() throws(IPNError) -> Bool {
        let gone = UInt32(IPN_INOTIFY_DELETE_SELF | IPN_INOTIFY_MOVE_SELF | IPN_INOTIFY_UNMOUNT | IPN_INOTIFY_IGNORED)
        let header = Int(IPN_INOTIFY_EVENT_SIZE)
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var arrived = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return arrived }
                throw .system(call: "read(inotify)", errno: Sys.lastErrno)
            }
            if n == 0 { return arrived }
            // struct inotify_event: wd, mask, cookie, len (4 bytes each), then `len` bytes of NUL-padded name.
            var offset = 0
            while offset + header <= n {
                let (mask, length) = buffer.withUnsafeBytes { b in
                    (b.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self), Int(b.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let start = offset + header
                let end = min(n, start + length)
                if mask & gone != 0 { throw .noSuchBus(path: path) }  // the directory itself went away
                if mask & UInt32(IPN_INOTIFY_Q_OVERFLOW) != 0 || buffer[start..<end].prefix(while: { $0 != 0 }).elementsEqual(name) {
                    arrived = true
                }
                offset = start + length
            }
        }
    }
}
