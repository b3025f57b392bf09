import CIPNSys
import Foundation
import Glibc
import Histogram
import IPNBus
import MediaJack
import MediaWire

/// The webcam path: `mediajack webcam` decoding a bus's 720p H.264 into a v4l2loopback device, against ffmpeg
/// doing the same work on the same stream (`ffmpeg -f h264 -i - -f v4l2 /dev/videoN`, decoding threads off
/// as for the lowest delay), both fed the same pictures at the same pace, in the same run, read by the same
/// V4L2 reader. Per path: CPU per picture (decode + scale to YUYV + write: the process's CPU time from start to
/// exit, from /proc, over the pictures handed to it), and each picture's
/// delay from the moment it was handed over (published on the bus, written into ffmpeg's pipe) to the moment
/// the reader dequeued it (its frame number is read from the test picture's barcode).
///
/// On this machine when it has a v4l2loopback device free for a producer; else inside the device tier's VM
/// (scripts/vm/run, an emulated CPU: a lower rate, and said so).
enum WebcamBench {
    static let width = 1280, height = 720

    /// `here`: on this machine's free loopback devices (ffmpeg leaves each one it writes to fed until the module
    /// is reloaded); else in the VM.
    static func run(quick: Bool, here: Bool) {
        print("")
        let seconds = quick ? 4 : 10
        let free = DeviceList.loopbacks().filter { !$0.fed }.map(\.path)
        if here {
            guard !free.isEmpty else { print("webcam path: --webcam-here, but this machine has no free v4l2loopback device"); return }
            let devices = Array(free.prefix(rounds + 1))
            report(measure(devices: devices, fps: 30, seconds: seconds), fps: 30, where: devices.joined(separator: ", ") + " on this machine")
            return
        }
        // The VM: the same binary, inside, writes its results into the shared directory.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let script = repository + "/scripts/vm/run"
        guard FileManager.default.fileExists(atPath: repository + "/.build/vm/v4l2loopback-src/Makefile") else {
            print("webcam path: skipped (no v4l2loopback device here, and no module for the VM: run scripts/setup --devices)")
            return
        }
        let work = "/tmp/ipn-bench-webcam-\(getpid())"
        try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fps = 10
        print("webcam path: measuring in the device tier's VM (emulated CPU, \(fps) fps; --webcam-here to use this machine's loopback devices)...")
        _ = bashOutput("""
            IPN_VM_TIMEOUT=900 IPN_VM_LOOPBACKS=\(rounds + 1) bash '\(script)' '\(work)' \
              '\(URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path)' \
              --webcam-inside \((0...rounds).map { "/dev/video\(10 + $0)" }.joined(separator: ",")) \
              --webcam-fps \(fps) --webcam-seconds \(seconds) > '\(work)/vm.txt' 2>&1
            """)
        guard let text = try? String(contentsOfFile: work + "/results.txt", encoding: .utf8), !text.isEmpty else {
            let said = ["vm.txt", ".vm-output"].compactMap { try? String(contentsOfFile: work + "/" + $0, encoding: .utf8) }.joined()
            print("webcam path: the VM run measured nothing: \(said.suffix(3000))")
            return
        }
        print(text, terminator: "")
    }

    /// Inside the VM: measures and writes what `run` prints to ./results.txt.
    static func inside(devices: String, fps: Int, seconds: Int) {
        let out = StringOutput()
        let list = devices.split(separator: ",").map(String.init)
        report(measure(devices: list, fps: fps, seconds: seconds), fps: fps,
               where: list.joined(separator: ", ") + " in the device tier's VM (emulated CPU)", to: out)
        try? out.text.write(toFile: "results.txt", atomically: true, encoding: .utf8)
        print(out.text, terminator: "")
    }

    final class StringOutput { var text = "" }

    struct PathResult {
        var name: String
        var sent = 0
        var cpuSeconds = 0.0
        /// Milliseconds from hand-over to the reader, per picture the reader saw.
        var delays: [Double] = []
        /// Pictures the reader saw, per round.
        var read: [Int] = []
        var error: String?
    }

    static func report(_ results: Result<[PathResult], Error>, fps: Int, where place: String, to out: StringOutput? = nil) {
        func say(_ s: String) { if let out { out.text += s + "\n" } else { print(s) } }
        say("webcam path, \(place): \(width)x\(height) H.264 at \(fps) fps into the loopback as YUYV, one V4L2 reader (mmap); \(rounds) rounds each, in turn")
        say("                                    CPU/picture   delay p50     p99   pictures read per round")
        switch results {
        case .failure(let e): say("  failed: \(e)")
        case .success(let paths):
            for p in paths {
                if let e = p.error { say("  \(p.name): failed: \(e)"); continue }
                var h = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                for d in p.delays { h.record(UInt64(max(0, d) * 1000)) }
                let p50 = Double(h.valueAtPercentile(50)) / 1000, p99 = Double(h.valueAtPercentile(99)) / 1000
                say("  " + p.name.padding(toLength: 32, withPad: " ", startingAt: 0) + String(format: " %8.2f ms %9.1f ms %7.1f ms   ",
                           p.cpuSeconds * 1000 / Double(max(1, p.sent)), p50, p99) + p.read.map(String.init).joined(separator: ", ") + " of \(p.sent)")
            }
            if paths.count == 2, paths.allSatisfy({ $0.error == nil && !$0.delays.isEmpty }) {
                let (a, b) = (paths[0], paths[1])
                let cpu = (a.cpuSeconds / Double(max(1, a.sent))) / max(1e-9, b.cpuSeconds / Double(max(1, b.sent)))
                let median = { (d: [Double]) in d.sorted()[d.count / 2] }
                say(String(format: "  mediajack webcam / ffmpeg: CPU per picture %.2fx, median delay %.2fx (frame interval %.1f ms)",
                           cpu, median(a.delays) / max(0.001, median(b.delays)), 1000 / Double(fps)))
                say("  (ffmpeg writes without STREAMON and leaves its device fed for good, v4l2loopback issue 442: each of its"
                    + " rounds had a device of its own; mediajack webcam gave its device back and took it again every round)")
            }
        }
    }

    static let rounds = 3

    static func combined(_ rounds: [PathResult]) -> PathResult {
        if let failed = rounds.first(where: { $0.error != nil }) { return failed }
        var r = rounds.sorted { $0.cpuSeconds < $1.cpuSeconds }[rounds.count / 2]
        r.delays = rounds.flatMap(\.delays)
        r.sent = rounds[0].sent
        r.read = rounds.map { $0.delays.count }
        return r
    }

    /// `devices[0]` takes every round of `mediajack webcam`; each further one takes a round of ffmpeg (with none,
    /// ffmpeg runs once, last, on the first).
    static func measure(devices: [String], fps: Int, seconds: Int) -> Result<[PathResult], Error> {
        Result {
            MediaLibrary.quiet()
            // A child that dies is an error to report, not a signal that ends the benchmark.
            signal(SIGPIPE, SIG_IGN)
            let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            let frames = fps * seconds
            let encoder = try VideoEncoder(codec: .h264, width: width, height: height, fps: fps, gop: 2 * fps, bitrate: 4_000_000, preset: "ultrafast")
            var packets: [VideoEncoder.Packet] = []
            for n in 0..<Int64(frames) {
                let stamp = TestPattern.Stamp(frame: UInt32(n), captureMilliseconds: 0)
                packets += try encoder.encode(index: n, draw: { TestPattern.drawI420(stamp, into: $0, width: width, height: height) })
            }
            let description = StreamDescription(kind: .video, codec: "h264", width: width, height: height, pixelFormat: "yuv420p",
                                                frameRate: (fps, 1), extradata: encoder.extradata, allKeyframes: false)
            // Rounds taken in turn, so a busy moment of the machine falls on both: per path the median round's
            // CPU, and the delays of every round. ffmpeg writes without STREAMON, which leaves an exclusive_caps
            // device fed for good (v4l2loopback issue 442): each of its rounds needs a device of its own, while
            // `mediajack webcam` gives its device back and takes the same one every round.
            var bus: [PathResult] = [], ffmpeg: [PathResult] = []
            let ours = devices[0], theirs = devices.count > 1 ? Array(devices.dropFirst()) : []
            for round in 0..<rounds {
                bus.append(throughTheBus(packets, description, device: ours, fps: fps, bin: bin))
                if round < theirs.count {
                    ffmpeg.append(throughFFmpeg(packets, extradata: encoder.extradata, device: theirs[round], fps: fps))
                }
            }
            if theirs.isEmpty { ffmpeg.append(throughFFmpeg(packets, extradata: encoder.extradata, device: ours, fps: fps)) }
            return [combined(bus), combined(ffmpeg)]
        }
    }

    /// `mediajack webcam` on a media bus this process publishes on.
    static func throughTheBus(_ packets: [VideoEncoder.Packet], _ d: StreamDescription, device: String, fps: Int, bin: String) -> PathResult {
        var result = PathResult(name: "mediajack webcam (from the bus)")
        let dir = NSTemporaryDirectory() + "/ipn-bench-webcam-bus-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            var options = BusOptions()
            options.policy = "media"; options.mtu = 4 << 20; options.queueLength = 64
            let publisher = try MediaPublisher(bus: dir + "/bus", description: "ipn-bench", creating: options)
            let stream = try publisher.addStream(d)
            let webcam = try Child(bin + "/mediajack", ["webcam", dir + "/bus", device, "--size", "\(width)x\(height)", "--fps", "\(fps)"],
                                   errorLog: dir + "/webcam.log")
            defer { webcam.stop() }
            let reader = try Reader(device: device, fps: fps, frames: packets.count, log: dir + "/webcam.log")
            defer { reader.stop() }
            var sent = [Int64](repeating: 0, count: packets.count)
            let period = 1_000_000_000 / Int64(fps), start = MediaPublisher.monotonic()
            for (i, p) in packets.enumerated() {
                waitUntil(start + Int64(i) * period)
                sent[i] = MediaPublisher.monotonic()
                try p.bytes.withUnsafeBytes { bytes in
                    try publisher.publish(stream: stream, flags: p.keyframe ? .keyframe : [], pts: p.index * period, duration: period,
                                          payloadLength: bytes.count) { $0.copyMemory(from: bytes) }
                }
            }
            reader.finish(after: 3)
            result.cpuSeconds = webcam.cpuSecondsAtExit(after: SIGINT)
            result.sent = packets.count
            result.delays = reader.delays(sent: sent)
            try publisher.endStream(stream)
            if let e = reader.error { result.error = e }
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// ffmpeg decoding the same stream from a pipe into the device.
    static func throughFFmpeg(_ packets: [VideoEncoder.Packet], extradata: [UInt8], device: String, fps: Int) -> PathResult {
        var result = PathResult(name: "ffmpeg -f v4l2 (from a pipe)")
        let log = NSTemporaryDirectory() + "/ipn-bench-webcam-ffmpeg-\(getpid()).log"
        defer { unlink(log) }
        do {
            let ffmpeg = try Child("/usr/bin/ffmpeg", ["-hide_banner", "-loglevel", "error", "-fflags", "nobuffer", "-flags", "low_delay",
                                                       "-probesize", "32", "-analyzeduration", "0", "-f", "h264", "-framerate", "\(fps)",
                                                       "-i", "pipe:0", "-pix_fmt", "yuyv422", "-f", "v4l2", device],
                                   errorLog: log, pipeInput: true)
            defer { ffmpeg.stop(SIGKILL) }
            var sent = [Int64](repeating: 0, count: packets.count)
            let period = 1_000_000_000 / Int64(fps)
            var start = MediaPublisher.monotonic()
            var reader: Reader?
            defer { reader?.stop() }
            let stream = AnnexB(extradata: extradata)
            for (i, p) in packets.enumerated() {
                waitUntil(start + Int64(i) * period)
                sent[i] = MediaPublisher.monotonic()
                do { try ffmpeg.write(stream.convert(p.bytes, keyframe: p.keyframe)) } catch {
                    throw BenchError("\(error); ffmpeg said: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                }
                // ffmpeg opens the device at its first picture: the reader joins then (the first ones go unread).
                if reader == nil, i >= fps, LoopbackOutput.probe(device)?.capture == true {
                    reader = try Reader(device: device, fps: fps, frames: packets.count, log: log)
                    start = MediaPublisher.monotonic() - Int64(i) * period
                }
            }
            guard let reader else { throw BenchError("ffmpeg never fed \(device): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
            reader.finish(after: 3)
            // ffmpeg ends at the end of its input, every picture written.
            result.cpuSeconds = ffmpeg.cpuSecondsAtExit()
            result.sent = packets.count
            result.delays = reader.delays(sent: sent)
            if let e = reader.error { result.error = e }
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    struct BenchError: Error, CustomStringConvertible {
        var description: String
        init(_ s: String) { description = s }
    }

    /// A V4L2 reader of the device on a thread of its own: when it first saw each frame number.
    final class Reader: @unchecked Sendable {
        private let lock = NSLock()
        private var firstSeen: [Int64]
        private var stopping = false
        private(set) var error: String?
        private let done = DispatchSemaphore(value: 0)
        private let last: Int

        /// Opens once the device offers capture (a producer feeds it), within 60 s.
        init(device: String, fps: Int, frames: Int, log: String) throws {
            firstSeen = [Int64](repeating: 0, count: frames)
            last = frames - 1
            let deadline = Date().addingTimeInterval(60)
            while LoopbackOutput.probe(device)?.capture != true {
                guard Date() < deadline else {
                    throw BenchError("\(device) never offered capture: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                }
                usleep(10_000)
            }
            // The device is opened by the thread that reads it (a V4L2Device has one owner).
            let opened = DispatchSemaphore(value: 0)
            Thread.detachNewThread { [self] in
                defer { done.signal() }
                let camera: V4L2Device
                do {
                    camera = try V4L2Device(path: device)
                    _ = try camera.configure(fourcc: FourCC.code("YUYV"), width: width, height: height, rate: FrameRate(fps, 1))
                    try camera.start(buffers: 4)
                    opened.signal()
                } catch {
                    lock.withLock { self.error = "opening \(device) to read: \(error)" }
                    opened.signal()
                    return
                }
                var luma = [UInt8](repeating: 0, count: width * height)
                defer { camera.stop() }
                while !lock.withLock({ stopping }) {
                    do {
                        guard let c = try camera.next(timeout: 0.2) else { continue }
                        let now = MediaPublisher.monotonic()
                        // The barcode is in the picture's top rows: their luma only.
                        let rows = min(height, TestPattern.blockSize(width: width) * (TestPattern.rows + 2) + 8)
                        for i in 0..<(rows * width) where 2 * i < c.bytes.count { luma[i] = c.bytes[2 * i] }
                        let stamp = luma.withUnsafeBytes { TestPattern.read(luma: UnsafeRawBufferPointer(rebasing: $0[0..<(rows * width)]), stride: width, width: width, height: rows) }
                        try camera.requeue(c)
                        if let n = stamp.map({ Int($0.frame) }), n <= last {
                            lock.withLock { if firstSeen[n] == 0 { firstSeen[n] = now } }
                        }
                    } catch {
                        lock.withLock { self.error = "\(error)" }
                        return
                    }
                }
            }
            opened.wait()
            if let e = lock.withLock({ error }) { done.wait(); throw BenchError(e) }
        }

        /// Waits until the last frame is seen or `seconds` without a new one pass, then stops the reader.
        func finish(after seconds: Double) {
            var lastCount = -1, quietSince = Date()
            while true {
                let (count, sawLast) = lock.withLock { (firstSeen.filter { $0 != 0 }.count, firstSeen[last] != 0) }
                if sawLast || lock.withLock({ error }) != nil { break }
                if count != lastCount { lastCount = count; quietSince = Date() }
                if Date().timeIntervalSince(quietSince) > seconds { break }
                usleep(20_000)
            }
            stop()
        }

        /// Stops the reading thread and waits for it (once; later calls return at once).
        func stop() {
            let first = lock.withLock { () -> Bool in defer { stopping = true }; return !stopping }
            if first { done.wait() }
        }

        func delays(sent: [Int64]) -> [Double] {
            lock.withLock { zip(firstSeen, sent).compactMap { seen, sent in seen == 0 ? nil : Double(seen - sent) / 1_000_000 } }
        }
    }

    /// The encoder's packets (length-prefixed when it keeps SPS/PPS in extradata) as an H.264 byte stream for a
    /// pipe: start codes, and the parameter sets before each keyframe.
    struct AnnexB {
        let parameterSets: [UInt8]
        init(extradata: [UInt8]) {
            // avcC: version, profile, compat, level, length size, SPS count, then (length, SPS)..., PPS count, (length, PPS)...
            var sets: [UInt8] = []
            if extradata.first == 1, extradata.count > 7 {
                var i = 5
                for _ in 0..<2 {
                    guard i < extradata.count else { break }
                    let count = Int(extradata[i] & (i == 5 ? 0x1f : 0xff)); i += 1
                    for _ in 0..<count where i + 2 <= extradata.count {
                        let n = Int(extradata[i]) << 8 | Int(extradata[i + 1]); i += 2
                        guard i + n <= extradata.count else { break }
                        sets += [0, 0, 0, 1] + extradata[i..<(i + n)]; i += n
                    }
                }
            } else {
                sets = extradata
            }
            parameterSets = sets
        }

        /// An access unit delimiter after each picture: without it ffmpeg's H.264 parser holds a picture back until
        /// the next one starts (a frame interval of delay that is the pipe's, not the decoder's).
        static let delimiter: [UInt8] = [0, 0, 0, 1, 0x09, 0xf0]

        func convert(_ packet: [UInt8], keyframe: Bool) -> [UInt8] {
            if packet.starts(with: [0, 0, 0, 1]) || packet.starts(with: [0, 0, 1]) {
                return (keyframe ? parameterSets + packet : packet) + Self.delimiter
            }
            var out = keyframe ? parameterSets : []
            var i = 0
            while i + 4 <= packet.count {
                let n = Int(packet[i]) << 24 | Int(packet[i + 1]) << 16 | Int(packet[i + 2]) << 8 | Int(packet[i + 3]); i += 4
                guard n > 0, i + n <= packet.count else { break }
                out += [0, 0, 0, 1] + packet[i..<(i + n)]; i += n
            }
            return out + Self.delimiter
        }
    }

    static func waitUntil(_ t: Int64) {
        let now = MediaPublisher.monotonic()
        if t > now { usleep(useconds_t((t - now) / 1000)) }
    }

    /// CPU seconds a process has used (user + system), from /proc.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
