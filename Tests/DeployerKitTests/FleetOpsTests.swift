import DeployerKit
import Foundation
import Synchronization
import Testing

/// Canary and batches, hooks and the history: the logic, without a worker.
@Suite("fleet operations: rollout waves, hooks, history entries")
struct FleetOpsTests {
    static func workers(_ count: Int) -> [WorkerSettings] {
        (1...count).map { WorkerSettings(server: "w\($0)", workspacePath: "/home/frappe/frappe/sites/a.test/workspace") }
    }

    static func report(_ server: String) -> SyncReport {
        SyncReport(site: "a.test", destination: "frappe@\(server)", release: "release_2", strategy: .staged)
    }

    func resolve(_ flags: SyncOverrides, file: ConfigFile? = nil) throws -> SyncSettings {
        try SettingsResolver.resolve(flags: flags, environment: [:], file: file, home: "/home/op")
    }

    @Test("waves: canaries first, then batches of batch_size in the order listed; without either, one wave")
    func waves() {
        #expect(Rollout().waves(count: 3).map(\.workers) == [[0, 1, 2]])
        #expect(Rollout(canary: 1).waves(count: 4).map(\.workers) == [[0], [1, 2, 3]])
        #expect(Rollout(canary: 1, batchSize: 2).waves(count: 6).map(\.workers) == [[0], [1, 2], [3, 4], [5]])
        #expect(Rollout(canary: 1, batchSize: 2).waves(count: 6).map(\.name) == ["canary", "batch 1", "batch 2", "batch 3"])
        #expect(Rollout(batchSize: 5).waves(count: 3).map(\.workers) == [[0, 1, 2]])
    }

    @Test("a failed canary starts no other worker; each says what it runs")
    func canaryFails() async {
        let workers = Self.workers(4)
        let started = Mutex<[Int]>([])
        let outcomes = await FleetRunner(parallel: 4, failFast: false, rollout: Rollout(canary: 1, batchSize: 2)).run(workers) { index in
            started.withLock { $0.append(index) }
            if index == 0 {
                throw SyncFailure(step: .switchRelease, host: "w1", underlying: SyncError.rolledBack(host: "w1", release: "release_2", previous: "release_1", reason: "x"),
                                  workerState: .described("rolled back: release_1 runs again"))
            }
            return Self.report(workers[index].server)
        }
        #expect(started.withLock { $0 } == [0])
        #expect(outcomes[0].runsNow == "failed; rolled back: release_1 runs again")
        #expect(outcomes[1].problem == "not started: canary failed on w1, so no later worker started")
        #expect(outcomes[3].runsNow.hasPrefix("not started (canary failed on w1"))
        #expect(FleetRunner.exitCode(outcomes) == 1)
    }

    @Test("batches go one after another with the wait between; a failed batch stops the next")
    func batches() async {
        let workers = Self.workers(5)
        let events = Mutex<[(Int, ContinuousClock.Instant)]>([])
        let outcomes = await FleetRunner(parallel: 4, failFast: false, rollout: Rollout(canary: 1, batchSize: 2, batchWait: 1)).run(workers) { index in
            events.withLock { $0.append((index, .now)) }
            if index == 2 { throw SyncError.switchFailed(host: "w3", release: "r", reason: "test") }
            return Self.report(workers[index].server)
        }
        let seen = events.withLock { $0 }
        #expect(Set(seen.map(\.0)) == [0, 1, 2], "batch 2 (w4, w5) never starts after batch 1 failed")
        let canary = seen.first { $0.0 == 0 }!.1
        for later in seen where later.0 != 0 { #expect(later.1 - canary >= .seconds(1), "the batch waits batch_wait after the canary") }
        #expect(outcomes.map(\.succeeded) == [true, true, false, false, false])
        #expect(outcomes[4].problem == "not started: batch 1 failed on w3, so no later worker started")
    }

    @Test("canary, batch_size, batch_wait and [hooks] come from the file and flags; bad values are refused before any connection")
    func settings() throws {
        let file = try ConfigFile.parse("""
            site_name = "a.test"
            canary = 1
            batch_size = 2
            batch_wait = 30

            [hooks]
            before_sync = "curl -fsS https://ci.example/green"
            on_failure = "notify $FD_WORKER"
            timeout = 60

            [[remote_worker]]
            server = "w1"
            [[remote_worker]]
            server = "w2"
            [[remote_worker]]
            server = "w3"
            """, path: "f.toml")
        var settings = try resolve(SyncOverrides(), file: file)
        #expect(settings.rollout == Rollout(canary: 1, batchSize: 2, batchWait: 30))
        #expect(settings.hooks == Hooks(beforeSync: "curl -fsS https://ci.example/green", onFailure: "notify $FD_WORKER", timeout: 60))
        var flags = SyncOverrides()
        flags.fleet.afterSwitch = "echo done"
        flags.fleet.batchWait = 0
        settings = try resolve(flags, file: file)
        #expect(settings.hooks.afterSwitch == "echo done" && settings.hooks.beforeSync != nil && settings.rollout.batchWait == 0)
        flags.noHooks = true
        #expect(try resolve(flags, file: file).hooks == Hooks())
        var tooMany = SyncOverrides()
        tooMany.fleet.canary = 3
        #expect { try resolve(tooMany, file: file) } throws: { ($0 as? ConfigError)?.errorDescription?.contains("canary") == true }
        var empty = SyncOverrides()
        empty.fleet.beforeSync = " "
        #expect { try resolve(empty, file: file) } throws: { ($0 as? ConfigError)?.errorDescription?.contains("option --before-sync") == true }
        #expect(throws: ConfigError.self) { try ConfigFile.parse("[hooks]\nbefore = \"x\"\n", path: "f.toml") }
        // [watch], with the options over it.
        let watching = try ConfigFile.parse("site_name = \"a.test\"\n[watch]\ndebounce = 10\nretry_max = 60\npoll_only = true\n[remote_worker]\nserver = \"w1\"\n",
                                            path: "f.toml")
        var watchFlags = SyncOverrides()
        watchFlags.fleet.watchDebounce = 1
        #expect(try resolve(watchFlags, file: watching).watch == ReleaseWatch.Options(debounce: 1, poll: 2, retryMax: 60, pollOnly: true))
        watchFlags.fleet.watchRetryMax = 2
        #expect { try resolve(watchFlags, file: watching) } throws: { ($0 as? ConfigError)?.errorDescription?.contains("watch.retry_max") == true }
        #expect(throws: ConfigError.self) { try ConfigFile.parse("[watch]\ndebounce = \"5\"\n", path: "f.toml") }
        #expect(throws: ConfigError.self) { try ConfigFile.parse("hooks = \"x\"\n", path: "f.toml") }
    }

    @Test("a hook runs through /bin/sh with FD_* variables; its output (secrets masked) and exit status are kept")
    func hookRuns() async throws {
        let hooks = Hooks(onFailure: "echo \"$FD_HOOK $FD_SITE $FD_WORKER $FD_RELEASE $FD_PREVIOUS_RELEASE $FD_RESULT\"; echo \"$FD_ERROR\" >&2; exit 3")
        let context = HookContext(site: "a.test", worker: Self.workers(1)[0], kind: "sync", release: "release_2", previousRelease: "release_1",
                                  result: "rolled-back", error: "redis://:s3cret@10.0.0.1:11000 is not reachable")
        let run = try #require(await HookRunner(hooks: hooks, runner: SubprocessRunner()).run(.onFailure, context))
        #expect(run.exitCode == 3 && !run.succeeded && !run.timedOut)
        #expect(run.output.contains("on_failure a.test w1 release_2 release_1 rolled-back"), "\(run.output)")
        #expect(run.output.contains { $0.contains("redis://:***@10.0.0.1:11000") } && !run.output.joined().contains("s3cret"), "\(run.output)")
        #expect(await HookRunner(hooks: hooks, runner: SubprocessRunner()).run(.beforeSync, context) == nil, "no hook, no run")
    }

    @Test("a hook past its time limit is stopped with what it started, within seconds")
    func hookTimeLimit() async throws {
        // The shell waits for a child; both must go when the limit passes. The bound tells "stopped
        // at the limit" from "ran its course" (120 s) with room for a loaded machine: the full suite
        // runs dozens of tests at once on two cores, and once took 8.5 s here.
        let hooks = Hooks(afterSwitch: "sleep 120 & echo \"child=$!\"; wait", timeout: 1)
        let context = HookContext(site: "a.test", worker: Self.workers(1)[0], kind: "sync")
        let start = ContinuousClock.now
        let run = try #require(await HookRunner(hooks: hooks, runner: SubprocessRunner()).run(.afterSwitch, context))
        #expect(run.timedOut && !run.succeeded)
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(run.outcome.contains("time limit"))
        let child = try #require(run.output.first { $0.hasPrefix("child=") }.flatMap { pid_t($0.dropFirst(6)) }, "\(run.output)")
        // The shell's child got the signal too: gone (or a zombie of an exited shell, reaped by init).
        var gone = false
        for _ in 0..<50 where !gone {
            gone = kill(child, 0) != 0 || (try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8))?.contains(") Z ") == true
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "sleep \(child) outlived its hook")
    }

    @Test("history: an operation's result from its error; entries read back as written, one line each")
    func historyEntries() {
        #expect(HistoryEntry.result(of: nil) == .ok)
        let rolled = SyncFailure(step: .switchRelease, host: "w", underlying: SyncError.rolledBack(host: "w", release: "r2", previous: "r1", reason: "x"),
                                 workerState: .unchanged)
        #expect(HistoryEntry.result(of: rolled) == .rolledBack)
        #expect(HistoryEntry.result(of: SyncError.markedBad(host: "w", release: "r2")) == .refused)
        #expect(HistoryEntry.result(of: SyncError.interrupted(signal: 15, state: "")) == .interrupted)
        #expect(HistoryEntry.result(of: CancellationError()) == .failed)
        let entry = HistoryEntry(at: Date(timeIntervalSince1970: 1_764_000_000), kind: "rollback", by: "ops@main pid 7", from: "r2", to: "r1",
                                 result: .ok, seconds: 4.26, noJobsSeconds: 0, kept: true, error: "line one\nline\ttwo token=abc")
        #expect(!entry.line.contains("\n") && entry.line.split(separator: "\t").count == 10)
        let read = HistoryEntry(line: entry.line)
        #expect(read?.error == "line one line two token=***")
        #expect(read?.to == "r1" && read?.from == "r2" && read?.kept == true && read?.seconds == 4.3 && read?.noJobsSeconds == 0)
        #expect(HistoryEntry(line: "garbage") == nil)
    }

    @Test("watch: a failing worker waits 5 s, doubling, never past --retry-max")
    func retryWaits() {
        #expect((1...8).map { ReleaseWatch.retryWait(failures: $0, max: 300) } == [5, 10, 20, 40, 80, 160, 300, 300])
        #expect(ReleaseWatch.retryWait(failures: 1_000, max: 60) == 60)
    }

    @Test("watch: inotify reports the link being replaced (rename or remove and create), not other entries")
    func linkEvents() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fd-watch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/release_1", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/frappe-bench", withDestinationPath: "release_1")
        let watcher = try #require(LinkWatcher.start(directory: directory, name: "frappe-bench"), "inotify works on this kernel")
        defer { watcher.stop() }
        func settle() async throws { try await Task.sleep(for: .milliseconds(700)) }
        try FileManager.default.createDirectory(atPath: directory + "/release_2", withIntermediateDirectories: true)
        try await settle()
        #expect(watcher.count == 0, "another entry is not the link")
        // FM's deploy: a new link renamed over the old one.
        try FileManager.default.createSymbolicLink(atPath: directory + "/.frappe-bench.new", withDestinationPath: "release_2")
        #expect(rename(directory + "/.frappe-bench.new", directory + "/frappe-bench") == 0)
        try await settle()
        let renamed = watcher.count
        #expect(renamed >= 1)
        // ln -sfn: removed, then created.
        try FileManager.default.removeItem(atPath: directory + "/frappe-bench")
        try FileManager.default.createSymbolicLink(atPath: directory + "/frappe-bench", withDestinationPath: "release_1")
        try await settle()
        #expect(watcher.count > renamed)
    }

    @Test("canary job check: every worker service needs an RQ worker listening; jobs that all failed fail it; no RQ is said, not failed")
    func canaryVerdict() {
        let facts = WorkerFacts("rq_1=short-worker idle short.r2.ab12 3 0\nrq_2=long-worker busy long.r2.cd34 1 1\nrq=yes\n")
        let answer = JobsAnswer(facts)
        #expect(answer.workers?.map(\.service) == ["short-worker", "long-worker"])
        let services = ["long-worker", "schedule", "short-worker"]
        let good = CanaryCheck.verdict(answer, services: services)
        #expect(good.problem == nil)
        #expect(good.note == "2 RQ workers listening on the site's queue; 4 jobs done, 1 failed since the switch")
        let deaf = CanaryCheck.verdict(JobsAnswer(workers: [RQWorker(service: "short-worker", state: "idle", name: "s", successful: 0, failed: 0)]), services: services)
        #expect(deaf.problem == "long-worker of the new release has no RQ worker listening on the site's queue")
        let failing = CanaryCheck.verdict(JobsAnswer(workers: [
            RQWorker(service: "short-worker", state: "idle", name: "s", successful: 0, failed: 2),
            RQWorker(service: "long-worker", state: "idle", name: "l", successful: 0, failed: 1),
        ]), services: services)
        #expect(failing.problem == "every job the new release ran failed (3)")
        // Containers sharing a host name (host networking): the workers count without names.
        let shared = [RQWorker(service: "?", state: "idle", name: "a", successful: 1, failed: 0)]
        #expect(CanaryCheck.verdict(JobsAnswer(workers: shared), services: services).problem
                == "only 1 RQ worker of the new release listens on the site's queue for its 2 worker services (long-worker, short-worker)")
        #expect(CanaryCheck.verdict(JobsAnswer(workers: shared + shared), services: services).problem == nil)
        let none = CanaryCheck.verdict(JobsAnswer(WorkerFacts("rq=none\n")), services: services)
        #expect(none.problem == nil && none.note.hasPrefix("jobs not checked"))
    }

    @Test("a canary whose job check fails starts no other worker; a passing one lets the rest go after batch_wait")
    func canaryCheckGates() async {
        let workers = Self.workers(3)
        for failing in [true, false] {
            let started = Mutex<[Int]>([])
            let outcomes = await FleetRunner(parallel: 3, failFast: false, rollout: Rollout(canary: 1)).run(workers, canaryCheck: { index, _ in
                #expect(index == 0, "only canaries are checked")
                return (failing ? "short-worker of the new release has no RQ worker listening on the site's queue" : nil, "1 RQ worker listening")
            }) { index in
                started.withLock { $0.append(index) }
                return Self.report(workers[index].server)
            }
            if failing {
                #expect(started.withLock { $0 } == [0])
                #expect(outcomes[0].problem?.hasPrefix("canary w1 runs release_2, but short-worker of the new release has no RQ worker") == true, "\(outcomes[0].problem ?? "")")
                #expect(outcomes[0].runsNow == "failed; runs release_2")
                #expect(outcomes[1].problem == "not started: the canary check failed on w1, so no later worker started")
                #expect(FleetRunner.exitCode(outcomes) == 1)
            } else {
                #expect(started.withLock { $0 }.sorted() == [0, 1, 2])
                #expect(outcomes.allSatisfy(\.succeeded) && outcomes[0].report?.canaryCheck == "1 RQ worker listening")
            }
        }
    }
}
