// What Swift cannot define: the variadic entry points (jack_client_open, which reads its optional arguments in
// the order jack/types.h gives them and hands them to the Swift implementation, and jack_internal_client_load);
// dladdr, which Swift's Glibc does not show; and the metadata keys jack/metadata.h declares as data. No logic.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include "CJackAPI.h"

const char *ipnjack_library_path(void) {
    Dl_info info;
    return dladdr((void *)ipnjack_library_path, &info) ? info.dli_fname : NULL;
}

extern jack_client_t *ipnjack_client_open(const char *client_name, int options, int *status, const char *server_name);

jack_client_t *jack_client_open(const char *client_name, jack_options_t options, jack_status_t *status, ...) {
    const char *server_name = NULL;
    va_list ap;
    va_start(ap, status);
    if (options & JackServerName) server_name = va_arg(ap, const char *);
    va_end(ap);
    return ipnjack_client_open(client_name, (int)options, (int *)status, server_name);
}

// The deprecated form: a client of the default server.
jack_client_t *jack_client_new(const char *client_name) {
    return ipnjack_client_open(client_name, JackUseExactName, NULL, NULL);
}

// jack/metadata.h's well-known keys, data the header declares (jack2's values).
const char *JACK_METADATA_PRETTY_NAME = "http://jackaudio.org/metadata/pretty-name";
const char *JACK_METADATA_HARDWARE = "http://jackaudio.org/metadata/hardware";
const char *JACK_METADATA_CONNECTED = "http://jackaudio.org/metadata/connected";
const char *JACK_METADATA_PORT_GROUP = "http://jackaudio.org/metadata/port-group";
const char *JACK_METADATA_ICON_SMALL = "http://jackaudio.org/metadata/icon-small";
const char *JACK_METADATA_ICON_LARGE = "http://jackaudio.org/metadata/icon-large";
const char *JACK_METADATA_ICON_NAME = "http://jackaudio.org/metadata/icon-name";
const char *JACK_METADATA_ORDER = "http://jackaudio.org/metadata/order";
const char *JACK_METADATA_EVENT_TYPES = "http://jackaudio.org/metadata/event-types";
const char *JACK_METADATA_SIGNAL_TYPE = "http://jackaudio.org/metadata/signal-type";

// jack_internal_client_load is variadic too; jackd-ipn has no internal clients (Sources/JackIPN/UnsupportedAPI.swift).
extern jack_intclient_t ipnjack_internal_client_load(jack_status_t *status);

jack_intclient_t jack_internal_client_load(jack_client_t *client, const char *client_name, jack_options_t options, jack_status_t *status, ...) {
    (void)client; (void)client_name; (void)options;
    return ipnjack_internal_client_load(status);
}
