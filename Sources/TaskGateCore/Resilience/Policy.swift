import CTaskGateSupport
#if canImport(Glibc)
import Glibc
#endif

extension TaskPool {
    /// A result records the delays of at most this many retries (the first ones).
    public static let maxRecordedDelays = 1024
}

public struct RetryOptions: Sendable, Equatable {
    /// Calls in all, the first included; 1: no retries.
    public var maxAttempts = 1
    public var backoff = Backoff()
    /// A plain failure (TG_TASK_FAILED, a Python exception that is neither
    /// Retryable nor Permanent) is permanent instead of retryable.
    public var failedIsPermanent = false
    /// A retry-after reported by the processor replaces the computed delay.
    public var honorRetryAfter = true
    /// The retry budget's share of recent calls; 0: no budget.
    public var budgetRatio = 0.0
    public var budgetWindow: Int64 = 10_000_000_000
    public var budgetMinPerSecond = 10.0

    public init() {}

    public func problem() -> String? {
        if maxAttempts < 1 || maxAttempts > 1_000_000 { return "max attempts must be 1 .. 1000000" }
        if let p = backoff.problem() { return p }
        if !(budgetRatio.isFinite && budgetRatio >= 0 && budgetRatio <= 1000) { return "budget ratio must be 0 .. 1000" }
        if budgetWindow < 1_000_000 || budgetWindow > 3_600_000_000_000 { return "budget window must be 1 ms .. 1 hour" }
        if !(budgetMinPerSecond.isFinite && budgetMinPerSecond >= 0) { return "budget minimum per second must not be negative" }
        return nil
    }
}

/// Everything a policy is made of. Parts left nil are off.
public struct PolicyOptions: @unchecked Sendable {
    public var retry = RetryOptions()
    public var breaker: BreakerOptions? = nil
    public var limit: LimitOptions? = nil
    public var credentials: CredentialRing? = nil
    /// Runs in place of a plain task's processor while its breaker refuses calls.
    public var fallback: Processor? = nil
    /// Runs in place of a plugin task's processor (same signature) while its
    /// breaker refuses calls.
    public var fallbackPlugin: UnsafeMutablePointer<tgp_proc>? = nil
    /// Seeds the jitter.
    public var seed: UInt64 = 0

    public init() {}

    public func problem() -> String? {
        if let p = retry.problem() { return "retry: \(p)" }
        if let p = breaker?.problem() { return "breaker: \(p)" }
        if let p = limit?.problem() { return "limit: \(p)" }
        if (fallback != nil || fallbackPlugin != nil) && breaker == nil { return "a fallback needs a breaker" }
        return nil
    }
}

/// One composable resilience policy: retries with backoff and a budget, a
/// circuit breaker and limits per key, a credential ring. Created in a pool
/// and living as long as it; tasks name it (or inherit their group's or the
/// pool's) at submission.
///
/// Breakers and limiters are per key: the key the task names, else its
/// plugin processor's name, else "" (one for the whole policy).
public final class Policy: @unchecked Sendable {
    public let options: PolicyOptions
    public let clock: PolicyClock
    let budget: RetryBudget?
    /// The pool it was made in (identity only).
    var ownerID: ObjectIdentifier? = nil
    private let lock = Lock()
    private var keys: [String: KeyState] = [:]
    /// Where breaker transitions go. Breakers hold this box, never the
    /// policy: a `weak` reference to the policy would give it a side table,
    /// and every retain and release of it (several per task) would then take
    /// the slow path.
    final class TransitionSink: @unchecked Sendable {
        var handler: (@Sendable (String, BreakerState, BreakerState, UInt64) -> Void)?
    }
    private let sink = TransitionSink()
    /// Told of breaker transitions: (key, from, to, generation). Set it
    /// before tasks run.
    public var onBreakerChange: (@Sendable (String, BreakerState, BreakerState, UInt64) -> Void)? {
        get { sink.handler }
        set { sink.handler = newValue }
    }

    public final class KeyState: @unchecked Sendable {
        public let name: String
        public let breaker: CircuitBreaker?
        public let limiter: KeyLimiter?
        init(name: String, breaker: CircuitBreaker?, limiter: KeyLimiter?) {
            self.name = name
            self.breaker = breaker
            self.limiter = limiter
        }
    }

    public init(_ options: PolicyOptions, clock: PolicyClock) throws(TaskGateError) {
        if let p = options.problem() { throw .invalid("policy: \(p)") }
        self.options = options
        self.clock = clock
        budget = options.retry.budgetRatio > 0
            ? RetryBudget(ratio: options.retry.budgetRatio, window: options.retry.budgetWindow, minPerSecond: options.retry.budgetMinPerSecond)
            : nil
    }

    /// True when tasks under this policy need per-key state.
    var keyed: Bool { options.breaker != nil || options.limit != nil }

    /// The keys used so far, by name.
    public func keyStates() -> [(String, KeyState)] {
        lock.lock()
        defer { lock.unlock() }
        return keys.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The key's state, made on first use.
    public func key(_ name: String) -> KeyState {
        lock.lock()
        defer { lock.unlock() }
        if let k = keys[name] { return k }
        let breaker = options.breaker.map { CircuitBreaker($0) }
        if let breaker {
            breaker.onTransition = { [sink] from, to, gen in sink.handler?(name, from, to, gen) }
        }
        let k = KeyState(name: name, breaker: breaker, limiter: options.limit.map { KeyLimiter($0, now: clock.now()) })
        keys[name] = k
        return k
    }
}
