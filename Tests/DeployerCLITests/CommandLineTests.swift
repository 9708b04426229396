import Foundation
import ArgumentParser
@testable import DeployerCLI
import DeployerKit
import Testing

@Suite("Command line parsing and help")
struct CommandLineTests {
    @Test("every option of the spec parses, short and long")
    func parsesAll() throws {
        let sync = try RemoteWorker.Sync.parse([
            "my-site", "-s", "192.168.1.100", "-u", "erp", "-p", "2222", "-d", "custom_apps", "--include-dir", "scripts",
            "-f", "special_config.json", "--include-file", "w.env", "--config-path", "w.toml", "-v",
            "--benches-path", "/srv/benches", "--workspace-path", "/srv/ws", "--accept-new-host-key", "--exclude", "*.iso",
            "--strategy", "in-place", "--keep-releases", "5", "--lock-wait", "30", "--stop-timeout", "20", "--bwlimit", "5000",
            "--ssh-option", "ServerAliveInterval=5",
        ])
        #expect(sync.options.siteName == "my-site")
        #expect(sync.options.servers == ["192.168.1.100"])
        #expect(sync.options.sshUser == "erp")
        #expect(sync.options.sshPort == 2222)
        #expect(sync.transfer.includeDirs == ["custom_apps", "scripts"])
        #expect(sync.transfer.includeFiles == ["special_config.json", "w.env"])
        #expect(sync.options.configPath == "w.toml")
        #expect(sync.options.verbose)
        #expect(sync.options.benchesPath == "/srv/benches")
        #expect(sync.options.workspacePath == "/srv/ws")
        #expect(sync.options.acceptNewHostKey)
        #expect(sync.transfer.excludes == ["*.iso"])
        #expect(sync.transfer.strategy == "in-place")
        #expect(sync.transfer.keepReleases == 5)
        #expect(sync.switching.lockWait == 30)
        #expect(sync.switching.stopTimeout == 20)
        #expect(sync.transfer.bandwidthLimit == 5000)
        #expect(sync.options.sshOptions == ["ServerAliveInterval=5"])
    }

    @Test("rollback takes the same worker options")
    func rollback() throws {
        let command = try FrappeDeployer.parseAsRoot(["remote-worker", "rollback", "a.test", "-s", "h", "--lock-wait", "5"])
        let rollback = try #require(command as? RemoteWorker.Rollback)
        #expect(rollback.options.servers == ["h"])
        #expect(rollback.switching.lockWait == 5)
        #expect(RemoteWorker.helpMessage().contains("rollback"))
    }

    @Test("the full path through the root command parses to sync")
    func rootPath() throws {
        let command = try FrappeDeployer.parseAsRoot(["remote-worker", "sync", "a.test", "--server", "h"])
        #expect(command is RemoteWorker.Sync)
    }

    @Test("fleet, output, health and dry-run options parse; --server repeats")
    func fleetOptions() throws {
        let sync = try RemoteWorker.Sync.parse([
            "a.test", "-s", "w1", "--server", "w2", "--parallel", "2", "--fail-fast", "--json", "--dry-run", "--settle", "5", "--no-scheduler",
        ])
        #expect(sync.options.servers == ["w1", "w2"])
        #expect(sync.fleet.parallel == 2 && sync.fleet.failFast)
        #expect(sync.output.json && !sync.output.quiet)
        #expect(sync.dryRun && sync.transfer.settle == 5 && sync.transfer.noScheduler)
        #expect(throws: (any Error).self) { try RemoteWorker.Sync.parse(["a.test", "-s", "w", "--json", "--quiet"]) }
        let status = try #require(try FrappeDeployer.parseAsRoot(["remote-worker", "status", "a.test", "-s", "w", "--json"]) as? RemoteWorker.Status)
        #expect(status.json)
        let enable = try #require(try FrappeDeployer.parseAsRoot(["remote-worker", "enable", "a.test", "-s", "w", "--force", "--no-restart"]) as? RemoteWorker.Enable)
        #expect(enable.force && enable.noRestart)
    }

    @Test("a non-numeric port is a usage error")
    func badPort() {
        #expect(throws: (any Error).self) { try RemoteWorker.Sync.parse(["a.test", "-p", "ssh"]) }
    }

    @Test("help names every option; the root has --version", arguments: [
        "--server", "-s,", "--ssh-user", "-u,", "--ssh-port", "-p,", "--include-dir", "-d,", "--include-file", "-f,",
        "--config-path", "--verbose", "-v,", "--benches-path", "--accept-new-host-key", "default: frappe", "default: 22",
        "--strategy", "--keep-releases", "--lock-wait", "--stop-timeout", "1560", "--bwlimit", "--ssh-option",
        "--parallel", "--fail-fast", "--json", "--quiet", "--dry-run", "--settle", "--no-scheduler",
    ])
    func help(option: String) {
        #expect(RemoteWorker.Sync.helpMessage().contains(option))
    }

    @Test("--version prints the version and the commit the build comes from, and exits successfully")
    func version() throws {
        do {
            _ = try FrappeDeployer.parseAsRoot(["--version"])
            Issue.record("--version must end the command")
        } catch {
            #expect(FrappeDeployer.exitCode(for: error) == .success)
            #expect(FrappeDeployer.message(for: error) == "\(FrappeDeployer.version) (commit \(BuildInfo.commit))")
        }
        // Built from this checkout: the commit is the one its HEAD names (the build plugin reads .git).
        let git = try #require(ProcessInfo.processInfo.environment["PWD"].map { $0 + "/.git" } ?? nil)
        if FileManager.default.fileExists(atPath: git) {
            #expect(BuildInfo.commit.count == 12 && BuildInfo.commit.allSatisfy(\.isHexDigit), "\(BuildInfo.commit)")
        }
        #expect(FrappeDeployer.version.split(separator: ".").count == 3 && FrappeDeployer.version.split(separator: ".").allSatisfy { Int($0) != nil })
        #expect(FrappeDeployer.helpMessage().contains("remote-worker"))
        #expect(RemoteWorker.helpMessage().contains("sync"))
    }

    @Test("history, watch, canary, batches and hooks parse")
    func fleetOperations() throws {
        let history = try #require(try FrappeDeployer.parseAsRoot(["remote-worker", "history", "a.test", "-s", "w", "--limit", "5", "--json"]) as? RemoteWorker.History)
        #expect(history.limit == 5 && history.json)
        #expect(throws: (any Error).self) { try FrappeDeployer.parseAsRoot(["remote-worker", "history", "a.test", "--limit", "0"]) }
        let sync = try RemoteWorker.Sync.parse(["a.test", "-s", "w1", "-s", "w2", "--canary", "1", "--batch-size", "2", "--batch-wait", "30",
                                                "--before-sync", "check", "--after-switch", "tell", "--on-failure", "page", "--hook-timeout", "9",
                                                "--force"])
        #expect(sync.rollout.canary == 1 && sync.rollout.batchSize == 2 && sync.rollout.batchWait == 30)
        #expect(sync.hooks.beforeSync == "check" && sync.hooks.afterSwitch == "tell" && sync.hooks.onFailure == "page" && sync.hooks.hookTimeout == 9)
        #expect(sync.transfer.force)
        let watch = try #require(try FrappeDeployer.parseAsRoot(["remote-worker", "watch", "a.test", "-s", "w", "--debounce", "1", "--poll", "3",
                                                                 "--poll-only", "--retry-max", "60", "--canary", "1"]) as? RemoteWorker.Watch)
        #expect(watch.debounce == 1 && watch.poll == 3 && watch.pollOnly && watch.retryMax == 60 && watch.rollout.canary == 1)
    }

    @Test("flags become the top layer of settings")
    func flagsToSettings() throws {
        let sync = try RemoteWorker.Sync.parse(["a.test", "-s", "h", "-u", "erp", "-p", "2200"])
        let settings = try sync.options.settings(environment: ["HOME": "/nonexistent", "FRAPPE_DEPLOYER_SSH_PORT": "22"])
        #expect(settings.workers.map(\.server) == ["h"])
        #expect(settings.workers.map(\.sshUser) == ["erp"])
        #expect(settings.workers.map(\.sshPort) == [2200], "the flag wins over the environment")
        #expect(settings.workers.map(\.workspacePath) == ["/home/erp/frappe/sites/a.test/workspace"])
        // No workspace exists here, so planning fails at the workspace, after settings were read.
        #expect(throws: WorkspaceError.benchesMissing(path: "/nonexistent/benches")) {
            try sync.transfer.makePlans(options: sync.options, environment: ["HOME": "/nonexistent", "FRAPPE_DEPLOYER_BENCHES_PATH": "/nonexistent/benches"]) { _ in }
        }
    }
}
