import Foundation
import XCTest
import TaskGateCore

/// The test advances it by hand; the monitor only reads it.
private final class VirtualClock: @unchecked Sendable {
    var seconds = 0.0
}

/// Alerts handed back to the recording threads, summed.
private final class ReturnedCount: @unchecked Sendable {
    let lock = NSLock()
    var total = 0
}

private func monitor(_ t: HealthThresholds = HealthThresholds(), clock: VirtualClock = VirtualClock()) throws -> HealthMonitor {
    try HealthMonitor(t, now: { clock.seconds })
}

final class HealthMonitorTests: XCTestCase {
    func testExactlyAtTheThresholdDoesNotAlertOneMoreFailureDoes() throws {
        let clock = VirtualClock()
        let m = try monitor(clock: clock)
        for _ in 0..<4 { XCTAssertEqual(m.record(.succeeded, durationSeconds: 1), []) }
        clock.seconds = 5
        // 1 failure of 5 = 20%, exactly the threshold: no alert.
        XCTAssertEqual(m.record(.failed, durationSeconds: 1), [])
        XCTAssertEqual(m.report.failureRate, 0.2)
        XCTAssertEqual(m.report.active, [])
        clock.seconds = 6.25
        // 2 of 6 = 33.3%.
        let raised = m.record(.failed, durationSeconds: 1)
        XCTAssertEqual(raised, [HealthAlert(metric: .failureRate, raised: true, value: 2.0 / 6, threshold: 0.2, tasks: 6, at: 6.25)])
        XCTAssertEqual(raised.first?.message, "High failure rate detected: 33.3% (threshold 20.0%, 6 tasks)")
        XCTAssertEqual(m.report.active, [.failureRate])
        XCTAssertEqual(m.report.alertsRaised, 1)
        // Still above: edge-triggered, so no second alert.
        XCTAssertEqual(m.record(.failed, durationSeconds: 1), [])
        XCTAssertEqual(m.alerts.count, 1)
    }

    func testClearingAndRaisingAgain() throws {
        let clock = VirtualClock()
        let m = try monitor(clock: clock)
        for _ in 0..<4 { _ = m.record(.succeeded, durationSeconds: nil) }
        _ = m.record(.failed, durationSeconds: nil)
        clock.seconds = 1
        XCTAssertEqual(m.record(.failed, durationSeconds: nil).map(\.raised), [true])  // 2/6
        XCTAssertEqual(m.record(.succeeded, durationSeconds: nil), [])                 // 2/7
        XCTAssertEqual(m.record(.succeeded, durationSeconds: nil), [])                 // 2/8
        XCTAssertEqual(m.record(.succeeded, durationSeconds: nil), [])                 // 2/9
        clock.seconds = 2.5
        let cleared = m.record(.succeeded, durationSeconds: nil)                       // 2/10 = threshold
        XCTAssertEqual(cleared, [HealthAlert(metric: .failureRate, raised: false, value: 0.2, threshold: 0.2, tasks: 10, at: 2.5)])
        XCTAssertEqual(cleared.first?.message, "Failure rate back to 20.0% (threshold 20.0%, 10 tasks)")
        XCTAssertEqual(m.report.active, [])
        XCTAssertEqual(m.record(.succeeded, durationSeconds: nil), [])                 // 2/11, still cleared
        clock.seconds = 4
        let again = m.record(.rejected, durationSeconds: nil)                          // 3/12 = 25%
        XCTAssertEqual(again.map(\.raised), [true])
        XCTAssertEqual(again.first?.message, "High failure rate detected: 25.0% (threshold 20.0%, 12 tasks)")
        XCTAssertEqual(m.alerts.map(\.raised), [true, false, true])
        XCTAssertEqual(m.alerts.map(\.at), [1, 2.5, 4])
        XCTAssertEqual(m.report.alertsRaised, 2)
        XCTAssertEqual(m.report.active, [.failureRate])
    }

    func testMinTasksHoldsBackRateAlerts() throws {
        let m = try monitor(HealthThresholds(minTasks: 5))
        for _ in 0..<4 { XCTAssertEqual(m.record(.failed, durationSeconds: nil), []) }
        XCTAssertEqual(m.report.failureRate, 1)
        let fifth = m.record(.succeeded, durationSeconds: nil)
        XCTAssertEqual(fifth.map(\.metric), [.failureRate])
        XCTAssertEqual(fifth.first?.value, 0.8)
        XCTAssertEqual(fifth.first?.tasks, 5)
        // minTasks 0 behaves like 1: the first failure alerts.
        let zero = try monitor(HealthThresholds(minTasks: 0))
        XCTAssertEqual(zero.record(.failed, durationSeconds: nil).map(\.metric), [.failureRate])
    }

    func testMinTasksCountsTimedTasksForTheAverage() throws {
        let m = try monitor(HealthThresholds(failureRate: 1, avgDurationMs: 1_000, minTasks: 3))
        XCTAssertEqual(m.record(.succeeded, durationSeconds: 5), [])
        XCTAssertEqual(m.record(.rejected, durationSeconds: nil), [])   // counted, not timed
        XCTAssertEqual(m.record(.failed, durationSeconds: nil), [])     // counted, not timed
        XCTAssertEqual(m.record(.succeeded, durationSeconds: 5), [])    // 2 timed
        let third = m.record(.succeeded, durationSeconds: 5)
        XCTAssertEqual(third.map(\.metric), [.avgDurationMs])
        XCTAssertEqual(third.first?.tasks, 3)
        XCTAssertEqual(m.report.timed, 3)
        XCTAssertEqual(m.report.counted, 5)
    }

    func testCancelledSkippedAndUnfinishedAreNotCounted() throws {
        let m = try monitor()
        for s: TaskStatus in [.cancelled, .skipped, .pending, .queued, .running] {
            XCTAssertEqual(m.record(s, durationSeconds: 999_999), [])
        }
        XCTAssertEqual(m.report.counted, 0)
        XCTAssertEqual(m.report.timed, 0)
        XCTAssertEqual(m.report.avgDurationMs, 0)
        XCTAssertEqual(m.report.failureRate, 0)
        _ = m.record(.succeeded, durationSeconds: 1)
        for _ in 0..<10 { _ = m.record(.cancelled, durationSeconds: nil) }
        XCTAssertEqual(m.report.counted, 1)
        XCTAssertEqual(m.alerts, [])
    }

    func testTimeoutsCountAsFailuresAndTimeouts() throws {
        let m = try monitor()
        for _ in 0..<9 { _ = m.record(.succeeded, durationSeconds: 1) }
        XCTAssertEqual(m.record(.timedOut, durationSeconds: 60), [])      // 1/10 = timeout threshold
        let second = m.record(.timedOut, durationSeconds: 60)             // 2/11 = 18.2%
        XCTAssertEqual(second.map(\.metric), [.timeoutRate])
        XCTAssertEqual(second.first?.message, "High timeout rate detected: 18.2% (threshold 10.0%, 11 tasks)")
        XCTAssertEqual(m.report.failures, 2)
        XCTAssertEqual(m.report.timeouts, 2)
        // A third timeout pushes failures over 20% too; both alerts come back in metric order.
        let m2 = try monitor(HealthThresholds(failureRate: 0.2, timeoutRate: 0.2))
        for _ in 0..<4 { _ = m2.record(.succeeded, durationSeconds: nil) }
        XCTAssertEqual(m2.record(.timedOut, durationSeconds: nil), [])
        XCTAssertEqual(m2.record(.timedOut, durationSeconds: nil).map(\.metric), [.failureRate, .timeoutRate])
        // Clearing reports the timeout message too.
        for _ in 0..<4 { _ = m2.record(.succeeded, durationSeconds: nil) }
        let cleared = m2.alerts.last
        XCTAssertEqual(cleared?.raised, false)
        XCTAssertEqual(cleared?.metric, .timeoutRate)
        XCTAssertEqual(cleared?.message, "Timeout rate back to 20.0% (threshold 20.0%, 10 tasks)")
    }

    func testAverageDurationAt300000msDoesNotAlertAt300001msDoes() throws {
        let at = try monitor()
        XCTAssertEqual(at.record(.succeeded, durationSeconds: 300), [])
        XCTAssertEqual(at.report.avgDurationMs, 300_000)

        let clock = VirtualClock()
        clock.seconds = 301
        let over = try monitor(clock: clock)
        let raised = over.record(.succeeded, durationSeconds: 300.001)
        XCTAssertEqual(raised, [HealthAlert(metric: .avgDurationMs, raised: true, value: 300_001, threshold: 300_000, tasks: 1, at: 301)])
        XCTAssertEqual(raised.first?.message, "High average task duration detected: 300.001 s (threshold 300.000 s, 1 timed task)")
        // A second, shorter task brings the average back under.
        let cleared = over.record(.succeeded, durationSeconds: 0.001)
        XCTAssertEqual(cleared.map(\.raised), [false])
        XCTAssertEqual(cleared.first?.value, 150_001)
        XCTAssertEqual(cleared.first?.message, "Average task duration back to 150.001 s (threshold 300.000 s, 2 timed tasks)")
        // Tasks without a duration do not move the average or re-check it.
        XCTAssertEqual(over.record(.succeeded, durationSeconds: nil), [])
        XCTAssertEqual(over.report.avgDurationMs, 150_001)
    }

    func testAverageDurationInMillisecondsForSubSecondThresholds() throws {
        let m = try monitor(HealthThresholds(avgDurationMs: 500))
        XCTAssertEqual(m.record(.succeeded, durationSeconds: 0.5), [])
        let raised = m.record(.succeeded, durationSeconds: 0.5012)
        XCTAssertEqual(raised.first?.message, "High average task duration detected: 500.6 ms (threshold 500.0 ms, 2 timed tasks)")
        // Odd durations are tolerated: NaN and infinity count as "no duration", negatives as 0.
        XCTAssertEqual(m.record(.succeeded, durationSeconds: .nan), [])
        XCTAssertEqual(m.record(.succeeded, durationSeconds: .infinity), [])
        XCTAssertEqual(m.report.timed, 2)
        XCTAssertEqual(m.record(.succeeded, durationSeconds: -3).map(\.raised), [false])
        XCTAssertEqual(m.report.timed, 3)
    }

    func testMessageRounding() {
        func msg(_ metric: HealthAlert.Metric, _ raised: Bool, _ value: Double, _ threshold: Double, _ tasks: Int = 4) -> String {
            HealthAlert(metric: metric, raised: raised, value: value, threshold: threshold, tasks: tasks, at: 0).message
        }
        XCTAssertEqual(msg(.failureRate, true, 0.25, 0.2), "High failure rate detected: 25.0% (threshold 20.0%, 4 tasks)")
        XCTAssertEqual(msg(.failureRate, true, 1.0 / 8, 0.1), "High failure rate detected: 12.5% (threshold 10.0%, 4 tasks)")
        XCTAssertEqual(msg(.failureRate, true, 1.0 / 6, 0.1), "High failure rate detected: 16.7% (threshold 10.0%, 4 tasks)")
        XCTAssertEqual(msg(.failureRate, true, 0.00049, 0, 1), "High failure rate detected: 0.05% (threshold 0.00%, 1 task)")
        // Extra digits appear only when one decimal would hide the difference.
        XCTAssertEqual(msg(.failureRate, true, 0.2004, 0.2), "High failure rate detected: 20.04% (threshold 20.00%, 4 tasks)")
        XCTAssertEqual(msg(.failureRate, true, 0.2000001, 0.2), "High failure rate detected: 20.0000% (threshold 20.0000%, 4 tasks)")
        XCTAssertEqual(msg(.failureRate, false, 0.2, 0.2), "Failure rate back to 20.0% (threshold 20.0%, 4 tasks)")
        XCTAssertEqual(msg(.avgDurationMs, true, 1_234.5678, 1_000), "High average task duration detected: 1.235 s (threshold 1.000 s, 4 timed tasks)")
        XCTAssertEqual(msg(.avgDurationMs, false, 999.96, 999.99, 1), "Average task duration back to 999.96 ms (threshold 999.99 ms, 1 timed task)")
    }

    func testManyTasksWithExactRatioShowsTheDifference() throws {
        let m = try monitor(HealthThresholds(minTasks: 2500))
        for _ in 0..<1999 { XCTAssertEqual(m.record(.succeeded, durationSeconds: nil), []) }
        for _ in 0..<500 { XCTAssertEqual(m.record(.failed, durationSeconds: nil), []) }
        let last = m.record(.failed, durationSeconds: nil)
        XCTAssertEqual(last.first?.message, "High failure rate detected: 20.04% (threshold 20.00%, 2500 tasks)")
    }

    func testJSON() throws {
        let clock = VirtualClock()
        clock.seconds = 1.5
        let m = try monitor(clock: clock)
        for _ in 0..<3 { _ = m.record(.succeeded, durationSeconds: 0.25) }
        let alert = try XCTUnwrap(m.record(.failed, durationSeconds: nil).first)
        XCTAssertEqual(alert.json, """
        {"metric":"failure_rate","raised":true,"value":0.25,"threshold":0.2,"tasks":4,"at":1.5,\
        "message":"High failure rate detected: 25.0% (threshold 20.0%, 4 tasks)"}
        """)
        XCTAssertEqual(m.report.json, """
        {"counted":4,"failures":1,"timeouts":0,"timed":3,"failure_rate":0.25,"timeout_rate":0,\
        "avg_duration_ms":250,"active":["failure_rate"],"alerts_raised":1}
        """)
        // Valid JSON that Foundation reads back with the same values.
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(alert.json.utf8)) as? [String: Any])
        XCTAssertEqual(object["message"] as? String, alert.message)
        XCTAssertEqual(object["raised"] as? Bool, true)
        XCTAssertEqual(object.count, 7)
        // An infinite threshold is written as null, not as an invalid token.
        let never = HealthAlert(metric: .timeoutRate, raised: false, value: 0.5, threshold: .infinity, tasks: 2, at: 0)
        XCTAssertTrue(never.json.contains("\"threshold\":null"))
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(never.json.utf8)))
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(HealthMonitor(HealthThresholds(), now: { 0 }).report.json.utf8)))
    }

    func testStopOnAlert() throws {
        let off = try monitor()
        _ = off.record(.failed, durationSeconds: nil)
        XCTAssertEqual(off.report.alertsRaised, 1)
        XCTAssertFalse(off.shouldStop)

        let on = try monitor(HealthThresholds(stopOnAlert: true))
        _ = on.record(.succeeded, durationSeconds: nil)
        XCTAssertFalse(on.shouldStop)
        _ = on.record(.failed, durationSeconds: nil)   // 50%
        XCTAssertTrue(on.shouldStop)
        for _ in 0..<20 { _ = on.record(.succeeded, durationSeconds: nil) }
        XCTAssertEqual(on.report.active, [])
        XCTAssertTrue(on.shouldStop, "stays set after the alert clears")
    }

    func testHighThresholdsNeverAlert() throws {
        let m = try monitor(HealthThresholds(failureRate: 1, timeoutRate: .infinity, avgDurationMs: .infinity))
        for _ in 0..<10 { XCTAssertEqual(m.record(.timedOut, durationSeconds: 1e9), []) }
        XCTAssertEqual(m.report.failureRate, 1)
    }

    func testCommonCaseReturnsAnUnallocatedArray() throws {
        let m = try monitor()
        for _ in 0..<100 {
            let r = m.record(.succeeded, durationSeconds: 0.01)
            XCTAssertEqual(r.capacity, 0)
        }
        XCTAssertEqual(m.record(.cancelled, durationSeconds: nil).capacity, 0)
    }

    func testInvalidThresholdsNameTheField() {
        let cases: [(HealthThresholds, String)] = [
            (HealthThresholds(failureRate: .nan), "failureRate"),
            (HealthThresholds(failureRate: -0.1), "failureRate"),
            (HealthThresholds(timeoutRate: -1), "timeoutRate"),
            (HealthThresholds(timeoutRate: .nan), "timeoutRate"),
            (HealthThresholds(avgDurationMs: -5), "avgDurationMs"),
            (HealthThresholds(avgDurationMs: -.infinity), "avgDurationMs"),
            (HealthThresholds(minTasks: -1), "minTasks"),
        ]
        for (t, field) in cases {
            do {
                try t.validate()
                XCTFail("\(field) accepted")
            } catch {
                XCTAssertEqual(error.field, field)
                XCTAssertTrue(error.message.hasPrefix(field + " must be"), error.message)
            }
            XCTAssertThrowsError(try HealthMonitor(t, now: { 0 })) { error in
                XCTAssertEqual((error as? HealthError)?.field, field)
            }
        }
        XCTAssertNoThrow(try HealthThresholds(failureRate: 0, timeoutRate: 5, avgDurationMs: .infinity, minTasks: 0).validate())
        XCTAssertEqual(HealthThresholds(), HealthThresholds(failureRate: 0.2, timeoutRate: 0.1, avgDurationMs: 300_000, minTasks: 1, stopOnAlert: false))
    }

    func testEightThreadsRecordingConcurrently() throws {
        let threads = 8, perThread = 10_000
        let clock = VirtualClock()
        let m = try monitor(HealthThresholds(failureRate: 0.3, timeoutRate: 0.1, avgDurationMs: 2_000), clock: clock)
        let returned = ReturnedCount()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var mine = 0
            for i in 0..<perThread {
                let status: TaskStatus
                var duration: Double? = Double(i % 7)   // 0...6 s, average 3 s over each 7
                switch (i + t) % 10 {
                case 0: status = .failed
                case 1: status = .timedOut
                case 2: status = .cancelled
                case 3: status = .skipped
                case 4: status = .rejected; duration = nil
                default: status = .succeeded
                }
                mine += m.record(status, durationSeconds: duration).count
            }
            returned.lock.lock()
            returned.total += mine
            returned.lock.unlock()
        }
        let r = m.report
        XCTAssertEqual(r.counted, threads * perThread * 8 / 10)
        XCTAssertEqual(r.failures, threads * perThread * 3 / 10)
        XCTAssertEqual(r.timeouts, threads * perThread / 10)
        XCTAssertEqual(r.timed, threads * perThread * 7 / 10)
        XCTAssertEqual(r.failureRate, 0.375)
        XCTAssertEqual(r.timeoutRate, 0.125)
        // Every alert returned to some caller is in the history, once.
        let history = m.alerts
        XCTAssertEqual(returned.total, history.count)
        XCTAssertEqual(r.alertsRaised, history.filter(\.raised).count)
        // Per metric the history alternates raised, cleared, raised...; the last state is `active`.
        for metric in HealthAlert.Metric.allCases {
            let states = history.filter { $0.metric == metric }.map(\.raised)
            for (k, raised) in states.enumerated() { XCTAssertEqual(raised, k % 2 == 0, "\(metric) #\(k)") }
            XCTAssertEqual(r.active.contains(metric), states.last ?? false, "\(metric)")
        }
        XCTAssertEqual(r.active, [.failureRate, .timeoutRate, .avgDurationMs])
    }
}
