import Foundation

/// When a recording file goes to disk, and how much of it is there. A file recorder flushes at the
/// start of every GOP and at least once a second, of media time or of the machine's: each flush ends
/// the Matroska cluster or MP4 fragment in progress and hands libavformat's buffer to the kernel, so
/// a recorder killed at any moment leaves a file that plays up to about a second before it died.
struct FlushSchedule {
    /// What the file holds at a flush: its first `bytes` are on disk and end on a whole cluster or
    /// fragment; they play `seconds` of media in `frames` frames.
    struct Point {
        var bytes: Int64 = 0
        var frames = 0
        var seconds = 0.0
    }

    /// At most this long (nanoseconds, media or wall time) between flushes.
    static let interval: Int64 = 1_000_000_000

    /// The last flush (nothing flushed yet: an empty file).
    private(set) var last = Point()
    /// The recorder's decode end (bus ns) and CLOCK_MONOTONIC (ns) at the last flush.
    private var media: Int64?
    private var wall: UInt64 = 0

    /// Whether the frames written since the last flush are due for the disk: the file's first frame
    /// at once (an FFmpeg reader refuses a Matroska file without a cluster), then a second's worth,
    /// or what waited a second of wall time (a stream that slowed down or stalled).
    func isDue(frames: Int, decodeEnd: Int64, now: UInt64) -> Bool {
        guard frames > last.frames else { return false }
        guard last.frames > 0, let media else { return true }
        return decodeEnd &- media >= Self.interval || now &- wall >= UInt64(Self.interval)
    }

    /// Whether anything was written since the last flush.
    func hasUnflushed(frames: Int) -> Bool { frames > last.frames }

    mutating func flushed(_ point: Point, decodeEnd: Int64, now: UInt64) {
        last = point
        media = decodeEnd
        wall = now
    }

    /// Cuts the file at `path` back to the last flush, after a write failed: what follows it is a
    /// partial cluster or fragment, which readers report as damage. Only a regular file can be cut
    /// (not a FIFO or a device); returns whether it was.
    @discardableResult
    func cutBack(_ path: String) -> Bool {
        let file = path.hasPrefix("file:") ? String(path.dropFirst(5)) : path
        guard let type = try? FileManager.default.attributesOfItem(atPath: file)[.type] as? FileAttributeType, type == .typeRegular,
              let handle = FileHandle(forWritingAtPath: file) else { return false }
        defer { try? handle.close() }
        return (try? handle.truncate(atOffset: UInt64(max(0, last.bytes)))) != nil
    }
}
