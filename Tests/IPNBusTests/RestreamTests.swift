import Foundation
import Glibc
import IPNTestSupport
import MediaJack
import XCTest

/// `mediajack restream` against real peers: ffmpeg receiving UDP MPEG-TS and SRT, ffprobe on an HLS
/// playlist, and nginx's RTMP module (started here) going away and coming back. Every stream is
/// decoded, and the barcode frame numbers show nothing was lost or reordered.
final class RestreamTests: MediaScriptTestCase {
    /// An ffmpeg receiver listening on `listen` (copying `seconds` of it into `file`), then a test camera
    /// of `frames` frames restreamed to `send` until it ends.
    func restreamToFFmpeg(listen: String, send: String, file: String, seconds: Int, frames: Int) async throws -> TestSupport.Outcome {
        try await script("""
            ffmpeg -v error -y -i '\(listen)' -t \(seconds) -c copy \(file) 2> receiver.log &
            receiver=$!
            listening u \(port(of: listen)) || exit 1
            mediajack publish test:video bus --encode h264 --gop 25 --frames \(frames) > pub.log 2>&1 &
            waitbus
            mediajack restream bus '\(send)' --until-end > restream.log 2>&1
            wait $receiver
            """)
    }

    /// The port of a receiver's URL.
    func port(of url: String) -> String { url.firstMatch(of: /:(\d+)/).map { String($0.1) } ?? "?" }

    func testUDPMPEGTSReachesAnFFmpegReceiver() async throws {
        let p = port
        let r = try await restreamToFFmpeg(listen: "udp://127.0.0.1:\(p)?timeout=15000000", send: "udp://127.0.0.1:\(p)",
                                           file: "udp.ts", seconds: 4, frames: 150)
        XCTAssertEqual(r.exitCode, 0, "\(r)\n\(file("receiver.log"))")
        XCTAssertTrue(file("restream.log").contains("restreamed"), file("restream.log"))
        assertConsecutive(try await frames(dir + "/udp.ts"), atLeast: 50, "UDP MPEG-TS")
    }

    func testMulticastTSReachesAReceiverOnTheSegment() async throws {
        try TestSupport.requireRoot("a network namespace")
        let p = port, ns = "nsm\(getpid() % 100000)"
        // The LAN segment: a namespace of our own whose loopback carries multicast; the bus lives there too.
        let r = try await script("""
            ip netns add \(ns) && trap 'ip netns del \(ns); cleanup' EXIT
            ip -n \(ns) link set lo up
            ip -n \(ns) route add 239.0.0.0/8 dev lo
            ip netns exec \(ns) sh -c '
              ipn create mbus --policy media --mtu 4194304 --queue 256 --persistent
              ffmpeg -v error -y -i "udp://239.255.7.7:\(p)?localaddr=127.0.0.1&timeout=15000000" -t 3 -c copy multicast.ts &
              receiver=$!
              mediajack publish test:video mbus --encode h264 --gop 25 --frames 125 > pub.log 2>&1 &
              i=0; until ss -Hlnu "sport = :\(p)" | grep -q .; do i=$((i+1)); [ $i -gt 600 ] && { echo "no receiver"; exit 1; }; sleep 0.05; done
              i=0; until mediajack stat mbus 2>/dev/null | grep -q stream; do i=$((i+1)); [ $i -gt 600 ] && { echo "no stream"; exit 1; }; sleep 0.05; done
              mediajack restream mbus "udp://239.255.7.7:\(p)?ttl=1&localaddr=127.0.0.1" --until-end > restream.log 2>&1
              wait $receiver
              ipn rm mbus'
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        assertConsecutive(try await frames(dir + "/multicast.ts"), atLeast: 40, "multicast MPEG-TS")
    }

    func testHLSIntoADirectoryPlaysFromThePlaylist() async throws {
        let r = try await script("""
            mediajack publish test:video bus --encode h264 --gop 25 --frames 125 > pub.log 2>&1 &
            waitbus
            mediajack restream bus hls/live.m3u8 --segment 1 --until-end > restream.log 2>&1
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        let playlist = try String(contentsOfFile: dir + "/hls/live.m3u8", encoding: .utf8)
        XCTAssertTrue(playlist.contains("#EXT-X-ENDLIST"), "the playlist was finished:\n\(playlist)")
        XCTAssertTrue(playlist.contains(".ts"), playlist)
        assertConsecutive(try await frames(dir + "/hls/live.m3u8"), atLeast: 60, "HLS")
    }

    func testSRTReachesAnFFmpegListener() async throws {
        let p = port
        let r = try await restreamToFFmpeg(listen: "srt://127.0.0.1:\(p)?mode=listener", send: "srt://127.0.0.1:\(p)",
                                           file: "srt.ts", seconds: 3, frames: 125)
        XCTAssertEqual(r.exitCode, 0, "\(r)\n\(file("receiver.log"))")
        assertConsecutive(try await frames(dir + "/srt.ts"), atLeast: 40, "SRT")
    }

    func testRTPReachesAnFFmpegReceiver() async throws {
        let p = port
        // MPEG-TS over RTP (payload type 33): ffmpeg's RTP demuxer takes it without an SDP file.
        let r = try await restreamToFFmpeg(listen: "rtp://127.0.0.1:\(p)?timeout=15000000", send: "rtp://127.0.0.1:\(p)",
                                           file: "rtp.ts", seconds: 3, frames: 125)
        XCTAssertEqual(r.exitCode, 0, "\(r)\n\(file("receiver.log"))")
        XCTAssertTrue(file("restream.log").contains("(rtp_mpegts)"), file("restream.log"))
        assertConsecutive(try await frames(dir + "/rtp.ts"), atLeast: 40, "RTP")
    }

    func testAnMJPEGCameraIsEncodedToH264ForAFormatThatCannotCarryIt() async throws {
        let r = try await script("""
            mediajack publish test:video bus --encode mjpeg --frames 100 > pub.log 2>&1 &
            waitbus
            mediajack restream bus out.flv --format flv --until-end > restream.log 2>&1
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(file("restream.log").contains("encoding here: mjpeg -> h264"), file("restream.log"))
        let codec = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "v", "-show_entries", "stream=codec_name",
                                                                         "-of", "csv=p=0", dir + "/out.flv"])
        XCTAssertEqual(codec.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines), "h264")
        assertConsecutive(try await frames(dir + "/out.flv"), atLeast: 60, "MJPEG encoded to H.264 in FLV", gop: 1)
    }

    func testEncodeReencodesH264AtTheAskedBitrate() async throws {
        let r = try await script("""
            mediajack publish test:video bus --encode h264 --gop 25 --bitrate 3000000 --preset ultrafast --frames 150 > pub.log 2>&1 &
            waitbus
            mediajack restream bus out.ts --format mpegts --encode h264 --bitrate 150000 --until-end > restream.log 2>&1
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        XCTAssertTrue(file("restream.log").contains("encoding here: h264 -> h264"), file("restream.log"))
        let sent = file("restream.log").split(separator: "\n").last { $0.hasPrefix("restreamed") } ?? ""
        let inBytes = Int(sent.split(separator: "(").dropFirst().first?.split(separator: " ").first ?? "") ?? 0
        let outBytes = (try? FileManager.default.attributesOfItem(atPath: dir + "/out.ts")[.size] as? Int) ?? 0
        XCTAssertGreaterThan(inBytes, 0, String(sent))
        XCTAssertLessThan(outBytes, inBytes * 3 / 4, "re-encoded smaller: \(outBytes) bytes out of \(inBytes) in")
        assertConsecutive(try await frames(dir + "/out.ts"), atLeast: 100, "H.264 re-encoded", gop: 1)
    }

    func testReencodingKeepsBFramesInOrderAtAFractionalRate() async throws {
        // A file with B-frames at 30000/1001 fps (the test picture re-encoded by ffmpeg): the decoder hands
        // pictures back reordered and late; each must keep its own time, and keyframes follow the real rate.
        let r = try await script("""
            mediajack publish test:video bus --encode h264 --gop 25 --frames 160 > pub1.log 2>&1 &
            waitbus
            mediajack record bus source.mkv > rec.log 2>&1
            ffmpeg -v error -y -r 30000/1001 -i source.mkv -c:v libx264 -preset ultrafast -bf 3 -g 30 -pix_fmt yuv420p bframes.mp4
            mediajack publish file:bframes.mp4 bus > pub2.log 2>&1 &
            waitbus
            mediajack restream bus out.ts --format mpegts --encode h264 --until-end > restream.log 2>&1
            """)
        XCTAssertEqual(r.exitCode, 0, "\(r)")
        let bframes = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "v", "-show_entries", "stream=has_b_frames",
                                                                           "-of", "csv=p=0", dir + "/bframes.mp4"])
        XCTAssertNotEqual(bframes.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines), "0", "the source has B-frames")
        let source = try await frames(dir + "/bframes.mp4"), out = try await frames(dir + "/out.ts")
        XCTAssertGreaterThan(out.count, source.count * 3 / 4, "most of the file went out")
        if let first = out.first { XCTAssertEqual(out, Array(first..<(first + UInt32(out.count))), "every picture in display order, none lost") }
        let keys = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
                                                                        "frame=pts", "-of", "csv=p=0", dir + "/out.ts"])
        XCTAssertGreaterThanOrEqual(keys.standardOutput.split(separator: "\n").count, 2, "a keyframe every 2 s at the real rate")
    }

    func testRTMPToNginxReconnectsWhenTheServerComesBack() async throws {
        let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
        try TestSupport.require(tool: "/usr/sbin/nginx", "scripts/setup installs nginx")
        try TestSupport.require(file: module, "scripts/setup installs libnginx-mod-rtmp")
        let p = port
        let conf = """
            load_module \(module);
            daemon off; master_process off; pid \(dir)/nginx.pid; error_log \(dir)/nginx.log;
            events { worker_connections 64; }
            rtmp { server { listen 127.0.0.1:\(p); application live { live on; record all; record_path \(dir)/rec; record_unique on; } } }
            """
        try FileManager.default.createDirectory(atPath: dir + "/rec", withIntermediateDirectories: true)
        try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let r = try await script("""
            nginx -c '\(dir)/nginx.conf' -p '\(dir)' &
            nginx=$!
            listening t \(p) || exit 1
            mediajack publish test:video bus --encode h264 --gop 25 --frames 300 > pub.log 2>&1 &
            publisher=$!
            waitbus
            mediajack restream bus 'rtmp://127.0.0.1:\(p)/live/cam' --until-end > restream.out 2> restream.err &
            restream=$!
            i=0; until [ "$(cat rec/*.flv 2>/dev/null | wc -c)" -gt 100000 ]; do i=$((i+1)); [ $i -gt 600 ] && { echo "nginx recorded nothing"; exit 1; }; sleep 0.05; done
            kill $nginx; wait $nginx                 # the server goes away (once it has recorded the stream)...
            waitfor restream.err 'retrying in' || exit 1
            nginx -c '\(dir)/nginx.conf' -p '\(dir)' &  # ...and comes back (once the restreamer noticed)
            nginx=$!
            wait $restream; echo "restream $?"
            wait $publisher
            kill $nginx; wait $nginx
            """, timeout: 120)
        XCTAssertTrue(r.standardOutput.contains("restream 0"), "\(r)")
        let err = (try? String(contentsOfFile: dir + "/restream.err", encoding: .utf8)) ?? ""
        let out = (try? String(contentsOfFile: dir + "/restream.out", encoding: .utf8)) ?? ""
        XCTAssertTrue(err.contains("retrying in"), err)
        XCTAssertTrue(out.contains("2 connection(s)"), out)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/rec").filter { $0.hasSuffix(".flv") }.sorted()
        XCTAssertEqual(files.count, 2, "one recording per connection: \(files)")
        if let last = files.last { assertConsecutive(try await frames(dir + "/rec/" + last), atLeast: 50, "RTMP after the reconnect") }
    }
}
