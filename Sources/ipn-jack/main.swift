import Foundation
import Glibc
import MediaWire

// ipn-jack PROGRAM [ARGS...]: runs an unmodified JACK program on jackd-ipn. Debian's JACK programs find
// libjack.so.0 through the loader's search path (they carry no RPATH), so a directory holding our library
// under that name, first in LD_LIBRARY_PATH, wins over the system's JACK, as pw-jack does for PipeWire.

func fail(_ line: String, _ code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data(("ipn-jack: " + line + "\n").utf8))
    exit(code)
}

let usage = """
    usage: ipn-jack [-s SERVER] PROGRAM [ARGS...]
    Runs a JACK program (jack_lsp, jack_simple_client, Ardour, ...) on jackd-ipn's JACK server instead of jackd.
      -s SERVER   the JACK server's name (default: JACK_DEFAULT_SERVER, else "default"), or a bus path
    Start the server first: jackd-ipn (serves "default"), or jackd-ipn -n NAME / --bus PATH.
    """
var args = Array(CommandLine.arguments.dropFirst())
if args.first == "-h" || args.first == "--help" { print(usage); exit(0) }
if args.first == "-s" {
    guard args.count >= 2 else { fail("-s needs a server name\n" + usage, 2) }
    setenv("JACK_DEFAULT_SERVER", args[1], 1)
    args.removeFirst(2)
}
guard let program = args.first else { fail("no program to run\n" + usage, 2) }

// Our library sits beside this executable (swift build puts both in one bin directory).
guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { fail("cannot find its own executable") }
let bin = (exe as NSString).deletingLastPathComponent
let library = bin + "/libjack.so"
guard access(library, R_OK) == 0 else { fail("\(library) is missing: build it with swift build -c release (the product jack)") }

// A private directory with libjack.so.0 -> our library: the user's own, mode 700, so no other user can
// put a library of theirs in its place.
let dir: String
do { dir = try JackServerPath.bus(".libjack", create: true) } catch { fail("\(error)") }
var st = stat()
let link = dir + "/libjack.so.0"
if lstat(dir, &st) != 0 || st.st_mode & S_IFMT != S_IFDIR { mkdir(dir, 0o700) }
guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == getuid(), st.st_mode & 0o077 == 0 else {
    fail("\(dir) is not a directory of yours alone (mode 700)")
}
let current = try? FileManager.default.destinationOfSymbolicLink(atPath: link)
if current != library {
    let temporary = link + ".\(getpid())"
    unlink(temporary)
    guard symlink(library, temporary) == 0, rename(temporary, link) == 0 else { fail("cannot link \(link): \(String(cString: strerror(errno)))") }
}
let previous = getenv("LD_LIBRARY_PATH").map { String(cString: $0) } ?? ""
setenv("LD_LIBRARY_PATH", previous.isEmpty ? dir : dir + ":" + previous, 1)
var cArgs = args.map { strdup($0) } + [nil]
execvp(program, &cArgs)
fail("cannot run \(program): \(String(cString: strerror(errno)))", 127)
