import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaJack
import MediaWire

/// Audio part of the benchmark: jackd-ipn's server CPU per period against the bare mixing arithmetic
/// measured in the same run, app-to-app latency through the ALSA plugin, and xruns over a long run.
enum AudioBench {
    struct ServerRun { var perPeriodMicros: Double; var peakMicros: Double; var periods: Int; var late: Int; var serverXruns: Int }

    /// Runs a dummy-clocked server with `clients` client threads, each sending a period of audio for
    /// every mix (3 periods ahead, as the plugin does), for `seconds`.
    static func serve(period: Int, clients: Int, seconds: Double, realtime: Bool = false, realtimeClients: Bool = false) throws -> ServerRun {
        let dir = "/tmp/ipn-bench-audio-\(getpid())"
        mkdir(dir, 0o755)
        defer { rmdir(dir) }
        let path = dir + "/audio-\(period)-\(clients)"
        var s = AudioServer.Settings()
        s.buses = [path]; s.period = period; s.realtime = realtime
        let server = try AudioServer(s, report: { _ in })
        let stop = Box(false)
        let serverDone = DispatchSemaphore(value: 0)
        let outcome = Box<ServerRun?>(nil)
        // The server is its thread's from here on; that thread reads its counters when it is done.
        Thread.detachNewThread(owning: server) { server in
            try? server.run { stop.value }
            let n = max(1, server.periodsServed)
            outcome.value = ServerRun(perPeriodMicros: Double(server.workNanoseconds) / Double(n) / 1000,
                                      peakMicros: Double(server.peakWorkNanoseconds) / 1000,
                                      periods: server.periodsServed, late: server.lateClientPeriods, serverXruns: server.serverXruns)
            serverDone.signal()
        }
        let group = DispatchGroup()
        for c in 0..<clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                if realtimeClients {
                    // As the ALSA plugin's worker runs when permitted.
                    var param = sched_param(sched_priority: 60)
                    _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
                }
                guard let client = try? AudioBusClient(bus: path, description: "bench client \(c)") else { return }
                let value = Float(c + 1) / 64
                while !stop.value {
                    _ = try? client.nextMix(timeout: 0.2) { index, _ in
                        try? client.send(index: index &+ 3, frames: client.period) { out in
                            for i in 0..<out.count { out[i] = value }
                        }
                    }
                }
                client.socket.close()
            }
        }
        usleep(UInt32(seconds * 1e6))
        stop.value = true
        group.wait()
        serverDone.wait()
        try? Bus.remove(path)
        return outcome.value!
    }

    /// The floor: summing `clients` periods of interleaved stereo floats and clipping, in a tight loop.
    static func mixFloorMicros(period: Int, clients: Int) -> Double {
        let samples = period * 2
        let inputs = (0..<clients).map { c in [Float](repeating: Float(c) / 64, count: samples) }
        var mix = [Float](repeating: 0, count: samples)
        let rounds = 20_000
        let t = ipn_monotonic_ns()
        for _ in 0..<rounds {
            for i in 0..<samples { mix[i] = 0 }
            for input in inputs { for i in 0..<samples { mix[i] += input[i] } }
            for i in 0..<samples { mix[i] = max(-1, min(1, mix[i])) }
        }
        let elapsed = Double(ipn_monotonic_ns() - t)
        if mix[0] == 42 { print("") }  // keep the work
        return elapsed / Double(rounds) / 1000
    }

    static func run(quick: Bool, soakSeconds: Double?) throws {
        PolicyRegistry.register(MixerPolicy.self)
        print("")
        print("jackd-ipn server CPU per period (dummy clock, 48 kHz stereo; N client threads in this process send every period)")
        print("   N  period   period ms  server µs/period  peak µs   % of period  bare mix µs  vs bare mix  late  server xruns")
        for period in [64, 128, 256] {
            for n in [1, 4, 8] {
                let r = try serve(period: period, clients: n, seconds: quick ? 0.5 : 2)
                let floor = mixFloorMicros(period: period, clients: n)
                let periodMicros = Double(period) * 1e6 / 48_000
                print(String(format: "  %2d  %6d  %9.2f  %16.1f  %7.1f  %11.2f%%  %11.2f  %10.1fx  %4d  %12d",
                             n, period, periodMicros / 1000, r.perPeriodMicros, r.peakMicros, r.perPeriodMicros / periodMicros * 100,
                             floor, r.perPeriodMicros / max(0.001, floor), r.late, r.serverXruns))
            }
        }
        // Why clients are late at 64 frames with 8 clients: the same runs with the server and the client threads
        // at SCHED_FIFO (as jackd-ipn and the plugin's worker run when permitted) against normal scheduling.
        print("")
        print("late client periods at 64 frames (1.33 ms; clients send 3 periods, 4 ms, ahead), 8 clients, 4 s: normal scheduling vs SCHED_FIFO")
        for rt in [false, true] {
            let r = try serve(period: 64, clients: 8, seconds: quick ? 1 : 4, realtime: rt, realtimeClients: rt)
            print(String(format: "  %@: %d periods, late client periods %d, server xruns %d",
                         rt ? "SCHED_FIFO (server 70, clients 60)" : "normal scheduling (CFS)        ", r.periods, r.late, r.serverXruns))
        }
        try latency(quick: quick)
        if let soakSeconds {
            print("")
            print(String(format: "long run: 8 clients, 128-frame periods, %.0f s, SCHED_FIFO when permitted", soakSeconds))
            let r = try serve(period: 128, clients: 8, seconds: soakSeconds, realtime: true)
            print(String(format: "  %d periods, late client periods (xruns) %d, server xruns %d, %.1f µs/period, peak %.1f µs",
                         r.periods, r.late, r.serverXruns, r.perPeriodMicros, r.peakMicros))
        }
    }

    /// App-to-app latency through the ALSA plugin: one process writes an impulse to `ipn:BUS=…` for
    /// playback and reads the same bus for capture; the time from the write returning to the read that
    /// returns the impulse (corrected to the impulse's frame) is what an aplay→arecord pair sees.
    static func latency(quick: Bool) throws {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let plugin = products + "/libasound_module_pcm_ipn.so"
        guard FileManager.default.fileExists(atPath: plugin) else {
            print("app-to-app latency: skipped (build the plugin: swift build -c release)")
            return
        }
        let dir = "/tmp/ipn-bench-latency-\(getpid())"
        mkdir(dir, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let rc = """
            pcm_type.ipn { lib "\(plugin)" }
            pcm.ipnbench { type ipn bus "\(dir)/bus" lookahead 3 }
            """
        try rc.write(toFile: dir + "/.asoundrc", atomically: true, encoding: .utf8)
        setenv("HOME", dir, 1)
        print("")
        print("app-to-app latency through the ALSA plugin (a playback and a capture PCM on one bus, 48 kHz stereo s16, plugin lookahead 3)")
        print("  period  app buffer  p50 ms  max ms  p50 in server periods")
        for period in [64, 128, 256] {
            var s = AudioServer.Settings()
            s.buses = [dir + "/bus"]; s.period = period; s.realtime = false
            let server = try AudioServer(s, report: { _ in })
            let stop = Box(false)
            let serverDone = DispatchSemaphore(value: 0)
            Thread.detachNewThread(owning: server) { server in try? server.run { stop.value }; serverDone.signal() }
            defer { stop.value = true; serverDone.wait(); try? Bus.remove(dir + "/bus") }
            usleep(100_000)
            var q = AlsaPCM.Request()
            q.rate = 48_000; q.channels = 2; q.format = .s16; q.period = period; q.periods = 3
            let play = try AlsaPCM("ipnbench", .playback, q)
            let capture = try AlsaPCM("ipnbench", .capture, q)
            let impulses = quick ? 5 : 20
            let results = LatencyLog()
            let done = Box(false)
            // Capture: find each impulse, note when its frame arrived.
            // The capture PCM is the reader thread's from here on.
            let handoff = Handoff(capture)
            let reader = Thread {
                let capture = handoff.take()!
                let buffer = UnsafeMutablePointer<Int16>.allocate(capacity: period * 2)
                defer { buffer.deallocate() }
                while !done.value {
                    guard case .frames(let n)? = try? capture.read(into: buffer, frames: period), n > 0 else { continue }
                    let now = ipn_monotonic_ns()
                    for f in 0..<n where abs(Int(buffer[2 * f])) > 10_000 {
                        results.arrived(at: now - UInt64((n - f) * 1_000_000_000 / 48_000))
                        break
                    }
                }
            }
            reader.start()
            let silence = [Int16](repeating: 0, count: period * 2)
            var impulse = silence
            impulse[0] = 20_000; impulse[1] = 20_000
            for i in 0..<(impulses * 20) {
                if i % 20 == 10 {
                    _ = impulse.withUnsafeBufferPointer { try? play.write($0.baseAddress!, frames: period) }
                    results.sent(at: ipn_monotonic_ns())
                } else {
                    _ = silence.withUnsafeBufferPointer { try? play.write($0.baseAddress!, frames: period) }
                }
            }
            usleep(300_000)
            done.value = true
            while !reader.isFinished { usleep(10_000) }
            let ms = results.latencies().sorted()
            guard !ms.isEmpty else { print(String(format: "  %6d  no impulse came back", period)); continue }
            let p50 = ms[ms.count / 2], periodMs = Double(period) * 1000 / 48_000
            print(String(format: "  %6d  %10d  %6.1f  %6.1f  %21.1f", period, play.bufferFrames, p50, ms.last!, p50 / periodMs))
        }
    }

    final class LatencyLog: Sendable {
        private let times = Locked<(sends: [UInt64], arrivals: [UInt64])>(([], []))
        func sent(at t: UInt64) { times.withLock { $0.sends.append(t) } }
        func arrived(at t: UInt64) { times.withLock { $0.arrivals.append(t) } }
        func latencies() -> [Double] {
            times.withLock { t in zip(t.sends, t.arrivals).map { Double(Int64($1) - Int64($0)) / 1e6 } }
        }
    }
}
