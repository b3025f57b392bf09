import CMedia
import Glibc

/// A V4L2 capture device opened through libv4l2: what it is, what it can do, and mmap streaming.
/// Every failure is a `DeviceError` naming the device and the cause.
public final class V4L2Device {
    public let path: String
    let fd: Int32
    public let card: String
    public let driver: String
    public let busInfo: String
    private var buffers: [(UnsafeMutableRawPointer, Int)] = []
    private var streaming = false

    public init(path: String) throws(DeviceError) {
        self.path = path
        let r = path.withCString { cm_v4l2_open($0) }
        if r < 0 { throw DeviceError.from(errno: -r, device: path, doing: "open") }
        fd = r
        var cap = v4l2_capability()
        let q = cm_v4l2_querycap(fd, &cap)
        if q < 0 {
            _ = cm_v4l2_close(fd)
            throw q == -ENOTTY ? .notACamera(path) : DeviceError.from(errno: -q, device: path, doing: "VIDIOC_QUERYCAP")
        }
        card = Self.string(&cap.card)
        driver = Self.string(&cap.driver)
        busInfo = Self.string(&cap.bus_info)
        let caps = cap.capabilities & 0x8000_0000 != 0 ? cap.device_caps : cap.capabilities  // V4L2_CAP_DEVICE_CAPS
        // V4L2_CAP_VIDEO_CAPTURE = 1, V4L2_CAP_STREAMING = 0x04000000
        guard caps & 1 != 0, caps & 0x0400_0000 != 0 else {
            _ = cm_v4l2_close(fd)
            throw .notACamera(path)
        }
    }

    deinit {
        stop()
        _ = cm_v4l2_close(fd)
    }

    /// The pixel formats with their sizes and frame rates, as the driver enumerates them (formats libv4l2
    /// emulates by converting are marked).
    public func formats() -> [CameraFormat] {
        var result: [CameraFormat] = []
        for index in 0..<UInt32(256) {
            var desc = v4l2_fmtdesc()
            desc.index = index
            desc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            guard cm_v4l2_enum_fmt(fd, &desc) == 0 else { break }
            let format = CameraFormat(fourcc: desc.pixelformat, description: Self.string(&desc.description),
                                      emulated: desc.flags & 0x0002 != 0,  // V4L2_FMT_FLAG_EMULATED
                                      sizes: sizes(of: desc.pixelformat))
            result.append(format)
        }
        return result
    }

    private func sizes(of fourcc: UInt32) -> [CameraSize] {
        var result: [CameraSize] = []
        for index in 0..<UInt32(512) {
            var s = v4l2_frmsizeenum()
            s.index = index
            s.pixel_format = fourcc
            guard cm_v4l2_enum_framesizes(fd, &s) == 0 else { break }
            if s.type == V4L2_FRMSIZE_TYPE_DISCRETE.rawValue {
                let w = Int(s.discrete.width), h = Int(s.discrete.height)
                result.append(CameraSize(width: w, height: h, rates: rates(of: fourcc, width: w, height: h)))
            } else {
                // Stepwise or continuous: offer the common sizes inside the range, and its largest.
                let sw = s.stepwise
                let common = [(320, 240), (640, 360), (640, 480), (800, 600), (1280, 720), (1920, 1080), (3840, 2160)]
                var picks = common.filter { $0.0 >= Int(sw.min_width) && $0.0 <= Int(sw.max_width) && $0.1 >= Int(sw.min_height) && $0.1 <= Int(sw.max_height) }
                picks.append((Int(sw.max_width), Int(sw.max_height)))
                for (w, h) in picks where !result.contains(where: { $0.width == w && $0.height == h }) {
                    result.append(CameraSize(width: w, height: h, rates: rates(of: fourcc, width: w, height: h)))
                }
                break
            }
        }
        return result
    }

    private func rates(of fourcc: UInt32, width: Int, height: Int) -> [FrameRate] {
        var result: [FrameRate] = []
        for index in 0..<UInt32(128) {
            var i = v4l2_frmivalenum()
            i.index = index
            i.pixel_format = fourcc
            i.width = UInt32(width)
            i.height = UInt32(height)
            guard cm_v4l2_enum_frameintervals(fd, &i) == 0 else { break }
            if i.type == V4L2_FRMIVAL_TYPE_DISCRETE.rawValue {
                // An interval of num/den seconds is den/num frames per second.
                if i.discrete.numerator > 0 { result.append(FrameRate(Int(i.discrete.denominator), Int(i.discrete.numerator))) }
            } else {
                let fastest = i.stepwise.min, slowest = i.stepwise.max
                for fps in [1, 5, 10, 15, 25, 30, 50, 60, 120] {
                    let r = FrameRate(fps, 1)
                    if r.value <= Double(fastest.denominator) / Double(max(1, fastest.numerator)) + 1e-6,
                       r.value >= Double(slowest.denominator) / Double(max(1, slowest.numerator)) - 1e-6 { result.append(r) }
                }
                break
            }
        }
        if result.isEmpty { result.append(FrameRate(30, 1)) }  // drivers without interval enumeration
        return result.sorted { $0.value < $1.value }
    }

    /// What the driver set: fourcc, size, bytes per line, bytes per picture.
    public struct ActiveFormat: Sendable {
        public var fourcc: UInt32
        public var width: Int
        public var height: Int
        public var bytesPerLine: Int
        public var imageSize: Int
    }

    /// VIDIOC_S_FMT then VIDIOC_S_PARM. Returns what the driver actually set.
    public func configure(fourcc: UInt32, width: Int, height: Int, rate: FrameRate) throws(DeviceError) -> (ActiveFormat, FrameRate) {
        var f = v4l2_format()
        f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        let pix = cm_v4l2_format_pix(&f)!
        pix.pointee.width = UInt32(width)
        pix.pointee.height = UInt32(height)
        pix.pointee.pixelformat = fourcc
        pix.pointee.field = V4L2_FIELD_NONE.rawValue
        let r = cm_v4l2_s_fmt(fd, &f)
        if r < 0 { throw failure(-r, "VIDIOC_S_FMT") }
        let active = ActiveFormat(fourcc: pix.pointee.pixelformat, width: Int(pix.pointee.width), height: Int(pix.pointee.height),
                                  bytesPerLine: Int(pix.pointee.bytesperline), imageSize: Int(pix.pointee.sizeimage))
        var p = v4l2_streamparm()
        p.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        let capture = cm_v4l2_parm_capture(&p)!
        capture.pointee.timeperframe = v4l2_fract(numerator: UInt32(rate.denominator), denominator: UInt32(rate.numerator))
        var actualRate = rate
        if cm_v4l2_s_parm(fd, &p) == 0, capture.pointee.timeperframe.numerator > 0 {
            actualRate = FrameRate(Int(capture.pointee.timeperframe.denominator), Int(capture.pointee.timeperframe.numerator))
        }
        return (active, actualRate)
    }

    /// Requests `count` mmap buffers, queues them and starts streaming.
    public func start(buffers count: Int) throws(DeviceError) {
        var req = v4l2_requestbuffers()
        req.count = UInt32(count)
        req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        req.memory = V4L2_MEMORY_MMAP.rawValue
        let r = cm_v4l2_reqbufs(fd, &req)
        if r < 0 { throw failure(-r, "VIDIOC_REQBUFS") }
        guard req.count >= 2 else { throw .io(device: path, "the driver gave only \(req.count) buffer(s)") }
        for i in 0..<req.count {
            var b = v4l2_buffer()
            b.index = i
            b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            b.memory = V4L2_MEMORY_MMAP.rawValue
            let q = cm_v4l2_querybuf(fd, &b)
            if q < 0 { throw failure(-q, "VIDIOC_QUERYBUF") }
            guard let base = cm_v4l2_mmap(fd, Int(b.length), cm_v4l2_buffer_offset(&b)) else { throw failure(errno, "mmap") }
            buffers.append((base, Int(b.length)))
            let e = cm_v4l2_qbuf(fd, &b)
            if e < 0 { throw failure(-e, "VIDIOC_QBUF") }
        }
        let s = cm_v4l2_streamon(fd)
        if s < 0 { throw failure(-s, "VIDIOC_STREAMON") }
        streaming = true
    }

    /// One captured buffer, valid until `requeue`.
    public struct Capture {
        public var index: UInt32
        public var bytes: UnsafeRawBufferPointer
        public var sequence: UInt32
        /// Nanoseconds on CLOCK_MONOTONIC when the driver stamps monotonic, else nil.
        public var monotonicTimestamp: Int64?
        public var keyframe: Bool
        public var corrupted: Bool
    }

    /// Waits up to `timeout` seconds for a frame. nil on timeout; throws on device errors and removal.
    public func next(timeout: Double) throws(DeviceError) -> Capture? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = poll(&pfd, 1, Int32(timeout * 1000))
        if n < 0 { if errno == EINTR { return nil }; throw failure(errno, "poll") }
        if n == 0 { return nil }
        if pfd.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && pfd.revents & Int16(POLLIN) == 0 {
            throw .gone(device: path, "the driver reported an error (unplugged?)")
        }
        var b = v4l2_buffer()
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        b.memory = V4L2_MEMORY_MMAP.rawValue
        let r = cm_v4l2_dqbuf(fd, &b)
        if r == -EAGAIN { return nil }
        if r < 0 { throw failure(-r, "VIDIOC_DQBUF") }
        let (base, length) = buffers[Int(b.index)]
        let used = b.bytesused > 0 ? min(Int(b.bytesused), length) : length
        let monotonic = b.flags & cm_v4l2_timestamp_mask() == cm_v4l2_timestamp_monotonic()
        let ns = Int64(b.timestamp.tv_sec) * 1_000_000_000 + Int64(b.timestamp.tv_usec) * 1000
        return Capture(index: b.index, bytes: UnsafeRawBufferPointer(start: base, count: used), sequence: b.sequence,
                       monotonicTimestamp: monotonic && ns > 0 ? ns : nil,
                       keyframe: b.flags & cm_v4l2_flag_keyframe() != 0, corrupted: b.flags & cm_v4l2_flag_error() != 0)
    }

    /// Gives a buffer back to the driver.
    public func requeue(_ c: Capture) throws(DeviceError) {
        var b = v4l2_buffer()
        b.index = c.index
        b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        b.memory = V4L2_MEMORY_MMAP.rawValue
        let r = cm_v4l2_qbuf(fd, &b)
        if r < 0 { throw failure(-r, "VIDIOC_QBUF") }
    }

    public func stop() {
        if streaming { _ = cm_v4l2_streamoff(fd); streaming = false }
        for (base, length) in buffers { _ = cm_v4l2_munmap(base, length) }
        buffers = []
    }

    private func failure(_ code: Int32, _ call: String) -> DeviceError {
        DeviceError.from(errno: code, device: path, doing: call)
    }

    static func string<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// A frame rate as a fraction (frames per second = numerator / denominator).
public struct FrameRate: Sendable, Equatable, CustomStringConvertible {
    public var numerator: Int
    public var denominator: Int
    public init(_ numerator: Int, _ denominator: Int) { self.numerator = numerator; self.denominator = max(1, denominator) }
    public var value: Double { Double(numerator) / Double(denominator) }
    /// Nanoseconds per frame.
    public var interval: Int64 { Int64(denominator) * 1_000_000_000 / Int64(max(1, numerator)) }
    /// "30", "12.5", "29.970".
    public var description: String {
        if numerator % denominator == 0 { return "\(numerator / denominator)" }
        let tenths = value * 10
        return tenths.rounded() == tenths ? String(format: "%.1f", value) : String(format: "%.3f", value)
    }
}

public struct CameraSize: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var rates: [FrameRate]
    public var fastest: Double { rates.map(\.value).max() ?? 0 }
}

/// One pixel format a camera offers.
public struct CameraFormat: Sendable, Equatable {
    public var fourcc: UInt32
    public var description: String
    /// Converted by libv4l2 from another format, not native.
    public var emulated: Bool
    public var sizes: [CameraSize]
    public var name: String { FourCC.string(fourcc) }
}
