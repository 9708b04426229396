/// Every wait has a limit and listens: `TimeLimit.run` runs `body` and cancels it (a running
/// process is then torn down: SIGTERM, SIGKILL 5 s later) when `limit` passes or when `signal`
/// reports SIGINT/SIGTERM (polled ten times a second).
public enum TimeLimit {
    public static func run<T: Sendable>(_ limit: Duration?, signal: (@Sendable () -> Int32?)? = nil,
                                        _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        if limit == nil && signal == nil { return try await body() }
        if let received = signal?() { throw Interrupted(signal: received) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            if let limit {
                group.addTask {
                    try await Task.sleep(for: limit)
                    throw TimeLimitExceeded(limit: limit)
                }
            }
            if let signal {
                group.addTask {
                    while true {
                        try await Task.sleep(for: .milliseconds(100))
                        if let received = signal() { throw Interrupted(signal: received) }
                    }
                }
            }
            defer { group.cancelAll() }
            // Only the body returns a value; the watchers end by throwing.
            guard let first = try await group.next(), let value = first else { throw CancellationError() }
            return value
        }
    }
}

/// A wait ran past its limit (and what it waited for was cancelled).
public struct TimeLimitExceeded: Error, Equatable {
    public var limit: Duration
    public var seconds: Int { Int(limit.components.seconds) }
}

/// SIGINT or SIGTERM arrived during a wait (and what it waited for was cancelled).
public struct Interrupted: Error, Equatable {
    public var signal: Int32
}
