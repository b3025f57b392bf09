import CMedia
import Foundation
import Glibc

/// Errors of capture and playback devices, naming the device and what to do.
public enum DeviceError: Error, CustomStringConvertible, Sendable {
    case notFound(String)
    case permission(String)
    case busy(device: String, holders: [DeviceHolders.Holder])
    case notACamera(String)
    case gone(device: String, String)
    case io(device: String, String)
    case stalled(device: String, seconds: Double)
    /// A request the device cannot meet, with what it can do.
    case cannotDo(device: String, request: String, offers: [String])
    case alsa(device: String, call: String, code: Int32)

    public var description: String {
        switch self {
        case .notFound(let d): return "\(d): no such device"
        case .permission(let d): return "\(d): permission denied (is this user in the video/audio group?)"
        case .busy(let d, let holders):
            let who = holders.isEmpty ? "" : " by " + holders.map { "pid \($0.pid) (\($0.command))" }.joined(separator: ", ")
            return "\(d) is busy: in use\(who.isEmpty ? " by another program" : who)"
        case .notACamera(let d): return "\(d) is not a V4L2 video capture device with streaming"
        case .gone(let d, let why): return "\(d) went away: \(why)"
        case .io(let d, let why): return "\(d): \(why)"
        case .stalled(let d, let s): return "\(d) delivered no frame for \(String(format: "%.1f", s)) s (stalled or unplugged); stream ended"
        case .cannotDo(let d, let request, let offers):
            return "\(d) cannot do \(request). It offers:\n" + offers.map { "  " + $0 }.joined(separator: "\n")
        case .alsa(let d, let call, let code): return "\(d): \(call) failed: \(String(cString: snd_strerror(code)))"
        }
    }

    static func from(errno code: Int32, device: String, doing call: String) -> DeviceError {
        switch code {
        case ENOENT: return .notFound(device)
        case EACCES, EPERM: return .permission(device)
        case EBUSY: return .busy(device: device, holders: DeviceHolders.of(device))
        case ENODEV, ENXIO: return .gone(device: device, "\(call): \(String(cString: strerror(code)))")
        default: return .io(device: device, "\(call) failed: \(String(cString: strerror(code)))")
        }
    }
}

/// Which processes have a device open: read from /proc/PID/fd, as `fuser` does.
public enum DeviceHolders {
    public struct Holder: Sendable, Equatable {
        public var pid: Int32
        public var command: String
    }

    public static func of(_ device: String) -> [Holder] {
        guard let target = realpath(device, nil) else { return [] }
        let targetPath = String(cString: target)
        free(target)
        let me = getpid()
        var result: [Holder] = []
        guard let proc = opendir("/proc") else { return [] }
        defer { closedir(proc) }
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), pid != me else { continue }
            guard let fds = opendir("/proc/\(pid)/fd") else { continue }
            var holds = false
            while !holds, let fd = readdir(fds) {
                let fdName = withUnsafeBytes(of: fd.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                var buf = [CChar](repeating: 0, count: 4096)
                let n = readlink("/proc/\(pid)/fd/\(fdName)", &buf, buf.count - 1)
                if n > 0, String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == targetPath { holds = true }
            }
            closedir(fds)
            if holds {
                let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                result.append(Holder(pid: pid, command: comm))
            }
        }
        return result
    }
}
