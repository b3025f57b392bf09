import ArgumentParser
import Foundation
import IPNBus

@main
struct IPN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipn",
        abstract: "IPN buses in user space: one-to-many and many-to-many messaging among processes.",
        discussion: """
            A bus is named by a filesystem path and shows up there as a socket file. Its permission bits are \
            its access control: r lets a process receive, w send, x manage (change options, remove). The \
            first bind (`ipn create`) brings the bus up; it lives while any node is on it, or until `ipn rm` \
            when it is persistent.

            Examples:
              ipn create /tmp/bus --policy hub --mode 0660 --persistent
              ipn recv /tmp/bus --count 3 &
              printf 'one\\ntwo\\nthree\\n' | ipn send /tmp/bus
              ipn stat /tmp/bus
              ipn rm /tmp/bus
            """,
        subcommands: [Create.self, Send.self, Recv.self, Stat.self, List.self, Set.self, Remove.self, Tap.self, Grab.self, CableCommand.self, Demo.self])

    static func main() {
        // What a command prints reaches a pipe or a log line by line, not at exit.
        StandardOutput.flushEveryLine()
        main(nil)
    }
}

/// Prints an error in one sentence and exits non-zero: the house style for every subcommand.
func fail(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("ipn: \(error)\n".utf8))
    return ExitCode(1)
}

/// Parses an octal mode such as 0660.
func parseMode(_ text: String) throws -> UInt32 {
    guard let m = UInt32(text.hasPrefix("0o") ? String(text.dropFirst(2)) : text, radix: 8), m <= 0o777 else {
        throw ValidationError("mode '\(text)' is not an octal permission like 0660")
    }
    return m
}
