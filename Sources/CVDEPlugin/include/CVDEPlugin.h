// The vdeplug4 plugin boundary for libvdeplug_ipn.so (Debian: libvdeplug-dev): the module table
// libvdeplug looks up (`vdeplug_ops`) and the connection record it expects. No logic; the node is Swift.
#ifndef CVDEPLUGIN_H
#define CVDEPLUGIN_H
#include <stddef.h>
#include <sys/types.h>
#endif
