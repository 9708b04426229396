import Foundation

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

    public var summary: String {
        "\(name.padded(16)) \(added) added (\(ByteCount.format(addedBytes))), \(changed) changed (\(ByteCount.format(changedBytes))), \(deleted) deleted"
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

    public func summary() -> String {
        var lines = ["dry run: sync \(site) to \(destination): \(release)" + (liveRelease.map { " (live: \($0))" } ?? " (first sync)") + "; nothing was changed"]
        for (index, step) in steps.enumerated() { lines.append("  \(index + 1). \(step)") }
        lines.append("  services to stop:  \(stopServices.isEmpty ? "none" : stopServices.joined(separator: ", "))")
        lines.append("  services to start: \(startServices.isEmpty ? "none (they keep running)" : startServices.joined(separator: ", "))")
        lines.append("  changes against the worker:")
        for tree in trees { lines.append("    \(tree.summary)") }
        return lines.joined(separator: "\n")
    }
}

/// What `remote-worker status` finds on one worker.
public struct WorkerStatus: Sendable, Equatable, Encodable {
    public struct LastSync: Sendable, Equatable, Encodable {
        public var kind: String?
        public var release: String?
        public var by: String?
        public var at: Date?
        public var seconds: Double?
        public var downtimeSeconds: Double?
    }

    public struct Lock: Sendable, Equatable, Encodable {
        public var holder: String
        public var since: Date?
        public var alive: Bool
    }

    public var server: String
    public var destination: String
    public var reachable: Bool
    public var error: String?
    public var liveRelease: String?
    public var mainRelease: String
    public var matchesMain: Bool
    /// Entries of the release and deployment data that differ from the main server's (size and mtime).
    public var drift: Int?
    public var driftByTree: [TreeChanges]?
    public var releases: [String]?
    /// Each service of the site's compose project and its container state (running, exited...).
    public var services: [String: String]?
    public var workerServices: [String]?
    public var schedulerRunning: Bool?
    public var lastSync: LastSync?
    public var lock: Lock?
}

extension SyncRunner {
    /// The plan for one worker, with what would change, without changing anything there: a
    /// read-only check (no lock), and rsync dry runs against the worker's live release.
    public func dryRun(_ plan: SyncPlan) async throws -> DryRunReport {
        let script = try RemoteScript.worker()
        let worker = plan.worker
        let operation = Operation(worker: worker, reporter: reporter, runner: self,
                                  report: SyncReport(site: plan.site, destination: worker.destination, release: plan.release, strategy: plan.strategy))
        let connection = try await operation.step(.connect, detail: "\(worker.destination) port \(worker.sshPort)") {
            (try await WorkerConnection.open(worker: worker, runner: runner), "read-only")
        }
        do {
            let facts = try await operation.step(.preflight, detail: "read-only, no lock") {
                let facts = try await connection.run(script, step: SyncStep.preflight.rawValue, arguments: ["preflight", worker.workspacePath, plan.site])
                return (facts, "workers: \(facts["worker_services"] ?? "?")")
            }
            let live = facts["current_release"].flatMap { $0.isEmpty ? nil : $0 }
            var plan = plan
            plan.rsync = try await rsyncChoices(worker, facts: facts)
            let trees = try await operation.step(.stage, detail: "dry run against \(live ?? "an empty workspace")") {
                let trees = try await changes(plan: plan, live: live, connection: connection, checksum: true)
                return (trees, trees.map { "\($0.name) \($0.total)" }.joined(separator: ", "))
            }
            // Whether the sync would keep the live copy: asked over this connection, before it closes.
            var keeps = false
            if plan.strategy == .staged && !plan.full, case .kept = try await verifiedCopyStands(plan, facts: facts, connection: connection, script: script) {
                keeps = true
            }
            await connection.close()
            let start = plan.startedServices(facts: facts)
            let running = SyncRunner.words(facts["running"])
            let deps = plan.dependencies.map { "\($0.name) \($0.host):\($0.port)" }.joined(separator: ", ")
            let checks = "check \(deps.isEmpty ? "" : deps + " reachable, ")services up for \(worker.settleSeconds) s"
            var steps = ["connect to \(worker.destination) (one SSH connection)", "check the worker and take its lock"]
            switch plan.strategy {
            case .staged where keeps:
                steps.append("keep \(plan.release): it is live, was verified when it went live, and is identical to the main server's")
                steps.append("transfer deployment data and includes")
                let dataChanges = trees.filter { $0.name != "release" }.reduce(0) { $0 + $1.total }
                let wanted = Set(start)
                if dataChanges == 0 && Set(running) == wanted {
                    steps.append("leave \(running.joined(separator: ", ")) running: nothing they read changed")
                    steps.append("release the lock")
                    return DryRunReport(site: plan.site, destination: worker.destination, release: plan.release, liveRelease: live,
                                        strategy: plan.strategy, steps: steps, stopServices: [], startServices: [], trees: trees)
                } else {
                    steps.append("restart: stop \(running.isEmpty ? "nothing" : running.joined(separator: ", ")), start \(start.joined(separator: ", ")), \(checks)")
                }
            case .staged:
                steps.append("stage \(plan.release) beside the running release" + (live.map { ", reusing \($0)" } ?? ""))
                steps.append("link the worker configs inside it")
                steps.append("switch: stop \(running.isEmpty ? "nothing" : running.joined(separator: ", ")), point frappe-bench at \(plan.release), start \(start.joined(separator: ", ")), \(checks); go back to \(live ?? "nothing") on failure")
                steps.append("prune releases beyond \(worker.keepReleases)")
            case .inPlace:
                steps.append("stop \(running.isEmpty ? "nothing" : running.joined(separator: ", "))")
                steps.append("transfer \(plan.release) in place")
                steps.append("link the worker configs; point frappe-bench at \(plan.release)")
                steps.append("start \(start.joined(separator: ", ")), \(checks)")
            }
            steps.append("release the lock")
            steps.append("rsync: \(plan.rsync.summary)")
            return DryRunReport(site: plan.site, destination: worker.destination, release: plan.release, liveRelease: live,
                                strategy: plan.strategy, steps: steps, stopServices: running, startServices: start, trees: trees)
        } catch {
            await connection.close()
            throw error
        }
    }

    /// What each tree of `plan` would change on the worker, compared with its live release.
    func changes(plan: SyncPlan, live: String?, connection: WorkerConnection, checksum: Bool,
                 only names: Set<String>? = nil) async throws -> [TreeChanges] {
        var transfers = plan.transfers(base: nil).filter { names?.contains($0.name) ?? true }
        if let index = transfers.firstIndex(where: { $0.name == "release" }) {
            // Against what runs now; a first sync compares with a directory that is not there.
            // By content: a release staged on a base keeps its base's mtimes for unchanged files.
            transfers[index].destination = "\(plan.worker.workspacePath)/\(live ?? ".fd-none-\(plan.token)")/"
            transfers[index].linkDest = nil
            transfers[index].checksum = true
            transfers[index].times = false
        }
        return try await withThrowingTaskGroup(of: (Int, TreeChanges).self) { group in
            for (index, transfer) in transfers.enumerated() {
                group.addTask {
                    let result = try await connection.transfer(transfer, output: .dryRun, checksum: checksum)
                    return (index, TreeChanges.parse(name: transfer.name, itemized: result.output))
                }
            }
            var results = [TreeChanges?](repeating: nil, count: transfers.count)
            for try await (index, changes) in group { results[index] = changes }
            return results.compactMap { $0 }
        }
    }

    /// The state of one worker, read without changing it; an unreachable worker is a status, not an error.
    public func status(_ plan: SyncPlan) async -> WorkerStatus {
        let worker = plan.worker
        var status = WorkerStatus(server: worker.server, destination: worker.destination, reachable: false,
                                  mainRelease: plan.release, matchesMain: false)
        let connection: WorkerConnection
        do {
            connection = try await WorkerConnection.open(worker: worker, runner: runner)
        } catch {
            status.error = (error as? LocalizedError)?.errorDescription ?? String(describing: error)
            return status
        }
        status.reachable = true
        do {
            let script = try RemoteScript.worker()
            let facts = try await connection.run(script, step: "status", arguments: ["status", worker.workspacePath, plan.site])
            let live = facts["current_release"].flatMap { $0.isEmpty ? nil : $0 }
            status.liveRelease = live
            status.matchesMain = live == plan.release
            status.releases = SyncRunner.words(facts["releases"])
            status.workerServices = SyncRunner.words(facts["worker_services"])
            var services: [String: String] = [:]
            for pair in SyncRunner.words(facts["service_states"]) {
                let parts = pair.split(separator: ":", maxSplits: 1).map(String.init)
                if parts.count == 2 { services[parts[0]] = parts[1] }
            }
            status.services = services
            status.schedulerRunning = services["schedule"] == "running"
            if let holder = facts["lock_holder"] {
                status.lock = WorkerStatus.Lock(holder: holder, since: facts["lock_since"].flatMap(TimeInterval.init).map(Date.init(timeIntervalSince1970:)),
                                                alive: facts["lock_alive"] == "yes")
            }
            if facts["last_release"] != nil {
                status.lastSync = WorkerStatus.LastSync(
                    kind: facts["last_kind"], release: facts["last_release"], by: facts["last_by"],
                    at: facts["last_at"].flatMap(TimeInterval.init).map(Date.init(timeIntervalSince1970:)),
                    seconds: facts["last_seconds"].flatMap(Double.init), downtimeSeconds: facts["last_downtime"].flatMap(Double.init))
            }
            if live != nil {
                // The release by digests when its copy is the verified one (nothing is read);
                // otherwise by content. Data and includes by rsync's quick check.
                var verified = false
                if case .kept = try await verifiedCopyStands(plan, facts: facts, connection: connection, script: script) { verified = true }
                let trees = try await changes(plan: plan, live: live, connection: connection, checksum: false,
                                              only: verified ? Set(plan.transfers(base: nil).map(\.name)).subtracting(["release"]) : nil)
                status.driftByTree = (verified ? [TreeChanges(name: "release")] : []) + trees
                status.drift = trees.reduce(0) { $0 + $1.total }
            }
        } catch {
            status.error = (error as? LocalizedError)?.errorDescription ?? String(describing: error)
        }
        await connection.close()
        return status
    }
}
