import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The pure keep / restart / stage decision, and the rollback target.
@Suite("Release decision")
struct ReleaseDecisionTests {
    let plan: SyncPlan
    let directory: TemporaryDirectory

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-decide")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/b", site: "a.test", release: "release_2",
                                                  profile: FixtureProfile(files: 2, bytes: 100))
        plan = SyncPlan.make(workspace: try LocalWorkspace.locate(benchesPath: fixture.benchesPath, siteName: "a.test"),
                             worker: WorkerSettings(server: "w", workspacePath: "/w"))
    }

    func with(_ change: (inout WorkerSettings) -> Void, full: Bool = false) -> SyncPlan {
        var worker = plan.worker
        change(&worker)
        return SyncPlan.make(workspace: plan.workspace, worker: worker, full: full)
    }

    let verified = VerifiedCopy(release: "release_2", mainDigest: "main-1", copyDigest: "copy-1")
    /// A worker's releases; the live one has the main server's worker configs unless `configs` says otherwise.
    func releases(live: String?, verified: VerifiedCopy? = nil, liveDigest: String? = nil, configs: String? = "") -> WorkerReleases {
        WorkerReleases(live: live, previous: nil, all: ["release_1", "release_2"].filter { $0 <= (live ?? "release_1") }, verified: verified,
                       liveDigest: liveDigest, liveConfigs: configs == "" ? plan.workerConfigs : configs)
    }

    @Test("the main server's worker configs are fingerprinted by size and modification second, as the worker prints them")
    func configFingerprint() throws {
        let files = plan.workspace.workerConfigFiles
        let date = Date(timeIntervalSince1970: 1_795_000_000.75)
        for file in files { try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: file) }
        let sizes = try files.map { try #require(FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) }
        #expect(plan.workspace.workerConfigFingerprint() == "\(sizes[0]):1795000000 \(sizes[1]):1795000000")
        try FileManager.default.removeItem(atPath: files[1])
        #expect(plan.workspace.workerConfigFingerprint() == nil)
    }

    @Test("a verified live copy whose digests both still match is kept")
    func keep() {
        #expect(ReleaseDecision.decide(plan, releases: releases(live: "release_2", verified: verified, liveDigest: "copy-1"), mainDigest: "main-1")
                == .keep(verified))
    }

    @Test("anything else stages a fresh copy, and says why")
    func stage() {
        let cases: [(WorkerReleases, String?, SyncPlan, ReleaseDecision)] = [
            (WorkerReleases(live: nil, all: []), "main-1", plan, .stage(base: nil, swap: false, why: .firstSync)),
            (releases(live: "release_1"), "main-1", plan, .stage(base: "release_1", swap: false, why: .otherRelease(live: "release_1"))),
            (releases(live: "release_2", verified: verified, liveDigest: "copy-1"), "main-1", with({ _ in }, full: true),
             .stage(base: "release_2", swap: true, why: .full)),
            (releases(live: "release_2"), "main-1", plan, .stage(base: "release_2", swap: true, why: .notVerified)),
            (releases(live: "release_2", verified: verified, liveDigest: "copy-1"), "main-2", plan, .stage(base: "release_2", swap: true, why: .mainChanged)),
            (releases(live: "release_2", verified: verified, liveDigest: "copy-9"), "main-1", plan, .stage(base: "release_2", swap: true, why: .copyChanged)),
            (releases(live: "release_2", verified: verified, liveDigest: "copy-1"), nil, plan, .stage(base: "release_2", swap: true, why: .mainChanged)),
            // The live release's directory is gone (an interrupted swap, removed by hand).
            (WorkerReleases(live: "release_2", all: ["release_1"], verified: verified, liveConfigs: plan.workerConfigs), "main-1", plan,
             .stage(base: "release_1", swap: true, why: .liveMissing)),
            // The live release's own worker configs are not the main server's (or it has none).
            (releases(live: "release_2", verified: verified, liveDigest: "copy-1", configs: "1:2 3:4"), "main-1", plan,
             .stage(base: "release_2", swap: true, why: .configsChanged)),
            (releases(live: "release_2", verified: verified, liveDigest: "copy-1", configs: nil), "main-1", plan,
             .stage(base: "release_2", swap: true, why: .configsChanged)),
        ]
        for (releases, main, plan, expected) in cases {
            #expect(ReleaseDecision.decide(plan, releases: releases, mainDigest: main) == expected, "\(releases)")
        }
        let inPlace = with { $0.strategy = .inPlace }
        #expect(ReleaseDecision.decide(inPlace, releases: releases(live: "release_2", verified: verified, liveDigest: "copy-1"), mainDigest: "main-1")
                == .inPlace)
    }

    @Test("kept services stay only when nothing they read at start changed and exactly the wanted services run")
    func servicesStay() {
        let wanted = plan.startedServices(workerServices: ["short-worker", "long-worker"])
        #expect(wanted == ["schedule", "long-worker", "short-worker"])
        #expect(ReleaseDecision.servicesStay(startChanges: 0, running: ["short-worker", "schedule", "long-worker"], wanted: wanted))
        #expect(!ReleaseDecision.servicesStay(startChanges: 1, running: wanted, wanted: wanted))
        #expect(!ReleaseDecision.servicesStay(startChanges: 0, running: ["schedule", "short-worker"], wanted: wanted))
        // Only the includes count: deployment-data's changes (and files it removed that the worker wrote) do not.
        #expect(ReleaseDecision.startChanges([("release", 5), ("deployment-data", 7), ("includes", 2)]) == 2)
        #expect(ReleaseDecision.startChanges([("deployment-data", 7)]) == 0)
        #expect(with { $0.scheduler = false }.startedServices(workerServices: ["short-worker"]) == ["short-worker"])
    }

    @Test("rollback goes to the recorded previous release, else the newest older one, else nowhere")
    func rollbackTarget() {
        #expect(ReleaseDecision.rollbackTarget(WorkerReleases(live: "release_3", previous: "release_1", all: ["release_1", "release_2", "release_3"]))
                == "release_1")
        #expect(ReleaseDecision.rollbackTarget(WorkerReleases(live: "release_3", previous: "release_0", all: ["release_1", "release_2", "release_3"]))
                == "release_2", "a recorded release that is gone is skipped")
        #expect(ReleaseDecision.rollbackTarget(WorkerReleases(live: "release_1", all: ["release_1"])) == nil)
    }
}
