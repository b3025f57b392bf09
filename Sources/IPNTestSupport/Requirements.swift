import Foundation
import Glibc
import XCTest

/// What a test needs from the machine. Without it a test skips, and says what is missing; in CI
/// (environment CI=true) a missing tool is a failure naming the tool, never a silent skip.
extension TestSupport {
    /// True when the environment says this is a CI run (CI=true, as CI services set it).
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true" }

    /// A requirement a CI run does not meet: the test fails with this.
    public struct MissingRequirement: Error, CustomStringConvertible {
        public var what: String
        public var description: String { "CI=true and \(what): this run cannot judge the test (install it, scripts/setup)" }
    }

    /// Skips the test (fails it in CI) unless `condition` holds; `missing` says what is missing.
    public static func require(_ condition: Bool, _ missing: @autoclosure () -> String) throws {
        guard !condition else { return }
        if isCI { throw MissingRequirement(what: missing()) }
        throw XCTSkip(missing())
    }

    /// An executable the test runs: an absolute path (`/usr/bin/ffmpeg`), or a name looked up in
    /// /usr/bin, /usr/sbin, /bin, /sbin. `hint` says how to get it.
    public static func require(tool: String, _ hint: String = "scripts/setup installs it") throws {
        let candidates = tool.hasPrefix("/") ? [tool] : ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"].map { $0 + tool }
        try require(candidates.contains { FileManager.default.isExecutableFile(atPath: $0) }, "\(tool) is missing (\(hint))")
    }

    /// Several tools at once.
    public static func require(tools: [String], _ hint: String = "scripts/setup installs it") throws {
        for t in tools { try require(tool: t, hint) }
    }

    /// A file the test needs (a plugin module, a library).
    public static func require(file: String, _ hint: String) throws {
        try require(FileManager.default.fileExists(atPath: file), "\(file) is missing (\(hint))")
    }

    /// Root (network namespaces, other users' identities).
    public static func requireRoot(_ why: String) throws {
        try require(getuid() == 0, "not root: \(why) needs root")
    }
}
