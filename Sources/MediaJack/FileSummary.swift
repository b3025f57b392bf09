import CMedia

/// An ffprobe-style one-line-per-stream summary of a media file, read with libavformat.
public enum FileSummary {
    public static func describe(_ path: String) -> [String] {
        var ctx: UnsafeMutablePointer<AVFormatContext>?
        guard avformat_open_input(&ctx, path, nil, nil) >= 0, let c = ctx else { return ["\(path): cannot be opened"] }
        defer { avformat_close_input(&ctx) }
        _ = avformat_find_stream_info(c, nil)
        var lines = ["\(path): \(String(cString: c.pointee.iformat.pointee.name)), \(String(format: "%.2f", Double(c.pointee.duration) / 1e6)) s"]
        for i in 0..<Int(c.pointee.nb_streams) {
            let st = c.pointee.streams[i]!
            let par = st.pointee.codecpar.pointee
            let codec = String(cString: avcodec_get_name(par.codec_id))
            if par.codec_type == AVMEDIA_TYPE_VIDEO {
                let fr = st.pointee.avg_frame_rate
                lines.append("  stream \(i): video \(codec) \(par.width)x\(par.height)" + (fr.den > 0 ? String(format: " %.2f fps", Double(fr.num) / Double(fr.den)) : ""))
            } else {
                lines.append("  stream \(i): audio \(codec) \(par.sample_rate) Hz \(par.ch_layout.nb_channels) ch")
            }
        }
        return lines
    }
}
