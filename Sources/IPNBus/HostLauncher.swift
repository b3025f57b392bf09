import CIPNSys
import Foundation
import Glibc

/// Brings a bus up: spawns its host (`ipn-host`) in a new session with posix_spawn and waits until
/// it listens. The first `bind` of a path does this; nobody starts a daemon by hand.
enum HostLauncher {
    static let tokenVariable = "IPN_CREATOR_TOKEN"

    /// The host executable: $IPN_HOST, else `ipn-host` beside the running executable, else on $PATH.
    static func hostExecutable() -> String? {
        if let p = ProcessInfo.processInfo.environment["IPN_HOST"], access(p, X_OK) == 0 { return p }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
        if n > 0 {
            let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let candidate = (exe as NSString).deletingLastPathComponent + "/ipn-host"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/ipn-host"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    enum Outcome { case started(token: String), alreadyExists }

    /// Starts a host for `path` with `options`. The caller holds the directory lock.
    static func launch(path: String, options: BusOptions) throws(IPNError) -> Outcome {
        guard let exe = hostExecutable() else {
            throw .hostFailed(path: path, reason: "the ipn-host executable was not found (set IPN_HOST or put it on PATH)")
        }
        let token = UUID().uuidString
        var pipeFDs: [Int32] = [-1, -1]
        guard ipn_pipe_cloexec(&pipeFDs) == 0 else { throw .system(call: "pipe2", errno: Sys.lastErrno) }
        let optionsJSON = String(decoding: (try? JSONEncoder().encode(options)) ?? Data(), as: UTF8.self)
        let argv = [exe, "--detach", path, optionsJSON]
        var env = ProcessInfo.processInfo.environment
        env[tokenVariable] = token
        let envStrings = env.map { "\($0.key)=\($0.value)" }
        let pid = withCStrings(argv) { a in withCStrings(envStrings) { e in ipn_spawn_detached(exe, a, e, pipeFDs[1]) } }
        Sys.close(pipeFDs[1])
        defer { Sys.close(pipeFDs[0]) }
        guard pid > 0 else { throw .hostFailed(path: path, reason: "posix_spawn: \(Sys.lastErrno)") }
        // The host writes one status line on fd 3 and closes it: "ok", "exists" or "error: ...".
        var report = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = read(pipeFDs[0], &chunk, chunk.count)
            if n > 0 { report += chunk[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)  // the detaching parent; the host itself is not our child
        let line = String(decoding: report, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        switch line {
        case "ok": return .started(token: token)
        case "exists": return .alreadyExists
        default:
            let reason = line.hasPrefix("error: ") ? String(line.dropFirst(7)) : "the host exited without a report"
            throw .hostFailed(path: path, reason: reason)
        }
    }

    /// Serialises creators in one directory (flock on the directory), so two processes recovering
    /// the same stale bus cannot both replace it.
    static func withDirectoryLock<T>(for path: String, _ body: () throws(IPNError) -> T) throws(IPNError) -> T {
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        }
        defer { if fd >= 0 { flock(fd, LOCK_UN); Sys.close(fd) } }
        return try body()
    }
}

/// Used by the ipn-host executable to put the real host one process further away.
public enum HostProcess {
    public static func spawnDetached(arguments: [String]) -> Bool {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, Int(PATH_MAX))
        guard n > 0 else { return false }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var args = arguments
        args[0] = exe
        let envStrings = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let pid = withCStrings(args) { a in withCStrings(envStrings) { e in ipn_spawn_detached(exe, a, e, 3) } }
        return pid > 0
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
