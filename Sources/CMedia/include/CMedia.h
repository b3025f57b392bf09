// The thin C boundary to libavcodec/libavformat/libswscale/libswresample, libv4l2, alsa-lib and SDL2: the
// headers, and plain functions for what Swift cannot use directly (function-like macros such as the
// VIDIOC_* ioctl numbers, variadic calls, fixed-size arrays of plane pointers, unions). No logic lives here.
#ifndef CMEDIA_H
#define CMEDIA_H
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include <linux/videodev2.h>
#include <libv4l2.h>
#include <alsa/asoundlib.h>
#include <SDL2/SDL.h>
#include <SDL2/SDL_ttf.h>

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
/// frame->extended_data, as swr_convert wants it.
const uint8_t **cm_frame_extended_data(AVFrame *frame);
/// AV_PKT_FLAG_KEY, AV_CODEC_FLAG_GLOBAL_HEADER, AVFMT_GLOBALHEADER, AVFMT_NOFILE.
int cm_packet_flag_key(void);
int cm_codec_flag_global_header(void);
int cm_format_flag_global_header(void);
int cm_format_flag_nofile(void);
/// Copies `length` bytes of extradata into codec parameters (allocated with padding, as libav wants).
int cm_set_extradata(AVCodecParameters *parameters, const uint8_t *bytes, int length);

/// An AVIOContext that hands every byte written to `write(opaque, bytes, length)` (a live feed in memory).
AVIOContext *cm_avio_writer(void *opaque, int (*write)(void *opaque, const uint8_t *bytes, int length));
/// Frees it and its buffer.
void cm_avio_writer_free(AVIOContext **context);

// MARK: SDL2 (the native viewer).
/// SDL_WINDOWPOS_UNDEFINED (a function-like macro).
int cm_sdl_windowpos_undefined(void);

// MARK: V4L2 through libv4l2. Each returns 0, or -errno.
/// open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC) then v4l2_fd_open (libv4l2's format emulation stays on).
int cm_v4l2_open(const char *path);
int cm_v4l2_close(int fd);
int cm_v4l2_querycap(int fd, struct v4l2_capability *cap);
int cm_v4l2_enum_fmt(int fd, struct v4l2_fmtdesc *desc);
int cm_v4l2_enum_framesizes(int fd, struct v4l2_frmsizeenum *size);
int cm_v4l2_enum_frameintervals(int fd, struct v4l2_frmivalenum *interval);
int cm_v4l2_s_fmt(int fd, struct v4l2_format *format);
int cm_v4l2_s_parm(int fd, struct v4l2_streamparm *parm);
int cm_v4l2_reqbufs(int fd, struct v4l2_requestbuffers *request);
int cm_v4l2_querybuf(int fd, struct v4l2_buffer *buffer);
int cm_v4l2_qbuf(int fd, struct v4l2_buffer *buffer);
int cm_v4l2_dqbuf(int fd, struct v4l2_buffer *buffer);
/// The output side of a v4l2loopback device (a virtual webcam's producer): plain open(path, O_RDWR |
/// O_CLOEXEC) without libv4l2 (its conversions are for capture), STREAMON/OFF of the output queue, the
/// output parameters (frame rate); pictures go with write().
int cm_v4l2_open_output(const char *path);
int cm_v4l2_output_streamon(int fd);
int cm_v4l2_output_streamoff(int fd);
struct v4l2_outputparm *cm_v4l2_parm_output(struct v4l2_streamparm *parm);
int cm_v4l2_g_fmt(int fd, struct v4l2_format *format);
int cm_v4l2_streamon(int fd);
int cm_v4l2_streamoff(int fd);
/// v4l2_mmap of a capture buffer (read-only, shared); NULL on failure (errno set).
void *cm_v4l2_mmap(int fd, size_t length, uint32_t offset);
int cm_v4l2_munmap(void *start, size_t length);
/// The union members Swift cannot reach cleanly.
struct v4l2_pix_format *cm_v4l2_format_pix(struct v4l2_format *format);
struct v4l2_captureparm *cm_v4l2_parm_capture(struct v4l2_streamparm *parm);
uint32_t cm_v4l2_buffer_offset(struct v4l2_buffer *buffer);
/// V4L2_BUF_FLAG_TIMESTAMP_MASK / _MONOTONIC, V4L2_BUF_FLAG_KEYFRAME, V4L2_BUF_FLAG_ERROR.
uint32_t cm_v4l2_timestamp_mask(void);
uint32_t cm_v4l2_timestamp_monotonic(void);
uint32_t cm_v4l2_flag_keyframe(void);
uint32_t cm_v4l2_flag_error(void);
#endif
