import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing

/// The staged sync under faults, against real testbed workers. Every test ends by proving the
/// worker runs exactly one complete release: `frappe-bench`, fresh heartbeats of every service and
/// the release's files all agree with one side, only worker services run, deployment-data is intact.
@Suite("staged sync under faults", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class StagedSyncFaultTests {
    static let site = "faults.example.test"
    static let r1 = "release_20261201_080000"
    static let r2 = "release_20261202_080000"
    nonisolated(unsafe) static var nextIndex = 60

    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker
    let index: Int

    init() async throws {
        Self.nextIndex += 1
        index = Self.nextIndex
        directory = try TemporaryDirectory(prefix: "fd-fault")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                              mainAddress: "10.213.\(index).1")
        worker = try await TestbedWorker.up("ft\(index)", index: index)
        try await worker.addSite(Self.site)
    }

    deinit { worker.down() }

    var workspaceOnHost: String { worker.onHost(worker.workspace(Self.site)) }
    let planted = "deployment-data/sites/\(site)/private/files/worker-only-upload.pdf"

    func syncArguments(_ extra: [String] = []) -> [String] {
        ["remote-worker", "sync", Self.site, "--server", worker.address, "--ssh-config", worker.sshConfig,
         "--benches-path", fixture.benchesPath] + extra
    }

    func sync(_ extra: [String] = [], onError: (@Sendable (String, pid_t) -> Void)? = nil) async throws -> ToolResult {
        try await DeployerTool.run(syncArguments(extra), onError: onError)
    }

    /// First sync of r1, a file only the worker has in deployment-data, then r2 made current on the
    /// main server (`incompressibleMiB` makes its staging take a while under --bwlimit).
    func prepare(r2MiB: Int = 0, brokenService: String? = nil) async throws {
        let first = try await sync()
        #expect(first.exitCode == 0, "\(first.standardError.joined(separator: "\n"))")
        try await plant()
        try fixture.addRelease(Self.r2, seed: 2, incompressibleMiB: r2MiB, brokenService: brokenService)
        try fixture.activate(Self.r2)
    }

    /// A file only the worker has, which no sync may delete.
    func plant() async throws {
        let path = workspaceOnHost + "/" + planted
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("the worker's own upload".utf8).write(to: URL(fileURLWithPath: path))
        _ = try await SubprocessRunner().run(Command("chown", ["-R", "frappe:frappe", workspaceOnHost + "/deployment-data"]))
    }

    /// The worker runs exactly `release`, completely, with only worker services, data intact.
    func expectWorkerRuns(_ release: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: workspaceOnHost + "/frappe-bench") == release, sourceLocation: sourceLocation)
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await worker.heartbeat(site: Self.site, service: service) { $0.time > after }
            #expect(beat.release == release, "\(service) runs \(beat.release)", sourceLocation: sourceLocation)
            #expect(beat.redisQueue == fixture.workersRedisQueue, sourceLocation: sourceLocation)
        }
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"], sourceLocation: sourceLocation)
        let differences = ReleaseComparison.differences(main: fixture.workspace + "/" + release, worker: workspaceOnHost + "/" + release, site: Self.site)
        #expect(differences.isEmpty, "\(differences.prefix(10))", sourceLocation: sourceLocation)
        #expect(fm.fileExists(atPath: workspaceOnHost + "/" + planted), "deployment-data lost the worker's own file", sourceLocation: sourceLocation)
        #expect(fm.fileExists(atPath: workspaceOnHost + "/deployment-data/sites/\(Self.site)/site_config.workers.json"), sourceLocation: sourceLocation)
    }

    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: workspaceOnHost).filter { $0.hasPrefix(".fd-") }
    }

    /// Calls `action` once, on the first stderr line that contains `marker`.
    final class Trigger: Sendable {
        let marker: String
        let fired = Mutex(false)
        let action: @Sendable (pid_t) -> Void
        init(on marker: String, _ action: @escaping @Sendable (pid_t) -> Void) {
            self.marker = marker
            self.action = action
        }
        var handler: @Sendable (String, pid_t) -> Void {
            { [self] line, pid in
                guard line.contains(marker) else { return }
                let first = fired.withLock { fired -> Bool in
                    defer { fired = true }
                    return !fired
                }
                if first { action(pid) }
            }
        }
    }

    // MARK: - Staging never disturbs the running workers

    @Test("old workers keep writing heartbeats while a new release is being staged")
    func heartbeatsDuringStaging() async throws {
        try await prepare(r2MiB: 6)
        let stageDone = Mutex(false)
        let seenDuringStaging = Mutex<Set<Int>>([])
        let stagingStarted = Trigger(on: "] stage...") { _ in }
        let arguments = syncArguments(["--bwlimit", "1024"])
        let task = Task {
            defer { stageDone.withLock { $0 = true } }
            return try await DeployerTool.run(arguments) { line, pid in
                stagingStarted.handler(line, pid)
                if line.contains("] stage done") || line.contains("] stage FAILED") { stageDone.withLock { $0 = true } }
            }
        }
        // While staging runs, the old release's workers go on: collect their heartbeat times.
        while !stageDone.withLock({ $0 }) {
            if stagingStarted.fired.withLock({ $0 }),
               let beat = try? await worker.heartbeat(site: Self.site, service: "short-worker", timeout: .seconds(2)),
               !stageDone.withLock({ $0 }) {
                #expect(beat.release == Self.r1)
                seenDuringStaging.withLock { _ = $0.insert(beat.time) }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        let result = try await task.value
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        #expect(seenDuringStaging.withLock { $0.count } >= 2, "the old workers wrote no fresh heartbeats while staging")
        #expect(result.standardOutput.contains("\(Self.r2) is live (was \(Self.r1))"))
        try await expectWorkerRuns(Self.r2)
    }

    // MARK: - Interrupts

    @Test("SIGINT during staging: the old release keeps running, staging is removed, the lock released")
    func sigintDuringStaging() async throws {
        try await prepare(r2MiB: 6)
        let result = try await sync(["--bwlimit", "1024"], onError: Trigger(on: "] stage...") { kill($0, SIGINT) }.handler)
        #expect(result.exitCode == 130)
        #expect(result.errors.first?.contains("interrupted by SIGINT: staging stopped; the old release still runs") == true, "\(result.errors)")
        try await expectWorkerRuns(Self.r1)
        #expect(try leftovers().isEmpty)
        // The lock was released: the next sync needs no wait.
        let next = try await sync()
        #expect(next.exitCode == 0, "\(next.standardError.joined(separator: "\n"))")
        try await expectWorkerRuns(Self.r2)
    }

    @Test("SIGINT during the switch: the switch finishes, the new release runs, the lock is released")
    func sigintDuringSwitch() async throws {
        try await prepare()
        let result = try await sync(onError: Trigger(on: "] switch...") { kill($0, SIGINT) }.handler)
        #expect(result.exitCode == 130)
        #expect(result.errors.first?.contains("the switch completed first: \(Self.r2) runs") == true, "\(result.errors)")
        try await expectWorkerRuns(Self.r2)
        let next = try await sync()
        #expect(next.exitCode == 0, "\(next.standardError.joined(separator: "\n"))")
    }

    @Test("SIGKILL during staging, then a rerun: the rerun recovers the lock and completes")
    func sigkillThenRerun() async throws {
        try await prepare(r2MiB: 6)
        let killed = try await sync(["--bwlimit", "1024"], onError: Trigger(on: "] stage...") { kill($0, SIGKILL) }.handler)
        #expect(killed.exitCode == 128 + SIGKILL)
        try await expectWorkerRuns(Self.r1)
        let rerun = try await sync()
        #expect(rerun.exitCode == 0, "\(rerun.standardError.joined(separator: "\n"))")
        #expect(rerun.standardError.contains { $0.contains("lock taken over from") || $0.contains("lock recovered from") })
        try await expectWorkerRuns(Self.r2)
        // The killed sync never unlocked, so it never wrote its history entry: the rerun wrote it.
        let history = try await DeployerTool.run(["remote-worker", "history", Self.site, "--server", worker.address, "--ssh-config",
                                                  worker.sshConfig, "--benches-path", fixture.benchesPath, "--json"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(history.standardOutput.utf8)) as? [String: Any])
        let entries = try #require((document["workers"] as? [[String: Any]])?.first?["entries"] as? [[String: Any]], "\(document)")
        try #require(entries.compactMap { $0["result"] as? String } == ["ok", "unfinished", "ok"], "\(entries)")
        #expect(entries[1]["kind"] as? String == "sync" && entries[1]["from"] as? String == Self.r1 && entries[1]["to"] as? String == Self.r1)
    }

    // MARK: - Failures

    @Test("network cut during the transfer: the sync fails, the old release keeps running; a rerun completes")
    func networkCut() async throws {
        try await prepare(r2MiB: 6)
        let worker = self.worker
        // Cut when rsync reports its first file sent (--verbose), i.e. in the middle of the transfer.
        let result = try await sync(["--verbose", "--bwlimit", "1024", "--ssh-option", "ServerAliveInterval=1", "--ssh-option", "ServerAliveCountMax=2"],
                                    onError: Trigger(on: "release | <f") { _ in worker.cutLinkNow() }.handler)
        try await worker.setLink(up: true)
        #expect(result.exitCode == 1)
        #expect(result.errors.first?.contains("(worker: unchanged: the old release still runs") == true, "\(result.errors)")
        try await expectWorkerRuns(Self.r1)
        let rerun = try await sync()
        #expect(rerun.exitCode == 0, "\(rerun.standardError.joined(separator: "\n"))")
        try await expectWorkerRuns(Self.r2)
    }

    @Test("worker disk full while staging: the old release keeps running and the staged copy is removed")
    func diskFull() async throws {
        // A worker whose /home is a 6 MiB disk: r1 fits, r2 with its 8 MiB database does not.
        worker.down()
        let small = try await TestbedWorker.up("fd\(index)", index: index, homeSize: "6m")
        try await small.addSite(Self.site)
        let workspace = small.onHost(small.workspace(Self.site))
        let args = ["remote-worker", "sync", Self.site, "--server", small.address, "--ssh-config", small.sshConfig, "--benches-path", fixture.benchesPath]
        let first = try await DeployerTool.run(args)
        #expect(first.exitCode == 0, "\(first.standardError.joined(separator: "\n"))")
        try fixture.addRelease(Self.r2, seed: 2, incompressibleMiB: 8)
        try fixture.activate(Self.r2)
        let full = try await DeployerTool.run(args)
        #expect(full.exitCode == 1)
        #expect(full.errors.first?.contains("No space left on device") == true, "\(full.standardError)")
        #expect(full.errors.first?.contains("the old release still runs") == true, "\(full.errors)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: workspace + "/frappe-bench") == Self.r1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace).filter { $0.hasPrefix(".fd-") }.isEmpty)
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await small.heartbeat(site: Self.site, service: service) { $0.time > after }
            #expect(beat.release == Self.r1)
        }
        #expect(try await small.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])
        #expect(ReleaseComparison.differences(main: fixture.workspace + "/" + Self.r1, worker: workspace + "/" + Self.r1, site: Self.site).isEmpty)
        small.down()
    }

    @Test("a worker service that fails to start after the switch: automatic rollback to the old release")
    func failedStartRollsBack() async throws {
        try await prepare(brokenService: "short-worker")
        let result = try await sync()
        #expect(result.exitCode == 1)
        let error = result.errors.first ?? ""
        #expect(error.contains("\(Self.r2) did not start on \(worker.address)"), "\(error)")
        #expect(error.contains("service short-worker is not running after start"), "\(error)")
        #expect(error.contains("rolled back: \(Self.r1) is running again"), "\(error)")
        try await expectWorkerRuns(Self.r1)
    }

    @Test("a worker service that crashed and was restarted by its restart policy within the settle time: a crash loop, rolled back")
    func restartedServiceRollsBack() async throws {
        let first = try await sync()
        #expect(first.exitCode == 0, "\(first.standardError.joined(separator: "\n"))")
        try await plant()
        try fixture.addRelease(Self.r2, seed: 2, crashOnceService: "long-worker")
        try fixture.activate(Self.r2)
        // FM's worker services restart always: long-worker's new container crashes once and runs again.
        let compose = (workspaceOnHost as NSString).deletingLastPathComponent + "/docker-compose.workers.yml"
        let text = try String(contentsOfFile: compose, encoding: .utf8)
        try text.replacingOccurrences(of: "  long-worker:\n", with: "  long-worker:\n    restart: always\n")
            .write(toFile: compose, atomically: false, encoding: .utf8)
        let result = try await sync()
        #expect(result.exitCode == 1)
        let error = result.errors.first ?? ""
        #expect(error.contains("service long-worker restarted 1 times within 2 s of starting (crash loop)"), "\(error)")
        #expect(error.contains("rolled back: \(Self.r1) is running again"), "\(error)")
        try await expectWorkerRuns(Self.r1)
    }

    @Test("two syncs at once: the second is refused with who holds the lock; with --lock-wait it waits and succeeds")
    func twoSyncsAtOnce() async throws {
        try await prepare(r2MiB: 4)
        // The first sync holds the lock once it stages.
        let first = try await DeployerTool.start(syncArguments(["--bwlimit", "1024"]), until: "] stage...")
        let refused = try await sync()
        #expect(refused.exitCode == 3)
        #expect(refused.errors.first?.contains("is locked by another sync (root@") == true, "\(refused.errors)")
        #expect(refused.errors.first?.contains("--lock-wait") == true)
        let waiting = try await sync(["--lock-wait", "120"])
        let winner = try await first.value
        #expect(winner.exitCode == 0, "\(winner.standardError.joined(separator: "\n"))")
        #expect(waiting.exitCode == 0, "\(waiting.standardError.joined(separator: "\n"))")
        try await expectWorkerRuns(Self.r2)
    }

    // MARK: - Rollback, retention, in-place

    @Test("rollback switches the worker back to the previous release")
    func rollbackCommand() async throws {
        try await prepare()
        #expect(try await sync().exitCode == 0)
        try await expectWorkerRuns(Self.r2)
        let result = try await DeployerTool.run(["remote-worker", "rollback", Self.site, "--server", worker.address, "--ssh-config", worker.sshConfig])
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        #expect(result.standardOutput.contains("rolled back \(Self.site) on frappe@\(worker.address): \(Self.r1) is live (was \(Self.r2))"))
        try await expectWorkerRuns(Self.r1)
    }

    @Test("retention keeps the newest releases and reports what it pruned")
    func retention() async throws {
        #expect(try await sync(["--keep-releases", "2"]).exitCode == 0)
        try await plant()
        var names = [Self.r1]
        for day in 3...5 {
            let name = "release_2026120\(day)_080000"
            names.append(name)
            try fixture.addRelease(name, seed: UInt64(day))
            try fixture.activate(name)
            let result = try await sync(["--keep-releases", "2"])
            #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: workspaceOnHost).filter { $0.hasPrefix("release_") }.sorted()
        #expect(left == Array(names.suffix(2)))
        try await expectWorkerRuns(names.last!)
    }

    @Test("--strategy in-place keeps the spec's order and still ends on a complete release")
    func inPlace() async throws {
        try await prepare()
        let result = try await sync(["--strategy", "in-place"])
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        #expect(result.standardOutput.contains("(in-place; services stopped until running again)"))
        #expect(result.standardError.contains { $0.contains("] stop services done") })
        try await expectWorkerRuns(Self.r2)
    }
}
