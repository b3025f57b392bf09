#include "CMedia.h"
#include <string.h>

int cm_error_again(void) { return AVERROR(EAGAIN); }
int cm_error_eof(void) { return AVERROR_EOF; }
int64_t cm_no_pts(void) { return AV_NOPTS_VALUE; }
void cm_error_string(int error, char *buffer, size_t length) { av_strerror(error, buffer, length); }
int cm_set_option(void *object, const char *name, const char *value) {
    return av_opt_set(object, name, value, AV_OPT_SEARCH_CHILDREN);
}
uint8_t *cm_frame_plane(AVFrame *frame, int plane) { return frame->data[plane]; }
int cm_frame_stride(AVFrame *frame, int plane) { return frame->linesize[plane]; }
int cm_packet_flag_key(void) { return AV_PKT_FLAG_KEY; }
int cm_codec_flag_global_header(void) { return AV_CODEC_FLAG_GLOBAL_HEADER; }
int cm_format_flag_global_header(void) { return AVFMT_GLOBALHEADER; }
int cm_format_flag_nofile(void) { return AVFMT_NOFILE; }
int cm_set_extradata(AVCodecParameters *parameters, const uint8_t *bytes, int length) {
    av_freep(&parameters->extradata);
    parameters->extradata_size = 0;
    if (length <= 0) return 0;
    parameters->extradata = av_mallocz(length + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!parameters->extradata) return AVERROR(ENOMEM);
    memcpy(parameters->extradata, bytes, length);
    parameters->extradata_size = length;
    return 0;
}
