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
}
