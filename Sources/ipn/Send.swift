import ArgumentParser
import Foundation
import IPNBus

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send messages to a bus.",
        discussion: """
            By default every line of standard input is one message (without its newline). --file sends a \
            whole file as one message. --size/--count generate test traffic: messages of SIZE bytes whose \
            first 8 bytes count up, optionally paced with --rate.
            """)

    @Argument(help: "Path of the bus.") var path: String
    @Option(help: "Send this file as one message.") var file: String?
    @Option(help: "Generate messages of this many bytes instead of reading input.") var size: Int?
    @Option(help: "How many generated messages to send (with --size).") var count = 1
    @Option(help: "Messages per second for generated traffic (0: as fast as possible).") var rate = 0.0
    @Flag(help: "Fail instead of waiting when a lossless bus is full.") var nonBlocking = false
    @Option(help: "Node description shown by `ipn stat`.") var description = "ipn send"

    func validate() throws {
        if let size, size < 0 { throw ValidationError("--size must not be negative") }
        if count < 0 { throw ValidationError("--count must not be negative") }
        if file != nil && size != nil { throw ValidationError("use --file or --size, not both") }
    }

    func run() throws {
        let socket = IPNSocket()
        socket.description = description
        do {
            try socket.shutdown(.read)
            try socket.connect(path)
            if let file {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw ValidationError("cannot read \(file)")
                }
                try socket.send([UInt8](data), nonBlocking: nonBlocking)
            } else if let size {
                let interval = rate > 0 ? 1.0 / rate : 0
                let start = Date()
                for i in 0..<count {
                    try socket.send(length: size, nonBlocking: nonBlocking) { buffer in
                        var n = UInt64(i)
                        if buffer.count >= 8 {
                            buffer.storeBytes(of: n, as: UInt64.self)
                            if buffer.count > 8 { memset(buffer.baseAddress! + 8, Int32(i & 0xff), buffer.count - 8) }
                        } else {
                            for j in 0..<buffer.count { buffer[j] = UInt8(truncatingIfNeeded: n); n >>= 8 }
                        }
                    }
                    if interval > 0 {
                        let due = start.addingTimeInterval(Double(i + 1) * interval)
                        let wait = due.timeIntervalSinceNow
                        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                    }
                }
            } else {
                while let line = readLine(strippingNewline: true) {
                    try socket.send(Array(line.utf8), nonBlocking: nonBlocking)
                }
            }
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error)
        }
    }
}
