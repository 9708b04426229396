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
                Read-only: nothing on a worker changes. Per worker: whether it is reachable; its live \\
                release and whether it is the main server's current one; drift (files of the release \\
                and deployment data that differ from the main server's, by size and time); each \\
                worker service and its state; the last sync (when, how long, by whom); who holds the \\
                lock. Warns when more than one scheduler runs for the site (main server included).

                Exit status: 0 every worker reachable; 1 a worker could not be reached or read; 2 bad \\
                input; 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var fleet: FleetOptions

        @Flag(name: .customLong("json"), help: "Print the status as JSON on standard output.")
        var json = false

        public init() {}

        struct Report: Encodable {
            var site: String
            var mainRelease: String
            var mainSchedulerRunning: Bool?
            var schedulers: Int
            var warnings: [String]
            var workers: [WorkerStatus]
        }

        public func run() async throws {
            let settings: SyncSettings
            let plans: [SyncPlan]
            let workspace: LocalWorkspace
            do {
                settings = try options.settings(environment: ProcessInfo.processInfo.environment) { fleet.apply(to: &$0) }
                workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
                plans = settings.workers.map { SyncPlan.make(workspace: workspace, worker: $0) }
            } catch {
                Diagnostics.fail(error, exitCode: Diagnostics.badInput)
            }
            let runner = SyncRunner(runner: SubprocessRunner(), reporter: SilentReporter(), verbose: false)
            async let main = Self.mainRunsScheduler(workspace)
            let statuses = await FleetRunner.map(plans.count, parallel: settings.parallel) { index in
                await runner.status(plans[index])
            }
            let workers = statuses.compactMap { $0 }
            let mainScheduler = await main
            let running = (mainScheduler == true ? ["main server"] : []) + workers.filter { $0.schedulerRunning == true }.map(\.server)
            var warnings: [String] = []
            if running.count > 1 {
                warnings.append("schedule runs on \(running.count) hosts for \(settings.siteName) (\(running.joined(separator: ", "))): scheduled jobs are enqueued more than once; keep one (scheduler = false, or sync with --no-scheduler)")
            }
            let report = Report(site: settings.siteName, mainRelease: workspace.releaseName, mainSchedulerRunning: mainScheduler,
                                schedulers: running.count, warnings: warnings, workers: workers)
            if json {
                print(JSONOutput.render(report))
            } else {
                print(Self.text(report))
            }
            Foundation.exit(workers.allSatisfy { $0.reachable && $0.error == nil } ? 0 : 1)
        }

        /// Whether the main server runs `schedule` for the site (nil when Docker cannot tell).
        static func mainRunsScheduler(_ workspace: LocalWorkspace) async -> Bool? {
            let project = ComposeProject(directory: workspace.siteDirectory, file: workspace.siteDirectory + "/docker-compose.yml")
            guard let output = try? await SubprocessRunner().run(project.runningServices()), output.succeeded else { return nil }
            return output.standardOutput.split(separator: "\n").contains("schedule")
        }

        static func text(_ report: Report) -> String {
            let time = DateFormatter()
            time.locale = Locale(identifier: "en_US_POSIX")
            time.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
            var lines = ["\(report.site): main server runs \(report.mainRelease)"
                + (report.mainSchedulerRunning.map { $0 ? ", schedule running" : ", schedule not running" } ?? "")]
            for worker in report.workers {
                guard worker.reachable else {
                    lines.append("[\(worker.server)] UNREACHABLE: \(worker.error ?? "no answer")")
                    continue
                }
                var head = "[\(worker.server)] reachable; live: \(worker.liveRelease ?? "none")"
                head += worker.matchesMain ? " (matches the main server)" : " (main server: \(worker.mainRelease))"
                if let drift = worker.drift { head += drift == 0 ? "; no drift" : "; drift: \(drift) files differ" }
                lines.append(head)
                if let error = worker.error { lines.append("  error: \(error)") }
                if let trees = worker.driftByTree, worker.drift ?? 0 > 0 {
                    for tree in trees where tree.total > 0 { lines.append("  drift \(tree.summary)") }
                }
                if let services = worker.services {
                    let text = services.keys.sorted().map { "\($0) \(services[$0]!)" }.joined(separator: ", ")
                    lines.append("  services: \(text.isEmpty ? "none" : text)")
                }
                if let last = worker.lastSync {
                    var text = "  last \(last.kind ?? "sync"): \(last.release ?? "?")"
                    if let at = last.at { text += " at \(time.string(from: at))" }
                    if let by = last.by { text += " by \(by)" }
                    if let seconds = last.seconds { text += String(format: ", %.1f s", seconds) }
                    if let downtime = last.downtimeSeconds { text += String(format: " (downtime %.2f s)", downtime) }
                    lines.append(text)
                } else {
                    lines.append("  last sync: none recorded")
                }
                if let lock = worker.lock {
                    lines.append("  lock: held by \(lock.holder)" + (lock.since.map { " since \(time.string(from: $0))" } ?? "")
                        + (lock.alive ? "" : " (its sync is gone; the next sync takes it over)"))
                } else {
                    lines.append("  lock: free")
                }
            }
            lines += report.warnings.map { "warning: \($0)" }
            return lines.joined(separator: "\n")
        }
    }
}
