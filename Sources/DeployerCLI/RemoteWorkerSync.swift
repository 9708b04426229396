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
                give it its own copy of the worker configs (*.workers.json) and link them, so a release \
                keeps the configuration it went live with (a rollback too); then hand over: the new release's \
                `schedule` and docker-compose.workers.yml services start as a new generation beside \
                the running ones, are checked, take jobs, and only then are the old ones told to stop: \
                they finish their running jobs on their own release (each within its --stop-timeout), \
                detached on the worker. If the new ones fail their checks, they go and the old ones \
                serve on. Old releases beyond --keep-releases are removed.

                --strategy in-place keeps the spec's order (stop, transfer over the live release, link, \
                start) for workers without room for two releases. Web, socketio and Redis never start \
                on a worker.

                Settings come from flags, then FRAPPE_DEPLOYER_* environment variables, then the TOML \
                file given by --config-path, then defaults.

                Several workers (--server repeated, or [[remote_worker]] entries) sync in parallel, \
                --parallel at a time; a failed worker does not stop the others unless --fail-fast. \
                After the start, the worker services must stay up for --settle seconds without \
                restarting, and the worker must reach redis_queue and db_host of its configs (TCP); \
                otherwise the old release serves on. --dry-run prints each \
                worker's plan and what would change, changing nothing.

                A worker whose live release is the main server's current one, verified when it went \
                live and still identical (rsync's quick check), keeps it: only deployment data and \
                includes go over, and services restart only if those changed or a service is not \
                running. --full stages and switches anyway.

                Each worker keeps a history of its syncs and rollbacks (remote-worker history). A \
                release whose switch on a worker failed its checks and was rolled back is marked bad \
                there: syncing it to that worker again is refused (before anything changes) unless \
                --force.

                Exit status: 0 synced (every worker); 1 a sync failed (each failed worker is named \
                with what it runs now); 2 bad input or configuration (nothing on any worker was \
                changed); 3 every failure was a busy worker (its lock held, or a generation still draining); 130 interrupted \
                (workers are left on complete releases); 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var switching: SwitchOptions
        @OptionGroup var fleet: FleetOptions
        @OptionGroup var rollout: RolloutOptions
        @OptionGroup var hooks: HookOptions
        @OptionGroup var output: OutputOptions

        @Flag(name: .customLong("dry-run"), help: "Print each worker's plan and what would change (files and bytes); change nothing.")
        var dryRun = false

        @OptionGroup var transfer: TransferOptions

        public init() {}

        public func run() async throws {
            let make = { (environment: [String: String]) in
                try transfer.makePlans(options: options, environment: environment) { flags in
                    switching.apply(to: &flags)
                    fleet.apply(to: &flags)
                    rollout.apply(to: &flags)
                    hooks.apply(to: &flags)
                }
            }
            if dryRun {
                try await options.perform(command: "dry-run", output: output, make) { runner, plan in
                    SyncReport(dryRun: try await runner.dryRun(plan))
                }
            } else {
                try await options.perform(command: "sync", output: output, make) { runner, plan in
                    try await runner.run(plan)
                }
            }
        }
    }

    /// `frappe-deployer remote-worker rollback SITE_NAME`.
    public struct Rollback: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "rollback",
            abstract: "Switch a worker back to its previous release.",
            discussion: """
                Takes the worker's lock and hands back to the release that was live before the last \
                switch (or else the newest older release on the worker), the same way a sync hands \
                over: the previous release starts beside the running one, is checked, and the running \
                one drains. Nothing is transferred.
                Exit status as for sync.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var switching: SwitchOptions
        @OptionGroup var fleet: FleetOptions
        @OptionGroup var rollout: RolloutOptions
        @OptionGroup var hooks: HookOptions
        @OptionGroup var output: OutputOptions

        public init() {}

        public func run() async throws {
            try await options.perform(command: "rollback", output: output, { environment in
                let settings = try options.settings(environment: environment) { flags in
                    switching.apply(to: &flags)
                    fleet.apply(to: &flags)
                    rollout.apply(to: &flags)
                    hooks.apply(to: &flags)
                }
                return (settings, settings.workers.map { (site: settings.siteName, worker: $0) })
            }) { runner, input in
                try await runner.rollback(site: input.site, worker: input.worker)
            }
        }
    }
}

/// What a sync transfers and how it switches (sync and watch).
struct TransferOptions: ParsableArguments {
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

    @Option(name: .customLong("settle"), help: ArgumentHelp("Seconds worker services must stay up, without restarting, after a start. (default: 2)", valueName: "seconds"))
    var settle: Int?

    @Option(name: .customLong("compress"), help: ArgumentHelp("rsync compression: auto (zstd, else lz4, where both sides have it; never zlib), zstd, lz4 or off. (default: auto)", valueName: "choice"))
    var compress: String?

    @Option(name: .customLong("streams"), help: ArgumentHelp("Parallel rsync streams for a staged copy of a release to a worker: 1, or 2 (env/ beside the rest). (default: 2)", valueName: "count"))
    var streams: Int?

    @Flag(name: .customLong("full"), help: "Stage and switch even when the worker's live release is this one, verified and unchanged.")
    var full = false

    @Flag(name: .customLong("force"), help: "Sync the release even on workers where it is marked bad (its last switch there failed its checks and was rolled back).")
    var force = false

    @Flag(name: .customLong("no-scheduler"), help: "Do not run `schedule` on the workers of this run (a site wants exactly one scheduler).")
    var noScheduler = false

    /// Everything local, checked before any connection: config, site, workspace, includes.
    func makePlans(options: WorkerOptions, environment: [String: String], adjust: (inout SyncOverrides) -> Void) throws -> (SyncSettings, [SyncPlan]) {
        let settings = try options.settings(environment: environment) { flags in
            adjust(&flags)
            flags.worker.settle = settle
            flags.worker.streams = streams
            flags.worker.compress = compress
            if noScheduler { flags.worker.scheduler = false }
            flags.worker.includeDirs = includeDirs
            flags.worker.includeFiles = includeFiles
            flags.worker.excludePatterns = excludes
            flags.worker.strategy = strategy
            flags.worker.keepReleases = keepReleases
            flags.worker.bandwidthLimit = bandwidthLimit
        }
        let workspace = try LocalWorkspace.locate(benchesPath: settings.benchesPath, siteName: settings.siteName)
        try workspace.checkWorkerConfigs()
        let dependencies = try workspace.workerDependencies()
        let plans = try settings.workers.map { worker in
            for dir in worker.includeDirs { try workspace.checkInclude(dir, directory: true) }
            for file in worker.includeFiles { try workspace.checkInclude(file, directory: false) }
            return SyncPlan.make(workspace: workspace, worker: worker, dependencies: dependencies, full: full, force: force)
        }
        return (settings, plans)
    }
}
