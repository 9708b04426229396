import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// `frappe-deployer remote-worker sync` run as a user runs it, against real worker hosts: real
/// sshd, rsync, Docker Engine and Compose v2 in network namespaces (scripts/testbed.sh).
@Suite("remote-worker sync against testbed workers", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class SyncIntegrationTests {
    static let site = "erp.example.test"
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker
    nonisolated(unsafe) static var nextIndex = 20

    init() async throws {
        Self.nextIndex += 1
        directory = try TemporaryDirectory(prefix: "fd-it")
        // The main server's side of the veth pair is 10.213.N.1: what enable would advertise.
        let index = Self.nextIndex
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site,
                                              release: "release_20261120_101500", mainAddress: "10.213.\(index).1")
        worker = try await TestbedWorker.up("it\(index)", index: index)
        try await worker.addSite(Self.site)
    }

    deinit { worker.down() }

    var workspaceOnHost: String { worker.onHost(worker.workspace(Self.site)) }
    var siteDirOnHost: String { worker.onHost("/home/frappe/frappe/sites/\(Self.site)") }

    func sync(_ extra: [String] = [], site: String = site) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", "sync", site, "--server", worker.address, "--ssh-config", worker.sshConfig,
                                    "--benches-path", fixture.benchesPath] + extra)
    }

    func expectSuccess(_ output: ToolResult, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(output.exitCode == 0, "stderr: \(output.standardError.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    func exists(_ relative: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: workspaceOnHost + "/" + relative)) != nil
    }

    func write(_ relative: String, _ text: String, under root: String) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// The frappe user owns what the worker holds; files the tests plant there must be its too.
    func chownToFrappe(_ path: String) async throws {
        _ = try await SubprocessRunner().run(Command("chown", ["-R", "frappe:frappe", path]))
    }

    // MARK: - The tests

    @Test("first sync to an empty worker: release live, worker configs linked, only schedule and workers run")
    func firstSync() async throws {
        let output = try await sync()
        expectSuccess(output)
        #expect(output.standardOutput.contains("release_20261120_101500 is live (first sync)"))
        #expect(output.standardOutput.contains("services running: long-worker, schedule, short-worker"))

        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: workspaceOnHost + "/frappe-bench") == "release_20261120_101500")
        let sites = workspaceOnHost + "/release_20261120_101500/sites"
        // The release's config links point at its own copies of the worker configs.
        #expect(try fm.destinationOfSymbolicLink(atPath: sites + "/common_site_config.json") == "common_site_config.workers.json")
        #expect(try fm.destinationOfSymbolicLink(atPath: sites + "/\(Self.site)/site_config.json") == "site_config.workers.json")
        #expect(fm.contentsEqual(atPath: sites + "/common_site_config.workers.json",
                                 andPath: workspaceOnHost + "/deployment-data/sites/common_site_config.workers.json"))
        for required in ["deployment-data/sites/\(Self.site)/private/files", "deployment-data/sites/\(Self.site)/public/files", "frappe-bench/config/pids"] {
            #expect(exists(required), "missing \(required)")
        }

        // What the services really run: the synced release, with the worker's queue and database.
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await worker.heartbeat(site: Self.site, service: service)
            #expect(beat.release == "release_20261120_101500")
            #expect(beat.redisQueue == fixture.workersRedisQueue)
            #expect(beat.dbHost == fixture.mainAddress)
        }
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])

        // The release's files arrived complete and identical.
        let sample = "release_20261120_101500/apps/frappe/frappe/__init__.py"
        #expect(fm.contentsEqual(atPath: fixture.workspace + "/" + sample, andPath: workspaceOnHost + "/" + sample))
        #expect(TreeSnapshot(fixture.workspace + "/release_20261120_101500/env").entries.keys.sorted()
                == TreeSnapshot(workspaceOnHost + "/release_20261120_101500/env").entries.keys.sorted())
    }

    @Test("resync after a new release: workers restart on the new code; the old release stays as it was")
    func resyncNewRelease() async throws {
        expectSuccess(try await sync())
        try fixture.addRelease("release_20261121_090000", profile: .small, seed: 7)
        try fixture.activate("release_20261121_090000")
        let output = try await sync()
        expectSuccess(output)
        #expect(output.standardOutput.contains("release_20261121_090000 is live (was release_20261120_101500)"))
        #expect(output.standardOutput.contains("  release env/ "), "a copy on a base goes as two streams: \(output.standardOutput)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: workspaceOnHost + "/frappe-bench") == "release_20261121_090000")
        for service in ["schedule", "short-worker", "long-worker"] {
            let beat = try await worker.heartbeat(site: Self.site, service: service) { $0.release == "release_20261121_090000" }
            #expect(beat.redisQueue == fixture.workersRedisQueue)
        }
        // Every file of the new release matches the main server's.
        let local = TreeSnapshot(fixture.workspace + "/release_20261121_090000/apps")
        let remote = TreeSnapshot(workspaceOnHost + "/release_20261121_090000/apps")
        let expected = local.entries.keys.filter { !$0.contains(".git") && !$0.contains("node_modules") && !$0.contains("__pycache__") && !$0.hasSuffix(".pyc") && !$0.contains(".cache") && !$0.hasSuffix(".log") }
        #expect(Set(remote.entries.keys) == Set(expected))
        for path in expected where local.entries[path]?.hasPrefix("NSFileTypeRegular") == true {
            #expect(FileManager.default.contentsEqual(atPath: fixture.workspace + "/release_20261121_090000/apps/" + path,
                                                      andPath: workspaceOnHost + "/release_20261121_090000/apps/" + path), "\(path)")
        }
        // What did not change is a hard link of the old release's file, in both streams (env/ and
        // the rest); what changed is a file of its own.
        func inode(_ release: String, _ path: String) throws -> Int? {
            try FileManager.default.attributesOfItem(atPath: "\(workspaceOnHost)/\(release)/\(path)")[.systemFileNumber] as? Int
        }
        for path in ["env/bin/bench", "apps/erpnext/erpnext/__init__.py", "sites/apps.txt"] {
            #expect(try inode("release_20261121_090000", path) == inode("release_20261120_101500", path), "\(path) was not linked to the old release's")
        }
        #expect(try inode("release_20261121_090000", "apps/frappe/frappe/__init__.py") != inode("release_20261120_101500", "apps/frappe/frappe/__init__.py"))
        // A second run with nothing new transfers no file, keeps the verified copy and leaves the
        // services running (same containers).
        let containers = try await worker.ssh("docker ps -q --no-trunc | sort")
        let again = try await sync()
        expectSuccess(again)
        #expect(again.standardOutput.contains("release_20261121_090000 is live (unchanged: the verified copy and its running services were kept)"), "\(again.standardOutput)")
        #expect(again.standardOutput.contains("transferred      0 files"))
        #expect(again.standardOutput.contains("compare release"))
        #expect(!again.standardOutput.contains("switch "))
        #expect(try await worker.ssh("docker ps -q --no-trunc | sort").standardOutput == containers.standardOutput)

        // Changed deployment-data goes over but restarts nothing, nor does a file the worker wrote
        // there that the sync removes: services do not read them at start (a changed worker config
        // stages a fresh copy instead: HardeningIntegrationTests).
        let config = fixture.deploymentData + "/config/supervisor.conf"
        try (try String(contentsOfFile: config, encoding: .utf8) + "; changed\n").write(toFile: config, atomically: true, encoding: .utf8)
        try write("config/worker-wrote-this.json", "{}", under: workspaceOnHost + "/deployment-data")
        try await chownToFrappe(workspaceOnHost + "/deployment-data/config")
        let dataOnly = try await sync()
        expectSuccess(dataOnly)
        #expect(dataOnly.standardOutput.contains("(unchanged: the verified copy and its running services were kept)"), "\(dataOnly.standardOutput)")
        #expect(dataOnly.standardOutput.contains("deployment-data  1 files updated, 1 deleted"), "\(dataOnly.standardOutput)")
        #expect(try await worker.ssh("docker ps -q --no-trunc | sort").standardOutput == containers.standardOutput)

        // A changed include (code or config the services read at start) restarts them on the same release.
        try write("custom_apps/hook.py", "changed = True\n", under: fixture.workspace)
        let restarted = try await sync(["--include-dir", "custom_apps"])
        expectSuccess(restarted)
        #expect(restarted.standardOutput.contains("(unchanged release kept; services restarted: includes changed, or not exactly the worker services ran)"), "\(restarted.standardOutput)")
        #expect(restarted.standardOutput.contains("restart services"))

        // A file changed on the worker breaks the match: a fresh copy is staged and switched in.
        let tampered = workspaceOnHost + "/release_20261121_090000/apps/frappe/fdtb-service.sh"
        try (try String(contentsOfFile: tampered, encoding: .utf8) + "# edited on the worker\n").write(toFile: tampered, atomically: false, encoding: .utf8)
        let repaired = try await sync()
        expectSuccess(repaired)
        #expect(repaired.standardOutput.contains("(resynced)"), "\(repaired.standardOutput)")
        #expect(FileManager.default.contentsEqual(atPath: fixture.workspace + "/release_20261121_090000/apps/frappe/fdtb-service.sh", andPath: tampered))

        // --full stages and switches even when nothing changed.
        let full = try await sync(["--full"])
        expectSuccess(full)
        #expect(full.standardOutput.contains("(resynced)"))
    }

    @Test("include dir and file: synced under the workspace, deletions inside the dir follow, nothing beside them is touched")
    func includes() async throws {
        try write("custom_apps/tool/run.py", "print('v1')\n", under: fixture.workspace)
        try write("custom_apps/tool/old.py", "old\n", under: fixture.workspace)
        try write("conf/worker.env", "QUEUE=short\n", under: fixture.workspace)
        try write("custom_apps/.git/HEAD", "ref\n", under: fixture.workspace)
        expectSuccess(try await sync(["--include-dir", "custom_apps", "-f", "conf/worker.env"]))
        #expect(exists("custom_apps/tool/run.py") && exists("custom_apps/tool/old.py") && exists("conf/worker.env"))
        #expect(!exists("custom_apps/.git"))

        // The worker's own file beside the included one must survive.
        try write("conf/local-only.env", "mine\n", under: workspaceOnHost)
        try await chownToFrappe(workspaceOnHost + "/conf")
        try FileManager.default.removeItem(atPath: fixture.workspace + "/custom_apps/tool/old.py")
        expectSuccess(try await sync(["--include-dir", "custom_apps", "-f", "conf/worker.env"]))
        #expect(!exists("custom_apps/tool/old.py"))
        #expect(exists("conf/local-only.env"))
        #expect(try String(contentsOfFile: workspaceOnHost + "/conf/worker.env", encoding: .utf8) == "QUEUE=short\n")
    }

    @Test("excluded files are neither transferred nor deleted on the worker")
    func excludes() async throws {
        expectSuccess(try await sync())
        let data = workspaceOnHost + "/deployment-data"
        let own = ["sites/\(Self.site)/public/files/worker-upload.png", "sites/\(Self.site)/private/backups/worker-backup.sql.gz",
                   "logs/worker.log", "logs/worker.log.1", "config/pids/worker.pid", "sites/\(Self.site)/locks/job-on-worker.lock"]
        for path in own { try write(path, "worker's own\n", under: data) }
        try await chownToFrappe(data)
        // A lock a job on the main server holds, and operator patterns written in rsync's rule
        // syntax: none may send the main server's files or delete the worker's own.
        try write("sites/\(Self.site)/locks/job-on-main.lock", "main's own\n", under: fixture.deploymentData)
        expectSuccess(try await sync(["--exclude", "!", "--exclude", "+ /sites/*/private/"]))
        for path in own { #expect(FileManager.default.fileExists(atPath: data + "/" + path), "deleted \(path)") }
        for excluded in ["deployment-data/sites/\(Self.site)/public/files/upload-photo.jpg",
                         "deployment-data/sites/\(Self.site)/private/files/contract.pdf",
                         "deployment-data/sites/\(Self.site)/private/backups/20261120_000000-database.sql.gz",
                         "deployment-data/logs/web.log", "deployment-data/logs/web.log.1", "deployment-data/config/pids/web.pid",
                         "deployment-data/sites/\(Self.site)/locks/job-on-main.lock",
                         "release_20261120_101500/apps/frappe/.git", "release_20261120_101500/apps/frappe/node_modules",
                         "release_20261120_101500/apps/frappe/frappe/__pycache__", "release_20261120_101500/apps/frappe/frappe/stray.pyc"] {
            #expect(!exists(excluded), "transferred \(excluded)")
        }
    }

    @Test("web and Redis services a worker happened to run are stopped; only schedule and workers run after")
    func onlyWorkerServices() async throws {
        expectSuccess(try await sync())
        let site = "/home/frappe/frappe/sites/\(Self.site)"
        let started = try await worker.ssh("cd \(site) && docker compose -f docker-compose.yml -f docker-compose.workers.yml up -d frappe nginx redis-queue 2>&1")
        #expect(started.exitCode == 0, "\(started.standardOutput)")
        #expect(try await worker.runningServices(site: Self.site).contains("frappe"))
        expectSuccess(try await sync())
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])
    }

    @Test("a bad site name is refused with one line before the worker is contacted", arguments: [
        "../etc", "a;touch /tmp/x", "my site", "$(id)", "a/b",
    ])
    func badSiteName(name: String) async throws {
        expectSuccess(try await sync())
        let before = TreeSnapshot(siteDirOnHost)
        let output = try await sync(site: name)
        #expect(output.exitCode == 2)
        #expect(output.standardError.count == 1)
        #expect(output.standardError.first?.hasPrefix("error: ") == true)
        #expect(output.standardError.first?.contains("is not valid") == true)
        let after = TreeSnapshot(siteDirOnHost)
        let changed = Set(before.entries.keys).union(after.entries.keys).filter { before.entries[$0] != after.entries[$0] }
        #expect(changed.isEmpty, "changed: \(changed.sorted().map { "\($0): \(before.entries[$0] ?? "-") -> \(after.entries[$0] ?? "-")" })")
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])
    }

    @Test("an unknown host key is refused with how to trust it; --accept-new-host-key trusts it on first use")
    func unknownHostKey() async throws {
        // The same client key, but no known host keys at all.
        let config = directory.path + "/ssh_config_unknown"
        let knownHosts = directory.path + "/known_hosts_empty"
        try Data().write(to: URL(fileURLWithPath: knownHosts))
        let original = try String(contentsOfFile: worker.sshConfig, encoding: .utf8)
        try original.replacingOccurrences(of: worker.knownHosts, with: knownHosts).write(toFile: config, atomically: true, encoding: .utf8)
        let before = TreeSnapshot(siteDirOnHost)

        let refused = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address, "--ssh-config", config,
                                                  "--benches-path", fixture.benchesPath])
        #expect(refused.exitCode == 1)
        let message = refused.errors.first ?? ""
        #expect(message.contains("host key of \(worker.address) is not known"))
        #expect(message.contains("--accept-new-host-key"))
        #expect(TreeSnapshot(siteDirOnHost) == before)
        #expect(try String(contentsOfFile: knownHosts, encoding: .utf8).isEmpty)

        let trusted = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address, "--ssh-config", config,
                                                  "--benches-path", fixture.benchesPath, "--accept-new-host-key"])
        expectSuccess(trusted)
        #expect(try String(contentsOfFile: knownHosts, encoding: .utf8).contains("ssh-ed25519"))
    }

    @Test("a changed host key is refused even with --accept-new-host-key")
    func changedHostKey() async throws {
        let config = directory.path + "/ssh_config_changed"
        let knownHosts = directory.path + "/known_hosts_wrong"
        // A valid key that is not the worker's.
        let keygen = try await SubprocessRunner().run(Command("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory.path + "/other"]))
        #expect(keygen.exitCode == 0)
        let otherKey = try String(contentsOfFile: directory.path + "/other.pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "\(worker.address) \(otherKey)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let original = try String(contentsOfFile: worker.sshConfig, encoding: .utf8)
        try original.replacingOccurrences(of: worker.knownHosts, with: knownHosts).write(toFile: config, atomically: true, encoding: .utf8)
        let output = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address, "--ssh-config", config,
                                                 "--benches-path", fixture.benchesPath, "--accept-new-host-key"])
        #expect(output.exitCode == 1)
        #expect(output.errors.first?.hasPrefix("error: host key of \(worker.address) has CHANGED") == true)
        #expect(!exists("frappe-bench"))
    }

    @Test("a missing compose file on the worker is refused before anything changes")
    func missingComposeFile() async throws {
        expectSuccess(try await sync())
        try FileManager.default.removeItem(atPath: siteDirOnHost + "/docker-compose.workers.yml")
        let before = TreeSnapshot(siteDirOnHost)
        let output = try await sync()
        #expect(output.exitCode == 1)
        #expect(output.errors.count == 1)
        #expect(output.errors.first?.hasPrefix("error: check worker failed on \(worker.address): ") == true)
        #expect(output.errors.first?.contains("docker-compose.workers.yml is missing") == true)
        let after = TreeSnapshot(siteDirOnHost)
        let changed = Set(before.entries.keys).union(after.entries.keys).filter { before.entries[$0] != after.entries[$0] }
        #expect(changed.isEmpty, "changed: \(changed.sorted().map { "\($0): \(before.entries[$0] ?? "-") -> \(after.entries[$0] ?? "-")" })")
        #expect(try await worker.runningServices(site: Self.site) == ["long-worker", "schedule", "short-worker"])
    }

    @Test("a TOML config file drives the sync; the environment overrides it")
    func configFile() async throws {
        try write("custom_apps/a.py", "a\n", under: fixture.workspace)
        let config = directory.path + "/worker.toml"
        try """
            site_name = "\(Self.site)"
            benches_path = "\(fixture.benchesPath)"

            [remote_worker]
            server = "10.255.255.1"
            ssh_config = "\(worker.sshConfig)"
            include_dirs = ["custom_apps"]
            exclude_patterns = ["--exclude=*.iso"]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        try write("custom_apps/big.iso", "iso\n", under: fixture.workspace)
        let output = try await DeployerTool.run(["remote-worker", "sync", "--config-path", config],
                                                environment: ["FRAPPE_DEPLOYER_SERVER": worker.address])
        expectSuccess(output)
        #expect(exists("custom_apps/a.py"))
        #expect(!exists("custom_apps/big.iso"))

        try "[remote_worker]\nssh_port = \"22\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--config-path", config])
        #expect(bad.exitCode == 2)
        #expect(bad.standardError == ["error: \(config): at `remote_worker.ssh_port`: expected an integer, found a string"])
    }

    @Test("--verbose shows rsync's itemized changes per tree; without it, none")
    func verbose() async throws {
        let quiet = try await sync()
        expectSuccess(quiet)
        #expect(!quiet.standardError.contains { $0.contains("| <f") })
        try fixture.addRelease("release_20261122_000000", profile: .small, seed: 9)
        try fixture.activate("release_20261122_000000")
        let loud = try await sync(["--verbose"])
        expectSuccess(loud)
        #expect(loud.standardError.contains { $0.hasPrefix("[\(worker.address)] release | <f") && $0.contains("apps/frappe/fdtb-service.sh") })
        // Progress and itemized changes go to stderr; stdout holds only the summary.
        #expect(!loud.standardOutput.contains("<f"))
        #expect(loud.standardOutput.hasPrefix("synced \(Self.site) to frappe@\(worker.address)"))
    }
}
