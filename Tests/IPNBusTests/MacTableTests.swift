import XCTest
@testable import IPNBus

/// The switch's learning table: aging, moves, departures and floods of random addresses.
final class MacTableTests: XCTestCase {
    let second: UInt64 = 1_000_000_000

    func testEntriesAgeOut() {
        var t = MacTable(capacity: 64, ageSeconds: 30)
        t.learn(0xa, on: 1, now: 0)
        XCTAssertEqual(t.lookup(0xa, now: 29 * second), 1)
        XCTAssertNil(t.lookup(0xa, now: 30 * second), "expired entries are not used")
        t.age(now: 31 * second)
        XCTAssertEqual(t.count, 0)
    }

    func testTrafficRefreshesAnEntry() {
        var t = MacTable(capacity: 64, ageSeconds: 30)
        t.learn(0xa, on: 1, now: 0)
        t.learn(0xa, on: 1, now: 20 * second)
        t.age(now: 40 * second)
        XCTAssertEqual(t.lookup(0xa, now: 40 * second), 1)
    }

    func testAStationThatMovesIsRelearnedAtOnce() {
        var t = MacTable(capacity: 64, ageSeconds: 30)
        t.learn(0xa, on: 1, now: 0)
        t.learn(0xa, on: 2, now: 1)
        XCTAssertEqual(t.lookup(0xa, now: 2), 2)
    }

    func testALeavingNodeIsForgotten() {
        var t = MacTable(capacity: 64, ageSeconds: 30)
        t.learn(0xa, on: 1, now: 0)
        t.learn(0xb, on: 2, now: 0)
        t.forget(node: 1)
        XCTAssertNil(t.lookup(0xa, now: 1))
        XCTAssertEqual(t.lookup(0xb, now: 1), 2)
    }

    func testAFloodOfRandomSourcesStaysBoundedAndKnownStationsKeepTheirEntries() {
        var t = MacTable(capacity: 256, ageSeconds: 30)
        for station in 0..<8 { t.learn(UInt64(0x100 + station), on: UInt32(station % 3 + 1), now: 0) }
        var rng = SystemRandomNumberGenerator()
        for i in 0..<100_000 {
            t.learn(UInt64.random(in: 0x1_0000_0000...0xffff_ffff_ffff, using: &rng), on: 9, now: UInt64(i))
        }
        XCTAssertLessThanOrEqual(t.count, 256)
        XCTAssertLessThanOrEqual(t.entries.values.filter { $0.node == 9 }.count, 64, "one node may own a quarter of the table")
        for station in 0..<8 { XCTAssertEqual(t.lookup(UInt64(0x100 + station), now: 100_000), UInt32(station % 3 + 1)) }
        XCTAssertGreaterThan(t.refused, 99_000)
    }
}
