import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing

/// The order of a sync's steps and where a failure stops it, with a recording fake in place of
/// ssh and rsync (the real ones are exercised by the integration tests).
@Suite("Sync step order and failure handling")
struct SyncRunnerTests {
    let directory: TemporaryDirectory
    let plan: SyncPlan

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-runner")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/b", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 2, bytes: 100))
        let workspace = try LocalWorkspace.locate(benchesPath: fixture.benchesPath, siteName: "a.test")
        plan = SyncPlan.make(workspace: workspace, worker: WorkerSettings(server: "w1", workspacePath: "/home/frappe/frappe/sites/a.test/workspace"))
    }

    final class Events: SyncReporting {
        let events = Mutex<[SyncEvent]>([])
        func report(_ event: SyncEvent) { events.withLock { $0.append(event) } }
        var all: [SyncEvent] { events.withLock { $0 } }
    }

    static func answer(failing phase: String? = nil, exitCode: Int32 = 3, message: String = "error: it broke") -> @Sendable (Command) -> CommandOutput {
        { command in
            let step = command.scriptPhase ?? (command.executable == "rsync" ? "rsync" : nil)
            if let step, step == phase { return .failed(exitCode, message) }
            switch command.scriptPhase {
            case "preflight": return .ok("worker_services=short-worker long-worker\ncurrent_release=release_0\n")
            case "start": return .ok("running=schedule short-worker long-worker\n")
            default: return .ok(command.executable == "rsync" ? "Number of regular files transferred: 3\nTotal bytes sent: 100\n" : "")
            }
        }
    }

    func kinds(_ commands: [Command]) -> [String] {
        commands.map { command in
            if let phase = command.scriptPhase { return phase }
            if command.executable == "rsync" { return "rsync" }
            if command.arguments.contains("-O") { return "close" }
            if command.arguments.contains("-N") { return "open" }
            return command.description
        }
    }

    @Test("the spec's order: connect, check, stop, transfer, link, start, close")
    func order() async throws {
        let runner = RecordingRunner(answers: Self.answer())
        let events = Events()
        let report = try await SyncRunner(runner: runner, reporter: events, verbose: false).run(plan)
        #expect(kinds(runner.commands) == ["open", "preflight", "stop", "rsync", "rsync", "activate", "start", "close"])
        #expect(report.previousRelease == "release_0")
        #expect(report.runningServices == ["long-worker", "schedule", "short-worker"])
        #expect(report.totals.regularFilesTransferred == 6)
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .stopServices, .transfer, .link, .startServices])
        #expect(events.all.filter { if case .stepFinished = $0 { true } else { false } }.count == 6)
    }

    @Test("a worker that fails its checks is left untouched: nothing is stopped or sent")
    func preflightFailure() async throws {
        let runner = RecordingRunner(answers: Self.answer(failing: "preflight", message: "error: /x/docker-compose.workers.yml is missing on the worker"))
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .preflight && failure.workerState == "unchanged"
                && failure.errorDescription == "check worker failed on w1: /x/docker-compose.workers.yml is missing on the worker"
        }
        #expect(kinds(runner.commands) == ["open", "preflight", "close"])
    }

    @Test("a refused host key stops the sync before any remote step")
    func hostKey() async throws {
        let runner = RecordingRunner { command in
            command.arguments.contains("-N") ? .failed(255, "No ED25519 host key is known for w1 and you have requested strict checking.", "Host key verification failed.") : .ok("")
        }
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .connect && (failure.underlying as? RemoteError) == .hostKeyUnknown(host: "w1", port: 22)
        }
        #expect(kinds(runner.commands) == ["open"])
    }

    @Test("a failed transfer never links or starts the half-sent release, and says so")
    func transferFailure() async throws {
        let runner = RecordingRunner(answers: Self.answer(failing: "rsync", exitCode: 23, message: "rsync: write failed: No space left on device (28)"))
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .transfer && failure.workerState == "services stopped, files partly transferred"
                && failure.details.contains("exit code: 23")
        }
        let kinds = kinds(runner.commands)
        #expect(!kinds.contains("activate") && !kinds.contains("start"))
        #expect(kinds.last == "close")
    }

    @Test("progress lines name the host and step; output lines only with --verbose")
    func reporterLines() {
        #expect(TerminalReporter.line(for: .stepStarted(.transfer, host: "w1", detail: "release"), verbose: false) == "[w1] transfer... release")
        #expect(TerminalReporter.line(for: .stepFinished(.connect, host: "w1", seconds: 0.25, detail: "ok"), verbose: false) == "[w1] connect done in 0.25 s: ok")
        #expect(TerminalReporter.line(for: .stepFailed(.startServices, host: "w1", seconds: 1), verbose: false) == "[w1] start services FAILED after 1.00 s")
        #expect(TerminalReporter.line(for: .output(host: "w1", source: "release", line: ">f+++ a.py"), verbose: false) == nil)
        #expect(TerminalReporter.line(for: .output(host: "w1", source: "release", line: ">f+++ a.py"), verbose: true) == "[w1] release | >f+++ a.py")
    }
}
