import CIPNSys
import Foundation
import Glibc
import Histogram
import MediaJack
import MediaWire

/// Viewers part of the benchmark. Per frame: what `mediajack serve` does for browsers (an fMP4
/// fragment; the JPEG fallback) against decoding the same frame. Fan-out: `mediajack serve`'s CPU with
/// N browser connections (curl) against the design it replaces, one remuxing bus consumer per viewer
/// (N `mediajack record` processes), both measured in the same run on the same stream. Delay: what a
/// headless Chromium on the page measures from each frame's capture to its display, against the frame
/// interval of the same stream.
enum ViewerBench {
    static func run(quick: Bool) throws {
        MediaLibrary.quiet()
        print("")
        print("per-frame cost of the browser feed (1280x720 H.264 test picture, GOP 50; one feed serves every viewer)")
        let costs = try perFrame(frames: quick ? 100 : 500)
        print(String(format: "  decode (the native viewer's work):     %7.1f µs/frame", costs.decode))
        print(String(format: "  fMP4 fragment (Media Source Extensions): %5.1f µs/frame  %6.3fx decode", costs.fragment, costs.fragment / costs.decode))
        print(String(format: "  JPEG fallback (decode + encode):       %7.1f µs/frame  %6.2fx decode  (on a thread of its own)", costs.jpeg, costs.jpeg / costs.decode))
        fanOut(seconds: quick ? 2 : 10, counts: quick ? [1, 8] : [1, 8, 32])
        browserDelay(frames: quick ? 100 : 600)
    }

    struct PerFrame { var decode: Double; var fragment: Double; var jpeg: Double }

    static func perFrame(frames: Int) throws -> PerFrame {
        let (w, h) = (1280, 720)
        let encoder = try VideoEncoder(codec: .h264, width: w, height: h, fps: 30, gop: 50, bitrate: 4_000_000)
        let d = StreamDescription(kind: .video, codec: "h264", width: w, height: h, pixelFormat: "yuv420p", frameRate: (30, 1),
                                  extradata: encoder.extradata, allKeyframes: false)
        var packets: [(FrameHeader, [UInt8])] = []
        for n in 0..<Int64(frames) {
            let stamp = TestPattern.Stamp(frame: UInt32(n), captureMilliseconds: 0)
            for p in try encoder.encode(index: n, draw: { TestPattern.drawI420(stamp, into: $0, width: w, height: h) }) {
                let t = p.index * 33_333_333
                packets.append((FrameHeader(stream: 1, flags: p.keyframe ? .keyframe : [], sequence: UInt64(p.index), pts: t, dts: t,
                                            captureTime: 0, duration: 33_333_333, epoch: 1), p.bytes))
            }
        }
        func time(_ body: () throws -> Void) rethrows -> Double {
            let start = ipn_monotonic_ns()
            try body()
            return Double(ipn_monotonic_ns() - start) / 1000 / Double(packets.count)
        }
        let decoder = try VideoDecoder(d)
        let decode = try time {
            for (fh, bytes) in packets {
                try bytes.withUnsafeBytes { try decoder.decode($0, keyframe: fh.flags.contains(.keyframe), discontinuity: false) { _ in } }
            }
        }
        let mp4 = try LiveFeed(stream: 1, d)
        let fragment = try time { for (fh, bytes) in packets { _ = try mp4.add(fh, payload: bytes) } }
        let maker = JPEGMaker(d)
        let jpeg = try time { for (fh, bytes) in packets { _ = try maker.make(fh, bytes, discontinuity: false) } }
        return PerFrame(decode: decode, fragment: fragment, jpeg: jpeg)
    }

    /// Runs `mediajack serve` and `mediajack record` (the release build beside this program) on a live
    /// 720p stream and reads their CPU time from /proc.
    static func fanOut(seconds: Int, counts: [Int]) {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        guard FileManager.default.isExecutableFile(atPath: bin + "/mediajack"), FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else {
            print("viewer fan-out: skipped (needs mediajack beside ipn-bench, and curl)")
            return
        }
        let output = onABus(bin: bin, """
            "$B/mediajack" publish test:video bus --encode h264 --gop 50 --size 1280x720 --fps 30 --bitrate 4000000 > /dev/null 2>&1 &
            sleep 1
            ticks() { t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
            for n in \(counts.map(String.init).joined(separator: " ")); do
              "$B/mediajack" serve bus --listen 127.0.0.1:0 > serve.out 2> /dev/null & server=$!
              until grep -q serving serve.out 2> /dev/null; do sleep 0.05; done
              url=$(sed -n 's/.* on \\(http:[^ ]*\\)$/\\1/p' serve.out)
              viewers=""
              for i in $(seq $n); do curl -s -N "${url}stream.mp4" -o /dev/null & viewers="$viewers $!"; done
              sleep 1; a=$(ticks $server); sleep \(seconds); b=$(ticks $server)
              echo "serve $n $((b - a))"
              kill $viewers $server 2> /dev/null; wait $viewers $server 2> /dev/null
              recorders=""
              for i in $(seq $n); do "$B/mediajack" record bus rec$i.ts > /dev/null 2>&1 & recorders="$recorders $!"; done
              sleep 1; a=$(ticks $recorders); sleep \(seconds); b=$(ticks $recorders)
              echo "record $n $((b - a))"
              kill $recorders 2> /dev/null; wait $recorders 2> /dev/null; rm -f rec*.ts
            done
            """)
        guard let text = output else { print("viewer fan-out: cannot run bash"); return }
        var cpu: [String: Double] = [:]  // "serve 8" → CPU %
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 3, let ticks = Double(f[2]) { cpu["\(f[0]) \(f[1])"] = ticks / hz / Double(seconds) * 100 }
        }
        print("")
        print("browser fan-out, 1280x720 30 fps H.264 at 4 Mbit/s: CPU of one `mediajack serve` with N viewers (curl) vs N remuxing consumers (`mediajack record`, one per viewer)")
        print("   N   serve CPU   per viewer   N recorders CPU   recorders / serve   (CPU from /proc at 1/\(Int(hz)) s over \(seconds) s)")
        for n in counts {
            guard let s = cpu["serve \(n)"], let r = cpu["record \(n)"] else { print("  \(n): failed: \(text)"); continue }
            print(String(format: "  %2d %9.1f %% %10.2f %% %15.1f %% %16.2fx", n, s, s / Double(n), r, r / max(s, 0.01)))
        }
    }

    /// Runs `mediajack serve` on a live 720p30 stream and the page in headless Chromium (the tests'
    /// DevTools tool), which measures each frame's delay from capture to display (the frame's media time
    /// mapped to its capture time, against requestVideoFrameCallback's display time).
    static func browserDelay(frames: Int) {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/tools/browser-screenshots.py").path
        guard FileManager.default.isExecutableFile(atPath: bin + "/mediajack"), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
              FileManager.default.fileExists(atPath: tool) else {
            print("browser delay: skipped (needs mediajack beside ipn-bench, chromium, and \(tool))")
            return
        }
        let fps = 30.0
        // The first frames a page shows come from the GOP it joined with, older than live: steady state after 3 s.
        let warmUp = 90
        let output = onABus(bin: bin, """
            "$B/mediajack" serve bus --listen 127.0.0.1:0 > serve.out 2> /dev/null &
            until grep -q serving serve.out 2> /dev/null; do sleep 0.05; done
            url=$(sed -n 's/.* on \\(http:[^ ]*\\)$/\\1/p' serve.out)
            "$B/mediajack" publish test:video bus --encode h264 --gop 60 --size 1280x720 --fps \(Int(fps)) --bitrate 4000000 > /dev/null 2>&1 &
            python3 '\(tool)' "$url" shots --count 0 --timeout \(frames / 10 + 60) --window-size 1400,900 \\
              --ready-js "window.mediajack && window.mediajack.framesShown>=\(frames + warmUp)" --state state.json > /dev/null 2>&1
            cat state.json
            """)
        guard let text = output, let state = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let delays = (state["delays"] as? [Double]).map({ Array($0.suffix(frames)) }), !delays.isEmpty else {
            print("browser delay: the page measured nothing")
            return
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 100_000_000, numberOfSignificantValueDigits: .three)
        for d in delays where d > 0 { histogram.record(UInt64(d * 1000)) }  // µs
        let p50 = Double(histogram.valueAtPercentile(50)) / 1000, p99 = Double(histogram.valueAtPercentile(99)) / 1000
        let interval = 1000 / fps
        print("")
        print("browser delay, 1280x720 30 fps H.264 through `mediajack serve` into headless Chromium (MSE): capture to display, \(delays.count) frames after the first \(warmUp)")
        print(String(format: "  median %6.1f ms  %5.2fx the frame interval (%.1f ms)", p50, p50 / interval, interval))
        print(String(format: "  p99    %6.1f ms  %5.2fx the frame interval", p99, p99 / interval))
        print("  stalls (playback ran out of data): \((state["stalls"] as? Int) ?? -1), frames the browser dropped: \((state["dropped"] as? Int) ?? -1)")
    }

    /// Runs `body` in bash in a scratch directory with a media bus `bus` made there ($B: where the
    /// mediajack binaries are); every process it started is stopped and the bus removed at the end.
    /// Returns its standard output; nil when bash cannot run.
    static func onABus(bin: String, _ body: String) -> String? {
        let work = "/tmp/ipn-bench-viewers-\(getpid())"
        try? FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        return bashOutput("""
            set -u
            cd '\(work)'
            B='\(bin)'
            cleanup() { for p in $(jobs -p); do kill $p 2>/dev/null; done; wait 2>/dev/null; "$B/ipn" rm bus 2>/dev/null; }
            trap cleanup EXIT
            "$B/ipn" create bus --policy media --mtu 4194304 --queue 256 --persistent > /dev/null
            \(body)
            """)
    }
}
