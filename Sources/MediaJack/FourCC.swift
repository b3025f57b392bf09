import Foundation

/// V4L2 pixel format codes and what they are in libav terms.
public enum FourCC {
    public static func code(_ s: String) -> UInt32 {
        let b = Array(s.utf8) + [0x20, 0x20, 0x20, 0x20]
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    public static func string(_ code: UInt32) -> String {
        // Bit 31 marks the big-endian variant of a format (V4L2_PIX_FMT_FLAG_BE... in fourcc_be).
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: (code & 0x7fff_ffff) >> (8 * $0)) }
        let name = String(decoding: bytes.map { (0x20...0x7e).contains($0) ? $0 : 0x3f }, as: UTF8.self).trimmingCharacters(in: [" "])
        return code & 0x8000_0000 != 0 ? name + "-BE" : name
    }

    /// How a camera format goes onto the bus: a compressed codec, or raw video in a libav pixel format.
    public enum Mapping: Sendable, Equatable {
        case compressed(codec: String)
        case raw(pixelFormat: String)
    }

    /// The formats we publish, in order of preference when the user does not choose: compressed first
    /// (less to move), then the raw formats webcams send natively.
    public static let known: [(fourcc: String, mapping: Mapping)] = [
        ("H264", .compressed(codec: "h264")), ("MJPG", .compressed(codec: "mjpeg")), ("JPEG", .compressed(codec: "mjpeg")),
        ("YUYV", .raw(pixelFormat: "yuyv422")), ("NV12", .raw(pixelFormat: "nv12")), ("YU12", .raw(pixelFormat: "yuv420p")),
        ("UYVY", .raw(pixelFormat: "uyvy422")), ("YVYU", .raw(pixelFormat: "yvyu422")), ("NV21", .raw(pixelFormat: "nv21")),
        ("422P", .raw(pixelFormat: "yuv422p")), ("NV16", .raw(pixelFormat: "nv16")), ("GREY", .raw(pixelFormat: "gray")),
        ("RGB3", .raw(pixelFormat: "rgb24")), ("BGR3", .raw(pixelFormat: "bgr24")),
    ]

    public static func mapping(_ code: UInt32) -> Mapping? {
        let s = string(code)
        return known.first { $0.fourcc == s }?.mapping
    }

    /// Preference rank (lower is better); nil for formats we cannot publish.
    public static func rank(_ code: UInt32) -> Int? {
        let s = string(code)
        return known.firstIndex { $0.fourcc == s }
    }

    /// Accepts a fourcc ("YUYV", "NV12", "MJPG") or a libav name ("yuyv422", "nv12", "mjpeg", "h264").
    public static func parse(_ s: String) -> UInt32? {
        if let k = known.first(where: { $0.fourcc.lowercased() == s.lowercased() }) { return code(k.fourcc) }
        for k in known {
            switch k.mapping {
            case .compressed(let c) where c == s.lowercased(): return code(k.fourcc)
            case .raw(let p) where p == s.lowercased(): return code(k.fourcc)
            default: continue
            }
        }
        return s.count == 4 ? code(s) : nil
    }
}
