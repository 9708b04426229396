import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The exclude rules applied by a real local rsync with the sync's own arguments
/// (`SyncPlan.transfers` through `RsyncCommand.arguments`), its ssh replaced by a local shell.
@Suite("Exclude rules with rsync")
struct ExcludeRulesTests {
    /// Runs `transfer` exactly as a sync does, into `destination` on this machine: rsync's remote
    /// shell is a script that runs the remote rsync here instead of over ssh.
    static func run(_ transfer: RsyncTransfer, into destination: String, scratch: String) async throws -> CommandOutput {
        let shell = scratch + "/local-shell"
        if !FileManager.default.fileExists(atPath: shell) {
            try Data("#!/bin/sh\n# rsync -e: drop ssh's host argument and options, run the remote command here\nwhile [ $# -gt 0 ] && [ \"$1\" != rsync ]; do shift; done\nexec \"$@\"\n".utf8)
                .write(to: URL(fileURLWithPath: shell))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: shell)
        }
        var transfer = transfer
        transfer.destination = destination + "/"
        let endpoint = SSHEndpoint(worker: WorkerSettings(server: "localhost", workspacePath: "/w"), controlPath: scratch + "/none")
        return try await SubprocessRunner().run(Command("rsync", RsyncCommand.arguments(transfer, endpoint: endpoint, shell: shell, output: .quiet)))
    }

    /// Copies the release streams of `transfers` into `destination` at once, as a sync runs them
    /// (with `linkDest`, a local base instead of the worker's path), each expected to succeed.
    static func copyRelease(_ transfers: [RsyncTransfer], into destination: String, scratch: String, linkDest: String? = nil) async throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        try await withThrowingTaskGroup(of: CommandOutput.self) { group in
            for var transfer in transfers where transfer.name.hasPrefix("release") {
                if let linkDest { transfer.linkDest = linkDest }
                group.addTask { try await run(transfer, into: destination, scratch: scratch) }
            }
            for try await output in group { #expect(output.exitCode == 0, "\(output.standardErrorTail)") }
        }
    }

    static func plan(_ fixture: WorkspaceFixture, worker: WorkerSettings = WorkerSettings(server: "w", workspacePath: "/w")) throws -> SyncPlan {
        SyncPlan.make(workspace: try LocalWorkspace.locate(benchesPath: fixture.benchesPath, siteName: fixture.site), worker: worker)
    }

    @Test("the spec's excludes and rotated logs are built in")
    func builtIn() {
        for pattern in [".git/", "node_modules/", "__pycache__/", ".cache/", "*.pyc", "*.log", "*.log.[0-9]*"] {
            #expect(ExcludeRules.everywhere.contains(pattern))
        }
    }

    @Test("a first copy in two streams (env/ and the rest) gives exactly the tree one stream gives")
    func splitStreams() async throws {
        let directory = try TemporaryDirectory(prefix: "fd-split")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/main", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 60, bytes: 200_000))
        let workspace = try LocalWorkspace.locate(benchesPath: fixture.benchesPath, siteName: "a.test")
        var worker = WorkerSettings(server: "w", workspacePath: "/w")
        worker.excludePatterns = ["/env/lib/skipped-by-user/"]
        let plan = SyncPlan.make(workspace: workspace, worker: worker)
        let split = plan.transfers(base: nil, splitRelease: true)
        #expect(split.map(\.name) == ["release env/", "release", "deployment-data"])
        #expect(split.prefix(2).allSatisfy { !$0.checksum })
        let onBase = plan.transfers(base: "release_0", splitRelease: true).filter { $0.name.hasPrefix("release") }
        #expect(onBase.map(\.name) == ["release env/", "release"])
        #expect(onBase.allSatisfy { $0.checksum && !$0.times && $0.linkDest == "/w/release_0" })
        try FileManager.default.createDirectory(atPath: workspace.releasePath + "/env/lib/skipped-by-user", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: workspace.releasePath + "/env/lib/skipped-by-user/f"))

        try await Self.copyRelease(split, into: directory.path + "/two", scratch: directory.path)
        try await Self.copyRelease(plan.transfers(base: nil), into: directory.path + "/one", scratch: directory.path)
        let one = TreeSnapshot(directory.path + "/one", contents: true)
        #expect(one.entries.keys.contains { $0.hasPrefix("env/") })
        #expect(!one.entries.keys.contains { $0.contains("skipped-by-user/f") }, "a user's anchored exclude still applies")
        let two = TreeSnapshot(directory.path + "/two", contents: true)
        Self.expectSameTree(one, two)
    }

    /// Files exactly (size, mtime, bytes); links by target; directories by presence (their
    /// st_size, and a link's own mtime, are the file system's business, not rsync's). The files of
    /// `written` by size and bytes only: a copy on a base writes them at the time it runs.
    static func expectSameTree(_ one: TreeSnapshot, _ two: TreeSnapshot, written: Set<String> = []) {
        func essence(_ path: String, _ entry: String?) -> String? {
            guard let entry else { return nil }
            let fields = entry.split(separator: " ", omittingEmptySubsequences: false)
            switch fields.first {
            case "NSFileTypeDirectory": return "dir"
            case "NSFileTypeSymbolicLink": return "link " + fields.dropFirst(3).joined(separator: " ")
            default: return written.contains(path) ? fields.enumerated().filter { $0.offset != 2 }.map(\.element).joined(separator: " ") : entry
            }
        }
        let differing = Set(one.entries.keys).union(two.entries.keys).filter { essence($0, one.entries[$0]) != essence($0, two.entries[$0]) }
        #expect(differing.isEmpty, "\(differing.sorted().prefix(3).map { "\($0): \(one.entries[$0] ?? "-") / \(two.entries[$0] ?? "-")" })")
    }

    @Test("a copy on a base in two streams hard-links every unchanged file from the base, sends the changed ones, and gives the tree one stream gives")
    func splitStreamsOnBase() async throws {
        let directory = try TemporaryDirectory(prefix: "fd-split-base")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/main", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 90, bytes: 300_000))
        let worker = directory.path + "/worker"
        try await Self.copyRelease(try Self.plan(fixture).transfers(base: nil), into: worker + "/release_1", scratch: directory.path)
        // release_2: a rebuild (every mtime new, as cp -R gives) with a file changed in env/ and one in apps/.
        let copied = try await SubprocessRunner().run(Command("cp", ["-R", fixture.workspace + "/release_1", fixture.workspace + "/release_2"]))
        #expect(copied.exitCode == 0)
        let changed = ["env/bin/bench", "apps/frappe/frappe/__init__.py"]
        for path in changed {
            try Data("changed in release_2\n".utf8).write(to: URL(fileURLWithPath: fixture.workspace + "/release_2/" + path))
        }
        try fixture.activate("release_2")
        let plan = try Self.plan(fixture)
        for (name, split) in [("two", true), ("one", false)] {
            try await Self.copyRelease(plan.transfers(base: "release_1", splitRelease: split), into: worker + "/" + name,
                                       scratch: directory.path, linkDest: worker + "/release_1")
        }
        Self.expectSameTree(TreeSnapshot(worker + "/one", contents: true), TreeSnapshot(worker + "/two", contents: true), written: Set(changed))

        func inode(_ path: String) -> UInt64? {
            var info = stat()
            return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? UInt64(info.st_ino) : nil
        }
        var linked = ["env/": 0, "apps/": 0]
        let base = TreeSnapshot(worker + "/release_1")
        for path in base.entries.keys {
            guard let baseInode = inode(worker + "/release_1/" + path) else { continue }
            let copyInode = inode(worker + "/two/" + path)
            if changed.contains(path) {
                #expect(copyInode != nil && copyInode != baseInode, "\(path) changed but was linked to the base")
            } else {
                #expect(copyInode == baseInode, "\(path) is unchanged but was not linked to the base")
                for prefix in linked.keys where path.hasPrefix(prefix) { linked[prefix, default: 0] += 1 }
            }
        }
        #expect(linked.values.allSatisfy { $0 > 5 }, "\(linked)")
        #expect(try String(contentsOfFile: worker + "/two/env/bin/bench", encoding: .utf8) == "changed in release_2\n")
    }

    @Test("excluded files are neither sent nor deleted on the receiving side")
    func excludedNeitherSentNorDeleted() async throws {
        let directory = try TemporaryDirectory(prefix: "fd-excl")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/main", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 10, bytes: 10_000))
        let receiver = directory.path + "/worker/deployment-data"
        // The receiver's own copies of excluded paths, which must survive --delete.
        let own = ["sites/a.test/public/files/worker-upload.jpg", "sites/a.test/private/backups/worker.sql.gz",
                   "logs/worker.log", "logs/worker.log.2", "config/pids/worker.pid", "sites/other/private/keep.txt",
                   "sites/a.test/locks/job-on-worker.lock"]
        // A lock a job of the main server holds: never sent.
        try Data("main".utf8).write(to: URL(fileURLWithPath: fixture.deploymentData + "/sites/a.test/locks/job-on-main.lock"))
        for path in own {
            let full = receiver + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data("worker's own".utf8).write(to: URL(fileURLWithPath: full))
        }
        // And a stale file that is not excluded: --delete must remove it.
        try Data("stale".utf8).write(to: URL(fileURLWithPath: receiver + "/sites/stale.json"))

        let transfer = try #require(try Self.plan(fixture).transfers(base: nil).first { $0.name == "deployment-data" })
        let output = try await Self.run(transfer, into: receiver, scratch: directory.path)
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")

        let fm = FileManager.default
        for path in own { #expect(fm.fileExists(atPath: receiver + "/" + path), "deleted \(path)") }
        #expect(!fm.fileExists(atPath: receiver + "/sites/stale.json"))
        for excluded in ["sites/a.test/public/files/upload-photo.jpg", "sites/a.test/private/files/contract.pdf",
                         "logs/web.log", "logs/web.log.1", "logs/worker.error.log.3.gz", "config/pids/web.pid",
                         "sites/a.test/locks/job-on-main.lock"] {
            #expect(!fm.fileExists(atPath: receiver + "/" + excluded), "sent \(excluded)")
        }
        for synced in ["sites/common_site_config.workers.json", "sites/a.test/site_config.workers.json", "config/supervisor.conf"] {
            #expect(fm.fileExists(atPath: receiver + "/" + synced), "missing \(synced)")
        }
    }

    @Test("rule syntax in an operator's pattern ('!', '+ ', merge) cannot clear or undo the built-in excludes",
          arguments: ["!", "+ /sites/*/private/", "+ *", "merge /etc/passwd", ":.rsync-filter", "-! x"])
    func userRulesAreLiteral(pattern: String) async throws {
        let directory = try TemporaryDirectory(prefix: "fd-rules")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/main", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 4, bytes: 1_000))
        var worker = WorkerSettings(server: "w", workspacePath: "/w")
        worker.excludePatterns = [pattern]
        let receiver = directory.path + "/worker/deployment-data"
        let own = receiver + "/sites/a.test/private/files/worker-only.pdf"
        try FileManager.default.createDirectory(atPath: (own as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("the worker's own".utf8).write(to: URL(fileURLWithPath: own))
        let transfer = try #require(try Self.plan(fixture, worker: worker).transfers(base: nil).first { $0.name == "deployment-data" })
        let output = try await Self.run(transfer, into: receiver, scratch: directory.path)
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        #expect(FileManager.default.fileExists(atPath: own), "the worker's private file was deleted under \(pattern)")
        #expect(!FileManager.default.fileExists(atPath: receiver + "/sites/a.test/private/files/contract.pdf"),
                "the main server's private files were sent under \(pattern)")
        #expect(!FileManager.default.fileExists(atPath: receiver + "/config/pids/web.pid"))
    }

    @Test("the release's VCS, node_modules, bytecode, caches, logs and config links stay behind")
    func releaseExcludes() async throws {
        let directory = try TemporaryDirectory(prefix: "fd-excl")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/main", site: "a.test", release: "release_1",
                                                  profile: FixtureProfile(files: 10, bytes: 10_000))
        let receiver = directory.path + "/worker/release_1"
        try FileManager.default.createDirectory(atPath: directory.path + "/worker", withIntermediateDirectories: true)
        let transfer = try #require(try Self.plan(fixture).transfers(base: nil).first { $0.name == "release" })
        let output = try await Self.run(transfer, into: receiver, scratch: directory.path)
        #expect(output.exitCode == 0, "\(output.standardErrorTail)")
        let fm = FileManager.default
        for excluded in ["apps/frappe/.git", "apps/frappe/node_modules", "apps/frappe/frappe/__pycache__", "apps/frappe/frappe/stray.pyc",
                         "apps/frappe/.cache", "apps/frappe/build.log", "sites/common_site_config.json", "sites/a.test/site_config.json"] {
            #expect((try? fm.attributesOfItem(atPath: receiver + "/" + excluded)) == nil, "sent \(excluded)")
        }
        // Symlinks travel as symlinks, absolute ones unchanged.
        #expect(try fm.destinationOfSymbolicLink(atPath: receiver + "/sites/assets/frappe") == "/workspace/frappe-bench/apps/frappe/frappe/public")
        #expect(try fm.destinationOfSymbolicLink(atPath: receiver + "/sites/a.test/public") == "../../../deployment-data/sites/a.test/public")
    }
}
