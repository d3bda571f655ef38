public enum BreakerState: Int32, Sendable {
    case closed = 0, open = 1, halfOpen = 2, forcedOpen = 3, forcedClosed = 4

    public var name: String {
        switch self {
        case .closed: return "closed"
        case .open: return "open"
        case .halfOpen: return "half_open"
        case .forcedOpen: return "forced_open"
        case .forcedClosed: return "forced_closed"
        }
    }
}

public enum BreakerWindow: Sendable, Equatable {
    /// Only consecutive failures count.
    case none
    /// The last `n` calls.
    case count(Int)
    /// The calls of the last `n` seconds (one bucket per second).
    case time(Int)
}

public struct BreakerOptions: Sendable, Equatable {
    /// Consecutive failures that open the breaker (seed 004: 5); 0: off.
    public var failureThreshold = 5
    /// Successful probes that close it again (seed 004: 2).
    public var successThreshold = 2
    /// Probes admitted while half-open; 0: `successThreshold`.
    public var halfOpenCalls = 0
    /// How long it stays open before admitting probes (seed 004: 60 s).
    public var openFor: Int64 = 60_000_000_000
    public var window: BreakerWindow = .none
    /// Calls the window must hold before a rate can trip the breaker.
    public var minimumCalls = 10
    /// Failure rate in the window that opens it (0.5: half); 0: off.
    public var failureRate = 0.0
    /// A call at least this long counts as slow; 0: off.
    public var slowCall: Int64 = 0
    /// Slow-call rate in the window that opens it; 0: off.
    public var slowCallRate = 0.0

    public init() {}

    public var probes: Int { halfOpenCalls > 0 ? halfOpenCalls : successThreshold }

    public func problem() -> String? {
        if failureThreshold < 0 || failureThreshold > 1_000_000 { return "failure threshold must be 0 .. 1000000" }
        if successThreshold < 1 || successThreshold > 1_000_000 { return "success threshold must be 1 .. 1000000" }
        if halfOpenCalls < 0 || halfOpenCalls > 1_000_000 { return "half-open calls must be 0 .. 1000000" }
        if halfOpenCalls > 0 && halfOpenCalls < successThreshold {
            return "half-open calls (\(halfOpenCalls)) must be at least the success threshold (\(successThreshold)), or the breaker could never close"
        }
        if openFor < 0 { return "open duration must not be negative" }
        switch window {
        case .none: break
        case .count(let n): if n < 1 || n > 100_000 { return "count window must hold 1 .. 100000 calls" }
        case .time(let n): if n < 1 || n > 3600 { return "time window must be 1 .. 3600 seconds" }
        }
        if minimumCalls < 1 { return "minimum calls must be at least 1" }
        for (name, r) in [("failure rate", failureRate), ("slow-call rate", slowCallRate)] where !(r.isFinite && r >= 0 && r <= 1) {
            return "\(name) must be between 0 and 1"
        }
        if (failureRate > 0 || slowCallRate > 0) && window == .none { return "a failure or slow-call rate needs a window" }
        if slowCall < 0 { return "slow-call duration must not be negative" }
        if failureThreshold == 0 && failureRate == 0 && slowCallRate == 0 { return "nothing would ever open the breaker" }
        return nil
    }
}

public struct BreakerSnapshot: Sendable, Equatable {
    public var state: BreakerState
    public var generation: UInt64
    public var consecutiveFailures: Int
    /// Successful probes in the current half-open period.
    public var halfOpenSuccesses: Int
    /// Probes admitted in the current half-open period.
    public var probesAdmitted: Int
    /// When it last opened (the policy clock), or 0.
    public var openedAt: Int64
    public var windowCalls: Int
    public var windowFailures: Int
    public var windowSlow: Int
    /// Calls refused since creation.
    public var rejected: Int64
    /// Times it has opened since creation.
    public var timesOpened: Int64
}

/// Closed, open, half-open (seed 004 §6), with gobreaker's generation
/// counter: a call is admitted with a ticket naming the generation it
/// started in, and a report carrying an older generation is ignored, so a
/// slow call that began before the breaker opened cannot close it, nor a
/// failure from before a reset open it again.
///
/// All state sits under one lock; every call takes it twice (allow, report).
public final class CircuitBreaker: @unchecked Sendable {
    public struct Ticket: Sendable, Equatable {
        public var generation: UInt64
        public var probe: Bool
    }

    public let options: BreakerOptions
    private let lock = Lock()
    private var state = BreakerState.closed
    private var generation: UInt64 = 1
    private var consecutive = 0
    private var halfOpenSuccesses = 0
    private var probesAdmitted = 0
    private var openedAt: Int64 = 0
    private var rejected: Int64 = 0
    private var timesOpened: Int64 = 0
    /// Count window: a ring of outcomes (bit 0 failed, bit 1 slow).
    private var ring: [UInt8] = []
    private var ringNext = 0
    private var ringFilled = 0
    /// Time window: one bucket per second.
    private var seconds: [(epoch: Int64, calls: Int32, failures: Int32, slow: Int32)] = []
    private var sums = (calls: 0, failures: 0, slow: 0)
    /// Told of every change of state, outside the lock: (from, to, generation).
    public var onTransition: (@Sendable (BreakerState, BreakerState, UInt64) -> Void)?

    public init(_ options: BreakerOptions) {
        self.options = options
        switch options.window {
        case .count(let n): ring = Array(repeating: 0, count: n)
        case .time(let n): seconds = Array(repeating: (Int64.min, 0, 0, 0), count: n)
        case .none: break
        }
    }

    /// A ticket to make the call, or nil when the breaker refuses it.
    public func allow(now: Int64) -> Ticket? {
        lock.lock()
        var change: (BreakerState, BreakerState, UInt64)? = nil
        var ticket: Ticket? = nil
        switch state {
        case .closed, .forcedClosed:
            ticket = Ticket(generation: generation, probe: false)
        case .open:
            if now >= openedAt &+ options.openFor {
                change = move(to: .halfOpen, now: now)
                probesAdmitted = 1
                ticket = Ticket(generation: generation, probe: true)
            }
        case .halfOpen:
            if probesAdmitted < options.probes {
                probesAdmitted += 1
                ticket = Ticket(generation: generation, probe: true)
            }
        case .forcedOpen:
            break
        }
        if ticket == nil { rejected += 1 }
        lock.unlock()
        if let change { onTransition?(change.0, change.1, change.2) }
        return ticket
    }

    /// Reports how an admitted call went. `duration` counts for slow calls.
    /// Returns false when the report was ignored (a stale generation).
    @discardableResult
    public func report(_ ticket: Ticket, success: Bool, duration: Int64 = 0, now: Int64) -> Bool {
        lock.lock()
        guard ticket.generation == generation else { lock.unlock(); return false }
        var change: (BreakerState, BreakerState, UInt64)? = nil
        let slow = options.slowCall > 0 && duration >= options.slowCall
        switch state {
        case .closed:
            record(failed: !success, slow: slow, now: now)
            consecutive = success ? 0 : consecutive + 1
            if shouldTrip() { change = move(to: .open, now: now) }
        case .halfOpen:
            if success && !slow {
                halfOpenSuccesses += 1
                if halfOpenSuccesses >= options.successThreshold { change = move(to: .closed, now: now) }
            } else {
                change = move(to: .open, now: now)
            }
        case .forcedClosed:
            record(failed: !success, slow: slow, now: now)
            consecutive = success ? 0 : consecutive + 1
        case .open, .forcedOpen:
            break
        }
        lock.unlock()
        if let change { onTransition?(change.0, change.1, change.2) }
        return true
    }

    /// Gives back a ticket whose call never happened (cancelled before it
    /// ran), so a half-open breaker does not wait for a probe that never reports.
    public func release(_ ticket: Ticket) {
        lock.lock()
        if ticket.probe && ticket.generation == generation && state == .halfOpen && probesAdmitted > 0 {
            probesAdmitted -= 1
        }
        lock.unlock()
    }

    /// True when a call now would be refused, without taking a ticket.
    public func wouldReject(now: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        switch state {
        case .closed, .forcedClosed: return false
        case .open: return now < openedAt &+ options.openFor
        case .halfOpen: return probesAdmitted >= options.probes
        case .forcedOpen: return true
        }
    }

    public enum Command: Int32, Sendable { case reset = 0, forceOpen = 1, forceClosed = 2 }

    /// Reset: closed with empty counts. Force open / closed: stays so until
    /// the next command. Each starts a new generation.
    public func apply(_ command: Command, now: Int64) {
        lock.lock()
        let to: BreakerState = command == .reset ? .closed : command == .forceOpen ? .forcedOpen : .forcedClosed
        let change = move(to: to, now: now)
        lock.unlock()
        if let change { onTransition?(change.0, change.1, change.2) }
    }

    /// The state at `now` (an open breaker whose time is up reads half-open;
    /// the move itself happens with the next call).
    public func snapshot(now: Int64) -> BreakerSnapshot {
        lock.lock()
        defer { lock.unlock() }
        var s = state
        if s == .open && now >= openedAt &+ options.openFor { s = .halfOpen }
        let fresh = s != state
        pruneSeconds(now)
        return BreakerSnapshot(state: s, generation: generation, consecutiveFailures: consecutive,
                               halfOpenSuccesses: fresh ? 0 : halfOpenSuccesses, probesAdmitted: fresh ? 0 : probesAdmitted,
                               openedAt: openedAt, windowCalls: sums.calls, windowFailures: sums.failures,
                               windowSlow: sums.slow, rejected: rejected, timesOpened: timesOpened)
    }

    // MARK: - under the lock

    private func move(to next: BreakerState, now: Int64) -> (BreakerState, BreakerState, UInt64)? {
        let from = state
        state = next
        generation &+= 1
        halfOpenSuccesses = 0
        probesAdmitted = 0
        switch next {
        case .open, .forcedOpen:
            openedAt = now
            if next == .open { timesOpened += 1 }
        case .closed, .forcedClosed:
            consecutive = 0
            clearWindow()
        case .halfOpen:
            break
        }
        return from == next && next != .open ? nil : (from, next, generation)
    }

    private func shouldTrip() -> Bool {
        if options.failureThreshold > 0 && consecutive >= options.failureThreshold { return true }
        guard sums.calls >= options.minimumCalls else { return false }
        let calls = Double(sums.calls)
        if options.failureRate > 0 && Double(sums.failures) / calls >= options.failureRate { return true }
        if options.slowCallRate > 0 && Double(sums.slow) / calls >= options.slowCallRate { return true }
        return false
    }

    private func record(failed: Bool, slow: Bool, now: Int64) {
        switch options.window {
        case .none: return
        case .count(let n):
            if ringFilled == n {
                let old = ring[ringNext]
                sums.calls -= 1
                if old & 1 != 0 { sums.failures -= 1 }
                if old & 2 != 0 { sums.slow -= 1 }
            } else {
                ringFilled += 1
            }
            ring[ringNext] = (failed ? 1 : 0) | (slow ? 2 : 0)
            ringNext = (ringNext + 1) % n
        case .time(let n):
            // A bucket of this slot with an older epoch is out of the window:
            // pruning has already taken it off the sums.
            pruneSeconds(now)
            let e = now / 1_000_000_000
            let k = Int(((e % Int64(n)) + Int64(n)) % Int64(n))
            if seconds[k].epoch != e { seconds[k] = (e, 0, 0, 0) }
            seconds[k].calls += 1
            if failed { seconds[k].failures += 1 }
            if slow { seconds[k].slow += 1 }
        }
        sums.calls += 1
        if failed { sums.failures += 1 }
        if slow { sums.slow += 1 }
    }

    /// Drops time buckets older than the window from the sums.
    private func pruneSeconds(_ now: Int64) {
        guard case .time(let n) = options.window else { return }
        let oldest = now / 1_000_000_000 - Int64(n) + 1
        for k in 0..<n where seconds[k].epoch != Int64.min && seconds[k].epoch < oldest {
            sums.calls -= Int(seconds[k].calls)
            sums.failures -= Int(seconds[k].failures)
            sums.slow -= Int(seconds[k].slow)
            seconds[k] = (Int64.min, 0, 0, 0)
        }
    }

    private func clearWindow() {
        for k in ring.indices { ring[k] = 0 }
        ringNext = 0
        ringFilled = 0
        for k in seconds.indices { seconds[k] = (Int64.min, 0, 0, 0) }
        sums = (0, 0, 0)
    }
}
