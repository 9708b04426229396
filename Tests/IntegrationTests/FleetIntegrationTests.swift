import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// Several workers per site, dry-run, status and health checks against real testbed workers.
@Suite("fleets, dry-run, status and health checks against testbed workers", .serialized,
       .enabled(if: TestbedWorker.unavailableReason == nil, Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class FleetIntegrationTests {
    static let site = "erp.example.test"
    nonisolated(unsafe) static var nextIndex = 90
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let first: TestbedWorker
    let second: TestbedWorker
    /// An address in the testbed's range with no host behind it: a worker that cannot be reached.
    let missing: String

    init() async throws {
        Self.nextIndex += 3
        let index = Self.nextIndex
        directory = try TemporaryDirectory(prefix: "fd-fleet")
        // Both workers reach the main side of the first worker's link (testbed routes 10.213/16 there).
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site,
                                              release: "release_20261120_101500", mainAddress: "10.213.\(index).1")
        first = try await TestbedWorker.up("fl\(index)", index: index)
        second = try await TestbedWorker.up("fl\(index + 1)", index: index + 1)
        try await first.addSite(Self.site)
        try await second.addSite(Self.site)
        missing = "10.213.\(index + 2).2"
        // One ssh_config that reaches both (their keys and host keys differ).
        let config = directory.path + "/ssh_config"
        let known = directory.path + "/known_hosts"
        let keys = try String(contentsOfFile: first.knownHosts, encoding: .utf8) + String(contentsOfFile: second.knownHosts, encoding: .utf8)
        try keys.write(toFile: known, atomically: true, encoding: .utf8)
        try """
            Host \(first.address)
                IdentityFile \(first.sshConfig.replacingOccurrences(of: "ssh_config", with: "client_key"))
            Host \(second.address)
                IdentityFile \(second.sshConfig.replacingOccurrences(of: "ssh_config", with: "client_key"))
            Host *
                IdentitiesOnly yes
                UserKnownHostsFile \(known)
                GlobalKnownHostsFile /dev/null
                ConnectTimeout 5

            """.write(toFile: config, atomically: true, encoding: .utf8)
    }

    deinit {
        first.down()
        second.down()
    }

    var sshConfig: String { directory.path + "/ssh_config" }

    func tool(_ command: String, _ servers: [String], _ extra: [String] = []) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", command, Self.site, "--ssh-config", sshConfig, "--benches-path", fixture.benchesPath]
            + servers.flatMap { ["--server", $0] } + extra)
    }

    func json(_ result: ToolResult) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
        return try #require(object as? [String: Any], "stdout: \(result.standardOutput)")
    }

    func workers(_ document: [String: Any]) throws -> [[String: Any]] {
        try #require(document["workers"] as? [[String: Any]])
    }

    @Test("parallel sync: reachable workers succeed, the unreachable one is named; status shows drift going to zero and a second scheduler")
    func parallelSyncAndStatus() async throws {
        // Before any sync: both reachable, nothing live, no last sync.
        let before = try await tool("status", [first.address, second.address], ["--json"])
        #expect(before.exitCode == 0, "\(before.standardError)")
        for worker in try workers(try json(before)) {
            #expect(worker["reachable"] as? Bool == true)
            #expect(worker["live_release"] == nil)
            #expect(worker["last_sync"] == nil)
        }

        let sync = try await tool("sync", [first.address, missing, second.address], ["--json", "--parallel", "3"])
        #expect(sync.exitCode == 1)
        let report = try json(sync)
        #expect(report["ok"] as? Bool == false)
        let results = try workers(report)
        #expect(results.map { $0["server"] as? String } == [first.address, missing, second.address])
        #expect(results.map { $0["ok"] as? Bool } == [true, false, true])
        #expect(results[0]["release"] as? String == "release_20261120_101500")
        #expect((results[0]["services"] as? [String]) == ["long-worker", "schedule", "short-worker"])
        #expect((results[1]["error"] as? String)?.contains(missing) == true, "\(results[1])")
        #expect(sync.errors.contains { $0.hasPrefix("error: [\(missing)]") }, "\(sync.standardError)")
        for worker in [first, second] {
            let beat = try await worker.heartbeat(site: Self.site, service: "short-worker")
            #expect(beat.release == "release_20261120_101500")
        }

        // After: both on the main server's release, no drift, last sync recorded; two schedulers warned.
        let after = try await tool("status", [first.address, second.address], ["--json"])
        let status = try json(after)
        for worker in try workers(status) {
            #expect(worker["matches_main"] as? Bool == true)
            #expect(worker["drift"] as? Int == 0)
            let last = try #require(worker["last_sync"] as? [String: Any])
            #expect(last["release"] as? String == "release_20261120_101500")
            #expect((last["by"] as? String)?.contains(" pid ") == true)
            #expect((worker["services"] as? [String: String])?["schedule"] == "running")
            #expect(worker["lock"] == nil)
        }
        #expect(status["schedulers"] as? Int == 2)
        #expect((status["warnings"] as? [String])?.first?.contains("schedule runs on 2 hosts") == true)

        // A new release on the main server: drift appears; a sync brings it to zero.
        try fixture.addRelease("release_20261121_090000", seed: 7)
        try fixture.activate("release_20261121_090000")
        let drifted = try workers(try json(try await tool("status", [first.address], ["--json"])))[0]
        #expect(drifted["matches_main"] as? Bool == false)
        #expect((drifted["drift"] as? Int ?? 0) > 0)
        let text = try await tool("status", [first.address])
        #expect(text.standardOutput.contains("drift:"), "\(text.standardOutput)")

        // A fleet from the config file: the second worker gives up its scheduler.
        let config = directory.path + "/fleet.toml"
        try """
            site_name = "\(Self.site)"
            parallel = 2

            [[remote_worker]]
            server = "\(first.address)"

            [[remote_worker]]
            server = "\(second.address)"
            scheduler = false

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let fleet = try await DeployerTool.run(["remote-worker", "sync", "--config-path", config, "--ssh-config", sshConfig,
                                                "--benches-path", fixture.benchesPath])
        #expect(fleet.exitCode == 0, "\(fleet.standardError)")
        #expect(fleet.standardOutput.contains("sync: 2 of 2 workers done"))
        #expect(try await second.runningServices(site: Self.site) == ["long-worker", "short-worker"])
        let settled = try json(try await tool("status", [first.address, second.address], ["--json"]))
        for worker in try workers(settled) {
            #expect(worker["drift"] as? Int == 0)
            #expect(worker["live_release"] as? String == "release_20261121_090000")
        }
        #expect(settled["schedulers"] as? Int == 1)
        #expect((settled["warnings"] as? [String])?.isEmpty == true)

        // --quiet: nothing but errors, and there are none.
        let quiet = try await tool("sync", [first.address], ["--quiet"])
        #expect(quiet.exitCode == 0)
        #expect(quiet.standardOutput.isEmpty && quiet.standardError.isEmpty, "\(quiet.standardOutput) \(quiet.standardError)")
    }

    @Test("dry-run prints the plan and itemized changes and leaves every worker byte-identical")
    func dryRun() async throws {
        #expect(try await tool("sync", [first.address]).exitCode == 0)
        try fixture.addRelease("release_20261121_090000", seed: 9)
        try fixture.activate("release_20261121_090000")
        let trees = [first.homeOnHost, second.homeOnHost]
        let before = trees.map { TreeSnapshot($0, contents: true) }

        let plan = try await tool("sync", [first.address, second.address], ["--dry-run"])
        #expect(plan.exitCode == 0, "\(plan.standardError)")
        let out = plan.standardOutput
        #expect(out.contains("dry run: sync \(Self.site) to frappe@\(first.address): release_20261121_090000 (live: release_20261120_101500); nothing was changed"), "\(out)")
        #expect(out.contains("dry run: sync \(Self.site) to frappe@\(second.address): release_20261121_090000 (first sync)"))
        #expect(out.contains("services to stop:  long-worker, schedule, short-worker"))
        #expect(out.contains("services to start: schedule, long-worker, short-worker"))

        let document = try json(try await tool("sync", [first.address, second.address], ["--dry-run", "--json"]))
        let results = try workers(document)
        let firstTrees = try #require((results[0]["dry_run"] as? [String: Any])?["trees"] as? [[String: Any]])
        let release = try #require(firstTrees.first { $0["name"] as? String == "release" })
        #expect((release["added"] as? Int ?? 0) + (release["changed"] as? Int ?? 0) > 0)
        let secondTrees = try #require((results[1]["dry_run"] as? [String: Any])?["trees"] as? [[String: Any]])
        let fresh = try #require(secondTrees.first { $0["name"] as? String == "release" })
        #expect((fresh["added"] as? Int ?? 0) > 10 && fresh["deleted"] as? Int == 0)
        #expect((fresh["added_bytes"] as? Int ?? 0) > 0)

        let after = trees.map { TreeSnapshot($0, contents: true) }
        let changed = Set(after[0].entries.keys).union(before[0].entries.keys).filter { after[0].entries[$0] != before[0].entries[$0] }
        #expect(after[0] == before[0], "dry run changed the first worker: \(changed.sorted())")
        #expect(after[1] == before[1], "dry run changed the second worker")
        #expect(try await first.heartbeat(site: Self.site, service: "short-worker").release == "release_20261120_101500")
    }

    @Test("a queue the worker cannot reach fails the health check; the staged sync goes back to the running release")
    func healthCheckFails() async throws {
        #expect(try await tool("sync", [first.address]).exitCode == 0)
        // The worker config now names a port nothing listens on.
        let config = fixture.deploymentData + "/sites/common_site_config.workers.json"
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: ":11000", with: ":11999").write(toFile: config, atomically: true, encoding: .utf8)
        try fixture.addRelease("release_20261121_090000", seed: 11)
        try fixture.activate("release_20261121_090000")

        let result = try await tool("sync", [first.address])
        #expect(result.exitCode == 1)
        let joined = result.standardError.joined(separator: "\n")
        #expect(joined.contains("redis_queue \(fixture.mainAddress):11999 is not reachable from the worker"), "\(joined)")
        #expect(joined.contains("release_20261120_101500"), "names the release running again: \(joined)")
        let beat = try await first.heartbeat(site: Self.site, service: "short-worker")
        #expect(beat.release == "release_20261120_101500")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: first.onHost(first.workspace(Self.site)) + "/frappe-bench") == "release_20261120_101500")
    }
}
