import Foundation

/// A mono signal and what a test measures on it.
public struct Signal: Sendable {
    public var samples: [Int16]
    public var rate: Int
    public init(_ samples: [Int16], rate: Int) { self.samples = samples; self.rate = rate }
    /// Channel `channel` of interleaved samples with `of` channels.
    public init(_ interleaved: [Int16], channel: Int, of channels: Int, rate: Int) {
        self.init(stride(from: channel, to: interleaved.count, by: channels).map { interleaved[$0] }, rate: rate)
    }

    /// From the first to the last sample above -40 dBFS.
    public func active() -> Signal {
        let threshold: Int16 = 328
        guard let a = samples.firstIndex(where: { abs(Int($0)) > threshold }),
              let b = samples.lastIndex(where: { abs(Int($0)) > threshold }) else { return Signal([], rate: rate) }
        // Trim 10 ms at both ends (fade-in of the loopback start, the last partial period).
        let margin = rate / 100
        return Signal(b - a > 4 * margin ? Array(samples[(a + margin)...(b - margin)]) : [], rate: rate)
    }

    public var seconds: Double { Double(samples.count) / Double(rate) }

    /// From the rising zero crossings, interpolated between samples, measured over the unbroken stretches of
    /// the tone only: where a period was lost or a silence inserted (each reported where it happens, and judged
    /// by the tests that count samples), the interval between two crossings is not one cycle, and is left out.
    /// A pitch error from resampling moves every interval, so it still shows.
    public var frequency: Double {
        var crossings: [Double] = []
        for i in 1..<max(1, samples.count) where samples[i - 1] < 0 && samples[i] >= 0 {
            let a = Double(samples[i - 1]), b = Double(samples[i])
            crossings.append(Double(i - 1) + (-a) / (b - a))
        }
        let intervals = zip(crossings, crossings.dropFirst()).map { $1 - $0 }
        guard intervals.count > 2 else { return 0 }
        let median = intervals.sorted()[intervals.count / 2]
        let cycles = intervals.filter { abs($0 - median) < 0.05 * median }
        // Most of the tone must be unbroken, or what is measured is not a tone.
        guard cycles.count * 2 > intervals.count else { return 0 }
        return Double(rate) * Double(cycles.count) / cycles.reduce(0, +)
    }

    public var rmsDecibels: Double {
        guard !samples.isEmpty else { return -200 }
        let power = samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(samples.count)
        return 10 * log10(power / (32768.0 * 32768.0))
    }
}
