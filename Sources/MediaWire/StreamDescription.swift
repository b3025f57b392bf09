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

    // A description comes from another process, and consumers turn its numbers into C ints, buffer sizes
    // and loop counts: a number outside these ranges is refused where the description arrives
    // (`MediaMessage.decode` gives `badDescription`), never left to trap a recorder or a player later.

    /// Width and height in pixels (0: not known).
    public static let dimensionRange = 0...32768
    /// Each of the frame rate's numerator and denominator (0: not known).
    public static let frameRateRange = 0...Int(Int32.max)
    /// Samples per second.
    public static let sampleRateRange = 1...Int(Int32.max)
    public static let channelRange = 1...64

    /// Whether every number given lies in its range (the time base is not used by any consumer here).
    public var isWithinLimits: Bool {
        func within(_ value: Int?, _ range: ClosedRange<Int>) -> Bool { value.map { range.contains($0) } ?? true }
        return within(width, Self.dimensionRange) && within(height, Self.dimensionRange)
            && within(frameRateNumerator, Self.frameRateRange) && within(frameRateDenominator, Self.frameRateRange)
            && within(sampleRate, Self.sampleRateRange) && within(channels, Self.channelRange)
    }
}
