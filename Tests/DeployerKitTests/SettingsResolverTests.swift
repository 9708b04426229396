import DeployerKit
import Testing

@Suite("Layering of flags, environment, file and defaults")
struct SettingsResolverTests {
    let file = ConfigFile(path: "w.toml", siteName: "site.test", benchesPath: "/srv/benches", remoteWorkers: [
        RemoteWorkerConfig(server: "file-host", sshUser: "fileuser", sshPort: 2201, workspacePath: "/data/site.test/workspace",
                           includeDirs: ["custom_apps"], includeFiles: ["worker.env"], excludePatterns: ["--exclude=*.iso"]),
    ])

    func resolve(_ flags: SyncOverrides = SyncOverrides(), env: [String: String] = [:], file: ConfigFile? = nil) throws -> SyncSettings {
        try SettingsResolver.resolve(flags: flags, environment: env, file: file, home: "/home/op")
    }

    @Test("defaults: user frappe, port 22, FM's workspace path and benches root")
    func defaults() throws {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "10.0.0.5"
        let settings = try resolve(flags)
        #expect(settings.benchesPath == "/home/op/frappe/sites")
        let worker = try #require(settings.workers.first)
        #expect(worker.sshUser == "frappe")
        #expect(worker.sshPort == 22)
        #expect(worker.workspacePath == "/home/frappe/frappe/sites/a.test/workspace")
        #expect(worker.siteDirectory == "/home/frappe/frappe/sites/a.test")
        #expect(worker.acceptNewHostKey == false)
    }

    @Test("the default workspace follows the ssh user")
    func workspaceFollowsUser() throws {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "h"
        flags.worker.sshUser = "erp"
        #expect(try resolve(flags).workers[0].workspacePath == "/home/erp/frappe/sites/a.test/workspace")
    }

    @Test("the file fills what nothing else gives")
    func fileLayer() throws {
        let settings = try resolve(file: file)
        #expect(settings.siteName == "site.test")
        #expect(settings.benchesPath == "/srv/benches")
        #expect(settings.workers[0] == WorkerSettings(
            server: "file-host", sshUser: "fileuser", sshPort: 2201, workspacePath: "/data/site.test/workspace",
            includeDirs: ["custom_apps"], includeFiles: ["worker.env"], excludePatterns: ["*.iso"]))
    }

    @Test("environment beats the file, flags beat both")
    func precedence() throws {
        let env = ["FRAPPE_DEPLOYER_SERVER": "env-host", "FRAPPE_DEPLOYER_SSH_PORT": "2202", "FRAPPE_DEPLOYER_SSH_USER": "envuser"]
        let fromEnv = try resolve(env: env, file: file).workers[0]
        #expect(fromEnv.server == "env-host")
        #expect(fromEnv.sshPort == 2202)
        #expect(fromEnv.sshUser == "envuser")

        var flags = SyncOverrides()
        flags.worker.server = "flag-host"
        flags.worker.sshPort = 2203
        let fromFlags = try resolve(flags, env: env, file: file).workers[0]
        #expect(fromFlags.server == "flag-host")
        #expect(fromFlags.sshPort == 2203)
        #expect(fromFlags.sshUser == "envuser")
        #expect(fromFlags.workspacePath == "/data/site.test/workspace")
    }

    @Test("include and exclude lists combine across layers without repeats")
    func listsCombine() throws {
        var flags = SyncOverrides()
        flags.worker.includeDirs = ["scripts", "custom_apps/"]
        flags.worker.includeFiles = ["./special.json"]
        let env = ["FRAPPE_DEPLOYER_INCLUDE_DIRS": "backup_scripts, scripts", "FRAPPE_DEPLOYER_EXCLUDE_PATTERNS": "*.tmp"]
        let worker = try resolve(flags, env: env, file: file).workers[0]
        #expect(worker.includeDirs == ["custom_apps", "backup_scripts", "scripts"])
        #expect(worker.includeFiles == ["worker.env", "special.json"])
        #expect(worker.excludePatterns == ["*.iso", "*.tmp"])
    }

    @Test("a site name that is not a plain name is refused", arguments: [
        "../etc", "a/b", "my site", "a;rm -rf", "$(id)", "`id`", "..", ".hidden", "-rf", "a..b", "", "site\nname", "a'b",
    ])
    func badSiteName(name: String) {
        var flags = SyncOverrides()
        flags.siteName = name
        flags.worker.server = "h"
        #expect(throws: ConfigError.self) { try resolve(flags) }
    }

    @Test("servers and users that ssh could read as options or shell words are refused", arguments: [
        ("-oProxyCommand=sh", "frappe"), ("", "frappe"), ("host name", "frappe"), ("h;id", "frappe"),
        ("host", "-lroot"), ("host", "a b"), ("host", "$(id)"),
    ])
    func badServerOrUser(server: String, user: String) {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = server
        flags.worker.sshUser = user
        #expect(throws: ConfigError.self) { try resolve(flags) }
    }

    @Test("an empty server says how to give one")
    func emptyServer() {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "  "
        #expect(throws: ConfigError.missing(keyPath: "worker server", hint: "give --server, FRAPPE_DEPLOYER_SERVER, or server in [remote_worker] of the config file")) {
            try resolve(flags)
        }
    }

    @Test("include paths that leave the workspace are refused", arguments: [
        "../outside", "/etc", "custom/../../x", ".", "deployment-data", "frappe-bench/apps", "release_1/x", "a\nb",
    ])
    func badInclude(path: String) {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "h"
        flags.worker.includeDirs = [path]
        #expect(throws: ConfigError.self) { try resolve(flags) }
    }

    @Test("exclude patterns: the spec's --exclude= form is accepted, other options are not")
    func excludePatterns() throws {
        #expect(try ExcludeRules.normalizedPattern("--exclude=large_directory/**") == "large_directory/**")
        #expect(try ExcludeRules.normalizedPattern("*.iso") == "*.iso")
        #expect(throws: ExcludePatternError.self) { try ExcludeRules.normalizedPattern("--rsh=evil") }
        #expect(throws: ExcludePatternError.self) { try ExcludeRules.normalizedPattern("--exclude=") }
    }

    @Test("bad ports and workspace paths are refused with the source named")
    func badPortAndPath() {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "h"
        flags.worker.sshPort = 70000
        #expect {
            try resolve(flags)
        } throws: { error in
            (error as? ConfigError)?.errorDescription == "option --ssh-port: at `ssh_port`: 70000 is not a TCP port (1-65535)"
        }
        #expect(throws: ConfigError.self) { try resolve(env: ["FRAPPE_DEPLOYER_SSH_PORT": "ssh"], file: file) }
        flags.worker.sshPort = nil
        for path in ["relative/ws", "/", "/a/../b", "/home/x\n/ws"] {
            flags.worker.workspacePath = path
            #expect(throws: ConfigError.self) { try resolve(flags) }
        }
    }

    @Test("strategy, retention, timeouts and lock wait: defaults, layers and bad values")
    func syncBehaviour() throws {
        var flags = SyncOverrides()
        flags.siteName = "a.test"
        flags.worker.server = "h"
        let defaults = try resolve(flags).workers[0]
        #expect(defaults.strategy == .staged)
        #expect(defaults.keepReleases == 3)
        #expect(defaults.stopTimeout == nil)
        #expect(defaults.lockWait == 0)
        #expect(defaults.bandwidthLimit == nil)

        let env = ["FRAPPE_DEPLOYER_STRATEGY": "in-place", "FRAPPE_DEPLOYER_KEEP_RELEASES": "5", "FRAPPE_DEPLOYER_LOCK_WAIT": "60"]
        let fromEnv = try resolve(flags, env: env).workers[0]
        #expect(fromEnv.strategy == .inPlace)
        #expect(fromEnv.keepReleases == 5)
        #expect(fromEnv.lockWait == 60)

        flags.worker.strategy = "blue-green"
        #expect(throws: ConfigError.self) { try resolve(flags) }
        flags.worker.strategy = nil
        flags.worker.keepReleases = 0
        #expect(throws: ConfigError.self) { try resolve(flags) }
        flags.worker.keepReleases = nil
        flags.worker.sshOptions = ["StrictHostKeyChecking=no"]
        #expect(throws: ConfigError.self) { try resolve(flags) }
    }

    @Test("the argument and the file's site_name must agree")
    func siteConflict() {
        var flags = SyncOverrides()
        flags.siteName = "other.test"
        #expect(throws: ConfigError.self) { try resolve(flags, file: file) }
    }

    @Test("an unknown FRAPPE_DEPLOYER_ variable is a warning naming it")
    func unknownEnvironment() throws {
        let settings = try resolve(env: ["FRAPPE_DEPLOYER_SEVRER": "x"], file: file)
        #expect(settings.warnings.count == 1)
        #expect(settings.warnings.first?.contains("FRAPPE_DEPLOYER_SEVRER") == true)
    }

    @Test("~ expands to the home directory")
    func tilde() throws {
        var flags = SyncOverrides()
        flags.benchesPath = "~/benches/"
        flags.worker.sshConfig = "~/.ssh/worker_config"
        let settings = try resolve(flags, file: file)
        #expect(settings.benchesPath == "/home/op/benches")
        #expect(settings.workers[0].sshConfig == "/home/op/.ssh/worker_config")
    }
}
