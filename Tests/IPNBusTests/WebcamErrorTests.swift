import Foundation
import IPNTestSupport
import XCTest

/// `mediajack webcam` on a device that cannot be a webcam says why and how to fix it, at once, before it joins
/// a bus. (The device tier checks the rest against the real v4l2loopback module: a real camera, a loopback
/// another producer feeds.)
final class WebcamErrorTests: DirectoryTestCase {
    func testNoLoopbackModuleNamesTheModprobeLine() async throws {
        let r = try await TestSupport.run("mediajack", ["webcam", dir + "/cam", dir + "/video10"])
        XCTAssertEqual(r.exitCode, 1, r.description)
        XCTAssertTrue(r.standardError.contains("no such device: a virtual webcam needs the v4l2loopback module"), r.standardError)
        XCTAssertTrue(r.standardError.contains("modprobe v4l2loopback exclusive_caps=1 card_label=\"IPN camera\""), r.standardError)
        XCTAssertFalse(r.standardError.contains("waiting for a bus"), "a wrong device is said before waiting for the bus: \(r.standardError)")
    }

    func testADeviceThatIsNoLoopbackSaysARealCameraCannotBeWrittenTo() async throws {
        let r = try await TestSupport.run("mediajack", ["webcam", dir + "/cam", "/dev/null"])
        XCTAssertEqual(r.exitCode, 1, r.description)
        XCTAssertTrue(r.standardError.contains("/dev/null: is not a v4l2loopback device (driver \"none\""), r.standardError)
        XCTAssertTrue(r.standardError.contains("mediajack devices"), r.standardError)
    }

    func testNoPermissionSaysSo() async throws {
        // A device node only its owner may open, tried as another user.
        let node = dir + "/video11"
        XCTAssertTrue(FileManager.default.createFile(atPath: node, contents: nil, attributes: [.posixPermissions: 0o600]))
        let r = try await TestSupport.run("mediajack", ["webcam", dir + "/cam", node], as: TestSupport.Identity(uid: 4121, gid: 4121))
        XCTAssertEqual(r.exitCode, 1, r.description)
        XCTAssertTrue(r.standardError.contains("\(node): permission denied (is this user in the video/audio group?)"), r.standardError)
    }
}
