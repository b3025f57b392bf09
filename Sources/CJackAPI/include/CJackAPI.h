// The JACK client API as Debian's libjack-jackd2-dev declares it: our libjack.so.0 (Sources/JackIPN) implements
// these declarations, so its ABI (types, struct layouts, callback signatures) is exactly the system headers'.
#include <jack/jack.h>
#include <jack/midiport.h>
#include <jack/ringbuffer.h>
#include <jack/transport.h>
#include <jack/uuid.h>
#include <jack/thread.h>
#include <jack/statistics.h>
#include <jack/metadata.h>
#include <jack/intclient.h>
#include <jack/session.h>

/// The file this library was loaded from (dladdr), or NULL: where jackd-ipn is, to start a server.
const char *ipnjack_library_path(void);
