import Foundation
import Glibc
import IPNTestSupport
import MediaJack
import XCTest

/// Tests that drive the real commands from a shell script, as a user would, on a media bus of their
/// own (`bus` in the test's directory), and check what came out by reading the test picture's
/// barcode (`TestPattern`) from decoded frames and screenshots.
class MediaScriptTestCase: DirectoryTestCase {
    var port: Int { 20_000 + Int(getpid() % 10_000) + Int.random(in: 0..<9_000) }

    override func setUpWithError() throws {
        try TestSupport.require(tools: ["/usr/bin/ffmpeg", "/usr/bin/ffprobe", "/usr/bin/ss"])
        try super.setUpWithError()
    }

    /// Runs `body` with the products on PATH, in the test's directory, after creating the bus; every
    /// background job is stopped and the bus removed at the end.
    func script(_ body: String, timeout: Int = 90) async throws -> TestSupport.Outcome {
        let text = """
            set -u
            cd '\(dir)'
            export PATH='\(TestSupport.productsDirectory):/usr/sbin:/usr/bin:/bin'
            ipn create bus --policy media --mtu 4194304 --queue 256 --persistent
            cleanup() { for p in $(jobs -p); do kill $p 2>/dev/null; done; wait 2>/dev/null; ipn rm bus 2>/dev/null; }
            trap cleanup EXIT
            # Waits for what the products report (30 s unless said), saying what did not happen.
            waitbus() { i=0; until mediajack stat ${1:-bus} 2>/dev/null | grep -q 'stream'; do i=$((i+1)); [ $i -gt 600 ] && { echo "no stream on ${1:-bus}"; return 1; }; sleep 0.05; done; }
            # waitfor FILE TEXT [SECONDS]: until FILE contains TEXT.
            waitfor() { i=0; until grep -q "$2" "$1" 2>/dev/null; do i=$((i+1)); [ $i -gt $((${3:-30} * 20)) ] && { echo "timed out waiting for '$2' in $1"; return 1; }; sleep 0.05; done; }
            # listening u|t PORT: until a UDP (u) or TCP (t) socket listens on PORT (a receiver is ready).
            listening() { i=0; until ss -Hln$1 "sport = :$2" 2>/dev/null | grep -q .; do i=$((i+1)); [ $i -gt 600 ] && { echo "nothing listens on port $2"; return 1; }; sleep 0.05; done; }
            # grows FILE: until FILE has content.
            grows() { i=0; until [ -s "$1" ]; do i=$((i+1)); [ $i -gt 600 ] && { echo "$1 stays empty"; return 1; }; sleep 0.05; done; }
            \(body)
            """
        try text.write(toFile: dir + "/script.sh", atomically: true, encoding: .utf8)
        return try await TestSupport.runTool("/usr/bin/timeout", ["\(timeout)", "/bin/bash", dir + "/script.sh"])
    }

    func file(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }

    /// Frame numbers read from the barcodes of every decoded picture; the decode must be clean.
    func frames(_ input: String, format: [String] = [], line: UInt = #line) async throws -> [UInt32] {
        let clean = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error"] + format + ["-i", input, "-enc_time_base", "-1", "-f", "null", "-"])
        XCTAssertEqual(clean.standardError, "", "decoding \(input) reported errors", line: line)
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error"] + format + ["-i", input, "-map", "0:v", "-fps_mode", "passthrough",
                                                                         "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        let size = 640 * 360
        return stride(from: 0, to: bytes.count - size + 1, by: size).compactMap { o in
            bytes[o..<(o + size)].withUnsafeBytes { TestPattern.read(luma: $0, stride: 640, width: 640, height: 360)?.frame }
        }
    }

    /// The test picture's frame number in a 640x360 screenshot (PNG or raw gray), nil when none is readable.
    func stamp(inPicture name: String) async throws -> UInt32? {
        let path = dir + "/" + name
        let bytes = name.hasSuffix(".gray") ? [UInt8](FileManager.default.contents(atPath: path) ?? Data())
            : try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        guard bytes.count == 640 * 360 else { XCTFail("\(name): \(bytes.count) bytes, not a 640x360 picture"); return nil }
        return bytes.withUnsafeBytes { TestPattern.read(luma: $0, stride: 640, width: 640, height: 360)?.frame }
    }

    func assertConsecutive(_ f: [UInt32], atLeast n: Int, _ what: String, gop: UInt32 = 25, line: UInt = #line) {
        XCTAssertGreaterThanOrEqual(f.count, n, "\(what): \(f.count) frames", line: line)
        guard let first = f.first else { return }
        XCTAssertEqual(f, Array(first..<(first + UInt32(f.count))), "\(what): frames in order, none lost", line: line)
        XCTAssertEqual(first % gop, 0, "\(what) starts at a keyframe", line: line)
    }
}
