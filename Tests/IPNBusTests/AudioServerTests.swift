import Foundation
import IPNTestSupport
import MediaWire
import XCTest
@testable import IPNBus

/// jackd-ipn with unmodified ALSA programs (aplay, arecord, ffmpeg, sox) through the plugin
/// libasound_module_pcm_ipn.so, configured by an .asoundrc in the test's HOME. Every recording is
/// compared with what was played, sample by sample.
final class AudioServerTests: AudioScriptTestCase {
    /// What the server reported lost, from `jackd-ipn stat` once no player was left (final-stat.txt):
    /// client periods that came after their period was mixed, and periods the server's clock skipped
    /// (it slept through them: a busy or emulated machine), on every bus since it started.
    func reportedLoss(_ file: String = "final-stat.txt") -> (late: Int, server: Int)? {
        let text = (try? String(contentsOfFile: dir + "/" + file, encoding: .utf8)) ?? ""
        guard let m = text.firstMatch(of: /xruns: (\d+) late client periods, (\d+) server/), let late = Int(m.1), let server = Int(m.2) else { return nil }
        return (late, server)
    }

    /// Accounts for every 256-frame period of `recording` (interleaved stereo s16, a mix per period from
    /// its first frame on) as the sum of the `sources`, each played on in order from where it was, and
    /// names whatever breaks that: a source that skips frames (its audio was lost), a source silent for a
    /// period (nothing of it was mixed), or a period nothing explains.
    struct Account: CustomStringConvertible {
        var breaks: [String] = []
        /// Frames of each source skipped: lost between playing and recording.
        var skipped: [Int]
        /// Periods in which a source that had started and not ended was silent.
        var silent: [Int]
        /// Where each source stood at the end of the recording (frames), nil if it was never found.
        var ends: [Int?]
        var unexplained: String?
        /// A run of silent periods of the same sources: one break, however long.
        mutating func silence(_ sources: [Int], at frame: Int, period: Int) {
            for i in sources { silent[i] += 1 }
            if let last = run, last.sources == sources, last.from + last.count * period == frame {
                run!.count += 1
                breaks[breaks.count - 1] = "sources \(sources) silent for \(run!.count) periods from recording frame \(last.from)"
            } else {
                run = (sources, frame, 1)
                breaks.append("sources \(sources) silent at recording frame \(frame)")
            }
        }
        var run: (sources: [Int], from: Int, count: Int)?
        var description: String {
            "skipped frames \(skipped), silent periods \(silent), ended at \(ends.map { $0.map(String.init) ?? "-" })"
                + (breaks.isEmpty ? "" : "; breaks: " + breaks.joined(separator: "; ")) + (unexplained.map { "; UNEXPLAINED: " + $0 } ?? "")
        }
    }

    static func account(_ recording: [Int16], sources: [[Int16]], period: Int = 256) -> Account {
        let frames = recording.count / 2
        var offset: [Int?] = Array(repeating: nil, count: sources.count)
        var a = Account(skipped: Array(repeating: 0, count: sources.count), silent: Array(repeating: 0, count: sources.count), ends: [])
        /// Sample `k` (of 2 per frame) of source `i` at its frame `f`: zero outside it.
        func sample(_ i: Int, _ f: Int, _ k: Int) -> Int { f >= 0 && f < sources[i].count / 2 ? Int(sources[i][2 * f + k]) : 0 }
        /// Whether the period at recording frame `f0` (`n` frames) is the sum of the sources at `at`
        /// (nil: contributing nothing).
        func matches(_ f0: Int, _ n: Int, _ at: [Int?]) -> Bool {
            for f in 0..<n {
                for k in 0..<2 {
                    var sum = 0
                    for i in sources.indices { if let o = at[i] { sum += sample(i, o + f, k) } }
                    if Int(recording[2 * (f0 + f) + k]) != max(-32768, min(32767, sum)) { return false }
                }
            }
            return true
        }
        /// Frames of source `i` where `key` (frames of the recording minus the other sources) occurs.
        func find(_ i: Int, _ key: [Int]) -> Int? {
            let src = sources[i], m = key.count / 2
            guard m > 0, src.count / 2 >= m else { return nil }
            outer: for s in 0...(src.count / 2 - m) {
                for j in 0..<key.count where Int(src[2 * s + j]) != key[j] { continue outer }
                return s
            }
            return nil
        }
        var f0 = 0
        periods: while f0 < frames {
            let n = min(period, frames - f0)
            defer { f0 += n }
            let placed = offset
            // 1. Every placed source plays on.
            if matches(f0, n, placed) {
                for i in sources.indices { if let o = offset[i] { offset[i] = o + n } }
                continue
            }
            // What the placed sources do not explain, frame by frame.
            func residual(_ at: [Int?]) -> [Int] {
                (0..<(2 * n)).map { j in
                    var sum = 0
                    for i in sources.indices { if let o = at[i] { sum += sample(i, o + j / 2, j % 2) } }
                    return Int(recording[2 * f0 + j]) - sum
                }
            }
            // 2. A source not yet found starts here (or, if its start was lost, further in).
            for i in sources.indices where offset[i] == nil {
                let rest = residual(placed)
                guard let q = stride(from: 0, to: rest.count, by: 2).first(where: { rest[$0] != 0 || rest[$0 + 1] != 0 }).map({ $0 / 2 }) else { continue }
                let key = Array(rest[(2 * q)..<min(rest.count, 2 * q + 32)])
                guard let s = find(i, key) else { continue }
                var at = placed
                at[i] = s - q
                if matches(f0, n, at) {
                    if s > 0 { a.skipped[i] += s; a.breaks.append("source \(i) found at recording frame \(f0 + q) from its frame \(s) (its start lost)") }
                    for j in sources.indices { if let o = at[j] { offset[j] = o + n } }
                    continue periods
                }
            }
            let active = sources.indices.filter { i in placed[i].map { $0 < sources[i].count / 2 } ?? false }
            // 3. Some sources silent this period (nothing of them mixed: they resume where they were), and
            //    the others play on, skip periods all together (the server skipped them), or one of them
            //    jumps (its periods came late).
            let subsets = (0..<(1 << active.count)).map { m in active.indices.filter { m & (1 << $0) != 0 }.map { active[$0] } }
                .sorted { $0.count < $1.count }
            // Silence alone first: a silent period must not be taken for a skip past a source's end.
            for silent in subsets where !silent.isEmpty {
                var base = placed
                for i in silent { base[i] = nil }
                if matches(f0, n, base) {
                    a.silence(silent, at: f0, period: period)
                    for j in sources.indices where !silent.contains(j) { if let o = base[j] { offset[j] = o + n } }
                    continue periods
                }
            }
            for silent in subsets {
                var base = placed
                for i in silent { base[i] = nil }
                let playing = active.filter { !silent.contains($0) }
                func take(_ at: [Int?], _ what: String) {
                    if !silent.isEmpty { a.silence(silent, at: f0, period: period) }
                    if !what.isEmpty { a.breaks.append(what) }
                    for j in sources.indices where !silent.contains(j) { if let o = at[j] { offset[j] = o + n } }
                }
                if !playing.isEmpty {
                    for k in 1...4000 {
                        var at = base
                        for i in playing { at[i] = placed[i]! + k * period }
                        guard playing.allSatisfy({ at[$0]! < sources[$0].count / 2 }) else { break }
                        if matches(f0, n, at) {
                            for i in playing { a.skipped[i] += k * period }
                            take(at, "sources \(playing) skip \(k) periods at recording frame \(f0)")
                            continue periods
                        }
                    }
                }
                for i in playing {
                    var others = base
                    others[i] = nil
                    let rest = residual(others)
                    guard rest.prefix(32).contains(where: { $0 != 0 }), let s = find(i, Array(rest.prefix(32))) else { continue }
                    var at = base
                    at[i] = s
                    if matches(f0, n, at) {
                        let jump = s - placed[i]!
                        if jump < 0 { a.unexplained = "source \(i) repeats \(-jump) frames at recording frame \(f0)"; break periods }
                        a.skipped[i] += jump
                        take(at, "source \(i) jumps \(jump) frames at recording frame \(f0)")
                        continue periods
                    }
                }
            }
            a.unexplained = "recording frames \(f0)..<\(f0 + n) are no sum of the sources at \(placed.map { $0.map(String.init) ?? "-" })"
            break
        }
        a.ends = offset
        return a
    }

    /// The recording holds every source whole, except what the server reported lost: nothing but the
    /// sources is in it, nothing of them repeated or out of order (or the period is unexplained), and no
    /// source lost more periods than the server reported (late client periods + server xruns); with nothing
    /// reported, nothing is lost at all.
    ///
    /// A late client period is mixed without that client (a silent period of its source) and never
    /// played (its source skips a period); a period the server skipped is cut from every source. The
    /// count can only be held to "no more than reported", not "as many as reported": server xruns are
    /// counted over the server's whole life, also while nothing plays, and the server does not say which
    /// periods it skipped; a late period of the silence a player pads its end with loses nothing audible.
    /// A silent period after which a source goes on where it was (nothing lost, the audio came later) is a
    /// player's underrun, which the ALSA plugin counts but reports nowhere: such delays are listed, not
    /// failed, since a loaded machine makes them and they lose nothing.
    func assertAccounted(_ recording: [Int16], _ sources: [[Int16]], reported: (late: Int, server: Int)?,
                         _ what: String, line: UInt = #line) {
        guard let reported else { return XCTFail("\(what): the server's final report is missing: \(file("final-stat.txt"))", line: line) }
        let a = Self.account(recording, sources: sources)
        let lost = reported.late + reported.server
        let note = "\(what): \(a); reported \(reported.late) late client periods, \(reported.server) server xruns"
        XCTAssertNil(a.unexplained, note, line: line)
        for i in sources.indices {
            // What never came at the end (its last periods late) is lost like any other period.
            let tail = max(0, sources[i].count / 2 - (a.ends[i] ?? 0))
            let periods = (a.skipped[i] + 255) / 256 + (tail + 255) / 256
            XCTAssertNotNil(a.ends[i], "\(note): source \(i) is in the recording", line: line)
            XCTAssertLessThanOrEqual(periods, lost, "\(note): source \(i) lost \(periods) periods, no more than reported", line: line)
        }
        if !a.breaks.isEmpty { print("\(what): accounted for breaks: \(note)") }
    }

    func testAplayOntoTheBusIsRecordedByArecordSampleExactly() async throws {
        try await noise("in.wav", seconds: 2, level: 0.3, seed: 7)
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 out.wav &
            rec=$!
            grows out.wav 4096                       # the recorder is capturing before anything plays
            aplay -q -D "ipn:BUS=$BUS" in.wav || echo "aplay failed"
            jackd-ipn stat "$BUS" > stat.txt
            settle && stoprec $rec                   # recorded until the server has mixed the player's last period
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("in.wav"), recorded = try await samples("out.wav")
        assertAccounted(recorded, [played], reported: reportedLoss(), "aplay to arecord")
        XCTAssertTrue(file("stat.txt").contains("period: 256 frames"), file("stat.txt"))
    }

    func testTwoAppsPlayingAtOnceAreRecordedAsTheirSumAndNonBlockingAppsWork() async throws {
        try await noise("a.wav", seconds: 3, level: 0.2, seed: 1)
        try await noise("b.wav", seconds: 1, level: 0.2, seed: 2)
        let r = try await script("""
            \(startServer())
            # -N: non-blocking mode, so these two wait on the plugin's poll descriptor.
            arecord -N -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 out.wav &
            rec=$!
            grows out.wav 4096
            aplay -N -q -D "ipn:BUS=$BUS" a.wav &
            shows '1 of them playing'                # A plays (alone) before B starts
            aplay -q -D "ipn:BUS=$BUS" b.wav
            settle && stoprec $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let a = try await samples("a.wav"), b = try await samples("b.wav"), out = try await samples("out.wav")
        // Every period of the recording is A + B (each where it stood), sample-exact, nothing else.
        assertAccounted(out, [a, b], reported: reportedLoss(), "the mix of A and B")
    }

    func testOtherFormatsAndChannelCountsAreConvertedExactly() async throws {
        try await noise("in.wav", seconds: 1.5, level: 0.3, seed: 9)
        // The same noise as mono S32_LE: each sample is the s16 one shifted up 16 bits, so nothing rounds.
        let convert = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-y", "-i", dir + "/in.wav", "-af", "pan=mono|c0=c0",
                                                                       "-c:a", "pcm_s32le", dir + "/mono32.wav"])
        XCTAssertEqual(convert.exitCode, 0, "\(convert)")
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f FLOAT_LE -r 48000 -c 2 out-float.wav &
            rec=$!
            grows out-float.wav 8192
            aplay -q -D "ipn:BUS=$BUS" mono32.wav || echo "aplay failed"
            settle && stoprec $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let left = try await samples("in.wav").enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let recorded = try await samples("out-float.wav")
        // Mono played is heard on both channels of the bus; FLOAT_LE recorded converts back to s16 exactly.
        let stereo = left.flatMap { [$0, $0] }
        assertAccounted(recorded, [stereo], reported: reportedLoss(), "S32 mono in, FLOAT stereo out")
    }

    func testSeveralBusesShareOneClockAndStayApart() async throws {
        try await noise("one.wav", seconds: 1.5, level: 0.3, seed: 21)
        let r = try await script("""
            jackd-ipn --bus "$BUS,$BUS-2" --period 256 --driver dummy > server.log 2>&1 &
            server=$!
            waitbus
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 on-one.wav &
            a=$!
            arecord -q -D "ipn:BUS=$BUS-2" -f S16_LE -r 48000 -c 2 -d 3 on-two.wav &
            b=$!
            grows on-one.wav 4096 && grows on-two.wav 4096
            aplay -q -D "ipn:BUS=$BUS" one.wav || echo "aplay failed"
            settle && stoprec $a
            wait $b || echo "the second bus's arecord failed"
            jackd-ipn stat "$BUS-2" > stat2.txt
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("one.wav"), one = try await samples("on-one.wav"), two = try await samples("on-two.wav")
        assertAccounted(one, [played], reported: reportedLoss(), "the first bus")
        XCTAssertTrue(two.allSatisfy { $0 == 0 }, "the second bus hears nothing of the first")
        // A count, not a rate: arecord -d 3 takes 3 s of frames, which only the bus's clock delivers.
        XCTAssertEqual(two.count, 3 * 48_000 * 2, "yet its clock ran: the recorder there got its periods")
        XCTAssertTrue(file("stat2.txt").contains("server node"), file("stat2.txt"))
    }

    func testFFmpegRecordsAndSoxPlaysThroughThePlugin() async throws {
        try await noise("in.wav", seconds: 1.5, level: 0.3, seed: 3)
        let r = try await script("""
            \(startServer())
            ffmpeg -v error -y -f alsa -channels 2 -sample_rate 48000 -i "ipn:BUS=$BUS" -c:a pcm_s16le out.wav < /dev/null &
            rec=$!
            grows out.wav 0                          # ffmpeg writes once it has captured (its own buffering)
            AUDIODEV="ipn:BUS=$BUS" sox -q in.wav -t alsa || echo "sox failed"
            settle && stoprec $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let played = try await samples("in.wav"), recorded = try await samples("out.wav")
        assertAccounted(recorded, [played], reported: reportedLoss(), "sox to ffmpeg")
    }

    /// Most music is 44.1 kHz, and the server runs at 48: `plug:` in front of the plugin converts any rate, for
    /// every kind of program (aplay, ffmpeg, sox, mpv, speaker-test), and so does the `default` device the
    /// README suggests. Each is recorded on the bus and its tone measured: a wrong rate shows in the pitch and
    /// in the length. (Before the plugin offered mmap access, alsa-lib's rate converter could not open it:
    /// "Unable to install hw params" for every rate but the server's.)
    func testPlugPlaysEveryRateAtTheRightPitchForEveryKindOfProgram() async throws {
        try TestSupport.require(tools: ["/usr/bin/mpv", "/usr/bin/speaker-test"])
        for rate in [32_000, 44_100, 96_000] {
            let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=997:sample_rate=\(rate):duration=1.5",
                                                                     "-af", "volume=-6dB", "-ac", "2", "-c:a", "pcm_s16le", dir + "/tone-\(rate).wav"])
            XCTAssertEqual(r.exitCode, 0, "\(r)")
        }
        // The README's way to make the bus the default device: the sample's BUS default changed to this bus,
        // its pcm.!default block uncommented.
        var rc = try String(contentsOfFile: dir + "/.asoundrc", encoding: .utf8)
        rc = rc.replacingOccurrences(of: "default \"/tmp/audio\"", with: "default \"\(bus)\"")
        rc = rc.replacingOccurrences(of: "# pcm.!default {\n#     type plug\n#     slave.pcm \"ipn\"\n# }", with: "pcm.!default {\n    type plug\n    slave.pcm \"ipn\"\n}")
        XCTAssertTrue(rc.contains("pcm.!default {\n    type plug"), "the sample's default block is where the README says")
        try rc.write(toFile: dir + "/.asoundrc", atomically: true, encoding: .utf8)
        // As a user pastes them (the README's lines), each into its own recording.
        let plays: [(name: String, command: String)] = [
            ("aplay-44100", #"aplay -q -D "plug:'ipn:BUS=$BUS'" tone-44100.wav"#),
            ("aplay-32000", #"aplay -q -D "plug:'ipn:BUS=$BUS'" tone-32000.wav"#),
            ("aplay-96000", #"aplay -q -D "plug:'ipn:BUS=$BUS'" tone-96000.wav"#),
            ("ffmpeg-44100", #"ffmpeg -v error -i tone-44100.wav -f alsa "plug:'ipn:BUS=$BUS'" < /dev/null"#),
            ("sox-44100", #"AUDIODEV="plug:'ipn:BUS=$BUS'" sox -q tone-44100.wav -t alsa"#),
            ("mpv-44100", #"mpv --no-config --really-quiet --vo=null --ao=alsa --audio-device="alsa/plug:'ipn:BUS=$BUS'" tone-44100.wav"#),
            ("default-44100", #"aplay -q -D default tone-44100.wav"#),
            ("speaker-test-44100", #"speaker-test -D "plug:'ipn:BUS=$BUS'" -r 44100 -c 1 -t sine -f 997 -l 1 > /dev/null"#),
        ]
        let steps = plays.map { p in
            """
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 rec-\(p.name).wav &
            rec=$!
            grows rec-\(p.name).wav 4096
            \(p.command) 2> \(p.name).err || echo "\(p.name) failed: $(cat \(p.name).err)"
            settle && stoprec $rec
            """
        }.joined(separator: "\n")
        let r = try await script("""
            \(startServer())
            \(steps)
            kill $server; wait $server
            """, timeout: 240)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        for p in plays {
            let recorded = try await samples("rec-\(p.name).wav")
            let tone = Signal(stride(from: 0, to: recorded.count - 1, by: 2).map { recorded[$0] }, rate: 48_000).active()
            XCTAssertEqual(tone.frequency, 997, accuracy: 2, "\(p.name): the pitch")
            if p.name.hasPrefix("speaker-test") {
                XCTAssertGreaterThan(tone.seconds, 1, "\(p.name): the tone was heard")
            } else {
                XCTAssertEqual(tone.seconds, 1.5, accuracy: 0.1, "\(p.name): all of the 1.5 s tone, at its length")
            }
        }
    }

    func testAKilledAndAStoppedClientDoNotDisturbTheOthers() async throws {
        try await noise("music.wav", seconds: 4, level: 0.3, seed: 4)
        try await noise("silence.wav", seconds: 6, level: 0, seed: 0)
        let r = try await script("""
            \(startServer())
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 out.wav &
            rec=$!
            grows out.wav 4096
            aplay -q -D "ipn:BUS=$BUS" silence.wav 2>/dev/null &
            victim=$!
            aplay -q -D "ipn:BUS=$BUS" silence.wav 2>/dev/null &
            sleeper=$!
            shows '2 of them playing'
            aplay -q -D "ipn:BUS=$BUS" music.wav &
            music=$!
            shows '3 of them playing'                # the music plays beside them...
            kill -KILL $victim                       # ...when one is killed and the other stopped
            kill -STOP $sleeper
            sleep 1                                  # the scenario: stopped for a second (the music plays 4 s)
            kill -CONT $sleeper
            wait $music || echo "the music player failed"
            kill $sleeper 2>/dev/null
            settle && stoprec $rec
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let music = try await samples("music.wav"), out = try await samples("out.wav")
        // (The stopped client's late periods are in the server's count too: it keeps no client's count once
        // the client left.)
        assertAccounted(out, [music], reported: reportedLoss(), "no gap, no click: the others' silence was mixed or missed cleanly")
    }

    func testKillingTheServerGivesTheAppsAnError() async throws {
        try await noise("long.wav", seconds: 20, level: 0.1, seed: 5)
        let r = try await script("""
            \(startServer())
            aplay -q -D "ipn:BUS=$BUS" long.wav 2> aplay.err &
            player=$!
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 20 out.wav 2> arecord.err &
            rec=$!
            shows '2 client(s), 1 of them playing'  # both are on the bus, the player playing
            kill -KILL $server
            wait $player; echo "aplay $?"
            wait $rec; echo "arecord $?"
            """, timeout: 30)
        XCTAssertTrue(r.standardOutput.contains("aplay 1"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("arecord 1"), "\(r)")
        // The error the README promises, from both; never an xrun with a made-up length (before: arecord said
        // "overrun!!! (at least 1796318802140 ms long)" and aplay "Input/output error").
        for app in ["aplay", "arecord"] {
            let err = file("\(app).err")
            XCTAssertTrue(err.contains("is gone"), "\(app): \(err)")
            XCTAssertTrue(err.contains("No such device"), "\(app): \(err)")
            XCTAssertFalse(err.contains("run!!!"), "\(app): \(err)")
        }
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

    /// A server that is not jackd-ipn numbers its mixes as it likes: once the player's audio arrives, this
    /// one's index jumps to 2 before the end of its 64-bit counter and runs on past it. The player (the
    /// plugin inside aplay) counts with it, wrapping, and plays to the end.
    ///
    /// Before the fix the plugin computed `index + lookahead + 1` and trapped inside aplay at the jump.
    func testAServerWhoseMixIndexRunsPastTheEndOfItsCounterDoesNotCrashThePlayer() async throws {
        PolicyRegistry.register(MixerPolicy.self)
        try await noise("in.wav", seconds: 1, level: 0.1, seed: 14)
        let server = IPNSocket(policy: MixerPolicy.name)
        server.options.mtu = 1 << 16
        server.options.inlineBytes = 4096  // a whole mix inline, as jackd-ipn does
        server.options.queueLength = 512
        server.policyParameters = MixerPolicy.serverParameter
        server.description = "a server that is not jackd-ipn"
        try server.bind(bus)
        try server.connect()
        struct Clock { var stop = false, periodsAfterTheJump = 0 }
        let clock = Locked(Clock())
        let stopped = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var index: UInt64 = 0
            var jumped = false
            while !clock.withLock({ $0.stop }) {
                // The player's periods: at the first one (aplay is playing), the counter jumps.
                while let period = try? server.withNextMessage(nonBlocking: true, { v in (try? AudioBusMessage.decodeHeader(v.bytes))?.kind == .period }) {
                    guard period else { continue }
                    if jumped { clock.withLock { $0.periodsAfterTheJump += 1 } } else { jumped = true; index = .max - 2 }
                }
                let h = AudioBusMessage.Header(kind: .mix, index: index, rate: 48000, channels: 2, frames: 256)
                try? server.send(length: h.size, nonBlocking: true) { out in
                    _ = out.initializeMemory(as: UInt8.self, repeating: 0)
                    AudioBusMessage.writeHeader(h, into: out)
                }
                index &+= 1
                usleep(5333)  // this server's clock: a period of 256 frames at 48 kHz
            }
            stopped.signal()
        }
        let r = try await script("""
            aplay -q -D "ipn:BUS=$BUS" in.wav; echo "aplay $?"
            """, timeout: 60)
        clock.withLock { $0.stop = true }
        stopped.wait()
        XCTAssertTrue(r.standardOutput.contains("aplay 0"), "the player lived through the wrap and played to the end: \(r)")
        XCTAssertGreaterThan(clock.withLock { $0.periodsAfterTheJump }, 100, "its audio kept coming after the jump (a second is 187 periods)")
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
