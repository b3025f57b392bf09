#include "CMedia.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int cm_error_again(void) { return AVERROR(EAGAIN); }
int cm_error_eof(void) { return AVERROR_EOF; }
int64_t cm_no_pts(void) { return AV_NOPTS_VALUE; }
void cm_error_string(int error, char *buffer, size_t length) { av_strerror(error, buffer, length); }
int cm_set_option(void *object, const char *name, const char *value) {
    return av_opt_set(object, name, value, AV_OPT_SEARCH_CHILDREN);
}
uint8_t *cm_frame_plane(AVFrame *frame, int plane) { return frame->data[plane]; }
int cm_frame_stride(AVFrame *frame, int plane) { return frame->linesize[plane]; }
const uint8_t **cm_frame_extended_data(AVFrame *frame) { return (const uint8_t **)frame->extended_data; }
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

AVIOContext *cm_avio_writer(void *opaque, int (*write)(void *opaque, const uint8_t *bytes, int length)) {
    const int size = 64 * 1024;
    uint8_t *buffer = av_malloc(size);
    if (!buffer) return NULL;
    // The callback's pointer type differs between FFmpeg 5 (uint8_t *) and 6.1+ (const uint8_t *).
    AVIOContext *c = avio_alloc_context(buffer, size, 1, opaque, NULL, (void *)write, NULL);
    if (!c) av_free(buffer);
    return c;
}
void cm_avio_writer_free(AVIOContext **context) {
    if (!*context) return;
    av_freep(&(*context)->buffer);
    avio_context_free(context);
}
int cm_sdl_windowpos_undefined(void) { return SDL_WINDOWPOS_UNDEFINED; }

static int cm_ioctl(int fd, unsigned long request, void *arg) {
    int r;
    do { r = v4l2_ioctl(fd, request, arg); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}
int cm_v4l2_open(const char *path) {
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    int wrapped = v4l2_fd_open(fd, 0);
    if (wrapped < 0) { int e = errno; close(fd); return -(e ? e : EINVAL); }
    return wrapped;
}
int cm_v4l2_close(int fd) { return v4l2_close(fd) < 0 ? -errno : 0; }
int cm_v4l2_querycap(int fd, struct v4l2_capability *cap) { return cm_ioctl(fd, VIDIOC_QUERYCAP, cap); }
int cm_v4l2_enum_fmt(int fd, struct v4l2_fmtdesc *desc) { return cm_ioctl(fd, VIDIOC_ENUM_FMT, desc); }
int cm_v4l2_enum_framesizes(int fd, struct v4l2_frmsizeenum *size) { return cm_ioctl(fd, VIDIOC_ENUM_FRAMESIZES, size); }
int cm_v4l2_enum_frameintervals(int fd, struct v4l2_frmivalenum *interval) { return cm_ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, interval); }
int cm_v4l2_s_fmt(int fd, struct v4l2_format *format) { return cm_ioctl(fd, VIDIOC_S_FMT, format); }
int cm_v4l2_s_parm(int fd, struct v4l2_streamparm *parm) { return cm_ioctl(fd, VIDIOC_S_PARM, parm); }
int cm_v4l2_reqbufs(int fd, struct v4l2_requestbuffers *request) { return cm_ioctl(fd, VIDIOC_REQBUFS, request); }
int cm_v4l2_querybuf(int fd, struct v4l2_buffer *buffer) { return cm_ioctl(fd, VIDIOC_QUERYBUF, buffer); }
int cm_v4l2_qbuf(int fd, struct v4l2_buffer *buffer) { return cm_ioctl(fd, VIDIOC_QBUF, buffer); }
int cm_v4l2_dqbuf(int fd, struct v4l2_buffer *buffer) { return cm_ioctl(fd, VIDIOC_DQBUF, buffer); }
int cm_v4l2_streamon(int fd) { int type = V4L2_BUF_TYPE_VIDEO_CAPTURE; return cm_ioctl(fd, VIDIOC_STREAMON, &type); }
int cm_v4l2_streamoff(int fd) { int type = V4L2_BUF_TYPE_VIDEO_CAPTURE; return cm_ioctl(fd, VIDIOC_STREAMOFF, &type); }
int cm_v4l2_open_output(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}
int cm_v4l2_output_streamon(int fd) { int type = V4L2_BUF_TYPE_VIDEO_OUTPUT; return cm_ioctl(fd, VIDIOC_STREAMON, &type); }
int cm_v4l2_output_streamoff(int fd) { int type = V4L2_BUF_TYPE_VIDEO_OUTPUT; return cm_ioctl(fd, VIDIOC_STREAMOFF, &type); }
struct v4l2_outputparm *cm_v4l2_parm_output(struct v4l2_streamparm *parm) { return &parm->parm.output; }
int cm_v4l2_g_fmt(int fd, struct v4l2_format *format) { return cm_ioctl(fd, VIDIOC_G_FMT, format); }
void *cm_v4l2_mmap(int fd, size_t length, uint32_t offset) {
    void *p = v4l2_mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}
int cm_v4l2_munmap(void *start, size_t length) { return v4l2_munmap(start, length) < 0 ? -errno : 0; }
struct v4l2_pix_format *cm_v4l2_format_pix(struct v4l2_format *format) { return &format->fmt.pix; }
struct v4l2_captureparm *cm_v4l2_parm_capture(struct v4l2_streamparm *parm) { return &parm->parm.capture; }
uint32_t cm_v4l2_buffer_offset(struct v4l2_buffer *buffer) { return buffer->m.offset; }
uint32_t cm_v4l2_timestamp_mask(void) { return V4L2_BUF_FLAG_TIMESTAMP_MASK; }
uint32_t cm_v4l2_timestamp_monotonic(void) { return V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC; }
uint32_t cm_v4l2_flag_keyframe(void) { return V4L2_BUF_FLAG_KEYFRAME; }
uint32_t cm_v4l2_flag_error(void) { return V4L2_BUF_FLAG_ERROR; }
