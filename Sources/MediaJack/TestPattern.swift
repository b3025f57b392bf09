import Glibc

/// The machine-readable test picture: a block barcode of the frame number and capture time drawn
/// into the luma plane, so tests can check order, loss and latency after encoding and decoding.
///
/// Two rows of 48 square blocks at the top of the picture carry 96 bits: the frame number (32),
/// the capture wall-clock time in milliseconds (48) and a 16-bit check. A block is white (235) for 1
/// and black (16) for 0: high contrast survives H.264 and MJPEG at ordinary bitrates.
public enum TestPattern {
    public static let blocksPerRow = 48
    public static let rows = 2

    public struct Stamp: Equatable, Sendable {
        public var frame: UInt32
        public var captureMilliseconds: UInt64
        public init(frame: UInt32, captureMilliseconds: UInt64) {
            self.frame = frame
            self.captureMilliseconds = captureMilliseconds & 0xffff_ffff_ffff
        }
    }

    /// Block size in pixels for a picture `width` wide (at least 4; even).
    public static func blockSize(width: Int) -> Int { max(4, (width / blocksPerRow) & ~1) }

    static func check(_ s: Stamp) -> UInt16 {
        var c: UInt16 = 0x5a5a
        c ^= UInt16(truncatingIfNeeded: s.frame) ^ UInt16(truncatingIfNeeded: s.frame >> 16)
        c ^= UInt16(truncatingIfNeeded: s.captureMilliseconds) ^ UInt16(truncatingIfNeeded: s.captureMilliseconds >> 16)
        c ^= UInt16(truncatingIfNeeded: s.captureMilliseconds >> 32)
        return c
    }

    static func bits(_ s: Stamp) -> [Bool] {
        var out: [Bool] = []
        for i in 0..<32 { out.append((s.frame >> (31 - i)) & 1 == 1) }
        for i in 0..<48 { out.append((s.captureMilliseconds >> (47 - i)) & 1 == 1) }
        let c = check(s)
        for i in 0..<16 { out.append((c >> (15 - i)) & 1 == 1) }
        return out
    }

    /// Draws the whole test picture into an 8-bit luma plane (and neutral chroma is the caller's):
    /// the barcode on top, a moving diagonal gradient and a bar below it.
    public static func drawLuma(_ stamp: Stamp, into plane: UnsafeMutablePointer<UInt8>, stride: Int, width: Int, height: Int) {
        let b = blockSize(width: width)
        let bits = bits(stamp)
        let barcodeHeight = rows * b
        for y in 0..<height {
            let row = plane + y * stride
            if y < barcodeHeight {
                let r = y / b
                for x in 0..<width {
                    let col = x / b
                    row[x] = col < blocksPerRow && bits[r * blocksPerRow + col] ? 235 : 16
                }
            } else {
                let shift = Int(stamp.frame) * 4
                let barX = (Int(stamp.frame) * 8) % max(1, width)
                for x in 0..<width {
                    let inBar = x >= barX && x < barX + width / 16
                    row[x] = inBar ? 200 : UInt8(truncatingIfNeeded: 40 + ((x + y + shift) & 127))
                }
            }
        }
    }

    /// The whole test picture into I420 planes (Y, U, V with their strides): luma as `drawLuma`, neutral chroma.
    public static func drawI420(_ stamp: Stamp, into planes: [(UnsafeMutablePointer<UInt8>, Int)], width: Int, height: Int) {
        drawLuma(stamp, into: planes[0].0, stride: planes[0].1, width: width, height: height)
        for plane in planes.dropFirst() {
            for y in 0..<(height / 2) { memset(plane.0 + y * plane.1, 128, width / 2) }
        }
    }

    /// Reads the barcode back from a luma (gray) picture; nil when the check fails.
    public static func read(luma: UnsafeRawBufferPointer, stride: Int, width: Int, height: Int) -> Stamp? {
        let b = blockSize(width: width)
        guard height >= rows * b, width >= blocksPerRow * b else { return nil }
        var bits: [Bool] = []
        for r in 0..<rows {
            for col in 0..<blocksPerRow {
                var sum = 0, n = 0
                for y in (r * b + b / 4)..<(r * b + b - b / 4) {
                    for x in (col * b + b / 4)..<(col * b + b - b / 4) {
                        sum += Int(luma[y * stride + x]); n += 1
                    }
                }
                bits.append(sum / max(1, n) > 125)
            }
        }
        var frame: UInt32 = 0, ms: UInt64 = 0, c: UInt16 = 0
        for i in 0..<32 { frame = frame << 1 | (bits[i] ? 1 : 0) }
        for i in 32..<80 { ms = ms << 1 | (bits[i] ? 1 : 0) }
        for i in 80..<96 { c = c << 1 | (bits[i] ? 1 : 0) }
        let stamp = Stamp(frame: frame, captureMilliseconds: ms)
        return check(stamp) == c ? stamp : nil
    }
}
