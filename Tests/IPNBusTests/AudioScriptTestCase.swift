import Foundation
import IPNTestSupport
import XCTest

/// What the audio tests share: a test directory that is HOME, with an .asoundrc pointing ALSA at the plugin
/// just built, and scenarios run as shell scripts with the products on PATH.
class AudioScriptTestCase: DirectoryTestCase {
    var bus: String { dir + "/audio" }

    override func setUpWithError() throws {
        try TestSupport.require(tools: ["/usr/bin/aplay", "/usr/bin/arecord", "/usr/bin/ffmpeg", "/usr/bin/sox"])
        try super.setUpWithError()
        // The sample configuration, pointed at the plugin just built.
        let sample = try String(contentsOfFile: Self.repository + "/samples/asoundrc", encoding: .utf8)
        let rc = "pcm_type.ipn { lib \"\(TestSupport.productsDirectory)/libasound_module_pcm_ipn.so\" }\n" + sample
        try rc.write(toFile: dir + "/.asoundrc", atomically: true, encoding: .utf8)
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs a scenario once: a shell script in the test directory with HOME there (so ALSA reads our
    /// .asoundrc) and the products on PATH. The scenario is judged on this one run: where the machine
    /// stalls the server's clock (a busy or emulated CPU), the tests judge the accounting of what was lost
    /// (`assertAccounted`), never ask for a quieter run.
    ///
    /// The script's helpers wait for what the products report, each for at most 30 s, and say on standard
    /// output what did not happen (the tests want that output empty):
    /// `waitbus` (the server serves $BUS), `grows FILE BYTES` (a recorder is capturing into FILE),
    /// `shows TEXT [BUS]` (`jackd-ipn stat` shows TEXT, e.g. '2 client(s)' or '1 of them playing'; its reports
    /// come once a second), `settle` (the server reports no player any more: that report, final for every
    /// player's late periods, is kept in final-stat.txt), `stoprec PID` (Ctrl-C to a recorder: recordings
    /// end once the server has mixed the last player's last period, not after a fixed time).
    func script(_ body: String, timeout: Int = 90) async throws -> TestSupport.Outcome {
        let text = """
            set -u
            cd '\(dir)'
            export HOME='\(dir)' PATH='\(TestSupport.productsDirectory):/usr/bin:/bin' BUS='\(bus)'
            waitbus() { i=0; until jackd-ipn stat "$BUS" 2>/dev/null | grep -q 'server node'; do i=$((i+1)); [ $i -gt 1200 ] && { echo "no server on $BUS"; return 1; }; sleep 0.025; done; }
            grows() { i=0; until [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -gt "$2" ]; do i=$((i+1)); [ $i -gt 1200 ] && { echo "$1 never grew past $2 bytes"; return 1; }; sleep 0.025; done; }
            shows() { i=0; until jackd-ipn stat "${2:-$BUS}" 2>/dev/null | grep -q "$1"; do i=$((i+1)); [ $i -gt 1200 ] && { echo "jackd-ipn stat never showed '$1'"; return 1; }; sleep 0.025; done; }
            stoprec() { kill -INT $1; wait $1 2>/dev/null; true; }   # a recorder ends its file on SIGINT (Ctrl-C)
            settle() { i=0; until jackd-ipn stat "${1:-$BUS}" > final-stat.txt 2>/dev/null && grep -q ' 0 of them playing' final-stat.txt; do i=$((i+1)); [ $i -gt 1200 ] && { echo "the server never reported its players gone"; return 1; }; sleep 0.025; done; }
            \(body)
            """
        try text.write(toFile: dir + "/scenario.sh", atomically: true, encoding: .utf8)
        return try await TestSupport.runTool("/usr/bin/timeout", ["\(timeout)", "/bin/bash", dir + "/scenario.sh"])
    }

    /// Makes a wav with ffmpeg (white noise of amplitude `level`, or silence).
    func noise(_ name: String, seconds: Double, level: Double, seed: Int) async throws {
        let source = level > 0 ? "anoisesrc=d=\(seconds):c=white:r=48000:a=\(level):seed=\(seed)" : "anullsrc=r=48000:cl=stereo:d=\(seconds)"
        let r = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", source, "-ac", "2", "-c:a", "pcm_s16le",
                                                                 "-t", "\(seconds)", dir + "/" + name])
        XCTAssertEqual(r.exitCode, 0, "\(r)")
    }

    /// Interleaved stereo s16 of any audio file, decoded by ffmpeg.
    func samples(_ name: String) async throws -> [Int16] {
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", dir + "/" + name, "-f", "s16le", "-ac", "2", "-ar", "48000", "-"])
        return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }

    func file(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }

    func startServer(_ extra: String = "") -> String {
        "jackd-ipn --bus \"$BUS\" --rate 48000 --period 256 --driver dummy \(extra) > server.log 2>&1 &\nserver=$!\nwaitbus || echo 'no server'"
    }
}
