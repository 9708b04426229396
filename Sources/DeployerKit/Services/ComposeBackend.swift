/// The site's services as Docker Compose projects on the worker, driven through the service
/// phases of the worker script (`switch`, `stop`, `start`, `status`) over the sync's connection.
public struct ComposeBackend: ServiceBackend {
    let connection: WorkerConnection

    public init(connection: WorkerConnection) {
        self.connection = connection
    }

    public func switchRelease(_ request: SwitchRequest, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> SwitchAnswer {
        let reply = try await connection.ask(.switchRelease(request), onLine: onLine)
        let failure = { connection.failure(step: SyncStep.switchRelease.rawValue, command: reply.command, output: reply.output) }
        switch reply.exit {
        case .ok?, .rolledBack?, .switchFailed?: return SwitchAnswer(reply.facts, exitCode: reply.output.exitCode)
        case .servicesFailed?: throw SwitchInterrupted.releaseNotInPlace(failure())
        default: throw SwitchInterrupted.outcomeUnknown(failure())
        }
    }

    public func stopAll(_ rules: StopRules, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> StopAnswer {
        StopAnswer(try await connection.run(.stop(rules), step: SyncStep.stopServices.rawValue, onLine: onLine))
    }

    public func start(_ request: StartRequest, onLine: (@Sendable (OutputStream, String) -> Void)?) async throws -> StartAnswer {
        StartAnswer(try await connection.run(.start(request), step: SyncStep.startServices.rawValue, onLine: onLine))
    }

    public func status(site: String, digestExcludes: [String]) async throws -> StatusAnswer {
        StatusAnswer(try await connection.run(.status(site: site, digestExcludes: digestExcludes), step: "status"))
    }
}
