import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing

/// Keep and restart of a verified live copy, dry-run, status and rollback, with a recording fake
/// in place of ssh and rsync: what runs, in what order, and what is reported.
@Suite("Keep, restart, dry-run, status and rollback")
struct SessionFlowTests {
    let directory: TemporaryDirectory
    let plan: SyncPlan

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-flow")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/b", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 2, bytes: 100))
        plan = SyncPlan.make(workspace: try LocalWorkspace.locate(benchesPath: fixture.benchesPath, siteName: "a.test"),
                             worker: WorkerSettings(server: "w1", workspacePath: "/home/frappe/frappe/sites/a.test/workspace"))
    }

    /// What each command is: a worker phase, `digest` (the local release listing), `version`,
    /// `rsync` or `rsync-dry`, and the master connection's `open`, `check` and `close`.
    static func kind(_ command: Command) -> String {
        if let phase = command.scriptPhase { return phase }
        if command.arguments == ["--version"] { return "version" }
        if command.arguments.contains("--list-only") { return "digest" }
        if command.executable == "rsync" { return command.arguments.contains("--dry-run") ? "rsync-dry" : "rsync" }
        if command.arguments.contains("-O") { return command.arguments.contains("check") ? "check" : "close" }
        if command.arguments.contains("-N") { return "open" }
        return command.description
    }

    /// The main server's digest of the plan's release as the fake answers the listing.
    func mainDigest() async throws -> String {
        try #require(await ReleaseDigest.local(plan, runner: RecordingRunner()))
    }

    func verifiedLive(_ digest: String, running: String = "schedule short-worker long-worker") -> String {
        """
        locked=yes
        worker_services=short-worker long-worker
        \(verifiedRelease(digest, liveConfigs: plan.workerConfigs ?? ""))
        running=\(running)
        """
    }

    /// The release facts of a worker whose live release_1 is the verified copy of `digest`.
    func verifiedRelease(_ digest: String, liveConfigs: String) -> String {
        """
        current_release=release_1
        previous_release=release_0
        releases=release_0 release_1
        verified_release=release_1
        verified_main=\(digest)
        verified_copy=copy-1
        live_digest=copy-1
        live_configs=\(liveConfigs)
        """
    }

    static func answering(preflight: String, rsync: String = "Number of regular files transferred: 0\n",
                          switchOutput: String = "running=schedule short-worker long-worker\ndowntime_ms=1200\n") -> RecordingRunner {
        RecordingRunner { command in
            switch command.scriptPhase {
            case "preflight": return .ok(preflight)
            case "switch": return .ok(switchOutput)
            default: return .ok(command.executable == "rsync" ? rsync : "")
            }
        }
    }

    @Test("a verified live copy, unchanged data, the wanted services running: nothing restarts, only data is sent")
    func keepLeavesServicesRunning() async throws {
        let runner = Self.answering(preflight: verifiedLive(try await mainDigest()))
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).run(plan)
        #expect(runner.commands.map(Self.kind).filter { $0 != "digest" } == ["open", "preflight", "version", "rsync", "unlock", "close"])
        #expect(report.releaseKept && report.servicesKept)
        #expect(report.runningServices == ["long-worker", "schedule", "short-worker"])
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .compare, .stage])
        #expect(report.transfers.map(\.name) == ["deployment-data"])
    }

    /// The plan with an include directory (code or config services read at start).
    var planWithIncludes: SyncPlan {
        var worker = plan.worker
        worker.includeDirs = ["custom_apps"]
        return SyncPlan.make(workspace: plan.workspace, worker: worker, token: plan.token)
    }

    @Test("a verified live copy whose deployment-data alone changed keeps its services running")
    func keepDespiteChangedData() async throws {
        let runner = Self.answering(preflight: verifiedLive(try await mainDigest()), rsync: "Number of regular files transferred: 2\nNumber of deleted files: 1\n")
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).run(plan)
        #expect(!runner.commands.contains { $0.scriptPhase == "switch" })
        #expect(report.releaseKept && report.servicesKept)
        #expect(report.totals.regularFilesTransferred == 2)
    }

    @Test("a verified live copy whose includes changed restarts on the same release, keeping it verified")
    func keepRestartsForChangedIncludes() async throws {
        let digest = try await mainDigest()
        let runner = Self.answering(preflight: verifiedLive(digest), rsync: "Number of regular files transferred: 2\n")
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).run(planWithIncludes)
        #expect(runner.commands.map(Self.kind).filter { $0 != "digest" } == ["open", "preflight", "version", "rsync", "rsync", "switch", "unlock", "close"])
        let switchCommand = try #require(runner.commands.first { $0.scriptPhase == "switch" })
        let remote = try #require(switchCommand.arguments.last)
        #expect(remote.contains("--release=release_1") && !remote.contains("--stage="))
        #expect(remote.contains("--verified=\(digest):copy-1"))
        #expect(report.releaseKept && !report.servicesKept)
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .compare, .stage, .restart])
        #expect(report.downtimeSeconds == 1.2)
    }

    @Test("a verified live copy changed on the worker is staged afresh and swapped in")
    func changedCopyIsStaged() async throws {
        let digest = try await mainDigest()
        let preflight = verifiedLive(digest).replacingOccurrences(of: "live_digest=copy-1", with: "live_digest=copy-2")
        let runner = RecordingRunner { command in
            switch command.scriptPhase {
            case "preflight": return .ok(preflight)
            case "stage-activate": return .ok("swap=yes\n")
            case "switch": return .ok("running=schedule short-worker long-worker\ndowntime_ms=900\n")
            default: return .ok("")
            }
        }
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).run(plan)
        #expect(!report.releaseKept)
        let remote = try #require(runner.commands.first { $0.scriptPhase == "switch" }?.arguments.last)
        #expect(remote.contains("--stage=\(plan.stagingPath)"), "the fresh copy is swapped in for the live one")
        // The main digest alone: the switch digests the fresh copy itself.
        #expect(remote.contains("--verified=\(digest) "), "\(remote)")
        #expect(report.stepSeconds.map(\.step) == [.connect, .preflight, .compare, .stage, .link, .switchRelease, .prune])
    }

    @Test("dry-run: read-only check, the decision in words, itemized changes; no lock, nothing written")
    func dryRun() async throws {
        let preflight = verifiedLive(try await mainDigest()).replacingOccurrences(of: "locked=yes\n", with: "")
        let itemized = ">f+++++++++ 120 sites/new.json\n>fc.t...... 50 sites/apps.txt\n*deleting   old.txt\n"
        let runner = Self.answering(preflight: preflight, rsync: itemized)
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).dryRun(planWithIncludes)
        let kinds = runner.commands.map(Self.kind).filter { $0 != "digest" }
        #expect(kinds == ["open", "preflight", "version", "rsync-dry", "rsync-dry", "rsync-dry", "close"])
        let check = try #require(runner.commands.first { $0.scriptPhase == "preflight" }?.arguments.last)
        #expect(!check.contains("--token="), "a dry run takes no lock")
        let data = try #require(report.trees.first { $0.name == "deployment-data" })
        #expect(data.added == 1 && data.changed == 1 && data.deleted == 1 && data.addedBytes == 120)
        // Includes would change: the kept copy's services would restart.
        #expect(report.steps.contains { $0.hasPrefix("keep release_1: it is live, was verified") })
        #expect(report.steps.contains { $0.hasPrefix("restart as a new generation of release_1: start schedule, long-worker, short-worker beside the running ones") })
        #expect(report.stopServices == ["long-worker", "schedule", "short-worker"])

        let staged = Self.answering(preflight: preflight.replacingOccurrences(of: "current_release=release_1", with: "current_release=release_0"),
                                    rsync: "")
        let plain = try await SyncRunner(runner: staged, reporter: SilentReporter(), verbose: false).dryRun(plan)
        #expect(plain.steps.contains("stage release_1 beside the running release, reusing release_0 (release_0 runs now)"))
        #expect(plain.steps.contains { $0.hasPrefix("hand over: start schedule, long-worker, short-worker of release_1 beside the running ones") })
        #expect(plain.steps.contains { $0.contains("then tell long-worker, schedule, short-worker to stop (they finish their jobs on release_0)") })
        #expect(plain.summary().contains("services to start: schedule, long-worker, short-worker"))
    }

    @Test("status: releases, services, lock and last sync from the worker; the verified release by digests, data by rsync")
    func status() async throws {
        try await status(liveConfigs: plan.workerConfigs ?? "", configDrift: 0)
    }

    @Test("status counts the live release's own worker configs as drift when they are not the main server's")
    func statusConfigDrift() async throws {
        try await status(liveConfigs: "1:2 3:4", configDrift: 1)
    }

    func status(liveConfigs: String, configDrift: Int) async throws {
        let verifiedRelease = verifiedRelease(try await mainDigest(), liveConfigs: liveConfigs)
        let runner = RecordingRunner { command in
            if command.scriptPhase == "status" {
                return .ok("""
                    \(verifiedRelease)
                    worker_services=short-worker long-worker
                    service_states=long-worker:running schedule:running short-worker:exited
                    lock_holder=ops@main pid 4
                    lock_since=1795599000
                    lock_alive=no
                    last_kind=sync
                    last_release=release_1
                    last_downtime=1.25
                    """)
            }
            return .ok(command.arguments.contains("--dry-run") ? ">f.st...... 10 sites/apps.txt\n" : "")
        }
        let status = await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).status(plan)
        #expect(status.reachable && status.error == nil)
        #expect(status.liveRelease == "release_1" && status.matchesMain)
        #expect(status.services == ["long-worker": "running", "schedule": "running", "short-worker": "exited"])
        #expect(status.schedulerRunning == true)
        #expect(status.lock?.holder == "ops@main pid 4" && status.lock?.alive == false)
        #expect(status.lock?.since == Date(timeIntervalSince1970: 1_795_599_000))
        #expect(status.lastSync?.downtimeSeconds == 1.25)
        // The verified release is compared by digests (nothing read), deployment-data by rsync.
        #expect(status.driftByTree?.map(\.name) == ["release", "deployment-data", "worker configs"])
        #expect(status.driftByTree?.last?.total == configDrift)
        #expect(status.drift == 1 + configDrift)
        #expect(runner.commands.filter { $0.arguments.contains("--dry-run") }.count == 1)
    }

    @Test("rollback switches to the recorded previous release with no dependency check; without one it refuses")
    func rollback() async throws {
        let worker = plan.worker
        let runner = Self.answering(preflight: "locked=yes\nworker_services=short-worker\ncurrent_release=release_2\nprevious_release=release_1\nreleases=release_1 release_2\n")
        let report = try await SyncRunner(runner: runner, reporter: SilentReporter(), verbose: false).rollback(site: "a.test", worker: worker)
        #expect(runner.commands.map(Self.kind) == ["open", "preflight", "switch", "unlock", "close"])
        let remote = try #require(runner.commands.first { $0.scriptPhase == "switch" }?.arguments.last)
        #expect(remote.contains("--release=release_1") && !remote.contains("--deps="))
        #expect(remote.hasSuffix("-- schedule short-worker"))
        #expect(report.isRollback && report.release == "release_1" && report.previousRelease == "release_2")

        let none = Self.answering(preflight: "locked=yes\nworker_services=short-worker\ncurrent_release=release_1\nreleases=release_1\n")
        await #expect {
            try await SyncRunner(runner: none, reporter: SilentReporter(), verbose: false).rollback(site: "a.test", worker: worker)
        } throws: { error in
            guard let failure = error as? SyncFailure, case .noPreviousRelease(_, let live)? = failure.underlying as? SyncError else { return false }
            return live == "release_1" && failure.workerState == .unchanged
        }
        #expect(!none.commands.contains { $0.scriptPhase == "switch" })
    }
}
