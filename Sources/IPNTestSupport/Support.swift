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
        let value = try r.closureResult.get()
        return (value, outcome(r.terminationStatus, r.standardOutput, r.standardError))
    }

    /// Polls `condition` every 10 ms until it holds or `seconds` pass. Returns whether it held.
    public static func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    /// Async form of `eventually`.
    public static func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try await condition() { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return try await condition()
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
