#define _GNU_SOURCE
#include "CIPNSys.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <arpa/inet.h>

int ipn_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }
int ipn_add_seals(int fd, int seals) { return fcntl(fd, F_ADD_SEALS, seals); }
int ipn_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }
int ipn_access_mode(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : (fl & O_ACCMODE);
}

int ipn_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int ipn_eventfd_signal(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == sizeof one) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0; /* counter saturated: already signalled */
        return -1;
    }
}
uint64_t ipn_eventfd_drain(int fd) {
    uint64_t v = 0;
    for (;;) {
        ssize_t n = read(fd, &v, sizeof v);
        if (n == sizeof v) return v;
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

int ipn_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int ipn_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = token};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}
int ipn_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }
int ipn_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) tokens[i] = evs[i].data.u64;
    return n;
}
int ipn_poll_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    return n < 0 ? -1 : (n > 0 ? 1 : 0);
}

_Static_assert(IPN_INOTIFY_ATTRIB == IN_ATTRIB && IPN_INOTIFY_MOVED_TO == IN_MOVED_TO && IPN_INOTIFY_CREATE == IN_CREATE
                   && IPN_INOTIFY_DELETE_SELF == IN_DELETE_SELF && IPN_INOTIFY_MOVE_SELF == IN_MOVE_SELF
                   && IPN_INOTIFY_UNMOUNT == IN_UNMOUNT && IPN_INOTIFY_Q_OVERFLOW == IN_Q_OVERFLOW
                   && IPN_INOTIFY_IGNORED == IN_IGNORED && IPN_INOTIFY_EVENT_SIZE == sizeof(struct inotify_event),
               "CIPNSys.h's inotify values are the kernel's");

int ipn_inotify_watch_directory(const char *dir) {
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int ipn_stdout_line_buffered(void) { return setvbuf(stdout, NULL, _IOLBF, 0); }

int ipn_seqpacket_socket(void) { return socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0); }

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n > sizeof a->sun_path - 1) n = sizeof a->sun_path - 1;
    memcpy(a->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}
int ipn_bind_abstract(int fd, const char *name) {
    struct sockaddr_un a;
    socklen_t l = abstract_addr(&a, name);
    return bind(fd, (struct sockaddr *)&a, l);
}
int ipn_connect_abstract(int fd, const char *name) {
    struct sockaddr_un a;
    socklen_t l = abstract_addr(&a, name);
    for (;;) {
        int r = connect(fd, (struct sockaddr *)&a, l);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}
int ipn_bind_path(int fd, const char *path) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof a.sun_path) { errno = ENAMETOOLONG; return -1; }
    memcpy(a.sun_path, path, n);
    return bind(fd, (struct sockaddr *)&a, sizeof a);
}
int ipn_max_path_length(void) { return (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1; }

int ipn_accept(int fd) {
    for (;;) {
        int r = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}
int ipn_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int ipn_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred c;
    socklen_t l = sizeof c;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &l) < 0) return -1;
    *pid = c.pid; *uid = c.uid; *gid = c.gid;
    return 0;
}
int ipn_peer_groups(int fd, uint32_t *groups, int max) {
    socklen_t l = (socklen_t)(max * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &l) < 0) return -1;
    return (int)(l / sizeof(gid_t));
}
int ipn_set_buffer_sizes(int fd, int bytes) {
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) < 0) return -1;
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

ssize_t ipn_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union { char b[CMSG_SPACE(4 * sizeof(int))]; struct cmsghdr align; } ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 4) { errno = EINVAL; return -1; }
    if (nfds > 0) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.b;
        m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &m, flags | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        return n;
    }
}

ssize_t ipn_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated, int flags) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union { char b[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr align; } ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t n;
    *nfds = 0;
    *truncated = 0;
    for (;;) {
        n = recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    if (n < 0) return n;
    if (m.msg_flags & MSG_TRUNC) *truncated = IPN_TRUNCATED_DATA;
    else if (m.msg_flags & MSG_CTRUNC) *truncated = IPN_TRUNCATED_FDS;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = in[i];
            else close(in[i]);
        }
    }
    return n;
}

extern char **environ;
pid_t ipn_spawn_detached(const char *path, char *const argv[], char *const envp[], int status_fd) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    pid_t pid = -1;
    int rc;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (status_fd >= 0) posix_spawn_file_actions_adddup2(&fa, status_fd, 3);
    rc = posix_spawn(&pid, path, &fa, &at, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) { errno = rc; return -1; }
    return pid;
}

pid_t ipn_spawn_with(const char *path, char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd) {
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
    posix_spawn_file_actions_init(&fa);
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0) posix_spawn_file_actions_adddup2(&fa, fds[i], i);
        else posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) { errno = rc; return -1; }
    return pid;
}

uint64_t ipn_thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
uint64_t ipn_monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int tap_open(char *name, int persistent, int vnet) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(fd); return -e; }
    if (persistent && ioctl(fd, TUNSETPERSIST, 1) < 0) { int e = errno; close(fd); return -e; }
    if (vnet) {
        int size = 10;
        unsigned offload = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 || ioctl(fd, TUNSETOFFLOAD, offload) < 0) { int e = errno; close(fd); return -e; }
    }
    memcpy(name, ifr.ifr_name, IFNAMSIZ);
    return fd;
}
int ipn_tap_open(char *name, int persistent) { return tap_open(name, persistent, 0); }
int ipn_tap_open_vnet(char *name, int persistent) { return tap_open(name, persistent, 1); }

int ipn_packet_open(const char *name) {
    unsigned int index = if_nametoindex(name);
    if (index == 0) return -ENODEV;
    // Protocol 0 until bound: nothing from other interfaces is queued before the bind.
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_ll addr;
    memset(&addr, 0, sizeof addr);
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = (int)index;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { int e = errno; close(fd); return -e; }
    struct packet_mreq mreq;
    memset(&mreq, 0, sizeof mreq);
    mreq.mr_ifindex = (int)index;
    mreq.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int ipn_packet_vnet(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof on) < 0 ? -errno : 0;
}

ssize_t ipn_packet_recv(int fd, void *buffer, size_t length, int *outgoing) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, buffer, length, MSG_TRUNC, (struct sockaddr *)&from, &fromlen);
    if (n < 0) return -errno;
    *outgoing = from.sll_pkttype == PACKET_OUTGOING;
    return n;
}

int ipn_interface_up(const char *name) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) { ifr.ifr_flags |= IFF_UP; r = ioctl(fd, SIOCSIFFLAGS, &ifr); }
    int e = errno;
    close(fd);
    return r < 0 ? -e : 0;
}

// Weak: defined only when the ThreadSanitizer runtime is linked in.
void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));

void ipn_tsan_acquire(void *addr) { if (__tsan_acquire) __tsan_acquire(addr); }
void ipn_tsan_release(void *addr) { if (__tsan_release) __tsan_release(addr); }

int ipn_open_path_only(const char *path) {
    return open(path, O_PATH | O_CLOEXEC);
}
