import ArgumentParser
import Atomics
import Foundation
import Glibc
import IPNBus
import MediaJack
import MediaWire

@main
struct JackdIPN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jackd-ipn",
        abstract: "An audio server on IPN buses: one clock, and every period each bus's clients are mixed and the mix sent back.",
        discussion: """
            Applications reach a bus through the ALSA plugin (`aplay -D ipn:BUS=/path/bus`, see samples/asoundrc) \
            or the Swift AudioBusClient. JACK programs reach it through our libjack: `ipn-jack PROGRAM` \
            (JACK clients, their ports and connections, each client's process callback once a period in graph order). Everything played onto a bus for a period is mixed (saturating, in float) \
            and every client of the bus hears the mix. A client that is late misses that period (its xrun); the \
            clock never waits. Several buses share one clock.

            Examples:
              jackd-ipn                      # JACK's default server: ipn-jack jack_lsp finds it
              jackd-ipn --bus /tmp/audio --rate 48000 --period 256 --driver dummy
              jackd-ipn --bus /tmp/music,/tmp/voice --driver alsa:hw:1,0 --period 128 --periods 2
              jackd-ipn stat /tmp/audio
            """,
        subcommands: [Serve.self, Stat.self],
        defaultSubcommand: Serve.self)

    static func main() {
        // `jackd-ipn stat` into a pipe or a log line by line, like the server's own lines (on stderr).
        StandardOutput.flushEveryLine()
        main(nil)
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve buses (the default command).")

    @Option(help: "Bus paths, comma separated (created with the mixer policy when missing). Default: the JACK server's bus (see --name).")
    var bus: String?
    @Option(name: [.customShort("n"), .long],
            help: "The JACK server's name, as jackd -n: its bus is NAME in $XDG_RUNTIME_DIR/jack-ipn (else /tmp/jack-ipn-UID), where JACK programs under ipn-jack find it. Default: JACK_DEFAULT_SERVER, else \"default\".")
    var name: String?
    @Option(help: "Sample rate in Hz.") var rate = 48_000
    @Option(help: "Frames per period.") var period = 256
    @Option(help: "Device buffer in periods (alsa driver).") var periods = 2
    @Option(help: "Channels of every bus.") var channels = 2
    @Option(help: "The clock: dummy (a timer) or alsa:DEVICE (the card's period timing; also plays the mix and captures the input onto the buses).")
    var driver = "dummy"
    @Flag(name: .customLong("no-realtime"), help: "Do not ask for SCHED_FIFO and locked memory.") var noRealtime = false
    @Flag(name: [.customShort("T"), .long], help: "Exit once the last JACK client has gone (as jackd -T; what a JACK program that starts the server asks for).")
    var temporary = false

    func validate() throws {
        guard driver == "dummy" || (driver.hasPrefix("alsa:") && driver.count > 5) else {
            throw ValidationError("--driver must be dummy or alsa:DEVICE (e.g. alsa:hw:1,0)")
        }
        guard (8_000...192_000).contains(rate) else { throw ValidationError("--rate must be 8000...192000") }
        guard (16...8192).contains(period) else { throw ValidationError("--period must be 16...8192 frames") }
        guard (2...16).contains(periods) else { throw ValidationError("--periods must be 2...16") }
        guard (1...8).contains(channels) else { throw ValidationError("--channels must be 1...8") }
        if let bus, bus.split(separator: ",").isEmpty { throw ValidationError("--bus needs at least one path") }
        if bus != nil, name != nil { throw ValidationError("--bus and --name: give one (a JACK server's bus is found by its name)") }
    }

    func run() throws {
        StopSignal.install()  // Ctrl-C and SIGTERM stop the clock cleanly: the last line says how it went
        signal(SIGPIPE, SIG_IGN)
        var s = AudioServer.Settings()
        let say0 = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        if let bus {
            s.buses = bus.split(separator: ",").map(String.init)
        } else {
            do { s.buses = [try JackServerPath.bus(name, create: true)] } catch { say0("jackd-ipn: \(error)"); throw ExitCode(1) }
        }
        s.rate = rate; s.period = period; s.periods = periods; s.channels = channels
        s.driver = driver == "dummy" ? .dummy : .alsa(String(driver.dropFirst(5)))
        s.realtime = !noRealtime
        let say = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        do {
            let server = try AudioServer(s, report: say)
            // --temporary: once every client has gone and none came for a second (a program that probes the
            // server, then another that opens, must not find it gone in between).
            var idleSince: UInt64?
            try server.run {
                guard temporary else { return StopSignal.requested }
                if server.jackClientsGone { idleSince = idleSince ?? DispatchTime.now().uptimeNanoseconds } else { idleSince = nil }
                return StopSignal.requested || idleSince.map { DispatchTime.now().uptimeNanoseconds - $0 > 1_000_000_000 } ?? false
            }
            say("jackd-ipn: stopped after \(server.index) periods, \(server.serverXruns) server xruns")
        } catch {
            say("jackd-ipn: \(error)")
            throw ExitCode(1)
        }
    }
}

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Clients, latency, xruns and CPU load of the server of a bus.")
    @Argument(help: "Bus path.") var bus: String

    func run() throws {
        PolicyRegistry.register(MixerPolicy.self)
        do {
            let s = try Bus.status(bus)
            guard s.options.policy == MixerPolicy.name else {
                FileHandle.standardError.write(Data("jackd-ipn: \(bus) uses the \(s.options.policy) policy, not mixer\n".utf8))
                throw ExitCode(1)
            }
            let r = s.policyStatistics
            print("bus \(bus): server \(r["server"] ?? "none"), \(r["nodes"] ?? "0") client(s), \(r["playing"] ?? "0") of them playing")
            for key in ["rate", "period", "latency", "xruns", "cpu", "mixes", "driver", "realtime", "jack", "rejected", "dropped without server"] {
                if let v = r[key] { print("  \(key): \(v)") }
            }
            for (k, v) in r.sorted(by: { $0.key < $1.key }) where k.hasPrefix("client ") { print("  \(k): \(v)") }
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("jackd-ipn: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
