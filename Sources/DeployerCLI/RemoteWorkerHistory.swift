import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker history SITE_NAME`.
    public struct History: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "history",
            abstract: "Show each worker's record of syncs and rollbacks, and the releases marked bad there.",
            discussion: """
                Read-only. Each worker appends one entry per sync or rollback when it releases its \
                lock: when, by whom, from which release to which, the result (ok, rolled-back, \
                switch-failed, refused, interrupted, failed), how long it took, and how long no \
                worker service of that worker took jobs (0 for a handover). A release whose switch \
                failed its checks and was rolled back is marked bad on that worker until a sync \
                with --force takes it live. The history lives in SITE_DIR/.frappe-deployer/history \
                on each worker (past 1 MiB it moves to history.1).

                Exit status: 0 every worker read; 1 a worker could not be reached or read; 2 bad \
                input; 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var fleet: FleetOptions

        @Option(name: .customLong("limit"), help: ArgumentHelp("Entries per worker, newest kept. (default: 50)", valueName: "count"))
        var limit = 50

        @Flag(name: .customLong("json"), help: "Print the history as JSON on standard output.")
        var json = false

        public init() {}

        public func validate() throws {
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        }

        public func run() async throws {
            let settings: SyncSettings
            do {
                settings = try options.settings(environment: ProcessInfo.processInfo.environment) { fleet.apply(to: &$0) }
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.badInput, json: json ? ("history", options.siteName) : nil)
            }
            let runner = SyncRunner(runner: SubprocessRunner(), reporter: SilentReporter(), verbose: false)
            let history = await runner.history(site: settings.siteName, workers: settings.workers, limit: limit, parallel: settings.parallel)
            Output.standardOutput(json ? JSONOutput.render(history) : history.text())
            if !history.allRead { throw ExitCode(Diagnostics.failed) }
        }
    }
}
