import Atomics
import CIPNSys
import Glibc

/// SIGINT and SIGTERM as an event a command can wait on: Ctrl-C and `kill` end a long-running command
/// the way its own end would (it prints what it got and its summary, a recorder finishes its file),
/// never in the middle of a write.
///
/// The handlers set a flag and signal an eventfd. A command that checks the flag between steps reads
/// `requested`; one that blocks (on a bus, on a directory) waits with `wait(for:timeout:)`, which watches
/// the eventfd beside its own descriptor, so the signal ends the wait at once whenever it comes, also
/// between a check of the flag and the wait. The eventfd is never drained: once stopped, every later wait
/// returns at once.
public enum StopSignal {
    private static let flag = ManagedAtomic(false)
    /// -1 if no eventfd could be made: then only the flag tells (waits end at their timeout).
    private static let event: Int32 = ipn_eventfd()

    /// Installs the SIGINT and SIGTERM handlers. Call before anything waits.
    public static func install() {
        // Both are made here, not in a handler: the first use of a static runs its initialiser, which is
        // not async-signal-safe.
        _ = flag.load(ordering: .relaxed)
        _ = event
        signal(SIGINT) { _ in StopSignal.signalled() }
        signal(SIGTERM) { _ in StopSignal.signalled() }
    }

    /// What a handler does; async-signal-safe (an atomic store and an eventfd write).
    static func signalled() {
        flag.store(true, ordering: .relaxed)
        _ = ipn_eventfd_signal(event)
    }

    /// Whether SIGINT or SIGTERM came.
    public static var requested: Bool { flag.load(ordering: .relaxed) }

    /// Why `wait` returned.
    public enum Wake: Sendable, Equatable {
        /// This descriptor is readable (or reports an error or a hang-up, which reading it tells).
        case readable(Int32)
        case stopped
        case timedOut
    }

    /// Waits until one of `descriptors` is readable, SIGINT or SIGTERM came, or `timeout` seconds passed
    /// (nil: no limit). With no descriptors it waits for the signal (or the timeout) alone.
    public static func wait(for descriptors: [Int32], timeout: Double? = nil) throws(IPNError) -> Wake {
        let deadline = timeout.map { ipn_monotonic_ns() + UInt64(max(0, $0) * 1e9) }
        // poll ignores a negative descriptor: without an eventfd only the flag tells, at the timeout.
        var fds = ([event] + descriptors).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while true {
            if requested { return .stopped }
            var milliseconds: Int32 = -1
            if let deadline {
                let now = ipn_monotonic_ns()
                if now >= deadline { return .timedOut }
                milliseconds = Int32(min(60_000, (deadline - now + 999_999) / 1_000_000))
            }
            let n = poll(&fds, nfds_t(fds.count), milliseconds)
            if n < 0 {
                if errno == EINTR { continue }  // a handler ran: the flag says whether it was a stop
                throw .system(call: "poll", errno: Sys.lastErrno)
            }
            if fds[0].revents != 0 || requested { return .stopped }
            if let ready = fds.dropFirst().first(where: { $0.revents != 0 }) { return .readable(ready.fd) }
        }
    }
}
