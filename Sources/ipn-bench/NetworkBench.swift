import Foundation
import Glibc

/// Network part of the benchmark: iperf3 TCP throughput and ping RTT between two network namespaces
/// through (a) an IPN switch bus with TAPs, (b) vde_switch with its own TAP ports and (c) a Linux bridge
/// with veth pairs (the kernel's floor), all in one run, printed as ratios. Needs root, iproute2, ping,
/// iperf3 and vde_switch; nothing leaves the machine.
enum NetworkBench {
    struct Result { var bitsPerSecond: Double; var p50: Double; var p99: Double; var note: String }

    static func run(quick: Bool) {
        print("")
        print("network: two namespaces, iperf3 TCP \(quick ? 2 : 5) s and \(quick ? 100 : 500) pings at 10 ms, through three switches")
        guard getuid() == 0 else { print("  skipped: needs root (network namespaces)"); return }
        for tool in ["/usr/sbin/ip", "/usr/bin/iperf3", "/usr/bin/ping"] where !FileManager.default.isExecutableFile(atPath: tool) {
            print("  skipped: \(tool) missing (scripts/setup installs it)"); return
        }
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let seconds = quick ? 2 : 5, pings = quick ? 100 : 500
        var results: [(String, Result?)] = []
        results.append(("ipn switch bus + TAPs", measure(setup: ipnSetup(products, vnet: false), seconds: seconds, pings: pings)))
        results.append(("ipn --vnet-hdr bus + TAPs", measure(setup: ipnSetup(products, vnet: true), seconds: seconds, pings: pings)))
        let hasVDE = FileManager.default.isExecutableFile(atPath: "/usr/bin/vde_switch")
        results.append(("vde_switch + TAP ports", hasVDE ? measure(setup: vdeSetup, seconds: seconds, pings: pings) : nil))
        results.append(("Linux bridge + veth", measure(setup: bridgeSetup, seconds: seconds, pings: pings)))
        print("  switch                      Mbit/s   ping p50 µs  ping p99 µs")
        for (name, r) in results {
            guard let r else { print("  \(name.padding(toLength: 25, withPad: " ", startingAt: 0))  (not measured)"); continue }
            print(String(format: "  %@ %9.0f %13.0f %12.0f%@", name.padding(toLength: 25, withPad: " ", startingAt: 0),
                         r.bitsPerSecond / 1e6, r.p50, r.p99, r.note.isEmpty ? "" : "  " + r.note))
        }
        for (label, ipn) in [("ipn", results[0].1), ("ipn --vnet-hdr", results[1].1)] {
            guard let ipn else { continue }
            if let vde = results[2].1, vde.bitsPerSecond > 0 {
                print(String(format: "  %@ / vde_switch throughput: %.2fx (target >= 2); RTT p50 %.2fx", label, ipn.bitsPerSecond / vde.bitsPerSecond, ipn.p50 / max(1, vde.p50)))
            }
            if let bridge = results[3].1, bridge.bitsPerSecond > 0 {
                print(String(format: "  %@ / Linux bridge throughput: %.3fx; RTT p50 %.2fx (the kernel's floor)", label, ipn.bitsPerSecond / bridge.bitsPerSecond, ipn.p50 / max(1, bridge.p50)))
            }
        }
    }

    /// Each setup leaves interface "a$T" in namespace nsa$T (10.78.0.1) and "b$T" in nsb$T (10.78.0.2).
    static func ipnSetup(_ products: String, vnet: Bool) -> String {
        """
        export PATH='\(products)':$PATH
        ipn create $W/lan --policy switch --persistent \(vnet ? "--vnet-hdr" : "")
        ipn tap $W/lan a$T > /dev/null 2>&1 &
        ipn tap $W/lan b$T > /dev/null 2>&1 &
        appear a$T; appear b$T
        """
    }
    static let vdeSetup = """
        vde_switch -s $W/vde -t a$T -t b$T -d -p $W/vde.pid > /dev/null 2>&1
        appear a$T; appear b$T
        """
    static let bridgeSetup = """
        ip link add br$T type bridge; ip link set br$T up
        ip link add a$T type veth peer name pa$T; ip link set pa$T master br$T; ip link set pa$T up
        ip link add b$T type veth peer name pb$T; ip link set pb$T master br$T; ip link set pb$T up
        """

    static func measure(setup: String, seconds: Int, pings: Int) -> Result? {
        let tag = String(getpid() % 10000)
        let work = "/tmp/ipn-bench-net-\(getpid())"
        mkdir(work, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: work) }
        let script = """
            set -u
            T=\(tag); W=\(work)
            appear() { i=0; until ip link show "$1" > /dev/null 2>&1; do i=$((i+1)); [ $i -gt 200 ] && return 1; sleep 0.05; done; }
            cleanup() {
              for p in $(jobs -p); do kill $p 2>/dev/null; done; wait 2>/dev/null
              ip netns del nsa$T 2>/dev/null; ip netns del nsb$T 2>/dev/null; ip link del br$T 2>/dev/null
              [ -e $W/lan ] && ipn rm $W/lan 2>/dev/null
              [ -e $W/vde.pid ] && kill $(cat $W/vde.pid) 2>/dev/null
            }
            trap cleanup EXIT
            \(setup)
            for s in a b; do
              ip netns add ns$s$T
              ip link set $s$T netns ns$s$T
              ip -n ns$s$T addr add 10.78.0.$([ $s = a ] && echo 1 || echo 2)/24 dev $s$T
              ip -n ns$s$T link set $s$T up; ip -n ns$s$T link set lo up
            done
            ip netns exec nsa$T ping -c 3 -i 0.2 -W 2 10.78.0.2 > /dev/null || { echo "no connectivity"; exit 1; }
            ip netns exec nsb$T iperf3 -s -1 > /dev/null 2>&1 &
            sleep 0.5
            ip netns exec nsa$T iperf3 -c 10.78.0.2 -t \(seconds) -J > $W/iperf.json
            ip netns exec nsa$T ping -c \(pings) -i 0.01 -q -W 1 10.78.0.2 > /dev/null
            ip netns exec nsa$T ping -c \(pings) -i 0.01 -W 1 10.78.0.2 | sed -n 's/.*time=\\([0-9.]*\\) ms/\\1/p' > $W/rtt.txt
            """
        guard let text = bashOutput(script) else { return nil }
        guard let data = FileManager.default.contents(atPath: work + "/iperf.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let end = json["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let bits = received["bits_per_second"] as? Double else {
            return Result(bitsPerSecond: 0, p50: 0, p99: 0, note: "failed: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let rtts = ((try? String(contentsOfFile: work + "/rtt.txt", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Double($0) }.sorted()
        let p50 = rtts.isEmpty ? 0 : rtts[rtts.count / 2] * 1000
        let p99 = rtts.isEmpty ? 0 : rtts[min(rtts.count - 1, rtts.count * 99 / 100)] * 1000
        return Result(bitsPerSecond: bits, p50: p50, p99: p99, note: "")
    }
}
