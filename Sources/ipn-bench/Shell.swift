import Foundation

/// Runs a bash script (the benchmark's real tools: iperf3, ping, curl, the mediajack commands) and
/// returns its standard output once it ends; nil when bash cannot be started. Its errors are dropped.
func bashOutput(_ script: String) -> String? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", script]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return nil }
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return text
}
