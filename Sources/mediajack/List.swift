import ArgumentParser
import IPNBus

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the media buses in a directory with their streams.")
    @Argument(help: "Directory to look in.") var directory = "."

    func run() throws {
        let entries: [Bus.Entry]
        do { entries = try Bus.list(directory: directory) } catch { throw fail(error) }
        for e in entries {
            guard let s = e.status else { print("\(e.path)  \(e.problem ?? "unavailable")"); continue }
            let streams = s.policyStatistics.filter { $0.key.hasPrefix("stream.") }.sorted { $0.key < $1.key }
            print("\(e.path)  \(s.policy)  \(s.readers) readers  \(streams.count) streams")
            for (k, v) in streams { print("  \(k.dropFirst(7)): \(v)") }
        }
    }
}
