import CMedia

/// Scales and converts one tightly packed raw picture to another size and pixel format with libswscale
/// (any layout libav knows, e.g. I420 to YUYV at 1280x720). The destination is tightly packed too.
public final class PictureScaler {
    let context: OpaquePointer
    public let source: (width: Int, height: Int, format: AVPixelFormat)
    public let destination: (width: Int, height: Int, format: AVPixelFormat)

    /// nil when libswscale cannot do it (an unknown libav pixel format name, or a zero size).
    public init?(from: (width: Int, height: Int, pixelFormat: String), to: (width: Int, height: Int, pixelFormat: String)) {
        let s = av_get_pix_fmt(from.pixelFormat), d = av_get_pix_fmt(to.pixelFormat)
        guard s != AV_PIX_FMT_NONE, d != AV_PIX_FMT_NONE, from.width > 0, from.height > 0, to.width > 0, to.height > 0,
              let c = sws_getContext(Int32(from.width), Int32(from.height), s, Int32(to.width), Int32(to.height), d,
                                     Int32(SWS_BILINEAR), nil, nil, nil) else { return nil }
        context = c
        source = (from.width, from.height, s)
        destination = (to.width, to.height, d)
    }

    deinit { sws_freeContext(context) }

    public var sourceBytes: Int { Int(av_image_get_buffer_size(source.format, Int32(source.width), Int32(source.height), 1)) }
    public var destinationBytes: Int { Int(av_image_get_buffer_size(destination.format, Int32(destination.width), Int32(destination.height), 1)) }

    /// Converts `picture` (`sourceBytes` long) into `out` (`destinationBytes` long).
    public func convert(_ picture: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(picture.count >= sourceBytes && out.count >= destinationBytes)
        var srcData = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: 4)
        var srcStride = [Int32](repeating: 0, count: 4)
        var dstData = [UnsafeMutablePointer<UInt8>?](repeating: nil, count: 4)
        var dstStride = [Int32](repeating: 0, count: 4)
        _ = av_image_fill_arrays(&srcData, &srcStride, UnsafeMutablePointer(mutating: picture.baseAddress!.assumingMemoryBound(to: UInt8.self)),
                                 source.format, Int32(source.width), Int32(source.height), 1)
        _ = av_image_fill_arrays(&dstData, &dstStride, out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                 destination.format, Int32(destination.width), Int32(destination.height), 1)
        srcData.withUnsafeBufferPointer { s in
            let constSrc = UnsafeRawPointer(s.baseAddress!).assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
            _ = sws_scale(context, constSrc, srcStride, 0, Int32(source.height), &dstData, dstStride)
        }
    }
}
