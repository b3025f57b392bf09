import CJackAPI
import Glibc

// JACK's MIDI port buffers (jack/midiport.h) on our `MidiBuffer`. Events stay within the client for now:
// jackd-ipn does not carry MIDI between clients yet (docs/audio-bus.md).

@_cdecl("jack_midi_get_event_count")
public func ipnjack_midi_get_event_count(_ buffer: UnsafeMutableRawPointer?) -> UInt32 { UInt32(MidiBuffer.from(buffer)?.events.count ?? 0) }

/// ENODATA when there is no such event; `event` is left untouched (jack_midisine asks for event 0 of an empty buffer).
@_cdecl("jack_midi_event_get")
public func ipnjack_midi_event_get(_ event: UnsafeMutablePointer<jack_midi_event_t>?, _ buffer: UnsafeMutableRawPointer?, _ index: UInt32) -> Int32 {
    guard let event, let b = MidiBuffer.from(buffer) else { return -EINVAL }
    guard Int(index) < b.events.count else { return -ENODATA }
    let e = b.events[Int(index)]
    event.pointee = jack_midi_event_t(time: e.time, size: e.size, buffer: b.data + e.offset)
    return 0
}

@_cdecl("jack_midi_clear_buffer")
public func ipnjack_midi_clear_buffer(_ buffer: UnsafeMutableRawPointer?) { MidiBuffer.from(buffer)?.clear() }

@_cdecl("jack_midi_reset_buffer")
public func ipnjack_midi_reset_buffer(_ buffer: UnsafeMutableRawPointer?) {
    guard let b = MidiBuffer.from(buffer) else { return }
    b.clear()
    b.lost = 0
}

@_cdecl("jack_midi_max_event_size")
public func ipnjack_midi_max_event_size(_ buffer: UnsafeMutableRawPointer?) -> Int {
    guard let b = MidiBuffer.from(buffer) else { return 0 }
    return b.capacity - b.used
}

@_cdecl("jack_midi_event_reserve")
public func ipnjack_midi_event_reserve(_ buffer: UnsafeMutableRawPointer?, _ time: jack_nframes_t, _ size: Int) -> UnsafeMutablePointer<jack_midi_data_t>? {
    MidiBuffer.from(buffer)?.reserve(time: time, size: size)
}

@_cdecl("jack_midi_event_write")
public func ipnjack_midi_event_write(_ buffer: UnsafeMutableRawPointer?, _ time: jack_nframes_t, _ data: UnsafePointer<jack_midi_data_t>?, _ size: Int) -> Int32 {
    guard let data, let b = MidiBuffer.from(buffer) else { return -EINVAL }
    guard let dst = b.reserve(time: time, size: size) else { return -ENOBUFS }
    dst.update(from: data, count: size)
    return 0
}

@_cdecl("jack_midi_get_lost_event_count")
public func ipnjack_midi_get_lost_event_count(_ buffer: UnsafeMutableRawPointer?) -> UInt32 { MidiBuffer.from(buffer)?.lost ?? 0 }
