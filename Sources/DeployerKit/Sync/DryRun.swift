/// What a transfer would change in one tree, from rsync's itemized dry run.
public struct TreeChanges: Sendable, Equatable, Encodable {
    public var name: String
    public var added = 0
    public var changed = 0
    public var deleted = 0
    public var addedBytes: Int64 = 0
    public var changedBytes: Int64 = 0

    public init(name: String) { self.name = name }

    public var total: Int { added + changed + deleted }

    /// Reads `--out-format=%i %l %n` lines: files and links are counted, directories only when
    /// deleted (their contents are listed too); attribute-only changes of directories are not.
    public static func parse(name: String, itemized: String) -> TreeChanges {
        var changes = TreeChanges(name: name)
        for line in itemized.split(separator: "\n") {
            if line.hasPrefix("*deleting") {
                changes.deleted += 1
                continue
            }
            let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard parts.count == 3, parts[0].count == 11 else { continue }
            let flags = Array(parts[0])
            guard "<>ch.".contains(flags[0]), flags[1] == "f" || flags[1] == "L" else { continue }
            let size = Int64(parts[1]) ?? 0
            let attributes = flags[2...]
            if attributes.allSatisfy({ $0 == "+" }) {
                changes.added += 1
                changes.addedBytes += flags[1] == "f" ? size : 0
            } else if flags[0] != "." || attributes.contains(where: { $0 != "." && $0 != " " }) {
                changes.changed += 1
                changes.changedBytes += flags[1] == "f" && flags[0] != "." ? size : 0
            }
        }
        return changes
    }
}

/// What `sync --dry-run` would do on one worker; nothing on the worker was changed to learn it.
public struct DryRunReport: Sendable, Equatable, Encodable {
    public var site: String
    public var destination: String
    public var release: String
    public var liveRelease: String?
    public var strategy: SyncStrategy
    public var steps: [String]
    public var stopServices: [String]
    public var startServices: [String]
    public var trees: [TreeChanges]
}

extension SyncRunner {
    /// The plan for one worker, with what would change, without changing anything there: a
    /// read-only check (no lock), the same `ReleaseDecision` the sync would make, and rsync dry
    /// runs against the worker's live release.
    public func dryRun(_ plan: SyncPlan) async throws -> DryRunReport {
        let worker = plan.worker
        let runner = self.runner
        let digest = Task { [plan] in await ReleaseDigest.local(plan, runner: runner) }
        defer { digest.cancel() }
        let session = try await WorkerSession.open(
            worker: worker, context: self,
            report: SyncReport(site: plan.site, destination: worker.destination, release: plan.release, strategy: plan.strategy),
            note: "read-only")
        let (check, rsync, trees) = try await session.closing {
            let check = try await session.check(site: plan.site, liveDigest: plan.liveDigest)
            let rsync = try await rsyncChoices(worker, check: check)
            let live = check.releases.live
            let trees = try await session.step(.stage, detail: "dry run against \(live ?? "an empty workspace")") {
                let trees = try await session.connection.changes(plan.comparisons(live: live, rsync: rsync), checksum: true)
                return (trees, trees.map { "\($0.name) \($0.total)" }.joined(separator: ", "))
            }
            return (check, rsync, trees)
        }
        let decision = ReleaseDecision.decide(plan, releases: check.releases, mainDigest: await digest.value)
        return Self.describe(plan, decision: decision, check: check, rsync: rsync, trees: trees, hooks: hooks.hooks)
    }

    /// The steps a sync would run for `decision`, in words, with the hooks it would run (none runs
    /// in a dry run), and the services it would stop and start.
    static func describe(_ plan: SyncPlan, decision: ReleaseDecision, check: PreflightAnswer, rsync: RsyncChoices,
                         trees: [TreeChanges], hooks: Hooks) -> DryRunReport {
        let worker = plan.worker
        let live = check.releases.live
        let start = plan.startedServices(workerServices: check.workerServices)
        let running = check.running
        let deps = plan.dependencies.map { "\($0.name) \($0.host):\($0.port)" }.joined(separator: ", ")
        let checks = "check \(deps.isEmpty ? "" : deps + " reachable, ")services up for \(worker.settleSeconds) s"
        let stopping = running.isEmpty ? "nothing" : running.joined(separator: ", ")
        var report = DryRunReport(site: plan.site, destination: worker.destination, release: plan.release, liveRelease: live,
                                  strategy: plan.strategy, steps: ["connect to \(worker.destination) (one SSH connection)",
                                                                   "check the worker and take its lock"],
                                  stopServices: running, startServices: start, trees: trees)
        do {
            try plan.checkNotMarkedBad(check.releases)
        } catch {
            report.steps.append("refuse: \(error.errorDescription ?? "")")
            report.steps.append("release the lock")
            report.stopServices = []
            report.startServices = []
            return report
        }
        if let command = hooks.beforeSync {
            report.steps.append("run the before_sync hook here (\(command)); a failure stops this worker's sync")
        }
        switch decision {
        case .keep:
            report.steps.append("keep \(plan.release): it is live, was verified when it went live, and is identical to the main server's")
            report.steps.append("transfer deployment data and includes")
            let startChanges = ReleaseDecision.startChanges(trees.map { ($0.name, $0.total) })
            if ReleaseDecision.servicesStay(startChanges: startChanges, running: running, wanted: start) {
                report.steps.append("leave \(running.joined(separator: ", ")) running: nothing they read changed")
                report.steps.append("release the lock")
                report.stopServices = []
                report.startServices = []
                return report
            }
            report.steps.append("restart as a new generation of \(plan.release): start \(start.joined(separator: ", ")) beside the running ones, \(checks), then tell \(stopping) to stop (they finish their jobs)")
        case .stage(_, _, let why):
            report.steps.append("stage \(plan.release) beside the running release" + (live.map { ", reusing \($0)" } ?? "") + " (\(why.text))")
            report.steps.append("give it its own copy of the worker configs and link them")
            report.steps.append("hand over: start \(start.joined(separator: ", ")) of \(plan.release) beside the running ones, \(checks), move schedule, point frappe-bench at \(plan.release), then tell \(stopping) to stop (they finish their jobs on \(live ?? "their release")); on failure the running ones serve on")
            report.steps.append("prune releases beyond \(worker.keepReleases)")
        case .inPlace:
            report.steps.append("stop \(stopping)")
            report.steps.append("transfer \(plan.release) in place")
            report.steps.append("give it its own copy of the worker configs; point frappe-bench at \(plan.release)")
            report.steps.append("start \(start.joined(separator: ", ")), \(checks)")
        }
        if let command = hooks.afterSwitch {
            report.steps.append("run the after_switch hook here (\(command))")
        }
        report.steps.append("release the lock")
        report.steps.append("rsync: \(rsync.summary)")
        return report
    }
}
