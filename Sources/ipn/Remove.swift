import ArgumentParser
import IPNBus

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove a bus (needs the manage right): its nodes are told, its host ends, its file goes.")

    @Argument(help: "Path of the bus.") var path: String

    func run() throws {
        do { try Bus.remove(path) } catch { throw fail(error) }
    }
}
