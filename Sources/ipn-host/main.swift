// ipn-host: serves one IPN bus. Started by the first `bind` of a bus path (never by hand); reports
// "ok", "exists" or "error: ..." on descriptor 3 to the process that spawned it, then serves the bus
// until its last node leaves (or until `ipn rm` when the bus is persistent).
import Foundation
import Glibc
import IPNBus
import MediaWire

func report(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(3, $0.baseAddress, $0.count) }
    close(3)
}

signal(SIGPIPE, SIG_IGN)
PolicyRegistry.register(MediaPolicy.self)
PolicyRegistry.register(MixerPolicy.self)
var arguments = CommandLine.arguments
// `ipn-host --detach PATH OPTIONS`: start the real host as a grandchild of the binder and exit at
// once, so the binder reaps this process and the host is nobody's zombie when it ends.
if arguments.count == 4 && arguments[1] == "--detach" {
    arguments.remove(at: 1)
    exit(HostProcess.spawnDetached(arguments: arguments) ? 0 : 1)
}
guard arguments.count == 3, let data = arguments[2].data(using: .utf8),
      let options = try? JSONDecoder().decode(BusOptions.self, from: data) else {
    report("error: ipn-host is started by `bind` (usage: ipn-host PATH OPTIONS-JSON)")
    exit(2)
}
do {
    let host = try Host(path: arguments[1], options: options,
                        creatorToken: ProcessInfo.processInfo.environment["IPN_CREATOR_TOKEN"])
    switch try host.start() {
    case .alreadyExists:
        report("exists")
        exit(0)
    case .listening:
        report("ok")
        exit(host.run())
    }
} catch {
    report("error: \(error)")
    exit(1)
}
