import ArgumentParser
import DeployerKit
import Foundation

extension RemoteWorker {
    /// `frappe-deployer remote-worker watch SITE_NAME`.
    public struct Watch: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "watch",
            abstract: "Follow the site's frappe-bench link on the main server and sync every worker when it moves.",
            discussion: """
                Runs until SIGINT or SIGTERM (a switch under way finishes first). At start, and each \
                time the site's workspace/frappe-bench link moves to another release and then stays \
                put for --debounce seconds (a deploy's several steps cause one sync), every configured \
                worker is synced to it, as `sync` would (same options, hooks, canary and batches). \
                Each worker goes on its own: one that fails is tried again after 5 s, doubling up to \
                --retry-max; a release that failed its checks on a worker (rolled back, marked bad) \
                is not tried there again until the link moves. One round of syncs runs at a time. \
                The link is followed with inotify where the kernel offers it, else read every --poll \
                seconds. One line per event goes to standard error (journald-friendly); --verbose \
                adds every step. The config file is read again for each round; its [watch] table \
                (debounce, poll, retry_max, poll_only; the options win) is read at start.

                Exit status: 0 stopped by SIGINT/SIGTERM; 2 bad input at start; 64 usage.
                """
        )

        @OptionGroup var options: WorkerOptions
        @OptionGroup var switching: SwitchOptions
        @OptionGroup var fleet: FleetOptions
        @OptionGroup var rollout: RolloutOptions
        @OptionGroup var hooks: HookOptions
        @OptionGroup var transfer: TransferOptions

        @Option(name: .customLong("debounce"), help: ArgumentHelp("Seconds the link must stay put before the workers are synced. (default: 5)", valueName: "seconds"))
        var debounce: Int?

        @Option(name: .customLong("poll"), help: ArgumentHelp("Seconds between reads of the link where inotify is not used. (default: 2)", valueName: "seconds"))
        var poll: Int?

        @Flag(name: .customLong("poll-only"), help: "Read the link every --poll seconds instead of using inotify (network file systems).")
        var pollOnly = false

        @Option(name: .customLong("retry-max"), help: ArgumentHelp("The longest wait before a failed worker is tried again. (default: 300)", valueName: "seconds"))
        var retryMax: Int?

        public init() {}

        public func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            let (debounce, poll, retryMax, pollOnly) = (self.debounce, self.poll, self.retryMax, self.pollOnly)
            let make = { @Sendable [options, transfer, switching, fleet, rollout, hooks] in
                try transfer.makePlans(options: options, environment: environment) { flags in
                    switching.apply(to: &flags)
                    fleet.apply(to: &flags)
                    rollout.apply(to: &flags)
                    hooks.apply(to: &flags)
                    flags.fleet.watchDebounce = debounce
                    flags.fleet.watchPoll = poll
                    flags.fleet.watchRetryMax = retryMax
                    if pollOnly { flags.fleet.watchPollOnly = true }
                }
            }
            // Everything is checked once before watching: bad input is exit 2, as for sync.
            let settings: SyncSettings
            do {
                (settings, _) = try make()
            } catch {
                throw Diagnostics.report(error, exitCode: Diagnostics.badInput)
            }
            let interrupt = InterruptSignal()
            interrupt.install()
            let watch = ReleaseWatch(
                link: "\(settings.benchesPath)/\(settings.siteName)/workspace/frappe-bench",
                options: settings.watch,
                runner: SubprocessRunner(), reporter: options.verbose ? TerminalReporter(verbose: true) : SilentReporter(), verbose: options.verbose,
                log: { Output.standardError($0) }, makePlans: make)
            _ = await watch.run(interrupt: interrupt)
        }
    }
}
