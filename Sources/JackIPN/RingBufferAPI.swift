import CJackAPI
import Glibc
import Atomics

// JACK's lock-free single-reader single-writer ring buffer (jack/ringbuffer.h). Programs read the struct's
// fields directly (jack_rec reads `buf` and `size`), so the layout is the header's. Its size is a power of two;
// one byte stays free so full and empty differ. The writer publishes with a release store of write_ptr, the
// reader with one of read_ptr; each side loads the other's with acquire.

private func writePtr(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>) -> Int {
    Int(atomicLoad(UnsafeMutableRawPointer(rb) + MemoryLayout<jack_ringbuffer_t>.offset(of: \.write_ptr)!))
}
private func readPtr(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>) -> Int {
    Int(atomicLoad(UnsafeMutableRawPointer(rb) + MemoryLayout<jack_ringbuffer_t>.offset(of: \.read_ptr)!))
}
private func setWritePtr(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>, _ v: Int) {
    atomicStore(UnsafeMutableRawPointer(rb) + MemoryLayout<jack_ringbuffer_t>.offset(of: \.write_ptr)!, v)
}
private func setReadPtr(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>, _ v: Int) {
    atomicStore(UnsafeMutableRawPointer(rb) + MemoryLayout<jack_ringbuffer_t>.offset(of: \.read_ptr)!, v)
}
private func atomicLoad(_ p: UnsafeMutableRawPointer) -> Int {
    UnsafeAtomic<Int>(at: p.assumingMemoryBound(to: Int.AtomicRepresentation.self)).load(ordering: .acquiring)
}
private func atomicStore(_ p: UnsafeMutableRawPointer, _ v: Int) {
    UnsafeAtomic<Int>(at: p.assumingMemoryBound(to: Int.AtomicRepresentation.self)).store(v, ordering: .releasing)
}

@_cdecl("jack_ringbuffer_create")
public func ipnjack_ringbuffer_create(_ sz: Int) -> UnsafeMutablePointer<jack_ringbuffer_t>? {
    guard sz > 0, sz < Int.max / 4 else { return nil }
    var size = 1
    while size < sz + 1 { size <<= 1 }
    guard let rb = calloc(1, MemoryLayout<jack_ringbuffer_t>.size)?.assumingMemoryBound(to: jack_ringbuffer_t.self),
          let buf = malloc(size) else { return nil }
    rb.pointee.buf = buf.assumingMemoryBound(to: CChar.self)
    rb.pointee.size = size
    rb.pointee.size_mask = size - 1
    rb.pointee.write_ptr = 0
    rb.pointee.read_ptr = 0
    rb.pointee.mlocked = 0
    return rb
}

@_cdecl("jack_ringbuffer_free")
public func ipnjack_ringbuffer_free(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?) {
    guard let rb else { return }
    if rb.pointee.mlocked != 0 { munlock(rb.pointee.buf, rb.pointee.size) }
    free(rb.pointee.buf)
    free(rb)
}

@_cdecl("jack_ringbuffer_mlock")
public func ipnjack_ringbuffer_mlock(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?) -> Int32 {
    guard let rb, mlock(rb.pointee.buf, rb.pointee.size) == 0 else { return -1 }
    rb.pointee.mlocked = 1
    return 0
}

@_cdecl("jack_ringbuffer_reset")
public func ipnjack_ringbuffer_reset(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?) {
    guard let rb else { return }
    setReadPtr(rb, 0); setWritePtr(rb, 0)
}

@_cdecl("jack_ringbuffer_reset_size")
public func ipnjack_ringbuffer_reset_size(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ sz: Int) {
    guard let rb, sz <= rb.pointee.size, sz > 0, sz & (sz - 1) == 0 else { return }
    rb.pointee.size = sz
    rb.pointee.size_mask = sz - 1
    setReadPtr(rb, 0); setWritePtr(rb, 0)
}

@_cdecl("jack_ringbuffer_read_space")
public func ipnjack_ringbuffer_read_space(_ rb: UnsafePointer<jack_ringbuffer_t>?) -> Int {
    guard let rb else { return 0 }
    let r = UnsafeMutablePointer(mutating: rb)
    return (writePtr(r) - readPtr(r)) & rb.pointee.size_mask
}

@_cdecl("jack_ringbuffer_write_space")
public func ipnjack_ringbuffer_write_space(_ rb: UnsafePointer<jack_ringbuffer_t>?) -> Int {
    guard let rb else { return 0 }
    let r = UnsafeMutablePointer(mutating: rb)
    return (readPtr(r) - writePtr(r) - 1) & rb.pointee.size_mask
}

@_cdecl("jack_ringbuffer_read_advance")
public func ipnjack_ringbuffer_read_advance(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ cnt: Int) {
    guard let rb else { return }
    setReadPtr(rb, (readPtr(rb) + cnt) & rb.pointee.size_mask)
}

@_cdecl("jack_ringbuffer_write_advance")
public func ipnjack_ringbuffer_write_advance(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ cnt: Int) {
    guard let rb else { return }
    setWritePtr(rb, (writePtr(rb) + cnt) & rb.pointee.size_mask)
}

/// The readable bytes as up to two pieces (the second when they wrap).
@_cdecl("jack_ringbuffer_get_read_vector")
public func ipnjack_ringbuffer_get_read_vector(_ rb: UnsafePointer<jack_ringbuffer_t>?, _ vec: UnsafeMutablePointer<jack_ringbuffer_data_t>?) {
    guard let rb, let vec else { return }
    let r = UnsafeMutablePointer(mutating: rb)
    let start = readPtr(r), count = ipnjack_ringbuffer_read_space(rb), size = rb.pointee.size
    let first = min(count, size - start)
    vec[0] = jack_ringbuffer_data_t(buf: rb.pointee.buf + start, len: first)
    vec[1] = jack_ringbuffer_data_t(buf: rb.pointee.buf, len: count - first)
}

@_cdecl("jack_ringbuffer_get_write_vector")
public func ipnjack_ringbuffer_get_write_vector(_ rb: UnsafePointer<jack_ringbuffer_t>?, _ vec: UnsafeMutablePointer<jack_ringbuffer_data_t>?) {
    guard let rb, let vec else { return }
    let r = UnsafeMutablePointer(mutating: rb)
    let start = writePtr(r), count = ipnjack_ringbuffer_write_space(rb), size = rb.pointee.size
    let first = min(count, size - start)
    vec[0] = jack_ringbuffer_data_t(buf: rb.pointee.buf + start, len: first)
    vec[1] = jack_ringbuffer_data_t(buf: rb.pointee.buf, len: count - first)
}

private func copyOut(_ rb: UnsafePointer<jack_ringbuffer_t>, _ dest: UnsafeMutablePointer<CChar>, _ cnt: Int) -> Int {
    // On the stack: process callbacks call this (jack_rec does).
    var vec = (jack_ringbuffer_data_t(buf: nil, len: 0), jack_ringbuffer_data_t(buf: nil, len: 0))
    withUnsafeMutableBytes(of: &vec) { ipnjack_ringbuffer_get_read_vector(rb, $0.baseAddress!.assumingMemoryBound(to: jack_ringbuffer_data_t.self)) }
    let n = min(cnt, vec.0.len + vec.1.len)
    let a = min(n, vec.0.len)
    if a > 0 { dest.update(from: vec.0.buf, count: a) }
    if n > a { (dest + a).update(from: vec.1.buf, count: n - a) }
    return n
}

@_cdecl("jack_ringbuffer_read")
public func ipnjack_ringbuffer_read(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ dest: UnsafeMutablePointer<CChar>?, _ cnt: Int) -> Int {
    guard let rb, let dest else { return 0 }
    let n = copyOut(rb, dest, cnt)
    ipnjack_ringbuffer_read_advance(rb, n)
    return n
}

@_cdecl("jack_ringbuffer_peek")
public func ipnjack_ringbuffer_peek(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ dest: UnsafeMutablePointer<CChar>?, _ cnt: Int) -> Int {
    guard let rb, let dest else { return 0 }
    return copyOut(rb, dest, cnt)
}

@_cdecl("jack_ringbuffer_write")
public func ipnjack_ringbuffer_write(_ rb: UnsafeMutablePointer<jack_ringbuffer_t>?, _ src: UnsafePointer<CChar>?, _ cnt: Int) -> Int {
    guard let rb, let src else { return 0 }
    var vec = (jack_ringbuffer_data_t(buf: nil, len: 0), jack_ringbuffer_data_t(buf: nil, len: 0))
    withUnsafeMutableBytes(of: &vec) { ipnjack_ringbuffer_get_write_vector(rb, $0.baseAddress!.assumingMemoryBound(to: jack_ringbuffer_data_t.self)) }
    let n = min(cnt, vec.0.len + vec.1.len)
    let a = min(n, vec.0.len)
    if a > 0 { vec.0.buf.update(from: src, count: a) }
    if n > a { vec.1.buf.update(from: src + a, count: n - a) }
    ipnjack_ringbuffer_write_advance(rb, n)
    return n
}
