import Foundation
import IPNTestSupport
import MediaWire
import XCTest
@testable import IPNBus

/// jackd-ipn with unmodified ALSA programs (aplay, arecord, ffmpeg, sox) through the plugin
/// libasound_module_pcm_ipn.so, configured by an .asoundrc in the test's HOME. Every recording is
/// compared with what was played, sample by sample.
final class AudioServerTests: DirectoryTestCase {
    var bus: String { dir + "/audio" }

    override func setUpWithError() throws {
        for tool in ["/usr/bin/aplay", "/usr/bin/arecord", "/usr/bin/ffmpeg", "/usr/bin/sox"] {
            try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: tool), "\(tool) missing: scripts/setup installs it")
        }
        try super.setUpWithError()
        // The sample configuration, pointed at the plugin just built.
        let sample = try String(contentsOfFile: Self.repository + "/samples/asoundrc", encoding: .utf8)
        let rc = "pcm_type.ipn { lib \"\(TestSupport.productsDirectory)/libasound_module_pcm_ipn.so\" }\n" + sample
        try rc.write(toFile: dir + "/.asoundrc", atomically: true, encoding: .utf8)
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a shell script in the test directory with HOME there (so ALSA reads our .asoundrc) and the
    /// products on PATH. `fail` is a helper that the script can use to report.
    /// Runs a scenario. A run in which the machine itself stalled the server's clock (server xruns in its
    /// log: the dummy clock skipped the periods it slept through, as a card's would) says nothing about
    /// the bus and is run again, three runs at most; the tests then judge the last run, whatever happened.
    func script(_ body: String, timeout: Int = 60) async throws -> TestSupport.Outcome {
        var outcome = try await scriptOnce(body, timeout: timeout)
        for run in 2...3 {
            let stalls = serverXruns()
            guard stalls > 0 else { break }
            print("the machine stalled the server (\(stalls) server xruns): running the scenario again (run \(run))")
            outcome = try await scriptOnce(body, timeout: timeout)
        }
        return outcome
    }

    /// Server xruns of the last run, from the server's last line.
    func serverXruns() -> Int {
        let log = (try? String(contentsOfFile: dir + "/server.log", encoding: .utf8)) ?? ""
        guard let line = log.split(separator: "\n").last(where: { $0.contains("server xruns") }) else { return 0 }
        return Int(line.split(separator: ",").last?.split(separator: " ").first ?? "") ?? 0
    }

    private func scriptOnce(_ body: String, timeout: Int) async throws -> TestSupport.Outcome {
        try? FileManager.default.removeItem(atPath: dir + "/server.log")
        let text = """
            set -u
            cd '\(dir)'
            export HOME='\(dir)' PATH='\(TestSupport.productsDirectory):/usr/bin:/bin' BUS='\(bus)'
            waitbus() { i=0; until jackd-ipn stat "$BUS" 2>/dev/null | grep -q 'server node'; do i=$((i+1)); [ $i -gt 400 ] && return 1; sleep 0.025; done; }
            \(body)
            """
        try text.write(toFile: dir + "/scenario.sh", atomically: true, encoding: .utf8)
        return try await TestSupport.runTool("/usr/bin/timeout", ["\(timeout)", "/bin/bash", dir + "/scenario.sh"])
    }

    /// Makes a wav with ffmpeg (white noise of amplitude `level`, or silence).
    func noise(_ name: String, seconds: Double, level: Double, seed: Int) async throws {
        let source = level > 0 ? "anoisesrc=d=\(seconds):c=white:r=48000:a=\(level):seed=\(seed)" : "anullsrc=r=48000:cl=stereo:d=\(seconds)"
        let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", source, "-ac", "2", "-c:a", "pcm_s16le",
                                                                 "-t", "\(seconds)", dir + "/" + name])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
    }

    /// Interleaved stereo s16 of any audio file, decoded by ffmpeg.
    func samples(_ name: String) async throws -> [Int16] {
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-f", "s16le", "-ac", "2", "-ar", "48000", "-"])
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }

    /// Where `source` (from its frame `from`) starts in `recording`, in frames; nil if nowhere.
    func offset(of source: [Int16], from: Int = 2000, in recording: [Int16]) -> Int? {
        let key = Array(source[(2 * from)..<(2 * from + 64)])
        var o = 0
        while o + 64 <= recording.count {
            if recording[o] == key[0] && Array(recording[o..<(o + 64)]) == key { return o / 2 - from }
            o += 2
        }
        return nil
    }

    /// Equal sample runs, or a short account of where they differ (never the whole arrays).
    func assertSame(_ got: ArraySlice<Int16>, _ want: [Int16], _ what: String, line: UInt = #line) {
        let g = Array(got)
        guard g != want else { return }
        let bad = zip(g, want).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        XCTFail("\(what): \(bad.count) of \(want.count) samples differ (got \(g.count)), first at \(bad.first ?? -1), last at \(bad.last ?? -1)", line: line)
    }

    func startServer(_ extra: String = "") -> String {
        "jackd-ipn --bus \"$BUS\" --rate 48000 --period 256 --driver dummy \(extra) > server.log 2>&1 &\nserver=$!\nwaitbus || echo 'no server'"
    }

    func stat() -> String { (try? String(contentsOfFile: dir + "/stat.txt", encoding: .utf8)) ?? "" }

    func testAplayOntoTheBusIsRecordedByArecordSampleExactly() async throws {
        try await noise("in.wav", seconds: 2, level: 0.3, seed: 7)
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 4 out.wav &
            rec=$!
            sleep 0.5
            aplay -q -D "ipn:BUS=$BUS" in.wav || echo "aplay failed"
            jackd-ipn stat "$BUS" > stat.txt
            wait $rec || echo "arecord failed"
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("in.wav"), recorded = try await samples("out.wav")
        let at = try XCTUnwrap(offset(of: played, in: recorded), "the played noise is in the recording")
        XCTAssertGreaterThanOrEqual(at, 0)
        assertSame(recorded[(2 * at)..<(2 * at + played.count)], played, "sample-exact after \(at) frames")
        XCTAssertTrue(recorded[..<(2 * at)].allSatisfy { $0 == 0 } && recorded[(2 * at + played.count)...].allSatisfy { $0 == 0 },
                      "nothing else on the bus")
        let stat = try String(contentsOfFile: dir + "/stat.txt", encoding: .utf8)
        XCTAssertTrue(stat.contains("late 0"), stat)
        XCTAssertTrue(stat.contains("period: 256 frames"), stat)
    }

    func testTwoAppsPlayingAtOnceAreRecordedAsTheirSumAndNonBlockingAppsWork() async throws {
        try await noise("a.wav", seconds: 3, level: 0.2, seed: 1)
        try await noise("b.wav", seconds: 1, level: 0.2, seed: 2)
        let r = try await script("""
            \(startServer())
            # -N: non-blocking mode, so these two wait on the plugin's poll descriptor.
            arecord -N -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 5 out.wav &
            rec=$!
            sleep 0.3
            aplay -N -q -D "ipn:BUS=$BUS" a.wav &
            sleep 1
            aplay -q -D "ipn:BUS=$BUS" b.wav
            wait $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        let a = try await samples("a.wav"), b = try await samples("b.wav"), out = try await samples("out.wav")
        // A alone at first: that places A; what remains once A is taken away is B, alone and exact.
        let atA = try XCTUnwrap(offset(of: a, from: 100, in: out))
        var rest = out
        for i in 0..<a.count { rest[2 * atA + i] = Int16(Int(rest[2 * atA + i]) - Int(a[i])) }
        let atB = try XCTUnwrap(offset(of: b, in: rest), "B is what remains of the mix")
        XCTAssertGreaterThan(atB, atA)
        assertSame(rest[(2 * atB)..<(2 * atB + b.count)], b, "the mix is exactly A + B")
        rest.replaceSubrange((2 * atB)..<(2 * atB + b.count), with: repeatElement(0, count: b.count))
        XCTAssertTrue(rest.allSatisfy { $0 == 0 }, "nothing but A and B")
    }

    func testOtherFormatsAndChannelCountsAreConvertedExactly() async throws {
        try await noise("in.wav", seconds: 1.5, level: 0.3, seed: 9)
        // The same noise as mono S32_LE: each sample is the s16 one shifted up 16 bits, so nothing rounds.
        let convert = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-y", "-i", dir + "/in.wav", "-af", "pan=mono|c0=c0",
                                                                       "-c:a", "pcm_s32le", dir + "/mono32.wav"])
        XCTAssertEqual(convert.exitCode, 0, "\(convert)")
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f FLOAT_LE -r 48000 -c 2 -d 3 out-float.wav &
            rec=$!
            sleep 0.5
            aplay -q -D "ipn:BUS=$BUS" mono32.wav || echo "aplay failed"
            wait $rec || echo "arecord failed"
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let left = try await samples("in.wav").enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let recorded = try await samples("out-float.wav")
        // Mono played is heard on both channels of the bus; FLOAT_LE recorded converts back to s16 exactly.
        let stereo = left.flatMap { [$0, $0] }
        let at = try XCTUnwrap(offset(of: stereo, in: recorded), "the mono S32 noise is in the FLOAT recording")
        assertSame(recorded[(2 * at)..<(2 * at + stereo.count)], stereo, "S32 mono in, FLOAT stereo out")
    }

    func testSeveralBusesShareOneClockAndStayApart() async throws {
        try await noise("one.wav", seconds: 1.5, level: 0.3, seed: 21)
        let r = try await script("""
            jackd-ipn --bus "$BUS,$BUS-2" --period 256 --driver dummy > server.log 2>&1 &
            server=$!
            waitbus
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 3 on-one.wav &
            a=$!
            arecord -q -D "ipn:BUS=$BUS-2" -f S16_LE -r 48000 -c 2 -d 3 on-two.wav &
            b=$!
            sleep 0.5
            aplay -q -D "ipn:BUS=$BUS" one.wav || echo "aplay failed"
            wait $a $b
            jackd-ipn stat "$BUS-2" > stat2.txt
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("one.wav"), one = try await samples("on-one.wav"), two = try await samples("on-two.wav")
        let at = try XCTUnwrap(offset(of: played, in: one))
        assertSame(one[(2 * at)..<(2 * at + played.count)], played, "the first bus")
        XCTAssertTrue(two.allSatisfy { $0 == 0 }, "the second bus hears nothing of the first")
        XCTAssertGreaterThan(two.count, 48_000 * 2 * 2, "yet its clock ran: the recorder there got its periods")
        XCTAssertTrue((try? String(contentsOfFile: dir + "/stat2.txt", encoding: .utf8))?.contains("server node") ?? false)
    }

    func testFFmpegRecordsAndSoxPlaysThroughThePlugin() async throws {
        try await noise("in.wav", seconds: 1.5, level: 0.3, seed: 3)
        let r = try await script("""
            \(startServer())
            ffmpeg -v error -y -f alsa -channels 2 -sample_rate 48000 -i "ipn:BUS=$BUS" -t 3 -c:a pcm_s16le out.wav &
            rec=$!
            sleep 0.5
            AUDIODEV="ipn:BUS=$BUS" sox -q in.wav -t alsa || echo "sox failed"
            wait $rec || echo "ffmpeg failed"
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("in.wav"), recorded = try await samples("out.wav")
        let at = try XCTUnwrap(offset(of: played, in: recorded), "sox's audio is in ffmpeg's recording")
        assertSame(recorded[(2 * at)..<(2 * at + played.count)], played, "sox to ffmpeg")
    }

    func testAKilledAndAStoppedClientDoNotDisturbTheOthers() async throws {
        try await noise("music.wav", seconds: 4, level: 0.3, seed: 4)
        try await noise("silence.wav", seconds: 6, level: 0, seed: 0)
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 6 out.wav &
            rec=$!
            aplay -q -D "ipn:BUS=$BUS" silence.wav 2>/dev/null &
            victim=$!
            aplay -q -D "ipn:BUS=$BUS" silence.wav 2>/dev/null &
            sleeper=$!
            sleep 0.3
            aplay -q -D "ipn:BUS=$BUS" music.wav &
            music=$!
            sleep 1
            kill -KILL $victim
            kill -STOP $sleeper
            sleep 1
            kill -CONT $sleeper
            wait $music || echo "the music player failed"
            jackd-ipn stat "$BUS" > stat.txt
            kill $sleeper 2>/dev/null
            wait $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let music = try await samples("music.wav"), out = try await samples("out.wav")
        let at = try XCTUnwrap(offset(of: music, in: out))
        assertSame(out[(2 * at)..<(2 * at + music.count)], music, "no gap, no click: the others' silence was mixed or missed cleanly\n\(stat())")
    }

    func testKillingTheServerGivesTheAppsAnError() async throws {
        try await noise("long.wav", seconds: 20, level: 0.1, seed: 5)
        let r = try await script("""
            \(startServer())
            aplay -q -D "ipn:BUS=$BUS" long.wav 2> aplay.err &
            player=$!
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 20 out.wav 2> arecord.err &
            rec=$!
            sleep 1
            kill -KILL $server
            wait $player; echo "aplay $?"
            wait $rec; echo "arecord $?"
            """, timeout: 30)
        XCTAssertTrue(r.standardOutput.contains("aplay 1"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("arecord 1"), "\(r)")
        let err = try String(contentsOfFile: dir + "/aplay.err", encoding: .utf8)
        XCTAssertTrue(err.contains("is gone"), err)
    }

    func testWithoutAServerTheAppIsToldWhy() async throws {
        let r = try await script("""
            ipn create "$BUS" --policy mixer --persistent > /dev/null
            aplay -q -D "ipn:BUS=$BUS" /dev/zero -d 1 -f S16_LE -r 48000 -c 2; echo "aplay $?"
            ipn rm "$BUS"
            """)
        XCTAssertTrue(r.standardOutput.contains("aplay 1"), "\(r)")
        XCTAssertTrue(r.standardError.contains("no jackd-ipn is serving"), r.standardError)
    }

    func testASecondServerOnABusIsRefusedAndStatShowsTheClients() async throws {
        let r = try await script("""
            \(startServer())
            jackd-ipn --bus "$BUS" --driver dummy; echo "second $?"
            kill $server; wait $server
            """)
        XCTAssertTrue(r.standardOutput.contains("second 1"), "\(r)")
        XCTAssertTrue(r.standardError.contains("another jackd-ipn already serves this bus"), r.standardError)
    }

    func testTheMixerPolicyRoutesClientsToTheServerAndRejectsGarbage() throws {
        PolicyRegistry.register(MixerPolicy.self)
        let policy = MixerPolicy(options: BusOptions())
        var actions = Recipients(capacity: 8)
        actions.receivers = [1, 2, 3]
        XCTAssertTrue(policy.nodeJoined(PolicyNode(id: 1, canReceive: true, canSend: true, parameters: MixerPolicy.serverParameter), actions: &actions))
        XCTAssertFalse(policy.nodeJoined(PolicyNode(id: 9, canReceive: true, canSend: true, parameters: MixerPolicy.serverParameter), actions: &actions),
                       "one server per bus")
        _ = policy.nodeJoined(PolicyNode(id: 2, canReceive: true, canSend: true, parameters: ""), actions: &actions)
        let period = AudioBusMessage.encode(.init(kind: .period, index: 5, rate: 48000, channels: 2, frames: 0))
        period.withUnsafeBytes { b in
            actions.reset()
            XCTAssertEqual(policy.route(PolicyMessage(sender: 2, bytes: b), into: &actions), .deliver)
            XCTAssertEqual(Array(actions.ids[..<actions.count]), [1], "a client's audio goes to the server alone")
        }
        let mix = AudioBusMessage.encode(.init(kind: .mix, index: 5, rate: 48000, channels: 2, frames: 0))
        mix.withUnsafeBytes { b in
            actions.reset()
            XCTAssertEqual(policy.route(PolicyMessage(sender: 1, bytes: b), into: &actions), .deliver)
            XCTAssertEqual(Array(actions.ids[..<actions.count]), [2, 3], "the mix goes to everyone else")
        }
        let garbage: [UInt8] = Array("not audio at all, but long enough to have a header".utf8)
        garbage.withUnsafeBytes { b in
            actions.reset()
            if case .deliver = policy.route(PolicyMessage(sender: 2, bytes: b), into: &actions) { XCTFail("garbage was delivered") }
        }
        mix.withUnsafeBytes { b in
            actions.reset()
            if case .deliver = policy.route(PolicyMessage(sender: 2, bytes: b), into: &actions) { XCTFail("a client may not send a mix") }
        }
        XCTAssertEqual(policy.statistics["rejected"], "2")
    }
}
