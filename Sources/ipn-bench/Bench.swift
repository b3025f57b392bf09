import ArgumentParser
import CIPNSys
import Foundation
import Glibc
import Histogram
import IPNBus
import MediaWire

/// ipn-bench: hub fan-out on a real bus against baselines measured in the same run.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipn-bench",
        abstract: "Measure IPN bus fan-out against a naive AF_UNIX relay and memcpy, in one run.",
        discussion: """
            For hub fan-out to N = 1, 2, 4, 8 receivers and messages of 64 B, 1500 B, 64 KiB and 4 MiB it prints \
            messages/s per receiver, delivered MB/s, sender CPU per message and (paced at a fixed rate) \
            publish→receive latency p50/p99; then the same for a naive SOCK_SEQPACKET relay and single-thread \
            memcpy bandwidth, and the ratios. Absolute numbers drift between runs; ratios from one run compare.
            """)

    @Flag(help: "Fewer messages per case (a smoke run).") var quick = false
    @Flag(inversion: .prefixedNo, help: "Also measure raw 1080p frames through the media policy and late-join time.") var media = true
    @Option(help: "Receiver counts, comma separated.") var receivers = "1,2,4,8"
    @Option(help: "Message sizes in bytes, comma separated.") var sizes = "64,1500,65536,4194304"
    @Flag(inversion: .prefixedNo, help: "Also measure jackd-ipn: server CPU per period, app-to-app latency through the ALSA plugin.") var audio = true
    @Option(name: .customLong("audio-soak"), help: "Also run 8 audio clients for this many seconds and count xruns (e.g. 600).") var audioSoak: Double?
    @Flag(name: .customLong("audio-only"), help: "Only the audio part.") var audioOnly = false
    @Flag(inversion: .prefixedNo, help: "Also measure JACK clients: a chain of N copy clients on jackd-ipn (our libjack) against jackd2.") var jack = true
    @Flag(name: .customLong("jack-only"), help: "Only the JACK chain.") var jackOnly = false
    @Flag(inversion: .prefixedNo, help: "Also measure TCP throughput and ping RTT between namespaces: IPN switch bus vs vde_switch vs Linux bridge (root).") var network = true
    @Flag(name: .customLong("network-only"), help: "Only the network part.") var networkOnly = false
    @Flag(inversion: .prefixedNo, help: "Also measure the viewers: the browser feed's cost per frame, `mediajack serve` fan-out against a remux per viewer.") var viewers = true
    @Flag(name: .customLong("viewers-only"), help: "Only the viewers part.") var viewersOnly = false
    @Flag(inversion: .prefixedNo, help: "Also measure the webcam path: `mediajack webcam` against ffmpeg writing to a v4l2loopback device (in the device tier's VM).") var webcam = true
    @Flag(name: .customLong("webcam-only"), help: "Only the webcam path.") var webcamOnly = false
    @Flag(name: .customLong("webcam-here"), help: "Measure the webcam path on this machine's free v4l2loopback devices, not in the VM (ffmpeg leaves each device it writes to fed until the module is reloaded).") var webcamHere = false
    @Option(name: .customLong("webcam-inside"), help: .hidden) var webcamInside: String?
    @Option(name: .customLong("webcam-fps"), help: .hidden) var webcamFPS = 10
    @Option(name: .customLong("webcam-seconds"), help: .hidden) var webcamSeconds = 10

    static func main() {
        // Each result line reaches `ipn-bench > results.txt` as it is measured: a run cut short keeps what it found.
        StandardOutput.flushEveryLine()
        main(nil)
    }

    func run() throws {
        if networkOnly {
            printMachine()
            NetworkBench.run(quick: quick)
            return
        }
        if let device = webcamInside {
            WebcamBench.inside(devices: device, fps: webcamFPS, seconds: webcamSeconds)
            return
        }
        if webcamOnly {
            printMachine()
            WebcamBench.run(quick: quick, here: webcamHere)
            return
        }
        if viewersOnly {
            printMachine()
            try ViewerBench.run(quick: quick)
            return
        }
        if jackOnly {
            printMachine()
            try JackBench.run(quick: quick)
            return
        }
        if audioOnly {
            printMachine()
            try AudioBench.run(quick: quick, soakSeconds: audioSoak)
            return
        }
        let ns = receivers.split(separator: ",").compactMap { Int($0) }
        let ss = sizes.split(separator: ",").compactMap { Int($0) }
        printMachine()
        let memcpyMBs = measureMemcpy()
        print(String(format: "memcpy (single thread, 64 MiB buffers): %.0f MB/s", memcpyMBs))
        print("")
        print("hub fan-out through an IPN bus (lossless, saturated: the sender runs at the slowest receiver's pace; latency paced at 1000 msg/s on a lossy bus)")
        print("   N       size     msg/s/recv   deliv MB/s  send CPU/msg   drops    p50 µs   p99 µs   vs relay  vs memcpy")
        var results: [String: Throughput] = [:]
        for size in ss {
            for n in ns {
                let count = messageCount(size)
                let t = try measureBus(receivers: n, size: size, count: count)
                let lat = try measureBusLatency(receivers: n, size: size)
                results["\(n)/\(size)"] = t
                let relay = size <= 65536 ? measureRelay(receivers: n, size: size, count: count) : nil
                let relayRatio = relay.map { String(format: "%7.2fx", t.perReceiver / $0.perReceiver) } ?? "    n/a"
                print(String(format: "  %2d %10d %14.0f %12.1f %11.2f µs %7llu %9.1f %8.1f  %@  %7.3fx",
                             n, size, t.perReceiver, t.deliveredMBs, t.senderCPUPerMessage / 1000, t.drops,
                             lat.p50, lat.p99, relayRatio, t.deliveredMBs / memcpyMBs))
            }
        }
        print("")
        print("naive AF_UNIX SOCK_SEQPACKET relay (one relay thread copies each message to each receiver)")
        print("   N       size     msg/s/recv   deliv MB/s  send CPU/msg")
        for size in ss where size <= 65536 {
            for n in ns {
                let r = measureRelay(receivers: n, size: size, count: messageCount(size))
                print(String(format: "  %2d %10d %14.0f %12.1f %11.2f µs", n, size, r.perReceiver, r.deliveredMBs, r.senderCPUPerMessage / 1000))
            }
        }
        print("")
        print("targets")
        if let one = results["1/4194304"], let eight = results["8/4194304"] {
            print(String(format: "  sender CPU per 4 MiB message, 8 receivers / 1 receiver: %.2f (target <= 1.2)",
                         eight.senderCPUPerMessage / one.senderCPUPerMessage))
        }
        if ns.contains(3) == false, ss.contains(1500) {
            let bus = try measureBus(receivers: 3, size: 1500, count: messageCount(1500))
            let relay = measureRelay(receivers: 3, size: 1500, count: messageCount(1500))
            print(String(format: "  1500 B hub, 3 receivers: %.0f msg/s per receiver vs relay %.0f: %.2fx (target >= 2), drops %llu",
                         bus.perReceiver, relay.perReceiver, bus.perReceiver / relay.perReceiver, bus.drops))
        }
        let idle = try measureBusLatency(receivers: 1, size: 64)
        print(String(format: "  publish->receive latency at 1000 msg/s, 64 B: p50 %.1f µs, p99 %.1f µs (target p99 <= 100)", idle.p50, idle.p99))
        if media { try MediaBench.run(quick: quick) }
        if audio { try AudioBench.run(quick: quick, soakSeconds: audioSoak) }
        if jack { try JackBench.run(quick: quick) }
        if network { NetworkBench.run(quick: quick) }
        if viewers { try ViewerBench.run(quick: quick) }
        if webcam { WebcamBench.run(quick: quick, here: webcamHere) }
    }

    func messageCount(_ size: Int) -> Int {
        let base: Int
        switch size {
        case ...2048: base = 200_000
        case ...(1 << 20): base = 20_000
        default: base = 600
        }
        return quick ? max(50, base / 20) : base
    }

    func printMachine() {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        print("machine: \(cpu), \(ProcessInfo.processInfo.activeProcessorCount) CPUs, Linux \(release)")
    }
}

struct Throughput {
    var perReceiver: Double
    var deliveredMBs: Double
    var senderCPUPerMessage: Double  // ns
    var drops: UInt64
}

struct Latency { var p50: Double; var p99: Double }

func measureMemcpy() -> Double {
    let size = 64 << 20
    let a = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    let b = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    defer { a.deallocate(); b.deallocate() }
    memset(a, 1, size); memset(b, 2, size)
    let rounds = 20
    var check: UInt8 = 0
    let start = ipn_monotonic_ns()
    for r in 0..<rounds {
        a.storeBytes(of: UInt8(r), toByteOffset: (r * 4099) % size, as: UInt8.self)
        memcpy(b, a, size)
        check &+= b.load(fromByteOffset: (r * 4099) % size, as: UInt8.self)  // keeps the copy observable
    }
    let seconds = Double(ipn_monotonic_ns() - start) / 1e9
    if check == 255 { print("", terminator: "") }
    return Double(size * rounds) / seconds / 1e6
}

/// A value shared by threads. Change part of it with `withLock` (`value[i] = x` would read and write
/// it in two steps, losing another thread's change in between).
final class Box<T>: Sendable {
    private let mutex: Locked<T>
    init(_ v: sending T) { mutex = Locked(v) }
    func withLock<R: Sendable>(_ body: (inout sending T) -> R) -> R { mutex.withLock { body(&$0) } }
}

extension Box where T: Sendable {
    var value: T {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}

/// A bus in a temporary directory with `receivers` receiving nodes (threads of this process; the
/// host is its own process, as always).
func withBus<T>(receivers n: Int, size: Int, queue: Int, lossless: Bool = false, _ body: (String, [IPNSocket], IPNSocket) throws -> T) throws -> T {
    let dir = "/tmp/ipn-bench-\(getpid())"
    mkdir(dir, 0o755)
    let path = dir + "/bus"
    let manager = IPNSocket(policy: "hub")
    manager.options.mtu = max(1514, size)
    manager.options.queueLength = queue
    manager.options.poolBytes = max(64 << 20, size * 16)
    manager.options.lossless = lossless
    try manager.bind(path)
    defer { try? Bus.remove(path); manager.close(); rmdir(dir) }
    let rs = try (0..<n).map { _ -> IPNSocket in
        let r = IPNSocket()
        try r.shutdown(.write)
        try r.connect(path)
        return r
    }
    let sender = IPNSocket()
    try sender.shutdown(.read)
    try sender.connect(path)
    defer { sender.close(); rs.forEach { $0.close() } }
    return try body(path, rs, sender)
}

func fill(_ b: UnsafeMutableRawBufferPointer, stamp: UInt64) {
    if b.count > 8 { memset(b.baseAddress! + 8, 0x5a, b.count - 8) }
    b.storeBytes(of: stamp, as: UInt64.self)
}

func measureBus(receivers n: Int, size: Int, count: Int) throws -> Throughput {
    // Lossless, so the sender runs at the pace of the slowest receiver and every message counts.
    try withBus(receivers: n, size: size, queue: 256, lossless: true) { _, rs, sender in
        let done = DispatchGroup()
        let received = Box([Int](repeating: 0, count: n))
        let lastArrival = Box([UInt64](repeating: 0, count: n))
        let endMarker = UInt64.max
        for (i, r) in rs.enumerated() {
            done.enter()
            Thread.detachNewThread {
                var got = 0
                while true {
                    let stamp = (try? r.withNextMessage(timeout: 2) { v in v.bytes.load(as: UInt64.self) }) ?? nil
                    guard let stamp, stamp != endMarker else { break }
                    got += 1
                }
                let now = ipn_monotonic_ns()
                lastArrival.withLock { $0[i] = now }
                received.withLock { $0[i] = got }
                done.leave()
            }
        }
        let cpu0 = ipn_thread_cpu_ns()
        let start = ipn_monotonic_ns()
        for i in 0..<count { try sender.send(length: size) { fill($0, stamp: UInt64(i)) } }
        let cpu = Double(ipn_thread_cpu_ns() - cpu0)
        for _ in 0..<2 { try sender.send(length: size) { fill($0, stamp: endMarker) } }
        done.wait()
        let seconds = Double(lastArrival.value.max()! - start) / 1e9
        let total = received.value.reduce(0, +)
        let drops = rs.reduce(UInt64(0)) { $0 + $1.droppedByHost + $1.lapped }
        return Throughput(perReceiver: Double(total) / Double(n) / seconds,
                          deliveredMBs: Double(total) * Double(size) / seconds / 1e6,
                          senderCPUPerMessage: cpu / Double(count), drops: drops)
    }
}

func measureBusLatency(receivers n: Int, size: Int) throws -> Latency {
    let rate = size >= (1 << 20) ? 100 : 1000
    let count = size >= (1 << 20) ? 100 : 1000
    return try withBus(receivers: n, size: size, queue: 256) { _, rs, sender in
        let histogram = Box(Histogram<UInt64>(highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three))
        let done = DispatchGroup()
        for r in rs {
            done.enter()
            Thread.detachNewThread {
                var local: [UInt64] = []
                local.reserveCapacity(count)
                while local.count < count {
                    guard let stamp = (try? r.withNextMessage(timeout: 2) { v in v.bytes.load(as: UInt64.self) }) ?? nil else { break }
                    if stamp != UInt64.max { local.append(ipn_monotonic_ns() &- stamp) }
                }
                histogram.withLock { for l in local { $0.record(l) } }
                done.leave()
            }
        }
        // Warm up (maps every pool, faults every page in) before measuring.
        for _ in 0..<20 {
            try sender.send(length: size) { b in b.storeBytes(of: UInt64.max, as: UInt64.self) }
            usleep(2000)
        }
        let interval = 1_000_000_000 / UInt64(rate)
        var due = ipn_monotonic_ns()
        for _ in 0..<count {
            due += interval
            while true {
                let now = ipn_monotonic_ns()
                if now >= due { break }
                usleep(UInt32(min(200, (due - now) / 1000 + 1)))
            }
            try sender.send(length: size) { b in
                if b.count > 8 { memset(b.baseAddress! + 8, 0x5a, b.count - 8) }
                b.storeBytes(of: ipn_monotonic_ns(), as: UInt64.self)
            }
        }
        done.wait()
        let (p50, p99) = histogram.withLock { ($0.valueAtPercentile(50), $0.valueAtPercentile(99)) }
        return Latency(p50: Double(p50) / 1000, p99: Double(p99) / 1000)
    }
}

/// The naive relay: sender → relay thread over SOCK_SEQPACKET, relay → each receiver over its own.
func measureRelay(receivers n: Int, size: Int, count: Int) -> Throughput {
    func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds)
        _ = ipn_set_buffer_sizes(fds[0], 4 << 20)
        _ = ipn_set_buffer_sizes(fds[1], 4 << 20)
        return (fds[0], fds[1])
    }
    let (senderEnd, relayIn) = pair()
    let outs = (0..<n).map { _ in pair() }
    let done = DispatchGroup()
    let received = Box([Int](repeating: 0, count: n))
    for i in 0..<n {
        let fd = outs[i].1
        done.enter()
        Thread.detachNewThread {
            var buf = [UInt8](repeating: 0, count: size + 16)
            var got = 0
            while true {
                let r = recv(fd, &buf, buf.count, 0)
                if r <= 8 { break }
                got += 1
            }
            received.withLock { $0[i] = got }
            done.leave()
        }
    }
    done.enter()
    Thread.detachNewThread {
        var buf = [UInt8](repeating: 0, count: size + 16)
        while true {
            let r = recv(relayIn, &buf, buf.count, 0)
            if r <= 0 { break }
            for o in outs { _ = send(o.0, buf, r, Int32(MSG_NOSIGNAL)) }
            if r <= 8 { break }
        }
        done.leave()
    }
    var msg = [UInt8](repeating: 0x5a, count: size)
    let cpu0 = ipn_thread_cpu_ns()
    let start = ipn_monotonic_ns()
    for i in 0..<count {
        msg.withUnsafeMutableBytes { b in
            fill(b, stamp: UInt64(i))
            _ = send(senderEnd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL))
        }
    }
    let cpu = Double(ipn_thread_cpu_ns() - cpu0)
    _ = send(senderEnd, [UInt8](repeating: 0, count: 4), 4, Int32(MSG_NOSIGNAL))
    done.wait()
    let seconds = Double(ipn_monotonic_ns() - start) / 1e9
    close(senderEnd); close(relayIn)
    for o in outs { close(o.0); close(o.1) }
    let total = received.value.reduce(0, +)
    return Throughput(perReceiver: Double(total) / Double(n) / seconds,
                      deliveredMBs: Double(total) * Double(size) / seconds / 1e6,
                      senderCPUPerMessage: cpu / Double(count), drops: UInt64(count * n - total))
}
