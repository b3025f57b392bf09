import CMedia
import Foundation
import Glibc

/// What `mediajack devices` shows: V4L2 cameras with every format, size and rate, and ALSA cards with
/// their capture and playback PCMs.
public enum DeviceList {
    public struct Camera: Sendable {
        public var path: String
        public var card: String
        public var driver: String
        public var busInfo: String
        public var formats: [CameraFormat]
    }

    public struct SoundDevice: Sendable {
        /// The hw: name to use (`hw:CARD,DEVICE`).
        public var name: String
        public var card: String
        public var pcm: String
        public var capture: Bool
        public var playback: Bool
        public var subdevices: Int
    }

    /// /dev/video* devices that are capture devices. `problems` gets one line per node that could not be opened.
    public static func cameras(problems: inout [String]) -> [Camera] {
        let nodes = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
            .filter { $0.hasPrefix("video") }.sorted { Int($0.dropFirst(5)) ?? 0 < Int($1.dropFirst(5)) ?? 0 }
        var result: [Camera] = []
        for node in nodes {
            let path = "/dev/" + node
            do {
                let d = try V4L2Device(path: path)
                result.append(Camera(path: path, card: d.card, driver: d.driver, busInfo: d.busInfo, formats: d.formats()))
            } catch DeviceError.notACamera {
                continue  // metadata and output nodes
            } catch {
                problems.append("\(error)")
            }
        }
        return result
    }

    public struct Loopback: Sendable {
        public var path: String
        public var card: String
        /// A producer feeds it now (with exclusive_caps=1 it then offers capture only).
        public var fed: Bool
    }

    /// v4l2loopback devices: virtual webcams `mediajack webcam` can feed.
    public static func loopbacks() -> [Loopback] {
        let nodes = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev")) ?? [])
            .filter { $0.hasPrefix("video") }.sorted { Int($0.dropFirst(5)) ?? 0 < Int($1.dropFirst(5)) ?? 0 }
        return nodes.compactMap { node in
            LoopbackOutput.probe("/dev/" + node).map { Loopback(path: "/dev/" + node, card: $0.card, fed: !$0.output) }
        }
    }

    public static func soundDevices() -> [SoundDevice] {
        var result: [SoundDevice] = []
        var card: Int32 = -1
        while snd_card_next(&card) == 0, card >= 0 {
            var ctl: OpaquePointer?
            guard snd_ctl_open(&ctl, "hw:\(card)", 0) == 0, let ctl else { continue }
            defer { snd_ctl_close(ctl) }
            var infop: OpaquePointer?
            snd_ctl_card_info_malloc(&infop)
            guard let info = infop else { continue }
            defer { snd_ctl_card_info_free(info) }
            guard snd_ctl_card_info(ctl, info) == 0 else { continue }
            let cardId = String(cString: snd_ctl_card_info_get_id(info))
            let cardName = String(cString: snd_ctl_card_info_get_name(info))
            var device: Int32 = -1
            while snd_ctl_pcm_next_device(ctl, &device) == 0, device >= 0 {
                var pcmp: OpaquePointer?
                snd_pcm_info_malloc(&pcmp)
                guard let pcm = pcmp else { break }
                defer { snd_pcm_info_free(pcm) }
                var entry = SoundDevice(name: "hw:\(cardId),\(device)", card: cardName, pcm: "", capture: false, playback: false, subdevices: 0)
                for stream in [SND_PCM_STREAM_CAPTURE, SND_PCM_STREAM_PLAYBACK] {
                    snd_pcm_info_set_device(pcm, UInt32(device))
                    snd_pcm_info_set_subdevice(pcm, 0)
                    snd_pcm_info_set_stream(pcm, stream)
                    guard snd_ctl_pcm_info(ctl, pcm) == 0 else { continue }
                    entry.pcm = String(cString: snd_pcm_info_get_name(pcm))
                    entry.subdevices = max(entry.subdevices, Int(snd_pcm_info_get_subdevices_count(pcm)))
                    if stream == SND_PCM_STREAM_CAPTURE { entry.capture = true } else { entry.playback = true }
                }
                if entry.capture || entry.playback { result.append(entry) }
            }
        }
        return result
    }
}
