import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The worker script run locally against temporary directories: the phases that need no Docker.
@Suite("worker.sh run locally")
struct WorkerScriptTests {
    let directory: TemporaryDirectory
    var site: String { directory.path + "/sites/a.test" }
    var workspace: String { site + "/workspace" }

    init() throws {
        directory = try TemporaryDirectory(prefix: "fd-script")
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
    }

    func run(_ arguments: [String], path: String? = nil) async throws -> CommandOutput {
        let script = try RemoteScript.worker()
        var command = Command("/bin/sh", ["-s", "--"] + arguments, standardInput: script.text)
        if let path {
            command = Command("/usr/bin/env", ["PATH=\(path)", "/bin/sh", "-s", "--"] + arguments, standardInput: script.text)
        }
        return try await SubprocessRunner().run(command)
    }

    /// Runs `phase` as the tool builds it (`WorkerPhase.arguments`) against `workspace`.
    func run(_ phase: WorkerPhase, in workspace: String) async throws -> CommandOutput {
        try await run(phase.arguments(workspace: workspace))
    }

    @Test("the shipped script is the one in the source tree and passes shellcheck")
    func shellcheck() async throws {
        let shipped = try RemoteScript.worker().text
        let parts = PackagePaths.workerScriptParts
        #expect(parts.count > 1)
        #expect(shipped == (try parts.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()))
        // The parts are one script: shellcheck reads them joined.
        let joined = directory.path + "/worker.sh"
        try shipped.write(toFile: joined, atomically: true, encoding: .utf8)
        let output = try await SubprocessRunner().run(Command("shellcheck", ["-s", "sh", joined]))
        #expect(output.exitCode == 0, "\(output.standardOutput)")
    }

    @Test("preflight refuses a worker without compose files, exit 3, one error line, nothing created")
    func preflightMissingCompose() async throws {
        try FileManager.default.removeItem(atPath: workspace)
        let output = try await run(.preflight(site: "a.test", lock: nil, liveDigest: nil), in: workspace)
        #expect(output.exitCode == 3)
        #expect(output.standardErrorTail == ["error: \(site)/docker-compose.yml is missing on the worker: copy the site's compose files from the main server (remote-worker enable)"])
        #expect(!FileManager.default.fileExists(atPath: workspace))
    }

    @Test("preflight refuses a site dir that does not exist")
    func preflightMissingSiteDir() async throws {
        let output = try await run(.preflight(site: "a.test", lock: nil, liveDigest: nil), in: directory.path + "/nope/workspace")
        #expect(output.exitCode == 3)
        #expect(output.standardErrorTail.first?.contains("does not exist on the worker") == true)
    }

    @Test("preflight digests the live copy only for the release asked, when it is live and verified")
    func preflightLiveDigest() async throws {
        // A stand-in for Docker (the phase's logic is under test, not the engine): an engine that
        // answers, Compose v2, the site's services, and no containers.
        let bin = directory.path + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try """
        #!/bin/sh
        case "$*" in
            info) ;;
            "compose version") echo "Docker Compose version v2.30.0" ;;
            compose*--services) printf 'schedule\\nshort-worker\\n' ;;
            compose*config) echo "name: a-test" ;;
            ps*) ;;
            *) exit 1 ;;
        esac
        """.write(toFile: bin + "/docker", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/docker")
        for file in ["docker-compose.yml", "docker-compose.workers.yml"] {
            try "services: {}\n".write(toFile: "\(site)/\(file)", atomically: true, encoding: .utf8)
        }
        try FileManager.default.createDirectory(atPath: workspace + "/release_1/apps", withIntermediateDirectories: true)
        try "code\n".write(toFile: workspace + "/release_1/apps/a.py", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_1")
        try FileManager.default.createDirectory(atPath: site + "/.frappe-deployer", withIntermediateDirectories: true)
        let path = "\(bin):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"
        func preflight(_ release: String?) async throws -> PreflightAnswer {
            let phase = WorkerPhase.preflight(site: "a.test", lock: nil, liveDigest: release.map { LiveDigestRequest(release: $0, excludes: [".git/"]) })
            let output = try await run(phase.arguments(workspace: workspace), path: path)
            #expect(output.exitCode == 0, "\(output.standardErrorTail)")
            return PreflightAnswer(WorkerFacts(output.standardOutput))
        }
        #expect(try await preflight("release_1").releases.liveDigest == nil, "not verified: no digest")
        try "release=release_1\nmain=m\ncopy=c\n".write(toFile: site + "/.frappe-deployer/verified", atomically: true, encoding: .utf8)
        let digest = try await run(.digest(release: "release_1", excludes: [".git/"]), in: workspace).standardOutput
        #expect(try await preflight("release_1").releases.liveDigest.map { "digest=\($0)\n" } == digest, "the live, verified release asked: its digest")
        #expect(try await preflight("release_2").releases.liveDigest == nil, "a sync of another release never reads the live copy")
        #expect(try await preflight(nil).releases.liveDigest == nil)
    }

    @Test("activate links worker configs, creates required directories and flips frappe-bench")
    func activate() async throws {
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_2",
                                                  profile: FixtureProfile(files: 3, bytes: 100))
        // The worker receives the release without the two config links (they are excluded).
        let release = fixture.workspace + "/release_2"
        try FileManager.default.removeItem(atPath: release + "/sites/common_site_config.json")
        try FileManager.default.removeItem(atPath: release + "/sites/a.test/site_config.json")
        try FileManager.default.removeItem(atPath: fixture.workspace + "/frappe-bench")
        try FileManager.default.createSymbolicLink(atPath: fixture.workspace + "/frappe-bench", withDestinationPath: "release_1")

        let output = try await run(.activate(site: "a.test", release: "release_2"), in: fixture.workspace)
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        #expect(output.standardOutput == "live_release=release_2\n")
        let fm = FileManager.default
        #expect(try fm.destinationOfSymbolicLink(atPath: fixture.workspace + "/frappe-bench") == "release_2")
        // The release links to its own copies of the worker configs, which keep their files' times.
        #expect(try fm.destinationOfSymbolicLink(atPath: release + "/sites/common_site_config.json") == "common_site_config.workers.json")
        #expect(try fm.destinationOfSymbolicLink(atPath: release + "/sites/a.test/site_config.json") == "site_config.workers.json")
        let linked = try String(contentsOfFile: release + "/sites/common_site_config.json", encoding: .utf8)
        #expect(linked.contains(fixture.workersRedisQueue))
        for (copy, original) in [("sites/common_site_config.workers.json", "sites/common_site_config.workers.json"),
                                 ("sites/a.test/site_config.workers.json", "sites/a.test/site_config.workers.json")] {
            #expect(fm.contentsEqual(atPath: release + "/" + copy, andPath: fixture.deploymentData + "/" + original))
            #expect(try fm.attributesOfItem(atPath: release + "/" + copy)[.modificationDate] as? Date
                    == fm.attributesOfItem(atPath: fixture.deploymentData + "/" + original)[.modificationDate] as? Date)
        }
        // The deployment-data files are not the copies: a later sync's config never reaches this release.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: fixture.deploymentData + "/sites/common_site_config.workers.json"))
        #expect(try String(contentsOfFile: release + "/sites/common_site_config.json", encoding: .utf8).contains(fixture.workersRedisQueue))
        for required in ["deployment-data/sites/a.test/private/files", "deployment-data/sites/a.test/public/files", "frappe-bench/config/pids"] {
            var isDirectory: ObjCBool = false
            #expect(fm.fileExists(atPath: fixture.workspace + "/" + required, isDirectory: &isDirectory) && isDirectory.boolValue, "\(required)")
        }
        // No temporary links are left behind.
        #expect(try fm.contentsOfDirectory(atPath: fixture.workspace).filter { $0.contains("fd-new") }.isEmpty)
    }

    @Test("activate refuses a release that was not transferred and leaves frappe-bench alone")
    func activateMissingRelease() async throws {
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 3, bytes: 100))
        let output = try await run(.activate(site: "a.test", release: "release_9"), in: fixture.workspace)
        #expect(output.exitCode == 4)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.workspace + "/frappe-bench") == "release_1")
    }

    @Test("lock: taken once; a live holder refuses others with who holds it; unlock needs the token")
    func lockLifecycle() async throws {
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        let first = try await run(["lock", workspace, "--token=tokenA", "--holder=ops@main pid 1"])
        #expect(first.exitCode == 0, "\(first.standardErrorTail)")
        #expect(first.standardOutput == "locked=yes\n")
        // The holder's session is this test process (no sshd here), which is alive.
        let second = try await run(["lock", workspace, "--token=tokenB", "--holder=ops@main pid 2"])
        #expect(second.exitCode == 6)
        #expect(second.standardOutput.contains("held_by=ops@main pid 1\n"))
        #expect(second.standardOutput.contains("held_token=tokenA\n"))
        // Re-taking with the holder's own token is fine; a wrong token cannot unlock.
        #expect(try await run(["lock", workspace, "--token=tokenA", "--holder=ops@main pid 1"]).exitCode == 0)
        #expect(try await run(.unlock(token: "tokenB", history: nil, record: []), in: workspace).standardOutput.isEmpty)
        #expect(try await run(["lock", workspace, "--token=tokenB", "--holder=ops@main pid 2"]).exitCode == 6)
        // Takeover with the holder's token is what a sync does for a dead holder of its own host.
        let took = try await run(["lock", workspace, "--token=tokenB", "--holder=ops@main pid 2", "--takeover=tokenA"])
        #expect(took.standardOutput.contains("took_over=ops@main pid 1"))
        #expect(try await run(.unlock(token: "tokenB", history: nil, record: []), in: workspace).standardOutput == "unlocked=yes\n")
        #expect(try await run(["lock", workspace, "--token=tokenC", "--holder=ops@main pid 3"]).exitCode == 0)
    }

    @Test("a lock its holder never released (killed, or its connection lost): taking it over appends the holder's history entry, unfinished")
    func unfinishedHolderIsRecorded() async throws {
        for release in ["release_1", "release_2"] {
            try FileManager.default.createDirectory(atPath: workspace + "/" + release, withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_1")
        let lock = site + "/.frappe-deployer/lock"
        #expect(try await run(["lock", workspace, "--token=tokenA", "--holder=ops@main pid 1", "--kind=rollback"]).exitCode == 0)
        let since = try #require(try String(contentsOfFile: lock, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("since=") }.flatMap { TimeInterval($0.dropFirst(6)) })
        // The holder switched to release_2, then died before unlocking: its session is gone.
        try FileManager.default.removeItem(atPath: workspace + "/frappe-bench")
        try FileManager.default.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_2")
        let held = try String(contentsOfFile: lock, encoding: .utf8)
        try held.replacingOccurrences(of: #"session=[^\n]*"#, with: "session=999999999:1", options: .regularExpression)
            .write(toFile: lock, atomically: true, encoding: .utf8)
        let taken = try await run(["lock", workspace, "--token=tokenB", "--holder=ops@main pid 2", "--kind=sync"])
        #expect(taken.standardOutput == "stale_lock=ops@main pid 1\nlocked=yes\n", "\(taken.standardErrorTail)")
        var history = HistoryAnswer(WorkerFacts(try await run(.history(limit: 10), in: workspace).standardOutput)).entries
        #expect(history.count == 1)
        let entry = try #require(history.first)
        #expect(entry.result == .unfinished && entry.kind == "rollback" && entry.by == "ops@main pid 1")
        #expect(entry.from == "release_1" && entry.to == "release_2" && entry.at == Date(timeIntervalSince1970: since))
        #expect(entry.error?.contains("release_2 was live when the next operation took the lock") == true, "\(entry)")

        // A lock released as it should be adds nothing; a takeover of a provably dead holder does.
        #expect(try await run(.unlock(token: "tokenB", history: nil, record: []), in: workspace).standardOutput == "unlocked=yes\n")
        #expect(try await run(["lock", workspace, "--token=tokenC", "--holder=ops@main pid 3", "--kind=sync"]).exitCode == 0)
        history = HistoryAnswer(WorkerFacts(try await run(.history(limit: 10), in: workspace).standardOutput)).entries
        #expect(history.count == 1)
        let took = try await run(["lock", workspace, "--token=tokenD", "--holder=ops@main pid 4", "--takeover=tokenC"])
        #expect(took.standardOutput.contains("took_over=ops@main pid 3"))
        history = HistoryAnswer(WorkerFacts(try await run(.history(limit: 10), in: workspace).standardOutput)).entries
        #expect(history.map(\.result) == [.unfinished, .unfinished])
        #expect(history.last?.by == "ops@main pid 3" && history.last?.from == "release_2" && history.last?.kind == "sync")
    }

    @Test("status reads releases, the lock's holder and the last sync that unlock recorded; it writes nothing")
    func statusAndLastSync() async throws {
        try FileManager.default.createDirectory(atPath: workspace + "/release_1", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_1")
        #expect(try await run(["lock", workspace, "--token=tokenA", "--holder=ops@main pid 7"]).exitCode == 0)
        // status needs Docker Compose only for its service states; without it they are empty.
        let locked = StatusAnswer(WorkerFacts(try await run(.status(site: "a.test", digestExcludes: []), in: workspace).standardOutput))
        #expect(locked.releases.live == "release_1")
        #expect(locked.releases.all == ["release_1"])
        #expect(locked.lock?.holder == "ops@main pid 7")
        #expect(locked.lock?.alive == true)
        #expect(locked.lastSync == nil)
        let unlocked = try await run(.unlock(token: "tokenA", history: nil, record: ["kind=sync", "release=release_1", "by=ops@main pid 7", "at=1764000000", "seconds=3.5"]),
                                     in: workspace)
        #expect(unlocked.standardOutput == "unlocked=yes\n")
        let before = TreeSnapshot(site)
        let answer = StatusAnswer(WorkerFacts(try await run(.status(site: "a.test", digestExcludes: []), in: workspace).standardOutput))
        #expect(answer.lock == nil)
        let last = try #require(answer.lastSync)
        #expect(last.kind == "sync" && last.release == "release_1" && last.by == "ops@main pid 7")
        #expect(last.at == Date(timeIntervalSince1970: 1_764_000_000) && last.seconds == 3.5 && last.downtimeSeconds == nil)
        #expect(TreeSnapshot(site) == before, "status changes nothing")
    }

    @Test("history: unlock appends one entry per operation that held the lock; a release rolled back from another is marked bad until a switch to it succeeds")
    func historyAndBadReleases() async throws {
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        func entry(_ from: String?, _ to: String, _ result: HistoryEntry.Result, at: Int, error: String? = nil) -> HistoryEntry {
            HistoryEntry(at: Date(timeIntervalSince1970: TimeInterval(at)), kind: "sync", by: "ops@main pid 7", from: from, to: to, result: result,
                         seconds: 2.5, noJobsSeconds: 0, error: error)
        }
        func append(_ entry: HistoryEntry, token: String) async throws {
            #expect(try await run(["lock", workspace, "--token=\(token)", "--holder=ops@main pid 7"]).exitCode == 0)
            #expect(try await run(.unlock(token: token, history: entry, record: []), in: workspace).standardOutput == "unlocked=yes\n")
        }
        // A wrong token appends nothing.
        #expect(try await run(["lock", workspace, "--token=tokenA", "--holder=ops@main pid 7"]).exitCode == 0)
        _ = try await run(.unlock(token: "tokenZ", history: entry(nil, "release_9", .rolledBack, at: 1), record: []), in: workspace)
        #expect(try await run(.unlock(token: "tokenA", history: nil, record: []), in: workspace).exitCode == 0)
        try await append(entry(nil, "release_1", .ok, at: 100), token: "t1")
        try await append(entry("release_1", "release_2", .rolledBack, at: 200, error: "release_2 did not start\t(redis_queue\nunreachable)"), token: "t2")
        // A restart of the live release that failed (a broken config) marks nothing.
        try await append(entry("release_1", "release_1", .rolledBack, at: 300), token: "t3")
        try await append(entry("release_1", "release_2", .refused, at: 400), token: "t4")
        var answer = HistoryAnswer(WorkerFacts(try await run(.history(limit: 10), in: workspace).standardOutput))
        #expect(answer.entries.map(\.to) == ["release_1", "release_2", "release_1", "release_2"])
        #expect(answer.entries.map(\.result) == [.ok, .rolledBack, .rolledBack, .refused])
        #expect(answer.entries[1].error == "release_2 did not start (redis_queue unreachable)", "tabs and newlines never split an entry")
        #expect(answer.entries[1] == entry("release_1", "release_2", .rolledBack, at: 200, error: "release_2 did not start (redis_queue unreachable)"))
        #expect(answer.badReleases == ["release_2"])
        // preflight and status say the same.
        let status = StatusAnswer(WorkerFacts(try await run(.status(site: "a.test", digestExcludes: []), in: workspace).standardOutput))
        #expect(status.releases.bad == ["release_2"])
        // The limit keeps the newest; a forced switch that succeeds clears the mark.
        try await append(entry("release_1", "release_2", .ok, at: 500), token: "t5")
        answer = HistoryAnswer(WorkerFacts(try await run(.history(limit: 2), in: workspace).standardOutput))
        #expect(answer.entries.map(\.at.timeIntervalSince1970) == [400, 500])
        #expect(answer.badReleases.isEmpty)
        #expect(try await run(["history", workspace, "--limit=x"]).exitCode == 2)
    }

    @Test("cksum: the tool names its worker script as cksum on a worker does")
    func scriptChecksum() async throws {
        let script = try RemoteScript.worker()
        let output = try await SubprocessRunner().run(Command("/bin/sh", ["-c", "cksum | cut -d ' ' -f 1,2"], standardInput: script.text))
        #expect(output.standardOutput == script.checksum + "\n")
        #expect(PosixChecksum.line(Array("".utf8)) == "4294967295 0")
        #expect(PosixChecksum.line(Array("frappe\n".utf8)) != PosixChecksum.line(Array("frappf\n".utf8)))
    }

    @Test("authorize installs the script, a dispatcher and one entry per site; the dispatcher runs only that script, for that workspace")
    func authorizeAndDispatch() async throws {
        let script = try RemoteScript.worker()
        let home = directory.path + "/home"
        try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
        // Another key, and another site's entry whose path starts like this one's: both stay.
        let others = "ssh-ed25519 AAAAother operator@laptop\nrestrict ssh-ed25519 AAAAsecond frappe-deployer:\(site)2\n"
        try others.write(toFile: home + "/.ssh/authorized_keys", atomically: true, encoding: .utf8)
        func stage(_ text: String) throws {
            try FileManager.default.createDirectory(atPath: site + "/.fd-authorized.new", withIntermediateDirectories: true)
            try text.write(toFile: site + "/.fd-authorized.new/worker.sh", atomically: true, encoding: .utf8)
        }
        let key = try #require(AuthorizedKey(publicKeyLine: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFz frappe-deployer a.test"))
        let phase = WorkerPhase.authorize(site: "a.test", script: script.checksum, key: "\(key.type):\(key.base64)")
        func authorize() async throws -> CommandOutput {
            try await SubprocessRunner().run(Command("/usr/bin/env", ["HOME=\(home)", "/bin/sh", "-s", "--"] + phase.arguments(workspace: workspace),
                                                     standardInput: script.text))
        }
        try stage(script.text + "# changed\n")
        #expect(try await authorize().exitCode == 3, "a staged script that is not the one named is refused")
        for _ in 0..<2 {
            try stage(script.text)
            let output = try await authorize()
            #expect(output.exitCode == 0, "\(output.standardErrorTail)")
            #expect(output.standardOutput.split(separator: "\n").contains("authorized_entry=" + key.entry(siteDirectory: site)[...]), "\(output.standardOutput)")
        }
        let keys = try String(contentsOfFile: home + "/.ssh/authorized_keys", encoding: .utf8)
        #expect(keys == others + key.entry(siteDirectory: site) + "\n", "one entry for the site, the others kept")
        let dispatch = site + "/.frappe-deployer/authorized/dispatch"
        #expect(try await SubprocessRunner().run(Command("shellcheck", ["-s", "sh", dispatch])).exitCode == 0)

        func dispatched(_ command: String, _ input: String) async throws -> CommandOutput {
            try await SubprocessRunner().run(Command("/usr/bin/env", ["SSH_ORIGINAL_COMMAND=\(command)", "/bin/sh", dispatch], standardInput: input))
        }
        func phaseInput(_ arguments: [String], claim: String = script.checksum) -> String { claim + "\n" + arguments.joined(separator: "\u{0}") }
        let read = try await dispatched("frappe-deployer-worker", phaseInput(WorkerPhase.history(limit: 5).arguments(workspace: workspace)))
        #expect(read.exitCode == 0 && read.standardOutput.contains("bad_releases="), "\(read.standardErrorTail)")
        // The script's own exit status comes through (the tool reads outcomes from it).
        let missing = try await dispatched("frappe-deployer-worker", phaseInput(WorkerPhase.digest(release: "release_9", excludes: []).arguments(workspace: workspace)))
        #expect(missing.exitCode == 4 && missing.standardErrorTail.joined().contains("release_9 is not on the worker"), "\(missing)")
        for (command, input, refusal) in [
            ("id", "", "is refused"),
            ("", "", "a login shell"),
            ("sh -s -- history \(workspace)", script.text, "is refused"),
            ("frappe-deployer-worker", phaseInput(["history", workspace], claim: "1 2"), "run remote-worker authorize --install again"),
            ("frappe-deployer-worker", phaseInput(["history", directory.path + "/sites/b.test/workspace"]), "authorized for \(workspace) only"),
            ("frappe-deployer-worker", phaseInput(["unstage", workspace, "--stage=\(directory.path)/elsewhere"]), "refuses the staging path"),
            ("frappe-deployer-worker", phaseInput(["unstage", workspace, "--stage=\(workspace)/.fd-staging-x/../../.."]), "refuses the staging path"),
            ("frappe-deployer-worker", phaseInput(["digest", workspace, "--release=../../b.test"]), "refuses the name"),
            ("frappe-deployer-worker", phaseInput(phase.arguments(workspace: workspace)), "cannot authorize keys"),
        ] {
            let output = try await dispatched(command, input)
            #expect(output.exitCode != 0, "\(command) was run")
            #expect(output.standardErrorTail.joined().contains(refusal), "\(command): \(output.standardErrorTail)")
        }
    }

    @Test("digest: the same copy gives the same digest; a changed file changes it; excluded files and directory times do not")
    func digest() async throws {
        let release = workspace + "/release_1"
        try FileManager.default.createDirectory(atPath: release + "/apps/frappe/__pycache__", withIntermediateDirectories: true)
        try Data("print(1)\n".utf8).write(to: URL(fileURLWithPath: release + "/apps/frappe/app.py"))
        func digest() async throws -> String? {
            DigestAnswer(WorkerFacts(try await run(.digest(release: "release_1", excludes: ["__pycache__/", "*.pyc"]), in: workspace).standardOutput)).digest
        }
        let first = try #require(try await digest())
        #expect(try await digest() == first)
        // Bytecode written by running workers, and a new directory, change nothing.
        try Data("x".utf8).write(to: URL(fileURLWithPath: release + "/apps/frappe/__pycache__/app.cpython-311.pyc"))
        try FileManager.default.createDirectory(atPath: release + "/apps/frappe/empty", withIntermediateDirectories: true)
        #expect(try await digest() == first)
        // (an edit that keeps size and second alike is below what a listing sees; edits change one)
        try Data("print(22)\n".utf8).write(to: URL(fileURLWithPath: release + "/apps/frappe/app.py"))
        #expect(try await digest() != first)
        #expect(try await run(.digest(release: "release_9", excludes: []), in: workspace).exitCode == 4)
    }

    @Test("stage-prepare creates the staging directory the parallel streams share, and only a staging directory")
    func stagePrepare() async throws {
        let stage = workspace + "/.fd-staging-release_1-abc"
        #expect(try await run(.stagePrepare(stage: stage), in: workspace).exitCode == 0)
        #expect(FileManager.default.fileExists(atPath: stage))
        #expect(try await run(.stagePrepare(stage: workspace + "/release_1"), in: workspace).exitCode == 2)
    }

    @Test("stage-prepare brings a live release whose directory is gone back from its set-aside copy before removing leftovers (issue 11.10)")
    func stagePrepareRepairsLive() async throws {
        let fm = FileManager.default
        // A crash between the swap's two renames: frappe-bench names release_1, which is only set aside.
        try fm.createDirectory(atPath: workspace + "/.fd-old-release_1-site-release_1-abc/apps", withIntermediateDirectories: true)
        try "code".write(toFile: workspace + "/.fd-old-release_1-site-release_1-abc/apps/x.py", atomically: true, encoding: .utf8)
        try fm.createDirectory(atPath: workspace + "/.fd-staging-release_1-old", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_1")
        let output = try await run(.stagePrepare(stage: workspace + "/.fd-staging-release_1-new"), in: workspace)
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        #expect(output.standardOutput.contains("repaired=release_1\n"), "\(output.standardOutput)")
        #expect(try String(contentsOfFile: workspace + "/release_1/apps/x.py", encoding: .utf8) == "code")
        #expect(try fm.contentsOfDirectory(atPath: workspace).filter { $0.hasPrefix(".fd-") } == [".fd-staging-release_1-new"])

        // Gone with no copy: said, and the staged copy will take the name without a swap.
        try fm.removeItem(atPath: workspace + "/release_1")
        let missing = try await run(.stagePrepare(stage: workspace + "/.fd-staging-release_1-next"), in: workspace)
        #expect(missing.standardOutput.contains("live_missing=release_1\n"), "\(missing.standardOutput)")
    }

    @Test("start's dependency check: an open port passes, a closed one fails with its name and address")
    func dependencyCheck() async throws {
        // The check runs before any service matters; a workspace without compose files makes the
        // script stop at the first compose call, so the check itself is driven through a tiny wrapper.
        let listener = try #require(TCPListener())
        let closed = TCPListener.freePort()
        let script = try RemoteScript.worker().text
        let body = script.replacingOccurrences(of: "\ncase $phase in", with: "\ncheck_dependencies \"$1\"; exit $?\ncase $phase in")
        func check(_ deps: String) async throws -> CommandOutput {
            try await SubprocessRunner().run(Command("/bin/sh", ["-s", "--", "check", workspace, "--", deps], standardInput: body))
        }
        let open = try await check("redis_queue@127.0.0.1:\(listener.port)")
        #expect(open.exitCode == 0)
        #expect(open.standardOutput == "dep_redis_queue=ok\n")
        let shut = try await check("redis_queue@127.0.0.1:\(listener.port),db_host@127.0.0.1:\(closed)")
        #expect(shut.exitCode == 5)
        #expect(shut.standardOutput.contains("dep_db_host=unreachable"))
        #expect(shut.standardErrorTail.contains { $0.contains("db_host 127.0.0.1:\(closed) is not reachable from the worker") })
        withExtendedLifetime(listener) {}
    }

    /// Runs one of the script's functions with ARGS, the script's own code up to its phase dispatch.
    func function(_ call: String, _ arguments: [String], directory: String? = nil) async throws -> CommandOutput {
        let script = try RemoteScript.worker().text
        let body = script.replacingOccurrences(of: "\ncase $phase in", with: "\n\(call); exit $?\ncase $phase in")
        return try await SubprocessRunner().run(Command("/bin/sh", ["-s", "--", "function", directory ?? workspace, "--"] + arguments,
                                                        standardInput: body))
    }

    @Test("stop waits: the script reads the rules the tool sends the way StopRules does (first match wins)")
    func stopWaits() async throws {
        for timeout in [nil, 42] {
            let rules = StopRules.forWorker(stopTimeout: timeout)
            let argument = try #require(WorkerPhase.stop(rules).arguments(workspace: "/w").last?.dropFirst("--stop=".count))
            for service in ["long-worker", "short-worker", "default-worker", "schedule", "frappe"] {
                let output = try await function("stop_wait \"$1\" \"$2\"", [service, String(argument)])
                #expect(output.standardOutput == "\(rules.seconds(for: service))\n", "\(service) under \(argument)")
            }
        }
    }

    static let composeAvailable = FileManager.default.isExecutableFile(atPath: "/usr/local/lib/docker/cli-plugins/docker-compose")

    @Test("a generation's override pins the release: /workspace replaced by the view, the release and deployment-data mounted, its own container names, the rest kept",
          .enabled(if: composeAvailable, "needs the docker compose plugin (scripts/testbed.sh install); no Docker engine"))
    func generationOverride() async throws {
        // FM-like compose files: named containers, ./workspace mounted, an external volume.
        try FileManager.default.createDirectory(atPath: workspace + "/release_1", withIntermediateDirectories: true)
        let service = { (name: String) in
            "  \(name):\n    image: x\n    container_name: fm__a__\(name)\n    volumes: [\"./workspace:/workspace\", \"fm-sockets:/fm-sockets\"]\n"
        }
        try ("services:\n" + service("schedule") + "volumes:\n  fm-sockets:\n    name: fm__a__fm-sockets\n    external: true\n")
            .write(toFile: site + "/docker-compose.yml", atomically: true, encoding: .utf8)
        try ("services:\n" + service("short-worker") + "volumes:\n  fm-sockets:\n    name: fm__a__fm-sockets\n    external: true\n")
            .write(toFile: site + "/docker-compose.workers.yml", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: site + "/.frappe-deployer/generations", withIntermediateDirectories: true)
        let output = try await function("find_compose; write_generation gen1 release_1 \"$@\" && project_compose gen1 config --format json",
                                        ["schedule", "short-worker"])
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        let config = try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])
        #expect(config["name"] as? String == "gen1")
        let services = try #require(config["services"] as? [String: [String: Any]])
        for name in ["schedule", "short-worker"] {
            let definition = try #require(services[name])
            #expect(definition["container_name"] as? String == "gen1-\(name)")
            let labels = definition["labels"] as? [String: String]
            #expect(labels?["frappe-deployer.release"] == "release_1")
            let mounts = (definition["volumes"] as? [[String: Any]] ?? []).map { "\($0["target"] ?? "") <- \($0["source"] ?? "")" }.sorted()
            #expect(mounts == [
                "/fm-sockets <- fm-sockets",
                "/workspace <- \(site)/.frappe-deployer/generations/gen1.view",
                "/workspace/deployment-data <- \(workspace)/deployment-data",
                "/workspace/frappe-bench <- \(workspace)/release_1",
            ], "\(name)")
        }
        // The view holds only the two mount points.
        #expect(try FileManager.default.contentsOfDirectory(atPath: site + "/.frappe-deployer/generations/gen1.view").sorted()
                == ["deployment-data", "frappe-bench"])
    }

    @Test("lock: a lock whose session is gone is stale and recovered")
    func staleLock() async throws {
        let state = site + "/.frappe-deployer"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try "token=old\nholder=ops@main pid 9\nsince=1\nsession=999999:12345\n".write(toFile: state + "/lock", atomically: true, encoding: .utf8)
        let output = try await run(["lock", workspace, "--token=new", "--holder=ops@main pid 10"])
        #expect(output.exitCode == 0)
        #expect(output.standardOutput == "stale_lock=ops@main pid 9\nlocked=yes\n")
    }

    @Test("prune keeps the newest releases, and never the live or the previous one")
    func prune() async throws {
        for name in ["release_1", "release_2", "release_3", "release_4", "release_5"] {
            try FileManager.default.createDirectory(atPath: workspace + "/" + name, withIntermediateDirectories: true)
        }
        try FileManager.default.createSymbolicLink(atPath: workspace + "/frappe-bench", withDestinationPath: "release_1")
        try FileManager.default.createDirectory(atPath: site + "/.frappe-deployer", withIntermediateDirectories: true)
        try "previous=release_2\n".write(toFile: site + "/.frappe-deployer/releases", atomically: true, encoding: .utf8)
        let output = try await run(.prune(keep: 2), in: workspace)
        #expect(output.exitCode == 0)
        #expect(output.standardOutput == "pruned=release_3\nprune_failed=\n")
        let left = try FileManager.default.contentsOfDirectory(atPath: workspace).filter { $0.hasPrefix("release_") }.sorted()
        #expect(left == ["release_1", "release_2", "release_4", "release_5"])
    }

    @Test("stage-activate links configs in the staged copy and renames it, or keeps it for a swap when live")
    func stageActivate() async throws {
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/sites", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 3, bytes: 100))
        let stage = fixture.workspace + "/.fd-staging-release_2-t"
        try FileManager.default.copyItem(atPath: fixture.workspace + "/release_1", toPath: stage)
        try FileManager.default.removeItem(atPath: stage + "/sites/common_site_config.json")
        let fresh = try await run(.stageActivate(site: "a.test", release: "release_2", stage: stage, excludes: ["*.tmp", "/sites/a b/"]),
                                  in: fixture.workspace)
        #expect(fresh.standardOutput == "swap=no\n", "\(fresh.standardErrorTail)")
        // The excludes the switch digests the copy with, one a line.
        let state = fixture.workspace + "/../.frappe-deployer"
        #expect(try String(contentsOfFile: state + "/digest.excludes", encoding: .utf8) == "*.tmp\n/sites/a b/\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.workspace + "/release_2/sites/common_site_config.json")
                == "common_site_config.workers.json")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.workspace + "/frappe-bench") == "release_1")

        let again = fixture.workspace + "/.fd-staging-release_1-u"
        try FileManager.default.copyItem(atPath: fixture.workspace + "/release_1", toPath: again)
        let swap = try await run(.stageActivate(site: "a.test", release: "release_1", stage: again, excludes: []), in: fixture.workspace)
        #expect(swap.standardOutput.hasSuffix("swap=yes\n"))
        #expect(FileManager.default.fileExists(atPath: again))
        #expect(try await run(.unstage(stage: again), in: fixture.workspace).exitCode == 0)
        #expect(!FileManager.default.fileExists(atPath: again))
        #expect(try await run(.unstage(stage: fixture.workspace + "/release_1"), in: fixture.workspace).exitCode == 2)
    }

    @Test("an unknown phase or a relative workspace is a usage error")
    func usage() async throws {
        #expect(try await run(["explode", workspace]).exitCode == 2)
        #expect(try await run(["stop", "relative/ws"]).exitCode == 2)
    }
}
