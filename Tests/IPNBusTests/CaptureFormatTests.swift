import XCTest
@testable import MediaJack

/// The pure parts of camera capture: format choice, fourcc names, repacking padded rows, and finding
/// keyframes and parameter sets in a camera's H.264. The drivers themselves are tested in DeviceTests.
final class CaptureFormatTests: XCTestCase {
    func format(_ fourcc: String, _ sizes: [(Int, Int, [Double])], emulated: Bool = false) -> CameraFormat {
        CameraFormat(fourcc: FourCC.code(fourcc), description: fourcc, emulated: emulated,
                     sizes: sizes.map { CameraSize(width: $0.0, height: $0.1, rates: $0.2.map { FrameRate(Int($0 * 10), 10) }) })
    }

    var webcam: [CameraFormat] {
        [format("YUYV", [(640, 480, [15, 30]), (1280, 720, [5, 10]), (1920, 1080, [5])]),
         format("MJPG", [(640, 480, [30]), (1280, 720, [30]), (1920, 1080, [30])]),
         format("RGB3", [(1920, 1080, [30])], emulated: true)]
    }

    func testCompressedIsPreferredAtTheLargestSizeThatMeetsTheRate() throws {
        let c = try V4L2Source.choose(V4L2Source.Settings(), from: webcam, device: "cam")
        XCTAssertEqual(c.format.name, "MJPG")
        XCTAssertEqual(c.width, 1920)
        XCTAssertEqual(c.rate.value, 30)
        XCTAssertEqual(c.reason, "compressed by the camera")
    }

    func testWithoutCompressionTheLargestRawSizeMeetingTheRateWinsAndEmulatedFormatsAreNotTaken() throws {
        let raw = webcam.filter { $0.name != "MJPG" }
        let c = try V4L2Source.choose(V4L2Source.Settings(), from: raw, device: "cam")
        XCTAssertEqual(c.format.name, "YUYV")
        XCTAssertEqual(c.width, 640, "1280x720 only reaches 10 fps")
        var slow = V4L2Source.Settings()
        slow.fps = 10
        let d = try V4L2Source.choose(slow, from: raw, device: "cam")
        XCTAssertEqual([d.width, d.height], [1280, 720])
    }

    func testARequestIsHonouredOrRefusedWithWhatTheDeviceOffers() throws {
        var s = V4L2Source.Settings()
        s.pixelFormat = "yuyv422"; s.width = 1280; s.height = 720; s.fps = 10
        let c = try V4L2Source.choose(s, from: webcam, device: "cam")
        XCTAssertEqual(c.format.name, "YUYV")
        XCTAssertEqual(c.reason, "as requested")
        s.fps = 30
        XCTAssertThrowsError(try V4L2Source.choose(s, from: webcam, device: "/dev/video7")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("/dev/video7 cannot do yuyv422 1280x720 at 30 fps"), text)
            XCTAssertTrue(text.contains("MJPG 1280x720 @ 30 fps"), text)
            XCTAssertTrue(text.contains("RGB3 (converted by libv4l2) 1920x1080"), text)
        }
        s.pixelFormat = "WXYZ"
        XCTAssertThrowsError(try V4L2Source.choose(s, from: webcam, device: "cam"))
    }

    func testFourCCNamesAndLibavNames() {
        XCTAssertEqual(FourCC.string(FourCC.code("NV12")), "NV12")
        XCTAssertEqual(FourCC.parse("nv12"), FourCC.code("NV12"))
        XCTAssertEqual(FourCC.parse("mjpeg"), FourCC.code("MJPG"))
        XCTAssertEqual(FourCC.parse("yuyv422"), FourCC.code("YUYV"))
        XCTAssertEqual(FourCC.mapping(FourCC.code("H264")), .compressed(codec: "h264"))
        XCTAssertEqual(FourCC.string(FourCC.code("Y16 ") | 0x8000_0000), "Y16-BE")
        XCTAssertEqual(FrameRate(25, 2).description, "12.5")
        XCTAssertEqual(FrameRate(30000, 1001).description, "29.970")
        XCTAssertEqual(FrameRate(30_000, 1000).description, "30")
    }

    func testPaddedRowsAreRepackedTightly() throws {
        // NV12 4x2 with rows padded to 8 bytes: Y rows, then one interleaved UV row, each padded.
        let picture = RawPicture(pixelFormat: "nv12", width: 4, height: 2, bytesPerLine: 8)
        XCTAssertEqual(picture.packedSize, 12)
        XCTAssertFalse(picture.isPacked)
        let source: [UInt8] = [1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 0, 0, 0, 0, 9, 10, 11, 12, 0, 0, 0, 0]
        var out = [UInt8](repeating: 0xff, count: 12)
        source.withUnsafeBytes { s in out.withUnsafeMutableBytes { picture.pack(s, into: $0) } }
        XCTAssertEqual(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        let tight = RawPicture(pixelFormat: "yuyv422", width: 4, height: 2, bytesPerLine: 8)
        XCTAssertTrue(tight.isPacked)
        XCTAssertEqual(tight.packedSize, 16)
    }

    func testH264KeyframesAndParameterSetsAreFoundInAnnexB() {
        let sps: [UInt8] = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e]
        let pps: [UInt8] = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]
        let idr: [UInt8] = [0, 0, 1, 0x65, 0x88, 0x84, 0x00]
        let p: [UInt8] = [0, 0, 0, 1, 0x41, 0x9a, 0x02]
        (sps + pps + idr).withUnsafeBytes { b in
            XCTAssertTrue(H264.containsIDR(b))
            XCTAssertEqual(H264.parameterSets(b), sps + pps)
        }
        p.withUnsafeBytes { b in
            XCTAssertFalse(H264.containsIDR(b))
            XCTAssertNil(H264.parameterSets(b))
        }
    }

    func testJPEGPaddingAfterTheEndMarkerIsTrimmed() {
        let jpeg: [UInt8] = [0xff, 0xd8, 1, 2, 3, 0xff, 0xd9, 0, 0, 0, 0]
        jpeg.withUnsafeBytes { XCTAssertEqual(JPEG.trimmedLength($0), 7) }
    }
}
