/// Per-worker health (seed 000 WorkerHealthState): consecutive failures make
/// a worker unhealthy; recovery runs the recover hook of what failed, at most
/// `maxRecoveries` times per worker.
public struct WorkerHealth: Sendable, Equatable {
    public var consecutiveFailures = 0
    public var totalRecoveries = 0
    public var recoveryAttempts = 0
    /// The last failure's status code (0: none reported), as the seed's last_error_type.
    public var lastStatusCode: Int32 = 0
    public var failures: Int64 = 0

    public init() {}

    public mutating func recordFailure(statusCode: Int32) {
        consecutiveFailures += 1
        failures += 1
        lastStatusCode = statusCode
    }

    public mutating func recordSuccess() {
        consecutiveFailures = 0
        lastStatusCode = 0
    }

    public mutating func recordRecovery(success: Bool) {
        recoveryAttempts += 1
        if success {
            totalRecoveries += 1
            consecutiveFailures = 0
        }
    }

    public func shouldAttemptRecovery(max: Int) -> Bool { recoveryAttempts < max }
    public func isHealthy(threshold: Int) -> Bool { consecutiveFailures < threshold }
}
