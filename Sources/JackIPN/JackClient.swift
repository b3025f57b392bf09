import CJackAPI
import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// One JACK client of our libjack: a node on a jackd-ipn bus (policy parameter `mixer=jack`). Requests go
/// to the server and wait for their answer; our thread (started at open) reads what the server sends:
/// answers, graph events and, once active, each period's process call, which runs the program's process
/// callback and sends its outputs back within the period. While it runs the program's code, a thread waiting
/// for an answer reads the bus instead (and hands a process call over). A second thread runs the program's notification
/// callbacks, in the order the server told them, as jackd2's clients do: never on the process thread, so a
/// callback that blocks (on a lock the program's main thread holds while it asks the server something)
/// delays neither the periods nor the answers.
///
/// `@unchecked Sendable`: a C program calls it from any thread. Everything mutable is behind `lock`, except
/// what only the client's own thread touches (`inbound`) and the callbacks, which JACK requires be set
/// before `jack_activate` (we read them on our thread after that).
final class JackClient: @unchecked Sendable {
    let socket: IPNSocket
    let name: String
    let rate: Int
    let period: Int
    let bus: String
    private let lock = NSCondition()
    private var answers: [UInt64: JackWire.Reply] = [:]
    private var nextRequest: UInt64 = 1
    private var ports: [String: JackPort] = [:]
    private var mineStorage: [JackPort] = []
    var mine: [JackPort] { lock.lock(); defer { lock.unlock() }; return mineStorage }
    private var retired: [JackPort] = []
    /// Events for the notification thread, oldest first, and whether it is to stop (guarded by `events`, a
    /// condition of its own: the period path's wake-ups never wake it).
    private var pendingEvents: [JackWire.Event] = []
    private var notifierStops = false
    private let events = NSCondition()
    private var running = true
    private(set) var shutDown = false
    private var thread: pthread_t?
    private var notifierThread: pthread_t?
    let frameClock = FrameClock()

    // The program's callbacks (JACK: set them before jack_activate).
    var process: (JackProcessCallback, UnsafeMutableRawPointer?)?
    var shutdown: (JackShutdownCallback, UnsafeMutableRawPointer?)?
    var infoShutdown: (JackInfoShutdownCallback, UnsafeMutableRawPointer?)?
    var portConnect: (JackPortConnectCallback, UnsafeMutableRawPointer?)?
    var portRegistration: (JackPortRegistrationCallback, UnsafeMutableRawPointer?)?
    var clientRegistration: (JackClientRegistrationCallback, UnsafeMutableRawPointer?)?
    var graphOrder: (JackGraphOrderCallback, UnsafeMutableRawPointer?)?
    var xrun: (JackXRunCallback, UnsafeMutableRawPointer?)?
    var threadInit: (JackThreadInitCallback, UnsafeMutableRawPointer?)?
    var latency: (JackLatencyCallback, UnsafeMutableRawPointer?)?
    var propertyChange: (JackPropertyChangeCallback, UnsafeMutableRawPointer?)?
    /// A program's own process loop (jack_set_process_thread: it calls jack_cycle_wait and jack_cycle_signal).
    var processThread: (JackThreadCallback, UnsafeMutableRawPointer?)?
    /// Our thread only: the period jack_cycle_wait handed out, not yet signalled; whether the loop runs.
    private var cycle: AudioBusMessage.Header?
    private var threadStarted = false
    private(set) var active = false

    enum OpenFailure: Error { case status(UInt32, String) }

    /// Joins the server's bus and opens a client named `wanted` (made unique unless `exact`).
    init(name wanted: String, exact: Bool, startServer: Bool, server: String?) throws(OpenFailure) {
        let bus: String
        do { bus = try JackServerPath.bus(server) } catch { throw .status(JackWire.Status.failure | JackWire.Status.serverFailed, "\(error)") }
        self.bus = bus
        PolicyRegistry.register(MixerPolicy.self)
        socket = IPNSocket()
        socket.policyParameters = MixerPolicy.jackParameter
        socket.description = "jack \(wanted)"
        let serverName = JackServerPath.serverName(server)
        var started: UInt32 = 0
        do {
            do {
                try socket.connect(bus)
            } catch .noSuchBus where startServer {
                // As JACK does unless told not to: start the server (jackd-ipn beside this library), temporary.
                try Self.startServer(serverName, bus: bus)
                started = JackWire.Status.serverStarted
                let deadline = ipn_monotonic_ns() + 5_000_000_000
                while true {
                    do { try socket.connect(bus); break } catch .noSuchBus where ipn_monotonic_ns() < deadline { usleep(20_000) }
                }
            }
        } catch {
            let why: String
            switch error {
            case .noSuchBus, .staleBus: why = "JACK server \"\(serverName)\" is not running (no bus at \(bus)): start one with jackd-ipn"
                + (serverName == "default" ? "" : " -n \(serverName)")
            default: why = "cannot reach JACK server \"\(serverName)\" at \(bus): \(error)"
            }
            throw .status(JackWire.Status.failure | JackWire.Status.serverFailed, why)
        }
        guard socket.busOptions?.policy == MixerPolicy.name else {
            throw .status(JackWire.Status.failure | JackWire.Status.serverFailed, "\(bus) is not a jackd-ipn bus (policy \(socket.busOptions?.policy ?? "?"))")
        }
        // Until our thread runs, take the open's answer here.
        var r = JackWire.Request(op: "open"); r.name = wanted; r.exact = exact
        let deadline = ipn_monotonic_ns() + 2_000_000_000
        do { try socket.send(JackWire.encode(.jackRequest, index: 0, r)) } catch {
            throw .status(JackWire.Status.failure | JackWire.Status.serverFailed, "\(bus): \(error)")
        }
        var reply: JackWire.Reply?
        var lastAsked = ipn_monotonic_ns()
        while reply == nil, ipn_monotonic_ns() < deadline {
            // A server that has just made its bus may not be on it yet: the bus drops what it is sent meanwhile.
            if ipn_monotonic_ns() - lastAsked > 200_000_000 {
                _ = try? socket.send(JackWire.encode(.jackRequest, index: 0, r))
                lastAsked = ipn_monotonic_ns()
            }
            let left = min(0.2, Double(deadline - min(deadline, ipn_monotonic_ns())) / 1e9)
            _ = try? socket.withNextMessage(timeout: left) { view in
                if let h = try? AudioBusMessage.decodeHeader(view.bytes), h.kind == .jackReply, h.index == 0 {
                    reply = JackWire.decode(JackWire.Reply.self, view.bytes)
                }
            }
        }
        guard let reply else {
            throw .status(JackWire.Status.failure | JackWire.Status.serverFailed, "no jackd-ipn answers on \(bus)")
        }
        if let e = reply.error { throw .status(reply.status ?? JackWire.Status.failure, e) }
        guard let n = reply.name, let rate = reply.rate, let period = reply.period else {
            throw .status(JackWire.Status.failure | JackWire.Status.serverError, "the server's answer lacks name, rate or period")
        }
        name = n
        cName = strdup(n)
        self.rate = rate
        self.period = period
        uuid = reply.uuid ?? 0
        openStatus = (reply.status ?? 0) | started
        thread = startThread { $0.serve() }
        notifierThread = startThread { $0.tellEvents() }
        Self.opened.withLock { $0.append(self) }
    }

    /// A thread running `body` on this client, which it keeps alive until `body` returns; nil if none could start.
    private func startThread(_ body: @escaping (JackClient) -> Void) -> pthread_t? {
        final class Start { let client: JackClient; let body: (JackClient) -> Void; init(_ c: JackClient, _ b: @escaping (JackClient) -> Void) { client = c; body = b } }
        let start = Unmanaged.passRetained(Start(self, body))
        var t = pthread_t()
        guard pthread_create(&t, nil, { arg in
            let start = Unmanaged<Start>.fromOpaque(arg!).takeRetainedValue()
            start.body(start.client)
            return nil
        }, start.toOpaque()) == 0 else {
            start.release()
            return nil
        }
        return t
    }

    let openStatus: UInt32
    /// The client's uuid (jack_client_get_uuid), as the server numbers it.
    let uuid: UInt64
    /// The clients open in this process: jack_get_property and its like take no client and ask through one.
    static let opened = Locked<[JackClient]>([])
    /// jack_get_client_name's answer: lives as long as the client.
    let cName: UnsafeMutablePointer<CChar>

    // MARK: requests

    /// Sends a request and waits for its answer (nil: the server is gone or did not answer in 5 s), which the
    /// thread reading the bus hands over. Asked from our own thread (a process callback) when no reader thread
    /// runs, it reads the bus itself.
    func ask(_ request: JackWire.Request) -> JackWire.Reply? {
        lock.lock()
        let id = nextRequest
        nextRequest += 1
        guard !shutDown else { lock.unlock(); return nil }
        lock.unlock()
        do { try send(JackWire.encode(.jackRequest, index: id, request)) } catch { return nil }
        let deadline = ipn_monotonic_ns() + 5_000_000_000
        while true {
            lock.lock()
            if let got = answers.removeValue(forKey: id) { lock.unlock(); return got }
            let gone = shutDown || socketClosed
            let now = ipn_monotonic_ns()
            if gone || now >= deadline { lock.unlock(); return nil }
            if !(onOwnThread && readerThread == nil) {
                waiters += 1
                _ = lock.wait(until: Date(timeIntervalSinceNow: min(0.2, Double(deadline - now) / 1e9)))
                waiters -= 1
                lock.unlock()
                continue
            }
            lock.unlock()
            var period: AudioBusMessage.Header?
            if case .gone = readOnce(timeout: min(0.2, Double(deadline - now) / 1e9), byOurThread: false, period: &period) { return nil }
        }
    }

    /// Sends a request without waiting for its answer (JACK's real-time-safe transport calls).
    func tell(_ request: JackWire.Request) -> Int32 {
        lock.lock()
        let id = nextRequest
        nextRequest += 1
        lock.unlock()
        do { try send(JackWire.encode(.jackRequest, index: id, request)) } catch { return -1 }
        return 0
    }

    private var onOwnThread: Bool { thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    private var onNotifierThread: Bool { notifierThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }

    private let sendLock = NSLock()
    /// Requests stay within the bus's inline size: a larger one would need a pool, set up on the control
    /// path our thread reads at the same time.
    func send(_ bytes: [UInt8]) throws {
        guard bytes.count <= (socket.busOptions?.inlineCapacity ?? BusOptions.inlineLimit) else { throw IPNError.mtuExceeded(size: bytes.count, mtu: socket.busOptions?.inlineCapacity ?? 0) }
        sendLock.lock(); defer { sendLock.unlock() }
        try socket.send(bytes, nonBlocking: true)
    }

    // MARK: ports

    func register(_ short: String, type: String, flags: UInt32) -> JackPort? {
        var r = JackWire.Request(op: "register"); r.name = short; r.type = type; r.flags = flags
        let reply = ask(r)
        guard let info = reply?.port else {
            JackLog.error("cannot register port \"\(short)\": \(reply?.error ?? "the server did not answer")")
            return nil
        }
        lock.lock(); defer { lock.unlock() }
        // The notification thread may have made its handle already, from the registration event.
        if let known = ports[info.name], known.info.id == info.id { mineStorage.append(known); return known }
        if let stale = ports[info.name] { retired.append(stale) }  // its handle stays valid
        let p = JackPort(info: info, client: self, frames: period)
        ports[info.name] = p; mineStorage.append(p)
        return p
    }

    func unregister(_ p: JackPort) -> Bool {
        var r = JackWire.Request(op: "unregister"); r.name = p.info.name
        guard let reply = ask(r), reply.error == nil else { return false }
        // Kept until the client closes: a process callback may still hold its buffer.
        lock.lock(); mineStorage.removeAll { $0 === p }; ports[p.info.name] = nil; retired.append(p); lock.unlock()
        return true
    }

    /// The port named `name` (ours or another client's), kept for the client's life as JACK does.
    func port(named name: String) -> JackPort? {
        lock.lock()
        if let p = ports[name] { lock.unlock(); return p }
        lock.unlock()
        var r = JackWire.Request(op: "port"); r.name = name
        guard let info = ask(r)?.port else { return nil }
        lock.lock(); defer { lock.unlock() }
        if let p = ports[info.name] { return p }
        let p = JackPort(info: info, client: self, frames: period)
        ports[info.name] = p
        return p
    }

    /// Adds or removes an alias of `port` (the server keeps them and tells every client).
    func alias(_ port: JackPort, _ alias: String, set: Bool) -> Int32 {
        var r = JackWire.Request(op: "alias"); r.name = port.info.name; r.destination = alias; r.flags = set ? 1 : 0
        guard let reply = ask(r) else { return -1 }
        guard reply.error == nil, let info = reply.port else {
            JackLog.error("cannot \(set ? "set" : "unset") alias \"\(alias)\" of \(port.info.name): \(reply.error ?? "no answer")")
            return -1
        }
        port.aliases = info.aliases
        return 0
    }

    /// A port by id: one registered now, else the newest gone one with that id (its handle stays valid).
    func port(id: UInt32) -> JackPort? {
        lock.lock(); defer { lock.unlock() }
        return ports.values.first { $0.info.id == id } ?? retired.last { $0.info.id == id }
    }

    func portsMatching(_ pattern: String?, type: String?, flags: UInt32) -> [String] {
        var r = JackWire.Request(op: "ports"); r.pattern = pattern; r.typePattern = type; r.flags = flags
        return ask(r)?.names ?? []
    }

    func connections(of name: String) -> [String] {
        var r = JackWire.Request(op: "connections"); r.name = name
        return ask(r)?.names ?? []
    }

    /// 0, EEXIST (already connected) or -1, as jack_connect answers.
    func connect(_ source: String, _ destination: String, _ op: String = "connect") -> Int32 {
        var r = JackWire.Request(op: op); r.source = source; r.destination = destination
        guard let reply = ask(r) else { return -1 }
        if reply.error == nil { return 0 }
        if reply.status == 17 { return EEXIST }
        JackLog.error("\(op) \(source) \(destination): \(reply.error!)")
        return -1
    }

    func activate() -> Int32 {
        var r = JackWire.Request(op: "activate"); r.processes = process != nil || processThread != nil
        guard let reply = ask(r), reply.error == nil else { return -1 }
        lock.lock(); active = true; lock.unlock()
        return 0
    }

    /// JACK's transport requests: they take effect from the server's next period.
    func transport(_ what: String, frame: UInt32 = 0) -> Int32 {
        var r = JackWire.Request(op: "transport"); r.name = what; r.flags = frame
        return tell(r)
    }

    func deactivate() -> Int32 {
        guard let reply = ask(JackWire.Request(op: "deactivate")), reply.error == nil else { return -1 }
        lock.lock(); active = false; lock.unlock()
        return 0
    }

    /// From a callback (our own thread), the close is said and our thread ends after the callback; from any
    /// other thread, it waits for the server's answer and for our thread to end. Our thread closes the socket.
    func close() {
        Self.opened.withLock { $0.removeAll { $0 === self } }
        if onOwnThread {
            if !shutDown { _ = tell(JackWire.Request(op: "close")) }
            lock.lock(); running = false; lock.broadcast(); lock.unlock()
            stopNotifier()
            return
        }
        if !shutDown { _ = ask(JackWire.Request(op: "close")) }
        lock.lock(); running = false; lock.broadcast(); lock.unlock()
        stopNotifier()
        // A callback in progress ends before the client does (unless the callback is what closes it).
        if let notifierThread, !onNotifierThread { pthread_join(notifierThread, nil) }
        if let thread { pthread_join(thread, nil) } else { closeSocket() }
        lock.lock(); let reader = readerThread; lock.unlock()
        if let reader { pthread_join(reader, nil) }
    }

    // MARK: the client's thread

    // MARK: reading the bus

    /// One thread reads the bus at a time (guarded by `lock`): our thread, and while the program's own process
    /// loop runs on it (jack_set_process_thread: it may block in the program's code, on locks that threads
    /// waiting for answers hold), a reader thread of real-time priority as well. No real-time thread ever waits
    /// for one of the program's threads to read.
    private var reading = false
    private var readerThread: pthread_t?
    private var socketClosed = false
    /// Threads waiting on `lock` for an answer, a process call or the bus (guarded by `lock`): with none, the
    /// period path broadcasts nothing.
    private var waiters = 0
    private func wakeWaiters() { if waiters > 0 { lock.broadcast() } }
    /// A process call that another thread read, copied for our thread.
    private var handedOver: [UInt8]?

    private enum ReadOutcome { case read, busy, gone }

    /// Reads one message (waiting at most `timeout`) unless another thread reads; then waits for something to
    /// change, at most `timeout`, and says `busy`. A process call read by our thread has its inputs put into the
    /// ports and its header in `period`; read by another thread it is handed over to ours.
    private func readOnce(timeout: Double, byOurThread: Bool, period: inout AudioBusMessage.Header?) -> ReadOutcome {
        lock.lock()
        if socketClosed { lock.unlock(); return .gone }
        if byOurThread && handedOver != nil { lock.unlock(); return .busy }
        if reading {
            waiters += 1
            _ = lock.wait(until: Date(timeIntervalSinceNow: timeout))
            waiters -= 1
            lock.unlock()
            return .busy
        }
        reading = true
        lock.unlock()
        var found: AudioBusMessage.Header?
        let result = Result { () throws(IPNError) in try socket.withNextMessage(timeout: timeout) { view in self.take(view, byOurThread: byOurThread, period: &found) } }
        lock.lock(); reading = false; wakeWaiters(); lock.unlock()
        if case .failure = result { return .gone }
        if let found { period = found }
        return .read
    }

    private enum PeriodWait { case period(AudioBusMessage.Header), nothing, gone }

    /// Our thread: the next process call, with its inputs in the ports, if one comes within `timeout`.
    private func waitForPeriod(timeout: Double) -> PeriodWait {
        lock.lock()
        if let copy = handedOver {
            handedOver = nil
            lock.unlock()
            return copy.withUnsafeBytes { bytes in
                guard let h = try? AudioBusMessage.decodeHeader(bytes) else { return .nothing }
                receiveInputs(h, bytes)
                return .period(h)
            }
        }
        lock.unlock()
        var period: AudioBusMessage.Header?
        switch readOnce(timeout: timeout, byOurThread: true, period: &period) {
        case .gone: return .gone
        case .busy: return .nothing
        case .read: return period.map { .period($0) } ?? .nothing
        }
    }

    /// Closes the socket once nobody reads it; nobody reads it after.
    private func closeSocket() {
        lock.lock()
        while reading { waiters += 1; lock.wait(); waiters -= 1 }
        let first = !socketClosed
        socketClosed = true
        lock.broadcast()
        lock.unlock()
        if first { socket.close() }
    }

    private func serve() {
        defer { closeSocket() }
        var realtime = false
        while true {
            lock.lock(); let go = running; lock.unlock()
            guard go else { return }
            if let (loop, arg) = processThread, isActive, !threadStarted {
                // The program's own process loop runs here, on our thread; it waits for periods in jack_cycle_wait.
                threadStarted = true
                realtime = true
                Self.becomeRealtime()
                // A period's outputs larger than a ring slot go through the pool, whose making waits on the control
                // path: made here, before the reader thread reads that path too.
                try? socket.preparePool()
                let reader = startThread { $0.readForTheProgramsLoop() }
                lock.lock(); readerThread = reader; lock.unlock()
                if let (cb, arg) = threadInit { cb(arg) }
                _ = loop(arg)
                continue
            }
            switch waitForPeriod(timeout: 0.2) {
            case .period(let h):
                if !realtime {
                    realtime = true
                    Self.becomeRealtime()
                    if let (cb, arg) = threadInit { cb(arg) }  // JACK runs it on the process thread, before its first period
                }
                runPeriod(h, silent: !isActive)
            case .nothing:
                continue
            case .gone:
                lostServer("the JACK server's bus \(bus) is gone")
                return
            }
        }
    }

    /// The reader thread: reads the bus while the program's process loop runs (jack_cycle_wait takes the process
    /// calls it hands over), until the client closes or loses its server.
    private func readForTheProgramsLoop() {
        Self.becomeRealtime()
        while true {
            lock.lock(); let go = running && !socketClosed; lock.unlock()
            guard go else { return }
            var period: AudioBusMessage.Header?
            if case .gone = readOnce(timeout: 0.2, byOurThread: false, period: &period) {
                lock.lock(); let closing = !running || socketClosed; lock.unlock()
                if !closing { lostServer("the JACK server's bus \(bus) is gone") }
                return
            }
        }
    }

    private func stopNotifier() { events.lock(); notifierStops = true; events.broadcast(); events.unlock() }

    /// The notification thread: the program's callbacks for graph events and xruns, one at a time, in order,
    /// until the client closes or loses its server.
    private func tellEvents() {
        while true {
            events.lock()
            while pendingEvents.isEmpty && !notifierStops { events.wait() }
            guard !notifierStops else { events.unlock(); return }
            let e = pendingEvents.removeFirst()
            events.unlock()
            notify(e)
        }
    }

    /// One message from the server, read by our thread or by one waiting for an answer.
    private func take(_ view: MessageView, byOurThread: Bool, period found: inout AudioBusMessage.Header?) {
        guard let h = try? AudioBusMessage.decodeHeader(view.bytes) else { return }
        switch h.kind {
        case .process:
            guard Int(h.frames) == period else { return }
            if byOurThread {
                receiveInputs(h, view.bytes)
                found = h
            } else {
                let copy = [UInt8](view.bytes)
                lock.lock(); handedOver = copy; wakeWaiters(); lock.unlock()
            }
        case .jackReply:
            guard let reply = JackWire.decode(JackWire.Reply.self, view.bytes) else { return }
            lock.lock(); answers[h.index] = reply; wakeWaiters(); lock.unlock()
        case .jackEvent:
            guard let e = JackWire.decode(JackWire.Event.self, view.bytes) else { return }
            events.lock(); pendingEvents.append(e); events.signal(); events.unlock()
        case .serverGone:
            lostServer("the JACK server stopped")
        default:
            break
        }
    }

    /// The period: inputs in, the program's process callback, outputs back.
    private var isActive: Bool { lock.lock(); defer { lock.unlock() }; return active }

    /// The period whose inputs are in the ports: the program's process callback, outputs back.
    private func runPeriod(_ h: AudioBusMessage.Header, silent: Bool) {
        let frames = Int(h.frames)
        var result: Int32 = 0
        if !silent, let (cb, arg) = process { result = cb(jack_nframes_t(frames), arg) }
        sendOutputs(h, silent: silent)
        if result != 0 {
            // JACK: a non-zero return deactivates the client (it is not shut down).
            JackLog.error("\(name): the process callback returned \(result); the client is deactivated")
            lock.lock(); active = false; lock.unlock()
            _ = tell(JackWire.Request(op: "deactivate"))
        }
    }

    /// jack_cycle_wait: our thread waits for the server's next process call (reading the bus unless a thread
    /// waiting for an answer does); its frames, its inputs in the ports. When the client is closing or the
    /// server is gone, the program's loop ends here, as with jack2 (the thread exits).
    func cycleWait() -> jack_nframes_t {
        guard onOwnThread else { return 0 }
        cycle = nil
        while true {
            lock.lock(); let go = running && !shutDown; lock.unlock()
            guard go else {
                closeSocket()
                pthread_exit(nil)
            }
            switch waitForPeriod(timeout: 0.2) {
            case .period(let h):
                cycle = h
                return jack_nframes_t(h.frames)
            case .nothing: continue
            case .gone: lostServer("the JACK server's bus \(bus) is gone")
            }
        }
    }

    /// jack_cycle_signal: the outputs of the period jack_cycle_wait gave; a non-zero status ends the client's
    /// processing (it is deactivated).
    func cycleSignal(_ status: Int32) {
        guard onOwnThread, let c = cycle else { return }
        cycle = nil
        sendOutputs(c, silent: false)
        if status != 0 {
            lock.lock(); active = false; lock.unlock()
            _ = tell(JackWire.Request(op: "deactivate"))
        }
    }

    private func receiveInputs(_ h: AudioBusMessage.Header, _ bytes: UnsafeRawBufferPointer) {
        let frames = Int(h.frames)
        frameClock.started(period: h.index, frames: frames, rate: rate, transport: JackWire.readTransport(bytes, at: h.size))
        var inputs = 0
        lock.lock()
        let ports = mineStorage
        lock.unlock()
        for p in ports {
            guard p.isInput else { continue }
            defer { inputs += 1 }
            let slot = UnsafeRawBufferPointer(start: bytes.baseAddress! + AudioBusMessage.headerSize + inputs * frames * 4, count: frames * 4)
            if inputs >= Int(h.channels) {
                if p.isAudio { p.buffer.update(repeating: 0, count: frames) } else { p.midi.clear() }
            } else if p.isAudio {
                p.buffer.update(from: slot.baseAddress!.assumingMemoryBound(to: Float.self), count: frames)
            } else {
                p.midi.clear()
                JackMidiSlot.forEach(slot) { time, data in
                    if let dst = p.midi.reserve(time: time, size: data.count) { dst.update(from: data.baseAddress!.assumingMemoryBound(to: UInt8.self), count: data.count) }
                }
            }
        }
    }

    private func sendOutputs(_ h: AudioBusMessage.Header, silent: Bool) {
        let frames = Int(h.frames)
        lock.lock()
        let ports = mineStorage
        lock.unlock()
        let outputs = ports.reduce(0) { $0 + ($1.isInput ? 0 : 1) }
        let out = AudioBusMessage.Header(kind: .processed, index: h.index, rate: h.rate, channels: UInt16(outputs), frames: h.frames)
        sendLock.lock()
        _ = try? socket.send(length: out.size, nonBlocking: true) { o in
            AudioBusMessage.writeHeader(out, into: o)
            var i = 0
            for p in ports where !p.isInput {
                defer { i += 1 }
                let dst = o.baseAddress! + AudioBusMessage.headerSize + i * frames * 4
                if silent {
                    if p.isAudio { dst.initializeMemory(as: UInt8.self, repeating: 0, count: frames * 4) } else { JackMidiSlot.clear(UnsafeMutableRawBufferPointer(start: dst, count: frames * 4)) }
                    continue
                }
                if p.isAudio {
                    dst.copyMemory(from: p.buffer, byteCount: frames * 4)
                } else {
                    var writer = JackMidiSlot.Writer(UnsafeMutableRawBufferPointer(start: dst, count: frames * 4))
                    for e in p.midi.events { writer.add(time: e.time, UnsafeRawBufferPointer(start: p.midi.data + e.offset, count: e.size)) }
                    p.midi.lost += UInt32(writer.lost)
                }
            }
        }
        sendLock.unlock()
    }

    private func notify(_ e: JackWire.Event) {
        switch e.event {
        case "registered", "unregistered":
            guard let info = e.port else { return }
            lock.lock()
            if e.event == "registered" {
                // Known from here on, so jack_port_by_id finds it even once it is gone again (JACK keeps every port's
                // handle valid): callbacks run after the fact, and programs look up the ids they are told.
                if let stale = ports[info.name], stale.info.id != info.id, !mineStorage.contains(where: { $0 === stale }) { retired.append(stale) }
                if ports[info.name]?.info.id != info.id { ports[info.name] = JackPort(info: info, client: self, frames: period) }
            } else if let known = ports[info.name], known.info.id == info.id {
                // A name may come back as another port: forget the one we knew (its handle stays valid).
                if !mineStorage.contains(where: { $0 === known }) {
                    ports[info.name] = nil
                    retired.append(known)
                }
            } else if !retired.contains(where: { $0.info.id == info.id }) {
                retired.append(JackPort(info: info, client: self, frames: period))
            }
            lock.unlock()
            if let (cb, arg) = portRegistration { cb(info.id, e.event == "registered" ? 1 : 0, arg) }
        case "connected", "disconnected":
            guard let a = e.sourceID, let b = e.destinationID else { return }
            if let (cb, arg) = portConnect { cb(a, b, e.event == "connected" ? 1 : 0, arg) }
        case "aliased":
            guard let info = e.port else { return }
            lock.lock(); let known = ports[info.name]; lock.unlock()
            if let known, known.info.id == info.id { known.aliases = info.aliases }
        case "client-registered", "client-unregistered":
            // JACK tells a client of the others, not of itself.
            guard let other = e.client, other != name, let (cb, arg) = clientRegistration else { return }
            other.withCString { cb($0, e.event == "client-registered" ? 1 : 0, arg) }
        case "graph":
            if let (cb, arg) = graphOrder { _ = cb(arg) }
        case "xrun":
            if let (cb, arg) = xrun { _ = cb(arg) }
        case "property":
            guard let subject = e.subject, let change = e.change, let (cb, arg) = propertyChange else { return }
            let kind = jack_property_change_t(rawValue: UInt32(change))
            if let key = e.key { key.withCString { cb(subject, $0, kind, arg) } } else { cb(subject, nil, kind, arg) }
        default:
            break
        }
    }

    private func lostServer(_ reason: String) {
        lock.lock()
        let first = !shutDown
        shutDown = true
        running = false
        lock.broadcast()
        lock.unlock()
        stopNotifier()
        guard first else { return }
        if let (cb, arg) = infoShutdown {
            reason.withCString { cb(JackStatus(rawValue: JackWire.Status.serverError | JackWire.Status.failure), $0, arg) }
        } else if let (cb, arg) = shutdown {
            cb(arg)
        }
    }

    /// Starts `jackd-ipn --temporary` for server `name` (or on bus path `bus`), from the directory this library is in.
    static func startServer(_ name: String, bus: String) throws(IPNError) {
        guard let file = ipnjack_library_path() else { throw .hostFailed(path: bus, reason: "cannot find libjack's own directory") }
        // ipn-jack loads us through a symbolic link (libjack.so.0): the real file is beside jackd-ipn.
        guard let real = realpath(file, nil) else { throw .hostFailed(path: bus, reason: "cannot resolve \(String(cString: file))") }
        let dir = (String(cString: real) as NSString).deletingLastPathComponent
        free(real)
        let server = dir + "/jackd-ipn"
        guard access(server, X_OK) == 0 else { throw .hostFailed(path: bus, reason: "no \(server) to start") }
        let args = [server, "--temporary"] + (name.contains("/") ? ["--bus", name] : ["-n", name])
        // Through a shell that backgrounds it and exits at once (reaped here): the server is nobody's child, so
        // it never lingers as a zombie of the program.
        let shell = ["/bin/sh", "-c", "\"$0\" \"$@\" &"] + args
        let shellArgv = shell.map { strdup($0) } + [nil]
        defer { shellArgv.forEach { free($0) } }
        let pid = shellArgv.withUnsafeBufferPointer { ipn_spawn_detached("/bin/sh", $0.baseAddress!, nil, -1) }
        guard pid > 0 else { throw .hostFailed(path: bus, reason: "cannot start \(server): \(String(cString: strerror(errno)))") }
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        JackLog.info("jackd-ipn started for JACK server \"\(name)\"")
    }

    /// SCHED_FIFO for the process thread when the user may (as a JACK client's process thread runs); quietly
    /// normal scheduling otherwise.
    static func becomeRealtime() {
        var param = sched_param(sched_priority: 60)
        _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param)
    }
}

/// The frame time (jack_frame_time and friends): the server's period count times its length, and when our
/// thread started the current period.
final class FrameClock: @unchecked Sendable {
    private let lock = NSLock()
    private var frame: UInt64 = 0
    private var start: UInt64 = 0
    private var rate = 48_000
    private var transport: (rolling: Bool, frame: UInt32) = (false, 0)
    func started(period: UInt64, frames: Int, rate: Int, transport: (rolling: Bool, frame: UInt32)?) {
        lock.lock()
        frame = period &* UInt64(frames); start = ipn_monotonic_ns() / 1000; self.rate = rate
        if let transport { self.transport = transport }
        lock.unlock()
    }
    /// The transport in this period: rolling, and its frame at the period's start.
    var transportNow: (rolling: Bool, frame: UInt32) { lock.lock(); defer { lock.unlock() }; return transport }
    /// (frames at the start of this period, its start in microseconds, rate)
    var now: (frame: UInt64, usecs: UInt64, rate: Int) { lock.lock(); defer { lock.unlock() }; return (frame, start, rate) }
}

/// What our libjack says on standard error, JACK's way: through the program's error and info functions
/// when it set them.
enum JackLog {
    nonisolated(unsafe) static var errorFunction: (@convention(c) (UnsafePointer<CChar>?) -> Void)?
    nonisolated(unsafe) static var infoFunction: (@convention(c) (UnsafePointer<CChar>?) -> Void)?
    private static let said = Locked<Set<String>>([])

    static func error(_ line: String) {
        if let f = errorFunction { line.withCString { f($0) } } else { FileHandle.standardError.write(Data(("ipn-jack: " + line + "\n").utf8)) }
    }

    static func info(_ line: String) {
        if let f = infoFunction { line.withCString { f($0) } }
    }

    /// A function we do not implement yet: said once, then it returns its documented failure value.
    static func notImplemented(_ function: String) {
        if said.withLock({ $0.insert(function).inserted }) { error("\(function) is not implemented by jackd-ipn's libjack yet; it returns failure") }
    }
}
