import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// Who brings a media bus up, and who waits for it: a publisher creates a missing bus as one node of its own,
/// however many start at once; a reader that starts first waits for the bus instead of failing.
final class MediaBusArrivalTests: DirectoryTestCase {

    static func text(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }

    /// Starts `count` copies of `mediajack ARGUMENTS`, each right after the one before (none waits for another
    /// to get anywhere), runs `body` with their pids while all of them run, then kills them.
    static func withMediajacks<T: Sendable>(_ count: Int, _ arguments: [String], started: [Int32] = [],
                                            _ body: @Sendable ([Int32]) async throws -> T) async throws -> T {
        if started.count == count { return try await body(started) }
        let (result, _) = try await TestSupport.with("mediajack", arguments) { pid in
            (try await withMediajacks(count, arguments, started: started + [pid], body), true)
        }
        return result
    }

    func testARecorderStartedBeforeItsBusWaitsForItThenRecords() async throws {
        try TestSupport.require(tool: "/usr/bin/ffmpeg")
        let bus = dir + "/later", out = dir + "/first.mkv", log = dir + "/record.err"
        // Its stderr goes to a file the test reads while it runs: that is where it says it waits.
        let script = "exec \"$0\" record \"$1\" \"$2\" 2> \"$3\""
        let (_, record) = try await TestSupport.with("/bin/sh", ["-c", script, TestSupport.product("mediajack"), bus, out, log]) { recorder in
            try TestSupport.waitUntil("the recorder says it waits for a bus at \(bus)", lastSeen: { Self.text(log) }) {
                Self.text(log).contains("waiting for a bus at \(bus) (--no-wait to fail instead)")
            }
            XCTAssertTrue(TestSupport.isAlive(recorder), "it waits instead of failing: \(Self.text(log))")
            XCTAssertEqual(try BusAddress.lookup(bus), .missing, "a reader does not make the bus")
            // A publisher comes and creates the bus; the recorder joins it and records.
            _ = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { publisher in
                try MediaJackTests.waitForDelivered(25, on: bus, to: recorder, "the recorder that waited for the bus")
                kill(publisher, SIGINT)  // its stream ends: the recorder finishes its file on its own
                return ((), false)
            }
            return ((), false)
        }
        // Without the fix this fails: the recorder exited at once with "no bus at ...", and the wait for its
        // waiting line timed out.
        XCTAssertEqual(record.exitCode, 0, "\(record)\nits stderr: \(Self.text(log))")
        let recorded = record.standardOutput.firstMatch(of: /recorded (\d+) frames/).flatMap { Int($0.1) }
        XCTAssertGreaterThan(recorded ?? 0, 0, "\(record)")
        XCTAssertEqual(Self.text(log).components(separatedBy: "waiting for a bus").count, 2, "said once: \(Self.text(log))")
        let decode = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", out, "-f", "null", "-"])
        XCTAssertEqual(decode.exitCode, 0, "\(decode)")
        XCTAssertEqual(decode.standardError, "", "the recording decodes cleanly")
    }

    func testWithNoWaitARecorderFailsAtOnceNamingTheMissingBus() async throws {
        let bus = dir + "/absent", out = dir + "/never.mkv"
        // A recorder that waited would be killed at the limit (no exit status): the test fails then too.
        let record = try await TestSupport.run("mediajack", ["record", bus, out, "--no-wait"], timeout: TestSupport.patience)
        XCTAssertEqual(record.exitCode, 1, "\(record)")
        XCTAssertTrue(record.standardError.contains("no bus at \(bus)"), "it names the missing bus: \(record)")
        XCTAssertFalse(record.standardError.contains("waiting for a bus"), "\(record)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no file for a recording that never started")
    }

    func testEightPublishersStartedAtOnceOntoAMissingPathAreEightNodes() async throws {
        let bus = dir + "/crowd"
        let (pids, status) = try await Self.withMediajacks(8, ["publish", "test:audio", bus]) { pids in
            var seen = ""
            // On: each process has a node that joined the bus and may send (a process that brought the bus up
            // is bound a moment before it joins).
            try TestSupport.waitUntil("all 8 publishers are on the bus", lastSeen: { seen }) {
                guard let s = try? Bus.status(bus) else { seen = "no bus"; return false }
                seen = s.nodes.map { "node \($0.id) pid \($0.pid) \($0.role)" }.joined(separator: ", ")
                return Swift.Set(pids).isSubset(of: s.nodes.filter(\.canSend).map(\.pid))
            }
            return (pids, try Bus.status(bus))
        }
        // Without the fix this fails: the process that created the bus held it with a bound socket of its own,
        // a ninth node (role "bound", no description) beside its publisher's, with the same pid.
        let nodes = status.nodes.map { "node \($0.id) pid \($0.pid) \($0.role) '\($0.description)'" }
        XCTAssertEqual(status.nodes.count, 8, "one node per process: \(nodes)")
        XCTAssertEqual(Swift.Set(status.nodes.map(\.pid)), Swift.Set(pids), "the 8 processes, each once: \(nodes)")
        XCTAssertEqual(status.writers, 8, "every node is a publisher: \(nodes)")
    }
}
