import ArgumentParser
import Foundation
import MediaJack

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List cameras (V4L2: formats, sizes, frame rates), virtual webcams (v4l2loopback) and sound devices (ALSA).",
        discussion: """
            Use a camera as `v4l2:/dev/videoN` and a sound device as `alsa:NAME` with `mediajack publish`; \
            any ALSA PCM name works (hw:CARD,DEV, plughw:CARD,DEV for automatic conversion, default).
            """)

    @Flag(help: "Only cameras.") var cameras = false
    @Flag(help: "Only sound devices.") var sound = false

    func run() throws {
        MediaLibrary.quiet()
        if !sound {
            var problems: [String] = []
            let list = DeviceList.cameras(problems: &problems)
            print("Cameras:")
            if list.isEmpty && problems.isEmpty { print("  none (no /dev/video* capture device)") }
            for c in list {
                print("  v4l2:\(c.path)  \(c.card)  driver \(c.driver)  bus \(c.busInfo)")
                for line in V4L2Source.offers(c.formats) { print("    " + line) }
            }
            for p in problems { print("  " + p) }
            let loops = DeviceList.loopbacks()
            print("Virtual webcams (v4l2loopback):")
            if loops.isEmpty { print("  none (\(LoopbackOutput.loadHint))") }
            for l in loops {
                print("  \(l.path)  \(l.card)  " + (l.fed ? "fed by a producer (readers open it as a camera)" : "free: mediajack webcam BUS \(l.path)"))
            }
        }
        if !cameras {
            let list = DeviceList.soundDevices()
            print("Sound devices:")
            if list.isEmpty { print("  none (no ALSA card)") }
            for d in list {
                let sides = [d.capture ? "capture" : nil, d.playback ? "playback" : nil].compactMap { $0 }.joined(separator: "+")
                print("  alsa:\(d.name)  \(d.card): \(d.pcm)  (\(sides), \(d.subdevices) subdevice\(d.subdevices == 1 ? "" : "s"))")
            }
        }
    }
}
