import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker sync SITE_NAME`.
    public struct Sync: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract: "Sync the site's current release and deployment data to a worker and run only worker services there.",
            discussion: """
                Steps, in order: check the local workspace and the worker; stop the worker's services; \
                rsync the release, deployment-data and includes (in parallel, over one SSH connection); \
                link the worker configs (*.workers.json) and point frappe-bench at the release; start \
                `schedule` and the services of docker-compose.workers.yml. Web, socketio and Redis never \
                start on a worker.

                Settings come from flags, then FRAPPE_DEPLOYER_* environment variables, then the TOML \
                file given by --config-path, then defaults.

                Exit status: 0 synced; 1 the sync failed on the worker; 2 bad input or configuration \
                (nothing on the worker was changed); 64 bad command-line usage.
                """
        )

        @Argument(help: ArgumentHelp("Name of the site to sync (or site_name in the config file).", valueName: "SITE_NAME"))
        var siteName: String?

        @Option(name: [.customLong("server"), .customShort("s")], help: "Worker server IP address or domain name.")
        var server: String?

        @Option(name: [.customLong("ssh-user"), .customShort("u")], help: "SSH user on the worker. (default: frappe)")
        var sshUser: String?

        @Option(name: [.customLong("ssh-port"), .customShort("p")], help: "SSH port of the worker. (default: 22)")
        var sshPort: Int?

        @Option(name: [.customLong("include-dir"), .customShort("d")], help: "Additional directory to sync, relative to the workspace (repeatable).")
        var includeDirs: [String] = []

        @Option(name: [.customLong("include-file"), .customShort("f")], help: "Additional file to sync, relative to the workspace (repeatable).")
        var includeFiles: [String] = []

        @Option(name: .customLong("exclude"), help: "Additional rsync exclude pattern (repeatable).")
        var excludes: [String] = []

        @Option(name: .customLong("benches-path"), help: "The local FM benches root. (default: ~/frappe/sites)")
        var benchesPath: String?

        @Option(name: .customLong("workspace-path"), help: "The worker's workspace. (default: /home/SSH_USER/frappe/sites/SITE/workspace)")
        var workspacePath: String?

        @Option(name: .customLong("ssh-config"), help: "An ssh_config file to use instead of ~/.ssh/config (ssh -F).")
        var sshConfig: String?

        @Flag(name: .customLong("accept-new-host-key"), help: "Trust the worker's host key if none is known yet (never a changed one).")
        var acceptNewHostKey = false

        @Option(name: .customLong("config-path"), help: "Path to the TOML configuration file.")
        var configPath: String?

        @Flag(name: [.customLong("verbose"), .customShort("v")], help: "Show rsync's itemized changes, worker output, and failing commands.")
        var verbose = false

        public init() {}

        public func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let plan: SyncPlan
            do {
                plan = try makePlan(environment: environment)
            } catch {
                Diagnostics.fail(error, exitCode: 2, verbose: verbose)
            }
            let reporter = TerminalReporter(verbose: verbose)
            let runner = SyncRunner(runner: SubprocessRunner(), reporter: reporter, verbose: verbose)
            do {
                let report = try await runner.run(plan)
                print(report.summary())
            } catch {
                Diagnostics.fail(error, exitCode: 1, verbose: verbose)
            }
        }

        /// Everything local, checked before any connection: config, site, workspace, includes.
        func makePlan(environment: [String: String]) throws -> SyncPlan {
            var flags = SyncOverrides()
            flags.siteName = siteName
            flags.benchesPath = benchesPath
            flags.worker = RemoteWorkerConfig(
                server: server, sshUser: sshUser, sshPort: sshPort, workspacePath: workspacePath, sshConfig: sshConfig,
                includeDirs: includeDirs, includeFiles: includeFiles, excludePatterns: excludes)
            flags.acceptNewHostKey = acceptNewHostKey
            flags.verbose = verbose
            let file = try SettingsResolver.configPath(flag: configPath, environment: environment).map { path throws(ConfigError) in
                try ConfigFile.load(path: path)
            }
            let home = environment["HOME"] ?? NSHomeDirectory()
            let settings = try SettingsResolver.resolve(flags: flags, environment: environment, file: file, home: home)
            for warning in settings.warnings {
                FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
            }
            let workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
            try workspace.checkWorkerConfigs()
            let worker = settings.workers[0]
            for dir in worker.includeDirs { try workspace.checkInclude(dir, directory: true) }
            for file in worker.includeFiles { try workspace.checkInclude(file, directory: false) }
            if let config = worker.sshConfig, !FileManager.default.isReadableFile(atPath: config) {
                throw ConfigError.invalidValue(source: "ssh_config", keyPath: "ssh_config", problem: "\(config) is not a readable file")
            }
            return SyncPlan.make(workspace: workspace, worker: worker)
        }
    }
}

/// How the CLI reports a failure: one line (with the worker's state when the failure left it
/// changed), and with --verbose the failing command and its stderr beneath it.
enum Diagnostics {
    static func fail(_ error: any Error, exitCode: Int32, verbose: Bool) -> Never {
        var message = "error: " + ((error as? LocalizedError)?.errorDescription ?? String(describing: error))
        var lines: [String] = []
        if let failure = error as? SyncFailure {
            if failure.workerState != "unchanged" {
                message += " (worker left with \(failure.workerState); rerun the sync to finish)"
            }
            if verbose { lines = failure.details.map { "  \($0)" } }
        }
        FileHandle.standardError.write(Data(([message] + lines).joined(separator: "\n").utf8 + [10]))
        exit(exitCode)
    }
}
