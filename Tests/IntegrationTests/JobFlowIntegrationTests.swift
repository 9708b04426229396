import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// Jobs through a sync, with the job world: the worker services are real RQ workers started from
/// the release's own virtualenv (bench's queues: short-worker `short,default`, long-worker
/// `long,default,short`) against the main side's real Redis, `schedule` enqueues a tick every
/// second, and a load driver keeps enqueuing jobs that account for themselves. Every job of a run
/// is accounted for: finished exactly once, none failed, interrupted or left in RQ's registries,
/// and which release's code ran it, at its start and at its end.
@Suite("jobs through a sync, with real RQ workers", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class JobFlowIntegrationTests {
    static let site = "jobs.example.test"
    static let r1 = "release_20261201_080000"
    static let r2 = "release_20261202_080000"
    nonisolated(unsafe) static var nextIndex = 150

    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker
    let index: Int

    init() async throws {
        Self.nextIndex += 1
        index = Self.nextIndex
        directory = try TemporaryDirectory(prefix: "fd-jobs")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                              mainAddress: "10.213.\(index).1", jobs: true)
        worker = try await TestbedWorker.up("jw\(index)", index: index)
        try await worker.addSite(Self.site, jobs: true)
    }

    deinit { worker.down() }

    var redis: String { fixture.workersRedisQueue }

    func tool(_ command: String, _ extra: [String] = []) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", command, Self.site, "--server", worker.address, "--ssh-config", worker.sshConfig,
                                    "--benches-path", fixture.benchesPath] + extra)
    }

    func expectSuccess(_ result: ToolResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Every job of the run finished exactly once; none failed, was interrupted, ran twice, changed
    /// release under it, or was left in RQ's started, failed (where abandoned jobs go) or canceled registries.
    func expectNoJobLost(_ account: JobAccount, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(account.jobs >= 20, "too little load to prove anything: \(account)", sourceLocation: sourceLocation)
        #expect(account.finishedOnce == account.jobs, "\(account)", sourceLocation: sourceLocation)
        #expect(account.neverStarted.isEmpty && account.interrupted.isEmpty && account.ranTwice.isEmpty && account.failed.isEmpty,
                "\(account)", sourceLocation: sourceLocation)
        #expect(account.registries.started.isEmpty && account.registries.failed.isEmpty && account.registries.canceled.isEmpty,
                "\(account)", sourceLocation: sourceLocation)
        #expect(account.mixedRelease.isEmpty, "jobs that read another release's files at their end: \(account.mixedRelease)",
                sourceLocation: sourceLocation)
        #expect(account.ok, "\(account)", sourceLocation: sourceLocation)
    }

    /// Jobs that started after `time` ran `release`'s code.
    func expectJobs(after time: Double, ran release: String, _ account: JobAccount, sourceLocation: SourceLocation = #_sourceLocation) {
        let later = account.detail.filter { ($0.start ?? 0) > time }
        #expect(!later.isEmpty, "no job started after the operation: \(account)", sourceLocation: sourceLocation)
        let others = later.filter { $0.release != release }
        #expect(others.isEmpty, "jobs after the operation ran \(Set(others.compactMap(\.release))), not \(release)", sourceLocation: sourceLocation)
    }

    /// No two schedulers ticked at the same time.
    func expectOneScheduler(_ account: JobAccount, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!account.schedulers.isEmpty, "no scheduler ticked", sourceLocation: sourceLocation)
        #expect(account.schedulerOverlapSeconds <= 0, "two schedulers at once: \(account.schedulers)", sourceLocation: sourceLocation)
    }

    /// Jobs are being taken on the worker: waits until a job of the run has started on `queue`.
    func waitForStart(_ driver: LoadDriver, queue: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let account = try await JobWorld.account(redis: redis, run: driver.run, wait: .zero)
            if account.detail.contains(where: { $0.queue == queue && $0.start != nil }) { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        throw FixtureError("no job of \(driver.run) started on \(queue) within 30 s")
    }

    static var now: Double { Date().timeIntervalSince1970 }

    // MARK: - The tests

    @Test("the job world runs: the synced release's RQ workers take jobs from every queue, with the worker's config")
    func jobWorldRuns() async throws {
        expectSuccess(try await tool("sync"))
        let driver = try LoadDriver(redis: redis, rate: 4, seconds: 0.1, long: 1)
        try await Task.sleep(for: .seconds(4))
        let account = try await driver.finish(wait: .seconds(60))
        expectNoJobLost(account)
        #expect(account.releases == [Self.r1: account.jobs], "\(account.releases)")
        #expect(Set(account.queues.keys) == ["short", "default", "long"])
        #expect(Set(account.detail.compactMap(\.worker).map { $0.split(separator: ".").first.map(String.init) ?? "" })
                == ["short-worker", "long-worker"], "both worker services took jobs")
        expectOneScheduler(account)
        for service in ["short-worker", "long-worker"] {
            let beat = try await worker.heartbeat(site: Self.site, service: service)
            #expect(beat.release == Self.r1)
            #expect(beat.redisQueue == redis)
            #expect(beat.dbHost == fixture.mainAddress)
        }
        // status reads RQ's suspend flag in the shared queue Redis (what `fmx restart` sets).
        let host = "10.213.\(index).1"
        #expect(try await tool("status").standardOutput.contains("queue: taking jobs"))
        _ = try await SubprocessRunner().run(Command("redis-cli", ["-h", host, "-p", "11000", "SET", "rq:suspended", "1"]))
        let suspended = try await tool("status")
        #expect(suspended.standardOutput.contains("queue: SUSPENDED (no job runs anywhere)"), "\(suspended.standardOutput)")
        #expect(suspended.standardOutput.contains("warning: the queue of \(Self.site) is suspended"), "\(suspended.standardOutput)")
        _ = try await SubprocessRunner().run(Command("redis-cli", ["-h", host, "-p", "11000", "DEL", "rq:suspended"]))
    }

    @Test("a sync under steady load with a 15 s job on the long queue: no job lost, killed or run twice; the long job ran its old code to the end; later jobs run the new release; one scheduler at a time")
    func syncUnderLoad() async throws {
        expectSuccess(try await tool("sync"))
        try fixture.addRelease(Self.r2, seed: 2, jobs: true)
        try fixture.activate(Self.r2)
        let driver = try LoadDriver(redis: redis, rate: 4, seconds: 0.1, long: 15)
        try await waitForStart(driver, queue: "long")
        let began = Self.now
        let result = try await tool("sync")
        let switched = Self.now
        expectSuccess(result)
        try await Task.sleep(for: .seconds(3))
        let account = try await driver.finish(wait: .seconds(90))
        expectNoJobLost(account)
        expectJobs(after: switched, ran: Self.r2, account)
        expectOneScheduler(account)
        let long = try #require(account.longJobs.first)
        #expect((long.start ?? .infinity) < began, "the long job was running when the sync began")
        #expect(long.release == Self.r1 && long.endRelease == Self.r1, "the long job ran \(Self.r1)'s code to its end: \(long)")
        #expect((long.end ?? 0) - (long.start ?? 0) >= 15, "the long job ran its full length: \(long)")
        #expect((long.end ?? 0) > switched, "the long job was still running when the switch was done: it drained")
        // The handover: every queue kept being served while the long job drained.
        #expect(account.longestGap <= 3, "longest time no job started: \(account.queues)")
        #expect(result.standardOutput.contains("handover: \(Self.r2)'s workers took jobs before the old ones were told to stop"), "\(result.standardOutput)")
        #expect(result.standardOutput.contains("draining: \(Self.r1) ("), "\(result.standardOutput)")
        #expect(result.standardOutput.contains("finishes its running jobs on its own release, detached on the worker"), "\(result.standardOutput)")
        print("job flow through a handover with a 15 s job draining: longest time no job started: "
              + account.queues.keys.sorted().map { "\($0) \(String(format: "%.1f", account.queues[$0]!.longestGap)) s" }.joined(separator: ", "))
    }

    @Test("a worker whose services read through frappe-bench (started by FM, or in place): the flip waits for their drain, so the long job never reads the new release")
    func handoverFromUnpinnedWorkers() async throws {
        expectSuccess(try await tool("sync", ["--strategy", "in-place"]))
        try fixture.addRelease(Self.r2, seed: 2, jobs: true)
        try fixture.activate(Self.r2)
        let driver = try LoadDriver(redis: redis, rate: 4, seconds: 0.1, long: 12)
        try await waitForStart(driver, queue: "long")
        let result = try await tool("sync")
        let switched = Self.now
        expectSuccess(result)
        #expect(result.standardOutput.contains("frappe-bench moves to \(Self.r2) when that drain ends"), "\(result.standardOutput)")
        let link = worker.onHost(worker.workspace(Self.site)) + "/frappe-bench"
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == Self.r1, "not yet: the old workers still read through it")
        try await Task.sleep(for: .seconds(2))
        let account = try await driver.finish(wait: .seconds(90))
        expectNoJobLost(account)
        expectJobs(after: switched, ran: Self.r2, account)
        expectOneScheduler(account)
        let long = try #require(account.longJobs.first)
        #expect(long.release == Self.r1 && long.endRelease == Self.r1, "the long job ran \(Self.r1)'s code to its end: \(long)")
        #expect(account.longestGap <= 3, "longest time no job started: \(account.queues)")
        // Once drained, frappe-bench points at the live release.
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != Self.r2 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == Self.r2)
    }

    @Test("a job still running when its worker's stop timeout runs out is killed, and the accounting says so")
    func killedJobIsSeen() async throws {
        expectSuccess(try await tool("sync"))
        try fixture.addRelease(Self.r2, seed: 2, jobs: true)
        try fixture.activate(Self.r2)
        let driver = try LoadDriver(redis: redis, rate: 2, seconds: 0.1, long: 30)
        try await waitForStart(driver, queue: "long")
        expectSuccess(try await tool("sync", ["--stop-timeout", "2"]))
        try await Task.sleep(for: .seconds(4))
        let account = try await driver.finish(wait: .seconds(10))
        let long = try #require(account.longJobs.first)
        #expect(account.interrupted == [long.id], "\(account)")
        #expect(long.end == nil && long.endRelease == nil)
        #expect(!account.ok)
        // What the drain killed is reported: by status, and by the next sync.
        let status = try await tool("status")
        #expect(status.standardOutput.contains("last drain: \(Self.r1) done at"), "\(status.standardOutput)")
        #expect(status.standardOutput.contains("killed: long-worker (stop wait ran out)"), "\(status.standardOutput)")
        let next = try await tool("sync", ["--full"])
        expectSuccess(next)
        #expect(next.standardOutput.contains("warning: the drain of \(Self.r1) ended with long-worker killed"), "\(next.standardOutput)")
    }

    @Test("a new release whose worker crashes on start, under load: the previous release serves again and no job is lost")
    func failedReleaseUnderLoad() async throws {
        expectSuccess(try await tool("sync"))
        try fixture.addRelease(Self.r2, seed: 2, brokenService: "short-worker", jobs: true)
        try fixture.activate(Self.r2)
        let driver = try LoadDriver(redis: redis, rate: 4, seconds: 0.1, long: 5)
        try await waitForStart(driver, queue: "long")
        let result = try await tool("sync")
        let rolledBack = Self.now
        #expect(result.exitCode == 1)
        #expect(result.errors.first?.contains("rolled back: \(Self.r1) is running again") == true, "\(result.errors)")
        try await Task.sleep(for: .seconds(3))
        let account = try await driver.finish(wait: .seconds(90))
        expectNoJobLost(account)
        expectJobs(after: rolledBack, ran: Self.r1, account)
        expectOneScheduler(account)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: worker.onHost(worker.workspace(Self.site)) + "/frappe-bench") == Self.r1)
    }

    @Test("rollback under load: no job lost; later jobs run the previous release")
    func rollbackUnderLoad() async throws {
        expectSuccess(try await tool("sync"))
        try fixture.addRelease(Self.r2, seed: 2, jobs: true)
        try fixture.activate(Self.r2)
        expectSuccess(try await tool("sync"))
        let driver = try LoadDriver(redis: redis, rate: 4, seconds: 0.1, long: 4)
        try await waitForStart(driver, queue: "long")
        let result = try await DeployerTool.run(["remote-worker", "rollback", Self.site, "--server", worker.address,
                                                 "--ssh-config", worker.sshConfig])
        let rolledBack = Self.now
        expectSuccess(result)
        try await Task.sleep(for: .seconds(3))
        let account = try await driver.finish(wait: .seconds(90))
        expectNoJobLost(account)
        expectJobs(after: rolledBack, ran: Self.r1, account)
        expectOneScheduler(account)
        let long = try #require(account.longJobs.first)
        #expect(long.release == Self.r2 && long.endRelease == Self.r2, "the long job ran \(Self.r2)'s code to its end: \(long)")
    }

    @Test("--canary with real RQ workers: the canary's new workers must listen on the queue; one that runs but listens on none stops the rest", .timeLimit(.minutes(6)))
    func canaryJobCheck() async throws {
        let second = try await TestbedWorker.up("jw\(index + 50)", index: index + 50)
        defer { second.down() }
        try await second.addSite(Self.site, jobs: true)
        let config = directory.path + "/fleet_ssh_config"
        try TestbedWorker.sharedSSHConfig([worker, second], at: config)
        func fleet(_ extra: [String]) async throws -> ToolResult {
            try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address, "--server", second.address,
                                        "--ssh-config", config, "--benches-path", fixture.benchesPath, "--canary", "1"] + extra)
        }
        let load = try LoadDriver(redis: redis)
        let first = try await fleet(["--batch-wait", "3"])
        expectSuccess(first)
        let note = first.standardError.first { $0.hasPrefix("[\(worker.address)] canary check: ") } ?? ""
        #expect(note.contains("2 RQ workers listening on the site's queue"), "\(first.standardError)")
        #expect(first.standardOutput.contains("canary check: 2 RQ workers listening"), "\(first.standardOutput)")
        let account = try await load.finish()
        expectNoJobLost(account)

        // A release whose long-worker runs but listens on no queue passes the switch's own checks
        // (it stays up); the canary's job check catches it and the second worker is not touched.
        try fixture.addRelease(Self.r2, seed: 2, jobs: true, deafService: "long-worker")
        try fixture.activate(Self.r2)
        let deaf = try await fleet([])
        #expect(deaf.exitCode == 1)
        let error = deaf.errors.first ?? ""
        // (The testbed's containers share the host's network, so its workers are counted, not named.)
        #expect(error.contains("canary \(worker.address) runs \(Self.r2), but only 1 RQ worker of the new release listens on the site's queue for its 2 worker services"),
                "\(deaf.standardError)")
        #expect(deaf.standardOutput.contains("not started (the canary check failed on \(worker.address)"), "\(deaf.standardOutput)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: second.onHost(second.workspace(Self.site)) + "/frappe-bench") == Self.r1)
    }
}
