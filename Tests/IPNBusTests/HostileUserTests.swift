import Foundation
import Glibc
import IPNTestSupport
import XCTest
@testable import IPNBus

/// What another local user can do to a bus, tried as that user (real other uids through setpriv) with the
/// CLI and with a raw protocol client (Tests/tools/raw-ipn-client.py) where the CLI would not misbehave.
final class HostileUserTests: DirectoryTestCase {
    let stranger = TestSupport.Identity(uid: 4111, gid: 4111)
    let otherStranger = TestSupport.Identity(uid: 4112, gid: 4112)
    static let rawClient = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/raw-ipn-client.py").path

    func makeBus(_ path: String, mode: UInt32, mtu: Int = 1514) throws -> (IPNSocket, BusAddress) {
        let bus = IPNSocket(policy: "hub")
        bus.options.mode = mode
        bus.options.mtu = mtu
        try bus.bind(path)
        try bus.connect()
        guard case .socket(let address, _, _, _) = try BusAddress.lookup(path) else { throw IPNError.noSuchBus(path: path) }
        return (bus, address)
    }

    static func raw(_ arguments: [String], as identity: TestSupport.Identity?) async throws -> TestSupport.Outcome {
        try TestSupport.require(tool: "/usr/bin/python3")
        let r = try await TestSupport.run("/usr/bin/python3", [Self.rawClient] + arguments, as: identity)
        XCTAssertEqual(r.exitCode, 0, "the raw client itself failed: \(r)")
        return r
    }

    static func hello(_ a: BusAddress, _ intent: String, as identity: TestSupport.Identity?, _ extra: [String] = []) async throws -> TestSupport.Outcome {
        try await Self.raw(["hello", a.abstractName, "\(a.device)", "\(a.inode)", intent] + extra, as: identity)
    }

    /// The raw client's `hold` summary.
    struct Held: Decodable { var opened: Int; var refused: Int; var held: Int; var unanswered: Int; var openingSeconds: Double; var seconds: Double }

    static func hold(_ a: BusAddress, _ count: Int, as identity: TestSupport.Identity) async throws -> Held {
        let r = try await Self.raw(["hold", a.abstractName, "\(count)"], as: identity)
        return try JSONDecoder().decode(Held.self, from: Data(r.standardOutput.utf8))
    }

    /// CPU time a process has used, in seconds (/proc/PID/stat utime + stime).
    func cpuSeconds(_ pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return -1 }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        guard fields.count > 12, let u = Double(fields[11]), let k = Double(fields[12]) else { return -1 }
        return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func testABusInAPrivateDirectoryIsPrivateToThoseWhoCannotReachIt() async throws {
        let privateDir = dir + "/private"
        try FileManager.default.createDirectory(atPath: privateDir, withIntermediateDirectories: false)
        XCTAssertEqual(chmod(privateDir, 0o700), 0)
        let path = privateDir + "/bus"
        let (bus, address) = try makeBus(path, mode: 0o755)
        // The CLI cannot even look the path up, and says why.
        let recv = try await TestSupport.run("ipn", ["recv", path, "--count", "1"], as: stranger)
        XCTAssertEqual(recv.exitCode, 1, "\(recv)")
        XCTAssertTrue(recv.standardError.contains("permission denied on \(path): you cannot reach it"), "\(recv)")
        // A raw client that read the abstract address from /proc/net/unix, whatever it asks.
        for intent in ["connect", "stat", "setOptions", "remove", "bind"] {
            let r = try await Self.hello(address, intent, as: stranger)
            XCTAssertTrue(r.standardOutput.contains(#""code":"unreachable""#), "\(intent): \(r)")
            XCTAssertTrue(r.standardOutput.contains("descriptors: 0"), "\(intent): \(r)")
            // Proof of another file it can reach (its own test directory) is no proof.
            let forged = try await Self.hello(address, intent, as: stranger, ["--proof", dir])
            XCTAssertTrue(forged.standardOutput.contains(#""code":"unreachable""#), "\(intent) with a forged proof: \(forged)")
        }
        let status = try bus.status()
        XCTAssertFalse(status.nodes.contains { $0.uid == stranger.uid }, "the stranger never joined: \(status.nodes)")
        XCTAssertEqual(status.readers, 1, "the bus is still there with its one member")
        // The same raw client, run by a user who can reach the path and sends the proof, joins: the refusals
        // above are the proof's doing, not the client's.
        let unproven = try await Self.hello(address, "connect", as: nil)
        XCTAssertTrue(unproven.standardOutput.contains(#""code":"unreachable""#), "\(unproven)")
        let proven = try await Self.hello(address, "connect", as: nil, ["--proof", path])
        XCTAssertTrue(proven.standardOutput.contains(#"{"welcome""#) && proven.standardOutput.contains("descriptors: 4"), "\(proven)")
    }

    func testAReceiverCannotWriteASendersPool() async throws {
        let path = dir + "/bus"
        let (bus, address) = try makeBus(path, mode: 0o644, mtu: 1 << 17)  // others may receive
        let honest = IPNSocket()
        try honest.shutdown(.write)
        try honest.connect(path)
        let message = (0..<65_536).map { UInt8(truncatingIfNeeded: $0 &* 7) }  // beyond the inline size: through the pool
        // A receiver of another uid (the memfd's mode stops it), then one of the sender's own uid (the seals do).
        for (identity, who) in [(stranger as TestSupport.Identity?, "another uid"), (nil, "the sender's uid")] {
            try TestSupport.waitUntil("only the sender and the honest receiver are on the bus") { try bus.status().readers == 2 }
            let (_, outcome) = try await TestSupport.with("/usr/bin/python3", [Self.rawClient, "attack-pool", address.abstractName, "\(address.device)",
                                                                             "\(address.inode)", path], as: identity) { _ in
                try TestSupport.waitUntil("the attacker joined as a receiver") { try bus.status().readers == 3 }
                try bus.send(message)
                return ((), false)
            }
            let attempts = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: String], "\(outcome)")
            XCTAssertEqual(attempts["pool"], "received", "\(who): \(outcome)")
            XCTAssertEqual(attempts["mmapWriteOnTheDescriptor"], "EACCES", "\(who): \(attempts)")
            if identity != nil {
                XCTAssertEqual(attempts["reopenReadWrite"], "EACCES", "\(who) cannot reopen the pool for writing: \(attempts)")
            } else {
                for attempt in ["mmapWriteReopened", "pwriteReopened", "truncateReopened"] {
                    XCTAssertEqual(attempts[attempt], "EPERM", "\(who): \(attempt) is stopped by the seals: \(attempts)")
                }
            }
            XCTAssertEqual(try honest.receive(timeout: 30)?.bytes, message, "the honest receiver got the message as sent (\(who))")
        }
    }

    func testAUserWithNoRightIsRefusedAtTheDoorWithoutHoldingAnything() async throws {
        let (bus, address) = try makeBus(dir + "/bus", mode: 0o700)
        let held = try await Self.hold(address, 200, as: stranger)
        XCTAssertEqual(held.refused, 200, "every connection of a user the file grants nothing is refused at once: \(held)")
        XCTAssertEqual(held.held, 0, "\(held)")
        XCTAssertEqual(try bus.status().refusedConnections, 200)
        // And told why, as the CLI shows it, every time: the host closes before reading the hello, and the
        // client still reads the reason queued ahead of the close (30 tries of a race seen once in a run).
        for _ in 0..<30 {
            let stat = try await TestSupport.run("ipn", ["stat", dir + "/bus"], as: stranger)
            XCTAssertEqual(stat.exitCode, 1, "\(stat)")
            XCTAssertTrue(stat.standardError.contains("you have no right on it"), "\(stat)")
        }
    }

    func testOneUserCannotHoldMoreThanItsShareOfWaitingConnections() async throws {
        let path = dir + "/bus"
        let (bus, address) = try makeBus(path, mode: 0o755)  // the stranger may receive
        let other = otherStranger
        let (_, outcome) = try await TestSupport.with("/usr/bin/python3", [Self.rawClient, "hold", address.abstractName, "100"], as: stranger) { _ in
            try await TestSupport.waitUntil("the host refused some of the stranger's silent connections",
                                            lastSeen: { "\((try? bus.status().refusedConnections) ?? 0) refused" }) {
                ((try? bus.status().refusedConnections) ?? 0) > 0
            }
            // Meanwhile another user joins as usual.
            let joined = try await TestSupport.run("ipn", ["recv", path, "--count", "1", "--timeout", "0.1"], as: other)
            XCTAssertEqual(joined.exitCode, 0, "another user's join while the stranger holds its share: \(joined)")
            return ((), false)
        }
        let held = try JSONDecoder().decode(Held.self, from: Data(outcome.standardOutput.utf8))
        XCTAssertEqual(held.refused + held.held, 100, "every connection was answered: \(outcome)")
        XCTAssertGreaterThan(held.refused, 0, "\(held)")
        // A silent connection keeps its place for the 5 s hello timeout, and all of them were answered within
        // `seconds`: with 32 places, no more than 32 × seconds / 5 can have been held, however slow the machine.
        XCTAssertLessThanOrEqual(Double(held.held), 32 * held.seconds / 5, "\(held)")
        XCTAssertEqual(try bus.status().refusedConnections, UInt64(held.refused))
    }

    func testRunningOutOfDescriptorsPausesAcceptingInsteadOfSpinning() async throws {
        let path = dir + "/bus"
        let (bus, address) = try makeBus(path, mode: 0o755)
        let host = try bus.status().hostPID
        try TestSupport.require(tool: "/usr/bin/prlimit")
        let limit = TestSupport.openDescriptors(host) + 20
        let prlimit = try await TestSupport.runTool("/usr/bin/prlimit", ["--pid", "\(host)", "--nofile=\(limit):\(limit)"])
        XCTAssertEqual(prlimit.exitCode, 0, "\(prlimit)")
        let cpuBefore = cpuSeconds(host)
        let start = Date()
        // Two users, 32 silent connections each (their share): more than the host has descriptors for.
        let (one, two) = (stranger, otherStranger)
        async let first = Self.hold(address, 32, as: one)
        async let second = Self.hold(address, 32, as: two)
        let (a, b) = try await (first, second)
        let wall = Date().timeIntervalSince(start)
        let cpu = cpuSeconds(host) - cpuBefore
        XCTAssertEqual(a.unanswered + b.unanswered, 0, "every connection was answered in the end: \(a) \(b)")
        XCTAssertGreaterThanOrEqual(try bus.status().acceptPauses, 1, "the host ran out of descriptors and paused accepting")
        // A host spinning on a readable listening socket burns a whole CPU for as long as the connections wait
        // (at least the 5 s hello timeout); one that waits for its next tick uses next to nothing.
        XCTAssertLessThan(cpu, wall / 2, "the host used \(cpu) s of CPU in \(wall) s while out of descriptors")
        // Once the silent connections are gone, the bus takes joins again.
        let late = try await TestSupport.run("ipn", ["recv", path, "--count", "1", "--timeout", "0.1"], as: stranger)
        XCTAssertEqual(late.exitCode, 0, "\(late)")
    }

    func testMessagesNameTheRealCause() async throws {
        let path = dir + "/bus"
        let (bus, address) = try makeBus(path, mode: 0o602)  // others may send only
        defer { withExtendedLifetime(bus) {} }
        // A symbolic link to a bus leads to it, as connect(2) would.
        XCTAssertEqual(symlink(path, dir + "/link"), 0)
        let viaLink = try await TestSupport.run("ipn", ["stat", dir + "/link"])
        XCTAssertEqual(viaLink.exitCode, 0, "\(viaLink)")
        // Receiving with only w names the right that is missing.
        let recv = try await TestSupport.run("ipn", ["recv", path, "--count", "1"], as: stranger)
        XCTAssertEqual(recv.exitCode, 1, "\(recv)")
        XCTAssertTrue(recv.standardError.contains("permission denied on \(path): no receive (r) right"), "\(recv)")
        // stat needs any right: w will do.
        let stat = try await TestSupport.run("ipn", ["stat", path], as: stranger)
        XCTAssertEqual(stat.exitCode, 0, "\(stat)")
        // A hello with more descriptors than the host takes is kept; the extra ones are closed.
        let crowded = try await Self.hello(address, "stat", as: nil, ["--proof", path, "--extra", "12"])
        XCTAssertTrue(crowded.standardOutput.contains(#"{"status""#), "\(crowded)")
    }
}
