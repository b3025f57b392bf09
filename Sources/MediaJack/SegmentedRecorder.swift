import Foundation
import MediaWire

/// A recording that may span several files: a new segment every `segmentSeconds` (cut at a video
/// keyframe, so each file starts decodable), and, when a publisher comes back (a new stream epoch),
/// either the same file continued (same parameters) or a new segment (changed parameters).
public final class SegmentedRecorder {
    public let output: String
    public let segmentSeconds: Double?
    public private(set) var files: [String] = []
    private var current: Recorder?
    /// Live bus streams, by id, with the stream they are written as (an earlier epoch's, when equal).
    private var live: [UInt32: StreamDescription] = [:]
    private var writtenAs: [UInt32: UInt32] = [:]
    /// Output streams of the current file whose bus stream ended, by description, for a comeback.
    private var ended: [(id: UInt32, description: StreamDescription)] = []
    private var completedFrames = 0, completedBytes = 0, completedInvalid = 0
    private var completedDuration = 0.0
    public private(set) var rejectedStreams: [String] = []

    public let keepRawVideo: Bool

    public init(output: String, segmentSeconds: Double?, keepRawVideo: Bool = false) throws(MediaError) {
        self.output = output
        self.segmentSeconds = segmentSeconds
        self.keepRawVideo = keepRawVideo
        try open()
    }

    private func name(_ n: Int) -> String {
        guard segmentSeconds != nil || n > 0 else { return output }
        let ext = (output as NSString).pathExtension
        let base = (output as NSString).deletingPathExtension
        return String(format: "%@-%03d.%@", base, n, ext)
    }

    private func open() throws(MediaError) {
        let recorder = try Recorder(path: name(files.count), keepRawVideo: keepRawVideo)
        files.append(recorder.path)
        // Every live stream is written under its own id in a new file (continued ones included).
        writtenAs.removeAll()
        for (id, d) in live.sorted(by: { $0.key < $1.key }) where recorder.add(stream: id, d) { writtenAs[id] = id }
        ended.removeAll()
        current = recorder
    }

    private func rotate() throws(MediaError) {
        guard let c = current else { return }
        try c.finish()  // a segment that could not be finished ends the recording
        completedFrames += c.frames
        completedBytes += c.bytes
        completedInvalid += c.invalidTimestamps
        completedDuration += c.duration
        try open()
    }

    static func sameParameters(_ a: StreamDescription, _ b: StreamDescription) -> Bool {
        a.kind == b.kind && a.codec == b.codec && a.width == b.width && a.height == b.height && a.pixelFormat == b.pixelFormat
            && a.sampleRate == b.sampleRate && a.channels == b.channels && a.sampleFormat == b.sampleFormat && a.extradata == b.extradata
    }

    /// A stream appeared. Returns false when the container cannot hold it.
    @discardableResult
    public func add(stream id: UInt32, _ d: StreamDescription) throws(MediaError) -> Bool {
        live[id] = d
        guard let c = current else { return false }
        if let i = ended.firstIndex(where: { Self.sameParameters($0.description, d) }) {
            writtenAs[id] = ended.remove(at: i).id  // a publisher came back unchanged: continue the file
            return true
        }
        if c.hasStarted {
            try rotate()  // a new or changed stream cannot join a file already written: new segment
            return writtenAs[id] != nil
        }
        if c.add(stream: id, d) { writtenAs[id] = id; return true }
        rejectedStreams.append(contentsOf: c.rejectedStreams.filter { !rejectedStreams.contains($0) })
        return false
    }

    /// Returns whether the frame went into the file at once (see `Recorder.write`).
    @discardableResult
    public func write(stream id: UInt32, _ h: FrameHeader, payload: UnsafeRawBufferPointer, discontinuity: Bool = false) throws(MediaError) -> Bool {
        guard let target = writtenAs[id], var c = current else { return false }
        if let s = segmentSeconds, live[id]?.kind == .video, h.flags.contains(.keyframe), (c.position(of: h) ?? 0) >= s {
            try rotate()
            c = current!
        }
        return try c.write(stream: writtenAs[id] ?? target, h, payload: payload, discontinuity: discontinuity)
    }

    @discardableResult
    public func write(stream id: UInt32, _ h: FrameHeader, bytes: [UInt8], discontinuity: Bool = false) throws(MediaError) -> Bool {
        let r = bytes.withUnsafeBytes { b in Result { () throws(MediaError) in try write(stream: id, h, payload: b, discontinuity: discontinuity) } }
        return try r.get()
    }

    /// A stream ended; its output stream waits for a comeback with equal parameters.
    public func endOfStream(_ id: UInt32) {
        if let d = live.removeValue(forKey: id), let target = writtenAs.removeValue(forKey: id) { ended.append((target, d)) }
    }

    public var liveStreams: Int { live.count }
    public var frames: Int { completedFrames + (current?.frames ?? 0) }
    public var bytes: Int { completedBytes + (current?.bytes ?? 0) }
    /// Frames skipped because their times could not be written (see `Recorder.invalidTimestamps`).
    public var invalidTimestamps: Int { completedInvalid + (current?.invalidTimestamps ?? 0) }
    public var duration: Double { completedDuration + (current?.duration ?? 0) }

    /// Finishes the current file; throws what finishing it met (see `Recorder.finish()`).
    public func finish() throws(MediaError) {
        try current?.finish()
    }

    /// Flushes the current file if it is due (see `Recorder.flushIfDue()`): for a loop with nothing
    /// to write for a while.
    public func flushIfDue() throws(MediaError) {
        try current?.flushIfDue()
    }
}
