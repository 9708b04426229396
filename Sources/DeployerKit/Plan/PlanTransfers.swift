/// The rsync transfers of a plan: pure, from the plan and what is known of the worker.
extension SyncPlan {
    /// The trees to transfer, in parallel. Staged: the release goes to a new staging directory,
    /// hard-linking unchanged files from `base` (a release already on the worker). In place: the
    /// release is rewritten where it is.
    ///
    /// A staged first copy (no base on the worker) goes without `--checksum` (there is nothing to
    /// compare with). With `splitRelease`, a staged copy goes as two parallel streams: `env/` (two
    /// thirds of a release's bytes and files) and the rest. A first copy uses compression and the
    /// link's window twice over; a copy on a base splits the checksums and the hard links each side
    /// makes between two rsyncs. The same excludes and base apply to both; each stream's filter
    /// keeps it out of the other's subtree, and excluded paths are never deleted.
    public func transfers(base: String?, rsync: RsyncChoices = RsyncChoices(), splitRelease: Bool = false) -> [RsyncTransfer] {
        var transfers = treeTransfers(base: base).map { transfer in
            var transfer = transfer
            transfer.compression = rsync.compression
            transfer.checksumChoice = rsync.checksum
            return transfer
        }
        guard strategy == .staged, let index = transfers.firstIndex(where: { $0.name == "release" }) else { return transfers }
        if base == nil {
            transfers[index].checksum = false
        } else {
            // Unchanged files are recognized by checksum and hard-linked from the base whatever
            // their mtimes; only changed and new files travel.
            transfers[index].times = false
        }
        // Every located release has env/ (LocalWorkspace.locate checks it): it goes as a stream of its own.
        guard splitRelease, worker.releaseStreams > 1 else { return transfers }
        var env = transfers[index]
        env.name = "release env/"
        env.filters = ["+ /env/", "- /*"]
        transfers[index].filters = ["- /env/"]
        transfers.insert(env, at: index)
        return transfers
    }

    /// The deployment data and includes only (when the live release is kept).
    public func dataTransfers(rsync: RsyncChoices) -> [RsyncTransfer] {
        transfers(base: nil, rsync: rsync).filter { $0.name != "release" }
    }

    /// The transfers as a dry run compares them with what runs now: the release against the live
    /// one (a first sync against a directory that is not there), by content, since a release
    /// staged on a base keeps its base's mtimes.
    public func comparisons(live: String?, rsync: RsyncChoices) -> [RsyncTransfer] {
        var transfers = transfers(base: nil, rsync: rsync)
        if let index = transfers.firstIndex(where: { $0.name == "release" }) {
            transfers[index].destination = "\(worker.workspacePath)/\(live ?? ".fd-none-\(token)")/"
            transfers[index].linkDest = nil
            transfers[index].checksum = true
            transfers[index].times = false
        }
        return transfers
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
                excludes: releaseExcludes, linkDest: base.map { "\(remote)/\($0)" }, bandwidthLimit: limit)
        case .inPlace:
            releaseTransfer = RsyncTransfer(
                name: "release", sources: [workspace.releasePath + "/"], destination: "\(remote)/\(release)/",
                excludes: releaseExcludes, bandwidthLimit: limit)
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
}
