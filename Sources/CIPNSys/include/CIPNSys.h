// Thin C plumbing for IPNBus: things Swift cannot call directly (cmsg macros, variadic fcntl,
// abstract socket addresses, SO_PEERCRED, posix_spawn with a new session). No logic lives here.
#ifndef CIPNSYS_H
#define CIPNSYS_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    IPN_SEAL_SEAL = 0x0001,
    IPN_SEAL_SHRINK = 0x0002,
    IPN_SEAL_GROW = 0x0004,
    IPN_SEAL_WRITE = 0x0008,
    /// F_SEAL_FUTURE_WRITE (Linux 5.1): no new writable mapping and no write(2); mappings made before stay writable.
    IPN_SEAL_FUTURE_WRITE = 0x0010,
};

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING). Returns fd or -1 (errno set).
int ipn_memfd(const char *name);
/// fcntl(fd, F_ADD_SEALS, seals).
int ipn_add_seals(int fd, int seals);
/// fcntl(fd, F_GET_SEALS).
int ipn_get_seals(int fd);
/// fcntl(fd, F_GETFL) & O_ACCMODE.
int ipn_access_mode(int fd);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int ipn_eventfd(void);
/// Adds 1 to the eventfd counter. Returns 0 or -1.
int ipn_eventfd_signal(int fd);
/// Reads (clears) the eventfd counter; returns the value or 0 when it was already clear.
uint64_t ipn_eventfd_drain(int fd);

/// epoll_create1(EPOLL_CLOEXEC).
int ipn_epoll_create(void);
/// Adds fd for EPOLLIN (level-triggered) with a 64-bit token.
int ipn_epoll_add(int epfd, int fd, uint64_t token);
int ipn_epoll_remove(int epfd, int fd);
/// epoll_wait; writes up to `max` tokens; returns how many (0 on timeout, -1 on error).
int ipn_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms);
/// poll(fd, POLLIN) for up to timeout_ms; 1 readable, 0 timeout, -1 error.
int ipn_poll_readable(int fd, int timeout_ms);

/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC) with one watch on the directory `dir` for entries created in it,
/// moved into it or whose metadata changed (IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR). The kernel also
/// reports the directory itself going away (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, then IN_IGNORED).
/// Returns the descriptor or -1 (errno set).
int ipn_inotify_watch_directory(const char *dir);

/// The bits of `struct inotify_event.mask` a watcher tells apart (the kernel's values; shim.c checks them),
/// and the size of the event's fixed part (wd, mask, cookie, len), which its `len` bytes of name follow.
enum {
    IPN_INOTIFY_ATTRIB = 0x00000004,
    IPN_INOTIFY_MOVED_TO = 0x00000080,
    IPN_INOTIFY_CREATE = 0x00000100,
    IPN_INOTIFY_DELETE_SELF = 0x00000400,
    IPN_INOTIFY_MOVE_SELF = 0x00000800,
    IPN_INOTIFY_UNMOUNT = 0x00002000,
    IPN_INOTIFY_Q_OVERFLOW = 0x00004000,
    IPN_INOTIFY_IGNORED = 0x00008000,
    IPN_INOTIFY_EVENT_SIZE = 16,
};

/// setvbuf(stdout, NULL, _IOLBF, 0): standard output goes out at every newline, into a pipe or a file too
/// (stdio would otherwise keep it until its buffer fills or the process exits). Call before any output.
/// Returns 0 or non-zero.
int ipn_stdout_line_buffered(void);

/// socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0).
int ipn_seqpacket_socket(void);
/// bind to an abstract address ("\0" + name). 
int ipn_bind_abstract(int fd, const char *name);
/// connect to an abstract address ("\0" + name).
int ipn_connect_abstract(int fd, const char *name);
/// bind to a filesystem path (sun_path, max 107 bytes).
int ipn_bind_path(int fd, const char *path);
/// Largest sun_path this platform accepts.
int ipn_max_path_length(void);
/// accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), retrying EINTR.
int ipn_accept(int fd);
/// pipe2(fds, O_CLOEXEC).
int ipn_pipe_cloexec(int fds[2]);
/// SO_PEERCRED of a connected Unix socket.
int ipn_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
/// SO_PEERGROUPS: supplementary groups of the peer at connect time. Returns count or -1.
int ipn_peer_groups(int fd, uint32_t *groups, int max);
/// setsockopt SO_SNDBUF/SO_RCVBUF.
int ipn_set_buffer_sizes(int fd, int bytes);

/// sendmsg with up to 4 descriptors in SCM_RIGHTS. MSG_NOSIGNAL always; flags may add MSG_DONTWAIT.
ssize_t ipn_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags);
/// recvmsg with MSG_CMSG_CLOEXEC, collecting up to `maxfds` descriptors (extra ones are closed).
/// Returns the byte count, 0 on EOF, -1 on error. *truncated is IPN_TRUNCATED_DATA when the message was
/// longer than `len` (MSG_TRUNC), else IPN_TRUNCATED_FDS when descriptors beyond the control buffer were
/// dropped by the kernel (MSG_CTRUNC), else 0.
ssize_t ipn_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated, int flags);

enum { IPN_TRUNCATED_DATA = 1, IPN_TRUNCATED_FDS = 2 };

/// open(path, O_PATH | O_CLOEXEC): a descriptor of the file itself, which needs search permission on every
/// directory above it and no permission on the file. Returns fd or -1 (errno set).
int ipn_open_path_only(const char *path);

/// posix_spawn `path` in a new session (POSIX_SPAWN_SETSID) with stdin/stdout/stderr on /dev/null
/// and `status_fd` duplicated onto fd 3. Returns the pid or -1 (errno set).
pid_t ipn_spawn_detached(const char *path, char *const argv[], char *const envp[], int status_fd);
/// Starts `path` with `argv` in this session, its standard input, output and error the given descriptors
/// (-1: /dev/null). -1 with errno on failure.
pid_t ipn_spawn_with(const char *path, char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd);

/// Creates (or attaches to) the TAP interface `name` (IFF_TAP | IFF_NO_PI) through /dev/net/tun; an empty
/// name lets the kernel pick. The actual name is written back into `name` (16 bytes). `persistent` sets
/// TUNSETPERSIST. Returns a non-blocking, close-on-exec descriptor, or -errno.
int ipn_tap_open(char *name, int persistent);
/// The same with IFF_VNET_HDR and checksum/TSO offloads: frames carry a 10-byte virtio-net header and
/// may be whole GSO segments (up to 64 KiB).
int ipn_tap_open_vnet(char *name, int persistent);
/// An AF_PACKET raw socket on interface `name` (all protocols), in promiscuous mode, non-blocking.
/// Returns the descriptor or -errno (-ENODEV: no such interface).
int ipn_packet_open(const char *name);
/// Turns on PACKET_VNET_HDR: frames are received and sent with a virtio-net header. 0 or -errno.
int ipn_packet_vnet(int fd);
/// Receives one frame from a packet socket; *outgoing is set for frames this host transmitted.
/// Returns the length, or -errno (-EAGAIN when none is waiting).
ssize_t ipn_packet_recv(int fd, void *buffer, size_t length, int *outgoing);
/// Sets IFF_UP on an interface (in this network namespace). 0 or -errno.
int ipn_interface_up(const char *name);

/// CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID).
uint64_t ipn_thread_cpu_ns(void);
/// CLOCK_MONOTONIC in nanoseconds.
uint64_t ipn_monotonic_ns(void);

/// ThreadSanitizer annotations: a happens-before edge through `addr` (a lock the sanitizer cannot
/// see, such as Synchronization's Mutex on Linux, which waits with futex). No-ops without TSan.
void ipn_tsan_acquire(void *addr);
void ipn_tsan_release(void *addr);

#endif
