import MediaWire

/// Which video stream of a bus a viewer shows (`mediajack view`, `mediajack serve`): the one asked
/// for, else the first one described; when it ends, the oldest other video stream still live, so a
/// viewer follows whichever publisher is on the bus.
public struct VideoStreamChoice {
    public let wanted: UInt32?
    /// The stream shown now.
    public private(set) var current: UInt32?
    private var live: [(id: UInt32, description: StreamDescription)] = []  // oldest first

    public init(wanted: UInt32?) { self.wanted = wanted }

    /// A stream was described. Returns true when it is to be shown now: nothing is shown yet, or it
    /// is the shown stream described anew.
    public mutating func added(_ id: UInt32, _ d: StreamDescription) -> Bool {
        guard d.kind == .video, wanted.map({ $0 == id }) ?? true else { return false }
        live.removeAll { $0.id == id }
        live.append((id, d))
        guard current == nil || current == id else { return false }
        current = id
        return true
    }

    /// A stream ended. Returns true when it was the shown one (nothing is shown now).
    public mutating func ended(_ id: UInt32) -> Bool {
        live.removeAll { $0.id == id }
        guard current == id else { return false }
        current = nil
        return true
    }

    /// The stream to show next (the oldest live one), which becomes the current one; nil when none is live.
    public mutating func next() -> (id: UInt32, description: StreamDescription)? {
        guard let n = live.first else { return nil }
        current = n.id
        return n
    }

    /// A stream that cannot be shown: forgotten until it is described again.
    public mutating func drop(_ id: UInt32) {
        live.removeAll { $0.id == id }
        if current == id { current = nil }
    }
}
