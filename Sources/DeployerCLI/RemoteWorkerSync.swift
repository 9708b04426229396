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
                Staged (default): take the worker's lock; transfer the release into a new directory while \
                the old workers keep running, reusing the worker's previous release for unchanged files; \
                link the worker configs (*.workers.json) inside it; then switch in seconds: stop the \
                worker services, point frappe-bench at the new release, start `schedule` and the \
                services of docker-compose.workers.yml, check they run. If they do not, the switch flips \
                back and starts the previous release. Old releases beyond --keep-releases are removed.

                --strategy in-place keeps the spec's order (stop, transfer over the live release, link, \
                start) for workers without room for two releases. Web, socketio and Redis never start \
                on a worker.

                Settings come from flags, then FRAPPE_DEPLOYER_* environment variables, then the TOML \
                file given by --config-path, then defaults.

                Exit status: 0 synced; 1 the sync failed (the message says what the worker runs); 2 bad \
                input or configuration (nothing on the worker was changed); 3 another sync holds the \
                worker's lock; 130 interrupted (the worker is left on a complete release); 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var switching: SwitchOptions

        @Option(name: [.customLong("include-dir"), .customShort("d")], help: "Additional directory to sync, relative to the workspace (repeatable).")
        var includeDirs: [String] = []

        @Option(name: [.customLong("include-file"), .customShort("f")], help: "Additional file to sync, relative to the workspace (repeatable).")
        var includeFiles: [String] = []

        @Option(name: .customLong("exclude"), help: "Additional rsync exclude pattern (repeatable).")
        var excludes: [String] = []

        @Option(name: .customLong("strategy"), help: ArgumentHelp("staged or in-place. (default: staged)", valueName: "strategy"))
        var strategy: String?

        @Option(name: .customLong("keep-releases"), help: ArgumentHelp("Releases to keep on the worker. (default: 3)", valueName: "count"))
        var keepReleases: Int?

        @Option(name: .customLong("bwlimit"), help: ArgumentHelp("Bandwidth limit for rsync, in KiB/s.", valueName: "kbps"))
        var bandwidthLimit: Int?

        public init() {}

        public func run() async throws {
            await options.perform({ try makePlan(environment: $0) }) { runner, plan in try await runner.run(plan) }
        }

        /// Everything local, checked before any connection: config, site, workspace, includes.
        func makePlan(environment: [String: String]) throws -> SyncPlan {
            let settings = try options.settings(environment: environment) { flags in
                switching.apply(to: &flags)
                flags.worker.includeDirs = includeDirs
                flags.worker.includeFiles = includeFiles
                flags.worker.excludePatterns = excludes
                flags.worker.strategy = strategy
                flags.worker.keepReleases = keepReleases
                flags.worker.bandwidthLimit = bandwidthLimit
            }
            let workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
            try workspace.checkWorkerConfigs()
            let worker = settings.workers[0]
            for dir in worker.includeDirs { try workspace.checkInclude(dir, directory: true) }
            for file in worker.includeFiles { try workspace.checkInclude(file, directory: false) }
            return SyncPlan.make(workspace: workspace, worker: worker)
        }
    }

    /// `frappe-deployer remote-worker rollback SITE_NAME`.
    public struct Rollback: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "rollback",
            abstract: "Switch a worker back to its previous release.",
            discussion: """
                Takes the worker's lock and switches to the release that was live before the last \
                switch (or else the newest older release on the worker), the same way a sync switches: \
                stop, flip frappe-bench, start, check, flip back on failure. Nothing is transferred.
                Exit status as for sync.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var switching: SwitchOptions

        public init() {}

        public func run() async throws {
            await options.perform({ try options.settings(environment: $0, adjust: switching.apply) }) { runner, settings in
                try await runner.rollback(site: settings.siteName, worker: settings.workers[0])
            }
        }
    }
}
