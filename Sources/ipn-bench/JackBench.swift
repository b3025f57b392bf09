import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// JACK clients on jackd-ipn (through our libjack) against jackd2 (its dummy backend) and PipeWire's JACK layer
/// (its dummy driver), measured in the same run with the same program: `ipn-jack-chain N`, N clients copying
/// system:capture_1 through each other to system:playback_1, every period. Per period: the CPU of the server
/// (jackd-ipn with its bus host, jackd, or pipewire) and of the clients; and the periods in which a client was
/// late (jack2's and PipeWire's xruns, jackd-ipn's late periods). PipeWire without a session manager has no
/// card ports: its chain's ends stay unconnected (one buffer copy less at each end).
enum JackBench {
    /// `serverCPU` over `seconds` of wall time (the server's periods: seconds × rate / period); `clientCPU` over the
    /// chain's life, `cycles` of which its last client processed while measured.
    struct Run {
        var cycles = 0; var late = 0; var serverCPU = 0.0; var seconds = 0.0; var clientCPU = 0.0; var failure: String?
        /// With one client: what jack_iodelay measured through a connection of its output to its own input, in frames.
        var loop: Double?
    }

    static func run(quick: Bool) throws {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let chain = products + "/ipn-jack-chain"
        guard access(chain, X_OK) == 0, access(products + "/libjack.so", R_OK) == 0 else {
            print("\nJACK chain: skipped (build everything: swift build -c release)")
            return
        }
        let haveJackd = access("/usr/bin/jackd", X_OK) == 0
        let havePipeWire = access("/usr/bin/pipewire", X_OK) == 0 && access("/usr/bin/pw-jack", X_OK) == 0
        let seconds = quick ? 2.0 : 6.0
        print("")
        print(String(format: "JACK chain: system:capture_1 -> N copy clients -> system:playback_1, 48 kHz, %.0f s each, dummy clocks, SCHED_FIFO when permitted", seconds))
        print("(CPU per period: server and its bus host over the chain's run, plus the client process over its measured seconds; late: periods in which a client missed its deadline, jack2's and PipeWire's xruns;")
        print(" PipeWire without a session manager has no card ports: its chain's ends are unconnected)")
        print("   N  period  server               periods  late  server µs/period  clients µs/period  total µs   vs jackd2")
        var loops: [(period: Int, name: String, frames: Double?)] = []
        for period in [64, 128, 256] {
            for n in [1, 4, 8] {
                let ours = measureOurs(products: products, period: period, clients: n, seconds: seconds)
                let theirs = haveJackd ? measureJackd2(chain: chain, period: period, clients: n, seconds: seconds) : Run(failure: "jackd2 not installed")
                let pipewire = havePipeWire ? measurePipeWire(chain: chain, period: period, clients: n, seconds: seconds)
                    : Run(failure: "PipeWire not installed (Debian: pipewire pipewire-jack)")
                func perPeriod(_ r: Run) -> (server: Double, client: Double) {
                    (r.serverCPU / max(1, r.seconds * 48_000 / Double(period)) * 1e6, r.clientCPU / Double(max(1, r.cycles)) * 1e6)
                }
                let base: (server: Double, client: Double) = theirs.failure == nil ? perPeriod(theirs) : (0, 0)
                for (name, r) in [("jackd-ipn + libjack", ours), ("jackd2 (dummy)", theirs), ("PipeWire (dummy)", pipewire)] {
                    if n == 1 { loops.append((period, name, r.loop)) }
                    let label = name.padding(toLength: 20, withPad: " ", startingAt: 0)
                    if let f = r.failure { print(String(format: "  %2d  %6d  ", n, period) + label + " failed: " + f); continue }
                    let cost = perPeriod(r), total = cost.server + cost.client, baseTotal = base.server + base.client
                    print(String(format: "  %2d  %6d  ", n, period) + label + String(format: " %7d  %4d  %16.1f  %17.1f  %8.1f  ", r.cycles, r.late, cost.server, cost.client, total)
                          + (baseTotal > 0 ? String(format: "%8.2fx", total / baseTotal) : "       -"))
                }
            }
        }
        print("\nJACK loop latency: jack_iodelay with its output connected to its own input (what it reports, in frames and periods;")
        print(" 'no signal came back': jack_iodelay said 'Signal below threshold' for all of its 20 s)")
        print("  period  server               frames  periods")
        for l in loops {
            let label = l.name.padding(toLength: 20, withPad: " ", startingAt: 0)
            print(String(format: "  %6d  ", l.period) + label + (l.frames.map { String(format: " %6.1f  %7.2f", $0, $0 / Double(l.period)) } ?? "  no signal came back"))
        }
    }

    /// jack_iodelay run through `prefix` (what reaches the server: ipn-jack, pw-jack or an environment), its output
    /// connected to its input; the last of five measurements, in frames.
    static func loopLatency(_ prefix: String) -> Double? {
        let log = "/tmp/ipn-bench-iodelay-\(getpid()).txt"
        defer { unlink(log) }
        let script = """
            \(prefix) stdbuf -o0 jack_iodelay > \(log) 2>&1 & io=$!
            i=0; until \(prefix) jack_lsp 2>/dev/null | grep -qx jack_delay:in; do i=$((i+1)); [ $i -gt 400 ] && break; sleep 0.025; done
            \(prefix) jack_connect jack_delay:out jack_delay:in > /dev/null 2>&1
            i=0; until [ "$(grep -c 'total roundtrip latency' \(log))" -ge 5 ]; do i=$((i+1)); [ $i -gt 800 ] && break; sleep 0.025; done
            kill $io; wait $io
            grep 'total roundtrip latency' \(log) | tail -1
            """
        // A server that passes nothing around a client's own loop: iodelay says its signal is below threshold.
        guard let out = bashOutput(script), let first = out.split(separator: " ").first, let frames = Double(first), frames > 0 else { return nil }
        return frames
    }

    /// The chain's own line: cycles, xruns, its CPU over those cycles.
    private static func runChain(_ command: String) -> (cycles: Int, xruns: Int, cpu: Double)? {
        guard let out = bashOutput("\(command) 2>&1") else { return nil }
        var cycles: Int?, xruns = 0, cpu = 0.0
        for line in out.split(separator: "\n") {
            let f = line.split(separator: " ")
            // The chain's own CPU over its measured seconds (getrusage), not its start-up and teardown.
            if f.first == "cycles", f.count >= 10 { cycles = Int(f[1]); xruns = Int(f[3]) ?? 0; cpu = Double(f[9]) ?? 0 }
        }
        guard let cycles else {
            FileHandle.standardError.write(Data("ipn-bench: the JACK chain said: \(out)\n".utf8))
            return nil
        }
        return (cycles, xruns, cpu)
    }

    private static func ready(_ command: String) -> Bool {
        for _ in 0..<200 {
            if bashOutput("\(command) > /dev/null 2>&1 && echo ok")?.contains("ok") == true { return true }
            usleep(25_000)
        }
        return false
    }

    static func measureOurs(products: String, period: Int, clients: Int, seconds: Double) -> Run {
        let dir = "/tmp/ipn-bench-jack-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let bus = dir + "/server"
        guard let server = try? Child(products + "/jackd-ipn", ["--bus", bus, "--period", "\(period)"], errorLog: dir + "/server.log") else {
            return Run(failure: "cannot start jackd-ipn")
        }
        defer { server.stop(SIGINT) }
        let env = "XDG_RUNTIME_DIR=\(dir) JACK_DEFAULT_SERVER=\(bus)"
        guard ready("\(env) \(products)/ipn-jack jack_lsp"), let host = try? Bus.status(bus).hostPID else { return Run(failure: "jackd-ipn did not start") }
        let lateBefore = latePeriods(products, bus)
        let before = WebcamBench.cpuSeconds(server.pid) + WebcamBench.cpuSeconds(host), t0 = ipn_monotonic_ns()
        guard let c = runChain("\(env) \(products)/ipn-jack \(products)/ipn-jack-chain \(clients) \(seconds)") else { return Run(failure: "the chain failed") }
        let after = WebcamBench.cpuSeconds(server.pid) + WebcamBench.cpuSeconds(host), t1 = ipn_monotonic_ns()
        return Run(cycles: c.cycles, late: latePeriods(products, bus) - lateBefore, serverCPU: after - before, seconds: Double(t1 - t0) / 1e9, clientCPU: c.cpu,
                   loop: clients == 1 ? loopLatency("\(env) \(products)/ipn-jack") : nil)
    }

    /// jackd-ipn's count of periods in which a JACK client was late (its report comes once a second).
    private static func latePeriods(_ products: String, _ bus: String) -> Int {
        usleep(1_100_000)
        guard let out = bashOutput("\(products)/jackd-ipn stat \(bus)"),
              let line = out.split(separator: "\n").first(where: { $0.contains("jack:") }),
              let r = line.range(of: "ports, ") else { return 0 }
        return Int(line[r.upperBound...].split(separator: " ").first ?? "") ?? 0
    }

    /// PipeWire's own daemon with its default configuration (its Dummy-Driver clocks the graph), in a private
    /// runtime directory; the chain through pw-jack at the period asked (its PIPEWIRE_QUANTUM).
    static func measurePipeWire(chain: String, period: Int, clients: Int, seconds: Double) -> Run {
        let dir = "/tmp/ipn-bench-pipewire-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        // env execs pipewire in its own process: the child's pid is the server's.
        guard let server = try? Child("/usr/bin/env", ["XDG_RUNTIME_DIR=\(dir)", "/usr/bin/pipewire"], errorLog: dir + "/pipewire.log") else {
            return Run(failure: "cannot start pipewire")
        }
        defer { server.stop(SIGTERM) }
        // The system's libjack replaced by PipeWire's, whatever the environment says; no card ports (see above).
        return measureChain(server: server, named: "pipewire", clients: "env -u LD_LIBRARY_PATH XDG_RUNTIME_DIR=\(dir) pw-jack -p \(period) -s 48000",
                            chain: chain + " \(clients) \(seconds) --no-system", oneClient: clients == 1)
    }

    /// The chain on a server of another project, started as `server`, reached by running programs through `prefix`:
    /// once `prefix jack_lsp` answers, the server's CPU over the chain's run, the xruns the chain heard, and with
    /// one client the loop latency.
    private static func measureChain(server: Child, named: String, clients prefix: String, chain: String, oneClient: Bool) -> Run {
        guard ready("\(prefix) jack_lsp") else { return Run(failure: "\(named) did not start") }
        let before = WebcamBench.cpuSeconds(server.pid), t0 = ipn_monotonic_ns()
        guard let c = runChain("\(prefix) \(chain)") else { return Run(failure: "the chain failed") }
        let t1 = ipn_monotonic_ns()
        return Run(cycles: c.cycles, late: c.xruns, serverCPU: WebcamBench.cpuSeconds(server.pid) - before, seconds: Double(t1 - t0) / 1e9, clientCPU: c.cpu,
                   loop: oneClient ? loopLatency(prefix) : nil)
    }

    static func measureJackd2(chain: String, period: Int, clients: Int, seconds: Double) -> Run {
        let name = "ipn-bench-\(getpid())"
        let log = "/tmp/ipn-bench-jackd2-\(getpid()).log"
        defer { unlink(log) }
        guard let server = try? Child("/usr/bin/jackd", ["-n", name, "-d", "dummy", "-r", "48000", "-p", "\(period)"], errorLog: log) else {
            return Run(failure: "cannot start jackd")
        }
        defer { server.stop(SIGTERM) }
        // The system's libjack (jackd2's), whatever the environment says.
        return measureChain(server: server, named: "jackd", clients: "env -u LD_LIBRARY_PATH JACK_DEFAULT_SERVER=\(name)",
                            chain: chain + " \(clients) \(seconds)", oneClient: clients == 1)
    }
}
