import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

@Suite("Finding the local workspace and checking includes")
struct LocalWorkspaceTests {
    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    var benches: String { directory.path + "/benches" }

    init() throws {
        directory = try TemporaryDirectory()
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: "a.test", release: "release_1", profile: FixtureProfile(files: 5, bytes: 1000))
    }

    func locate() throws -> LocalWorkspace {
        try LocalWorkspace.locate(benchesPath: benches, siteName: "a.test")
    }

    @Test("the current release is found through the frappe-bench link")
    func finds() throws {
        let workspace = try locate()
        #expect(workspace.releaseName == "release_1")
        #expect(workspace.path == benches + "/a.test/workspace")
        #expect(workspace.deploymentDataPath == benches + "/a.test/workspace/deployment-data")
        try workspace.checkWorkerConfigs()
    }

    @Test("a missing benches root, site or workspace names the path")
    func missingParts() throws {
        #expect(throws: WorkspaceError.benchesMissing(path: "/nonexistent")) { try LocalWorkspace.locate(benchesPath: "/nonexistent", siteName: "a.test") }
        #expect(throws: WorkspaceError.siteMissing(site: "b.test", path: benches + "/b.test")) { try LocalWorkspace.locate(benchesPath: benches, siteName: "b.test") }
    }

    @Test("frappe-bench missing, a real directory, dangling, or pointing elsewhere is an error")
    func badLink() throws {
        let link = fixture.workspace + "/frappe-bench"
        try FileManager.default.removeItem(atPath: link)
        #expect(throws: WorkspaceError.benchLinkMissing(path: link)) { try locate() }

        try FileManager.default.createDirectory(atPath: link, withIntermediateDirectories: false)
        #expect(throws: WorkspaceError.benchLinkNotSymlink(path: link)) { try locate() }
        try FileManager.default.removeItem(atPath: link)

        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "release_9")
        #expect(throws: WorkspaceError.benchLinkDangling(path: link, target: "release_9")) { try locate() }
        try FileManager.default.removeItem(atPath: link)

        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/tmp")
        #expect(throws: WorkspaceError.benchLinkOutside(path: link, target: "/tmp")) { try locate() }
    }

    @Test("missing deployment-data or worker configs are errors that say what to do")
    func missingData() throws {
        let workers = fixture.deploymentData + "/sites/a.test/site_config.workers.json"
        try FileManager.default.removeItem(atPath: workers)
        #expect(throws: WorkspaceError.workerConfigMissing(path: workers)) { try locate().checkWorkerConfigs() }
        #expect(WorkspaceError.workerConfigMissing(path: workers).errorDescription?.contains("remote-worker enable") == true)
        try FileManager.default.removeItem(atPath: fixture.deploymentData)
        #expect(throws: WorkspaceError.deploymentDataMissing(path: fixture.deploymentData)) { try locate() }
    }

    @Test("includes must exist, be of the right kind and stay inside the workspace")
    func includes() throws {
        let workspace = try locate()
        try FileManager.default.createDirectory(atPath: fixture.workspace + "/custom_apps", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: fixture.workspace + "/worker.env"))
        try workspace.checkInclude("custom_apps", directory: true)
        try workspace.checkInclude("worker.env", directory: false)
        #expect(throws: WorkspaceError.self) { try workspace.checkInclude("nope", directory: true) }
        #expect(throws: WorkspaceError.includeWrongKind(path: "worker.env", expected: "a directory (--include-dir)")) {
            try workspace.checkInclude("worker.env", directory: true)
        }
        // A symlink inside the workspace that points out of it is refused.
        try FileManager.default.createSymbolicLink(atPath: fixture.workspace + "/escape", withDestinationPath: "/etc")
        #expect(throws: WorkspaceError.includeOutside(path: "escape", resolved: "/etc")) { try workspace.checkInclude("escape", directory: true) }
    }

    @Test("in place: release, deployment-data and includes with their excludes, straight into the workspace")
    func inPlacePlan() throws {
        let workspace = try locate()
        var worker = WorkerSettings(server: "h", workspacePath: "/r/ws", includeDirs: ["custom_apps"], includeFiles: ["conf/w.env"], excludePatterns: ["*.iso"])
        worker.strategy = .inPlace
        let transfers = SyncPlan.make(workspace: workspace, worker: worker).transfers(base: "release_0")
        #expect(transfers.map(\.name) == ["release", "deployment-data", "includes"])
        #expect(transfers[0].sources == [workspace.releasePath + "/"])
        #expect(transfers[0].destination == "/r/ws/release_1/")
        #expect(transfers[0].linkDest == nil)
        #expect(transfers[0].excludes.contains("/sites/a.test/site_config.json"))
        #expect(transfers[0].excludes.contains("/sites/common_site_config.json"))
        #expect(transfers[1].excludes.contains("/sites/*/public/files/"))
        #expect(transfers[1].excludes.contains("/sites/*/private/"))
        #expect(transfers.allSatisfy { $0.excludes.contains("*.iso") && $0.excludes.contains("*.log.[0-9]*") })
        #expect(transfers[2].relative)
        #expect(transfers[2].sources == [workspace.path + "/./custom_apps", workspace.path + "/./conf/w.env"])
        #expect(transfers[2].destination == "/r/ws/")
        #expect(SyncPlan.make(workspace: workspace, worker: WorkerSettings(server: "h", workspacePath: "/r/ws")).transfers(base: nil).count == 2)
    }

    @Test("staged: the release goes to a private staging directory, hard-linking from the live release")
    func stagedPlan() throws {
        let workspace = try locate()
        var worker = WorkerSettings(server: "h", workspacePath: "/r/ws")
        worker.bandwidthLimit = 800
        let plan = SyncPlan.make(workspace: workspace, worker: worker, token: "abc123")
        #expect(plan.strategy == .staged)
        let transfers = plan.transfers(base: "release_0")
        #expect(transfers[0].destination == "/r/ws/.fd-staging-release_1-abc123/")
        #expect(transfers[0].linkDest == "/r/ws/release_0")
        #expect(transfers.allSatisfy { $0.bandwidthLimit == 800 })
        #expect(plan.transfers(base: nil)[0].linkDest == nil)
        #expect(transfers[1].destination == "/r/ws/deployment-data/")
    }

    @Test("the link base is the live release, else the newest on the worker")
    func linkBase() {
        #expect(ReleaseDecision.linkBase(live: "release_2", releases: ["release_1", "release_2", "release_3"]) == "release_2")
        #expect(ReleaseDecision.linkBase(live: nil, releases: ["release_1", "release_3"]) == "release_3")
        #expect(ReleaseDecision.linkBase(live: "release_9", releases: ["release_1"]) == "release_1")
        #expect(ReleaseDecision.linkBase(live: nil, releases: []) == nil)
    }
}
