import Foundation
import Glibc
import IPNBus
import Subprocess
import SystemPackage

/// Helpers for tests that run real processes on real buses. Every process started here is reaped
/// before the helper returns, also when the test fails.
public enum TestSupport {
    /// The package's executables the multi-process tests run: `$IPN_PRODUCTS` when set (scripts/test sets it
    /// to the release build, the binaries users run), else the build beside the test binary.
    public static var productsDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["IPN_PRODUCTS"], !dir.isEmpty { return dir }
        return testBinaryDirectory
    }

    /// Where `swift build` put the test binary (and, in a plain `swift test`, the executables beside it).
    public static var testBinaryDirectory: String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, 4095)
        let exe = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (exe as NSString).deletingLastPathComponent
    }

    public static func product(_ name: String) -> String { productsDirectory + "/" + name }

    /// A fresh directory for buses, world-traversable so tests can join as other users.
    public static func makeDirectory(_ name: String = #function) throws -> String {
        let safe = String(name.filter { $0.isLetter || $0.isNumber }.suffix(24))
        let dir = "/tmp/ipn-test-\(safe)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        return dir
    }

    public static func removeDirectory(_ dir: String) {
        // Remove buses properly so their hosts end, then the files.
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for n in names { try? Bus.remove(dir + "/" + n) }
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A user to run a child as: (uid, gid, supplementary groups).
    public struct Identity: Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var groups: [UInt32]
        public init(uid: UInt32, gid: UInt32, groups: [UInt32] = []) { self.uid = uid; self.gid = gid; self.groups = groups }
    }

    public struct Outcome: Sendable, CustomStringConvertible {
        public var exitCode: Int32?
        public var signal: Int32?
        public var standardOutput: String
        public var standardError: String
        public var description: String {
            "exit \(exitCode.map(String.init) ?? "-") signal \(signal.map(String.init) ?? "-")\nstdout: \(standardOutput)\nstderr: \(standardError)"
        }
    }

    /// `product` is one of the package's executables, or an absolute path of a system tool.
    static func command(_ product: String, _ arguments: [String], as identity: Identity?) -> (String, [String]) {
        let exe = product.hasPrefix("/") ? product : self.product(product)
        guard let identity else { return (exe, arguments) }
        let groups = identity.groups.isEmpty ? ["--clear-groups"] : ["--groups=" + identity.groups.map(String.init).joined(separator: ",")]
        return ("/usr/bin/setpriv", ["--reuid=\(identity.uid)", "--regid=\(identity.gid)"] + groups + [exe] + arguments)
    }

    static func outcome(_ status: TerminationStatus, _ out: String?, _ err: String?) -> Outcome {
        switch status {
        case .exited(let c): return Outcome(exitCode: c, signal: nil, standardOutput: out ?? "", standardError: err ?? "")
        case .signaled(let s): return Outcome(exitCode: nil, signal: s, standardOutput: out ?? "", standardError: err ?? "")
        }
    }

    /// Runs a system tool (ffprobe, ffmpeg, ...) to completion.
    public static func runTool(_ path: String, _ arguments: [String]) async throws -> Outcome {
        let r = try await Subprocess.run(.path(FilePath(path)), arguments: Arguments(arguments),
                                         output: .string(limit: 64 << 20), error: .string(limit: 1 << 20))
        return outcome(r.terminationStatus, r.standardOutput, r.standardError)
    }

    /// Runs a system tool and returns its standard output as bytes (e.g. decoded raw video).
    public static func toolBytes(_ path: String, _ arguments: [String]) async throws -> [UInt8] {
        let r = try await Subprocess.run(.path(FilePath(path)), arguments: Arguments(arguments),
                                         output: .bytes(limit: 1 << 30), error: .discarded)
        return r.standardOutput
    }

    /// Runs one of the package's executables to completion; a child still running after `timeout`
    /// seconds is killed (so a hung child fails its test instead of hanging the run).
    public static func run(_ product: String, _ arguments: [String], as identity: Identity? = nil,
                           input: String? = nil, timeout: Double = 120) async throws -> Outcome {
        let (exe, args) = command(product, arguments, as: identity)
        let r = try await Subprocess.run(Configuration(executable: .path(FilePath(exe)), arguments: Arguments(args)),
                                         input: .string(input ?? ""), output: .string(limit: 16 << 20),
                                         error: .string(limit: 1 << 20)) { execution in
            await watchdog(execution.processIdentifier.value, seconds: timeout)
        }
        return outcome(r.terminationStatus, r.standardOutput, r.standardError)
    }

    /// Waits until `pid` ends, killing it after `seconds`.
    static func watchdog(_ pid: Int32, seconds: Double) async {
        let end = Date().addingTimeInterval(seconds)
        while isAlive(pid) {
            if Date() >= end {
                kill(pid, SIGKILL)
                FileHandle.standardError.write(Data("test support: killed pid \(pid) after \(seconds) s\n".utf8))
                return
            }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }

    /// Runs an executable while `body` works with its pid; `body` must make it end (or return
    /// `true` to have it killed with SIGKILL). A child still running `timeout` seconds after `body`
    /// returned is killed. Output is collected.
    public static func with<T: Sendable>(_ product: String, _ arguments: [String], as identity: Identity? = nil, timeout: Double = 60,
                                         _ body: @Sendable (Int32) async throws -> (result: T, kill: Bool)) async throws -> (T, Outcome) {
        let (exe, args) = command(product, arguments, as: identity)
        let r = try await Subprocess.run(Configuration(executable: .path(FilePath(exe)), arguments: Arguments(args)),
                                         input: .none, output: .string(limit: 16 << 20), error: .string(limit: 1 << 20)) { execution in
            let pid = execution.processIdentifier.value
            do {
                let (value, kill) = try await body(pid)
                if kill { try? execution.send(signal: .kill) } else { await watchdog(pid, seconds: timeout) }
                return Result<T, any Error>.success(value)
            } catch {
                try? execution.send(signal: .kill)
                return Result<T, any Error>.failure(error)
            }
        }
        let out = outcome(r.terminationStatus, r.standardOutput, r.standardError)
        switch r.closureResult {
        case .success(let value): return (value, out)
        // What the product said is the clue to why the test's wait failed: it goes with the error.
        case .failure(let error): throw FailedWhileRunning(error: error, product: product, outcome: out)
        }
    }

    /// A process's state as /proc says it ("R (running)", "S (sleeping)", "Z (zombie)"), or "gone".
    public static func processState(_ pid: Int32) -> String {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("State:") }) else { return "gone" }
        return line.dropFirst(6).trimmingCharacters(in: .whitespaces)
    }

    /// A test's wait or check failed while a product ran: the failure, and what the product said.
    public struct FailedWhileRunning: Error, CustomStringConvertible {
        public var error: any Error
        public var product: String
        public var outcome: Outcome
        public var description: String {
            "\(error)\n\(product) (killed or ended): exit \(outcome.exitCode.map(String.init) ?? "-") signal \(outcome.signal.map(String.init) ?? "-")"
                + "\nits stdout (end): \(outcome.standardOutput.suffix(2000))\nits stderr (end): \(outcome.standardError.suffix(2000))"
        }
    }

    /// What a test waited for and did not see within its limit. Thrown by `waitUntil`, so the test
    /// fails naming what did not happen (and what was seen instead, when the caller says).
    public struct WaitTimeout: Error, CustomStringConvertible {
        public var what: String
        public var seconds: Double
        public var lastSeen: String
        public var description: String {
            "timed out after \(seconds) s waiting until \(what)" + (lastSeen.isEmpty ? "" : "; last seen: \(lastSeen)")
        }
    }

    /// The limit of a wait for something the product reports: generous, so that a busy or emulated
    /// machine only makes the test slower, never red. The verdict never depends on how long it took.
    public static let patience: Double = 30

    /// Polls `condition` every 10 ms until it holds; throws `WaitTimeout` naming `what` (e.g. "the
    /// publisher's stream is on the bus") when it has not held within `seconds`. `lastSeen` describes
    /// the state at the timeout for the failure message.
    public static func waitUntil(_ what: @autoclosure () -> String, seconds: Double = patience,
                                 lastSeen: () -> String = { "" }, _ condition: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return }
            usleep(10_000)
        }
        if try condition() { return }
        throw WaitTimeout(what: what(), seconds: seconds, lastSeen: lastSeen())
    }

    /// Async form of `waitUntil`.
    public static func waitUntil(_ what: @autoclosure () -> String, seconds: Double = patience,
                                 lastSeen: () -> String = { "" }, _ condition: () async throws -> Bool) async throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try await condition() { return }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        if try await condition() { return }
        throw WaitTimeout(what: what(), seconds: seconds, lastSeen: lastSeen())
    }

    /// Waits until the bus at `path` reports `key` of its policy statistics as `value` (e.g. the media
    /// policy's "streams" as "1": the publisher is on the bus).
    public static func waitForPolicy(_ path: String, _ key: String, _ value: String, seconds: Double = patience) throws {
        try waitUntil("the bus \((path as NSString).lastPathComponent) reports \(key) \(value)", seconds: seconds,
                            lastSeen: { "\(key) \((try? Bus.status(path).policyStatistics[key]).flatMap { $0 } ?? "(no answer)")" }) {
            (try? Bus.status(path).policyStatistics[key]) == value
        }
    }

    /// Open descriptors of a process, from /proc.
    public static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Whether a process exists (and is not a zombie).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        guard let close = s.lastIndex(of: ")") else { return false }
        let state = s[s.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// Decodes the JSON summary line `ipn recv --summary` prints last.
    public static func summary(_ outcome: Outcome) -> [String: Int]? {
        guard let line = outcome.standardOutput.split(separator: "\n").last,
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        return obj.compactMapValues { $0 as? Int }
    }
}

extension TestSupport {
    /// A thread's progress through a loop and what it is doing, seen from another thread: its steps, and
    /// the system call it sits in (from /proc/self/task/TID/syscall), so a test can tell a thread that
    /// waits from one that has not run yet.
    public final class ThreadProgress: Sendable {
        private let state = Locked((tid: Int32(0), count: 0))
        public init() {}
        /// Called first on the thread itself.
        public func started() {
            // /proc/thread-self is a link to PID/task/TID.
            var buf = [CChar](repeating: 0, count: 256)
            let n = readlink("/proc/thread-self", &buf, 255)
            let link = String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let t = link.split(separator: "/").last.flatMap { Int32($0) } ?? 0
            state.withLock { $0.tid = t }
        }
        public func step() { state.withLock { $0.count += 1 } }
        public var steps: Int { state.withLock { $0.count } }
        /// The number of the system call the thread is in (nil when it runs, has not started or ended).
        public var syscall: Int? {
            let t = state.withLock { $0.tid }
            guard t != 0, let s = try? String(contentsOfFile: "/proc/self/task/\(t)/syscall", encoding: .utf8) else { return nil }
            return s.split(separator: " ").first.flatMap { Int($0) }
        }
        /// In epoll_wait or epoll_pwait: asleep until a descriptor wakes it.
        public var isWaitingInEpoll: Bool {
            #if arch(x86_64)
            return [232, 281, 441].contains(syscall ?? -1)
            #elseif arch(arm64)
            return [22, 441].contains(syscall ?? -1)
            #else
            return false
            #endif
        }
    }
}
