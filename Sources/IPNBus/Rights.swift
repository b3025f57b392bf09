/// The three IPN rights, read from the bus file's permission bits: `r` receive, `w` send, `x` manage.
public struct Rights: OptionSet, Sendable, Hashable, CustomStringConvertible, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let receive = Rights(rawValue: 1)
    public static let send = Rights(rawValue: 2)
    public static let manage = Rights(rawValue: 4)
    public static let all: Rights = [.receive, .send, .manage]

    public var description: String {
        var parts: [String] = []
        if contains(.receive) { parts.append("receive (r)") }
        if contains(.send) { parts.append("send (w)") }
        if contains(.manage) { parts.append("manage (x)") }
        return parts.isEmpty ? "none" : parts.joined(separator: " and ")
    }

    /// `rwx`-style short form.
    public var letters: String {
        (contains(.receive) ? "r" : "-") + (contains(.send) ? "w" : "-") + (contains(.manage) ? "x" : "-")
    }

    /// The rights a process with `uid`/`gids` has on a file with `mode`, owned by `owner`:`group`.
    ///
    /// Same rule as the kernel's permission check on the socket inode: the owner class if the uid
    /// matches, else the group class if any of the groups matches, else other. Root may receive and
    /// send and manage always (it could unlink the bus file anyway).
    public static func granted(mode: UInt32, owner: UInt32, group: UInt32, uid: UInt32, gids: [UInt32]) -> Rights {
        if uid == 0 {
            return .all
        }
        let bits: UInt32
        if uid == owner { bits = (mode >> 6) & 7 } else if gids.contains(group) { bits = (mode >> 3) & 7 } else { bits = mode & 7 }
        var r: Rights = []
        if bits & 4 != 0 { r.insert(.receive) }
        if bits & 2 != 0 { r.insert(.send) }
        if bits & 1 != 0 { r.insert(.manage) }
        return r
    }
}
