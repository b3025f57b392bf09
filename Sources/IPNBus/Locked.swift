import CIPNSys
import Synchronization

/// A value guarded by a `Mutex`, shared by threads: `Sendable`, checked by the compiler.
///
/// It is Synchronization's `Mutex` plus what ThreadSanitizer needs: on Linux the Mutex waits with
/// futex, which the sanitizer cannot see, so it would report every guarded access as a race. Each
/// critical section therefore tells it "acquired" at its start and "released" at its end (no-ops in a
/// build without the sanitizer).
public final class Locked<Value>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: consuming sending Value) { mutex = Mutex(value) }

    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        let address = Unmanaged.passUnretained(self).toOpaque()
        return try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            ipn_tsan_acquire(address)
            defer { ipn_tsan_release(address) }
            return try body(&value)
        }
    }
}
