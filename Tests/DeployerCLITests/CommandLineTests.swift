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
        ])
        #expect(sync.siteName == "my-site")
        #expect(sync.server == "192.168.1.100")
        #expect(sync.sshUser == "erp")
        #expect(sync.sshPort == 2222)
        #expect(sync.includeDirs == ["custom_apps", "scripts"])
        #expect(sync.includeFiles == ["special_config.json", "w.env"])
        #expect(sync.configPath == "w.toml")
        #expect(sync.verbose)
        #expect(sync.benchesPath == "/srv/benches")
        #expect(sync.workspacePath == "/srv/ws")
        #expect(sync.acceptNewHostKey)
        #expect(sync.excludes == ["*.iso"])
    }

    @Test("the full path through the root command parses to sync")
    func rootPath() throws {
        let command = try FrappeDeployer.parseAsRoot(["remote-worker", "sync", "a.test", "--server", "h"])
        #expect(command is RemoteWorker.Sync)
    }

    @Test("a non-numeric port is a usage error")
    func badPort() {
        #expect(throws: (any Error).self) { try RemoteWorker.Sync.parse(["a.test", "-p", "ssh"]) }
    }

    @Test("help names every option; the root has --version", arguments: [
        "--server", "-s,", "--ssh-user", "-u,", "--ssh-port", "-p,", "--include-dir", "-d,", "--include-file", "-f,",
        "--config-path", "--verbose", "-v,", "--benches-path", "--accept-new-host-key", "default: frappe", "default: 22",
    ])
    func help(option: String) {
        #expect(RemoteWorker.Sync.helpMessage().contains(option))
    }

    @Test("--version prints the version")
    func version() {
        #expect(FrappeDeployer.configuration.version == FrappeDeployer.version)
        #expect(FrappeDeployer.helpMessage().contains("--version"))
        #expect(FrappeDeployer.helpMessage().contains("remote-worker"))
        #expect(RemoteWorker.helpMessage().contains("sync"))
    }

    @Test("flags become the top layer of settings")
    func flagsToSettings() throws {
        let sync = try RemoteWorker.Sync.parse(["a.test", "-s", "h", "-u", "erp", "-p", "2200"])
        // No workspace exists here, so planning fails at the workspace, after settings were read.
        #expect(throws: WorkspaceError.benchesMissing(path: "/nonexistent/benches")) {
            try sync.makePlan(environment: ["HOME": "/nonexistent", "FRAPPE_DEPLOYER_BENCHES_PATH": "/nonexistent/benches"])
        }
    }
}
