import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// Bad input and faults an operator or an attacker brings, against real testbed workers: each
/// test reproduces one way a worker could be left wrong and proves it is not.
@Suite("hardening against testbed workers", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class HardeningIntegrationTests {
    static let site = "hard.example.test"
    static let r1 = "release_20261201_090000"
    static let r2 = "release_20261202_090000"
    nonisolated(unsafe) static var nextIndex = 120

    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker
    let index: Int

    init() async throws {
        Self.nextIndex += 1
        index = Self.nextIndex
        directory = try TemporaryDirectory(prefix: "fd-hard")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                              mainAddress: "10.213.\(index).1")
        worker = try await TestbedWorker.up("hd\(index)", index: index)
        try await worker.addSite(Self.site)
    }

    deinit { worker.down() }

    var workspaceOnHost: String { worker.onHost(worker.workspace(Self.site)) }
    var connection: [String] { ["--server", worker.address, "--ssh-config", worker.sshConfig] }

    func sync(_ extra: [String] = []) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", "sync", Self.site] + connection + ["--benches-path", fixture.benchesPath] + extra)
    }

    /// Points the main server's worker config at `queue` (what `remote-worker enable` would write).
    func setWorkersQueue(_ queue: String) throws {
        let path = fixture.deploymentData + "/sites/common_site_config.workers.json"
        let data = try JSONSerialization.data(withJSONObject: ["redis_queue": queue, "redis_cache": "redis://redis-cache:6379", "socketio_port": "9000"],
                                              options: [.sortedKeys, .withoutEscapingSlashes])
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Every worker service writes fresh heartbeats from `release`, read with `queue`.
    func expectServices(run release: String, queue: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await worker.heartbeat(site: Self.site, service: service) { $0.time > after }
            #expect(beat.release == release, "\(service) runs \(beat.release)", sourceLocation: sourceLocation)
            #expect(beat.redisQueue == queue, "\(service) reads \(beat.redisQueue)", sourceLocation: sourceLocation)
        }
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"], sourceLocation: sourceLocation)
    }

    // MARK: - A release keeps its worker configs (11.3)

    @Test("a broken worker config fails the checks and the old workers run on with the old config, as the report says")
    func brokenConfigRollsBackWithItsConfig() async throws {
        let good = fixture.workersRedisQueue
        #expect(try await sync().exitCode == 0)
        // Nothing listens on 11001: the new config's queue is unreachable from the worker.
        let broken = "redis://\(fixture.mainAddress):11001"
        try setWorkersQueue(broken)
        let dryRun = try await sync(["--dry-run"])
        #expect(dryRun.standardOutput.contains("worker configs (*.workers.json) changed"), "\(dryRun.standardOutput)")
        for extra in [[], ["--full"]] {
            let result = try await sync(extra)
            #expect(result.exitCode == 1, "\(result.standardError.joined(separator: "\n"))")
            let error = result.errors.first ?? ""
            #expect(error.contains("redis_queue"), "\(error)")
            #expect(error.contains("rolled back") || error.contains("old workers still run"), "\(error)")
            try await expectServices(run: Self.r1, queue: good)
        }
        // The live release still links to the config it went live with.
        let linked = try String(contentsOfFile: workspaceOnHost + "/\(Self.r1)/sites/common_site_config.json", encoding: .utf8)
        #expect(linked.contains(good) && !linked.contains(broken))
        // A good config goes live without --full: a fresh copy of the same release, with it.
        let fixed = "redis://\(fixture.mainAddress):11000/0"
        try setWorkersQueue(fixed)
        let result = try await sync()
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        try await expectServices(run: Self.r1, queue: fixed)
        // And with nothing changed since, the copy is kept and the services stay.
        let again = try await sync()
        #expect(again.exitCode == 0)
        #expect(again.standardOutput.contains("the verified copy and its running services were kept"), "\(again.standardOutput)")
    }

    @Test("rollback goes back to the previous release with the worker config that release went live with")
    func rollbackRestoresItsConfig() async throws {
        let first = fixture.workersRedisQueue
        #expect(try await sync().exitCode == 0)
        try fixture.addRelease(Self.r2, seed: 2)
        try fixture.activate(Self.r2)
        let second = "redis://\(fixture.mainAddress):11000/1"
        try setWorkersQueue(second)
        let synced = try await sync()
        #expect(synced.exitCode == 0, "\(synced.standardError.joined(separator: "\n"))")
        try await expectServices(run: Self.r2, queue: second)
        let rollback = try await DeployerTool.run(["remote-worker", "rollback", Self.site] + connection)
        #expect(rollback.exitCode == 0, "\(rollback.standardError.joined(separator: "\n"))")
        try await expectServices(run: Self.r1, queue: first)
    }

    // MARK: - Messages (11.14)

    @Test("a worker shell that prints for ssh commands breaks rsync: the one-line error says so without --verbose")
    func noisyShell() async throws {
        let rc = worker.onHost("/home/frappe/.ssh/rc")
        try "echo 'Welcome to the worker!'\n".write(toFile: rc, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rc) }
        let result = try await sync()
        #expect(result.exitCode == 1)
        #expect(result.errors.count == 1)
        #expect(result.errors.first?.contains("the worker's shell printed text for a non-interactive ssh command") == true, "\(result.standardError)")
        #expect(result.errors.first?.contains("the old release still runs") == true || result.errors.first?.contains("unchanged") == true,
                "\(result.standardError)")
    }

    // MARK: - A worker left wrong is repaired (11.10) and a failed prune is a warning (11.16)

    /// The worker runs exactly `release`, complete and identical to the main server's, with no
    /// working directories left.
    func expectComplete(_ release: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: workspaceOnHost + "/frappe-bench") == release, sourceLocation: sourceLocation)
        try await expectServices(run: release, queue: fixture.workersRedisQueue, sourceLocation: sourceLocation)
        let differences = ReleaseComparison.differences(main: fixture.workspace + "/" + release, worker: workspaceOnHost + "/" + release, site: Self.site)
        #expect(differences.isEmpty, "\(differences.prefix(10))", sourceLocation: sourceLocation)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: workspaceOnHost).filter { $0.hasPrefix(".fd-") }
        #expect(leftovers.isEmpty, "\(leftovers)", sourceLocation: sourceLocation)
    }

    @Test("the live release's directory removed: the next sync stages a complete copy; --full too")
    func liveReleaseRemoved() async throws {
        #expect(try await sync().exitCode == 0)
        for extra in [[], ["--full"]] {
            _ = try await SubprocessRunner().run(Command("rm", ["-rf", workspaceOnHost + "/" + Self.r1]))
            let result = try await sync(extra)
            #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
            #expect(result.standardOutput.contains("directory was missing on the worker"), "\(result.standardOutput)")
            try await expectComplete(Self.r1)
        }
    }

    @Test("a crash between the swap's two renames: the set-aside copy (the running code) comes back, never deleted")
    func interruptedSwap() async throws {
        #expect(try await sync().exitCode == 0)
        // What the swap's first rename leaves: the live copy set aside under the running generation's name.
        let live = try String(contentsOfFile: worker.onHost("/home/frappe/frappe/sites/\(Self.site)/.frappe-deployer/live"), encoding: .utf8)
        let project = try #require(live.split(separator: "\n").first { $0.hasPrefix("project=") }?.dropFirst("project=".count))
        let aside = workspaceOnHost + "/.fd-old-\(Self.r1)-\(project)"
        try FileManager.default.moveItem(atPath: workspaceOnHost + "/" + Self.r1, toPath: aside)
        let marker = aside + "/apps/frappe/only-in-the-set-aside-copy"
        try "x".write(toFile: marker, atomically: true, encoding: .utf8)
        let result = try await sync()
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
        #expect(result.standardOutput.contains("brought back from its set-aside copy"), "\(result.standardOutput)")
        try await expectComplete(Self.r1)
    }

    @Test("a release that cannot be pruned: the sync succeeds with a warning; the next staging finishes it off")
    func failedPrune() async throws {
        #expect(try await sync(["--keep-releases", "1"]).exitCode == 0)
        // A directory of root's inside r1: the worker's user cannot empty it.
        let stuck = workspaceOnHost + "/\(Self.r1)/apps/root-owned"
        try FileManager.default.createDirectory(atPath: stuck, withIntermediateDirectories: true)
        try "x".write(toFile: stuck + "/file", atomically: true, encoding: .utf8)
        _ = try await SubprocessRunner().run(Command("chown", ["-R", "root:root", stuck]))
        for (index, name) in ["release_20261203_090000", "release_20261204_090000"].enumerated() {
            try fixture.addRelease(name, seed: UInt64(10 + index))
            try fixture.activate(name)
            let result = try await sync(["--keep-releases", "1"])
            #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
            if index == 1 {
                #expect(result.standardOutput.contains("warning: could not remove \(Self.r1)"), "\(result.standardOutput)")
                #expect(result.standardOutput.contains("Permission denied"), "\(result.standardOutput)")
            }
            try await expectServices(run: name, queue: fixture.workersRedisQueue)
        }
        let releases = try FileManager.default.contentsOfDirectory(atPath: workspaceOnHost).filter { $0.hasPrefix("release_") }
        #expect(!releases.contains(Self.r1), "the half-removed release is out of the release list")
        // Once the obstacle is gone, the next staging finishes it off.
        _ = try await SubprocessRunner().run(Command("chown", ["-R", "frappe:frappe", workspaceOnHost]))
        let next = try await sync(["--full", "--keep-releases", "1"])
        #expect(next.exitCode == 0, "\(next.standardError.joined(separator: "\n"))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspaceOnHost).filter { $0.hasPrefix(".fd-prune-") }.isEmpty)
    }

    // MARK: - A full disk (11.5)

    /// Fills the worker's /home (a small tmpfs) until nothing more fits.
    static func fill(_ path: String) async throws {
        _ = try await SubprocessRunner().run(Command("dd", ["if=/dev/zero", "of=\(path)", "bs=4k"]))
    }

    @Test("the worker's disk fills up during the switch: the handover is undone, the records agree with what runs, the error says so")
    func diskFullDuringSwitch() async throws {
        worker.down()
        let small = try await TestbedWorker.up("hf\(index)", index: index, homeSize: "6m")
        defer { small.down() }
        try await small.addSite(Self.site)
        let arguments = ["remote-worker", "sync", Self.site, "--server", small.address, "--ssh-config", small.sshConfig,
                         "--benches-path", fixture.benchesPath]
        #expect(try await DeployerTool.run(arguments).exitCode == 0)
        let state = small.onHost("/home/frappe/frappe/sites/\(Self.site)/.frappe-deployer")
        let liveBefore = try String(contentsOfFile: state + "/live", encoding: .utf8)
        let filler = small.onHost("/home/frappe/filler")

        // Full before the sync: refused at the lock (3), or, if the running services' own file
        // churn freed a page for it, at the first write after (1); either way before the switch.
        try await Self.fill(filler)
        let refused = try await DeployerTool.run(arguments + ["--full"])
        #expect(refused.exitCode == 3 || refused.exitCode == 1, "\(refused.standardError)")
        #expect(refused.errors.count == 1, "\(refused.standardError)")
        let refusal = refused.errors.first ?? ""
        #expect(refusal.contains("the worker's disk is full at"), "\(refusal)")
        #expect(refusal.contains("nothing was changed") || refusal.contains("the old release still runs"), "\(refusal)")
        try FileManager.default.removeItem(atPath: filler)

        // Full from the moment the switch starts (its reserved result and log are written).
        try fixture.addRelease(Self.r2, seed: 2)
        try fixture.activate(Self.r2)
        let sync = Task { try await DeployerTool.run(arguments) }
        while !FileManager.default.fileExists(atPath: state + "/switch.pid") { try await Task.sleep(for: .milliseconds(10)) }
        try await Self.fill(filler)
        let result = try await sync.value
        try FileManager.default.removeItem(atPath: filler)
        #expect(result.exitCode == 1, "\(result.standardError)")
        let error = result.errors.first ?? ""
        #expect(error.contains("the worker's disk is full at /home/frappe/frappe/sites/\(Self.site)/.frappe-deployer"), "\(error)")
        #expect(error.contains("rolled back: \(Self.r1) is running again"), "\(error)")
        // The records are whole and still name r1's generation; r1 runs.
        #expect(try String(contentsOfFile: state + "/live", encoding: .utf8) == liveBefore)
        for record in ["releases", "verified", "lock"] {
            let text = (try? String(contentsOfFile: state + "/" + record, encoding: .utf8)) ?? "absent"
            #expect(!text.isEmpty, "\(record) is an empty file")
            #expect(!text.contains(Self.r2), "\(record): \(text)")
        }
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await small.heartbeat(site: Self.site, service: service) { $0.time > after }
            #expect(beat.release == Self.r1, "\(service) runs \(beat.release)")
        }
        #expect(try await small.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])
        // The rolled-back release is marked bad on the worker: with room again, it needs --force.
        let refusedAgain = try await DeployerTool.run(arguments)
        #expect(refusedAgain.exitCode == 1 && refusedAgain.errors.first?.contains("marked bad") == true, "\(refusedAgain.standardError)")
        let next = try await DeployerTool.run(arguments + ["--force"])
        #expect(next.exitCode == 0, "\(next.standardError)")
    }

    // MARK: - Locks (11.6)

    @Test("a sync from another PID namespace of the same host never takes a live sync's lock")
    func lockFromAnotherNamespace() async throws {
        #expect(try await sync().exitCode == 0)
        try fixture.addRelease(Self.r2, seed: 2, incompressibleMiB: 4)
        try fixture.activate(Self.r2)
        let first = try await DeployerTool.start(["remote-worker", "sync", Self.site] + connection + ["--benches-path", fixture.benchesPath, "--bwlimit", "1024"],
                                                 until: "] stage...")
        // Same user and host name; the first sync's pid is invisible from the new namespace.
        let other = try await DeployerTool.run(["remote-worker", "sync", Self.site] + connection + ["--benches-path", fixture.benchesPath],
                                               wrapper: ["/usr/bin/unshare", "--pid", "--fork", "--mount-proc"])
        #expect(other.exitCode == 3, "\(other.standardError)")
        #expect(other.errors.first?.contains("is locked by another sync") == true, "\(other.standardError)")
        let winner = try await first.value
        #expect(winner.exitCode == 0, "\(winner.standardError.joined(separator: "\n"))")
        try await expectComplete(Self.r2)
    }
}
