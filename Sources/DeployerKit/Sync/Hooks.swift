import Foundation
import Synchronization

/// Commands the operator runs on the main server around each worker's sync (`[hooks]`): each
/// through `/bin/sh -c`, with what it is about in `FD_*` environment variables, within `timeout`.
public struct Hooks: Sendable, Equatable {
    /// Runs after the worker is checked and locked, before anything on it changes; a failure
    /// stops that worker's sync (result `refused`). Syncs only, never rollbacks.
    public var beforeSync: String?
    /// Runs once the worker runs the release after a switch (sync, restart or rollback); a
    /// failure is a warning: the release runs.
    public var afterSwitch: String?
    /// Runs when a worker's sync or rollback fails, after its lock is released.
    public var onFailure: String?
    /// Seconds each hook may run before it (its whole process group) is stopped.
    public var timeout = 300

    public init(beforeSync: String? = nil, afterSwitch: String? = nil, onFailure: String? = nil, timeout: Int = 300) {
        self.beforeSync = beforeSync
        self.afterSwitch = afterSwitch
        self.onFailure = onFailure
        self.timeout = timeout
    }

    public func command(_ name: HookName) -> String? {
        switch name {
        case .beforeSync: beforeSync
        case .afterSwitch: afterSwitch
        case .onFailure: onFailure
        }
    }
}

public enum HookName: String, Sendable, Equatable, Encodable, CaseIterable {
    case beforeSync = "before_sync"
    case afterSwitch = "after_switch"
    case onFailure = "on_failure"
}

/// What a hook's run says about one worker's operation (its `FD_*` environment).
public struct HookContext: Sendable, Equatable {
    public var site: String
    public var worker: WorkerSettings
    /// `sync` or `rollback`.
    public var kind: String
    public var release: String?
    public var previousRelease: String?
    /// `HistoryEntry.Result` of the operation when it is over (after_switch: ok).
    public var result: String?
    public var error: String?

    public init(site: String, worker: WorkerSettings, kind: String, release: String? = nil, previousRelease: String? = nil,
                result: String? = nil, error: String? = nil) {
        self.site = site
        self.worker = worker
        self.kind = kind
        self.release = release
        self.previousRelease = previousRelease
        self.result = result
        self.error = error
    }

    /// The variables the hook's command sees, beside the tool's own environment.
    public func environment(_ name: HookName) -> [(String, String)] {
        var variables = [("FD_HOOK", name.rawValue), ("FD_SITE", site), ("FD_KIND", kind), ("FD_WORKER", worker.server),
                         ("FD_WORKER_DESTINATION", worker.destination), ("FD_WORKER_PORT", String(worker.sshPort)),
                         ("FD_WORKSPACE", worker.workspacePath), ("FD_RELEASE", release ?? ""),
                         ("FD_PREVIOUS_RELEASE", previousRelease ?? "")]
        if let result { variables.append(("FD_RESULT", result)) }
        if let error { variables.append(("FD_ERROR", Redaction.redacted(error))) }
        return variables
    }
}

/// One run of a hook, as the report shows it.
public struct HookRun: Sendable, Equatable, Encodable {
    public var hook: HookName
    /// The exit status (128 + N for a signal); nil when it could not be started or ran out of time.
    public var exitCode: Int32?
    public var timedOut: Bool
    public var seconds: Double
    /// Its last lines of output (standard output and error, in order; secrets masked).
    public var output: [String]
    /// Why it could not be started, when it could not.
    public var launchError: String?

    public var succeeded: Bool { exitCode == 0 && !timedOut }

    /// One line on how it ended.
    public var outcome: String {
        if let launchError { return "could not be started (\(launchError))" }
        if timedOut { return String(format: "stopped after its time limit (%.0f s)", seconds) }
        return (exitCode == 0 ? "ok" : "exit \(exitCode ?? -1)") + String(format: " in %.1f s", seconds)
    }

    /// The run as report lines: how it ended, then its output indented.
    public var lines: [String] {
        ["hook \(hook.rawValue): \(outcome)"] + output.map { "  | \($0)" }
    }
}

/// A failing before_sync hook: the worker's sync stops before anything on it changes.
public enum HookFailure: Error, Equatable, LocalizedError {
    case beforeSync(HookRun)

    public var errorDescription: String? {
        switch self {
        case .beforeSync(let run):
            "the before_sync hook \(run.outcome)" + (run.output.last.map { ": \($0)" } ?? "") + "; nothing on the worker was changed"
        }
    }
}

/// Runs hooks as plain commands through the tool's one seam for programs.
public struct HookRunner: Sendable {
    public let hooks: Hooks
    let runner: any CommandRunning
    let signal: (@Sendable () -> Int32?)?
    /// Output lines kept per run.
    static let outputLines = 40

    public init(hooks: Hooks, runner: any CommandRunning, signal: (@Sendable () -> Int32?)? = nil) {
        self.hooks = hooks
        self.runner = runner
        self.signal = signal
    }

    /// The command that runs hook `name` for `context`: `env FD_...=... /bin/sh -c COMMAND`, in its
    /// own process group, so a time limit stops what it started too.
    public func command(_ name: HookName, _ context: HookContext) -> Command? {
        guard let text = hooks.command(name), !text.isEmpty else { return nil }
        var command = Command("/usr/bin/env", context.environment(name).map { "\($0)=\($1)" } + ["/bin/sh", "-c", text])
        command.teardownGroup = true
        return command
    }

    /// Runs hook `name` when one is configured; nil when none is.
    public func run(_ name: HookName, _ context: HookContext) async -> HookRun? {
        guard let command = command(name, context) else { return nil }
        let lines = Mutex<[String]>([])
        let start = ContinuousClock.now
        var run = HookRun(hook: name, exitCode: nil, timedOut: false, seconds: 0, output: [])
        do {
            let output = try await TimeLimit.run(.seconds(hooks.timeout), signal: signal) { [runner] in
                try await runner.run(command) { _, line in
                    lines.withLock {
                        $0.append(Redaction.redacted(line))
                        if $0.count > Self.outputLines { $0.removeFirst() }
                    }
                }
            }
            run.exitCode = output.exitCode
        } catch is TimeLimitExceeded {
            run.timedOut = true
        } catch let interrupted as Interrupted {
            run.exitCode = 128 + interrupted.signal
        } catch {
            run.launchError = (error as? CommandLaunchError)?.reason ?? String(describing: error)
        }
        run.seconds = (ContinuousClock.now - start).seconds
        run.output = lines.withLock { $0 }
        return run
    }
}

/// Where a sync and a rollback run their hooks.
extension SyncRunner {
    /// Runs `body` (one worker's operation); when it fails, runs on_failure once its lock is
    /// released, and adds the hooks that ran to the failure the operator reads.
    func runningFailureHook(_ context: inout HookContext, _ body: (inout HookContext) async throws -> SyncReport) async throws -> SyncReport {
        do {
            return try await body(&context)
        } catch {
            var failure = error as? SyncFailure
                ?? SyncFailure(step: .connect, host: context.worker.server, underlying: error, workerState: .unchanged)
            if case HookFailure.beforeSync(let run)? = failure.underlying as? HookFailure { failure.hooks.append(run) }
            context.result = HistoryEntry.result(of: failure).rawValue
            context.error = failure.errorDescription
            if let run = await hooks.run(.onFailure, context) { failure.hooks.append(run) }
            throw failure
        }
    }

    /// Runs before_sync, when there is one: the worker is checked and locked and nothing on it
    /// changed yet; a failing hook stops this worker's sync here.
    func beforeSync(_ session: WorkerSession, _ context: HookContext) async throws {
        guard hooks.hooks.beforeSync != nil else { return }
        let run: HookRun? = try await session.step(.beforeSync, detail: "on this server") {
            guard let run = await hooks.run(.beforeSync, context) else { return (HookRun?.none, "none") }
            try session.stopIfInterrupted(.beforeSync, state: "unchanged")
            if !run.succeeded { throw HookFailure.beforeSync(run) }
            return (run, run.outcome)
        }
        if let run { session.report.hooks.append(run) }
    }

    /// Runs after_switch once the worker runs the release after a switch: a failing hook is a
    /// warning, since the release runs.
    func afterSwitch(_ session: WorkerSession, _ context: HookContext) async {
        guard session.report.switched, hooks.hooks.afterSwitch != nil else { return }
        var context = context
        context.result = HistoryEntry.Result.ok.rawValue
        guard let run = try? await session.step(.afterSwitch, detail: "on this server", {
            let run = await hooks.run(.afterSwitch, context)
            return (run, run?.outcome ?? "none")
        }) else { return }
        session.report.hooks.append(run)
        if !run.succeeded { session.report.warnings.append("the after_switch hook \(run.outcome); \(session.report.release) runs") }
    }
}
