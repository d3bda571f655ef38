import CTaskGateSupport
import Testing
@testable import TaskGateCore
#if canImport(Glibc)
import Glibc
#endif

private let ms: Int64 = 1_000_000
private let s: Int64 = 1_000_000_000

@Suite struct BackoffTests {
    @Test func exponentialWithoutJitterIsExact() {
        var b = Backoff()
        b.base = 100 * ms
        b.multiplier = 2
        b.cap = 1 * s
        #expect((1...6).map { b.delay($0, previous: 0, unit: 0.5) } == [100 * ms, 200 * ms, 400 * ms, 800 * ms, 1 * s, 1 * s])
    }

    @Test func explicitDelaysRepeatTheLast() {
        var b = Backoff()
        b.delays = [100 * ms, 500 * ms, 1 * s, 2 * s]  // the seed config's retry_delays
        #expect((1...6).map { b.raw($0) } == [100 * ms, 500 * ms, 1 * s, 2 * s, 2 * s, 2 * s])
    }

    @Test func seededJitterIsReproducible() {
        var b = Backoff()
        b.base = 1 * s
        b.jitter = .proportional
        b.jitterFactor = 0.1
        func run(_ seed: UInt64) -> [Int64] {
            (1...5).map { k in b.delay(k, previous: 0, unit: PolicyRandom.unit(seed: seed, stream: 7, n: UInt64(k))) }
        }
        #expect(run(42) == run(42))
        #expect(run(42) != run(43))
        // ±10% around 1, 2, 4, 8, 16 s.
        for (k, d) in run(42).enumerated() {
            let raw = Double(s) * Double(1 << k)
            #expect(Double(d) >= raw * 0.9 && Double(d) <= raw * 1.1)
        }
    }

    /// Property: whatever the mode, parameters and random draw, a delay is
    /// within [0, cap].
    @Test func noDelayExceedsTheCapAfterJitter() {
        var seed: UInt64 = 1
        func next() -> UInt64 { seed = PolicyRandom.mix(seed); return seed }
        for _ in 0..<20_000 {
            var b = Backoff()
            b.base = Int64(next() % UInt64(10 * s))
            b.cap = Int64(next() % UInt64(60 * s))
            b.multiplier = 1 + Double(next() % 1000) / 100
            b.jitter = Jitter(rawValue: Int32(next() % 5))!
            b.jitterFactor = Double(next() % 101) / 100
            if next() % 4 == 0 { b.delays = (0..<Int(next() % 5 + 1)).map { _ in Int64(next() % UInt64(120 * s)) } }
            let k = Int(next() % 70) + 1
            let u = Double(next() >> 11) * 0x1.0p-53
            let d = b.delay(k, previous: Int64(next() % UInt64(100 * s)), unit: u)
            #expect(d >= 0 && d <= b.cap, "\(b) k=\(k) u=\(u) -> \(d)")
            if d < 0 || d > b.cap { return }
        }
    }

    @Test func fullEqualAndDecorrelatedStayInTheirRanges() {
        var b = Backoff()
        b.base = 1 * s
        b.cap = 100 * s
        for u in stride(from: 0.0, to: 1.0, by: 0.05) {
            b.jitter = .full
            #expect(b.delay(3, previous: 0, unit: u) <= 4 * s)
            b.jitter = .equal
            #expect((2 * s...4 * s).contains(b.delay(3, previous: 0, unit: u)))
            b.jitter = .decorrelated
            #expect((1 * s...9 * s).contains(b.delay(3, previous: 3 * s, unit: u)))
        }
    }

    @Test func adaptivePollingGrowsAndResets() {
        var p = AdaptivePolling(initial: 1 * s, maximum: 30 * s, multiplier: 1.5)  // seed 004 §5
        let seq = (0..<10).map { _ in p.next() }
        #expect(seq.prefix(4) == [1 * s, 1_500 * ms, 2_250 * ms, 3_375 * ms])
        #expect(seq.last == 30 * s)
        p.reset()
        #expect(p.next() == 1 * s)
    }

    @Test func retryBudgetCapsRetriesAtItsShare() {
        let budget = RetryBudget(ratio: 0.2, window: 10 * s, minPerSecond: 0)
        for _ in 0..<100 { budget.deposit(now: 5 * s) }
        let allowed = (0..<50).filter { _ in budget.tryWithdraw(now: 5 * s) }.count
        #expect(allowed == 20)
        // Ten seconds on, the old calls have left the window.
        #expect(!budget.tryWithdraw(now: 16 * s))
    }
}

@Suite struct BreakerTests {
    @Test func opensAtTheThresholdAndProbesAtExactlyOpenFor() {
        var o = BreakerOptions()  // seed 004: 5 failures, 2 successes, 60 s
        o.openFor = 60 * s
        let b = CircuitBreaker(o)
        let t0: Int64 = 1_000 * s
        for k in 0..<5 {
            let ticket = b.allow(now: t0)!
            b.report(ticket, success: false, now: t0)
            #expect(b.snapshot(now: t0).state == (k < 4 ? .closed : .open))
        }
        #expect(b.allow(now: t0 + 60 * s - ms) == nil)
        #expect(b.snapshot(now: t0 + 60 * s - ms).state == .open)
        #expect(b.snapshot(now: t0 + 60 * s).state == .halfOpen)
        let p1 = b.allow(now: t0 + 60 * s)!, p2 = b.allow(now: t0 + 60 * s)!
        #expect(p1.probe && p2.probe)
        #expect(b.allow(now: t0 + 60 * s) == nil, "only success_threshold probes")
        b.report(p1, success: true, now: t0 + 61 * s)
        #expect(b.snapshot(now: t0 + 61 * s).state == .halfOpen)
        b.report(p2, success: true, now: t0 + 61 * s)
        #expect(b.snapshot(now: t0 + 61 * s).state == .closed)
    }

    @Test func aFailedProbeOpensItAgain() {
        var o = BreakerOptions()
        o.failureThreshold = 1
        o.openFor = 10 * s
        let b = CircuitBreaker(o)
        b.report(b.allow(now: 0)!, success: false, now: 0)
        let probe = b.allow(now: 10 * s)!
        b.report(probe, success: false, now: 10 * s)
        let snap = b.snapshot(now: 10 * s)
        #expect(snap.state == .open && snap.openedAt == 10 * s && snap.timesOpened == 2)
    }

    @Test func aStaleGenerationIsIgnored() {
        var o = BreakerOptions()
        o.failureThreshold = 2
        let b = CircuitBreaker(o)
        let slow = b.allow(now: 0)!  // starts before the breaker opens
        b.report(b.allow(now: 0)!, success: false, now: 0)
        b.report(b.allow(now: 0)!, success: false, now: 0)
        #expect(b.snapshot(now: 0).state == .open)
        #expect(!b.report(slow, success: true, now: 1), "a result from before the change is ignored")
        #expect(b.snapshot(now: 1).state == .open)
        b.apply(.reset, now: 2)
        #expect(!b.report(slow, success: false, now: 3))
        #expect(b.snapshot(now: 3).consecutiveFailures == 0)
    }

    /// Exactly N probes among many concurrent callers.
    @Test(arguments: [1, 3, 7]) func exactlyNProbesUnderConcurrency(probes: Int) async {
        var o = BreakerOptions()
        o.failureThreshold = 1
        o.successThreshold = probes
        o.openFor = 5 * s
        let b = CircuitBreaker(o)
        b.report(b.allow(now: 0)!, success: false, now: 0)
        let admitted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { (0..<200).reduce(0) { n, _ in n + (b.allow(now: 5 * s) != nil ? 1 : 0) } }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted == probes)
    }

    @Test func failureRateOverACountWindow() {
        var o = BreakerOptions()
        o.failureThreshold = 0
        o.window = .count(10)
        o.minimumCalls = 10
        o.failureRate = 0.5
        let b = CircuitBreaker(o)
        for k in 0..<9 { b.report(b.allow(now: 0)!, success: k % 2 == 0, now: 0) }  // 4 of 9 failed
        #expect(b.snapshot(now: 0).state == .closed, "not before minimum calls")
        b.report(b.allow(now: 0)!, success: false, now: 0)  // 5 of 10
        #expect(b.snapshot(now: 0).state == .open)
    }

    @Test func slowCallsOverATimeWindow() {
        var o = BreakerOptions()
        o.failureThreshold = 0
        o.window = .time(10)
        o.minimumCalls = 4
        o.slowCall = 2 * s
        o.slowCallRate = 0.5
        let b = CircuitBreaker(o)
        b.report(b.allow(now: 0)!, success: true, duration: 3 * s, now: 0)
        b.report(b.allow(now: 0)!, success: true, duration: 3 * s, now: 0)
        // The two slow calls leave the 10 s window before two fast ones arrive.
        b.report(b.allow(now: 11 * s)!, success: true, duration: 0, now: 11 * s)
        b.report(b.allow(now: 11 * s)!, success: true, duration: 3 * s, now: 11 * s)
        #expect(b.snapshot(now: 11 * s).windowCalls == 2)
        b.report(b.allow(now: 12 * s)!, success: true, duration: 3 * s, now: 12 * s)
        b.report(b.allow(now: 12 * s)!, success: true, duration: 0, now: 12 * s)
        #expect(b.snapshot(now: 12 * s).state == .open, "2 of 4 slow in the window")
    }

    @Test func forcedStates() {
        let b = CircuitBreaker(BreakerOptions())
        b.apply(.forceOpen, now: 0)
        #expect(b.allow(now: 1_000 * s) == nil)
        b.apply(.forceClosed, now: 0)
        for _ in 0..<100 { b.report(b.allow(now: 0)!, success: false, now: 0) }
        #expect(b.snapshot(now: 0).state == .forcedClosed)
    }
}

@Suite struct LimitAndCredentialTests {
    @Test func tokenBucketRefillsAtItsRate() {
        var o = LimitOptions()
        o.perMinute = 100  // seed 002: 100 per minute at cost 5 -> 20 calls
        o.cost = 5
        let lim = KeyLimiter(o, now: 0)
        var granted = 0
        while lim.tryAcquire(now: 0) { granted += 1 }
        #expect(granted == 20)
        // 5 tokens take 3 s to come back.
        #expect(lim.acquire(now: 0, haveSlot: false, task: 0) { true } == .retryAt(3 * s))
        #expect(!lim.tryAcquire(now: 3 * s - ms))
        #expect(lim.tryAcquire(now: 3 * s))
    }

    @Test func bulkheadParksAndHandsTheSlotOver() {
        var o = LimitOptions()
        o.maxConcurrent = 2
        let lim = KeyLimiter(o, now: 0)
        #expect(lim.acquire(now: 0, haveSlot: false, task: 1) { true } == .granted)
        #expect(lim.acquire(now: 0, haveSlot: false, task: 2) { true } == .granted)
        #expect(lim.acquire(now: 0, haveSlot: false, task: 3) { true } == .parked)
        #expect(lim.acquire(now: 0, haveSlot: false, task: 4) { false } == .gone)
        #expect(lim.release() == 3, "the parked task gets the slot")
        #expect(lim.snapshot(now: 0).running == 2)
        #expect(lim.release() == -1)
        #expect(lim.snapshot(now: 0).running == 1)
    }

    @Test func credentialsFromNumberedVariables() throws {
        let env = ["ANTHROPIC_API_KEY_1": "k1", "ANTHROPIC_BASE_URL_1": "https://a", "ANTHROPIC_API_KEY_2": "k2",
                   "ANTHROPIC_MODEL_2": "m2", "ANTHROPIC_API_KEY_4": "skipped"]
        let creds = try CredentialRing.fromEnvironment(prefix: "ANTHROPIC_API_KEY") { env[$0] }
        #expect(creds.map(\.key) == ["k1", "k2"])
        #expect(creds[0].baseURL == "https://a" && creds[1].model == "m2")
        let single = try CredentialRing.fromEnvironment(prefix: "MY_TOKEN") { $0 == "MY_TOKEN" ? "t" : nil }
        #expect(single.map(\.key) == ["t"])
        #expect(throws: TaskGateError.self) { try CredentialRing.fromEnvironment(prefix: "NONE") { _ in nil } }
    }

    @Test func rotationFollowsTheSeedRules() throws {
        let ring = try CredentialRing([Credential(key: "a-secret"), Credential(key: "b-secret"), Credential(key: "c-secret")],
                                      cooldown: 30 * s)
        #expect(ring.pick(now: 0) == .use(0))
        #expect(!ring.report(0, statusCode: 500, message: "boom", retryAfter: nil, now: 0), "500 does not rotate")
        #expect(ring.report(0, statusCode: 429, message: "slow down", retryAfter: 5 * s, now: 0))
        #expect(!ring.report(0, statusCode: 429, message: "slow down", retryAfter: 5 * s, now: 0), "a second report of the same key does not move the ring again")
        #expect(ring.pick(now: 0) == .use(1))
        #expect(ring.report(1, statusCode: 200, message: "Daily Quota exceeded", retryAfter: nil, now: 0))
        #expect(ring.report(2, statusCode: 403, message: "forbidden", retryAfter: nil, now: 0))
        // 0 cools down until 5 s, 1 is exhausted, 2 was only rotated away from.
        #expect(ring.pick(now: 1 * s) == .use(2))
        #expect(ring.report(2, statusCode: 429, message: "", retryAfter: nil, now: 1 * s))
        #expect(ring.pick(now: 2 * s) == .waitUntil(5 * s))
        #expect(ring.pick(now: 5 * s) == .use(0))
        #expect(ring.redact("key a-secret and c-secret") == "key [credential 1] and [credential 3]")
        #expect(ring.entry(1).lastError == "Daily Quota exceeded")
    }
}
