import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing

@Suite("Fleets: several workers per site")
struct FleetTests {
    func resolve(_ flags: SyncOverrides, file: ConfigFile? = nil, env: [String: String] = [:]) throws -> SyncSettings {
        try SettingsResolver.resolve(flags: flags, environment: env, file: file, home: "/home/op")
    }

    @Test("[[remote_worker]] entries are read, each with its own keys; [remote_worker] still works")
    func arrayOfTables() throws {
        let file = try ConfigFile.parse("""
            site_name = "a.test"
            parallel = 2
            fail_fast = true

            [[remote_worker]]
            server = "w1"
            scheduler = true

            [[remote_worker]]
            server = "w2"
            ssh_port = 2222
            scheduler = false
            settle = 5
            """, path: "f.toml")
        #expect(file.remoteWorkers.map(\.server) == ["w1", "w2"])
        #expect(file.remoteWorkers[1].scheduler == false && file.remoteWorkers[1].settle == 5)
        #expect(file.parallel == 2 && file.failFast == true)
        #expect(throws: ConfigError.self) { try ConfigFile.parse("[[remote_worker]]\nserver = 1\n", path: "f.toml") }
        #expect(throws: ConfigError.self) { try ConfigFile.parse("[[remote_worker]]\nscheduler = \"no\"\n", path: "f.toml") }
    }

    @Test("without --server every file entry is a worker; settings per entry; flags apply to all")
    func fileEntries() throws {
        let file = ConfigFile(path: "f.toml", siteName: "a.test", remoteWorkers: [
            RemoteWorkerConfig(server: "w1"), RemoteWorkerConfig(server: "w2", sshPort: 2222, scheduler: false),
        ])
        var flags = SyncOverrides()
        flags.worker.keepReleases = 5
        let settings = try resolve(flags, file: file)
        #expect(settings.workers.map(\.server) == ["w1", "w2"])
        #expect(settings.workers.map(\.sshPort) == [22, 2222])
        #expect(settings.workers.map(\.scheduler) == [true, false])
        #expect(settings.workers.map(\.keepReleases) == [5, 5])
        #expect(settings.parallel == 4 && !settings.failFast)
    }

    @Test("--server picks workers: a matching entry gives its settings, others get the defaults")
    func serversFromFlags() throws {
        let file = ConfigFile(path: "f.toml", siteName: "a.test", remoteWorkers: [
            RemoteWorkerConfig(server: "w1", sshPort: 2201), RemoteWorkerConfig(server: "w2", sshPort: 2202),
        ])
        var flags = SyncOverrides()
        flags.servers = ["w2", "w3"]
        flags.parallel = 1
        let settings = try resolve(flags, file: file)
        #expect(settings.workers.map(\.server) == ["w2", "w3"])
        #expect(settings.workers.map(\.sshPort) == [2202, 22])
        #expect(settings.parallel == 1)
        let env = try resolve(SyncOverrides(), file: file, env: ["FRAPPE_DEPLOYER_SERVER": "w1, w9"])
        #expect(env.workers.map(\.server) == ["w1", "w9"])
    }

    @Test("a worker listed twice, a zero parallel, or a bad server is refused naming it")
    func badFleets() throws {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.servers = ["w1", "w1"]
        #expect(throws: ConfigError.conflict(message: "worker w1 port 22 is listed twice: name each worker once")) { try resolve(flags) }
        flags.servers = ["w1"]
        flags.parallel = 0
        #expect(throws: ConfigError.self) { try resolve(flags) }
        flags.parallel = nil
        flags.servers = ["w1", "-oProxyCommand=x"]
        #expect(throws: ConfigError.self) { try resolve(flags) }
    }

    static func settings(_ servers: [String]) -> [WorkerSettings] {
        servers.map { WorkerSettings(server: $0, workspacePath: "/w") }
    }

    static func report(_ worker: String) -> SyncReport {
        SyncReport(site: "a.test", destination: "frappe@\(worker)", release: "r", strategy: .staged)
    }

    @Test("at most `parallel` run at once; every result is kept in order; failures do not stop the others")
    func parallelLimit() async throws {
        let running = Mutex((now: 0, peak: 0))
        let workers = Self.settings(["a", "b", "c", "d", "e"])
        let outcomes = await FleetRunner(parallel: 2, failFast: false).run(workers) { index in
            running.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            try await Task.sleep(for: .milliseconds(30))
            running.withLock { $0.now -= 1 }
            if index == 1 { throw SyncError.switchFailed(host: "h", release: "r", reason: "test") }
            return Self.report(workers[index].server)
        }
        #expect(running.withLock { $0.peak } == 2)
        #expect(outcomes.map(\.succeeded) == [true, false, true, true, true])
        #expect(FleetRunner.exitCode(outcomes) == 1)
    }

    @Test("--fail-fast starts no worker after a failure; those are reported as not started")
    func failFast() async throws {
        let workers = Self.settings(["a", "b", "c"])
        let outcomes = await FleetRunner(parallel: 1, failFast: true).run(workers) { index in
            if index == 0 { throw SyncError.switchFailed(host: "h", release: "r", reason: "test") }
            return Self.report(workers[index].server)
        }
        #expect(outcomes.map(\.succeeded) == [false, false, false])
        #expect(outcomes[1].problem == "not started: an earlier worker failed (--fail-fast)")
    }

    @Test("exit status: all locked is 3, any interrupt is 130, other failures 1")
    func exitCodes() {
        let worker = WorkerSettings(server: "a", workspacePath: "/w")
        let ok = WorkerOutcome(worker: worker, report: Self.report("a"))
        let locked = WorkerOutcome(worker: worker, error: SyncError.locked(host: "a", holder: "x", since: "y", waited: 0))
        let interrupted = WorkerOutcome(worker: worker, error: SyncError.interrupted(signal: 2, state: "s"))
        #expect(FleetRunner.exitCode([ok, ok]) == 0)
        #expect(FleetRunner.exitCode([ok, locked]) == 3)
        #expect(FleetRunner.exitCode([locked, interrupted]) == 130)
        #expect(FleetRunner.exitCode([locked, WorkerOutcome(worker: worker, error: SyncError.switchFailed(host: "h", release: "r", reason: "test"))]) == 1)
    }

    @Test("a dry run's itemized list becomes counts and bytes")
    func itemized() {
        let changes = TreeChanges.parse(name: "release", itemized: """
            *deleting   0 gone
            >f.s....... 6 a
            cL+++++++++ 1 lnk
            >f+++++++++ 4 sub/n
            cd+++++++++ 4096 sub/
            .d..t...... 4096 ./
            .f...p..... 9 mode-only

            Number of files: 5
            """)
        #expect(changes.added == 2 && changes.addedBytes == 4)
        #expect(changes.changed == 2 && changes.changedBytes == 6)
        #expect(changes.deleted == 1)
    }
}
