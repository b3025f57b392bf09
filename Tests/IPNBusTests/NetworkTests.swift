import Foundation
import IPNTestSupport
import XCTest

/// IPN as a network, with real peers: network namespaces, TAPs and veth pairs made by each test, the
/// kernel's own TCP/IP stacks talking through our buses, checked with ping, iperf3 and tcpdump. Nothing
/// leaves the machine. Needs root (CAP_NET_ADMIN) and iproute2, iputils-ping, iperf3, tcpdump.
final class NetworkTests: DirectoryTestCase {
    /// A short tag for interface and namespace names (interface names have 15 characters at most).
    var tag = ""

    override func setUpWithError() throws {
        try TestSupport.requireRoot("network namespaces")
        try TestSupport.require(tools: ["/usr/sbin/ip", "/usr/bin/ss", "/usr/bin/ping", "/usr/bin/iperf3", "/usr/bin/tcpdump"])
        try super.setUpWithError()
        tag = String(getpid() % 10000) + String(Int.random(in: 10...99))
    }

    /// Runs a shell script with the products on PATH; namespaces it names ns-TAG-* are removed afterwards.
    func script(_ body: String, timeout: Int = 90) async throws -> TestSupport.Outcome {
        let text = """
            set -u
            cd '\(dir)'
            export PATH='\(TestSupport.productsDirectory):/usr/sbin:/usr/bin:/sbin:/bin' T='\(tag)' D='\(dir)'
            cleanup() {
              for p in $(jobs -p); do kill $p 2>/dev/null; done
              wait 2>/dev/null
              for ns in $(ip netns list | awk '{print $1}' | grep "^ns$T"); do ip netns del $ns; done
              ip link del vg$T 2>/dev/null
            }
            trap cleanup EXIT
            # Waits for what the tools report, each at most 30 s, saying what did not happen.
            # appear IF: until an interface appears.
            appear() { i=0; until ip link show "$1" > /dev/null 2>&1; do i=$((i+1)); [ $i -gt 600 ] && echo "no $1" && return 1; sleep 0.05; done; }
            # serving NS: until iperf3's server listens in namespace NS.
            serving() { i=0; until ip netns exec "$1" ss -Hltn 'sport = :5201' | grep -q .; do i=$((i+1)); [ $i -gt 600 ] && echo "no iperf3 server in $1" && return 1; sleep 0.05; done; }
            # onbus BUS TEXT: until `ipn stat BUS` shows TEXT (a node that joined).
            onbus() { i=0; until ipn stat "$1" 2>/dev/null | grep -q "$2"; do i=$((i+1)); [ $i -gt 600 ] && echo "no '$2' on $1" && return 1; sleep 0.05; done; }
            # waitfor FILE TEXT: until FILE contains TEXT.
            waitfor() { i=0; until grep -q "$2" "$1" 2>/dev/null; do i=$((i+1)); [ $i -gt 600 ] && echo "no '$2' in $1" && return 1; sleep 0.05; done; }
            # host NS IF ADDR: move IF into a new namespace NS with address ADDR/24, up.
            host() {
              ip netns add "$1" 2>/dev/null
              ip link set "$2" netns "$1"
              ip -n "$1" addr add "$3/24" dev "$2"
              ip -n "$1" link set "$2" up
              ip -n "$1" link set lo up
            }
            # twobuses NET: switch buses $D/one and $D/two, each with a TAP into its own namespace:
            # ns${T}a at NET.1 on one, ns${T}b at NET.2 on two (nothing joins them yet).
            twobuses() {
              ipn create $D/one --policy switch --persistent
              ipn create $D/two --policy switch --persistent
              ipn tap $D/one ta$T 2> tap-a.log &
              ipn tap $D/two tb$T 2> tap-b.log &
              appear ta$T && appear tb$T || return 1
              host ns${T}a ta$T "$1.1"
              host ns${T}b tb$T "$1.2"
            }
            \(body)
            """
        try text.write(toFile: dir + "/net.sh", atomically: true, encoding: .utf8)
        return try await TestSupport.runTool("/usr/bin/timeout", ["\(timeout)", "/bin/bash", dir + "/net.sh"])
    }

    func testTwoNamespacesTalkThroughASwitchBusAndAThirdSeesOnlyBroadcasts() async throws {
        let r = try await script("""
            ipn create $D/lan --policy switch --persistent
            for n in a b c; do ipn tap $D/lan t$n$T 2> tap-$n.log & done
            for n in a b c; do appear t$n$T || exit 1; done
            host ns${T}a ta$T 10.77.0.1
            host ns${T}b tb$T 10.77.0.2
            host ns${T}c tc$T 10.77.0.3
            ip netns exec ns${T}c tcpdump -i tc$T -n -l -e > c.txt 2> c.err &
            waitfor c.err 'listening on' || exit 1
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.0.2 > ping-ab.txt && echo "ping a->b ok"
            ip netns exec ns${T}b ping -c 3 -i 0.2 -W 2 10.77.0.1 > ping-ba.txt && echo "ping b->a ok"
            ip netns exec ns${T}b iperf3 -s -1 > /dev/null 2>&1 &
            serving ns${T}b || exit 1
            ip netns exec ns${T}a iperf3 -c 10.77.0.2 -t 2 -J > iperf.json && echo "iperf3 ok"
            ipn stat $D/lan > stat.txt
            ipn rm $D/lan
            """)
        XCTAssertTrue(r.standardOutput.contains("ping a->b ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("ping b->a ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("iperf3 ok"), "\(r)")
        let iperf = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/iperf.json"))) as? [String: Any]
        // Data moved, not how fast (rates are ipn-bench's). (iperf3's sent bytes include what was still in
        // flight when its clock stopped, so received can only be held to no more than sent.)
        let end = iperf?["end"] as? [String: Any]
        let sent = try XCTUnwrap((end?["sum_sent"] as? [String: Any])?["bytes"] as? Int, "iperf3 reported the bytes sent")
        let received = try XCTUnwrap((end?["sum_received"] as? [String: Any])?["bytes"] as? Int, "iperf3 reported the bytes received")
        XCTAssertGreaterThan(received, 0, "TCP moved data through the bus")
        XCTAssertLessThanOrEqual(received, sent)
        // The third station saw the ARP broadcasts, never the unicast between the other two.
        let c = try String(contentsOfFile: dir + "/c.txt", encoding: .utf8)
        XCTAssertTrue(c.contains("Request who-has 10.77.0.2 tell 10.77.0.1"), c)
        XCTAssertFalse(c.contains("ICMP echo"), "unicast ICMP leaked to the third port:\n\(c)")
        XCTAssertFalse(c.contains("10.77.0.1.") && c.contains("> 10.77.0.2."), "TCP leaked to the third port")
        let stat = try String(contentsOfFile: dir + "/stat.txt", encoding: .utf8)
        XCTAssertTrue(stat.contains("tap ta\(tag)"), stat)
    }

    func testAVnetBusCarriesWholeGSOSegmentsBetweenTAPs() async throws {
        let r = try await script("""
            ipn create $D/fast --policy switch --vnet-hdr --persistent
            ipn tap $D/fast ta$T 2> tap-a.log &
            ipn tap $D/fast tb$T 2> tap-b.log &
            appear ta$T && appear tb$T || exit 1
            host ns${T}a ta$T 10.77.5.1
            host ns${T}b tb$T 10.77.5.2
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.5.2 > /dev/null && echo "vnet ping ok"
            ip netns exec ns${T}b iperf3 -s -1 > /dev/null 2>&1 &
            serving ns${T}b || exit 1
            ip netns exec ns${T}a iperf3 -c 10.77.5.2 -t 2 -J > iperf.json && echo "vnet iperf3 ok"
            ipn stat $D/fast > stat.txt
            ipn rm $D/fast
            """)
        XCTAssertTrue(r.standardOutput.contains("vnet ping ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("vnet iperf3 ok"), "\(r)")
        // Segments larger than an Ethernet MTU crossed the bus: the TAPs handed over GSO frames.
        let stat = try String(contentsOfFile: dir + "/stat.txt", encoding: .utf8)
        XCTAssertTrue(stat.contains("mtu 65560"), stat)
        let line = try XCTUnwrap(stat.split(separator: "\n").first { $0.contains("tap ta\(tag)") }, stat)
        let counts = line.split(separator: " ").filter { $0.wholeMatch(of: /\d+\/\d+/) != nil }  // queue, sent, delivered
        let sent = counts[1].split(separator: "/").compactMap { Double($0) }
        XCTAssertGreaterThan(sent[1] / max(1, sent[0]), 3000, "the sender's TAP handed over GSO segments, not 1514-byte frames: \(line)")
    }

    func testAGrabbedVethEndJoinsItsNamespaceToTheBus() async throws {
        let r = try await script("""
            ipn create $D/lan --policy switch --persistent
            ipn tap $D/lan ta$T 2> tap.log &
            appear ta$T || exit 1
            host ns${T}a ta$T 10.77.1.1
            ip link add vg$T type veth peer name vp$T
            host ns${T}d vp$T 10.77.1.4
            ip link set vg$T up
            ipn grab $D/lan vg$T 2> grab.log &
            onbus $D/lan "grab vg$T" || exit 1
            ip netns exec ns${T}d ping -c 3 -i 0.2 -W 2 10.77.1.1 > ping.txt && echo "ping d->a ok"
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.1.4 >> ping.txt && echo "ping a->d ok"
            ipn stat $D/lan > stat.txt
            ipn rm $D/lan
            """)
        XCTAssertTrue(r.standardOutput.contains("ping d->a ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("ping a->d ok"), "\(r)")
        let ping = try String(contentsOfFile: dir + "/ping.txt", encoding: .utf8)
        XCTAssertFalse(ping.contains("DUP!"), "no frame came back twice (no echo, no loop):\n\(ping)")
        XCTAssertTrue(try String(contentsOfFile: dir + "/stat.txt", encoding: .utf8).contains("grab vg\(tag)"))
    }

    func testACableJoinsTwoSwitchBusesAndUnpluggingItStopsTheTraffic() async throws {
        let r = try await script("""
            twobuses 10.77.2 || exit 1
            ipn cable $D/one $D/two > cable1.txt 2>&1 &
            cable=$!
            onbus $D/one "cable to $D/two" && onbus $D/two "cable to $D/one" || exit 1
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.2.2 > /dev/null && echo "across ok"
            ip netns exec ns${T}b iperf3 -s -1 > /dev/null 2>&1 &
            serving ns${T}b || exit 1
            ip netns exec ns${T}a iperf3 -c 10.77.2.2 -t 1 > /dev/null && echo "iperf3 across ok"
            kill -INT $cable; wait $cable
            ip netns exec ns${T}a ping -c 2 -i 0.2 -W 1 10.77.2.2 > /dev/null || echo "unplugged: no traffic"
            ipn cable $D/one $D/two > cable2.txt 2>&1 &
            onbus $D/one "cable to $D/two" && onbus $D/two "cable to $D/one" || exit 1
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.2.2 > /dev/null && echo "new cable ok"
            ipn rm $D/one; ipn rm $D/two
            """)
        XCTAssertTrue(r.standardOutput.contains("across ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("iperf3 across ok"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("unplugged: no traffic"), "\(r)")
        XCTAssertTrue(r.standardOutput.contains("new cable ok"), "\(r)")
        let first = try String(contentsOfFile: dir + "/cable1.txt", encoding: .utf8)
        XCTAssertTrue(first.contains("frames"), first)
    }

    func testVDEPlugBridgesTheBusToAVDETapThroughThePlugin() async throws {
        try TestSupport.require(tool: "/usr/bin/vde_plug", "scripts/setup installs vdeplug")
        let r = try await script("""
            export LD_LIBRARY_PATH='\(TestSupport.productsDirectory)'
            ipn create $D/lan --policy switch --persistent
            ipn tap $D/lan ta$T 2> tap.log &
            appear ta$T || exit 1
            host ns${T}a ta$T 10.77.3.1
            # vdeplug4's own tap:// plugin on one side, our ipn:// on the other.
            vde_plug ipn://$D/lan tap://tv$T 2> vde.log &
            appear tv$T || { cat vde.log; exit 1; }
            host ns${T}v tv$T 10.77.3.5
            ip netns exec ns${T}v ping -c 3 -i 0.2 -W 2 10.77.3.1 > ping.txt && echo "vde ping ok"
            ipn stat $D/lan > stat.txt
            ipn rm $D/lan
            """)
        XCTAssertTrue(r.standardOutput.contains("vde ping ok"), "\(r)")
        XCTAssertTrue(try String(contentsOfFile: dir + "/stat.txt", encoding: .utf8).contains("vde "), "the VDE node shows in ipn stat")
    }

    func testAVDETransportIsACableBetweenBuses() async throws {
        try TestSupport.require(tool: "/usr/bin/dpipe", "scripts/setup installs vde2")
        let r = try await script("""
            export LD_LIBRARY_PATH='\(TestSupport.productsDirectory)'
            twobuses 10.77.6 || exit 1
            # What `dpipe vde_plug ipn:///a = ssh HOST vde_plug ipn:///b` does between machines, here on one.
            dpipe vde_plug ipn://$D/one = vde_plug ipn://$D/two 2> dpipe.log &
            onbus $D/one "vde " && onbus $D/two "vde " || { cat dpipe.log; exit 1; }
            ip netns exec ns${T}a ping -c 3 -i 0.2 -W 2 10.77.6.2 > /dev/null && echo "dpipe cable ok"
            ipn rm $D/one; ipn rm $D/two
            """)
        XCTAssertTrue(r.standardOutput.contains("dpipe cable ok"), "\(r)")
    }

    func testAQemuGuestOnTheBusPingsANamespace() async throws {
        let vm = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/vm/run").path
        try TestSupport.require(tool: "/usr/bin/qemu-system-x86_64", "scripts/setup --devices installs qemu")
        let r = try await script("""
            export LD_LIBRARY_PATH='\(TestSupport.productsDirectory)'
            ipn create $D/lan --policy switch --persistent
            ipn tap $D/lan ta$T 2> tap.log &
            appear ta$T || exit 1
            host ns${T}a ta$T 10.77.4.1
            mkdir -p $D/guest
            cat > $D/guest/net.sh <<'GUEST'
            modprobe virtio_net
            i=0; until ip link show eth0 > /dev/null 2>&1 || [ $i -gt 50 ]; do i=$((i+1)); sleep 0.1; done
            ip addr add 10.77.4.9/24 dev eth0
            ip link set eth0 up
            ping -c 3 -i 0.5 -W 3 10.77.4.1
            GUEST
            IPN_VM_NIC="vde,sock=ipn://$D/lan,model=virtio-net-pci" bash '\(vm)' $D/guest sh net.sh > guest.txt 2>&1 && echo "guest ping ok"
            ipn stat $D/lan > stat.txt
            ipn rm $D/lan
            """, timeout: 240)
        let guest = (try? String(contentsOfFile: dir + "/guest.txt", encoding: .utf8)) ?? ""
        XCTAssertTrue(r.standardOutput.contains("guest ping ok"), "\(r)\n\(guest)")
        XCTAssertTrue(guest.contains("3 packets transmitted, 3 packets received") || guest.contains("3 packets transmitted, 3 received"), guest)
    }

    func testMissingRightsAndBadInterfacesAreNamed() async throws {
        let r = try await script("""
            ipn create $D/lan --policy switch --mode 0776 --persistent
            setpriv --reuid=4101 --regid=4101 --clear-groups ipn tap $D/lan tx$T; echo "unprivileged $?"
            ipn grab $D/lan nosuch$T; echo "nosuch $?"
            chmod 0666 $D/lan
            # CAP_NET_ADMIN but not the bus's x right (another user; root holds every right).
            setpriv --reuid=4101 --regid=4101 --clear-groups --inh-caps +net_admin --ambient-caps +net_admin ipn tap $D/lan tx$T; echo "no manage right $?"
            ipn rm $D/lan
            """)
        XCTAssertTrue(r.standardOutput.contains("unprivileged 1"), "\(r)")
        XCTAssertTrue(r.standardError.contains("needs CAP_NET_ADMIN"), r.standardError)
        XCTAssertTrue(r.standardOutput.contains("nosuch 1"), "\(r)")
        XCTAssertTrue(r.standardError.contains("no network interface named nosuch\(tag)"), r.standardError)
        XCTAssertTrue(r.standardOutput.contains("no manage right 1"), "\(r)")
        XCTAssertTrue(r.standardError.contains("no manage (x) right"), r.standardError)
    }
}
