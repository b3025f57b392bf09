import CIPNSys

/// A command's standard output, as a user who pipes or logs it needs it.
///
/// Into a pipe or a file, stdio holds output back until its buffer fills (4 KiB) or the process exits:
/// `ipn recv BUS > log` would show nothing while it runs, and a command ended by a signal would lose all of
/// it. Flushed at every newline, each line (a message, an event, the summary) is there once printed.
public enum StandardOutput {
    /// Makes standard output go out at every newline. Call first, before anything is printed.
    public static func flushEveryLine() {
        _ = ipn_stdout_line_buffered()
    }
}
