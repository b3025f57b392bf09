import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// jackd-ipn's engine: one clock, several `mixer` buses. Every period it mixes what each bus's clients
/// sent for that period (saturating, in float), adds the device's input when there is a device, and
/// publishes the mix to every client of the bus (and plays it on the device). A client whose audio for a
/// period arrives after that period was mixed has missed it: counted as its xrun; the clock never waits.
///
/// The period path (drain, mix, send, device I/O) allocates nothing, takes no lock and logs nothing:
/// buffers are made when a bus or a client first appears (a new player's ring and JACK ports, in the period
/// it first sends). JACK requests are handled as they arrive and may allocate. Reports (`ipn stat`) are sent once a second,
/// after a period's work.
///
/// Not `Sendable`: the thread that runs it owns it (hand it over with `sending`; read its counters
/// after `run` returned, on that thread).
public final class AudioServer {
    public enum Driver: Sendable, Equatable { case dummy, alsa(String) }

    public struct Settings: Sendable {
        public var buses: [String] = []
        public var rate = 48_000
        public var period = 256
        /// Device buffer in periods (alsa); advertised as the clients' write-ahead.
        public var periods = 2
        public var channels = 2
        public var driver = Driver.dummy
        public var realtime = true
        public init() {}
    }

    /// Periods a client may send ahead of the clock.
    static let lookahead = 16

    final class Client {
        let ring: UnsafeMutablePointer<Float>
        var indices = [UInt64](repeating: .max, count: AudioServer.lookahead)
        var received = 0, late = 0, early = 0, mixed = 0
        init(samples: Int) {
            ring = .allocate(capacity: samples * AudioServer.lookahead)
            ring.initialize(repeating: 0, count: samples * AudioServer.lookahead)
        }
        deinit { ring.deallocate() }
    }

    final class MixPoint {
        let path: String
        let socket: IPNSocket
        var clients: [UInt32: Client] = [:]
        /// Clients that left, and the period after which their last sent audio has been mixed.
        var departed: [(id: UInt32, after: UInt64)] = []
        var mixes = 0, sendFailures = 0, rejected = 0
        var lateTotal = 0
        /// The JACK graph of the bus (our libjack's clients and the card's ports).
        let graph: JackGraph
        /// The JACK client whose period is being waited for, and whether it answered.
        var awaiting: UInt32?
        var answered = false
        /// JACK client periods missed (late or not called), and the periods in which any client missed one
        /// (what jack2 counts as an xrun).
        var jackLate = 0
        var jackLatePeriods = 0
        init(path: String, socket: IPNSocket, frames: Int, channels: Int) {
            self.path = path; self.socket = socket
            graph = JackGraph(frames: frames, channels: channels)
        }
    }

    public static var maxPortsPerClient: Int { JackGraph.maxPortsPerClient }

    public let settings: Settings
    private var points: [MixPoint] = []
    private let samplesPerPeriod: Int
    private let mix: UnsafeMutablePointer<Float>
    /// One port's period, for the JACK graph's sums.
    private let mixScratch: UnsafeMutablePointer<Float>
    private var playback: AlsaPCM?
    private var capture: AlsaPCM?
    private let deviceBuffer: UnsafeMutablePointer<Int16>
    private let input: UnsafeMutablePointer<Float>
    /// The sum of every bus's mix, for the device output.
    private let mixAll: UnsafeMutablePointer<Float>
    public private(set) var index: UInt64 = 0
    public private(set) var serverXruns = 0 {
        // The card or the clock missed periods: every JACK client's xrun callback hears it.
        didSet { for p in points { tellXrun(p) } }
    }
    private var loadSum = 0.0, loadMax = 0.0, loadCount = 0
    /// Since start: nanoseconds of work per period (total and peak), for the benchmark.
    public private(set) var workNanoseconds: UInt64 = 0
    public private(set) var peakWorkNanoseconds: UInt64 = 0
    public private(set) var periodsServed = 0
    /// Every JACK program that came has gone (for `jackd-ipn --temporary`, a server a JACK program started).
    public var jackClientsGone: Bool {
        points.contains { $0.graph.everHadJackClients } && points.allSatisfy { $0.graph.jackClients == 0 && $0.clients.isEmpty }
    }
    /// Client periods that arrived after their period was mixed, on every bus.
    public var lateClientPeriods: Int { points.reduce(0) { $0 + $1.lateTotal } }
    private var realtimeNote = ""
    private let report: (String) -> Void

    public init(_ s: Settings, report: @escaping (String) -> Void) throws {
        settings = s
        self.report = report
        samplesPerPeriod = s.period * s.channels
        mix = .allocate(capacity: samplesPerPeriod)
        mixScratch = .allocate(capacity: s.period)
        input = .allocate(capacity: samplesPerPeriod)
        input.initialize(repeating: 0, count: samplesPerPeriod)
        deviceBuffer = .allocate(capacity: samplesPerPeriod)
        mixAll = .allocate(capacity: samplesPerPeriod)
        mixAll.initialize(repeating: 0, count: samplesPerPeriod)
        PolicyRegistry.register(MixerPolicy.self)
        for path in s.buses {
            let socket = IPNSocket(policy: MixerPolicy.name)
            let message = AudioBusMessage.headerSize + samplesPerPeriod * 4
            // The largest message: a JACK client's process call with all its ports.
            socket.options.mtu = max(65536, message * 2, AudioBusMessage.headerSize + Self.maxPortsPerClient * s.period * 4)
            // A whole period inline in the rings: no pool bookkeeping on the period path.
            socket.options.inlineBytes = min(65536, max(BusOptions.inlineLimit, (message + 63) & ~63))
            socket.options.queueLength = 512
            socket.policyParameters = MixerPolicy.serverParameter
            socket.description = "jackd-ipn"
            try socket.bind(path)
            switch Result(catching: { () throws(IPNError) in try socket.connect() }) {
            case .success: break
            case .failure(.refused): throw IPNError.refused(path: path, reason: "another jackd-ipn already serves this bus")
            case .failure(let e): throw e
            }
            points.append(MixPoint(path: path, socket: socket, frames: s.period, channels: s.channels))
        }
        if case .alsa(let name) = s.driver {
            var q = AlsaPCM.Request()
            q.rate = s.rate; q.channels = s.channels; q.format = .s16; q.period = s.period; q.periods = max(2, s.periods); q.exact = true
            let out = try AlsaPCM(name, .playback, q)
            // The card's period is the clock: one that differs from ours would tick in bursts.
            guard out.period == s.period else {
                throw DeviceError.cannotDo(device: "alsa:\(name)", request: "periods of \(s.period) frames", offers: ["periods of \(out.period) frames: use --period \(out.period)"])
            }
            playback = out
            do {
                let input = try AlsaPCM(name, .capture, q)
                if input.period == s.period { capture = input } else { report("alsa:\(name): the capture side runs \(input.period)-frame periods; playing only") }
            } catch {
                report("alsa:\(name): no capture side (\(error)); playing only")
            }
        }
    }

    deinit {
        mix.deallocate(); mixScratch.deallocate(); input.deallocate(); deviceBuffer.deallocate(); mixAll.deallocate()
        for p in points { p.socket.close() }
    }

    var periodNanoseconds: Double { Double(settings.period) * 1e9 / Double(settings.rate) }

    /// Runs until `shouldStop`. The clock is the device (alsa) or CLOCK_MONOTONIC (dummy).
    public func run(shouldStop: () -> Bool) throws {
        realtimeNote = settings.realtime ? Self.becomeRealtime() : "off"
        report("jackd-ipn: \(settings.rate) Hz, \(settings.period) frames a period (\(String(format: "%.2f", periodNanoseconds / 1e6)) ms), "
               + "\(settings.channels) channels, driver \(settings.driver == .dummy ? "dummy (timer)" : "alsa"), real-time: \(realtimeNote); "
               + "serving \(points.map(\.path).joined(separator: ", "))")
        let start = ipn_monotonic_ns()
        var lastReport = start
        if let playback {
            // A cushion of silence, then the card's period timing is the clock.
            for i in 0..<samplesPerPeriod { deviceBuffer[i] = 0 }
            for _ in 0..<max(1, settings.periods) { _ = try playback.write(deviceBuffer, frames: settings.period) }
        }
        while !shouldStop() {
            // Wait for the tick.
            if let capture {
                try readInput(capture)
            } else if playback == nil {
                let due = start + UInt64((Double(index) * periodNanoseconds).rounded())
                var now = ipn_monotonic_ns()
                if now < due {
                    var t = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
                    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nil) == EINTR {}
                    now = ipn_monotonic_ns()
                } else if Double(now - due) > periodNanoseconds {
                    // The server itself was late by more than a period: skip to the current one.
                    let current = UInt64(Double(now - start) / periodNanoseconds)
                    serverXruns += Int(current - index)
                    index = current
                }
            }
            let woke = ipn_monotonic_ns()
            if playback != nil { for i in 0..<samplesPerPeriod { mixAll[i] = 0 } }
            // JACK clients must answer within this period (less a margin to mix and send); later is late.
            let deadline = woke + UInt64(periodNanoseconds * 0.8)
            for p in points { try serve(p, deadline: deadline) }
            if let playback {
                // s16 = round(x × 32768), clipped: the exact inverse of the input's x = s16 / 32768.
                for i in 0..<samplesPerPeriod { deviceBuffer[i] = Int16(max(-32768, min(32767, (mixAll[i] * 32768).rounded()))) }
                if case .xrun = try playback.write(deviceBuffer, frames: settings.period) { serverXruns += 1 }
            }
            let done = ipn_monotonic_ns()
            workNanoseconds += done - woke
            peakWorkNanoseconds = max(peakWorkNanoseconds, done - woke)
            periodsServed += 1
            let load = Double(done - woke) / periodNanoseconds
            loadSum += load; loadCount += 1; loadMax = max(loadMax, load)
            index += 1
            if done - lastReport >= 1_000_000_000 {
                lastReport = done
                sendReports()
            }
        }
        sendReports()
    }


    private func readInput(_ capture: AlsaPCM) throws {
        var got = 0
        while got < settings.period {
            switch try capture.read(into: deviceBuffer + got * settings.channels, frames: settings.period - got) {
            case .frames(let n): got += n
            case .xrun: serverXruns += 1; got = 0
            }
        }
        for i in 0..<samplesPerPeriod { input[i] = Float(deviceBuffer[i]) / 32768 }
    }

    /// Takes what the bus's clients sent, mixes period `index`, sends the mix.
    private func serve(_ p: MixPoint, deadline: UInt64) throws {
        try drain(p)
        // The card's input (silence without a card: `input` stays zero) is where every mix starts.
        mix.update(from: input, count: samplesPerPeriod)
        let slot = Int(index % UInt64(Self.lookahead))
        // Each ALSA player's period into its ports (`alsa-NODE:out_N`), silence when it sent none for it.
        for (id, client) in p.clients {
            if client.indices[slot] == index {
                p.graph.takePlayer(id, interleaved: client.ring + slot * samplesPerPeriod)
                client.indices[slot] = .max
                client.mixed += 1
            } else {
                p.graph.takePlayer(id, interleaved: nil)
            }
        }
        // The JACK clients in graph order; what reaches the card's playback ports (the players, connected
        // there when they appear, and any JACK program) is added to the mix.
        runGraph(p, deadline: deadline)
        // Saturate: the mix of loud clients clips, it never wraps.
        for i in 0..<samplesPerPeriod { mix[i] = max(-1, min(1, mix[i])) }
        if playback != nil { for i in 0..<samplesPerPeriod { mixAll[i] += mix[i] } }
        let h = AudioBusMessage.Header(kind: .mix, index: index, rate: UInt32(settings.rate), channels: UInt16(settings.channels),
                                       frames: UInt32(settings.period))
        do {
            try p.socket.send(length: h.size, nonBlocking: true) { out in
                AudioBusMessage.writeHeader(h, into: out)
                (out.baseAddress! + AudioBusMessage.headerSize).copyMemory(from: mix, byteCount: samplesPerPeriod * 4)
            }
            p.mixes += 1
        } catch .wouldBlock {
            p.sendFailures += 1
        }
    }

    /// Every message waiting on the bus: clients' periods into their slots, departures, JACK requests.
    private func drain(_ p: MixPoint) throws {
        while let _ = try p.socket.withNextMessage(nonBlocking: true, { view in handle(p, view) }) {}
        if !p.departed.isEmpty {
            for d in p.departed where d.after <= index {
                p.clients[d.id] = nil
                tell(p, p.graph.remove(d.id))
            }
            p.departed.removeAll { $0.after <= index }
        }
    }

    private func handle(_ p: MixPoint, _ view: MessageView) {
        guard let h = try? AudioBusMessage.decodeHeader(view.bytes) else { p.rejected += 1; return }
        switch h.kind {
        case .period:
            guard Int(h.channels) == settings.channels, Int(h.frames) == settings.period else { p.rejected += 1; return }
            if let g = p.graph.clients[view.sender], !g.player { p.rejected += 1; return }  // a JACK client has its process calls
            let client = p.clients[view.sender] ?? {
                let c = Client(samples: samplesPerPeriod)  // a new client: its only allocation
                p.clients[view.sender] = c
                tell(p, p.graph.addPlayer(node: view.sender))
                return c
            }()
            client.received += 1
            if h.index < index {
                client.late += 1
                p.lateTotal += 1
            } else if h.index >= index + UInt64(Self.lookahead) {
                client.early += 1
            } else {
                let slot = Int(h.index % UInt64(Self.lookahead))
                (client.ring + slot * samplesPerPeriod).update(
                    from: UnsafeRawPointer(view.bytes.baseAddress! + AudioBusMessage.headerSize).assumingMemoryBound(to: Float.self),
                    count: samplesPerPeriod)
                client.indices[slot] = h.index
            }
        case .clientLeft:
            // What it sent ahead before leaving is still played; then its slot goes.
            let node = UInt32(truncatingIfNeeded: h.index)
            p.departed.append((node, index + UInt64(Self.lookahead)))
            // A player stays in the graph until what it sent ahead has been played.
            if p.graph.clients[node]?.player != true { tell(p, p.graph.remove(node)) }
            if p.awaiting == node { p.awaiting = nil }
        case .jackRequest:
            // The control path (not the period path): it may allocate.
            guard let request = JackWire.decode(JackWire.Request.self, view.bytes) else { p.rejected += 1; return }
            var (reply, events) = p.graph.handle(request, from: view.sender)
            if request.op == "open", reply.error == nil { reply.rate = settings.rate; reply.period = settings.period }
            do {
                try p.socket.send(JackWire.encode(.jackReply, index: h.index, target: view.sender, reply), nonBlocking: true)
            } catch .mtuExceeded {
                // An answer larger than a message (thousands of ports): say so rather than leave the client waiting.
                try? p.socket.send(JackWire.encode(.jackReply, index: h.index, target: view.sender, JackWire.Reply.failure("the answer is too large for the bus")), nonBlocking: true)
            } catch {}
            tell(p, events)
        case .processed:
            guard let c = p.graph.clients[view.sender] else { p.rejected += 1; return }
            if c.outstanding == h.index { c.outstanding = nil }
            guard p.awaiting == view.sender, h.index == index, Int(h.frames) == settings.period else { return }
            p.graph.takeOutputs(of: c, from: UnsafeRawPointer(view.bytes.baseAddress! + AudioBusMessage.headerSize).assumingMemoryBound(to: Float.self),
                                ports: Int(h.channels))
            p.answered = true
        case .mix, .report, .jackReply, .jackEvent, .process, .serverGone:
            p.rejected += 1
        }
    }

    /// The xrun event, encoded once: it is sent from the period thread, which does not allocate.
    private static let xrunMessage = JackWire.encode(.jackEvent, index: 0, JackWire.Event(event: "xrun"))

    /// An xrun, told to every JACK client on the bus (their xrun callbacks run, as on jackd).
    private func tellXrun(_ p: MixPoint) {
        guard p.graph.jackClients > 0 else { return }
        try? p.socket.send(Self.xrunMessage, nonBlocking: true)
    }

    private func tell(_ p: MixPoint, _ events: [JackWire.Event]) {
        // Nobody to tell when no JACK program is on the bus (players come and go on the period path).
        guard p.graph.jackClients > 0 else { return }
        for e in events { try? p.socket.send(JackWire.encode(.jackEvent, index: 0, e), nonBlocking: true) }
    }

    /// The JACK clients, in graph order, each within this period: the card's capture ports hold this period's
    /// mix so far (its input and the ALSA clients); what reaches its playback ports is added to the mix.
    private func runGraph(_ p: MixPoint, deadline: UInt64) {
        let g = p.graph, frames = settings.period, channels = settings.channels
        let lateBefore = p.jackLate
        defer {
            // A client missed this period: an xrun, which every JACK client's xrun callback hears (as on jackd).
            if p.jackLate > lateBefore { p.jackLatePeriods += 1; tellXrun(p) }
        }
        for (c, id) in g.captureIDs.enumerated() {
            guard let port = g.ports[id] else { continue }
            for f in 0..<frames { port.buffer[f] = mix[f * channels + c] }
        }
        for client in g.order {
            // One that closed, left or was deactivated during this period's work is not called again.
            guard client.active, g.clients[client.node] === client else { continue }
            if let since = client.outstanding, index &- since > UInt64(2 * settings.rate / frames) {
                client.outstanding = nil  // 2 s without the answer: it may have been lost; call it again
            }
            if client.outstanding != nil {
                // Still busy with an earlier period (or stopped): late again, not waited for.
                client.late += 1
                p.jackLate += 1
                g.silenceOutputs(of: client)
                continue
            }
            let inputs = client.inputs.count
            let h = AudioBusMessage.Header(kind: .process, index: index, rate: UInt32(settings.rate), channels: UInt16(inputs),
                                           frames: UInt32(frames), target: client.node)
            p.awaiting = client.node
            p.answered = false
            var sent = false
            do {
                try p.socket.send(length: h.size + JackWire.transportBytes, nonBlocking: true) { out in
                    AudioBusMessage.writeHeader(h, into: out)
                    for (i, port) in client.inputs.enumerated() {
                        g.sum(into: mixScratch, port)
                        (out.baseAddress! + AudioBusMessage.headerSize + i * frames * 4).copyMemory(from: mixScratch, byteCount: frames * 4)
                    }
                    JackWire.writeTransport(rolling: g.transportRolling, frame: g.transportFrame, into: out, at: h.size)
                }
                sent = true
                while !p.answered, p.awaiting == client.node {
                    let now = ipn_monotonic_ns()
                    guard now < deadline else { break }
                    _ = try p.socket.withNextMessage(timeout: Double(deadline - now) / 1e9) { view in handle(p, view) }
                }
            } catch {
                // A full ring or a bus error: the client misses this period like a late one.
            }
            if p.answered {
                client.processed += 1
            } else {
                if sent { client.outstanding = index }
                client.late += 1
                p.jackLate += 1
                g.silenceOutputs(of: client)
            }
            p.awaiting = nil
        }
        for (c, id) in g.playbackIDs.enumerated() {
            g.sum(into: mixScratch, id)
            for f in 0..<frames { mix[f * channels + c] += mixScratch[f] }
        }
        if g.transportRolling { g.transportFrame &+= UInt32(frames) }
    }

    /// Once a second: what `ipn stat` and `jackd-ipn stat` show, kept by each bus's policy.
    private func sendReports() {
        let load = loadCount > 0 ? loadSum / Double(loadCount) : 0
        for p in points {
            var r: [String: String] = [
                "playing": "\(p.clients.count)",
                "rate": "\(settings.rate)",
                "period": "\(settings.period) frames (\(String(format: "%.2f", periodNanoseconds / 1e6)) ms)",
                "latency": playback != nil
                    ? "\(settings.periods) periods (\(String(format: "%.1f", Double(settings.periods) * periodNanoseconds / 1e6)) ms) of device buffer"
                    : "clients write ahead; the mix is sent at each tick",
                "xruns": "\(p.lateTotal) late client periods, \(serverXruns) server",
                "cpu": String(format: "%.2f%% average, %.2f%% peak of a period", load * 100, loadMax * 100),
                "mixes": "\(p.mixes)",
                "driver": settings.driver == .dummy ? "dummy" : "alsa",
                "realtime": realtimeNote,
            ]
            for (id, c) in p.clients { r["client \(id)"] = "received \(c.received), mixed \(c.mixed), late \(c.late), early \(c.early)" }
            // ALSA players are JACK clients too (alsa-NODE), reported above with what they sent.
            let jack = p.graph.clients.filter { !$0.value.player }
            for (id, c) in jack { r["client \(id)"] = "JACK \(c.name): \(c.active ? "active" : "inactive"), processed \(c.processed), late \(c.late)" }
            if !jack.isEmpty || p.graph.everHadJackClients {
                r["jack"] = "\(jack.count) client(s), \(p.graph.ports.count) ports, \(p.jackLatePeriods) late periods (\(p.jackLate) client periods missed)"
            }
            if p.rejected > 0 { r["rejected"] = "\(p.rejected)" }
            let body = (try? JSONEncoder().encode(r)).map { [UInt8]($0) } ?? []
            try? p.socket.send(AudioBusMessage.encode(.init(kind: .report, index: index, rate: 0, channels: 0, frames: 0), body: body), nonBlocking: true)
        }
        loadSum = 0; loadCount = 0; loadMax = 0
    }

    /// SCHED_FIFO and locked memory when permitted; says what it got.
    static func becomeRealtime() -> String {
        var param = sched_param(sched_priority: 70)
        let fifo = sched_setscheduler(0, SCHED_FIFO, &param) == 0
        let locked = mlockall(Int32(MCL_CURRENT | MCL_FUTURE)) == 0
        switch (fifo, locked) {
        case (true, true): return "SCHED_FIFO 70, memory locked"
        case (true, false): return "SCHED_FIFO 70"
        case (false, true): return "not permitted (normal scheduling), memory locked"
        case (false, false): return "not permitted (normal scheduling)"
        }
    }
}
