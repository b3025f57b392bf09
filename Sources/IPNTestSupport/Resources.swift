import Foundation
import Glibc

/// What a process holds that a leak would leave behind: its descriptors and its shared-memory
/// mappings, read from /proc. Every shared object of a bus (rings, pools) is a memfd: it never shows
/// in /dev/shm, only as a `/memfd:NAME (deleted)` link in /proc/PID/fd and as a mapping of that name
/// in /proc/PID/maps. A descriptor closed but still mapped (a missed munmap) shows only in the maps;
/// a mapping gone but its descriptor kept (a missed close) only in the descriptors.
public struct ProcessResources: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    /// Open descriptors by kind: `socket`, `pipe`, `anon_inode:[eventfd]`, `/memfd:ipn-pool (deleted)`,
    /// or the file's path (the numbers of sockets and pipes say nothing and are left out).
    public var descriptors: [String: Int]
    /// Mappings of memfds by name and size: `/memfd:ipn-inbox (deleted) 1052672 bytes`.
    public var memfdMappings: [String: Int]

    public var memfdDescriptors: [String: Int] { descriptors.filter { $0.key.hasPrefix("/memfd:") } }
    public var description: String {
        "pid \(pid): \(descriptors.values.reduce(0, +)) descriptors (\(memfdDescriptors.values.reduce(0, +)) memfd), "
            + "\(memfdMappings.values.reduce(0, +)) memfd mappings"
    }

    /// Reads them now; nil when the process is gone.
    public init?(of pid: Int32) {
        self.pid = pid
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"),
              let maps = Self.read("/proc/\(pid)/maps") else { return nil }
        var d: [String: Int] = [:]
        for fd in fds {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/\(pid)/fd/\(fd)", &buf, 4095)
            guard n > 0 else { continue }  // closed meanwhile (e.g. the directory listing's own descriptor)
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            d[Self.kind(target), default: 0] += 1
        }
        var m: [String: Int] = [:]
        for line in maps.split(separator: "\n") where line.contains("/memfd:") {
            // start-end perms offset dev inode path
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { continue }
            let range = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            let size = range.count == 2 ? range[1] - range[0] : 0
            m["\(fields[5].trimmingCharacters(in: .whitespaces)) \(size) bytes", default: 0] += 1
        }
        descriptors = d
        memfdMappings = m
    }

    /// A /proc file read to its end (they report no size, so read until read(2) says the end).
    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func kind(_ target: String) -> String {
        for prefix in ["socket:", "pipe:"] where target.hasPrefix(prefix) { return String(prefix.dropLast()) }
        return target
    }

    /// What `self` holds beyond `baseline` (and what it lacks), or nil when nothing differs. With
    /// `memfdOnly`, descriptors other than memfds are not compared (a test process opens pipes and
    /// files of its own meanwhile).
    public func difference(from baseline: ProcessResources, memfdOnly: Bool = false) -> String? {
        func diff(_ now: [String: Int], _ then: [String: Int]) -> [String] {
            Set(now.keys).union(then.keys).sorted().compactMap { k in
                let d = (now[k] ?? 0) - (then[k] ?? 0)
                return d == 0 ? nil : "\(d > 0 ? "+" : "")\(d) \(k)"
            }
        }
        let fds = diff(memfdOnly ? memfdDescriptors : descriptors, memfdOnly ? baseline.memfdDescriptors : baseline.descriptors)
        let maps = diff(memfdMappings, baseline.memfdMappings)
        guard !fds.isEmpty || !maps.isEmpty else { return nil }
        return (fds.isEmpty ? "" : "descriptors: " + fds.joined(separator: ", ") + (maps.isEmpty ? "" : "; "))
            + (maps.isEmpty ? "" : "mappings: " + maps.joined(separator: ", "))
    }
}

extension TestSupport {
    /// Waits until process `pid` holds again just what `baseline` recorded: the same descriptors (only
    /// memfds with `memfdOnly`) and the same memfd mappings. What it holds beyond that when the limit
    /// passes is a leak, and the error names it (e.g. "+1 /memfd:ipn-pool (deleted)").
    public static func waitForNoLeak(_ what: String, pid: Int32, baseline: ProcessResources, memfdOnly: Bool = false,
                                     seconds: Double = patience) throws {
        var last = "the process is gone"
        try waitUntil("\(what) holds nothing beyond its baseline (\(baseline))", seconds: seconds, lastSeen: { last }) {
            guard let now = ProcessResources(of: pid) else { return false }
            guard let d = now.difference(from: baseline, memfdOnly: memfdOnly) else { return true }
            last = d
            return false
        }
    }

    /// `ProcessResources` of a process that must exist.
    public static func resources(of pid: Int32, _ what: String) throws -> ProcessResources {
        guard let r = ProcessResources(of: pid) else { throw WaitTimeout(what: "\(what) (pid \(pid)) can be read in /proc", seconds: 0, lastSeen: "gone") }
        return r
    }
}
