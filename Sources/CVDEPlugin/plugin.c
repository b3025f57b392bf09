#include "CVDEPlugin.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libvdeplug_mod.h>

// Implemented in Swift (VDEPluginIPN, @_cdecl): a bus node that speaks frames.
extern void *ipn_vde_node_open(const char *path, const char *description, int *error);
extern ssize_t ipn_vde_node_recv(void *node, void *buffer, size_t length);
extern ssize_t ipn_vde_node_send(void *node, const void *buffer, size_t length);
extern int ipn_vde_node_fd(void *node);
extern void ipn_vde_node_close(void *node);

// libvdeplug fills `handle` and `module`; the node follows.
struct ipn_vdeconn {
    void *handle;
    struct vdeplug_module *module;
    void *node;
};

static VDECONN *ipn_open(char *url, char *descr, int version, struct vde_open_args *args) {
    (void)version; (void)args;
    // ipn:///path/to/bus reaches us as "/path/to/bus" (or still prefixed, depending on the caller).
    const char *path = url;
    if (strncmp(path, "ipn://", 6) == 0) path += 6;
    int error = 0;
    void *node = ipn_vde_node_open(path, descr ? descr : "vde", &error);
    if (!node) { errno = error ? error : EINVAL; return NULL; }
    struct ipn_vdeconn *c = calloc(1, sizeof *c);
    if (!c) { ipn_vde_node_close(node); errno = ENOMEM; return NULL; }
    c->node = node;
    return (VDECONN *)c;
}
static ssize_t ipn_recv(VDECONN *conn, void *buf, size_t len, int flags) {
    (void)flags;
    return ipn_vde_node_recv(((struct ipn_vdeconn *)conn)->node, buf, len);
}
static ssize_t ipn_send(VDECONN *conn, const void *buf, size_t len, int flags) {
    (void)flags;
    return ipn_vde_node_send(((struct ipn_vdeconn *)conn)->node, buf, len);
}
static int ipn_datafd(VDECONN *conn) { return ipn_vde_node_fd(((struct ipn_vdeconn *)conn)->node); }
static int ipn_ctlfd(VDECONN *conn) { (void)conn; return -1; }
static int ipn_close(VDECONN *conn) {
    ipn_vde_node_close(((struct ipn_vdeconn *)conn)->node);
    free(conn);
    return 0;
}

struct vdeplug_module vdeplug_ops = {
    .vde_open_real = ipn_open,
    .vde_recv = ipn_recv,
    .vde_send = ipn_send,
    .vde_datafd = ipn_datafd,
    .vde_ctlfd = ipn_ctlfd,
    .vde_close = ipn_close,
};
