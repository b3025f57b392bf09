import Foundation
import Glibc
import IPNTestSupport
import MediaJack
import MediaWire
import XCTest
@testable import IPNBus

/// What a recording is worth when its recorder does not get to finish it: killed with SIGKILL, or
/// stopped by a full disk. The files are judged with real ffprobe/ffmpeg and the test picture's barcodes.
final class RecorderDurabilityTests: DirectoryTestCase {
    var bus = ""
    var holder: IPNSocket?

    override func setUpWithError() throws {
        try TestSupport.require(tools: ["/usr/bin/ffprobe", "/usr/bin/ffmpeg"])
        PolicyRegistry.register(MediaPolicy.self)
        try super.setUpWithError()
        bus = dir + "/cam"
        let h = IPNSocket(policy: "media")
        h.options.mtu = 4 << 20
        h.options.queueLength = 256
        try h.bind(bus)
        holder = h
    }

    override func tearDown() {
        holder?.close()
        super.tearDown()
    }

    /// Messages the node of process `pid` has taken from its queue (delivered to it, less those still
    /// waiting); nil while it is not on the bus.
    static func messagesTaken(_ bus: String, by pid: Int32) -> Int? {
        guard let node = (try? Bus.status(bus))?.nodes.first(where: { $0.pid == pid }) else { return nil }
        return Int(node.deliveredMessages) - node.queued
    }

    /// Frame numbers read from the barcodes of the pictures ffmpeg decodes from `file` (a file cut short
    /// may end in damage ffmpeg reports; what it decodes counts).
    static func barcodes(_ file: String) async throws -> [UInt32] {
        let bytes = try await TestSupport.toolBytes("/usr/bin/ffmpeg", ["-v", "error", "-i", file, "-map", "0:v", "-fps_mode", "passthrough",
                                                                     "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        let size = 640 * 360
        return stride(from: 0, to: bytes.count - size + 1, by: size).compactMap { o in
            bytes[o..<(o + size)].withUnsafeBytes { TestPattern.read(luma: $0, stride: 640, width: 640, height: 360)?.frame }
        }
    }

    /// ffprobe's word for the container of `file`, and the video frames it counts in it.
    static func probe(_ file: String) async throws -> (format: String, frames: Int?, duration: Double?, outcome: TestSupport.Outcome) {
        let r = try await TestSupport.runTool("/usr/bin/ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v",
                                                                   "-show_entries", "format=format_name,duration:stream=nb_read_frames",
                                                                   "-of", "default=noprint_wrappers=1", file])
        func value(_ key: String) -> String? {
            r.standardOutput.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        return (value("format_name") ?? "", value("nb_read_frames").flatMap { Int($0) }, value("duration").flatMap { Double($0) }, r)
    }

    func assertConsecutive(_ n: [UInt32], _ what: String, line: UInt = #line) {
        guard let first = n.first else { return XCTFail("\(what): no frames", line: line) }
        XCTAssertEqual(n, Array(first..<(first + UInt32(n.count))), "\(what): consecutive frame numbers, none lost", line: line)
    }

    /// Runs `body` with a tmpfs of `size` mounted at `point` (made here), unmounted afterwards whatever happened.
    static func onSmallDisk<T>(_ point: String, size: String, _ body: (String) async throws -> T) async throws -> T {
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        let mount = try await TestSupport.runTool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", point])
        try TestSupport.require(mount.exitCode == 0, "cannot mount a tmpfs here: \(mount.standardError.trimmingCharacters(in: .whitespacesAndNewlines))")
        let result: Result<T, any Error>
        do { result = .success(try await body(point)) } catch { result = .failure(error) }
        let unmount = try await TestSupport.runTool("/usr/bin/umount", [point])
        XCTAssertEqual(unmount.exitCode, 0, "unmounting \(point): \(unmount)")
        return try result.get()
    }

    func testAKilledRecordersFilePlaysUpToAboutASecondBeforeTheKill() async throws {
        let bus = self.bus, dir = self.dir
        for ext in ["mkv", "mp4"] {
            let out = dir + "/killed.\(ext)"
            // The recorder is there before the publisher: its file starts at the stream's first frame.
            let (taken, record) = try await TestSupport.with("mediajack", ["record", bus, out]) { recorder in
                try TestSupport.waitUntil("the recorder (pid \(recorder)) is on the bus") { Self.messagesTaken(bus, by: recorder) != nil }
                // A GOP of 10 s: only the recorder's own flushes put the frames on disk in time (without them a
                // Matroska cluster stays in memory for 5 s, and an MP4 has no index until it is finished).
                let (taken, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "250"]) { _ in
                    var taken = 0
                    // The stream description and 75 frames (3 s of the stream): a few flushes' worth.
                    try TestSupport.waitUntil("the recorder has taken 76 messages", lastSeen: { "\(taken) taken" }) {
                        taken = Self.messagesTaken(bus, by: recorder) ?? 0
                        return taken >= 76
                    }
                    kill(recorder, SIGKILL)
                    return (taken, true)
                }
                return (taken, false)  // killed above
            }
            XCTAssertEqual(record.signal, SIGKILL, "\(ext): \(record)")
            let probe = try await Self.probe(out)
            XCTAssertTrue(probe.format.contains(ext == "mkv" ? "matroska" : "mp4"), "\(ext): a file ffprobe recognises: \(probe.outcome)")
            let numbers = try await Self.barcodes(out)
            assertConsecutive(numbers, "the killed recorder's .\(ext)")
            XCTAssertEqual(numbers.first, 0, "\(ext): it starts at the stream's first frame")
            // It took the description and `taken - 1` frames, all but the last of them written before it
            // died; of those, at most a second's worth (25 frames) can have been waiting for their flush.
            XCTAssertGreaterThanOrEqual(numbers.count, taken - 2 - 25,
                                        "\(ext): the file holds the frames up to about a second before the kill (\(taken) messages taken)")
        }
    }

    func testAFullDiskStopsTheRecordingWithItsCauseAndTheFilePlaysUpToItsLastFlush() async throws {
        try TestSupport.requireRoot("mounting a small tmpfs")
        try TestSupport.require(tools: ["/usr/bin/mount", "/usr/bin/umount"])
        let bus = self.bus, dir = self.dir
        let (records, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            var records: [String: TestSupport.Outcome] = [:]
            for ext in ["mkv", "mp4"] {
                // 1 MiB: about 5 s of the test stream. The recorder fills it and must stop on its own.
                let record = try await Self.onSmallDisk(dir + "/disk-\(ext)", size: "1m") { disk -> TestSupport.Outcome in
                    let record = try await TestSupport.run("mediajack", ["record", bus, disk + "/out.\(ext)"])
                    // Judged once the disk is gone: a copy of what it held.
                    try? FileManager.default.copyItem(atPath: disk + "/out.\(ext)", toPath: dir + "/full.\(ext)")
                    return record
                }
                records[ext] = record
            }
            return (records, true)
        }
        for ext in ["mkv", "mp4"] {
            let record = try XCTUnwrap(records[ext])
            let file = dir + "/full.\(ext)"
            XCTAssertEqual(record.exitCode, 1, "\(ext): \(record)")
            XCTAssertTrue(record.standardError.contains("writing \(dir)/disk-\(ext)/out.\(ext) failed: No space left on device"), "\(ext): \(record)")
            XCTAssertFalse(record.standardOutput.contains("recorded"), "\(ext): no success reported: \(record)")
            // The recorder says what the file still plays: what it had flushed before the disk filled.
            let kept = record.standardError.firstMatch(of: /plays up to ([0-9.]+) s \((\d+) frames\)/).flatMap { Int($0.2) }
            let frames = try XCTUnwrap(kept, "\(ext): the error says what the file keeps: \(record)")
            XCTAssertGreaterThanOrEqual(frames, 25, "\(ext): a 1 MiB disk holds more than a second of the stream")
            // The file ends on a whole cluster or fragment: it decodes without a word from ffmpeg, every frame
            // the recorder counted, in order from a keyframe.
            let decode = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", file, "-enc_time_base", "-1", "-f", "null", "-"])
            XCTAssertEqual(decode.exitCode, 0, "\(ext): \(decode)")
            XCTAssertEqual(decode.standardError, "", "\(ext): decoding what the full disk kept reported damage")
            let probe = try await Self.probe(file)
            XCTAssertEqual(probe.frames, frames, "\(ext): the frames the recorder says were kept: \(probe.outcome)")
            let numbers = try await Self.barcodes(file)
            assertConsecutive(numbers, "the .\(ext) of a full disk")
            XCTAssertEqual(numbers.first.map { $0 % 25 }, 0, "\(ext): it starts at a keyframe")
        }
    }

    func testARecordingThatCannotReachTheDiskFailsWithItsCause() async throws {
        try TestSupport.require(file: "/dev/full", "a Linux /dev")
        let bus = self.bus, dir = self.dir
        // Every write to /dev/full fails with ENOSPC. Half a second of a small, thin stream fits in
        // libavformat's buffer: the first write comes with the trailer, the last step to a finished file.
        for ext in ["mkv", "mp4"] {
            let out = dir + "/full.\(ext)"
            XCTAssertEqual(symlink("/dev/full", out), 0)
        }
        let (records, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25",
                                                                    "--size", "192x64", "--bitrate", "100000"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            async let mkv = TestSupport.run("mediajack", ["record", bus, dir + "/full.mkv", "--duration", "0.5"])
            async let mp4 = TestSupport.run("mediajack", ["record", bus, dir + "/full.mp4", "--duration", "0.5"])
            let (a, b) = try await (mkv, mp4)
            return (["mkv": a, "mp4": b], true)
        }
        for (ext, record) in records {
            XCTAssertEqual(record.exitCode, 1, "\(ext): \(record)")
            XCTAssertTrue(record.standardError.contains("writing \(dir)/full.\(ext) failed: No space left on device"), "\(ext): \(record)")
            XCTAssertFalse(record.standardOutput.contains("recorded"), "\(ext): no success reported: \(record)")
        }
    }

    func testAFinishedMP4IsFragmentedAndKnowsItsDuration() async throws {
        let bus = self.bus, out = dir + "/done.mp4"
        let (record, _) = try await TestSupport.with("mediajack", ["publish", "test:video", bus, "--encode", "h264", "--gop", "25"]) { _ in
            try TestSupport.waitForPolicy(bus, "streams", "1")
            return (try await TestSupport.run("mediajack", ["record", bus, out, "--duration", "2"]), true)
        }
        XCTAssertEqual(record.exitCode, 0, "\(record)")
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: out))
        XCTAssertNotNil(bytes.range(of: Data("moof".utf8)), "written in fragments (moof boxes), so a file cut short plays")
        let decode = try await TestSupport.runTool("/usr/bin/ffmpeg", ["-v", "error", "-i", out, "-enc_time_base", "-1", "-f", "null", "-"])
        XCTAssertEqual(decode.standardError, "", "decoding the finished file reported errors")
        let probe = try await Self.probe(out)
        XCTAssertTrue(probe.format.contains("mp4"), "\(probe.outcome)")
        // 2 s of the stream's time (--duration counts its timestamps), and ffprobe knows it from the file.
        let duration = try XCTUnwrap(probe.duration, "ffprobe gives the finished file a duration: \(probe.outcome)")
        XCTAssertEqual(duration, 2, accuracy: 0.1, "\(probe.outcome)")
        XCTAssertTrue((49...51).contains(probe.frames ?? 0), "2 s at 25 frames a second: \(probe.outcome)")
        assertConsecutive(try await Self.barcodes(out), "the finished MP4")
    }
}
