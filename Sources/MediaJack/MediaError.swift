import CMedia
import Foundation

/// Errors of the media layer, in words a user can act on.
public enum MediaError: Error, CustomStringConvertible, Sendable {
    case unknownSource(String)
    case unsupported(String)
    case codec(call: String, code: Int32)
    case output(path: String, reason: String)
    /// A file given as a source that cannot be read as media.
    case input(path: String, reason: String)
    /// Writing a file (or a URL) failed: disk full, an I/O error, a broken connection. The recording
    /// stopped there; `kept` is what the file still plays (it was cut back to its last flush), nil
    /// when that is not known.
    case writeFailed(path: String, reason: String, kept: (seconds: Double, frames: Int)?)

    public var description: String {
        switch self {
        case .unknownSource(let s):
            return "unknown source '\(s)' (known: v4l2:/dev/videoN, alsa:DEVICE, file:PATH, test:video, test:audio; `mediajack devices` lists the cameras and sound cards)"
        case .unsupported(let s): return s
        case .codec(let call, let code): return "\(call) failed: \(Self.text(code))"
        case .output(let p, let r): return "cannot write \(p): \(r)"
        case .input(let p, let r): return "cannot read \(p) as media: \(r)"
        case .writeFailed(let p, let r, let kept):
            guard let kept else { return "writing \(p) failed: \(r)" }
            if kept.frames == 0 { return "writing \(p) failed: \(r); it holds no frames" }
            return "writing \(p) failed: \(r); it plays up to \(String(format: "%.2f", kept.seconds)) s (\(kept.frames) frames), where it was last flushed"
        }
    }

    static func text(_ code: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 256)
        cm_error_string(code, &buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @discardableResult
    static func check(_ call: String, _ code: Int32) throws(MediaError) -> Int32 {
        if code < 0 { throw .codec(call: call, code: code) }
        return code
    }
}

/// Process-wide libav settings.
public enum MediaLibrary {
    /// Only errors from libav on stderr (libx264 statistics are noise to a user).
    public static func quiet() { av_log_set_level(AV_LOG_ERROR) }
}
