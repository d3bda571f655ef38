public struct LimitOptions: Sendable, Equatable {
    /// Calls of one key running at once (a bulkhead); 0: no limit.
    public var maxConcurrent = 0
    /// Token budget refilled per minute (seed 002 §3 `requestsPerMinute`); 0: no rate limit.
    public var perMinute = 0.0
    /// Tokens one call costs (seed 002 `requestCost`).
    public var cost = 1.0
    /// Bucket size: the burst allowed after a quiet spell; 0: a minute's worth.
    public var burst = 0.0

    public init() {}

    public var capacity: Double { burst > 0 ? burst : perMinute }

    public func problem() -> String? {
        if maxConcurrent < 0 || maxConcurrent > 1_000_000 { return "concurrency limit must be 0 .. 1000000" }
        for (n, v) in [("requests per minute", perMinute), ("cost", cost), ("burst", burst)] where !(v.isFinite && v >= 0 && v <= 1e12) {
            return "\(n) must be a number from 0 to 1e12"
        }
        if perMinute > 0 && !(cost > 0) { return "cost must be more than 0" }
        if perMinute > 0 && cost > capacity {
            return "one call costs \(cost) but the bucket holds only \(capacity): no call could ever start"
        }
        return nil
    }
}

/// The limits of one key: a concurrency limit (a bulkhead) and a token
/// bucket, under one lock. A call that finds no room is not turned away:
/// the engine parks it here (concurrency) or delays it until the bucket
/// holds its cost (rate), and it holds no worker meanwhile.
public final class KeyLimiter: @unchecked Sendable {
    public let options: LimitOptions
    private let lock = Lock()
    private var running = 0
    private var tokens: Double
    private var refilledAt: Int64
    private var waiters: [Int32] = []
    private var waitHead = 0
    /// Tokens per nanosecond.
    private let rate: Double

    public init(_ options: LimitOptions, now: Int64) {
        self.options = options
        tokens = options.capacity
        refilledAt = now
        rate = options.perMinute / 60e9
    }

    public enum Decision: Equatable, Sendable {
        case granted
        /// Parked: `register` ran under the lock; the slot will be handed over.
        case parked
        /// No tokens: try again at this instant.
        case retryAt(Int64)
        /// `register` refused (the task ended meanwhile): nothing taken.
        case gone
    }

    @inline(__always) private func refill(_ now: Int64) {
        if rate > 0 && now > refilledAt {
            tokens = min(options.capacity, tokens + Double(now - refilledAt) * rate)
            refilledAt = now
        }
    }

    /// Takes a slot (unless `haveSlot`) and the cost in tokens. When the slot
    /// is missing, `park()` runs under the lock and, if it returns true, the
    /// task is queued here to be handed a slot.
    public func acquire(now: Int64, haveSlot: Bool, prepaid: Bool = false, task: Int32, park: () -> Bool) -> Decision {
        lock.lock()
        defer { lock.unlock() }
        let limited = options.maxConcurrent > 0
        if limited && !haveSlot && running >= options.maxConcurrent {
            if !park() { return .gone }
            waiters.append(task)
            return .parked
        }
        if rate > 0 && !prepaid {
            refill(now)
            if tokens < options.cost {
                let wait = (options.cost - tokens) / rate
                return .retryAt(now &+ max(1, Int64(wait.rounded(.up))))
            }
            tokens -= options.cost
        }
        if limited && !haveSlot { running += 1 }
        return .granted
    }

    /// Whether a call could start now, and if so takes its slot and tokens
    /// (a non-blocking try-submit).
    public func tryAcquire(now: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if options.maxConcurrent > 0 && running >= options.maxConcurrent { return false }
        if rate > 0 {
            refill(now)
            if tokens < options.cost { return false }
            tokens -= options.cost
        }
        if options.maxConcurrent > 0 { running += 1 }
        return true
    }

    /// Gives the slot back; returns a parked task that now holds it, or -1.
    public func release() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if waitHead < waiters.count {
            let t = waiters[waitHead]
            waitHead += 1
            if waitHead > 64 && waitHead * 2 > waiters.count {
                waiters.removeFirst(waitHead)
                waitHead = 0
            }
            return t
        }
        if running > 0 { running -= 1 }
        return -1
    }

    /// Puts back tokens taken by a call that did not happen.
    public func refund() {
        guard rate > 0 else { return }
        lock.lock()
        tokens = min(options.capacity, tokens + options.cost)
        lock.unlock()
    }

    public struct Snapshot: Sendable, Equatable {
        public var running: Int
        public var waiting: Int
        public var tokens: Double
    }

    public func snapshot(now: Int64) -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        refill(now)
        return Snapshot(running: running, waiting: waiters.count - waitHead, tokens: rate > 0 ? tokens : 0)
    }
}
