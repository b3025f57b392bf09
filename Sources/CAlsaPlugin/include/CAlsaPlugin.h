// The ALSA external-plugin boundary (ioplug) for libasound_module_pcm_ipn.so: the headers, and what Swift
// cannot express (the version macro, the versioned entry symbol, snd_config iteration). No logic.
#ifndef CALSAPLUGIN_H
#define CALSAPLUGIN_H
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>

/// SND_PCM_IOPLUG_VERSION.
unsigned int cap_ioplug_version(void);
/// SND_PCM_IOPLUG_FLAG_MONOTONIC.
unsigned int cap_flag_monotonic(void);
/// Bit address of frame `offset` of one channel area.
void *cap_area_address(const snd_pcm_channel_area_t *area, snd_pcm_uframes_t offset);
#endif
