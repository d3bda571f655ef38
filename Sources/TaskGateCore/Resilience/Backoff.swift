/// How a delay is spread out so that many clients failing together do not
/// retry together.
public enum Jitter: Int32, Sendable {
    /// The computed delay as it is.
    case none = 0
    /// delay ± delay × factor, uniformly (seed 000 AdaptiveBackoff, seed 004 §9).
    case proportional = 1
    /// Uniform in [0, delay] ("full jitter").
    case full = 2
    /// delay / 2 + uniform in [0, delay / 2] ("equal jitter").
    case equal = 3
    /// Uniform in [base, 3 × previous delay] ("decorrelated jitter"), then capped.
    case decorrelated = 4
}

/// Exponential backoff, written down as plainly as gRPC's spec:
///
///     raw(k)   = delays[min(k, n) - 1]               when a list is given
///              = min(cap, base × multiplier^(k - 1)) otherwise
///     delay(k) = clamp(jitter(raw(k)), 0, cap)
///
/// for the k-th retry (k = 1 is the first retry, after the first failed call).
/// A delay after jitter is never negative and never above the cap.
public struct Backoff: Sendable, Equatable {
    public var base: Int64 = 1_000_000_000
    public var multiplier: Double = 2
    public var cap: Int64 = 60_000_000_000
    public var jitter: Jitter = .none
    /// For `.proportional`: the share of the delay to spread by (0.1: ±10%).
    public var jitterFactor: Double = 0.1
    /// Explicit delays (the seed config's `retry_delays`); the last one
    /// repeats. Empty: the exponential formula.
    public var delays: [Int64] = []

    public init() {}

    /// Problems with the parameters, or nil.
    public func problem() -> String? {
        if base < 0 { return "base delay must not be negative" }
        if cap < 0 { return "maximum delay must not be negative" }
        if !(multiplier.isFinite && multiplier >= 1 && multiplier <= 1000) { return "multiplier must be between 1 and 1000" }
        if !(jitterFactor.isFinite && jitterFactor >= 0 && jitterFactor <= 1) { return "jitter factor must be between 0 and 1" }
        if delays.count > 1000 { return "more than 1000 explicit delays" }
        if delays.contains(where: { $0 < 0 }) { return "an explicit delay is negative" }
        return nil
    }

    /// The delay before retry `k` before jitter.
    public func raw(_ k: Int) -> Int64 {
        if !delays.isEmpty { return min(cap, delays[min(max(k, 1), delays.count) - 1]) }
        var d = Double(base)
        let limit = Double(cap)
        var i = 1
        while i < k && d < limit {
            d *= multiplier
            i += 1
        }
        return d >= limit ? cap : Int64(d)
    }

    /// The delay before retry `k`, given the delay used before the previous
    /// retry (for `.decorrelated`; 0 on the first) and a uniform `u` in [0, 1).
    public func delay(_ k: Int, previous: Int64, unit u: Double) -> Int64 {
        let r = Double(raw(k))
        let d: Double
        switch jitter {
        case .none: d = r
        case .proportional: d = r + r * jitterFactor * (2 * u - 1)
        case .full: d = r * u
        case .equal: d = r / 2 + (r / 2) * u
        case .decorrelated:
            let low = Double(delays.isEmpty ? base : raw(1))
            let high = max(low, 3 * Double(previous > 0 ? previous : Int64(low)))
            d = low + (high - low) * u
        }
        if !(d > 0) { return 0 }
        return d >= Double(cap) ? cap : Int64(d)
    }
}

/// A retry budget in the manner of tower's: retries may be at most `ratio`
/// of the calls made in the last `window`, plus `minPerSecond` retries a
/// second that are always allowed, so a dead service does not get every
/// call multiplied by the retry count. Calls and retries are counted in ten
/// time buckets covering the window.
public final class RetryBudget: @unchecked Sendable {
    public let ratio: Double
    public let window: Int64
    public let minPerSecond: Double
    private let lock = Lock()
    private let bucketWidth: Int64
    private var buckets: [(epoch: Int64, calls: Int64, retries: Int64)]

    public init(ratio: Double, window: Int64 = 10_000_000_000, minPerSecond: Double = 10) {
        self.ratio = ratio
        self.window = max(window, 10)
        self.minPerSecond = minPerSecond
        bucketWidth = max(self.window / 10, 1)
        buckets = Array(repeating: (Int64.min, 0, 0), count: 10)
    }

    @inline(__always) private func slot(_ now: Int64) -> Int {
        let e = now / bucketWidth
        let k = Int(((e % 10) + 10) % 10)
        if buckets[k].epoch != e { buckets[k] = (e, 0, 0) }
        return k
    }

    /// Counts a first call.
    public func deposit(now: Int64) {
        lock.lock()
        buckets[slot(now)].calls += 1
        lock.unlock()
    }

    /// True (and counted) when one more retry fits in the budget.
    public func tryWithdraw(now: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let k = slot(now)
        let oldest = now / bucketWidth - 9
        var calls: Int64 = 0, retries: Int64 = 0
        for b in buckets where b.epoch >= oldest {
            calls += b.calls
            retries += b.retries
        }
        let allowed = minPerSecond * Double(window) / 1e9 + ratio * Double(calls)
        if Double(retries) + 1 > allowed { return false }
        buckets[k].retries += 1
        return true
    }
}
