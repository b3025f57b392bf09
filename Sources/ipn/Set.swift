import ArgumentParser
import IPNBus

struct Set: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change a live bus's options (needs the manage right).",
        discussion: "Example: ipn set /tmp/bus --persistent   (keep it after the last node leaves)")

    @Argument(help: "Path of the bus.") var path: String
    @Flag(inversion: .prefixedNo, help: "Keep the bus up with no node on it, until `ipn rm`.") var persistent: Bool?
    @Option(help: "A description shown by `ipn stat`.") var description: String?

    func validate() throws {
        if persistent == nil && description == nil { throw ValidationError("nothing to change: give --persistent/--no-persistent or --description") }
    }

    func run() throws {
        do { try Bus.set(path, persistent: persistent, description: description) } catch { throw fail(error) }
    }
}
