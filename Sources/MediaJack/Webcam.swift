import CIPNSys
import Foundation
import Glibc
import IPNBus
import MediaWire

/// `mediajack webcam BUS /dev/videoN`: the bus's video as a camera any V4L2 program opens, through a
/// v4l2loopback device. A `LiveViewer` drains and decodes the bus on its own thread; this loop feeds the
/// device one picture per tick of the device's clock, in the one format set at start: the newest picture
/// scaled to it, repeated when the bus is slower, skipped when faster; a placeholder picture before any
/// publisher and after one leaves, so readers see a camera, never a dead device.
public enum Webcam {
    public struct Settings: Sendable {
        public var device = "/dev/video10"
        /// The device's format; nil takes the first stream's (else 1280x720 at 30 fps).
        public var width: Int?
        public var height: Int?
        public var fps: Int?
        public var pixelFormat = LoopbackOutput.PixelFormat.yuyv422
        public var stream: UInt32?
        /// How long to wait for a first stream to take the format from (after that: 1280x720 at 30 fps).
        public var formatWait = 2.0
        public init() {}
    }

    public struct Progress: Sendable {
        /// Pictures written to the device.
        public var out = 0
        /// Ticks that repeated the previous picture (the bus was slower than the device).
        public var repeated = 0
        /// Frames not shown: decoded pictures replaced before a tick took them (the bus was faster), and frames
        /// the viewer dropped (a gap on the bus, waiting for a keyframe).
        public var skipped = 0
        /// Ticks that showed a placeholder (no publisher, or its stream ended).
        public var placeholders = 0
        /// Ticks missed because this process ran late (a busy machine): the next picture went at once.
        public var late = 0
        public var state = LiveViewer.State.waitingForPublisher
        /// Programs that have the device open (read from /proc once a second, as fuser does: v4l2loopback
        /// 0.12 does not tell).
        public var readers = 0
        public init() {}
    }

    /// Runs until `shouldStop`. `opened` is told the device's format once it is set.
    public static func run(bus: String, _ s: Settings, report: @escaping @Sendable (String) -> Void,
                           whenWaitingForBus: (@Sendable () -> Void)?, shouldStop: () -> Bool,
                           progress: (Progress) -> Void) throws -> Progress {
        // A wrong device is said before anything else happens.
        try LoopbackOutput.check(s.device)
        let viewer = try LiveViewer(bus: bus, stream: s.stream, description: "mediajack webcam \(s.device)", report: report,
                                    whenWaitingForBus: whenWaitingForBus)
        defer { viewer.stop() }
        // The device's one format: asked for, else the first stream's, else 1280x720 at 30 fps.
        var first: StreamDescription?
        if s.width == nil || s.fps == nil {
            let until = Date().addingTimeInterval(s.formatWait)
            while first == nil, Date() < until, !shouldStop() {
                first = viewer.current().stream
                if first == nil { usleep(20_000) }
            }
        }
        let width = s.width ?? first?.width ?? 1280, height = s.height ?? first?.height ?? 720
        let rate = first.flatMap { d in d.frameRateNumerator.flatMap { n in d.frameRateDenominator.map { (n, $0) } } }
        let fps = s.fps ?? rate.map { max(1, min(120, Int((Double($0.0) / Double(max(1, $0.1))).rounded()))) } ?? 30
        let device = try LoopbackOutput(path: s.device, width: width - width % 2, height: height - height % 2, format: s.pixelFormat, fps: fps)
        report("webcam \(s.device) (\(device.card)): \(device.width)x\(device.height) \(device.format.rawValue) at \(fps) fps"
               + (first == nil && s.width == nil ? " (no stream yet: the default format)" : ""))

        // The picture as it goes out, I420 at the device's size; then converted to the device's format.
        let w = device.width, h = device.height
        var canvas = [UInt8](repeating: 0, count: w * h * 3 / 2)
        let toDevice = device.format == .yuv420p ? nil
            : PictureScaler(from: (w, h, "yuv420p"), to: (w, h, device.format.libav))
        var scaler: PictureScaler?
        let caption = Caption(pictureHeight: h)
        if !caption.hasFont { report("no font found (install fonts-dejavu-core): placeholder pictures carry no text") }

        var p = Progress()
        /// What the device showed last ("picture N", or a state over a picture): the canvas holds it.
        var shown = ""
        /// The newest picture of a publisher that left.
        var endedOn = 0
        var droppedBefore = viewer.current().counters.dropped
        let period = 1_000_000_000 / Int64(fps)
        var next = MediaPublisher.monotonic()
        while !shouldStop() {
            if let e = viewer.error { throw e }
            let now = viewer.current()
            p.state = now.state
            // What the device shows this tick: a picture, or a placeholder for the state (over the last picture,
            // dimmed, once a publisher left). A picture of a publisher that left is never shown as live: the next
            // one's first picture ends the placeholder. When the device showed the same last tick, the last
            // picture goes again as is.
            if now.state == .ended || now.state == .waitingForPublisher { endedOn = max(endedOn, now.picture?.serial ?? 0) }
            let showing = (now.picture?.serial ?? 0) > endedOn && now.state != .ended && now.state != .waitingForPublisher
                && now.state != .waitingForBus
            let shows = showing ? "picture \(now.picture!.serial)" : "\(now.state.rawValue) \(now.picture?.serial ?? 0)"
            if let picture = now.picture, showing {
                if shows != shown {
                    if scaler.map({ $0.source.width != picture.width || $0.source.height != picture.height }) ?? true {
                        scaler = PictureScaler(from: (picture.width, picture.height, "yuv420p"), to: (w, h, "yuv420p"))
                    }
                    picture.bytes.withUnsafeBytes { src in canvas.withUnsafeMutableBytes { scaler?.convert(src, into: $0) } }
                    viewer.shown(picture.serial)
                } else {
                    p.repeated += 1
                }
            } else {
                p.placeholders += 1
                if shows != shown {
                    // Before a publisher: grey. After one left: its last picture, dimmed. Either way, the state.
                    placeholder(&canvas, width: w, height: h, last: now.picture, scaler: &scaler)
                    canvas.withUnsafeMutableBufferPointer { c in
                        caption.draw(now.state.rawValue, luma: c.baseAddress!, width: w, height: h)
                    }
                }
            }
            if shows == shown {
                try device.writeAgain()
            } else {
                try canvas.withUnsafeBytes { src in
                    try device.write { out in
                        if let toDevice { toDevice.convert(src, into: out) } else { out.copyMemory(from: src) }
                    }
                }
                shown = shows
            }
            p.out += 1
            if (p.out - 1) % fps == 0 { p.readers = DeviceHolders.of(s.device).count }
            let dropped = now.counters.dropped
            p.skipped += dropped - droppedBefore
            droppedBefore = dropped
            progress(p)
            // The device's clock: one picture per period, on absolute times; a tick missed is counted, not caught up.
            next += period
            let after = MediaPublisher.monotonic()
            if after > next + period {
                let missed = (after - next) / period
                p.late += Int(missed)
                next += missed * period
            }
            if next > after {
                var t = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nil) == EINTR { if shouldStop() { break } }
            }
        }
        return p
    }

    /// A grey picture, or `last` scaled and dimmed to a third, as the backdrop of a state line.
    private static func placeholder(_ canvas: inout [UInt8], width w: Int, height h: Int, last: LiveViewer.Picture?, scaler: inout PictureScaler?) {
        let luma = w * h
        if let last {
            if scaler.map({ $0.source.width != last.width || $0.source.height != last.height }) ?? true {
                scaler = PictureScaler(from: (last.width, last.height, "yuv420p"), to: (w, h, "yuv420p"))
            }
            last.bytes.withUnsafeBytes { src in canvas.withUnsafeMutableBytes { scaler?.convert(src, into: $0) } }
            for i in 0..<luma { canvas[i] = UInt8(16 + (Int(canvas[i]) - 16) / 3) }
            for i in luma..<canvas.count { canvas[i] = UInt8(128 + (Int(canvas[i]) - 128) / 3) }
        } else {
            for i in 0..<luma { canvas[i] = 40 }
            for i in luma..<canvas.count { canvas[i] = 128 }
        }
    }
}
