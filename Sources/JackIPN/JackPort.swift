import CJackAPI
import Foundation
import MediaWire

/// A port as a JACK program holds it (`jack_port_t *`): one of its own, with the period's buffer, or another
/// client's, known by name, id, type and flags. Kept until the client closes, as JACK keeps them.
final class JackPort: @unchecked Sendable {
    let info: JackWire.PortInfo
    unowned let client: JackClient
    /// This period's samples (audio ports).
    let buffer: UnsafeMutablePointer<Float>
    /// This period's events (MIDI ports).
    let midi: MidiBuffer
    /// C strings handed out by jack_port_name / jack_port_short_name / jack_port_type: live as long as the port.
    let cName: UnsafeMutablePointer<CChar>
    let cShortName: UnsafeMutablePointer<CChar>
    let cType: UnsafeMutablePointer<CChar>
    /// Its aliases (at most two, as JACK): set by any client, so kept up to date by the server's events.
    var aliases: [String] {
        get { aliasLock.lock(); defer { aliasLock.unlock() }; return aliasStorage }
        set { aliasLock.lock(); aliasStorage = newValue; aliasLock.unlock() }
    }
    private var aliasStorage: [String]
    private let aliasLock = NSLock()
    /// What jack_port_set_latency_range set (per mode: capture, playback).
    var latency: [jack_latency_range_t] = [jack_latency_range_t(min: 0, max: 0), jack_latency_range_t(min: 0, max: 0)]

    init(info: JackWire.PortInfo, client: JackClient, frames: Int) {
        self.info = info
        self.aliasStorage = info.aliases
        self.client = client
        buffer = .allocate(capacity: frames)
        buffer.initialize(repeating: 0, count: frames)
        midi = MidiBuffer(frames: frames)
        cName = strdup(info.name)
        cShortName = strdup(String(info.name.split(separator: ":", maxSplits: 1).last ?? ""))
        cType = strdup(info.type)
        // The card's ports: capture latency on what it captures (outputs), playback latency on what it plays.
        let own = jack_latency_range_t(min: info.latency, max: info.latency), none = jack_latency_range_t(min: 0, max: 0)
        latency = info.flags & JackWire.PortFlag.isOutput != 0 ? [own, none] : [none, own]
    }

    deinit {
        buffer.deallocate()
        free(cName); free(cShortName); free(cType)
    }

    var isInput: Bool { info.flags & JackWire.PortFlag.isInput != 0 }
    var isAudio: Bool { info.type == JackWire.audioType }
    var handle: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    static func from(_ p: OpaquePointer?) -> JackPort? {
        guard let p else { return nil }
        return Unmanaged<JackPort>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }
}

/// A MIDI port's buffer for one period: events in time order, their bytes after them. Our own layout (JACK
/// leaves it opaque); the program reaches it only through the jack_midi_* functions.
final class MidiBuffer: @unchecked Sendable {
    struct Event { var time: UInt32; var offset: Int; var size: Int }
    let frames: Int
    let capacity: Int
    let data: UnsafeMutablePointer<UInt8>
    var events: [Event] = []
    var used = 0
    var lost: UInt32 = 0

    init(frames: Int) {
        self.frames = frames
        capacity = max(4096, frames * 4)
        data = .allocate(capacity: capacity)
        events.reserveCapacity(256)
    }
    deinit { data.deallocate() }

    func clear() { events.removeAll(keepingCapacity: true); used = 0 }

    /// Room for `size` bytes at `time`, in time order; nil (and counted as lost) when it does not fit.
    func reserve(time: UInt32, size: Int) -> UnsafeMutablePointer<UInt8>? {
        guard size > 0, Int(time) < frames, used + size <= capacity, events.last.map({ $0.time <= time }) ?? true else {
            lost += 1
            return nil
        }
        events.append(Event(time: time, offset: used, size: size))
        defer { used += size }
        return data + used
    }

    /// The opaque pointer a program holds.
    var handle: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
    static func from(_ p: UnsafeMutableRawPointer?) -> MidiBuffer? {
        guard let p else { return nil }
        return Unmanaged<MidiBuffer>.fromOpaque(p).takeUnretainedValue()
    }
}
