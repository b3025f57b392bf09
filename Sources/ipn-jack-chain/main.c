// ipn-jack-chain N SECONDS [--no-system]: the benchmark's JACK client chain, for any JACK server (jackd2,
// PipeWire's JACK layer, or jackd-ipn under ipn-jack): N clients in this process, each copying its input to its
// output, wired system:capture_1 -> chain1 -> ... -> chainN -> system:playback_1 (with --no-system the chain's
// ends stay unconnected: a server with no card ports, as PipeWire without a session manager). It runs
// SECONDS, then prints one line:
//   cycles C xruns X period P rate R cpu S
// (C: process calls of the last client; X: xrun callbacks the server sent; S: this process's CPU seconds in
// that time, start-up and teardown left out). Linked against libjack.so.0.
#include <jack/jack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>
#include <sys/resource.h>

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

typedef struct { jack_port_t *in, *out; atomic_long cycles; } link_t;
static atomic_long xruns;

static int copy(jack_nframes_t n, void *arg) {
    link_t *l = arg;
    memcpy(jack_port_get_buffer(l->out, n), jack_port_get_buffer(l->in, n), n * sizeof(jack_default_audio_sample_t));
    atomic_fetch_add(&l->cycles, 1);
    return 0;
}

static int xrun(void *arg) { (void)arg; atomic_fetch_add(&xruns, 1); return 0; }

int main(int argc, char **argv) {
    int system = !(argc == 4 && strcmp(argv[3], "--no-system") == 0);
    if (argc != 3 && system) { fprintf(stderr, "usage: ipn-jack-chain N SECONDS [--no-system]\n"); return 2; }
    int n = atoi(argv[1]); double seconds = atof(argv[2]);
    if (n < 1 || n > 64 || seconds <= 0) { fprintf(stderr, "ipn-jack-chain: N is 1...64, SECONDS > 0\n"); return 2; }
    jack_client_t **clients = calloc(n, sizeof *clients);
    link_t *links = calloc(n, sizeof *links);
    for (int i = 0; i < n; i++) {
        char name[32]; snprintf(name, sizeof name, "chain%d", i + 1);
        jack_status_t status;
        clients[i] = jack_client_open(name, JackNoStartServer | JackUseExactName, &status);
        if (!clients[i]) { fprintf(stderr, "ipn-jack-chain: cannot open %s (status 0x%x)\n", name, status); return 1; }
        links[i].in = jack_port_register(clients[i], "in", JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        links[i].out = jack_port_register(clients[i], "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
        jack_set_process_callback(clients[i], copy, &links[i]);
        if (i == 0) jack_set_xrun_callback(clients[i], xrun, NULL);
        if (jack_activate(clients[i])) { fprintf(stderr, "ipn-jack-chain: cannot activate %s\n", name); return 1; }
    }
    if (system && jack_connect(clients[0], "system:capture_1", jack_port_name(links[0].in))) { fprintf(stderr, "ipn-jack-chain: cannot connect the capture\n"); return 1; }
    for (int i = 1; i < n; i++)
        if (jack_connect(clients[i], jack_port_name(links[i - 1].out), jack_port_name(links[i].in))) { fprintf(stderr, "ipn-jack-chain: cannot chain\n"); return 1; }
    if (system && jack_connect(clients[n - 1], jack_port_name(links[n - 1].out), "system:playback_1")) { fprintf(stderr, "ipn-jack-chain: cannot connect the playback\n"); return 1; }
    long before = atomic_load(&links[n - 1].cycles), xbefore = atomic_load(&xruns);
    double cpu = cpu_seconds();
    usleep((useconds_t)(seconds * 1e6));
    long cycles = atomic_load(&links[n - 1].cycles) - before, x = atomic_load(&xruns) - xbefore;
    cpu = cpu_seconds() - cpu;
    printf("cycles %ld xruns %ld period %u rate %u cpu %.6f\n", cycles, x, jack_get_buffer_size(clients[0]), jack_get_sample_rate(clients[0]), cpu);
    fflush(stdout);
    for (int i = n - 1; i >= 0; i--) { jack_deactivate(clients[i]); jack_client_close(clients[i]); }
    return 0;
}
