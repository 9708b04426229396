/// What a sync does with the worker's release, decided from the plan and the worker's facts
/// alone: the sync executes it and `--dry-run` prints it, so the rule lives here once.
public enum ReleaseDecision: Sendable, Equatable {
    /// The live copy is this release, verified when it went live, and both digests still match
    /// (the main server's release and the worker's copy): only data and includes go over, and
    /// services restart only if something they read changed (`servicesAfterKeep`).
    case keep(VerifiedCopy)
    /// A fresh copy is staged beside the running release, hard-linking unchanged files from
    /// `base`; `swap` when the release is the live one (the switch swaps the directories).
    case stage(base: String?, swap: Bool, why: StageReason)
    /// `--strategy in-place`: the spec's order, over the live release.
    case inPlace

    /// Why a fresh copy is staged rather than the live one kept.
    public enum StageReason: Sendable, Equatable {
        case firstSync
        case otherRelease(live: String)
        case full
        case notVerified
        case mainChanged
        case copyChanged
        case configsChanged
        case liveMissing

        public var text: String {
            switch self {
            case .firstSync: "first sync"
            case .otherRelease(let live): "\(live) runs now"
            case .full: "--full"
            case .notVerified: "not verified: staging a fresh copy"
            case .mainChanged: "the main server's release changed since: staging a fresh copy"
            case .copyChanged: "the worker's copy changed since: staging a fresh copy"
            case .liveMissing: "the live release's directory is missing on the worker: staging a complete copy"
            case .configsChanged: "the worker configs (*.workers.json) changed: staging a fresh copy that keeps them"
            }
        }
    }

    /// Decides for `plan` on a worker holding `releases`, with the main server's release digest
    /// (`mainDigest`, nil when it could not be taken).
    public static func decide(_ plan: SyncPlan, releases: WorkerReleases, mainDigest: String?) -> ReleaseDecision {
        if plan.strategy == .inPlace { return .inPlace }
        let base = linkBase(live: releases.live, releases: releases.all)
        let swap = releases.live == plan.release
        func stage(_ why: StageReason) -> ReleaseDecision { .stage(base: base, swap: swap, why: why) }
        guard let live = releases.live else { return stage(.firstSync) }
        guard live == plan.release else { return stage(.otherRelease(live: live)) }
        guard releases.all.contains(live) else { return stage(.liveMissing) }
        if plan.full { return stage(.full) }
        switch verifiedCopy(of: plan.release, releases: releases, mainDigest: mainDigest) {
        case .success(let copy):
            // Each release keeps the worker configs it went live with, so the running one is never
            // changed under its workers: new configs go live, and roll back, with a fresh copy.
            if let configs = plan.workerConfigs, releases.liveConfigs != configs { return stage(.configsChanged) }
            return .keep(copy)
        case .failure(let why): return stage(why.reason)
        }
    }

    /// Whether the worker's live copy of `release` is the verified one and still matches the main
    /// server's, by digests only (no file is read): `status` asks this too.
    public static func verifiedCopy(of release: String, releases: WorkerReleases,
                                    mainDigest: String?) -> Result<VerifiedCopy, StageReasonError> {
        guard releases.live == release, let verified = releases.verified, verified.release == release,
              !verified.copyDigest.isEmpty else { return .failure(.init(.notVerified)) }
        guard mainDigest == verified.mainDigest else { return .failure(.init(.mainChanged)) }
        guard releases.liveDigest == verified.copyDigest else { return .failure(.init(.copyChanged)) }
        return .success(verified)
    }

    /// A `StageReason` as the failure of `verifiedCopy`.
    public struct StageReasonError: Error, Equatable {
        public var reason: StageReason
        init(_ reason: StageReason) { self.reason = reason }
    }

    /// The transferred trees that worker services read at start: the includes (an operator's code
    /// or config). Not deployment-data: what workers read of it at start, the worker configs, goes
    /// live with the release (each keeps its own copy); the rest is what they read while running
    /// (uploads, files) or write themselves (logs, pid files, Frappe's file locks), so a change
    /// there, or a file the worker wrote that the sync removed, is no reason to restart.
    public static let treesReadAtStart: Set<String> = ["includes"]

    /// The changes among `trees` (name and changed, created or deleted entries) that services
    /// read at start.
    public static func startChanges(_ trees: [(name: String, changes: Int)]) -> Int {
        trees.filter { treesReadAtStart.contains($0.name) }.reduce(0) { $0 + $1.changes }
    }

    /// After keeping the live copy: whether its services can be left running. They can when
    /// nothing they read at start changed (`startChanges`) and exactly the services a start would
    /// run are running.
    public static func servicesStay(startChanges: Int, running: [String], wanted: [String]) -> Bool {
        startChanges == 0 && Set(running) == Set(wanted)
    }

    /// The release on the worker to hard-link from: the live one, else the newest present.
    public static func linkBase(live: String?, releases: [String]) -> String? {
        if let live, releases.contains(live) { return live }
        return releases.sorted().last
    }

    /// The release a rollback goes back to: the one live before the last switch, if it is still
    /// there, else the newest older release; nil when there is none.
    public static func rollbackTarget(_ releases: WorkerReleases) -> String? {
        let live = releases.live ?? ""
        if let previous = releases.previous, previous != live, releases.all.contains(previous) { return previous }
        return releases.all.filter { $0 < live }.sorted().last
    }
}
