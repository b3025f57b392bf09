import CMedia
import Glibc
import MediaWire

/// `v4l2:/dev/videoN`: a camera on the bus. Negotiates a format, streams with mmap buffers, stamps
/// frames with the driver's monotonic timestamps (the bus clock), turns driver sequence gaps into
/// discontinuities, passes MJPEG and H.264 through and publishes raw formats raw or encoded once.
public enum V4L2Source {
    public struct Settings: Sendable {
        /// A fourcc or libav name; nil: the best the device offers.
        public var pixelFormat: String?
        public var width: Int?
        public var height: Int?
        public var fps: Double?
        public var buffers = 4
        /// Encode raw pictures once (H.264 or MJPEG); nil publishes them raw.
        public var encode: VideoEncoder.Codec?
        public var gop = 50
        public var bitrate = 2_000_000
        public var preset = "veryfast"
        public init() {}
    }

    /// The format chosen, and why.
    public struct Choice: Sendable, CustomStringConvertible {
        public var format: CameraFormat
        public var width: Int
        public var height: Int
        public var rate: FrameRate
        public var reason: String
        public var description: String { "\(format.name) \(width)x\(height) at \(rate) fps (\(reason))" }
    }

    /// Picks the format: what the user asked for, else the best the device offers (compressed first,
    /// else the largest raw size that meets the rate). Throws with everything the device can do when
    /// the request cannot be met.
    public static func choose(_ s: Settings, from formats: [CameraFormat], device: String) throws(DeviceError) -> Choice {
        let target = s.fps ?? 30
        let wanted = s.pixelFormat.map { FourCC.parse($0) }
        if let wanted, wanted == nil {
            throw .cannotDo(device: device, request: "pixel format '\(s.pixelFormat!)'", offers: offers(formats))
        }
        var candidates = formats.filter { FourCC.rank($0.fourcc) != nil }
        if let w = wanted { candidates = candidates.filter { $0.fourcc == w } }
        // Native formats before libv4l2's emulated ones, unless only emulated ones can do it.
        if candidates.contains(where: { !$0.emulated }) && wanted == nil { candidates = candidates.filter { !$0.emulated } }
        struct Option { var format: CameraFormat; var size: CameraSize; var rate: FrameRate }
        var options: [Option] = []
        for f in candidates {
            for size in f.sizes {
                if let w = s.width, let h = s.height, size.width != w || size.height != h { continue }
                if let fps = s.fps {
                    guard let r = size.rates.first(where: { abs($0.value - fps) / fps < 0.01 }) else { continue }
                    options.append(Option(format: f, size: size, rate: r))
                } else {
                    // The rate closest to the target, preferring one at least as fast.
                    let r = size.rates.filter { $0.value >= target - 0.01 }.min { $0.value < $1.value } ?? size.rates.max { $0.value < $1.value }!
                    options.append(Option(format: f, size: size, rate: r))
                }
            }
        }
        guard !options.isEmpty else {
            var request: [String] = []
            if let p = s.pixelFormat { request.append(p) }
            if let w = s.width, let h = s.height { request.append("\(w)x\(h)") }
            if let fps = s.fps { request.append("at \(FrameRate(Int(fps * 1000), 1000)) fps") }
            throw .cannotDo(device: device, request: request.isEmpty ? "any format this program can publish" : request.joined(separator: " "), offers: offers(formats))
        }
        let requested = s.pixelFormat != nil || s.width != nil || s.fps != nil
        let meetsRate = options.filter { $0.rate.value >= target - 0.01 }
        let pool = meetsRate.isEmpty ? options : meetsRate
        let compressed = pool.filter { if case .compressed = FourCC.mapping($0.format.fourcc) { return true }; return false }
        let ranked = (compressed.isEmpty ? pool : compressed).sorted { a, b in
            let areaA = a.size.width * a.size.height, areaB = b.size.width * b.size.height
            if areaA != areaB { return areaA > areaB }
            return FourCC.rank(a.format.fourcc)! < FourCC.rank(b.format.fourcc)!
        }
        let best = ranked[0]
        var reason = requested ? "as requested" : (compressed.isEmpty ? "largest raw size at \(FrameRate(Int(target * 1000), 1000)) fps" : "compressed by the camera")
        if meetsRate.isEmpty { reason += "; the device cannot reach \(FrameRate(Int(target * 1000), 1000)) fps" }
        if best.format.emulated { reason += "; converted by libv4l2" }
        return Choice(format: best.format, width: best.size.width, height: best.size.height, rate: best.rate, reason: reason)
    }

    /// One line per publishable format and size, then one line naming the formats this program cannot
    /// publish, for errors and `mediajack devices`.
    public static func offers(_ formats: [CameraFormat]) -> [String] {
        var lines = formats.filter { FourCC.rank($0.fourcc) != nil }.flatMap { f in
            f.sizes.map { s in
                "\(f.name)\(f.emulated ? " (converted by libv4l2)" : "") \(s.width)x\(s.height) @ \(s.rates.map(\.description).joined(separator: ",")) fps"
            }
        }
        let others = formats.filter { FourCC.rank($0.fourcc) == nil }.map(\.name)
        if !others.isEmpty { lines.append("and \(others.count) format(s) this program does not publish: \(others.joined(separator: " "))") }
        return lines
    }

    public struct Progress: Sendable {
        public var frames = 0
        public var bytes = 0
        /// Frames the driver dropped (sequence gaps) or flagged corrupt.
        public var lost = 0
        public var seconds = 0.0
        public init() {}
    }

    /// Streams until `shouldStop`, `frameLimit` frames, or a device error (the stream is ended cleanly
    /// first, then the error is thrown).
    /// A camera opened and configured, not yet streaming.
    public struct Opened {
        let device: V4L2Device
        let settings: Settings
        public let format: V4L2Device.ActiveFormat
        public let rate: FrameRate
        let mapping: FourCC.Mapping
        /// What was chosen and why, for the user.
        public let summary: String
        /// The largest frame this will publish (for the bus's MTU).
        public var maxFrameBytes: Int { max(format.imageSize, format.width * format.height * 2) }
    }

    /// Opens the camera and negotiates its format (throws with what the device offers when it cannot).
    public static func open(device path: String, _ s: Settings) throws -> Opened {
        let device = try V4L2Device(path: path)
        let choice = try choose(s, from: device.formats(), device: path)
        let (active, rate) = try device.configure(fourcc: choice.format.fourcc, width: choice.width, height: choice.height, rate: choice.rate)
        guard let mapping = FourCC.mapping(active.fourcc) else {
            throw DeviceError.io(device: path, "the driver switched to \(FourCC.string(active.fourcc)), which cannot be published")
        }
        let summary = "\(path): \(device.card) [\(device.driver)]: \(FourCC.string(active.fourcc)) \(active.width)x\(active.height) at \(rate) fps (\(choice.reason))"
        return Opened(device: device, settings: s, format: active, rate: rate, mapping: mapping, summary: summary)
    }

    public static func run(_ opened: Opened, on publisher: MediaPublisher, frameLimit: Int?,
                           shouldStop: () -> Bool, progress: (Progress) -> Void) throws -> Progress {
        let device = opened.device, s = opened.settings, active = opened.format, rate = opened.rate, mapping = opened.mapping
        let path = device.path
        try device.start(buffers: s.buffers)
        defer { device.stop() }

        let interval = rate.interval
        var encoder: VideoEncoder?
        var converter: PictureConverter?
        var description: StreamDescription
        var packer: RawPicture?
        switch mapping {
        case .compressed(let codec):
            description = StreamDescription(kind: .video, codec: codec, width: active.width, height: active.height,
                                            frameRate: (rate.numerator, rate.denominator), timeBase: (1, 1_000_000_000), allKeyframes: codec == "mjpeg")
        case .raw(let pixelFormat):
            packer = RawPicture(pixelFormat: pixelFormat, width: active.width, height: active.height, bytesPerLine: active.bytesPerLine)
            if let codec = s.encode {
                guard let c = PictureConverter(pixelFormat: pixelFormat, width: active.width, height: active.height) else {
                    throw MediaError.unsupported("libswscale cannot convert \(pixelFormat) for encoding")
                }
                converter = c
                let fps = max(1, Int(rate.value.rounded()))
                let e = try VideoEncoder(codec: codec, width: active.width, height: active.height, fps: fps, gop: s.gop, bitrate: s.bitrate, preset: s.preset)
                encoder = e
                description = StreamDescription(kind: .video, codec: codec.rawValue, width: active.width, height: active.height,
                                                pixelFormat: codec == .mjpeg ? "yuvj420p" : "yuv420p", frameRate: (rate.numerator, rate.denominator),
                                                timeBase: (1, fps), extradata: e.extradata, allKeyframes: codec != .h264)
            } else {
                description = StreamDescription(kind: .video, codec: "rawvideo", width: active.width, height: active.height, pixelFormat: pixelFormat,
                                                frameRate: (rate.numerator, rate.denominator), timeBase: (rate.denominator, rate.numerator), allKeyframes: true)
            }
        }
        // H.264 from the camera is described once its first keyframe brings SPS/PPS.
        var stream: UInt32? = description.codec == "h264" && encoder == nil ? nil : try publisher.addStream(description)
        var p = Progress()
        let start = MediaPublisher.monotonic()
        var lastSequence: UInt32?
        var discontinuity = false
        var captures: [Int64: (Int64, Int64)] = [:]
        var index: Int64 = 0
        let stallLimit = max(2.0, 5 * Double(interval) / 1e9)
        var waited = 0.0
        defer {
            if let stream { try? publisher.endStream(stream) }
        }
        func send(_ packet: VideoEncoder.Packet) throws {
            let (mono, wall) = captures.removeValue(forKey: packet.index) ?? (start + packet.index * interval, MediaPublisher.wallClock())
            try publisher.publish(stream: stream!, flags: packet.keyframe ? .keyframe : [], pts: mono, duration: interval, captureTime: wall,
                                  payloadLength: packet.bytes.count) { out in
                packet.bytes.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            p.bytes += packet.bytes.count
        }
        while !shouldStop() && frameLimit.map({ p.frames < $0 }) ?? true {
            try publisher.serviceRequests()
            guard let c = try device.next(timeout: 0.25) else {
                waited += 0.25
                if waited >= stallLimit { throw DeviceError.stalled(device: path, seconds: waited) }
                continue
            }
            waited = 0
            defer { try? device.requeue(c) }
            // A forward jump is frames the driver dropped; drivers that leave the sequence at 0 never jump.
            if let last = lastSequence, case let d = c.sequence &- last, d > 1, d < 1 << 31 {
                p.lost += Int(d - 1)
                discontinuity = true
            }
            lastSequence = c.sequence
            if c.corrupted { p.lost += 1; discontinuity = true; continue }
            let now = MediaPublisher.monotonic()
            let mono = c.monotonicTimestamp ?? now
            let wall = MediaPublisher.wallClock() - (now - mono)
            var flags: FrameFlags = discontinuity ? .discontinuity : []
            switch mapping {
            case .compressed(let codec):
                var payload = c.bytes
                if codec == "h264" {
                    let keyframe = c.keyframe || H264.containsIDR(payload)
                    if stream == nil {
                        guard keyframe, let parameters = H264.parameterSets(payload) else { continue }  // wait for SPS/PPS
                        description.extradata = parameters
                        stream = try publisher.addStream(description)
                    }
                    if keyframe { flags.insert(.keyframe) }
                } else {
                    flags.insert(.keyframe)
                    payload = UnsafeRawBufferPointer(rebasing: payload[..<JPEG.trimmedLength(payload)])
                }
                try publisher.publish(stream: stream!, flags: flags, pts: mono, duration: interval, captureTime: wall, payloadLength: payload.count) { out in
                    out.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count)
                }
                p.bytes += payload.count
            case .raw:
                let packer = packer!
                guard c.bytes.count >= packer.minimumSourceSize else { p.lost += 1; discontinuity = true; continue }
                if let encoder, let converter {
                    captures[index] = (mono, wall)
                    let packets = try packer.withPacked(c.bytes) { picture in
                        try encoder.encode(index: index) { planes in converter.convert(picture, into: planes) }
                    }
                    index += 1
                    for packet in packets { try send(packet) }
                } else {
                    try publisher.publish(stream: stream!, flags: flags.union(.keyframe), pts: mono, duration: interval, captureTime: wall,
                                          payloadLength: packer.packedSize) { out in packer.pack(c.bytes, into: out) }
                    p.bytes += packer.packedSize
                }
            }
            discontinuity = false
            p.frames += 1
            p.seconds = Double(MediaPublisher.monotonic() - start) / 1e9
            progress(p)
        }
        if let encoder { for packet in try encoder.flush() { try send(packet) } }
        return p
    }
}

/// A raw picture as the driver lays it out (rows of `bytesPerLine`, which may be padded) and tightly
/// packed, as libav and the bus carry it.
struct RawPicture {
    let planes: [(rows: Int, rowBytes: Int, sourceStride: Int)]
    let packedSize: Int
    let minimumSourceSize: Int

    init(pixelFormat: String, width: Int, height: Int, bytesPerLine: Int) {
        let format = av_get_pix_fmt(pixelFormat)
        var linesizes = [Int32](repeating: 0, count: 4)
        _ = av_image_fill_linesizes(&linesizes, format, Int32(width))
        let descriptor = av_pix_fmt_desc_get(format)!.pointee
        let natural = Int(linesizes[0])
        let stride0 = max(bytesPerLine, natural)
        var planes: [(Int, Int, Int)] = []
        for i in 0..<4 where linesizes[i] > 0 {
            let rows = i == 0 || i == 3 ? height : (height + (1 << Int(descriptor.log2_chroma_h)) - 1) >> Int(descriptor.log2_chroma_h)
            // V4L2 single-plane convention: chroma strides scale with the luma stride.
            planes.append((rows, Int(linesizes[i]), Int(linesizes[i]) * stride0 / natural))
        }
        self.planes = planes
        packedSize = planes.reduce(0) { $0 + $1.0 * $1.1 }
        minimumSourceSize = planes.reduce(0) { $0 + $1.0 * $1.2 } - (stride0 - natural)
    }

    var isPacked: Bool { planes.allSatisfy { $0.rowBytes == $0.sourceStride } }

    func pack(_ source: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        if isPacked { out.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: packedSize); return }
        var s = 0, d = 0
        for plane in planes {
            for row in 0..<plane.rows {
                (out.baseAddress! + d + row * plane.rowBytes).copyMemory(from: source.baseAddress! + s + row * plane.sourceStride, byteCount: plane.rowBytes)
            }
            s += plane.rows * plane.sourceStride
            d += plane.rows * plane.rowBytes
        }
    }

    func withPacked<R>(_ source: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if isPacked { return try body(UnsafeRawBufferPointer(rebasing: source[..<packedSize])) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: packedSize, alignment: 64)
        defer { buffer.deallocate() }
        pack(source, into: buffer)
        return try body(UnsafeRawBufferPointer(buffer))
    }
}

/// Just enough of H.264 Annex B to find keyframes and parameter sets in a camera's output.
enum H264 {
    /// NAL units (type, bytes including the start code).
    static func units(_ b: UnsafeRawBufferPointer) -> [(type: UInt8, range: Range<Int>)] {
        var starts: [Int] = []
        var i = 0
        while i + 3 < b.count {
            if b[i] == 0, b[i + 1] == 0, b[i + 2] == 1 { starts.append(i); i += 3 } else { i += 1 }
        }
        return starts.enumerated().map { n, s in
            var end = n + 1 < starts.count ? starts[n + 1] : b.count
            if end < b.count, end > s, b[end - 1] == 0 { end -= 1 }  // 4-byte start code of the next unit
            let begin = s > 0 && b[s - 1] == 0 ? s - 1 : s
            return (b[min(s + 3, b.count - 1)] & 0x1f, begin..<end)
        }
    }

    static func containsIDR(_ b: UnsafeRawBufferPointer) -> Bool { units(b).contains { $0.type == 5 } }

    /// SPS and PPS units (Annex B), as codec extradata; nil if either is missing.
    static func parameterSets(_ b: UnsafeRawBufferPointer) -> [UInt8]? {
        let u = units(b)
        guard u.contains(where: { $0.type == 7 }), u.contains(where: { $0.type == 8 }) else { return nil }
        return u.filter { $0.type == 7 || $0.type == 8 }.flatMap { Array(b[$0.range]) }
    }
}

/// MJPEG from cameras may carry padding after the End Of Image marker.
enum JPEG {
    static func trimmedLength(_ b: UnsafeRawBufferPointer) -> Int {
        var i = b.count - 2
        while i > 1 {
            if b[i] == 0xFF && b[i + 1] == 0xD9 { return i + 2 }
            i -= 1
        }
        return b.count
    }
}
