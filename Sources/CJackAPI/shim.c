// The one variadic entry point, which Swift cannot define: reads jack_client_open's optional arguments in
// the order jack/types.h gives them and hands them to the Swift implementation; and dladdr, which Swift's
// Glibc does not show. No logic.
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
