import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker status SITE_NAME`.
    public struct Status: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show each worker's state: reachable, live release, drift, services, last sync, lock.",
            discussion: """
                Read-only: nothing on a worker changes. Per worker: whether it is reachable; its live \
                release and whether it is the main server's current one; drift (files of the release \
                and deployment data that differ from the main server's, by size and time); each \
                worker service and its state; the last sync (when, how long, by whom); who holds the \
                lock. Warns when more than one scheduler runs for the site (main server included).

                Exit status: 0 every worker reachable; 1 a worker could not be reached or read; 2 bad \
                input; 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var fleet: FleetOptions

        @Flag(name: .customLong("json"), help: "Print the status as JSON on standard output.")
        var json = false

        public init() {}

        public func run() async throws {
            let settings: SyncSettings
            let plans: [SyncPlan]
            do {
                settings = try options.settings(environment: ProcessInfo.processInfo.environment) { fleet.apply(to: &$0) }
                let workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
                plans = settings.workers.map { SyncPlan.make(workspace: workspace, worker: $0) }
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.badInput, json: json ? ("status", options.siteName) : nil)
            }
            let runner = SyncRunner(runner: SubprocessRunner(), reporter: SilentReporter(), verbose: false)
            guard let report = await runner.status(plans, parallel: settings.parallel) else { return }
            Output.standardOutput(json ? JSONOutput.render(report) : report.text())
            if !report.allRead { throw ExitCode(Diagnostics.failed) }
        }
    }
}
