import CIPNSys
import Glibc

// Re-exports of the C shims under Swift names, so other files import only Glibc/Foundation.
@inline(__always) func ipnSendFDs(_ s: Int32, _ b: UnsafeRawPointer?, _ l: Int, _ f: UnsafePointer<Int32>?, _ n: Int32, _ flags: Int32) -> Int {
    ipn_send_fds(s, b, l, f, n, flags)
}
@inline(__always) func ipnRecvFDs(_ s: Int32, _ b: UnsafeMutableRawPointer?, _ l: Int, _ f: UnsafeMutablePointer<Int32>?, _ m: Int32, _ n: UnsafeMutablePointer<Int32>, _ t: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int {
    ipn_recv_fds(s, b, l, f, m, n, t, flags)
}
