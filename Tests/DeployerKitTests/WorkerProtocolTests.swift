import DeployerKit
import Foundation
import Testing

/// The typed protocol to the worker script: the arguments each phase becomes, and the answers
/// decoded from what the script prints (the script itself is run in WorkerScriptTests).
@Suite("Worker protocol: phases and answers")
struct WorkerProtocolTests {
    @Test("a phase is PHASE WORKSPACE, named options for what is given, and its list after --")
    func arguments() {
        let preflight = WorkerPhase.preflight(site: "a.test", lock: LockRequest(token: "t1", holder: "ops@main pid 1"),
                                              liveDigest: LiveDigestRequest(release: "release_2", excludes: [".git/", "a b"]))
        #expect(preflight.arguments(workspace: "/w") == ["preflight", "/w", "--site=a.test", "--token=t1", "--holder=ops@main pid 1",
                                                         "--digest=release_2", "--", ".git/", "a b"])
        #expect(WorkerPhase.preflight(site: "a.test", lock: nil, liveDigest: nil).arguments(workspace: "/w")
                == ["preflight", "/w", "--site=a.test"], "no placeholder for what is not given")
        let start = StartRequest(services: ["schedule", "short-worker"], settleSeconds: 2,
                                 dependencies: [WorkerDependency(name: "redis_queue", host: "10.0.0.1", port: 11000)])
        let request = SwitchRequest(site: "a.test", release: "release_2", generation: "a-test-release_2-abc123",
                                    stop: StopRules.forWorker(stopTimeout: nil), start: start)
        #expect(WorkerPhase.switchRelease(request).arguments(workspace: "/w") == [
            "switch", "/w", "--site=a.test", "--release=release_2", "--project=a-test-release_2-abc123",
            "--stop=long-worker=1560,*-worker=360,*=10", "--settle=2",
            "--deps=redis_queue@10.0.0.1:11000", "--", "schedule", "short-worker",
        ])
        #expect(WorkerPhase.prune(keep: 3).arguments(workspace: "/w") == ["prune", "/w", "--keep=3"])
        #expect(WorkerPhase.stop(StopRules.forWorker(stopTimeout: 30)).arguments(workspace: "/w") == ["stop", "/w", "--stop=*=30"])
    }

    @Test("a generation's name is the site dir, the release and a token, in Compose's alphabet")
    func generationName() {
        #expect(Generation.name(siteDirectory: "/home/frappe/frappe/sites/erp.Example.test", release: "release_20261202_080000", token: "a1b2c3d4e5f6")
                == "erp-example-test-release_20261202_080000-a1b2c3")
        #expect(Generation.name(siteDirectory: "/x/.site", release: "r", token: "t").first == "g")
    }

    @Test("drain records: what still drains, and what a finished drain killed")
    func drainRecords() {
        let drains = DrainRecord.all(WorkerFacts("""
            drain_1=site-r1-aaa release_1 1795599000 draining long-worker - -
            drain_2=site-r0-bbb release_0 1795500000 done - long-worker,short-worker 1795500100
            drain_3=site-r9-ccc release_9 1795500000 draining - - -
            """))
        #expect(drains.map(\.release) == ["release_1", "release_0", "release_9"])
        #expect(drains[0].draining && drains[0].running == ["long-worker"] && drains[0].killed.isEmpty)
        #expect(!drains[1].draining && drains[1].killed == ["long-worker", "short-worker"])
        #expect(drains[1].finished == Date(timeIntervalSince1970: 1_795_500_100))
        #expect(!drains[2].draining, "a drain record with nothing running does not block a handover")
    }

    @Test("bench's stop waits: long-worker 1560 s, other workers 360 s, everything else 10 s; or one wait for all")
    func stopRules() {
        let bench = StopRules.forWorker(stopTimeout: nil)
        #expect(bench.seconds(for: "long-worker") == 1560)
        #expect(bench.seconds(for: "short-worker") == 360)
        #expect(bench.seconds(for: "schedule") == 10)
        #expect(StopRules.forWorker(stopTimeout: 5).seconds(for: "long-worker") == 5)
    }

    @Test("preflight's answer: services, releases, the verified copy, the lock and rsync's lists")
    func preflightAnswer() {
        let answer = PreflightAnswer(WorkerFacts("""
            locked=yes
            took_over=ops@main pid 9
            worker_services=short-worker long-worker
            current_release=release_2
            previous_release=release_1
            releases=release_2 release_1
            verified_release=release_2
            verified_main=abc-10
            verified_copy=123-10
            live_digest=123-10
            running=schedule long-worker short-worker
            rsync_compress=zstd lz4 zlibx zlib none
            rsync_checksum=xxh128 xxh3 md5
            """))
        #expect(answer.workerServices == ["long-worker", "short-worker"])
        #expect(answer.releases == WorkerReleases(live: "release_2", previous: "release_1", all: ["release_1", "release_2"],
                                                  verified: VerifiedCopy(release: "release_2", mainDigest: "abc-10", copyDigest: "123-10"),
                                                  liveDigest: "123-10"))
        #expect(answer.running == ["long-worker", "schedule", "short-worker"])
        #expect(answer.rsyncCompress.first == "zstd")
        #expect(answer.lock == .tookOver(from: "ops@main pid 9"))
        // A worker never synced: no live release, nothing verified.
        let empty = PreflightAnswer(WorkerFacts("worker_services=w\ncurrent_release=\nreleases=\nverified_release=\nlocked=yes\n"))
        #expect(empty.releases.live == nil && empty.releases.verified == nil && empty.releases.all.isEmpty)
        #expect(empty.lock == .taken)
    }

    @Test("a refused lock names its holder; a switch's answer says what runs and why")
    func lockAndSwitchAnswers() {
        let held = LockHeld(WorkerFacts("held_by=ops@main pid 4\nheld_since=1795599000\nheld_token=zz\nswitch_running=yes\n"))
        #expect(held.holder == "ops@main pid 4" && held.token == "zz" && held.switchRunning)
        #expect(held.since == Date(timeIntervalSince1970: 1_795_599_000))
        let rolledBack = SwitchAnswer(WorkerFacts("previous=release_1\nreason=service x is not running\nrunning=schedule\nrolled_back=release_1\ndowntime_ms=2500\n"),
                                      exitCode: 7)
        #expect(rolledBack.exit == .rolledBack && rolledBack.rolledBackTo == "release_1" && rolledBack.reason == "service x is not running")
        #expect(rolledBack.downtimeSeconds == 2.5 && rolledBack.running == ["schedule"])
        let failed = SwitchAnswer(WorkerFacts("previous=\nrolled_back=none\n"), exitCode: 8)
        #expect(failed.exit == .switchFailed && failed.rolledBackTo == nil && failed.previous == nil)
    }
}
