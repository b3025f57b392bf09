import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// Who brings a media bus up, and who waits for it: a reader that starts first waits for the bus instead of
/// failing.
final class MediaBusArrivalTests: DirectoryTestCase {

    static func text(_ file: String) -> String { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }

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
}
