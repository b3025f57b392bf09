import CIPNSys
import Glibc

/// A memfd mapping shared between processes: rings and pools live in these.
///
/// Owns its descriptor and mapping; both are released in `deinit`. A mapping made from a read-only
/// descriptor is PROT_READ and cannot be made writable by its holder.
final class SharedMemory {
    let fd: Int32
    let size: Int
    let base: UnsafeMutableRawPointer
    let writable: Bool

    /// Creates a new sealed-size memfd of `size` bytes, mapped read-write. With `sealLater`, the seal on the
    /// seals is left for whoever maps it next (a pool: the host adds `F_SEAL_FUTURE_WRITE` once it has mapped
    /// it, so nobody but the sender and the host can ever write it).
    init(creating name: String, size: Int, sealLater: Bool = false) throws(IPNError) {
        let fd = try Sys.check("memfd_create", ipn_memfd(name))
        guard ftruncate(fd, off_t(size)) == 0 else {
            let e = Sys.lastErrno
            Sys.close(fd)
            throw .system(call: "ftruncate", errno: e)
        }
        // Nobody may shrink it under a reader's feet (SIGBUS) or grow it.
        _ = ipn_add_seals(fd, Int32(IPN_SEAL_SHRINK | IPN_SEAL_GROW | (sealLater ? 0 : IPN_SEAL_SEAL)))
        // A memfd is created 0777: anyone holding even a read-only descriptor could reopen it read-write
        // through /proc/self/fd. Only its owner may (and seals stop the owner's other processes too).
        _ = fchmod(fd, 0o644)
        do {
            self.base = try Self.map(fd: fd, size: size, writable: true)
        } catch {
            Sys.close(fd)
            throw error
        }
        self.fd = fd
        self.size = size
        self.writable = true
    }

    /// Maps a received descriptor. The size comes from fstat, never from the peer.
    /// Takes ownership of `fd`. With `requireSealed`, the memfd must be sealed against shrinking.
    init(adopting fd: Int32, writable: Bool, expectedMinimum: Int, requireSealed: Bool) throws(IPNError) {
        do throws(IPNError) {
            let size = try Sys.fileSize(fd)
            guard size >= expectedMinimum, size > 0 else {
                throw IPNError.protocolViolation("shared memory of \(size) bytes is smaller than the \(expectedMinimum) announced")
            }
            if requireSealed {
                let seals = ipn_get_seals(fd)
                guard seals >= 0, seals & Int32(IPN_SEAL_SHRINK) != 0 else {
                    throw IPNError.protocolViolation("shared memory is not sealed against shrinking")
                }
                // Memory this process only reads (another node's pool) must be closed to every new writer.
                guard writable || seals & Int32(IPN_SEAL_FUTURE_WRITE) != 0 else {
                    throw IPNError.protocolViolation("shared memory is not sealed against writing")
                }
            }
            self.base = try Self.map(fd: fd, size: size, writable: writable)
            self.size = size
        } catch {
            Sys.close(fd)
            throw error
        }
        self.fd = fd
        self.writable = writable
    }

    private static func map(fd: Int32, size: Int, writable: Bool) throws(IPNError) -> UnsafeMutableRawPointer {
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        // Populate now: a first touch per page on the data path costs more than the copy itself
        // (measured: 64 KiB messages went from ~56 µs to a few µs of sender CPU).
        let p = mmap(nil, size, prot, MAP_SHARED | MAP_POPULATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw .system(call: "mmap", errno: Sys.lastErrno) }
        return p
    }

    /// Closes the memfd to every writer to come (`F_SEAL_FUTURE_WRITE`, then the seal on the seals): mappings
    /// made so far, the sender's and this one, stay writable; no one else can map it writable or write(2) it,
    /// however they reopen it.
    func sealAgainstNewWriters() throws(IPNError) {
        if ipn_add_seals(fd, Int32(IPN_SEAL_FUTURE_WRITE | IPN_SEAL_SEAL)) != 0 {
            throw .protocolViolation("the pool could not be sealed against writers (\(Sys.lastErrno)): it must come unsealed")
        }
        let want = Int32(IPN_SEAL_FUTURE_WRITE | IPN_SEAL_SEAL | IPN_SEAL_SHRINK | IPN_SEAL_GROW)
        guard ipn_get_seals(fd) & want == want else { throw .protocolViolation("the pool's seals did not hold") }
    }

    deinit {
        munmap(base, size)
        Sys.close(fd)
    }
}
