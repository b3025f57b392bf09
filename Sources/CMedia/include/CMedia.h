// The thin C boundary to libavcodec/libavformat/libswscale: the headers, and plain functions for
// what Swift cannot use directly (function-like macros, fixed-size arrays of plane pointers).
// No logic lives here.
#ifndef CMEDIA_H
#define CMEDIA_H
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

/// AVERROR(EAGAIN) and AVERROR_EOF.
int cm_error_again(void);
int cm_error_eof(void);
/// AV_NOPTS_VALUE.
int64_t cm_no_pts(void);
/// av_strerror into a caller buffer.
void cm_error_string(int error, char *buffer, size_t length);
/// av_opt_set(obj, name, value, AV_OPT_SEARCH_CHILDREN).
int cm_set_option(void *object, const char *name, const char *value);
/// frame->data[plane], frame->linesize[plane].
uint8_t *cm_frame_plane(AVFrame *frame, int plane);
int cm_frame_stride(AVFrame *frame, int plane);
/// AV_PKT_FLAG_KEY, AV_CODEC_FLAG_GLOBAL_HEADER, AVFMT_GLOBALHEADER, AVFMT_NOFILE.
int cm_packet_flag_key(void);
int cm_codec_flag_global_header(void);
int cm_format_flag_global_header(void);
int cm_format_flag_nofile(void);
/// Copies `length` bytes of extradata into codec parameters (allocated with padding, as libav wants).
int cm_set_extradata(AVCodecParameters *parameters, const uint8_t *bytes, int length);
#endif
