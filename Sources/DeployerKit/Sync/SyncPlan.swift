/// The steps of a sync, in the spec's order.
public enum SyncStep: String, Sendable, CaseIterable {
    case validate = "validate"
    case connect = "connect"
    case preflight = "check worker"
    case stopServices = "stop services"
    case transfer = "transfer"
    case link = "link configs"
    case startServices = "start services"
}

/// What a sync to one worker will do, decided before anything runs; printing it changes nothing.
public struct SyncPlan: Sendable, Equatable {
    public var site: String
    public var workspace: LocalWorkspace
    public var worker: WorkerSettings
    /// Independent trees, transferred in parallel.
    public var transfers: [RsyncTransfer]

    public var release: String { workspace.releaseName }

    /// Builds the plan for one worker from checked settings and a located workspace.
    public static func make(workspace: LocalWorkspace, worker: WorkerSettings) -> SyncPlan {
        let remote = worker.workspacePath
        let userExcludes = worker.excludePatterns
        var transfers = [
            RsyncTransfer(
                name: "release", sources: [workspace.releasePath + "/"],
                destination: "\(remote)/\(workspace.releaseName)/",
                excludes: ExcludeRules.release(site: workspace.siteName) + userExcludes),
            RsyncTransfer(
                name: "deployment-data", sources: [workspace.deploymentDataPath + "/"],
                destination: "\(remote)/deployment-data/",
                excludes: ExcludeRules.deploymentData + userExcludes),
        ]
        // Include dirs and files go in one --relative run: each keeps its path below the workspace,
        // and --delete reaches only into the included directories.
        let includes = worker.includeDirs.map { "\(workspace.path)/./\($0)" } + worker.includeFiles.map { "\(workspace.path)/./\($0)" }
        if !includes.isEmpty {
            transfers.append(RsyncTransfer(
                name: "includes", sources: includes, destination: "\(remote)/",
                excludes: ExcludeRules.everywhere + userExcludes, relative: true))
        }
        return SyncPlan(site: workspace.siteName, workspace: workspace, worker: worker, transfers: transfers)
    }

    /// Arguments of the worker script's phases.
    var preflightArguments: [String] { ["preflight", worker.workspacePath, site] }
    var stopArguments: [String] { ["stop", worker.workspacePath] }
    var activateArguments: [String] { ["activate", worker.workspacePath, site, release] }
    var startArguments: [String] { ["start", worker.workspacePath] }
}
