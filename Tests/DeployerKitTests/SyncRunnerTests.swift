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

    var inPlacePlan: SyncPlan {
        var worker = plan.worker
        worker.strategy = .inPlace
        return SyncPlan.make(workspace: plan.workspace, worker: worker)
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
            case "preflight": return .ok("locked=yes\nworker_services=short-worker long-worker\ncurrent_release=release_0\nreleases=release_0\n")
            case "start": return .ok("up_ms=1796100004500\nrunning=schedule short-worker long-worker\n")
            case "stop": return .ok("stopping_ms=1796100001000\nstopped=yes\n")
            case "stage-activate": return .ok("swap=no\n")
            case "switch": return .ok("previous=release_0\nstopped_ms=1\nrunning=schedule short-worker long-worker\ndowntime_ms=1500\nlive=release_1\n")
            case "prune": return .ok("pruned=release_old\n")
            default: return .ok(command.executable == "rsync" ? "Number of regular files transferred: 3\nTotal bytes sent: 100\n" : "")
            }
        }
    }

    /// What each command is, in order; the local release digest runs beside the connection (its
    /// place in the order is not the sync's), so it is left out.
    func kinds(_ commands: [Command]) -> [String] {
        commands.filter { !$0.arguments.contains("--list-only") }.map { command in
            if let phase = command.scriptPhase { return phase }
            if command.arguments == ["--version"] { return "version" }
            if command.executable == "rsync" { return "rsync" }
            if command.arguments.contains("--list-only") { return "digest" }
            if command.arguments.contains("-O") { return command.arguments.contains("check") ? "check" : "close" }
            if command.arguments.contains("-N") { return "open" }
            return command.description
        }
    }

    @Test("staged: lock, check, stage beside the live release, link, switch, prune, unlock")
    func stagedOrder() async throws {
        let runner = RecordingRunner(answers: Self.answer())
        let events = Events()
        let report = try await SyncRunner(runner: runner, reporter: events, verbose: false).run(plan)
        // The release's local digest is taken alongside connect and check: once, at no fixed place.
        #expect(runner.commands.filter { $0.arguments.contains("--list-only") }.count == 1)
        #expect(kinds(runner.commands).filter { $0 != "digest" }
                == ["open", "preflight", "version", "stage-prepare", "rsync", "rsync", "rsync", "stage-activate", "switch", "prune", "unlock", "close"])
        // The release in two streams (env/ and the rest), both on the live release as base.
        let release = runner.commands.filter { $0.executable == "rsync" && $0.arguments.contains { $0.hasSuffix(".fd-staging-release_1-\(plan.token)/") } }
        #expect(release.count == 2)
        #expect(release.allSatisfy { $0.arguments.contains("--link-dest=/home/frappe/frappe/sites/a.test/workspace/release_0") && $0.arguments.contains("--checksum") })
        #expect(report.previousRelease == "release_0")
        #expect(report.runningServices == ["long-worker", "schedule", "short-worker"])
        #expect(report.downtimeSeconds == 1.5)
        #expect(report.pruned == ["release_old"])
        #expect(report.totals.regularFilesTransferred == 9)
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .stage, .link, .switchRelease, .prune])
        #expect(events.all.filter { if case .stepFinished = $0 { true } else { false } }.count == 6)
    }

    @Test("in place: the spec's order under the lock: stop, transfer, link, start")
    func inPlaceOrder() async throws {
        let runner = RecordingRunner(answers: Self.answer())
        let report = try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(inPlacePlan)
        #expect(kinds(runner.commands) == ["open", "preflight", "version", "stop", "rsync", "rsync", "activate", "start", "unlock", "close"])
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .stopServices, .transfer, .link, .startServices])
        // From the stop to all up again, on the worker's clock.
        #expect(report.downtimeSeconds == 3.5)
    }

    @Test("a worker locked by a live sync refuses with who holds it, and nothing else runs")
    func locked() async throws {
        let runner = RecordingRunner { command in
            if command.scriptPhase == "preflight" {
                return CommandOutput(exitCode: 6, standardOutput: "held_by=ops@main-2 pid 4242\nheld_since=1795599000\nheld_token=zzz\nswitch_running=no\n", standardErrorTail: [])
            }
            return Self.answer()(command)
        }
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure, case .locked(let host, let holder, _, let waited)? = failure.underlying as? SyncError else { return false }
            return failure.step == .preflight && host == "w1" && holder == "ops@main-2 pid 4242" && waited == 0
                && failure.errorDescription?.contains("--lock-wait") == true
        }
        #expect(kinds(runner.commands) == ["open", "preflight", "close"])
    }

    @Test("a lock held by a provably dead process (this boot and PID namespace, its pid gone) is taken over with its token")
    func takeover() async throws {
        let me = try #require(ProcessIdentity.current())
        let gone = ProcessIdentity(boot: me.boot, pidNamespace: me.pidNamespace, pid: 999_999, start: "7")
        let runner = Self.heldBy(origin: gone.text)
        _ = try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        #expect(kinds(runner.commands).prefix(3) == ["open", "preflight", "preflight"])
        #expect(runner.commands.first { $0.scriptPhase == "preflight" }?.arguments.last?.contains("--origin=\(me.boot)") == true,
                "the lock request carries this process's identity")
    }

    @Test("a holder whose death cannot be proved from here (another PID namespace, no identity) is never taken over")
    func noTakeoverWithoutProof() async throws {
        let me = try #require(ProcessIdentity.current())
        for origin in [ProcessIdentity(boot: me.boot, pidNamespace: "pid:[1]", pid: 999_999, start: "7").text, ""] {
            let runner = Self.heldBy(origin: origin)
            await #expect(throws: SyncFailure.self) { try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan) }
            #expect(!runner.commands.contains { $0.arguments.last?.contains("--takeover=") == true })
        }
    }

    /// A worker whose lock is held by `root@this-host pid 999999` with process identity `origin`.
    static func heldBy(origin: String) -> RecordingRunner {
        let holder = "root@\(ProcessInfo.processInfo.hostName) pid 999999"
        return RecordingRunner { command in
            if command.scriptPhase == "preflight" {
                if command.arguments.last?.contains("--takeover=deadbeef") == true {
                    return .ok("took_over=\(holder)\nlocked=yes\ncurrent_release=release_0\nreleases=release_0\n")
                }
                return CommandOutput(exitCode: 6, standardOutput: "held_by=\(holder)\nheld_since=1\nheld_token=deadbeef\nheld_origin=\(origin)\nswitch_running=no\n",
                                     standardErrorTail: [])
            }
            return Self.answer()(command)
        }
    }

    @Test("a switch that rolled back is a failure that says the previous release runs")
    func rolledBack() async throws {
        let runner = RecordingRunner { command in
            if command.scriptPhase == "switch" {
                return CommandOutput(exitCode: 7, standardOutput: "previous=release_0\nreason=service short-worker is not running after start: see 'docker compose logs short-worker' in /x\nrolled_back=release_0\ndowntime_ms=4000\n",
                                     standardErrorTail: ["error: service short-worker is not running after start: see 'docker compose logs short-worker' in /x",
                                                         "error: release_1 did not start; going back to release_0"])
            }
            return Self.answer()(command)
        }
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure, case .rolledBack(_, let release, let previous, let reason)? = failure.underlying as? SyncError else { return false }
            return failure.step == .switchRelease && release == "release_1" && previous == "release_0" && reason.hasPrefix("service short-worker is not running")
        }
        let kinds = kinds(runner.commands)
        #expect(!kinds.contains("prune"))
        #expect(Array(kinds.suffix(3)) == ["check", "unlock", "close"])
    }

    @Test("an interrupt during staging cancels it, removes the staged copy and never switches")
    func interruptDuringStaging() async throws {
        let interrupt = InterruptSignal()
        let runner = RecordingRunner { command in
            if command.executable == "rsync" { interrupt.raise(SIGINT) }
            return Self.answer()(command)
        }
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false, interrupt: interrupt).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure, case .interrupted(let signal, _)? = failure.underlying as? SyncError else { return false }
            return signal == SIGINT
        }
        let kinds = kinds(runner.commands)
        #expect(!kinds.contains("switch"))
        #expect(kinds.contains("unstage"))
        #expect(Array(kinds.suffix(3)) == ["check", "unlock", "close"])
    }

    @Test("an interrupt during the switch lets it finish, then reports what runs")
    func interruptDuringSwitch() async throws {
        let interrupt = InterruptSignal()
        let runner = RecordingRunner { command in
            if command.scriptPhase == "switch" { interrupt.raise(SIGTERM) }
            return Self.answer()(command)
        }
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false, interrupt: interrupt).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure, case .interrupted(_, let state)? = failure.underlying as? SyncError else { return false }
            return state.contains("release_1 runs")
        }
        #expect(Array(kinds(runner.commands).suffix(3)) == ["check", "unlock", "close"])
    }

    @Test("a worker that fails its checks is left untouched: nothing is stopped or sent")
    func preflightFailure() async throws {
        let runner = RecordingRunner(answers: Self.answer(failing: "preflight", message: "error: /x/docker-compose.workers.yml is missing on the worker"))
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .preflight && failure.workerState == .unchanged
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
        _ = plan
    }

    @Test("a failed staging transfer never touches the running release, removes the staged copy, and says so")
    func stagingFailure() async throws {
        let runner = RecordingRunner(answers: Self.answer(failing: "rsync", exitCode: 23, message: "rsync: write failed: No space left on device (28)"))
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .stage && failure.workerState.description.hasPrefix("unchanged: the old release still runs")
                && failure.details.contains("exit code: 23")
        }
        let kinds = kinds(runner.commands)
        #expect(!kinds.contains("switch") && !kinds.contains("stop") && !kinds.contains("stage-activate"))
        #expect(kinds.contains("unstage"))
        #expect(Array(kinds.suffix(3)) == ["check", "unlock", "close"])
    }

    @Test("a lost connection skips remote cleanup instead of waiting on a dead link")
    func lostConnection() async throws {
        let runner = RecordingRunner { command in
            if command.arguments.contains("check") { return .failed(255, "Control socket connect(/tmp/x/m): No such file or directory") }
            return Self.answer(failing: "rsync", exitCode: 255, message: "ssh: connect to host w1 port 22: Connection timed out")(command)
        }
        await #expect(throws: SyncFailure.self) { try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(plan) }
        let kinds = kinds(runner.commands)
        #expect(!kinds.contains("unstage") && !kinds.contains("unlock"))
        #expect(kinds.last == "close")
    }

    @Test("in place: a failed transfer never links or starts the half-sent release, and says so")
    func inPlaceTransferFailure() async throws {
        let runner = RecordingRunner(answers: Self.answer(failing: "rsync", exitCode: 23, message: "rsync: write failed: No space left on device (28)"))
        await #expect {
            try await SyncRunner(runner: runner, reporter: Events(), verbose: false).run(inPlacePlan)
        } throws: { error in
            guard let failure = error as? SyncFailure else { return false }
            return failure.step == .transfer && failure.workerState == .described("services stopped, files partly transferred")
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
