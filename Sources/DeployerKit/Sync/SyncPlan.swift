import Foundation

/// The steps of a sync and of a rollback.
public enum SyncStep: String, Sendable, CaseIterable {
    case connect = "connect"
    case preflight = "check worker"
    case stage = "stage"
    case stopServices = "stop services"
    case transfer = "transfer"
    case link = "link configs"
    case switchRelease = "switch"
    case startServices = "start services"
    case prune = "prune"
    case compare = "compare release"
    case restart = "restart services"
}

/// What a sync to one worker will do, decided before anything runs; printing it changes nothing.
public struct SyncPlan: Sendable, Equatable {
    public var site: String
    public var workspace: LocalWorkspace
    public var worker: WorkerSettings
    /// Names this sync on the worker (its lock and its staging directory).
    public var token: String
    /// What the started services must reach (checked from the worker after the start).
    public var dependencies: [WorkerDependency] = []
    /// Stage and switch even when the worker's live release is this one, verified and unchanged.
    public var full = false
    /// Compression and checksum for every transfer, once both sides' rsync are known.
    public var rsync = RsyncChoices()
    /// The main server's digest of the release (`ReleaseDigest`), once taken.
    public var mainDigest: String?

    public var release: String { workspace.releaseName }
    public var strategy: SyncStrategy { worker.strategy }
    /// Where a staged sync transfers the release before it goes live.
    public var stagingPath: String { "\(worker.workspacePath)/.fd-staging-\(release)-\(token)" }

    /// Builds the plan for one worker from checked settings and a located workspace.
    public static func make(workspace: LocalWorkspace, worker: WorkerSettings, dependencies: [WorkerDependency] = [],
                            token: String = SyncPlan.newToken()) -> SyncPlan {
        SyncPlan(site: workspace.siteName, workspace: workspace, worker: worker, token: token, dependencies: dependencies)
    }

    /// A short random name: enough to tell concurrent syncs apart.
    public static func newToken() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())
    }

    /// The trees to transfer, in parallel. Staged: the release goes to a new staging directory,
    /// hard-linking unchanged files from `base` (a release already on the worker). In place: the
    /// release is rewritten where it is.
    public func transfers(base: String?) -> [RsyncTransfer] {
        transfers(base: base, splitFirstCopy: false)
    }

    /// The trees of a staging transfer. A first copy (no base on the worker) goes without
    /// `--checksum` (there is nothing to compare with) and, with `splitFirstCopy`, as two parallel
    /// streams: `env/` (two thirds of a release's bytes) and the rest, so compression and the
    /// link's window are used twice over. The same excludes apply to both; each stream's filter
    /// keeps it out of the other's subtree, and excluded paths are never deleted.
    public func transfers(base: String?, splitFirstCopy: Bool) -> [RsyncTransfer] {
        var transfers = baseTransfers(base: base)
        guard strategy == .staged, let index = transfers.firstIndex(where: { $0.name == "release" }) else { return transfers }
        guard base == nil else {
            // Unchanged files are recognized by checksum and hard-linked from the base whatever
            // their mtimes; only changed and new files travel.
            transfers[index].times = false
            return transfers
        }
        transfers[index].checksum = false
        guard splitFirstCopy, worker.firstCopyStreams > 1,
              FileManager.default.fileExists(atPath: workspace.releasePath + "/env") else { return transfers }
        var env = transfers[index]
        env.name = "release env/"
        env.filters = ["+ /env/", "- /*"]
        transfers[index].filters = ["- /env/"]
        transfers.insert(env, at: index)
        return transfers
    }

    func baseTransfers(base: String?) -> [RsyncTransfer] {
        treeTransfers(base: base).map { transfer in
            var transfer = transfer
            transfer.compression = rsync.compression
            transfer.checksumChoice = rsync.checksum
            return transfer
        }
    }

    func treeTransfers(base: String?) -> [RsyncTransfer] {
        let remote = worker.workspacePath
        let userExcludes = worker.excludePatterns
        let limit = worker.bandwidthLimit
        let releaseTransfer: RsyncTransfer
        switch strategy {
        case .staged:
            releaseTransfer = RsyncTransfer(
                name: "release", sources: [workspace.releasePath + "/"], destination: stagingPath + "/",
                excludes: ExcludeRules.release(site: site) + userExcludes,
                linkDest: base.map { "\(remote)/\($0)" }, bandwidthLimit: limit)
        case .inPlace:
            releaseTransfer = RsyncTransfer(
                name: "release", sources: [workspace.releasePath + "/"], destination: "\(remote)/\(release)/",
                excludes: ExcludeRules.release(site: site) + userExcludes, bandwidthLimit: limit)
        }
        var transfers = [
            releaseTransfer,
            RsyncTransfer(
                name: "deployment-data", sources: [workspace.deploymentDataPath + "/"],
                destination: "\(remote)/deployment-data/",
                excludes: ExcludeRules.deploymentData + userExcludes, bandwidthLimit: limit),
        ]
        // Include dirs and files go in one --relative run: each keeps its path below the workspace,
        // and --delete reaches only into the included directories.
        let includes = (worker.includeDirs + worker.includeFiles).map { "\(workspace.path)/./\($0)" }
        if !includes.isEmpty {
            transfers.append(RsyncTransfer(
                name: "includes", sources: includes, destination: "\(remote)/",
                excludes: ExcludeRules.everywhere + userExcludes, relative: true, bandwidthLimit: limit))
        }
        return transfers
    }

    /// The release's exclude patterns (built-in and the operator's), as the digests use them.
    public var releaseExcludes: [String] { ExcludeRules.release(site: site) + worker.excludePatterns }

    /// The release on the worker to hard-link from: the live one, else the newest present.
    public static func linkBase(current: String?, releases: [String]) -> String? {
        if let current, !current.isEmpty, releases.contains(current) { return current }
        return releases.sorted().last
    }

    /// `stop_timeout` as the worker script takes it ("-" for bench's per-service waits).
    var stopTimeoutArgument: String { worker.stopTimeout.map(String.init) ?? "-" }

    /// The services a start runs, in the order they start: `schedule` (unless this worker gives
    /// it up) and the worker services the check reported (`worker_services`).
    func startedServices(facts: [String: String]) -> [String] {
        (worker.scheduler ? ["schedule"] : []) + SyncRunner.words(facts["worker_services"])
    }

    /// The worker script's start arguments: SETTLE SCHEDULER DEPS.
    var startArguments: [String] { Self.startArguments(worker: worker, dependencies: dependencies) }

    static func startArguments(worker: WorkerSettings, dependencies: [WorkerDependency]) -> [String] {
        [String(worker.settleSeconds), worker.scheduler ? "yes" : "no",
         dependencies.isEmpty ? "-" : dependencies.map(\.argument).joined(separator: ",")]
    }
}
