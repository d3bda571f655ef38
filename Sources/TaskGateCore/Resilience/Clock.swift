import CTaskGateSupport

/// The time every policy reads: retry delays, breaker windows and open
/// periods, rate-limit refills and credential cool-downs. A pool's clock is
/// the monotonic clock unless the host hands it a virtual one, which moves
/// only when told to; tests then hit exact instants without sleeping.
///
/// Task timeouts and the timestamps in results stay on the real monotonic
/// clock: a processor runs in real time whatever the policies believe.
public final class PolicyClock: @unchecked Sendable {
    public let isVirtual: Bool
    /// The virtual time, in nanoseconds.
    private let virtualNow: UnsafeMutablePointer<Int64>
    private let lock = Lock()
    /// Called after every advance (the pools' delay timers waking up).
    private var listeners: [(id: Int, wake: () -> Void)] = []
    private var nextListener = 0

    /// The monotonic clock (CLOCK_MONOTONIC).
    public static let system = PolicyClock(virtualStart: nil)

    /// A virtual clock starting at `virtualStart` ns; nil: the real clock.
    public init(virtualStart: Int64?) {
        isVirtual = virtualStart != nil
        virtualNow = .allocate(capacity: 1)
        virtualNow.initialize(to: virtualStart ?? 0)
    }

    deinit { virtualNow.deallocate() }

    @inline(__always) public func now() -> Int64 {
        isVirtual ? tgs_load_i64(virtualNow) : tgs_monotonic_ns()
    }

    /// Moves a virtual clock forward by `nanoseconds` (>= 0) and wakes the
    /// timers waiting on it. Returns false for the real clock.
    @discardableResult
    public func advance(by nanoseconds: Int64) -> Bool {
        guard isVirtual, nanoseconds >= 0 else { return false }
        lock.lock()
        tgs_store_i64(virtualNow, tgs_load_i64(virtualNow) &+ nanoseconds)
        let wakes = listeners.map(\.wake)
        lock.unlock()
        for w in wakes { w() }
        return true
    }

    func listen(_ wake: @escaping () -> Void) -> Int {
        lock.lock()
        defer { lock.unlock() }
        nextListener += 1
        listeners.append((nextListener, wake))
        return nextListener
    }

    func unlisten(_ id: Int) {
        lock.lock()
        listeners.removeAll { $0.id == id }
        lock.unlock()
    }
}

/// Randomness without shared state: the jitter for a task's n-th retry is a
/// hash of (seed, task, n), so the same seed gives the same delays whatever
/// order the workers happen to run things in.
public enum PolicyRandom {
    @inline(__always) public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) for (seed, stream, n).
    @inline(__always) public static func unit(seed: UInt64, stream: UInt64, n: UInt64) -> Double {
        let h = mix(seed ^ mix(stream &+ mix(n)))
        return Double(h >> 11) * 0x1.0p-53
    }
}

/// Adaptive polling (seed 004 §5): waits that start short, grow by a
/// multiplier up to a maximum, and go back to the start on activity.
public struct AdaptivePolling: Sendable {
    public var initial: Int64
    public var maximum: Int64
    public var multiplier: Double
    public private(set) var current: Int64

    /// Defaults scaled from the seed (1 s, 30 s, 1.5) to the engine's waits.
    public init(initial: Int64 = 1_000_000, maximum: Int64 = 50_000_000, multiplier: Double = 1.5) {
        self.initial = max(1, initial)
        self.maximum = max(self.initial, maximum)
        self.multiplier = multiplier >= 1 ? multiplier : 1
        current = self.initial
    }

    /// The interval to wait now; the next one is longer, up to the maximum.
    public mutating func next() -> Int64 {
        let v = current
        let grown = Double(current) * multiplier
        current = grown >= Double(maximum) ? maximum : max(current, Int64(grown))
        return v
    }

    public mutating func reset() { current = initial }
}
