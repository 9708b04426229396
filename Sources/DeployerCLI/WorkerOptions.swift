import ArgumentParser
import DeployerKit
import Foundation

/// Options every remote-worker command shares: which worker, how to reach it, where config lives.
struct WorkerOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("Name of the site (or site_name in the config file).", valueName: "SITE_NAME"))
    var siteName: String?

    @Option(name: [.customLong("server"), .customShort("s")], help: "Worker server IP address or domain name (repeatable: several workers).")
    var servers: [String] = []

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

    @Option(name: .customLong("restricted-key"), help: ArgumentHelp("Connect with this least-privilege key (see remote-worker authorize).", valueName: "path"))
    var restrictedKey: String?

    @Option(name: .customLong("phase-timeout"), help: ArgumentHelp("Seconds a step on the worker may take before the tool gives up on it (services' stop waits are added where they stop or start). (default: 600)", valueName: "seconds"))
    var phaseTimeout: Int?

    @Option(name: .customLong("config-path"), help: "Path to the TOML configuration file.")
    var configPath: String?

    @Flag(name: [.customLong("verbose"), .customShort("v")], help: "Show rsync's itemized changes, worker output, and failing commands.")
    var verbose = false

    /// These options as the top layer of settings.
    var overrides: SyncOverrides {
        var flags = SyncOverrides()
        flags.siteName = siteName
        flags.benchesPath = benchesPath
        flags.servers = servers
        flags.worker = RemoteWorkerConfig(
            sshUser: sshUser, sshPort: sshPort, workspacePath: workspacePath, sshConfig: sshConfig,
            sshOptions: sshOptions, phaseTimeout: phaseTimeout, restrictedKey: restrictedKey)
        flags.acceptNewHostKey = acceptNewHostKey
        return flags
    }

    /// Layers flags (with `adjust` applied) over environment, file and defaults, and checks them.
    /// `keysExist`: a `restricted_key` must name a readable file (not so for `authorize`, which makes it).
    func settings(environment: [String: String], keysExist: Bool = true, adjust: (inout SyncOverrides) -> Void = { _ in }) throws -> SyncSettings {
        var flags = overrides
        adjust(&flags)
        let file = try SettingsResolver.configPath(flag: configPath, environment: environment).map { path throws(ConfigError) in
            try ConfigFile.load(path: path)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let settings = try SettingsResolver.resolve(flags: flags, environment: environment, file: file, home: home)
        for warning in settings.warnings {
            Output.standardError("warning: \(warning)")
        }
        if let config = settings.workers.first?.sshConfig, let problem = InputRules.sshConfigProblem(config) {
            throw ConfigError.invalidValue(source: "ssh_config", keyPath: "ssh_config", problem: problem)
        }
        for key in Set(settings.workers.compactMap(\.restrictedKey)) where keysExist && !FileManager.default.isReadableFile(atPath: key) {
            throw ConfigError.invalidValue(source: "restricted_key", keyPath: "restricted_key",
                                           problem: "\(key) is not a readable file: give the private key `remote-worker authorize` made")
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

/// Several workers at once: how many in parallel, and what a failure does to the rest.
struct FleetOptions: ParsableArguments {
    @Option(name: .customLong("parallel"), help: ArgumentHelp("Workers synced at once. (default: 4)", valueName: "count"))
    var parallel: Int?

    @Flag(name: .customLong("fail-fast"), help: "After a worker fails, start no others (by default the others go on).")
    var failFast = false

    func apply(to flags: inout SyncOverrides) {
        flags.parallel = parallel
        flags.failFast = failFast
    }
}

/// Canary workers and batches (sync and rollback).
struct RolloutOptions: ParsableArguments {
    @Option(name: .customLong("canary"), help: ArgumentHelp("The first N workers go first and must succeed (their switch's checks pass) before any other starts.", valueName: "count"))
    var canary: Int?

    @Option(name: .customLong("batch-size"), help: ArgumentHelp("After the canaries, workers go in batches of this many; a failed batch stops the ones after it.", valueName: "count"))
    var batchSize: Int?

    @Option(name: .customLong("batch-wait"), help: ArgumentHelp("Seconds to wait between the canaries and each batch. (default: 0)", valueName: "seconds"))
    var batchWait: Int?

    func apply(to flags: inout SyncOverrides) {
        flags.fleet.canary = canary
        flags.fleet.batchSize = batchSize
        flags.fleet.batchWait = batchWait
    }
}

/// Hooks run on this server around each worker's sync (sync and rollback).
struct HookOptions: ParsableArguments {
    @Option(name: .customLong("before-sync"), help: ArgumentHelp("A command run before each worker's sync changes anything (after its check and lock); failing stops that worker's sync.", valueName: "command"))
    var beforeSync: String?

    @Option(name: .customLong("after-switch"), help: ArgumentHelp("A command run after each worker switched to the release.", valueName: "command"))
    var afterSwitch: String?

    @Option(name: .customLong("on-failure"), help: ArgumentHelp("A command run when a worker's sync or rollback fails.", valueName: "command"))
    var onFailure: String?

    @Option(name: .customLong("hook-timeout"), help: ArgumentHelp("Seconds a hook may run before it is stopped. (default: 300)", valueName: "seconds"))
    var hookTimeout: Int?

    @Flag(name: .customLong("no-hooks"), help: "Run no hooks (neither the config file's nor these options').")
    var noHooks = false

    func apply(to flags: inout SyncOverrides) {
        flags.fleet.beforeSync = beforeSync
        flags.fleet.afterSwitch = afterSwitch
        flags.fleet.onFailure = onFailure
        flags.fleet.hookTimeout = hookTimeout
        flags.noHooks = noHooks
    }
}

/// How results are shown: for people (default), for programs (--json), or not at all (--quiet).
struct OutputOptions: ParsableArguments {
    @Flag(name: .customLong("json"), help: "Print a machine-readable report on standard output (progress stays on standard error).")
    var json = false

    @Flag(name: [.customLong("quiet"), .customShort("q")], help: "Print nothing but errors; the exit status tells the result.")
    var quiet = false

    func validate() throws {
        if json && quiet { throw ValidationError("--json and --quiet exclude each other: --json already keeps standard output for the report") }
    }

    /// Plain lines when standard error is not a terminal (logs, CI) or with --verbose; a live
    /// display per worker on a terminal; nothing with --quiet.
    func reporter(hosts: [String], verbose: Bool) -> any SyncReporting {
        if quiet { return SilentReporter() }
        if !verbose && isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb" {
            return LiveReporter(hosts: hosts)
        }
        return TerminalReporter(verbose: verbose)
    }
}

extension WorkerOptions {
    /// Runs one remote-worker operation on every worker: `prepare` reads and checks everything
    /// local and returns one input per worker (a failure is bad input, exit 2, before any
    /// connection); then `operation` runs per worker, `parallel` at a time, with SIGINT/SIGTERM
    /// handled; the results are printed, and a non-zero status is thrown as `ExitCode`.
    func perform<Input: Sendable>(command: String, output: OutputOptions,
                                  _ prepare: ([String: String]) throws -> (SyncSettings, [Input]),
                                  _ operation: @escaping @Sendable (SyncRunner, Input) async throws -> SyncReport) async throws {
        let settings: SyncSettings
        let inputs: [Input]
        do {
            (settings, inputs) = try prepare(ProcessInfo.processInfo.environment)
        } catch {
            throw Diagnostics.report(error, exitCode: Diagnostics.badInput, json: output.json ? (command, siteName) : nil)
        }
        let interrupt = InterruptSignal()
        interrupt.install()
        let reporter = output.reporter(hosts: settings.workers.map(\.server), verbose: verbose)
        let runner = SyncRunner(runner: SubprocessRunner(), reporter: reporter, verbose: verbose, interrupt: interrupt, hooks: settings.hooks)
        let outcomes = await FleetRunner(parallel: settings.parallel, failFast: settings.failFast, rollout: settings.rollout)
            .run(settings.workers, interrupt: interrupt, reporter: reporter, canaryCheck: { [settings] index, report in
                await runner.canaryCheck(site: settings.siteName, worker: settings.workers[index], services: report.runningServices)
            }) { index in try await operation(runner, inputs[index]) }
        reporter.finish()
        let code = Diagnostics.finish(command: command, site: settings.siteName, outcomes: outcomes, output: output, verbose: verbose)
        if code != 0 { throw ExitCode(code) }
    }
}

/// How the CLI reports a failure: one line (with the worker's state when the failure left it
/// changed), and with --verbose the failing command and its stderr beneath it.
enum Diagnostics {
    /// Prints a run's results (summaries on standard output, one error line per failed worker on
    /// standard error, or the JSON report) and returns the run's exit status.
    static func finish(command: String, site: String, outcomes: [WorkerOutcome], output: OutputOptions, verbose: Bool) -> Int32 {
        let several = outcomes.count > 1
        for outcome in outcomes where !outcome.succeeded {
            var lines = ["error: " + (several ? "[\(outcome.worker.server)] " : "") + (outcome.problem ?? "failed")]
            if verbose, let failure = outcome.error as? SyncFailure { lines += failure.details.map { "  \($0)" } }
            if let failure = outcome.error as? SyncFailure { lines += failure.hooks.flatMap(\.lines).map { "  \($0)" } }
            Output.standardError(lines.joined(separator: "\n"))
        }
        if output.json {
            Output.standardOutput(JSONOutput.render(JSONRunReport(command: command, site: site, outcomes: outcomes)))
        } else if !output.quiet {
            let reports = outcomes.compactMap(\.report)
            Output.standardOutput(reports.map { $0.summary() }.joined(separator: "\n\n"))
            if several {
                let failed = outcomes.filter { !$0.succeeded }.map(\.worker.server)
                Output.standardOutput("\n\(command): \(outcomes.count - failed.count) of \(outcomes.count) workers done"
                      + (failed.isEmpty ? "" : "; failed: \(failed.joined(separator: ", "))"))
                if !failed.isEmpty {
                    let width = outcomes.map(\.worker.server.count).max() ?? 0
                    for outcome in outcomes {
                        Output.standardOutput("  \(outcome.worker.server.padding(toLength: width, withPad: " ", startingAt: 0))  \(outcome.runsNow)")
                    }
                }
            }
        }
        return FleetRunner.exitCode(outcomes)
    }

    /// Exit statuses, documented in README.
    static let failed: Int32 = 1
    static let badInput: Int32 = 2

    /// A failure before or outside any worker's run (bad input, enable): prints one line and
    /// returns the exit status to throw. With `json` (the command and site of a `--json` run),
    /// standard output gets the one JSON document too.
    static func report(_ error: any Error, exitCode: Int32, json: (command: String, site: String?)? = nil) -> ExitCode {
        let message = error.userMessage
        Output.standardError("error: " + message)
        if let json {
            Output.standardOutput(JSONOutput.render(JSONRunReport(command: json.command, site: json.site, exitCode: exitCode, error: message)))
        }
        return ExitCode(exitCode)
    }
}
