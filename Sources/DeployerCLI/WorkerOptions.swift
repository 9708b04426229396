import ArgumentParser
import DeployerKit
import Foundation

/// Options every remote-worker command shares: which worker, how to reach it, where config lives.
struct WorkerOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("Name of the site (or site_name in the config file).", valueName: "SITE_NAME"))
    var siteName: String?

    @Option(name: [.customLong("server"), .customShort("s")], help: "Worker server IP address or domain name.")
    var server: String?

    @Option(name: [.customLong("ssh-user"), .customShort("u")], help: "SSH user on the worker. (default: frappe)")
    var sshUser: String?

    @Option(name: [.customLong("ssh-port"), .customShort("p")], help: "SSH port of the worker. (default: 22)")
    var sshPort: Int?

    @Option(name: .customLong("benches-path"), help: "The local FM benches root. (default: ~/frappe/sites)")
    var benchesPath: String?

    @Option(name: .customLong("workspace-path"), help: "The worker's workspace. (default: /home/SSH_USER/frappe/sites/SITE/workspace)")
    var workspacePath: String?

    @Option(name: .customLong("ssh-config"), help: "An ssh_config file to use instead of ~/.ssh/config (ssh -F).")
    var sshConfig: String?

    @Option(name: .customLong("ssh-option"), help: ArgumentHelp("An extra ssh -o option, Key=Value (repeatable).", valueName: "option"))
    var sshOptions: [String] = []

    @Flag(name: .customLong("accept-new-host-key"), help: "Trust the worker's host key if none is known yet (never a changed one).")
    var acceptNewHostKey = false

    @Option(name: .customLong("config-path"), help: "Path to the TOML configuration file.")
    var configPath: String?

    @Flag(name: [.customLong("verbose"), .customShort("v")], help: "Show rsync's itemized changes, worker output, and failing commands.")
    var verbose = false

    /// These options as the top layer of settings.
    var overrides: SyncOverrides {
        var flags = SyncOverrides()
        flags.siteName = siteName
        flags.benchesPath = benchesPath
        flags.worker = RemoteWorkerConfig(
            server: server, sshUser: sshUser, sshPort: sshPort, workspacePath: workspacePath, sshConfig: sshConfig,
            sshOptions: sshOptions)
        flags.acceptNewHostKey = acceptNewHostKey
        flags.verbose = verbose
        return flags
    }

    /// Layers flags (with `adjust` applied) over environment, file and defaults, and checks them.
    func settings(environment: [String: String], adjust: (inout SyncOverrides) -> Void = { _ in }) throws -> SyncSettings {
        var flags = overrides
        adjust(&flags)
        let file = try SettingsResolver.configPath(flag: configPath, environment: environment).map { path throws(ConfigError) in
            try ConfigFile.load(path: path)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let settings = try SettingsResolver.resolve(flags: flags, environment: environment, file: file, home: home)
        for warning in settings.warnings {
            FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
        }
        if let config = settings.workers.first?.sshConfig, !FileManager.default.isReadableFile(atPath: config) {
            throw ConfigError.invalidValue(source: "ssh_config", keyPath: "ssh_config", problem: "\(config) is not a readable file")
        }
        return settings
    }
}

/// Options of the commands that switch a worker's services (sync, rollback).
struct SwitchOptions: ParsableArguments {
    @Option(name: .customLong("lock-wait"), help: ArgumentHelp("Seconds to wait for another sync's lock on the worker. (default: 0)", valueName: "seconds"))
    var lockWait: Int?

    @Option(name: .customLong("stop-timeout"), help: ArgumentHelp("Seconds each service gets to stop. (default: bench's own: long-worker 1560, other workers 360)", valueName: "seconds"))
    var stopTimeout: Int?

    func apply(to flags: inout SyncOverrides) {
        flags.worker.lockWait = lockWait
        flags.worker.stopTimeout = stopTimeout
    }
}

extension WorkerOptions {
    /// Runs one remote-worker operation: `prepare` reads and checks everything local (a failure is
    /// bad input, exit 2, before any connection), then `operation` runs with SIGINT/SIGTERM handled
    /// and its summary printed on standard output (a failure exits 1, 3 or 130).
    func perform<Input>(_ prepare: ([String: String]) throws -> Input,
                        _ operation: (SyncRunner, Input) async throws -> SyncReport) async {
        let input: Input
        do {
            input = try prepare(ProcessInfo.processInfo.environment)
        } catch {
            Diagnostics.fail(error, exitCode: Diagnostics.badInput, verbose: verbose)
        }
        let interrupt = InterruptSignal()
        interrupt.install()
        let runner = SyncRunner(runner: SubprocessRunner(), reporter: TerminalReporter(verbose: verbose),
                                verbose: verbose, interrupt: interrupt)
        do {
            print(try await operation(runner, input).summary())
        } catch {
            Diagnostics.fail(error, exitCode: Diagnostics.failed, verbose: verbose)
        }
    }
}

/// How the CLI reports a failure: one line (with the worker's state when the failure left it
/// changed), and with --verbose the failing command and its stderr beneath it.
enum Diagnostics {
    /// Exit statuses, documented in README.
    static let failed: Int32 = 1
    static let badInput: Int32 = 2
    static let locked: Int32 = 3
    static let interrupted: Int32 = 130

    static func fail(_ error: any Error, exitCode: Int32, verbose: Bool) -> Never {
        var message = "error: " + ((error as? LocalizedError)?.errorDescription ?? String(describing: error))
        var lines: [String] = []
        var code = exitCode
        if let failure = error as? SyncFailure {
            switch failure.underlying {
            case SyncError.locked: code = locked
            case SyncError.interrupted: code = interrupted
            case SyncError.rolledBack, SyncError.noPreviousRelease: break
            default:
                if failure.workerState != "unchanged" {
                    message += " (worker: \(failure.workerState))"
                }
            }
            if verbose { lines = failure.details.map { "  \($0)" } }
        }
        FileHandle.standardError.write(Data(([message] + lines).joined(separator: "\n").utf8 + [10]))
        exit(code)
    }
}
