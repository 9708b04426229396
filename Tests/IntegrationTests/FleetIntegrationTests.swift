import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
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
        try TestbedWorker.sharedSSHConfig([first, second], at: directory.path + "/ssh_config")
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

    // MARK: - History, bad releases and hooks (issue 15)

    func liveRelease(_ worker: TestbedWorker) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: worker.onHost(worker.workspace(Self.site)) + "/frappe-bench")
    }

    @Test("a release rolled back on a worker is marked bad there: history says so, a resync is refused before anything changes, --force takes it live; hooks run with what they are about")
    func historyBadReleaseAndHooks() async throws {
        let log = directory.path + "/hooks.log"
        let hooks = ["--before-sync", "echo \"before $FD_WORKER $FD_RELEASE from=$FD_PREVIOUS_RELEASE\" >> \(log)",
                     "--after-switch", "echo \"after $FD_RELEASE\" >> \(log)",
                     "--on-failure", "echo \"failure $FD_RESULT $FD_RELEASE\" >> \(log); echo told the pager"]
        func logged() -> [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        let r1 = "release_20261120_101500", r2 = "release_20261121_090000", r3 = "release_20261122_080000"
        let first = self.first
        #expect(try await tool("sync", [first.address], hooks).exitCode == 0)
        #expect(logged() == ["before \(first.address) \(r1) from=", "after \(r1)"])

        // r2 goes with a worker config whose queue nothing serves: rolled back, marked bad.
        let config = fixture.deploymentData + "/sites/common_site_config.workers.json"
        let good = try String(contentsOfFile: config, encoding: .utf8)
        try good.replacingOccurrences(of: ":11000", with: ":11999").write(toFile: config, atomically: true, encoding: .utf8)
        try fixture.addRelease(r2, seed: 11)
        try fixture.activate(r2)
        let failed = try await tool("sync", [first.address], hooks)
        #expect(failed.exitCode == 1)
        #expect(failed.standardError.contains { $0.hasPrefix("  hook on_failure: ok") }, "\(failed.standardError)")
        #expect(failed.standardError.contains { $0.hasSuffix("| told the pager") }, "the hook's output is in the report")
        #expect(Array(logged().suffix(2)) == ["before \(first.address) \(r2) from=\(r1)", "failure rolled-back \(r2)"])
        #expect(liveRelease(first) == r1)

        let history = try json(try await tool("history", [first.address], ["--json"]))
        let entries = try #require(try workers(history).first?["entries"] as? [[String: Any]])
        #expect(entries.compactMap { $0["result"] as? String } == ["ok", "rolled-back"])
        #expect(entries.compactMap { $0["to"] as? String } == [r1, r2])
        #expect(entries.last?["from"] as? String == r1)
        #expect((entries.last?["error"] as? String)?.contains("11999") == true)
        #expect(try workers(history).first?["bad_releases"] as? [String] == [r2])
        let table = try await tool("history", [first.address])
        #expect(table.exitCode == 0 && table.standardOutput.contains("rolled-back") && table.standardOutput.contains("marked bad: \(r2)"), "\(table.standardOutput)")
        #expect(try await tool("status", [first.address]).standardOutput.contains("marked bad: \(r2)"))

        // With the config fixed, r2 is still refused on this worker, before anything changes.
        try good.write(toFile: config, atomically: true, encoding: .utf8)
        let workspace = first.onHost(first.workspace(Self.site))
        let before = try FileManager.default.contentsOfDirectory(atPath: workspace).sorted()
        let refused = try await tool("sync", [first.address], hooks)
        #expect(refused.exitCode == 1)
        #expect(refused.errors.first?.contains("\(r2) is marked bad on \(first.address)") == true, "\(refused.errors)")
        #expect(refused.errors.first?.contains("--force") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace).sorted() == before, "nothing staged")
        #expect(logged().last == "failure refused \(r2)", "before_sync never ran; on_failure did")
        let dryRun = try await tool("sync", [first.address], ["--dry-run"])
        #expect(dryRun.standardOutput.contains("refuse: \(r2) is marked bad"), "\(dryRun.standardOutput)")

        // --force takes it live and clears the mark.
        let forced = try await tool("sync", [first.address], ["--force"])
        #expect(forced.exitCode == 0, "\(forced.standardError)")
        #expect(liveRelease(first) == r2)
        let cleared = try json(try await tool("history", [first.address], ["--json"]))
        #expect(try workers(cleared).first?["bad_releases"] as? [String] == [])

        // A failing before_sync stops the sync before anything on the worker changes.
        try fixture.addRelease(r3, seed: 12)
        try fixture.activate(r3)
        let stopped = try await tool("sync", [first.address], ["--before-sync", "echo no deploys on Friday; exit 4"])
        #expect(stopped.exitCode == 1)
        #expect(stopped.errors.first?.contains("before_sync hook exit 4") == true, "\(stopped.errors)")
        #expect(stopped.errors.first?.contains("no deploys on Friday; nothing on the worker was changed") == true, "\(stopped.errors)")
        #expect(liveRelease(first) == r2)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: workspace)).contains { $0.contains(r3) })
        let last = try #require(try workers(try json(try await tool("history", [first.address], ["--json"]))).first?["entries"] as? [[String: Any]])
        #expect(last.last?["result"] as? String == "refused")
        #expect(try workers(try json(try await tool("history", [first.address], ["--json"]))).first?["bad_releases"] as? [String] == [],
                "a refusal marks nothing")
    }

    @Test("--canary: a failed canary starts no other worker; a good one goes first, the batch after it and batch_wait")
    func canaryAndBatches() async throws {
        let failed = try await tool("sync", [missing, second.address], ["--canary", "1"])
        #expect(failed.exitCode == 1)
        #expect(failed.standardOutput.contains("not started (canary failed on \(missing)"), "\(failed.standardOutput)")
        #expect(liveRelease(second) == nil, "the second worker was never touched")

        let result = try await tool("sync", [first.address, second.address], ["--canary", "1", "--batch-wait", "2"])
        #expect(result.exitCode == 0, "\(result.standardError)")
        #expect(liveRelease(first) == "release_20261120_101500" && liveRelease(second) == "release_20261120_101500")
        let lines = result.standardError
        let canaryDone = try #require(lines.firstIndex { $0.hasPrefix("[\(first.address)] switch done") }, "\(lines)")
        let waiting = try #require(lines.firstIndex { $0.hasPrefix("[\(second.address)] waiting: the rest starts when canary is done and 2 s have passed") })
        let secondStarts = try #require(lines.firstIndex { $0.hasPrefix("[\(second.address)] connect") })
        #expect(canaryDone < waiting && waiting < secondStarts, "\(lines)")
    }

    @Test("watch: syncs at start, follows the link once it stays put (one sync for a burst of moves), retries a worker that is down, stops on SIGTERM", .timeLimit(.minutes(5)))
    func watchFollowsTheLink() async throws {
        final class Seen: Sendable {
            let state = Mutex<(lines: [String], pid: pid_t)>(([], 0))
            func withLock<T>(_ body: (inout (lines: [String], pid: pid_t)) -> T) -> T { state.withLock { body(&$0) } }
        }
        let seen = Seen()
        func saw(_ text: String) -> Bool { seen.withLock { $0.lines.contains { $0.contains(text) } } }
        func wait(for what: String, _ condition: () -> Bool) async throws {
            let end = ContinuousClock.now + .seconds(90)
            while !condition() {
                guard ContinuousClock.now < end else { Issue.record("never saw \(what): \(seen.withLock { $0.lines })"); throw CancellationError() }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let r1 = "release_20261120_101500", r2 = "release_20261121_090000", r3 = "release_20261122_080000"
        let arguments = ["remote-worker", "watch", Self.site, "--ssh-config", sshConfig, "--benches-path", fixture.benchesPath,
                         "--server", first.address, "--server", missing, "--debounce", "2", "--retry-max", "5"]
        let watch = Task {
            try await DeployerTool.run(arguments, onError: { line, pid in seen.withLock { $0.lines.append(line); $0.pid = pid } })
        }
        try await wait(for: "the first sync") { saw("[\(first.address)] \(r1) runs") }
        #expect(saw("watch: following \(fixture.workspace)/frappe-bench (inotify)"), "\(seen.withLock { $0.lines })")
        try await wait(for: "a retry of the missing worker") { saw("[\(missing)]") && saw("trying again in 5 s") }

        // A deploy that moves the link twice in a row: one sync, to where it ends.
        try fixture.addRelease(r2, seed: 21)
        try fixture.addRelease(r3, seed: 22)
        try fixture.activate(r2)
        try await Task.sleep(for: .milliseconds(500))
        try fixture.activate(r3)
        try await wait(for: "the sync of \(r3)") { saw("[\(first.address)] \(r3) runs") }
        #expect(liveRelease(first) == r3)
        let history = try json(try await tool("history", [first.address], ["--json"]))
        let entries = try #require(try workers(history).first?["entries"] as? [[String: Any]])
        #expect(entries.compactMap { $0["to"] as? String } == [r1, r3], "\(r2) was never synced: the link did not stay on it")
        // The worker that is down is still retried, never more often than every 5 s.
        #expect(seen.withLock { $0.lines.filter { $0.hasPrefix("[\(missing)]") }.count } >= 2)

        let stopAt = ContinuousClock.now
        kill(seen.withLock { $0.pid }, SIGTERM)
        let result = try await watch.value
        #expect(ContinuousClock.now - stopAt < .seconds(15))
        #expect(result.exitCode == 0, "\(result.standardError)")
        #expect(result.standardError.last == "watch: stopped (SIGTERM)")
    }
}
