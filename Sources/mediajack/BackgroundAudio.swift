import Atomics
import Foundation
import MediaJack

/// `mediajack play` on a thread and bus connection of its own, beside a picture (`view --audio`,
/// `webcam --audio`): the sound never waits for the picture.
final class BackgroundAudio: Sendable {
    private let stopping = ManagedAtomic(false)
    private let done = DispatchSemaphore(value: 0)

    /// Starts playing `bus`'s first audio stream on ALSA `device`; `say` gets its reports.
    init(bus: String, device: String, say: @escaping @Sendable (String) -> Void) {
        var settings = AudioPlayer.Settings()
        settings.device = device
        Thread.detachNewThread { [stopping, done, settings] in
            defer { done.signal() }
            do {
                let p = try AudioPlayer.run(bus: bus, settings, report: say, shouldStop: { stopping.load(ordering: .relaxed) }) { _ in }
                say("audio: played \(p.framesPlayed) frames; \(p.skippedLate) skipped as late, \(p.xruns) xruns")
            } catch {
                say("audio: \(error)")
            }
        }
    }

    /// Stops the sound and waits for its thread.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        done.wait()
    }
}
