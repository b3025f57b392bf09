import Foundation
import CIPNSys
import Glibc

/// Runs a bash script (the benchmark's real tools: iperf3, ping, curl, the mediajack commands) and
/// returns its standard output once it ends; nil when bash cannot be started. Its errors are dropped.
func bashOutput(_ script: String) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", script]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return nil }
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return text
}

/// A program the benchmark started (posix_spawn: no run loop, so it works in the device tier's minimal VM too),
/// with its standard error in a file and, when asked, its standard input a pipe this process writes.
final class Child {
    let pid: pid_t
    /// The write end of the child's standard input, or -1.
    private(set) var input: Int32 = -1
    /// Its exit status (or -signal) once waited for.
    private(set) var status: Int32?

    init(_ path: String, _ arguments: [String], errorLog: String, pipeInput: Bool = false) throws {
        let log = open(errorLog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ChildError("cannot write \(errorLog): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        var fds: [Int32] = [-1, -1]
        if pipeInput {
            guard pipe(&fds) == 0 else { throw ChildError("pipe: \(String(cString: strerror(errno)))") }
            // Neither end leaks into other children (the child gets the read end as its standard input, by dup2).
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let pid = argv.withUnsafeBufferPointer { ipn_spawn_with(path, $0.baseAddress!, fds[0], -1, log) }
        if fds[0] >= 0 { close(fds[0]) }
        guard pid > 0 else {
            if fds[1] >= 0 { close(fds[1]) }
            throw ChildError("cannot start \(path): \(String(cString: strerror(errno)))")
        }
        self.pid = pid
        input = fds[1]
    }

    /// Writes all of `bytes` to the child's standard input.
    func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(input, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw ChildError("writing to pid \(pid): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func closeInput() { if input >= 0 { close(input); input = -1 } }

    /// Sends `signal` (unless it ended) and waits for the child; its exit status or -signal.
    @discardableResult func stop(_ signal: Int32 = SIGINT) -> Int32 {
        closeInput()
        if let status { return status }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid { return record(raw) }
        kill(pid, signal)
        return wait()
    }

    /// Closes its input (and sends `signal`, if given), waits for it to end and returns the CPU seconds it used in
    /// all, start to end (read from /proc while it is a zombie, then reaped).
    func cpuSecondsAtExit(after signal: Int32? = nil) -> Double {
        closeInput()
        if let signal, status == nil { kill(pid, signal) }
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let cpu = WebcamBench.cpuSeconds(pid)
        wait()
        return cpu
    }

    /// Waits for the child to end by itself.
    @discardableResult func wait() -> Int32 {
        closeInput()
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        return record(raw)
    }

    private func record(_ raw: Int32) -> Int32 {
        let s = raw & 0x7f == 0 ? (raw >> 8) & 0xff : -(raw & 0x7f)
        status = s
        return s
    }
}

struct ChildError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}
