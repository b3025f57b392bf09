#include "CAlsaPlugin.h"
#include <errno.h>
#include <string.h>

unsigned int cap_ioplug_version(void) { return SND_PCM_IOPLUG_VERSION; }
unsigned int cap_flag_monotonic(void) { return SND_PCM_IOPLUG_FLAG_MONOTONIC; }
void *cap_area_address(const snd_pcm_channel_area_t *area, snd_pcm_uframes_t offset) {
    return (char *)area->addr + (area->first + area->step * offset) / 8;
}

// Implemented in Swift (AlsaPluginIPN, @_cdecl).
extern int ipn_pcm_plugin_open(snd_pcm_t **pcmp, const char *name, const char *bus, int lookahead, snd_pcm_stream_t stream, int mode);

// pcm.NAME { type ipn bus "/path/to/bus" [lookahead N] }: reads the configuration, then the Swift side
// opens the PCM. lookahead: server periods a playback period is sent ahead (default 3).
SND_PCM_PLUGIN_DEFINE_FUNC(ipn) {
    (void)root;
    snd_config_iterator_t i, next;
    const char *bus = NULL;
    long lookahead = 3;
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        if (snd_config_get_id(n, &id) < 0) continue;
        if (strcmp(id, "comment") == 0 || strcmp(id, "type") == 0 || strcmp(id, "hint") == 0) continue;
        if (strcmp(id, "bus") == 0) {
            if (snd_config_get_string(n, &bus) < 0) { SNDERR("ipn: bus must be a string (a bus path)"); return -EINVAL; }
            continue;
        }
        if (strcmp(id, "lookahead") == 0) {
            if (snd_config_get_integer(n, &lookahead) < 0 || lookahead < 1 || lookahead > 15) {
                SNDERR("ipn: lookahead must be 1...15 server periods");
                return -EINVAL;
            }
            continue;
        }
        SNDERR("ipn: unknown field %s (known: bus, lookahead)", id);
        return -EINVAL;
    }
    if (!bus || !*bus) { SNDERR("ipn: no bus given: use ipn:BUS=/path/to/bus, or bus \"/path\" in the PCM definition"); return -EINVAL; }
    return ipn_pcm_plugin_open(pcmp, name, bus, (int)lookahead, stream, mode);
}
SND_PCM_PLUGIN_SYMBOL(ipn);
