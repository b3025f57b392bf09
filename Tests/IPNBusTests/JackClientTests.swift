import Foundation
import IPNTestSupport
import XCTest

/// Unmodified JACK programs (Debian's jackd2 tools) on jackd-ipn through our libjack.so.0, run by `ipn-jack`;
/// what reaches the card's side is recorded by arecord through the ALSA plugin (the dummy clock: no card).
final class JackClientTests: AudioScriptTestCase {
    override func setUpWithError() throws {
        try TestSupport.require(tools: ["/usr/bin/jack_lsp", "/usr/bin/jack_simple_client", "/usr/bin/jack_connect", "/usr/bin/jack_iodelay",
                                        "/usr/bin/stdbuf", "/usr/bin/jack_evmon", "/usr/bin/jack_midi_latency_test"])
        try super.setUpWithError()
    }

    /// A scenario with JACK programs: they find the server by JACK_DEFAULT_SERVER (here the bus path), the
    /// private library directory is in the test's XDG_RUNTIME_DIR. `waitconn A B`: `jack_lsp -c` shows A
    /// connected to B. `waitport P...`: `jack_lsp` lists every port P.
    func jack(_ body: String, timeout: Int = 90) async throws -> TestSupport.Outcome {
        try await ranToItsEnd(script("""
            export XDG_RUNTIME_DIR='\(dir)' JACK_DEFAULT_SERVER="$BUS"
            waitport() { for p in "$@"; do i=0; until ipn-jack jack_lsp 2>/dev/null | grep -qx "$p"; do i=$((i+1)); [ $i -gt 1200 ] && { echo "no port $p"; return 1; }; sleep 0.025; done; done; }
            waitconn() { i=0; until ipn-jack jack_lsp -c 2>/dev/null | grep -A1 -x "$1" | grep -qx "   $2"; do i=$((i+1)); [ $i -gt 1200 ] && { echo "$1 never connected to $2"; return 1; }; sleep 0.025; done; }
            \(startServer())
            \(body)
            """, timeout: timeout))
    }

    /// A scenario cut short by its timeout fails the test, whatever it printed.
    func ranToItsEnd(_ r: TestSupport.Outcome, line: UInt = #line) -> TestSupport.Outcome {
        XCTAssertEqual(r.exitCode, 0, "the scenario ran to its end: \(r)", line: line)
        return r
    }

    func testJackLspListsTheCardsPortsWithPropertiesTypesAndLatencyAsJackd2Does() async throws {
        let r = try await jack("""
            ipn-jack jack_lsp -p -t -l > lsp.txt 2> lsp.err || echo "jack_lsp failed: $(cat lsp.err)"
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        var expected = ""
        for (name, direction, capture, playback) in [("system:capture_1", "output", 256, 0), ("system:capture_2", "output", 256, 0),
                                                     ("system:playback_1", "input", 0, 256), ("system:playback_2", "input", 0, 256)] {
            expected += "\(name)\n\tport playback latency = [ \(playback) \(playback) ] frames\n\tport capture latency = [ \(capture) \(capture) ] frames\n"
            expected += "\tproperties: \(direction),physical,terminal,\n\t32 bit float mono audio\n"
        }
        XCTAssertEqual(file("lsp.txt"), expected)
        XCTAssertEqual(file("lsp.err"), "", "nothing said on standard error")
    }

    func testSimpleClientsTonesReachTheCardAndConnectionsChangeWhatItPlays() async throws {
        let r = try await jack("""
            ipn-jack jack_simple_client > simple.log 2>&1 &
            simple=$!
            waitconn jack_simple_client:output1 system:playback_1
            waitconn jack_simple_client:output2 system:playback_2
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 2 tones.wav || echo "arecord failed"
            # Both outputs off the card: it plays silence. (jack_disconnect returns once the server told it.)
            ipn-jack jack_disconnect jack_simple_client:output1 system:playback_1 || echo "jack_disconnect 1 failed"
            ipn-jack jack_disconnect jack_simple_client:output2 system:playback_2 || echo "jack_disconnect 2 failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 1 silent.wav || echo "arecord failed"
            # The left tone into the right channel only.
            ipn-jack jack_connect jack_simple_client:output1 system:playback_2 || echo "jack_connect failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 2 swapped.wav || echo "arecord failed"
            ipn-jack jack_lsp -c > connections.txt
            jackd-ipn stat "$BUS" > stat.txt
            kill -INT $simple; wait $simple
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        // jack_simple_client's tables: 200 samples a cycle on the left, 3 cycles per 200 on the right.
        let tones = try await samples("tones.wav")
        XCTAssertEqual(tones.count, 2 * 96_000, "2 s recorded")
        let left = Signal(tones, channel: 0, of: 2, rate: 48_000).active(), right = Signal(tones, channel: 1, of: 2, rate: 48_000).active()
        XCTAssertGreaterThan(left.seconds, 1.5, "the left tone plays throughout")
        XCTAssertEqual(left.frequency, 240, accuracy: 1)
        XCTAssertEqual(right.frequency, 720, accuracy: 2)
        XCTAssertEqual(left.rmsDecibels, 20 * log10(0.2 / 2.squareRoot()), accuracy: 1, "amplitude 0.2, as the client wrote it")
        let silent = try await samples("silent.wav")
        XCTAssertEqual(silent.count, 2 * 48_000)
        XCTAssertEqual(silent.map { abs(Int($0)) }.max(), 0, "nothing connected to the card: silence")
        let swapped = try await samples("swapped.wav")
        XCTAssertEqual(Signal(swapped, channel: 0, of: 2, rate: 48_000).samples.map { abs(Int($0)) }.max(), 0, "the left channel is silent")
        XCTAssertEqual(Signal(swapped, channel: 1, of: 2, rate: 48_000).active().frequency, 240, accuracy: 1, "the left tone plays on the right")
        XCTAssertEqual(file("connections.txt"), """
            system:capture_1
            system:capture_2
            system:playback_1
            system:playback_2
               jack_simple_client:output1
            jack_simple_client:output1
               system:playback_2
            jack_simple_client:output2

            """)
        XCTAssertTrue(file("stat.txt").contains("JACK jack_simple_client: active, processed "), file("stat.txt"))
    }

    /// A client's output connected to its own input comes back one period later (the graph cannot run a
    /// client before itself): what jack_iodelay measures is exactly the period.
    func testIodelayThroughALoopbackConnectionMeasuresOnePeriod() async throws {
        let r = try await jack("""
            stdbuf -o0 ipn-jack jack_iodelay > iodelay.txt 2>&1 &
            io=$!
            waitport jack_delay:in
            ipn-jack jack_connect jack_delay:out jack_delay:in || echo "jack_connect failed"
            i=0; until [ "$(grep -c 'total roundtrip latency' iodelay.txt)" -ge 5 ]; do i=$((i+1)); [ $i -gt 2400 ] && { echo "jack_iodelay measured nothing"; break; }; sleep 0.025; done
            kill $io; wait $io
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let measured = file("iodelay.txt").split(separator: "\n").filter { $0.contains("total roundtrip latency") }
        XCTAssertGreaterThanOrEqual(measured.count, 5, file("iodelay.txt"))
        for line in measured {
            // iodelay interpolates its signal's phase: 256.000 or 256.001, say.
            let frames = line.split(separator: " ").first.flatMap { Double($0) }
            XCTAssertEqual(frames ?? 0, 256, accuracy: 0.1, "one period of 256 frames: \(line)")
        }
    }

    /// JACK metadata with Debian's `jack_property`: a port's pretty name and a client's property are set, read
    /// back and listed; every client hears each change (`jack_evmon`); one is deleted; a client's properties go
    /// with it; and all are deleted at once.
    func testPropertiesOfPortsAndClientsAreKeptToldAndRemoved() async throws {
        let pretty = "http://jackaudio.org/metadata/pretty-name"
        let r = try await jack("""
            ipn-jack stdbuf -oL jack_evmon > evmon.log 2>&1 &
            evmon=$!
            # Until evmon hears a property change, set one on it (each set after the first is a change).
            i=0; until ipn-jack jack_property -s -c event-monitor urn:ipn:ready yes 2>/dev/null && grep -q "urn:ipn:ready" evmon.log; do
                i=$((i+1)); [ $i -gt 1200 ] && { echo "evmon never heard a property change"; break; }; sleep 0.025; done
            ipn-jack jack_property -d -c event-monitor urn:ipn:ready || echo "delete ready failed"
            ipn-jack jack_simple_client > /dev/null 2>&1 &
            simple=$!
            waitport jack_simple_client:output1
            ipn-jack jack_property -s -p system:playback_1 \(pretty) "Left speaker" || echo "set port failed"
            ipn-jack jack_property -s -c jack_simple_client urn:ipn:test "a tone" text/plain || echo "set client failed"
            ipn-jack jack_property -l -p system:playback_1 \(pretty) > port-value.txt || echo "get failed"
            ipn-jack jack_property -l -c jack_simple_client > client-list.txt || echo "list client failed"
            ipn-jack jack_property -l > all.txt || echo "list all failed"
            ipn-jack jack_property -s -p system:playback_1 \(pretty) "Left" || echo "change failed"
            ipn-jack jack_property -l -p system:playback_1 \(pretty) > changed.txt
            ipn-jack jack_property -d -p system:playback_1 \(pretty) || echo "delete failed"
            ipn-jack jack_property -l -p system:playback_1 \(pretty) > deleted.txt 2>&1 && echo "a deleted property was found"
            kill $simple; wait $simple
            ipn-jack jack_property -l > after-client.txt
            ipn-jack jack_property -s -p system:capture_1 \(pretty) "Mic" || echo "set capture failed"
            ipn-jack jack_property -D > delete-all.txt || echo "delete all failed"
            ipn-jack jack_property -l > after-all.txt
            ipn-jack jack_lsp -U 2>/dev/null | head -2 > uuids.txt
            ipn-jack jack_property -l -c jack_simple_client > gone-client.txt 2>&1
            kill $evmon; wait $evmon
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        XCTAssertEqual(file("port-value.txt"), "Left speaker\n")
        XCTAssertEqual(file("client-list.txt"), "key: urn:ipn:test value: a tone type: text/plain\n")
        let all = file("all.txt").split(separator: "\n").map(String.init)
        XCTAssertEqual(all.count, 4, file("all.txt"))
        XCTAssertTrue(all.contains("key: \(pretty) value: Left speaker"), file("all.txt"))
        XCTAssertTrue(all.contains("key: urn:ipn:test value: a tone type: text/plain"), file("all.txt"))
        XCTAssertEqual(file("changed.txt"), "Left\n")
        XCTAssertTrue(file("deleted.txt").contains("Value not found"), file("deleted.txt"))
        XCTAssertEqual(file("after-client.txt"), "", "the client's properties went with it")
        XCTAssertTrue(file("delete-all.txt").contains("successfully"), file("delete-all.txt"))
        XCTAssertEqual(file("after-all.txt"), "")
        // jack2's numbering: system:capture_1 is port 1, a port's uuid has 1 in its high 32 bits.
        XCTAssertEqual(file("uuids.txt"), "system:capture_1\n\tuuid: \(UInt64(1) << 32 | 1)\n")
        XCTAssertTrue(file("gone-client.txt").contains("cannot get UUID for client named jack_simple_client"), file("gone-client.txt"))
        let evmon = file("evmon.log"), playback1 = UInt64(1) << 32 | 3
        for change in ["created", "changed", "deleted"] {
            XCTAssertTrue(evmon.contains("key [\(pretty)] for \(playback1) \(change)"), "evmon heard the pretty name \(change): \(evmon)")
        }
        XCTAssertTrue(evmon.contains("All properties changed!"), evmon)
    }

    /// What jackd-ipn does not serve fails as JACK's API says, saying why, and the program ends cleanly:
    /// `jack_load` (internal clients) and `jack_unload`; a session notification finds no client to tell.
    func testInternalClientsAndSessionsFailCleanly() async throws {
        let r = try await jack("""
            ipn-jack jack_load sine nothing > load.txt 2>&1; echo "load $?" >> load.txt
            ipn-jack jack_unload sine > unload.txt 2>&1; echo "unload $?" >> unload.txt
            mkdir session; ipn-jack jack_session_notify save "$PWD/session" > notify.txt 2>&1; echo "notify $?" >> notify.txt
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        XCTAssertTrue(file("load.txt").contains("jack_internal_client_load (jackd-ipn has no internal clients) is not implemented"), file("load.txt"))
        XCTAssertTrue(file("load.txt").contains("could not load nothing") && !file("load.txt").hasSuffix("load 0\n"), file("load.txt"))
        XCTAssertTrue(file("unload.txt").contains("client sine not found") && !file("unload.txt").hasSuffix("unload 0\n"), file("unload.txt"))
        XCTAssertEqual(file("notify.txt"), "sleep 10\nnotify 0\n", "no client answered, and the program ended cleanly")
    }

    func testWithoutAServerJackProgramsAreToldWhy() async throws {
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        let r = try await ranToItsEnd(script("""
            export XDG_RUNTIME_DIR='\(dir)/run'
            ipn-jack jack_lsp > lsp.txt 2> lsp.err; echo "jack_lsp $?"
            """))
        XCTAssertEqual(r.standardOutput, "jack_lsp 1\n", "\(r)")
        XCTAssertTrue(file("lsp.err").contains("JACK server \"default\" is not running (no bus at \(dir)/run/jack-ipn/default): start one with jackd-ipn\n"),
                      file("lsp.err"))
        XCTAssertTrue(file("lsp.err").contains("Error: cannot connect to JACK, server is not running."), "jack_lsp's own words: \(file("lsp.err"))")
    }

    /// jackd-ipn with no --bus serves JACK's `default` server in the user's directory, where ipn-jack's
    /// programs look with no option; another user's directory there is refused.
    func testTheDefaultServerIsFoundLikeJackdAndAnotherUsersDirectoryIsRefused() async throws {
        try FileManager.default.createDirectory(atPath: dir + "/hostile/jack-ipn", withIntermediateDirectories: true)
        XCTAssertEqual(chown(dir + "/hostile/jack-ipn", 65534, 65534), 0)
        let r = try await ranToItsEnd(script("""
            export XDG_RUNTIME_DIR='\(dir)'
            jackd-ipn --no-realtime > default.log 2>&1 &
            server=$!
            i=0; until ipn-jack jack_lsp > lsp.txt 2>/dev/null; do i=$((i+1)); [ $i -gt 1200 ] && { echo "no default server"; break; }; sleep 0.025; done
            XDG_RUNTIME_DIR='\(dir)/hostile' ipn-jack jack_lsp > /dev/null 2> hostile.err; echo "hostile $?"
            kill $server; wait $server
            """))
        XCTAssertEqual(r.standardOutput, "hostile 1\n", "\(r)")
        XCTAssertTrue(file("default.log").contains("serving \(dir)/jack-ipn/default"), file("default.log"))
        XCTAssertEqual(file("lsp.txt"), "system:capture_1\nsystem:capture_2\nsystem:playback_1\nsystem:playback_2\n")
        XCTAssertTrue(file("hostile.err").contains("\(dir)/hostile/jack-ipn: owned by uid 65534, not by you"), file("hostile.err"))
    }

    /// The server killed: the client's shutdown callback runs (jack_simple_client's exits 1), nothing hangs.
    /// A client that stops answering (SIGSTOP) is late every period, counted, and the others play on.
    func testAStoppedClientIsLateWithoutStallingOthersAndAKilledServerShutsClientsDown() async throws {
        let r = try await jack("""
            ipn-jack jack_simple_client > a.log 2>&1 &
            a=$!
            waitconn jack_simple_client:output1 system:playback_1
            ipn-jack jack_simple_client b > b.log 2>&1 &
            b=$!
            waitconn b:output1 system:playback_1
            # jack_midi_latency_test counts xrun callbacks and prints them when it ends (it waits for
            # connections of its own meanwhile, so its count is never reset).
            ipn-jack jack_midi_latency_test > latency.log 2>&1 &
            latency=$!
            shows 'JACK jack_midi_latency_test: active'
            kill -STOP $a
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 2 others.wav || echo "arecord failed"
            i=0; until jackd-ipn stat "$BUS" | grep 'JACK jack_simple_client:' | grep -vq 'late 0$'; do i=$((i+1)); [ $i -gt 1200 ] && { echo "the stopped client was never late"; break; }; sleep 0.025; done
            jackd-ipn stat "$BUS" > stat.txt
            kill -TERM $latency; wait $latency || echo "jack_midi_latency_test failed"
            kill -KILL $server; wait $server
            wait $b; echo "b $?"
            kill -CONT $a; wait $a; echo "a $?"
            """)
        XCTAssertEqual(r.standardOutput, "b 1\na 1\n", "\(r)")
        let others = try await samples("others.wav")
        XCTAssertEqual(Signal(others, channel: 0, of: 2, rate: 48_000).active().frequency, 240, accuracy: 1, "b plays on while a is stopped")
        XCTAssertTrue(file("stat.txt").contains("JACK b: active, processed"), file("stat.txt"))
        // Each late period is an xrun, which every client's xrun callback hears, as on jackd.
        let xruns = file("latency.log").split(separator: "\n").first { $0.hasPrefix("Xruns: ") }.flatMap { Int($0.dropFirst(7)) }
        XCTAssertGreaterThan(xruns ?? 0, 0, "another client's xrun callback ran: \(file("latency.log"))")
    }

    /// jack_alias names a port twice at most; jack_lsp -A lists the aliases and a port is found by one.
    func testAliasesNameAPortForEveryClient() async throws {
        try TestSupport.require(tools: ["/usr/bin/jack_alias"])
        let r = try await jack("""
            ipn-jack jack_alias system:playback_1 speakers:left || echo "alias failed"
            ipn-jack jack_alias system:playback_1 monitors:left || echo "second alias failed"
            ipn-jack jack_alias system:playback_1 third 2> third.err && echo "a third alias was taken"
            ipn-jack jack_lsp -A system:playback_1 > two.txt
            ipn-jack jack_simple_client > a.log 2>&1 &
            a=$!
            waitconn jack_simple_client:output1 system:playback_1
            ipn-jack jack_disconnect jack_simple_client:output1 speakers:left || echo "disconnect by alias failed"
            ipn-jack jack_lsp -c jack_simple_client:output1 > disconnected.txt
            ipn-jack jack_alias -u system:playback_1 speakers:left || echo "unset failed"
            ipn-jack jack_lsp -A system:playback_1 > one.txt
            kill $a; wait $a
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        XCTAssertEqual(file("two.txt"), "system:playback_1\n   speakers:left\n   monitors:left\n")
        XCTAssertTrue(file("third.err").contains("two aliases already"), file("third.err"))
        XCTAssertEqual(file("disconnected.txt"), "jack_simple_client:output1\n", "the alias found the port to disconnect")
        XCTAssertEqual(file("one.txt"), "system:playback_1\n   monitors:left\n")
    }

    /// jack_evmon prints the graph's events as its callbacks hear them: a client's arrival, its ports, its
    /// connections and the new graph order, then all of it going away when the client closes.
    func testEvmonHearsClientsPortsAndConnectionsComeAndGo() async throws {
        let r = try await jack("""
            stdbuf -oL ipn-jack jack_evmon > events.log 2>&1 &
            evmon=$!
            shows 'JACK event-monitor: active'
            ipn-jack jack_simple_client > a.log 2>&1 &
            a=$!
            waitconn jack_simple_client:output2 system:playback_2
            kill -TERM $a; wait $a
            i=0; until grep -q 'Client jack_simple_client unregistered' events.log; do i=$((i+1)); [ $i -gt 1200 ] && { echo "no unregistration"; break; }; sleep 0.025; done
            kill -TERM $evmon; wait $evmon
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        // (jack_lsp, which waitconn runs, comes and goes as client lsp; jack_evmon says "signal received" at its end.)
        let events = file("events.log").split(separator: "\n").map(String.init).filter {
            $0 != "Graph reordered" && !$0.hasPrefix("Client lsp") && !$0.hasPrefix("signal received")
        }
        // jackd-ipn numbers the card's four ports 1-4, so the client's outputs are ports 5 and 6.
        XCTAssertEqual(events, ["Client jack_simple_client registered", "Port 5 registered", "Port 6 registered",
                                "Ports 5 and 3 connected", "Ports 6 and 4 connected",
                                "Ports 5 and 3 disconnected", "Port 5 unregistered", "Ports 6 and 4 disconnected", "Port 6 unregistered",
                                "Client jack_simple_client unregistered"], file("events.log"))
        XCTAssertTrue(file("events.log").contains("Graph reordered"), file("events.log"))
    }

    func testMidiseqsNotesPlayOnMidisineThroughAMidiConnection() async throws {
        let r = try await jack("""
            ipn-jack jack_midiseq seq 48000 0 60 24000 > seq.log 2>&1 &
            seq=$!
            ipn-jack jack_midisine > sine.log 2>&1 &
            sine=$!
            waitport midisine:audio_out seq:out
            ipn-jack jack_connect seq:out midisine:midi_in || echo "jack_connect midi failed"
            ipn-jack jack_connect midisine:audio_out system:playback_1 || echo "jack_connect audio failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 3 notes.wav || echo "arecord failed"
            kill $seq $sine; wait $seq $sine
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let notes = Signal(try await samples("notes.wav"), channel: 0, of: 2, rate: 48_000)
        // MIDI note 60 for half of each second, silence for the other half. midisine tunes note n to
        // 27.5 Hz × 2^((n − 9) / 12): 523.25 Hz for note 60.
        XCTAssertEqual(notes.active().frequency, 523.25, accuracy: 2)
        let loud = notes.samples.filter { abs(Int($0)) > 1000 }.count
        XCTAssertGreaterThan(loud, 48_000, "the note sounds about half of the 3 s")
        XCTAssertLessThan(loud, 96_000, "and is off the other half: note-offs arrive too")
    }

    /// jack_metro -t plays only while JACK's transport rolls; jack_transport starts and stops it.
    func testMetroTicksAtItsTempoOnlyWhileTheTransportRolls() async throws {
        let r = try await jack("""
            ipn-jack jack_metro -b 120 -t > metro.log 2>&1 &
            metro=$!
            waitport metro:120_bpm
            ipn-jack jack_connect metro:120_bpm system:playback_1 || echo "jack_connect failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 1 stopped.wav || echo "arecord failed"
            printf 'play\n' | ipn-jack jack_transport > transport.log 2>&1 || echo "jack_transport play failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 3 rolling.wav || echo "arecord failed"
            printf 'stop\n' | ipn-jack jack_transport >> transport.log 2>&1 || echo "jack_transport stop failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 1 stopped-again.wav || echo "arecord failed"
            kill $metro; wait $metro
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        for name in ["stopped.wav", "stopped-again.wav"] {
            let recorded = try await samples(name)
            XCTAssertEqual(recorded.count, 2 * 48_000)
            XCTAssertEqual(recorded.map { abs(Int($0)) }.max(), 0, "\(name): the transport is stopped, the metronome silent")
        }
        let ticks = Signal(try await samples("rolling.wav"), channel: 0, of: 2, rate: 48_000).samples
        // Each tick starts after silence: its onsets, in frames.
        var onsets: [Int] = [], quiet = 0
        for (i, x) in ticks.enumerated() {
            if abs(Int(x)) > 300 { if quiet > 4800 { onsets.append(i) }; quiet = 0 } else { quiet += 1 }
        }
        XCTAssertGreaterThanOrEqual(onsets.count, 5, "120 beats a minute: 6 ticks in 3 s: \(onsets)")
        let intervals = zip(onsets, onsets.dropFirst()).map { $1 - $0 }
        XCTAssertEqual(intervals.sorted()[intervals.count / 2], 24_000, "a tick every 0.5 s, to the frame: \(intervals)")
        XCTAssertFalse(file("transport.log").contains("not implemented"), file("transport.log"))
    }

    /// jack_rec (the ring buffer between its process callback and its disk thread) records what a client plays.
    func testJackRecRecordsWhatAClientPlays() async throws {
        let r = try await jack("""
            ipn-jack jack_simple_client > simple.log 2>&1 &
            simple=$!
            waitconn jack_simple_client:output1 system:playback_1
            ipn-jack jack_rec -f rec.wav -d 2 jack_simple_client:output1 jack_simple_client:output2 > rec.log 2>&1 || echo "jack_rec failed: $(cat rec.log)"
            kill -INT $simple; wait $simple
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let rec = try await samples("rec.wav")
        XCTAssertGreaterThanOrEqual(rec.count, 2 * 96_000, "2 s of two channels")
        XCTAssertEqual(Signal(rec, channel: 0, of: 2, rate: 48_000).active().frequency, 240, accuracy: 1)
        XCTAssertEqual(Signal(rec, channel: 1, of: 2, rate: 48_000).active().frequency, 720, accuracy: 2)
    }

    /// An ALSA application playing onto the bus is a JACK client (`alsa-NODE`) whose outputs carry what it
    /// plays, connected to the card's playback ports: a JACK program records it, and disconnecting it silences
    /// it on the card's side.
    func testAnAplayIsAJackClientAJackProgramRecordsAndConnectionsSilence() async throws {
        let r = try await jack("""
            ffmpeg -v error -f lavfi -i sine=frequency=440:duration=20 -ac 2 -ar 48000 tone.wav
            aplay -q -D "ipn:BUS=$BUS" tone.wav &
            player=$!
            i=0; until port=$(ipn-jack jack_lsp 2>/dev/null | grep -m1 -x 'alsa-[0-9]*:out_1'); do i=$((i+1)); [ $i -gt 1200 ] && { echo "aplay never appeared as a JACK client"; break; }; sleep 0.025; done
            ipn-jack jack_lsp -c > lsp.txt
            ipn-jack jack_rec -f rec.wav -d 1 "$port" > rec.log 2>&1 || echo "jack_rec failed: $(cat rec.log)"
            ipn-jack jack_disconnect "$port" system:playback_1 || echo "jack_disconnect 1 failed"
            ipn-jack jack_disconnect "${port%_1}_2" system:playback_2 || echo "jack_disconnect 2 failed"
            arecord -q -D "ipn:BUS=$BUS" -f S16_LE -r 48000 -c 2 -d 1 silent.wav || echo "arecord failed"
            kill $player; wait $player
            kill $server; wait $server
            """)
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        let lsp = file("lsp.txt")
        XCTAssertNotNil(lsp.range(of: #"alsa-\d+:out_1\n   system:playback_1\n"#, options: .regularExpression), lsp)
        XCTAssertNotNil(lsp.range(of: #"alsa-\d+:out_2\n   system:playback_2\n"#, options: .regularExpression), lsp)
        let rec = try await samples("rec.wav")
        XCTAssertGreaterThanOrEqual(rec.count, 2 * 48_000)
        XCTAssertEqual(Signal(rec, channel: 0, of: 2, rate: 48_000).active().frequency, 440, accuracy: 1.5, "jack_rec recorded what aplay plays")
        let silent = try await samples("silent.wav")
        XCTAssertEqual(silent.count, 2 * 48_000)
        XCTAssertEqual(silent.map { abs(Int($0)) }.max(), 0, "aplay disconnected from the card: silence on the card's side")
    }

    /// As with jackd: a program that may start a server (jack_simple_client; not jack_lsp, which says
    /// JackNoStartServer) starts one (`jackd-ipn --temporary`), learns so (JackServerStarted), and the server
    /// ends with its last JACK client.
    func testAProgramStartsTheServerAsJackDoesAndItEndsWithTheLastClient() async throws {
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        let r = try await ranToItsEnd(script("""
            export XDG_RUNTIME_DIR='\(dir)/run'
            ipn-jack jack_simple_client > simple.log 2>&1 &
            simple=$!
            i=0; until ipn-jack jack_lsp -c 2>/dev/null | grep -qx '   jack_simple_client:output1'; do i=$((i+1)); [ $i -gt 1200 ] && { echo "no server was started"; break; }; sleep 0.025; done
            pgrep -f 'jackd-ipn --temporary -n default' > /dev/null || echo "no temporary server"
            kill -INT $simple; wait $simple
            # (Watched from outside: a JACK client polling it would keep it, as it would keep jackd -T.)
            i=0; while pgrep -f 'jackd-ipn --temporary -n default' > /dev/null; do i=$((i+1)); [ $i -gt 1200 ] && { echo "jackd-ipn outlived its last client"; break; }; sleep 0.025; done
            if ipn-jack jack_lsp > /dev/null 2>&1; then echo "the server still answers"; fi
            """))
        XCTAssertEqual(r.standardOutput, "", "\(r)")
        XCTAssertTrue(file("simple.log").contains("JACK server started"), "jack_simple_client's words on JackServerStarted: \(file("simple.log"))")
    }
}
