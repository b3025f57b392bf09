import CMedia
import Glibc

/// The producer side of a v4l2loopback device: what makes `/dev/videoN` a webcam any V4L2 program can
/// open. One format for the device's whole life (set once, before streaming; readers never see it change),
/// STREAMON on the output queue (a producer that writes without it can leave an
/// `exclusive_caps` device unusable for the next one), then one `write` per picture.
///
/// Not `Sendable`: one thread owns the device.
public final class LoopbackOutput {
    public enum PixelFormat: String, Sendable, CaseIterable {
        case yuyv422, yuv420p
        var fourcc: UInt32 { self == .yuyv422 ? FourCC.code("YUYV") : FourCC.code("YU12") }
        /// The libav name, for libswscale.
        public var libav: String { rawValue }
        public func bytes(width: Int, height: Int) -> Int { self == .yuyv422 ? width * height * 2 : width * height * 3 / 2 }
        public func bytesPerLine(width: Int) -> Int { self == .yuyv422 ? width * 2 : width }
    }

    /// The module's driver name in VIDIOC_QUERYCAP.
    public static let driverName = "v4l2 loopback"
    /// How to get one, for errors.
    public static let loadHint = "sudo modprobe v4l2loopback exclusive_caps=1 card_label=\"IPN camera\" (Debian: apt install v4l2loopback-dkms)"

    public let path: String
    public let card: String
    public let width: Int
    public let height: Int
    public let format: PixelFormat
    public let fps: Int
    public var frameBytes: Int { format.bytes(width: width, height: height) }
    private let fd: Int32
    /// Bytes written per picture (the device's sizeimage) and the picture being written.
    private var pictureBytes = 0
    private var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var streaming = false
    public private(set) var written = 0

    public init(path: String, width: Int, height: Int, format: PixelFormat, fps: Int) throws(DeviceError) {
        self.path = path
        self.width = width
        self.height = height
        self.format = format
        self.fps = fps
        (fd, card) = try Self.openProducer(path)
        // Fully initialised from here: if configure() throws, deinit stops streaming and closes the device.
        try configure()
    }

    /// Opens `path` as a loopback device's producer side, or says why it cannot be one: no such device (the
    /// module is not loaded), no permission, a real camera, a loopback another producer already feeds.
    private static func openProducer(_ path: String) throws(DeviceError) -> (fd: Int32, card: String) {
        let fd = path.withCString { cm_v4l2_open_output($0) }
        if fd < 0 {
            if -fd == ENOENT {
                let existing = DeviceList.loopbacks().map(\.path)
                if !existing.isEmpty { throw .io(device: path, "no such device; the loopback devices here are \(existing.joined(separator: ", "))") }
                throw .io(device: path, "no such device: a virtual webcam needs the v4l2loopback module: \(loadHint)")
            }
            throw DeviceError.from(errno: -fd, device: path, doing: "open")
        }
        var cap = v4l2_capability()
        let q = cm_v4l2_querycap(fd, &cap)
        let driver = q == 0 ? string(&cap.driver) : ""
        let card = q == 0 ? string(&cap.card) : ""
        guard q == 0, driver == driverName else {
            close(fd)
            throw .io(device: path, "is not a v4l2loopback device (driver \"\(driver.isEmpty ? "none" : driver)\", card \"\(card)\"): "
                      + "a real camera cannot be written to. Make a virtual one: \(loadHint), then use the /dev/videoN it adds "
                      + "(`mediajack devices` lists loopback devices)")
        }
        let caps = cap.capabilities & 0x8000_0000 != 0 ? cap.device_caps : cap.capabilities
        // With exclusive_caps=1 the device offers output only while no producer feeds it (then capture only).
        guard caps & 0x2 != 0 else {  // V4L2_CAP_VIDEO_OUTPUT
            let holders = DeviceHolders.of(path).map { "pid \($0.pid) (\($0.command))" }
            close(fd)
            throw .io(device: path, "is already fed by another producer\(holders.isEmpty ? "" : " (open in " + holders.joined(separator: ", ") + ")")"
                      + ": stop it, or use another loopback device (modprobe v4l2loopback devices=2 ...)")
        }
        return (fd, card)
    }

    /// Fails as `init` would on a device that cannot take a producer now, without keeping it: what a command
    /// checks before it joins a bus, so a wrong device is said at once.
    public static func check(_ path: String) throws(DeviceError) {
        close(try openProducer(path).fd)
    }

    deinit {
        if streaming { _ = cm_v4l2_output_streamoff(fd) }
        scratch.deallocate()
        close(fd)
    }

    private func check(_ call: String, _ r: Int32) throws(DeviceError) {
        if r < 0 {
            if -r == EBUSY { throw .io(device: path, "\(call): busy: another program streams to or from it with another format (v4l2loopback keeps a format while a reader is open)") }
            throw DeviceError.from(errno: -r, device: path, doing: call)
        }
    }

    private func configure() throws(DeviceError) {
        var f = v4l2_format()
        f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT.rawValue
        let pix = cm_v4l2_format_pix(&f)!
        pix.pointee.width = UInt32(width)
        pix.pointee.height = UInt32(height)
        pix.pointee.pixelformat = format.fourcc
        pix.pointee.field = V4L2_FIELD_NONE.rawValue
        pix.pointee.bytesperline = UInt32(format.bytesPerLine(width: width))
        pix.pointee.sizeimage = UInt32(frameBytes)
        pix.pointee.colorspace = V4L2_COLORSPACE_SMPTE170M.rawValue
        try check("VIDIOC_S_FMT", cm_v4l2_s_fmt(fd, &f))
        // S_FMT answers with a page-aligned sizeimage; G_FMT gives the picture's own, which readers expect.
        var g = v4l2_format()
        g.type = V4L2_BUF_TYPE_VIDEO_OUTPUT.rawValue
        try check("VIDIOC_G_FMT", cm_v4l2_g_fmt(fd, &g))
        let got = cm_v4l2_format_pix(&g)!.pointee
        guard got.width == UInt32(width), got.height == UInt32(height), got.pixelformat == format.fourcc else {
            throw .cannotDo(device: path, request: "\(width)x\(height) \(format.rawValue)",
                            offers: ["\(got.width)x\(got.height) \(FourCC.string(got.pixelformat)) (v4l2loopback keeps a format while a reader has it open)",
                                     "(its max_width/max_height module parameters bound the size)"])
        }
        pictureBytes = max(frameBytes, Int(got.sizeimage))
        var parm = v4l2_streamparm()
        parm.type = V4L2_BUF_TYPE_VIDEO_OUTPUT.rawValue
        let out = cm_v4l2_parm_output(&parm)!
        out.pointee.timeperframe = v4l2_fract(numerator: 1, denominator: UInt32(fps))
        try check("VIDIOC_S_PARM", cm_v4l2_s_parm(fd, &parm))
        // STREAMON marks this descriptor as the producer: closing it gives the device back (an exclusive_caps
        // device written to without it stays unusable for the next producer, v4l2loopback issue 442).
        try check("VIDIOC_STREAMON", cm_v4l2_output_streamon(fd))
        streaming = true
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: pictureBytes, alignment: 64)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// Sends one picture: `fill` writes `frameBytes` bytes of the device's format.
    public func write(_ fill: (UnsafeMutableRawBufferPointer) -> Void) throws(DeviceError) {
        fill(UnsafeMutableRawBufferPointer(rebasing: scratch[0..<frameBytes]))
        try writeAgain()
    }

    /// Sends the last picture once more (a repeat costs the write only).
    public func writeAgain() throws(DeviceError) {
        keepBuffersMapped()
        var done = 0
        while done < pictureBytes {
            let n = Glibc.write(fd, scratch.baseAddress! + done, pictureBytes - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw DeviceError.from(errno: errno, device: path, doing: "write")
            }
            done += n
        }
        written += 1
    }

    /// v4l2loopback 0.12.7 keeps one set of buffers for all its readers, and any reader's VIDIOC_REQBUFS (every
    /// mmap reader calls it as it starts and as it stops) clears every buffer's "mapped" flag: the other readers'
    /// next VIDIOC_DQBUF then fails ("not mapped", EINVAL) and they end, as if the camera were gone. Mapping a
    /// buffer sets the flag again (unmapping leaves it), so before each picture the producer maps, for a
    /// moment, each buffer a reader's REQBUFS left unmarked. Only a reader with a picture waiting at the moment
    /// of another's REQBUFS still fails: that window is the module's (issue 459) and cannot be closed from here.
    private func keepBuffersMapped() {
        var offsets: Set<UInt32> = []
        for index in 0..<UInt32(64) {
            var b = v4l2_buffer()
            b.index = index
            b.type = V4L2_BUF_TYPE_VIDEO_OUTPUT.rawValue
            b.memory = V4L2_MEMORY_MMAP.rawValue
            guard cm_v4l2_querybuf(fd, &b) == 0 else { return }
            let offset = cm_v4l2_buffer_offset(&b)
            // The module answers any index modulo its buffer count: a repeated offset means all were seen.
            guard offsets.insert(offset).inserted else { return }
            if b.flags & 0x1 == 0, b.length > 0, let mapping = cm_v4l2_mmap(fd, Int(b.length), offset) {  // V4L2_BUF_FLAG_MAPPED
                _ = cm_v4l2_munmap(mapping, Int(b.length))
            }
        }
    }

    /// What a /dev/videoN is if it is a v4l2loopback device: its card name, and whether it takes a producer
    /// now (output) and can be read now (capture). nil for anything else.
    public static func probe(_ path: String) -> (card: String, output: Bool, capture: Bool)? {
        let fd = path.withCString { cm_v4l2_open_output($0) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var cap = v4l2_capability()
        guard cm_v4l2_querycap(fd, &cap) == 0, string(&cap.driver) == driverName else { return nil }
        let caps = cap.capabilities & 0x8000_0000 != 0 ? cap.device_caps : cap.capabilities
        return (string(&cap.card), caps & 0x2 != 0, caps & 0x1 != 0)
    }

    static func string<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
