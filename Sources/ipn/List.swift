import ArgumentParser
import IPNBus

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the buses in a directory.")

    @Argument(help: "Directory to look in.") var directory = "."

    func run() throws {
        let entries: [Bus.Entry]
        do { entries = try Bus.list(directory: directory) } catch { throw fail(error) }
        for e in entries {
            if let s = e.status {
                print("\(e.path)  \(s.policy)  \(s.nodes.count) nodes  mtu \(s.options.mtu)\(s.options.persistent ? "  persistent" : "")")
            } else {
                print("\(e.path)  \(e.problem ?? "unavailable")")
            }
        }
    }
}
