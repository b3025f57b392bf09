/// One elementary stream, described once by its publisher: what a consumer needs to decode it.
public struct StreamDescription: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case video, audio }
    public var kind: Kind
    /// libavcodec codec name: "rawvideo", "h264", "mjpeg", "pcm_s16le", ... or "synthetic" in tests.
    public var codec: String
    public var width: Int?
    public var height: Int?
    /// libav pixel format name for video ("yuyv422", "yuv420p", ...).
    public var pixelFormat: String?
    public var frameRateNumerator: Int?
    public var frameRateDenominator: Int?
    public var sampleRate: Int?
    public var channels: Int?
    /// libav sample format name for audio ("s16", "flt", ...).
    public var sampleFormat: String?
    /// Time base of the codec; timestamps on the bus are always nanoseconds on CLOCK_MONOTONIC.
    public var timeBaseNumerator: Int
    public var timeBaseDenominator: Int
    /// Codec extradata (SPS/PPS for H.264), if any.
    public var extradata: [UInt8]
    /// Every frame is a keyframe (raw video, PCM): no GOP to cache.
    public var allKeyframes: Bool

    public init(kind: Kind, codec: String, width: Int? = nil, height: Int? = nil, pixelFormat: String? = nil,
                frameRate: (Int, Int)? = nil, sampleRate: Int? = nil, channels: Int? = nil, sampleFormat: String? = nil,
                timeBase: (Int, Int) = (1, 1_000_000_000), extradata: [UInt8] = [], allKeyframes: Bool) {
        self.kind = kind; self.codec = codec; self.width = width; self.height = height; self.pixelFormat = pixelFormat
        self.frameRateNumerator = frameRate?.0; self.frameRateDenominator = frameRate?.1
        self.sampleRate = sampleRate; self.channels = channels; self.sampleFormat = sampleFormat
        self.timeBaseNumerator = timeBase.0; self.timeBaseDenominator = timeBase.1
        self.extradata = extradata; self.allKeyframes = allKeyframes
    }
}
