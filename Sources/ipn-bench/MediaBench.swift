import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// Media part of the benchmark: raw 1080p frames through the `media` policy, and late-join time.
enum MediaBench {
    static func run(quick: Bool) throws {
        PolicyRegistry.register(MediaPolicy.self)
        print("")
        print("raw 1080p frames through a media bus (lossless: the publisher runs at the slowest consumer's pace; it writes every byte of every frame)")
        print("   N  format        frame B   frames/s/consumer  publisher CPU/frame   vs memcpy of a frame")
        let frames = quick ? 60 : 600
        for (name, size) in [("YUYV", 1920 * 1080 * 2), ("I420", 1920 * 1080 * 3 / 2)] {
            let copy = memcpyMicroseconds(size)
            for n in [1, 2, 4, 8] {
                let r = try rawFrames(consumers: n, frameBytes: size, frames: frames)
                print(String(format: "  %2d  %@ %12d %19.0f %16.1f µs %17.2fx", n, name.padding(toLength: 6, withPad: " ", startingAt: 0),
                             size, r.perConsumer, r.publisherCPU / 1000, r.publisherCPU / 1000 / copy))
            }
        }
        let replay = try lateJoin(nextKeyframe: false)
        let next = try lateJoin(nextKeyframe: true)
        print(String(format: "late join, 25 fps with a 2 s GOP: first decodable frame after %.1f ms with the replayed GOP, %.1f ms waiting for the next keyframe",
                     replay, next))
    }

    static func memcpyMicroseconds(_ size: Int) -> Double {
        let a = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64), b = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { a.deallocate(); b.deallocate() }
        memset(a, 1, size); memset(b, 2, size)
        let t = ipn_monotonic_ns()
        for _ in 0..<50 { memcpy(b, a, size) }
        return Double(ipn_monotonic_ns() - t) / 50 / 1000
    }

    static func withMediaBus<T>(queue: Int, lossless: Bool, _ body: (String) throws -> T) throws -> T {
        let dir = "/tmp/ipn-bench-media-\(getpid())"
        mkdir(dir, 0o755)
        let path = dir + "/media"
        let holder = IPNSocket(policy: MediaPolicy.name)
        holder.options.mtu = 8 << 20
        holder.options.queueLength = queue
        holder.options.lossless = lossless
        holder.options.poolBytes = 64 << 20
        try holder.bind(path)
        defer { try? Bus.remove(path); holder.close(); rmdir(dir) }
        return try body(path)
    }

    struct Raw { var perConsumer: Double; var publisherCPU: Double }

    static func rawFrames(consumers n: Int, frameBytes: Int, frames: Int) throws -> Raw {
        try withMediaBus(queue: 16, lossless: true) { path in
            let publisher = try MediaPublisher(bus: path, description: "bench publisher")
            let stream = try publisher.addStream(StreamDescription(kind: .video, codec: "rawvideo", width: 1920, height: 1080,
                                                                   pixelFormat: "yuyv422", frameRate: (30, 1), allKeyframes: true))
            let consumers = try (0..<n).map { _ in try MediaConsumer(bus: path, description: "bench consumer") }
            let done = DispatchGroup()
            let counts = Box([Int](repeating: 0, count: n))
            let ends = Box([UInt64](repeating: 0, count: n))
            for (i, c) in consumers.enumerated() {
                let socket = c.socket
                done.enter()
                Thread.detachNewThread {
                    var got = 0
                    while true {
                        // Zero-copy: look at the header in place, never copy the picture.
                        let last = (try? socket.withNextMessage(timeout: 2) { v -> Bool in
                            guard case .frame(let h, _)? = try? MediaMessage.decode(v.bytes) else { return false }
                            got += 1
                            return h.flags.contains(.endOfStream)
                        }) ?? nil
                        if last == nil || last == true { break }
                    }
                    let now = ipn_monotonic_ns()
                    counts.withLock { $0[i] = got }
                    ends.withLock { $0[i] = now }
                    done.leave()
                }
            }
            Thread.sleep(forTimeInterval: 0.2)  // descriptions delivered, consumers live
            let cpu0 = ipn_thread_cpu_ns()
            let start = ipn_monotonic_ns()
            for i in 0..<frames {
                try publisher.publish(stream: stream, flags: i == frames - 1 ? [.keyframe, .endOfStream] : .keyframe,
                                      pts: Int64(ipn_monotonic_ns()), duration: 33_333_333, payloadLength: frameBytes) { b in
                    memset(b.baseAddress!, Int32(i & 0xff), b.count)
                }
            }
            let cpu = Double(ipn_thread_cpu_ns() - cpu0) / Double(frames)
            done.wait()
            let seconds = Double(ends.value.max()! - start) / 1e9
            return Raw(perConsumer: Double(counts.value.reduce(0, +)) / Double(n) / seconds, publisherCPU: cpu)
        }
    }

    /// Milliseconds from a consumer's connect to its first (decodable) frame.
    static func lateJoin(nextKeyframe: Bool) throws -> Double {
        try withMediaBus(queue: 256, lossless: false) { path in
            let publisher = try MediaPublisher(bus: path, description: "bench camera")
            let stream = try publisher.addStream(StreamDescription(kind: .video, codec: "synthetic", width: 1920, height: 1080,
                                                                   frameRate: (25, 1), allKeyframes: false))
            let stop = Box(false)
            let result = Box(0.0)
            let publishing = DispatchSemaphore(value: 0)
            // The publisher is the publishing thread's from here on.
            Thread.detachNewThread(owning: publisher) { p in
                var n = 0
                let start = ipn_monotonic_ns()
                while !stop.value {
                    let due = start + UInt64(n) * 40_000_000
                    while ipn_monotonic_ns() < due { usleep(1000); try? p.serviceRequests() }
                    try? p.publish(stream: stream, flags: n % 50 == 0 ? .keyframe : [], pts: Int64(ipn_monotonic_ns()), duration: 40_000_000,
                                   payloadLength: n % 50 == 0 ? 60_000 : 8_000) { $0.initializeMemory(as: UInt8.self, repeating: 7) }
                    n += 1
                }
                publishing.signal()
            }
            Thread.sleep(forTimeInterval: 2.9)  // mid-GOP
            let t = ipn_monotonic_ns()
            let consumer = try MediaConsumer(bus: path, joinAtNextKeyframe: nextKeyframe)
            while let e = try consumer.next(timeout: 5) {
                if case .frame(let h, _, _) = e, h.flags.contains(.keyframe) {
                    result.value = Double(ipn_monotonic_ns() - t) / 1e6
                    break
                }
            }
            stop.value = true
            publishing.wait()
            return result.value
        }
    }
}
