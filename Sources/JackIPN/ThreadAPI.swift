import CJackAPI
import Glibc

// JACK's thread helpers (jack/thread.h) and the callback-less process loop (jack_cycle_wait/signal).
// Threads are plain pthreads, real-time (SCHED_FIFO) when asked and permitted.

@_cdecl("jack_client_create_thread")
public func ipnjack_client_create_thread(_ c: OpaquePointer?, _ thread: UnsafeMutablePointer<pthread_t>?, _ priority: Int32, _ realtime: Int32,
                                         _ start: (@convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?)?,
                                         _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let thread, let start else { return EINVAL }
    let r = pthread_create(thread, nil, start, arg)
    if r == 0, realtime != 0 { _ = ipnjack_acquire_real_time_scheduling(thread.pointee, priority) }
    return r
}

@_cdecl("jack_client_stop_thread")
public func ipnjack_client_stop_thread(_ c: OpaquePointer?, _ thread: pthread_t) -> Int32 { pthread_join(thread, nil) }

@_cdecl("jack_client_kill_thread")
public func ipnjack_client_kill_thread(_ c: OpaquePointer?, _ thread: pthread_t) -> Int32 {
    _ = pthread_cancel(thread)
    return pthread_join(thread, nil)
}

@_cdecl("jack_acquire_real_time_scheduling")
public func ipnjack_acquire_real_time_scheduling(_ thread: pthread_t, _ priority: Int32) -> Int32 {
    var param = sched_param(sched_priority: max(1, min(priority, 98)))
    return pthread_setschedparam(thread, SCHED_FIFO, &param) == 0 ? 0 : -1
}

@_cdecl("jack_drop_real_time_scheduling")
public func ipnjack_drop_real_time_scheduling(_ thread: pthread_t) -> Int32 {
    var param = sched_param(sched_priority: 0)
    return pthread_setschedparam(thread, SCHED_OTHER, &param) == 0 ? 0 : -1
}

/// The process thread's priority (jackd2's default is 10 below the server's; ours runs at 60).
@_cdecl("jack_client_real_time_priority") public func ipnjack_client_real_time_priority(_ c: OpaquePointer?) -> Int32 { 60 }
@_cdecl("jack_client_max_real_time_priority") public func ipnjack_client_max_real_time_priority(_ c: OpaquePointer?) -> Int32 { 69 }

@_cdecl("jack_port_type_get_buffer_size")
public func ipnjack_port_type_get_buffer_size(_ c: OpaquePointer?, _ type: UnsafePointer<CChar>?) -> Int {
    // Audio and MIDI ports both take a period of 32-bit slots.
    (client(c)?.period ?? 0) * 4
}

// A client that runs its own process loop (Ardour does): our thread runs it once active, and in it the
// program waits for each period with jack_cycle_wait and hands it back with jack_cycle_signal.
@_cdecl("jack_set_process_thread")
public func ipnjack_set_process_thread(_ c: OpaquePointer?, _ cb: JackThreadCallback?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let cl = client(c), !cl.active, cl.process == nil else { return -1 }  // one or the other, before activation
    cl.processThread = cb.map { ($0, arg) }
    return 0
}

@_cdecl("jack_cycle_wait")
public func ipnjack_cycle_wait(_ c: OpaquePointer?) -> jack_nframes_t { client(c)?.cycleWait() ?? 0 }

@_cdecl("jack_cycle_signal")
public func ipnjack_cycle_signal(_ c: OpaquePointer?, _ status: Int32) { client(c)?.cycleSignal(status) }

@_cdecl("jack_thread_wait")
public func ipnjack_thread_wait(_ c: OpaquePointer?, _ status: Int32) -> jack_nframes_t {
    JackLog.notImplemented("jack_thread_wait")
    return 0
}
