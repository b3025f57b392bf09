import CMedia

/// Converts packed or planar raw pictures to the encoder's I420 with libswscale (e.g. YUYV from a
/// camera or `test:video --pixel-format yuyv422`).
final class PictureConverter {
    let context: OpaquePointer
    let width: Int
    let height: Int
    let source: AVPixelFormat

    /// nil when libswscale cannot convert `pixelFormat` (a libav name such as "yuyv422").
    init?(pixelFormat: String, width: Int, height: Int) {
        let format = av_get_pix_fmt(pixelFormat)
        guard format != AV_PIX_FMT_NONE,
              let c = sws_getContext(Int32(width), Int32(height), format, Int32(width), Int32(height), AV_PIX_FMT_YUV420P,
                                     Int32(SWS_BILINEAR), nil, nil, nil) else { return nil }
        context = c
        self.width = width
        self.height = height
        source = format
    }

    deinit { sws_freeContext(context) }

    /// Bytes of one source picture.
    var pictureSize: Int { Int(av_image_get_buffer_size(source, Int32(width), Int32(height), 1)) }

    /// Converts one tightly packed source picture into the destination planes.
    func convert(_ picture: UnsafeRawBufferPointer, into planes: [(UnsafeMutablePointer<UInt8>, Int)]) {
        var srcData = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: 4)
        var srcStride = [Int32](repeating: 0, count: 4)
        let base = UnsafeMutablePointer(mutating: picture.baseAddress!.assumingMemoryBound(to: UInt8.self))
        _ = av_image_fill_arrays(&srcData, &srcStride, base, source, Int32(width), Int32(height), 1)
        var dst: [UnsafeMutablePointer<UInt8>?] = planes.map { $0.0 } + [nil]
        let dstStride: [Int32] = planes.map { Int32($0.1) } + [0]
        srcData.withUnsafeBufferPointer { s in
            let constSrc = UnsafeRawPointer(s.baseAddress!).assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
            _ = sws_scale(context, constSrc, srcStride, 0, Int32(height), &dst, dstStride)
        }
    }
}
